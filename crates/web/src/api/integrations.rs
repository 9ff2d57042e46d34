//! API tokens and webhooks over JSON (admins signed in; no API token reaches these routes).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_domain::UtcTs;
use kapstone_store::integrations::DeliveryRow;
use kapstone_store::keyset::TimeKey;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiJson;
use super::page::{self, Filter, ListQuery};
use crate::app::integrations::{self, NewEndpointInput, NewTokenInput};
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn id_of(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| kapstone_domain::FieldError::new("id", "not an id").into())
}

/// `GET /api/v1/tokens?limit=&cursor=`: newest first, a page at a time (see [`page`]).
pub async fn list_tokens(State(state): State<AppState>, admin: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let q = q.parse::<TimeKey>(&state, admin.clinic, &[]).await?;
    let now = UtcTs::now();
    let rows = integrations::tokens_page(&state, &admin, q.after, q.limit).await?;
    Ok(Json(page::page(rows, q.limit, |t| TimeKey::new(t.created_at, t.id), |t| t.json(now))))
}

/// Creates a token; the answer holds the secret, the only time it is ever shown.
pub async fn create_token(
    State(state): State<AppState>,
    admin: CurrentUser,
    ApiJson(input): ApiJson<NewTokenInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        |t: &integrations::CreatedToken| {
            Ok((StatusCode::CREATED, json!({ "id": t.id, "token": t.secret, "expires_at": t.expires_at })))
        },
        integrations::create_token(&state, &admin, input),
    )
    .await
}

pub async fn revoke_token(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    super::idempotency::answered_with_status(
        StatusCode::NO_CONTENT,
        integrations::revoke_token(&state, &admin, id_of(&id)?),
    )
    .await
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
    super::idempotency::answered(
        |(id, secret)| Ok((StatusCode::CREATED, json!({ "id": id, "secret": secret }))),
        integrations::create_endpoint(&state, &admin, input),
    )
    .await
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
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
    super::idempotency::answered_with_status(
        StatusCode::NO_CONTENT,
        integrations::set_endpoint_active(&state, &admin, id_of(&id)?, input.active),
    )
    .await
}

/// `GET /api/v1/webhooks/deliveries?from=&to=&limit=&cursor=`: newest first, a page at a time (see
/// [`page`]); `from`/`to` filter on when the delivery was queued.
pub async fn list_deliveries(
    State(state): State<AppState>,
    admin: CurrentUser,
    q: ListQuery,
) -> ApiResult<Json<Value>> {
    let q = q.parse::<TimeKey>(&state, admin.clinic, &[Filter::Dates]).await?;
    let rows = integrations::deliveries_page(&state, &admin, &q.filter, q.after, q.limit).await?;
    let key = |d: &DeliveryRow| TimeKey::new(d.created_at, d.id);
    Ok(Json(page::page(rows, q.limit, key, integrations::delivery_json)))
}

pub async fn redeliver(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    super::idempotency::answered_with_status(StatusCode::ACCEPTED, integrations::redeliver(&state, &admin, id_of(&id)?))
        .await
}
