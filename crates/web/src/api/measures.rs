//! Measurement-based care over the JSON API (KAP-SPEC 7.10).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::app::measures;
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// `GET /api/v1/measures/due`: due and overdue questionnaires of patients on an active course,
/// overdue first, each with its occasion, window, status and whether it is in the portal.
pub async fn due(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let items = measures::due(&state, &user).await?;
    let items = serde_json::to_value(&items).map_err(|e| AppError::Internal(e.into()))?;
    Ok(Json(json!({ "items": items })))
}
