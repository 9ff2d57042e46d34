//! Every response the server sends to an `/api/v1/...` request is checked against the OpenAPI
//! document (issue 8): the operation is found by method and path template, the status must be
//! documented (an undocumented 2xx is a violation; a 4xx or 5xx must be the documented error
//! shape) and the JSON body must validate against the documented schema with a real JSON Schema
//! validator. A violation is recorded on the [`TestApp`](crate::TestApp), which fails the test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, Response, header};
use axum::middleware::Next;
use serde_json::{Value, json};

/// The violations seen by one server, in the order they happened.
pub type Violations = Arc<Mutex<Vec<String>>>;

/// The document and the validators compiled from it (once per test process).
struct Checker {
    doc: Value,
    /// `(path template, method, status key)` -> the compiled schema of that response.
    validators: Mutex<HashMap<(String, String, String), Arc<jsonschema::Validator>>>,
}

fn checker() -> &'static Checker {
    static CHECKER: OnceLock<Checker> = OnceLock::new();
    CHECKER.get_or_init(|| Checker { doc: kapstone_web::api::openapi::build(), validators: Mutex::default() })
}

/// The documented path template that `path` falls under: literal segments beat `{params}`
/// (`/api/v1/journal/queue` before `/api/v1/journal/{id}`).
fn template_of<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.split('/').collect();
    let paths = doc["paths"].as_object()?;
    paths
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut params = 0;
            for (t, s) in parts.iter().zip(&segments) {
                if t.starts_with('{') && t.ends_with('}') {
                    if s.is_empty() {
                        return None;
                    }
                    params += 1;
                } else if t != s {
                    return None;
                }
            }
            Some((params, template.as_str()))
        })
        .min_by_key(|(params, _)| *params)
        .map(|(_, t)| t)
}

/// The response documented for `status`: the exact code, then its range (`4XX`), then `default`.
fn documented(operation: &Value, status: u16) -> Option<(String, &Value)> {
    let responses = operation["responses"].as_object()?;
    let exact = status.to_string();
    let range = format!("{}XX", status / 100);
    [exact, range, "default".to_owned()].into_iter().find_map(|k| responses.get(&k).map(|v| (k, v)))
}

fn compile(doc: &Value, schema: &Value) -> Result<jsonschema::Validator, String> {
    // The schema refers to `#/components/schemas/X`: validate against a root that carries the
    // document's components, so every reference resolves.
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"].clone(),
    });
    match schema {
        Value::Object(o) => {
            for (k, v) in o {
                root[k.as_str()] = v.clone();
            }
        }
        Value::Bool(b) => root["allOf"] = json!([b]),
        other => return Err(format!("the documented schema is not a schema: {other}")),
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| format!("the documented schema does not compile: {e}"))
}

/// Checks one response; `Err` says what is wrong, naming method, path, status and the schema error.
pub fn check_response(
    method: &Method,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    check_against(&checker().doc, Some(&checker().validators), method, path, status, content_type, body)
}

/// As [`check_response`], against any document (a test feeds a deliberately wrong one).
pub fn check_against_document(
    doc: &Value,
    method: &Method,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    check_against(doc, None, method, path, status, content_type, body)
}

type Cache = Mutex<HashMap<(String, String, String), Arc<jsonschema::Validator>>>;

fn check_against(
    doc: &Value,
    cache: Option<&Cache>,
    method: &Method,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let fail = |why: String| Err(format!("{method} {path} -> {status}: {why}"));
    let success = (200..300).contains(&status);
    // An unknown path or method is never a success, and its refusal is the documented error shape.
    let error_shape = json!({"$ref": "#/components/schemas/Error"});
    let unknown = ("".to_owned(), "".to_owned(), "error".to_owned());
    let Some(template) = template_of(doc, path) else {
        if success {
            return fail("a success from a path the document does not describe".into());
        }
        return validate(doc, cache, unknown, &error_shape, body).or_else(fail);
    };
    let method_key = method.as_str().to_ascii_lowercase();
    let operation = &doc["paths"][template][&method_key];
    if operation.is_null() {
        if success {
            return fail(format!("a success from a method the document does not describe for {template}"));
        }
        return validate(doc, cache, unknown, &error_shape, body).or_else(fail);
    }
    let Some((status_key, response)) = documented(operation, status) else {
        return fail(format!("status {status} is not documented for {} {template}", method.as_str()));
    };
    let Some(content) = response["content"].as_object() else {
        return if body.is_empty() {
            Ok(())
        } else {
            fail(format!("the document describes no body, the server sent {} bytes", body.len()))
        };
    };
    let media = content_type.and_then(|ct| ct.split(';').next()).map(|m| m.trim().to_ascii_lowercase());
    let Some(media) = media else { return fail("no Content-Type on a response with a documented body".into()) };
    let Some(described) = content.get(&media) else {
        let known: Vec<&String> = content.keys().collect();
        return fail(format!("Content-Type {media} is not documented (documented: {known:?})"));
    };
    if media != "application/json" {
        return Ok(());
    }
    let key = (template.to_owned(), method_key, status_key);
    validate(doc, cache, key, &described["schema"], body).or_else(fail)
}

/// Validates a JSON `body` against `schema` (compiled once per `key` when there is a cache).
fn validate(
    doc: &Value,
    cache: Option<&Cache>,
    key: (String, String, String),
    schema: &Value,
    body: &[u8],
) -> Result<(), String> {
    let instance: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let validator = match cache.and_then(|c| c.lock().ok().and_then(|m| m.get(&key).cloned())) {
        Some(v) => v,
        None => {
            let v = Arc::new(compile(doc, schema)?);
            if let Some(mut m) = cache.and_then(|c| c.lock().ok()) {
                m.insert(key, v.clone());
            }
            v
        }
    };
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .take(5)
        .map(|e| format!("at `{}`: {e} (schema {})", e.instance_path(), e.schema_path()))
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let mut shown = instance.to_string();
    if shown.len() > 600 {
        let cut = (0..=600).rev().find(|i| shown.is_char_boundary(*i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push_str("...");
    }
    Err(format!("the body does not match the documented schema: {}; body: {shown}", errors.join("; ")))
}

/// The axum middleware: buffers each `/api/v1/` response, checks it and passes it on unchanged.
pub async fn validate_api_responses(violations: Violations, req: Request, next: Next) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if !path.starts_with("/api/v1/") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let resp = next.run(req).await;
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            record(&violations, format!("{method} {path}: the body could not be read: {e}"));
            return Response::from_parts(parts, Body::empty());
        }
    };
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if let Ok(dir) = std::env::var("KAPSTONE_OPENAPI_SAMPLES") {
        keep_sample(&dir, &method, &path, parts.status.as_u16(), &bytes);
    }
    if let Err(v) = check_response(&method, &path, parts.status.as_u16(), content_type, &bytes) {
        record(&violations, v);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// With `KAPSTONE_OPENAPI_SAMPLES=dir`, keeps every JSON body sent, one JSON line per response
/// in a file per operation: what a schema is written from and checked against.
fn keep_sample(dir: &str, method: &Method, path: &str, status: u16, body: &[u8]) {
    use std::io::Write;
    let doc = &checker().doc;
    let template = template_of(doc, path).unwrap_or("unknown");
    let name = format!("{}{}", method.as_str(), template.replace(['/', '{', '}'], "_"));
    let Ok(body) = serde_json::from_slice::<Value>(body) else { return };
    let line = json!({"status": status, "path": path, "body": body});
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(std::path::Path::new(dir).join(name))
    {
        let _ = writeln!(f, "{line}");
    }
}

fn record(violations: &Violations, v: String) {
    eprintln!("OpenAPI violation: {v}");
    if let Ok(mut list) = violations.lock() {
        list.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, status: u16, body: &str) -> Result<(), String> {
        check_response(&Method::GET, path, status, Some("application/json"), body.as_bytes())
    }

    #[test]
    fn a_body_that_breaks_the_documented_schema_is_a_violation() {
        // A patient without its id, and with a field the document does not know.
        let err = get("/api/v1/patients/0190c3c2-7d7e-7000-8000-000000000001", 200, r#"{"mrn": 5}"#)
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("GET /api/v1/patients/0190c3c2-7d7e-7000-8000-000000000001 -> 200:"), "{err}");
        assert!(err.contains("does not match the documented schema"), "{err}");
    }

    #[test]
    fn an_error_must_have_the_documented_error_shape() {
        assert!(get("/api/v1/auth/me", 401, r#"{"error":{"code":"unauthenticated","message":"sign in"}}"#).is_ok());
        let err = get("/api/v1/auth/me", 401, r#"{"message":"sign in"}"#).err().unwrap_or_default();
        assert!(err.contains("-> 401") && err.contains("documented schema"), "{err}");
    }

    #[test]
    fn an_unknown_path_or_method_refuses_in_the_error_shape() {
        let shape = r#"{"error":{"code":"not_found","message":"not found"}}"#;
        assert!(get("/api/v1/no-such-thing", 404, shape).is_ok());
        let err = get("/api/v1/no-such-thing", 404, "<h1>Not found</h1>").err().unwrap_or_default();
        assert!(err.contains("-> 404") && err.contains("not JSON"), "{err}");
        let empty = check_response(&Method::DELETE, "/api/v1/auth/me", 405, None, b"").err().unwrap_or_default();
        assert!(empty.contains("-> 405"), "an empty 405 is a violation: {empty}");
        let refused = r#"{"error":{"code":"method_not_allowed","message":"no"}}"#;
        assert!(check_response(&Method::DELETE, "/api/v1/auth/me", 405, None, refused.as_bytes()).is_ok());
    }

    #[test]
    fn an_undocumented_success_status_is_a_violation() {
        let err = get("/api/v1/auth/me", 203, "{}").err().unwrap_or_default();
        assert!(err.contains("status 203 is not documented"), "{err}");
        let err = get("/api/v1/no-such-thing", 200, "{}").err().unwrap_or_default();
        assert!(err.contains("does not describe"), "{err}");
    }

    #[test]
    fn references_resolve_and_literal_segments_win() {
        let doc = json!({
            "components": {"schemas": {"Thing": {"type":"object","required":["n"],"properties":{"n":{"type":"integer"}}}}},
            "paths": {
                "/api/v1/things/{id}": {"get": {"responses": {"200": {"description":"x","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Thing"}}}}}}},
                "/api/v1/things/queue": {"get": {"responses": {"200": {"description":"x","content":{"application/json":{"schema":{"type":"array"}}}}}}}
            }
        });
        let check = |path: &str, body: &str| {
            check_against_document(&doc, &Method::GET, path, 200, Some("application/json"), body.as_bytes())
        };
        assert!(check("/api/v1/things/1", r#"{"n":1}"#).is_ok());
        assert!(check("/api/v1/things/1", r#"{"n":"one"}"#).is_err());
        assert!(check("/api/v1/things/queue", "[]").is_ok());
        assert!(check("/api/v1/things/queue", r#"{"n":1}"#).is_err());
    }
}
