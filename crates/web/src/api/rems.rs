//! The SPRAVATO REMS Patient Monitoring Form over the API: the form filled from a finished
//! session, the record of its submission, and the clinic's list of forms by urgency.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiJson;
use crate::app::rems as app;
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn session_id(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

fn to_json(v: &impl serde::Serialize) -> Result<Value, AppError> {
    serde_json::to_value(v).map_err(|e| AppError::Internal(e.into()))
}

/// `GET /api/v1/sessions/{id}/rems-form`.
pub async fn form(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let view = app::form(&state, &user, session_id(&id)?).await?;
    Ok(Json(to_json(&view)?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionBody {
    submitted_on: String,
    #[serde(default)]
    confirmation: Option<String>,
}

/// `POST /api/v1/sessions/{id}/rems-form/submissions`: 201; a date in the future or before the
/// session is 422 naming `submitted_on`.
pub async fn submit(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SubmissionBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let sid = session_id(&id)?;
    let sub = app::submit(&state, &user, sid, &b.submitted_on, b.confirmation.as_deref()).await?;
    let view = app::form(&state, &user, sid).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": sub, "status": to_json(&view.status)?, "due": view.due }))))
}

/// `GET /api/v1/rems-forms`.
pub async fn dashboard(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let rows = app::dashboard(&state, &user).await?;
    Ok(Json(json!({ "items": to_json(&rows)? })))
}
