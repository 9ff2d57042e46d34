//! `/api/docs`: the OpenAPI document as a page people can read (issue 8). It is rendered from the
//! same document `/api/v1/openapi.json` serves, so the two cannot disagree; no script needed.

use askama::Template;
use axum::response::Html;
use serde_json::Value;

use super::{Layout, PageResult, render};

/// One line of a schema outline: a property (or list item) with its type in words.
pub struct FieldLine {
    pub depth: usize,
    pub name: String,
    pub kind: String,
    /// A named schema the type refers to, linked to its section.
    pub link: Option<String>,
    pub required: bool,
    pub note: String,
}

pub struct Response {
    pub status: String,
    pub description: String,
    pub fields: Vec<FieldLine>,
}

pub struct Parameter {
    pub name: String,
    pub place: String,
    pub kind: String,
    pub required: bool,
    pub note: String,
}

pub struct Operation {
    pub anchor: String,
    pub method: String,
    pub path: String,
    pub summary: String,
    pub access: String,
    pub parameters: Vec<Parameter>,
    pub request: Vec<FieldLine>,
    pub responses: Vec<Response>,
}

pub struct Group {
    pub name: String,
    pub anchor: String,
    pub operations: Vec<Operation>,
}

pub struct NamedSchema {
    pub name: String,
    pub fields: Vec<FieldLine>,
}

#[derive(Template)]
#[template(path = "api_docs.html")]
struct ApiDocsPage {
    layout: Layout,
    version: String,
    intro: String,
    operation_count: usize,
    groups: Vec<Group>,
    schemas: Vec<NamedSchema>,
}

/// The referenced schema's name (`#/components/schemas/Patient` → `Patient`).
fn ref_name(schema: &Value) -> Option<String> {
    schema.get("$ref")?.as_str()?.rsplit('/').next().map(str::to_owned)
}

/// A schema's type in words, and the named schema it points at, if any.
fn kind_of(schema: &Value) -> (String, Option<String>) {
    if let Some(name) = ref_name(schema) {
        return (name.clone(), Some(name));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let words: Vec<String> =
            values
                .iter()
                .map(|v| {
                    if v.is_null() {
                        "null".to_owned()
                    } else {
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    }
                })
                .collect();
        return (format!("one of: {}", words.join(", ")), None);
    }
    if let Some(v) = schema.get("const") {
        return (format!("always {v}"), None);
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = schema.get(combinator).and_then(Value::as_array) {
            let kinds: Vec<String> = parts.iter().map(|p| kind_of(p).0).collect();
            let joiner = if combinator == "allOf" { " and " } else { " or " };
            let link = parts.iter().find_map(ref_name);
            return (kinds.join(joiner), link);
        }
    }
    let types: Vec<String> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    let mut words = Vec::new();
    let mut link = None;
    for t in &types {
        words.push(match t.as_str() {
            "array" => {
                let (item, item_link) = schema.get("items").map(kind_of).unwrap_or_else(|| ("any".into(), None));
                link = link.or(item_link);
                format!("list of {item}")
            }
            "string" => match schema.get("format").and_then(Value::as_str) {
                Some(f) => format!("string ({f})"),
                None => "string".into(),
            },
            other => other.to_owned(),
        });
    }
    if words.is_empty() {
        return ("any".into(), None);
    }
    (words.join(" or "), link)
}

/// The properties of an object schema (and of the objects in a list) as indented lines.
fn outline(schema: &Value, depth: usize, out: &mut Vec<FieldLine>) {
    // Deep nesting is shown by its type only; the named schemas carry their own outline.
    if depth > 4 {
        return;
    }
    let target = match schema.get("type").and_then(Value::as_str) {
        Some("array") => schema.get("items").unwrap_or(&Value::Null),
        _ => schema,
    };
    let Some(props) = target.get("properties").and_then(Value::as_object) else { return };
    let required: Vec<&str> =
        target.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    for (name, prop) in props {
        let (kind, link) = kind_of(prop);
        let note = prop.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();
        out.push(FieldLine {
            depth,
            name: name.clone(),
            kind,
            link,
            required: required.contains(&name.as_str()),
            note,
        });
        if ref_name(prop).is_none() {
            outline(prop, depth + 1, out);
        }
    }
}

fn fields(schema: &Value) -> Vec<FieldLine> {
    let mut out = Vec::new();
    if schema.is_null() {
        return out;
    }
    if schema.get("properties").is_none() && schema.get("items").and_then(|i| i.get("properties")).is_none() {
        // A bare reference or a list of references: one line naming it.
        let (kind, link) = kind_of(schema);
        out.push(FieldLine { depth: 0, name: "(body)".into(), kind, link, required: true, note: String::new() });
        return out;
    }
    outline(schema, 0, &mut out);
    out
}

fn json_schema(content: &Value) -> &Value {
    content.get("content").and_then(|c| c.get("application/json")).and_then(|j| j.get("schema")).unwrap_or(&Value::Null)
}

fn anchor(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// The group an operation belongs to: the first path segment after `/api/v1/`.
fn group_name(path: &str) -> String {
    let first = path.trim_start_matches("/api/v1/").split('/').next().unwrap_or_default();
    let words = first.replace(['-', '.'], " ");
    let mut chars = words.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

fn operations(doc: &Value) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else { return groups };
    let mut keys: Vec<&String> = paths.keys().collect();
    keys.sort();
    for path in keys {
        let Some(methods) = paths[path].as_object() else { continue };
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = methods.get(method) else { continue };
            let parameters = op
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| Parameter {
                    name: p["name"].as_str().unwrap_or_default().to_owned(),
                    place: p["in"].as_str().unwrap_or_default().to_owned(),
                    kind: kind_of(&p["schema"]).0,
                    required: p["required"].as_bool().unwrap_or(false),
                    note: p["description"].as_str().unwrap_or_default().to_owned(),
                })
                .collect();
            let request = op.get("requestBody").map(|b| fields(json_schema(b))).unwrap_or_default();
            let mut responses: Vec<Response> = op
                .get("responses")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(status, r)| Response {
                    status: status.clone(),
                    description: r["description"].as_str().unwrap_or_default().to_owned(),
                    fields: fields(json_schema(r)),
                })
                .collect();
            responses.sort_by(|a, b| a.status.cmp(&b.status));
            let name = group_name(path);
            let operation = Operation {
                anchor: anchor(&format!("{method}-{path}")),
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                summary: op["summary"].as_str().unwrap_or_default().to_owned(),
                access: op["description"].as_str().unwrap_or_default().to_owned(),
                parameters,
                request,
                responses,
            };
            match groups.iter_mut().find(|g| g.name == name) {
                Some(g) => g.operations.push(operation),
                None => groups.push(Group { anchor: anchor(&name), name, operations: vec![operation] }),
            }
        }
    }
    groups
}

fn schemas(doc: &Value) -> Vec<NamedSchema> {
    let Some(all) = doc.pointer("/components/schemas").and_then(Value::as_object) else { return Vec::new() };
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    names.into_iter().map(|name| NamedSchema { name: name.clone(), fields: fields(&all[name]) }).collect()
}

/// The page: every operation grouped by resource, then every named schema.
pub async fn show() -> PageResult<Html<String>> {
    let doc = crate::api::openapi::build();
    let groups = operations(&doc);
    let operation_count = groups.iter().map(|g| g.operations.len()).sum();
    render(&ApiDocsPage {
        layout: Layout::anonymous("API reference"),
        version: doc.pointer("/info/version").and_then(Value::as_str).unwrap_or_default().to_owned(),
        intro: doc.pointer("/info/description").and_then(Value::as_str).unwrap_or_default().to_owned(),
        operation_count,
        schemas: schemas(&doc),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_the_document_is_on_the_page() {
        let doc = crate::api::openapi::build();
        let in_doc: usize = doc["paths"]
            .as_object()
            .map(|p| p.values().map(|m| m.as_object().map_or(0, serde_json::Map::len)).sum())
            .unwrap_or(0);
        let groups = operations(&doc);
        assert_eq!(groups.iter().map(|g| g.operations.len()).sum::<usize>(), in_doc);
        let patients = groups.iter().find(|g| g.name == "Patients").map(|g| &g.operations);
        let register = patients.and_then(|ops| ops.iter().find(|o| o.method == "POST" && o.path == "/api/v1/patients"));
        // The request body is derived from the handler's input type: its fields are listed.
        let register =
            register.map(|o| o.request.iter().map(|f| f.name.clone()).collect::<Vec<_>>()).unwrap_or_default();
        for field in ["given_name", "family_name", "birth_date"] {
            assert!(register.iter().any(|n| n == field), "registering lists {field}: {register:?}");
        }
    }

    #[test]
    fn schema_types_read_as_words() {
        let s = serde_json::json!({"type":"object","required":["a"],"properties":{
            "a":{"type":"string","format":"uuid"},
            "b":{"type":["integer","null"]},
            "c":{"type":"array","items":{"$ref":"#/components/schemas/Dose"}},
            "d":{"enum":["booked","cancelled",null]},
            "e":{"type":"object","properties":{"f":{"type":"boolean"}}}}});
        let lines = fields(&s);
        let by_name = |n: &str| lines.iter().find(|l| l.name == n).map(|l| (l.kind.clone(), l.required, l.depth));
        assert_eq!(by_name("a"), Some(("string (uuid)".into(), true, 0)));
        assert_eq!(by_name("b"), Some(("integer or null".into(), false, 0)));
        assert_eq!(by_name("c"), Some(("list of Dose".into(), false, 0)));
        assert_eq!(lines.iter().find(|l| l.name == "c").and_then(|l| l.link.clone()), Some("Dose".into()));
        assert_eq!(by_name("d"), Some(("one of: booked, cancelled, null".into(), false, 0)));
        assert_eq!(by_name("f"), Some(("boolean".into(), false, 1)));
    }
}
