//! The `Idempotency-Key` header on the JSON API's POST and PUT routes (issue 9).
//!
//! A client that may retry (a lost connection, a timeout, a server restart) sends a key of its
//! choosing with each write. The first request with a key runs; its key is stored in the same
//! transaction as its change (`kapstone_store::idempotency`). A retry with the same key and the
//! same request gets the original status and body again, marked `Idempotent-Replayed: true`, and
//! changes nothing. The same key with a different request is refused (422 naming
//! `Idempotency-Key`). Requests with one key wait for each other in this process; across processes
//! the key's primary key lets only one commit. A request that changed nothing (refused before any
//! write) stores no key, so it can be corrected and sent again with it.
//!
//! The answer is stored in the same transaction as the change wherever the handler can say it
//! before the commit ([`answered`]): the handler declares how its use case's result is answered,
//! and the use case commits with that result (`Tx::commit_answering`, or returns it from its
//! group-commit writer job). A server killed after that commit, before or while answering, leaves
//! the answer stored: the retry gets it. [`ANSWERED_WITH_THE_CHANGE`] lists those routes: every
//! route that changes something. A route whose answer were known only after its commit (one that
//! reads or writes again afterwards) would go in [`ANSWERED_AFTER_THE_CHANGE`], empty today: its
//! answer is recorded right after the commit, and a kill in between leaves the key applied without
//! an answer, so that a retry gets 409 naming `Idempotency-Key` ("applied once, read it back"),
//! never a second change. A route that changes nothing ([`ANSWERED_WITHOUT_A_CHANGE`]) stores no
//! key, and a retry runs again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kapstone_domain::{FieldError, UtcTs};
use kapstone_store::idempotency::{self, Answer, NewKey, StoredKey};
use sha2::{Digest, Sha256};

use crate::auth::guard::CurrentUser;
use crate::error::{ApiError, ApiResult, AppError};
use crate::state::AppState;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest accepted key (a UUID is 36).
pub const MAX_KEY_LEN: usize = 255;

/// The routes that accept the header: the JSON API's POST and PUT, except signing in and out.
pub fn applies(method: &Method, path: &str) -> bool {
    (method == Method::POST || method == Method::PUT)
        && path.starts_with("/api/v1/")
        && !path.starts_with("/api/v1/auth/")
}

/// The routes whose answer is stored in the same transaction as their change (see the module
/// docs). The API test `after_a_crash_past_the_commit_a_retry_gets_the_original_answer` checks one
/// of each kind through a simulated crash: a transaction of the request's own, a group-commit
/// job, an id, a bare status, a course's plan booked in one transaction;
/// `after_a_crash_past_the_commit_the_routes_that_read_their_change_back_replay_it` checks each
/// route that answers with what its transaction reads back.
pub const ANSWERED_WITH_THE_CHANGE: &[(&str, &str)] = &[
    ("PUT", "/api/v1/cs/locations/{id}/registration"),
    ("POST", "/api/v1/cs/products"),
    ("POST", "/api/v1/cs/lots"),
    ("POST", "/api/v1/cs/draws/{id}/administration"),
    ("POST", "/api/v1/cs/receipts"),
    ("POST", "/api/v1/cs/draws/{id}/waste"),
    ("POST", "/api/v1/cs/destructions"),
    ("POST", "/api/v1/cs/transfers"),
    ("POST", "/api/v1/cs/adjustments"),
    ("POST", "/api/v1/cs/entries/{id}/reversal"),
    ("POST", "/api/v1/cs/counts"),
    ("POST", "/api/v1/patients"),
    ("POST", "/api/v1/portal/questionnaires"),
    ("POST", "/api/v1/patients/{id}/questionnaires"),
    ("POST", "/api/v1/safety-alerts/{id}/acknowledge"),
    ("POST", "/api/v1/appointment-types"),
    ("POST", "/api/v1/rooms"),
    ("POST", "/api/v1/locations"),
    ("PUT", "/api/v1/staff/{id}/hours"),
    ("POST", "/api/v1/patients/{id}/rems-enrollment"),
    ("POST", "/api/v1/sessions/{id}/events"),
    ("POST", "/api/v1/sessions/{id}/vitals"),
    ("POST", "/api/v1/sessions/{id}/scores"),
    ("POST", "/api/v1/sessions/{id}/dose-order"),
    ("POST", "/api/v1/sessions/{id}/administrations"),
    ("POST", "/api/v1/sessions/{id}/screenings"),
    ("POST", "/api/v1/sessions/{id}/psychotherapy-notes"),
    ("POST", "/api/v1/psychotherapy-notes/{id}/amendments"),
    ("POST", "/api/v1/psychotherapy-notes/{id}/share"),
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/sessions/{id}/integration-notes"),
    ("PUT", "/api/v1/integration-notes/{id}"),
    ("POST", "/api/v1/integration-notes/{id}/sign"),
    ("POST", "/api/v1/integration-notes/{id}/amendments"),
    ("POST", "/api/v1/portal/journal"),
    ("PUT", "/api/v1/portal/journal/{id}"),
    ("POST", "/api/v1/portal/journal/{id}/share"),
    ("POST", "/api/v1/portal/journal/{id}/unshare"),
    ("POST", "/api/v1/portal/record-requests/{id}/steps"),
    ("POST", "/api/v1/record-requests/{id}/steps"),
    ("PUT", "/api/v1/settings/outcomes"),
    ("POST", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens/{id}/revoke"),
    ("POST", "/api/v1/webhooks"),
    ("PUT", "/api/v1/webhooks/{id}/active"),
    ("POST", "/api/v1/webhooks/deliveries/{id}/redeliver"),
    // Answered with what the change's own transaction reads back (or what it wrote), and any read
    // of record data that answer needs audited in that transaction too.
    ("POST", "/api/v1/cs/discrepancies"),
    ("POST", "/api/v1/cs/discrepancies/{id}/events"),
    ("PUT", "/api/v1/patients/{id}/consultation"),
    ("POST", "/api/v1/patients/{id}/eligibility/decisions"),
    ("POST", "/api/v1/patients/{id}/pathway/events"),
    ("PUT", "/api/v1/locations/{id}/rems-setting"),
    ("POST", "/api/v1/staff/{id}/exceptions"),
    ("POST", "/api/v1/appointments"),
    ("POST", "/api/v1/appointments/{id}/cancel"),
    ("POST", "/api/v1/appointments/{id}/no-show"),
    ("POST", "/api/v1/appointments/{id}/attended"),
    ("POST", "/api/v1/appointments/{id}/reschedule"),
    ("POST", "/api/v1/patients/{id}/courses"),
    ("POST", "/api/v1/protocols/{id}/versions"),
    ("POST", "/api/v1/sessions/{id}/rems-form/submissions"),
    ("POST", "/api/v1/portal/record-requests"),
    ("POST", "/api/v1/patients/{id}/record-requests"),
    ("POST", "/api/v1/courses/{id}/reviews"),
    ("POST", "/api/v1/appointments/{id}/session"),
    ("POST", "/api/v1/courses/{id}/book"),
];

/// The routes that would record their answer after their change, and why: each would read (or
/// write) again once its change is committed, to answer with what is then stored. A kill between
/// that commit and the answer's recording would leave their key applied without an answer (409 on
/// a retry). None does today; a route that must is listed here with its reason, and the
/// middleware still records its answer after the commit.
pub const ANSWERED_AFTER_THE_CHANGE: &[(&str, &str, &str)] = &[];

/// The routes that take the header but store nothing, so no key either: a retry runs again, and
/// that is right for them.
pub const ANSWERED_WITHOUT_A_CHANGE: &[(&str, &str, &str)] = &[(
    "POST",
    "/api/v1/dose/calculate",
    "a calculation under the protocol in force that changes nothing: a retry calculates again (under the protocol \
     then in force), with nothing to apply twice; storing its answer would only make a retry replay a dose \
     calculated under a protocol since replaced",
)];

/// A JSON answer as the handler sends it: `Json` writes the same bytes.
fn json_answer(status: StatusCode, body: &serde_json::Value) -> Option<Answer> {
    Some(Answer {
        status: status.as_u16(),
        content_type: Some("application/json".to_owned()),
        body: serde_json::to_vec(body).ok()?,
    })
}

/// Runs a use case whose result `answer` turns into the route's answer, declaring `answer` first
/// (`kapstone_store::idempotency::answer_with`): a use case that commits with its result
/// (`Tx::commit_answering`, or a writer job returning it) stores that answer with its change.
/// `answer` must be pure, a function of the result alone: a retry after a crash gets what it
/// returned before the commit.
pub async fn answered<T: 'static, F>(
    answer: F,
    work: impl Future<Output = Result<T, AppError>>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)>
where
    F: Fn(&T) -> Result<(StatusCode, serde_json::Value), AppError> + Clone + Send + Sync + 'static,
{
    let declared = answer.clone();
    idempotency::answer_with(move |v: &T| declared(v).ok().and_then(|(status, body)| json_answer(status, &body)));
    let v = work.await?;
    let (status, body) = answer(&v)?;
    Ok((status, Json(body)))
}

/// [`answered`] for a route that answers 200 with `answer`'s body.
pub async fn answered_ok<T: 'static, F>(
    answer: F,
    work: impl Future<Output = Result<T, AppError>>,
) -> ApiResult<Json<serde_json::Value>>
where
    F: Fn(&T) -> Result<serde_json::Value, AppError> + Clone + Send + Sync + 'static,
{
    let (_, body) = answered(move |v: &T| Ok((StatusCode::OK, answer(v)?)), work).await?;
    Ok(body)
}

/// Runs a use case answered with a bare `status` whatever it did, declaring that answer first
/// (`kapstone_store::idempotency::answer_always`): the use case's first commit stores it with the
/// key and the change.
pub async fn answered_with_status(
    status: StatusCode,
    work: impl Future<Output = Result<(), AppError>>,
) -> ApiResult<StatusCode> {
    idempotency::answer_always(Answer { status: status.as_u16(), content_type: None, body: Vec::new() });
    work.await?;
    Ok(status)
}

/// One lock per (principal, key) in use, so a second request with a key waits for the first and
/// then replays its answer instead of racing it.
#[derive(Clone, Default)]
pub struct KeyLocks {
    held: Arc<Mutex<HashMap<KeyId, KeyLock>>>,
    /// Test hook: behave as a server killed right after each change commits, as far as the
    /// answer is concerned: it is still sent, but nothing is recorded after the commit.
    #[cfg(feature = "testkit")]
    crash_after_commit: Arc<std::sync::atomic::AtomicBool>,
}

/// (principal, key).
type KeyId = (String, String);
type KeyLock = Arc<tokio::sync::Mutex<()>>;

impl KeyLocks {
    /// Test hook (the `testkit` feature): from now on, record nothing after a change commits, as
    /// a server killed in that moment would not; what a retry then gets is what the commit itself
    /// stored.
    #[cfg(feature = "testkit")]
    pub fn crash_after_commit(&self, on: bool) {
        self.crash_after_commit.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    fn records_after_commit(&self) -> bool {
        #[cfg(feature = "testkit")]
        if self.crash_after_commit.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        true
    }

    async fn run<T>(&self, id: KeyId, work: impl Future<Output = T>) -> T {
        let lock = self.held.lock().unwrap_or_else(PoisonError::into_inner).entry(id.clone()).or_default().clone();
        let out = {
            let _held = lock.lock().await;
            work.await
        };
        let mut map = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the map and this request hold it: nobody else waits, the entry can go.
        if Arc::strong_count(&lock) == 2 {
            map.remove(&id);
        }
        out
    }
}

fn parse_key(raw: &HeaderValue) -> Result<String, AppError> {
    let key = raw.to_str().unwrap_or_default().trim();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::new(
            "Idempotency-Key",
            format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters (a UUID is a good key)"),
        )
        .into());
    }
    Ok(key.to_owned())
}

fn request_hash(method: &Method, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// The answer to a request whose key is already stored.
fn answer_from(row: StoredKey, hash: &str) -> Response {
    if row.request_hash != hash {
        return ApiError(
            FieldError::new(
                "Idempotency-Key",
                "this key was already used for a different request (another method, path or body); use a new key \
                 for a new request",
            )
            .into(),
        )
        .into_response();
    }
    let Some(status) =
        row.response_status.and_then(|s| u16::try_from(s).ok()).and_then(|s| StatusCode::from_u16(s).ok())
    else {
        // Only on a route that records its answer after its change (see the module docs).
        return ApiError(AppError::Conflict {
            field: "Idempotency-Key",
            message: "a request with this key was applied, but its answer was not recorded (the server was still \
                      answering it, or stopped before it could); it was not applied again"
                .into(),
        })
        .into_response();
    };
    let mut resp = Response::new(Body::from(row.response_body.unwrap_or_default()));
    *resp.status_mut() = status;
    if let Some(ct) = row.response_content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}

/// Middleware on the routes [`applies`] names, inside the guard (it needs the principal).
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(raw) = req.headers().get(HEADER) else { return next.run(req).await };
    let key = match parse_key(raw) {
        Ok(k) => k,
        Err(e) => return ApiError(e).into_response(),
    };
    let Some(user) = req.extensions().get::<CurrentUser>() else { return next.run(req).await };
    let principal = match &user.token {
        Some(t) => format!("token:{}", t.id),
        None => format!("user:{}", user.id),
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, state.config.max_body_bytes).await else {
        return ApiError(AppError::PayloadTooLarge).into_response();
    };
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let hash = request_hash(&parts.method, &path, &bytes);
    let locks = state.idempotency_locks.clone();
    let work = async {
        let now = UtcTs::now();
        match idempotency::find(&state.db, &principal, &key, now).await {
            Ok(Some(row)) => return answer_from(row, &hash),
            Ok(None) => {}
            Err(e) => return ApiError(e.into()).into_response(),
        }
        let claim = NewKey {
            principal: principal.clone(),
            key: key.clone(),
            request_hash: hash.clone(),
            method: parts.method.as_str().to_owned(),
            path: path.chars().take(500).collect(),
            created_at: now,
            expires_at: now.plus(state.config.idempotency_key_lifetime),
        };
        let req = Request::from_parts(parts, Body::from(bytes));
        let (resp, claimed) = idempotency::with_claim(claim, next.run(req)).await;
        if !claimed.recorded {
            // This request changed nothing. If another process committed this key meanwhile (its
            // commit refused ours, or its change left ours nothing to do: a plan whose dates it
            // booked), answer as it did: a retry must not get its own echo of the original.
            if let Ok(Some(row)) = idempotency::find(&state.db, &principal, &key, now).await {
                return answer_from(row, &hash);
            }
            return resp;
        }
        if !locks.records_after_commit() {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let Ok(body) = to_bytes(body, usize::MAX).await else {
            return ApiError(AppError::Internal(anyhow::anyhow!("reading the response to record it"))).into_response();
        };
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let stored = claimed.answer.as_ref();
        let same = stored.is_some_and(|a| {
            a.status == parts.status.as_u16() && a.content_type.as_deref() == content_type && a.body == body
        });
        // Stored with the change: nothing more to write.
        if same {
            return Response::from_parts(parts, Body::from(body));
        }
        if stored.is_some() {
            tracing::warn!(status = parts.status.as_u16(), "an idempotent request answered otherwise than it declared");
        }
        if let Err(e) =
            idempotency::record_response(&state.db, &principal, &key, parts.status.as_u16(), content_type, &body).await
        {
            // The change is stored and this answer still goes out; a retry gets the answer stored
            // with the change, if any, or learns it was applied.
            tracing::warn!(error = %e, "could not record the answer of an idempotent request");
        }
        Response::from_parts(parts, Body::from(body))
    };
    locks.run((principal.clone(), key.clone()), work).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_json_api_writes_take_a_key() {
        assert!(applies(&Method::POST, "/api/v1/patients"));
        assert!(applies(&Method::PUT, "/api/v1/patients/{id}/consultation"));
        assert!(!applies(&Method::GET, "/api/v1/patients"));
        assert!(!applies(&Method::POST, "/api/v1/auth/login"));
        assert!(!applies(&Method::POST, "/patients"));
        assert!(!applies(&Method::DELETE, "/api/v1/portal/journal/{id}"));
    }

    #[test]
    fn every_route_that_takes_a_key_says_when_its_answer_is_stored() {
        let mut keyed: Vec<(String, String)> = crate::routes::table()
            .iter()
            .filter(|r| applies(&r.method, r.path))
            .map(|r| (r.method.to_string(), r.path.to_owned()))
            .collect();
        let mut listed: Vec<(String, String)> = ANSWERED_WITH_THE_CHANGE
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .chain(ANSWERED_AFTER_THE_CHANGE.iter().map(|(m, p, _)| (m.to_string(), p.to_string())))
            .chain(ANSWERED_WITHOUT_A_CHANGE.iter().map(|(m, p, _)| (m.to_string(), p.to_string())))
            .collect();
        keyed.sort();
        listed.sort();
        assert_eq!(keyed, listed);
    }

    #[test]
    fn keys_are_short_visible_ascii() {
        assert!(parse_key(&HeaderValue::from_static("0190f1c2-7d4e-7a00-8000-000000000001")).is_ok());
        assert!(parse_key(&HeaderValue::from_static("")).is_err());
        assert!(parse_key(&HeaderValue::from_static("two words")).is_err());
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(parse_key(&HeaderValue::from_str(&long).unwrap_or(HeaderValue::from_static(""))).is_err());
    }

    #[test]
    fn the_hash_covers_method_path_and_body() {
        let a = request_hash(&Method::POST, "/api/v1/patients", b"{}");
        assert_eq!(a, request_hash(&Method::POST, "/api/v1/patients", b"{}"));
        assert_ne!(a, request_hash(&Method::PUT, "/api/v1/patients", b"{}"));
        assert_ne!(a, request_hash(&Method::POST, "/api/v1/rooms", b"{}"));
        assert_ne!(a, request_hash(&Method::POST, "/api/v1/patients", b"{ }"));
    }
}
