//! JSON API under `/api/v1`: authenticated by bearer token (or the session cookie with the
//! CSRF header). Errors are `{"error":{"code","message","field"?}}`.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod dosing;
pub mod eligibility;
pub mod idempotency;
pub mod integration_notes;
pub mod integrations;
pub mod journal;
pub mod ledger;
pub mod measures;
pub mod openapi;
pub mod outcomes;
pub mod page;
pub mod patients;
pub mod psychotherapy_notes;
pub mod questionnaires;
pub mod record_requests;
pub mod rems;
pub mod scheduling;
pub mod sessions;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, AppError};

/// `{"id": ...}`: the answer of a create that has nothing more to say than the new id.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Created {
    pub id: uuid::Uuid,
}

/// A patient id from the path; a malformed one is a 422 naming `id`.
pub(crate) fn patient_id(raw: &str) -> Result<kapstone_domain::PatientId, AppError> {
    raw.parse().map_err(|_| kapstone_domain::FieldError::new("id", "not a patient id").into())
}

/// A JSON body parsed into `T`; any failure is a 4xx that names the field at fault.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(AppError::UnsupportedMediaType.into());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|_| AppError::PayloadTooLarge)?;
        parse_json(&bytes).map(ApiJson).map_err(ApiError)
    }
}

/// Parses JSON, reporting the path of the first bad value (`patient_mrn`, `items[2].dose`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != "." && !path.is_empty()).then_some(path);
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON at line {} column {}", inner.line(), inner.column())
        } else {
            // serde's text names the expected type or the unknown/missing field; no input echoed.
            let text = inner.to_string();
            text.split(" at line ").next().unwrap_or(&text).to_owned()
        };
        let field = field.or_else(|| missing_field_name(&message));
        AppError::BadRequest { field, message }
    })
}

/// serde reports a missing field at the parent path; lift its name out of the message.
fn missing_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
    }

    fn field_of(json: &str) -> (Option<String>, String) {
        match parse_json::<Login>(json.as_bytes()) {
            Err(AppError::BadRequest { field, message }) => (field, message),
            other => (None, format!("unexpected {other:?}")),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(field_of(r#"{"email": 5, "password": "x"}"#).0.as_deref(), Some("email"));
        assert_eq!(field_of(r#"{"email": "a@b.co"}"#).0.as_deref(), Some("password"));
        assert_eq!(field_of(r#"{"email": "a", "password": "b", "role": "admin"}"#).0.as_deref(), Some("role"));
        // Truncated JSON: named as malformed, pointing at where parsing stopped.
        let (field, message) = field_of(r#"{"email": "#);
        assert_eq!(field.as_deref(), Some("email"));
        assert!(message.starts_with("malformed JSON"), "{message}");
        let (field, message) = field_of("not json");
        assert_eq!(field, None);
        assert!(message.starts_with("malformed JSON"), "{message}");
    }
}
