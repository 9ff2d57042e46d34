//! Accounts over JSON (admins).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ApiJson;
use crate::app::accounts::{self, NewAccountInput, Operator};
use crate::auth::guard::CurrentUser;
use crate::error::ApiResult;
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, admin: CurrentUser) -> ApiResult<Json<Value>> {
    let rows = accounts::list_accounts(&state, &admin).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|u| {
            json!({
                "id": u.id, "email": u.email, "name": u.display_name, "role": u.role,
                "active": u.active, "mfa_enabled": u.totp_enabled, "patient_id": u.patient_id,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub async fn create(
    State(state): State<AppState>,
    admin: CurrentUser,
    ApiJson(input): ApiJson<NewAccountInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = accounts::create_account(&state, Operator::Admin(&admin), input).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}
