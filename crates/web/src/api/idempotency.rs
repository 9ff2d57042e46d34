//! The `Idempotency-Key` header on the JSON API's POST and PUT routes (issue 9).
//!
//! A client that may retry (a lost connection, a timeout, a server restart) sends a key of its
//! choosing with each write. The first request with a key runs; its key is stored in the same
//! transaction as its change (`kapstone_store::idempotency`), then its status and body. A retry
//! with the same key and the same request gets that stored answer again, marked
//! `Idempotent-Replayed: true`, and changes nothing. The same key with a different request is
//! refused (422 naming `Idempotency-Key`). Requests with one key wait for each other in this
//! process; across processes the key's primary key lets only one commit. A request that changed
//! nothing (refused before any write) stores no key, so it can be corrected and sent again with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kapstone_domain::{FieldError, UtcTs};
use kapstone_store::idempotency::{self, NewKey, StoredKey};
use sha2::{Digest, Sha256};

use crate::auth::guard::CurrentUser;
use crate::error::{ApiError, AppError};
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

/// One lock per (principal, key) in use, so a second request with a key waits for the first and
/// then replays its answer instead of racing it.
#[derive(Clone, Default)]
pub struct KeyLocks(Arc<Mutex<HashMap<KeyId, KeyLock>>>);

/// (principal, key).
type KeyId = (String, String);
type KeyLock = Arc<tokio::sync::Mutex<()>>;

impl KeyLocks {
    async fn run<T>(&self, id: KeyId, work: impl Future<Output = T>) -> T {
        let lock = self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(id.clone()).or_default().clone();
        let out = {
            let _held = lock.lock().await;
            work.await
        };
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
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
        let (resp, recorded) = idempotency::with_claim(claim, next.run(req)).await;
        if !recorded {
            // Another process committed this key first: answer as it did.
            if resp.status() == StatusCode::CONFLICT
                && let Ok(Some(row)) = idempotency::find(&state.db, &principal, &key, now).await
            {
                return answer_from(row, &hash);
            }
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let Ok(body) = to_bytes(body, usize::MAX).await else {
            return ApiError(AppError::Internal(anyhow::anyhow!("reading the response to record it"))).into_response();
        };
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if let Err(e) =
            idempotency::record_response(&state.db, &principal, &key, parts.status.as_u16(), content_type, &body).await
        {
            // The change is stored and this answer still goes out; a retry learns it was applied.
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
