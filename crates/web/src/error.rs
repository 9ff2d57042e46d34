//! One error type with two faces: a message for the person (naming the field at fault) and a
//! cause for the log. Database text never reaches a client; a 500 carries a correlation id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kapstone_domain::FieldError;
use kapstone_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Input that could not be parsed (malformed JSON, wrong type, unknown field).
    #[error("{message}")]
    BadRequest { field: Option<String>, message: String },
    /// Input that parsed but breaks a rule.
    #[error("{0}")]
    Invalid(FieldError),
    /// One element of a list breaks a rule (`answers[3]`).
    #[error("{message}")]
    InvalidItem { field: String, message: String },
    #[error("sign in to continue")]
    Unauthenticated,
    #[error("email or password is incorrect, or the account is temporarily locked after repeated failures")]
    InvalidCredentials,
    #[error("this account uses a second factor: send totp_code with the 6-digit code")]
    MfaRequired,
    #[error("you do not have permission to do this")]
    Forbidden,
    #[error("the request could not be verified (CSRF check failed); reload the page and try again")]
    Csrf,
    #[error("not found")]
    NotFound,
    /// The path exists but not with this method; the `Allow` header lists the ones it takes.
    #[error("this path does not take this method (the Allow header lists those it takes)")]
    MethodNotAllowed,
    #[error("{message}")]
    Conflict { field: &'static str, message: String },
    /// A clinical rule refuses the step: `code` is the rule (`GATE-04`, `MON-09`, `DC-08`,
    /// `dose_block`, `role`, ...), `field` the input at fault when there is one.
    #[error("{message}")]
    Refused { code: &'static str, field: Option<&'static str>, message: String },
    /// A rate limit (README, "Rate limits") refused the request; the client may retry after
    /// `retry_after_secs` (sent as `Retry-After`).
    #[error("too many attempts ({limit}); try again in {} minute(s)", retry_after_secs.div_ceil(60))]
    RateLimited { limit: String, retry_after_secs: u64 },
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    /// The disk is full or failing: the change was rolled back whole and nothing was saved.
    /// Writes resume by themselves once the fault clears (no restart).
    #[error(
        "the server cannot save changes right now (its storage is full or failing); nothing was saved. \
         Try again once it is fixed"
    )]
    StorageFault,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::Invalid(_) | AppError::InvalidItem { .. } | AppError::Refused { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AppError::Unauthenticated | AppError::InvalidCredentials | AppError::MfaRequired => {
                StatusCode::UNAUTHORIZED
            }
            AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unavailable | AppError::StorageFault => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest { .. } => "bad_request",
            AppError::Invalid(_) | AppError::InvalidItem { .. } => "invalid",
            AppError::Unauthenticated => "unauthenticated",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::MfaRequired => "mfa_required",
            AppError::Forbidden => "forbidden",
            AppError::Csrf => "csrf",
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::Conflict { .. } => "conflict",
            AppError::Refused { code, .. } => code,
            AppError::RateLimited { .. } => "rate_limited",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::Unavailable | AppError::StorageFault => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::BadRequest { field, .. } => field.as_deref(),
            AppError::Invalid(e) => Some(e.field),
            AppError::InvalidItem { field, .. } => Some(field),
            AppError::Conflict { field, .. } => Some(field),
            AppError::Refused { field, .. } => *field,
            AppError::MfaRequired => Some("totp_code"),
            _ => None,
        }
    }

    /// The text shown to the client. For internal errors: a correlation id, nothing else.
    pub fn public_message(&self, correlation: &str) -> String {
        match self {
            AppError::Internal(_) => format!("something went wrong on our side (reference {correlation})"),
            AppError::Invalid(e) => e.message.clone(),
            other => other.to_string(),
        }
    }

    /// The `Retry-After` header of a rate-limit refusal.
    pub fn retry_after(&self) -> Option<(axum::http::HeaderName, axum::http::HeaderValue)> {
        match self {
            AppError::RateLimited { retry_after_secs, .. } => {
                Some((axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(*retry_after_secs)))
            }
            _ => None,
        }
    }

    /// Logs server-side causes; returns the correlation id to show.
    pub fn log(&self) -> String {
        let correlation = uuid::Uuid::now_v7().simple().to_string();
        if let AppError::Internal(cause) = self {
            tracing::error!(correlation = %correlation, error = ?cause, "internal error");
        }
        correlation
    }
}

impl From<FieldError> for AppError {
    fn from(e: FieldError) -> Self {
        AppError::Invalid(e)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(field) => {
                AppError::Conflict { field, message: format!("this {field} is already in use") }
            }
            // Logged at error level: an operator must free space or replace the disk.
            e if e.is_storage_fault() => {
                tracing::error!(error = %e, "storage fault: writes are refused until it clears");
                AppError::StorageFault
            }
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable");
                AppError::Unavailable
            }
            e if e.is_unstorable_text() => {
                // Logged: a request path let unchecked text reach a query; the field is not known here.
                tracing::warn!(error = %e, "text the database cannot store reached a query");
                AppError::BadRequest {
                    field: None,
                    message: "the request holds a character that cannot be stored (a NUL)".into(),
                }
            }
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        AppError::Internal(e)
    }
}

/// Extractor rejections: the guard has already decided JSON vs page for refusals, so an
/// extractor failing here (no user on a guarded route) is a page-style refusal.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        crate::html::PageError(self).into_response()
    }
}

/// JSON face: `{"error":{"code","message","field"?}}`.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let correlation = self.0.log();
        let mut err = serde_json::json!({
            "code": self.0.code(),
            "message": self.0.public_message(&correlation),
        });
        if let Some(f) = self.0.field() {
            err["field"] = serde_json::Value::String(f.to_owned());
        }
        let mut resp = (self.0.status(), axum::Json(serde_json::json!({ "error": err }))).into_response();
        if matches!(self.0, AppError::Unauthenticated | AppError::InvalidCredentials) {
            resp.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        if let Some((k, v)) = self.0.retry_after() {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
