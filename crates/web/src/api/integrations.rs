//! API tokens and webhooks over JSON (admins signed in; no API token reaches these routes).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_domain::UtcTs;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiJson;
use crate::app::integrations::{self, NewEndpointInput, NewTokenInput};
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn id_of(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| kapstone_domain::FieldError::new("id", "not an id").into())
}

pub async fn list_tokens(State(state): State<AppState>, admin: CurrentUser) -> ApiResult<Json<Value>> {
    let now = UtcTs::now();
    let items: Vec<Value> = integrations::tokens(&state, &admin).await?.iter().map(|t| t.json(now)).collect();
    Ok(Json(json!({ "items": items })))
}

/// Creates a token; the answer holds the secret, the only time it is ever shown.
pub async fn create_token(
    State(state): State<AppState>,
    admin: CurrentUser,
    ApiJson(input): ApiJson<NewTokenInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let t = integrations::create_token(&state, &admin, input).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": t.id, "token": t.secret, "expires_at": t.expires_at }))))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    integrations::revoke_token(&state, &admin, id_of(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_endpoints(State(state): State<AppState>, admin: CurrentUser) -> ApiResult<Json<Value>> {
    let items: Vec<Value> = integrations::endpoints(&state, &admin).await?.iter().map(|e| e.json()).collect();
    Ok(Json(json!({ "items": items })))
}

/// Registers an endpoint; the answer holds its signing secret, shown this once.
pub async fn create_endpoint(
    State(state): State<AppState>,
    admin: CurrentUser,
    ApiJson(input): ApiJson<NewEndpointInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (id, secret) = integrations::create_endpoint(&state, &admin, input).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "secret": secret }))))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveInput {
    pub active: bool,
}

pub async fn set_endpoint_active(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ActiveInput>,
) -> ApiResult<StatusCode> {
    integrations::set_endpoint_active(&state, &admin, id_of(&id)?, input.active).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_deliveries(State(state): State<AppState>, admin: CurrentUser) -> ApiResult<Json<Value>> {
    let items: Vec<Value> =
        integrations::deliveries(&state, &admin).await?.iter().map(integrations::delivery_json).collect();
    Ok(Json(json!({ "items": items })))
}

pub async fn redeliver(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    integrations::redeliver(&state, &admin, id_of(&id)?).await?;
    Ok(StatusCode::ACCEPTED)
}
