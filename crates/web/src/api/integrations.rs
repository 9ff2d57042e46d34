//! API tokens and webhooks over JSON (admins signed in; no API token reaches these routes).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_domain::UtcTs;
use kapstone_domain::permissions::Scope;
use kapstone_store::integrations::DeliveryRow;
use kapstone_store::keyset::TimeKey;
use serde_json::{Value, json};
use uuid::Uuid;

use super::ApiJson;
use super::page::{self, Filter, ListQuery};
use crate::app::integrations::{self, DeliveryView, NewEndpointInput, NewTokenInput, TokenState};
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
    Ok(Json(page::page(rows, q.limit, |t| TimeKey::new(t.created_at, t.id), |t| page::item(&TokenItem::of(t, now)))))
}

/// A token as the list shows it: never the secret, which is not stored.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct TokenItem {
    id: Uuid,
    name: String,
    /// The first characters of the token, to tell tokens apart.
    prefix: String,
    scopes: Vec<Scope>,
    created_at: UtcTs,
    expires_at: UtcTs,
    revoked_at: Option<UtcTs>,
    last_used_at: Option<UtcTs>,
    state: TokenState,
}

impl TokenItem {
    fn of(t: &integrations::TokenView, now: UtcTs) -> Self {
        TokenItem {
            id: t.id,
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            scopes: t.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
            state: t.state(now),
        }
    }
}

/// A new token: the secret is in this answer only.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct NewToken {
    id: Uuid,
    /// The bearer token: shown this once, stored only as a hash.
    token: String,
    expires_at: UtcTs,
}

/// A new webhook endpoint: its signing secret is in this answer only.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct NewEndpoint {
    id: Uuid,
    /// The HMAC-SHA256 key of the endpoint's signatures: shown this once.
    secret: String,
}

/// Creates a token; the answer holds the secret, the only time it is ever shown.
pub async fn create_token(
    State(state): State<AppState>,
    admin: CurrentUser,
    ApiJson(input): ApiJson<NewTokenInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        |t: &integrations::CreatedToken| {
            let created = NewToken { id: t.id, token: t.secret.clone(), expires_at: t.expires_at };
            Ok((StatusCode::CREATED, page::item(&created)))
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
    let items = integrations::endpoints(&state, &admin).await?;
    Ok(Json(json!({ "items": items })))
}

/// Registers an endpoint; the answer holds its signing secret, shown this once.
pub async fn create_endpoint(
    State(state): State<AppState>,
    admin: CurrentUser,
    ApiJson(input): ApiJson<NewEndpointInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        |(id, secret): &(Uuid, String)| {
            Ok((StatusCode::CREATED, page::item(&NewEndpoint { id: *id, secret: secret.clone() })))
        },
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
    let mut rows = integrations::deliveries_page(&state, &admin, &q.filter, q.after, q.limit).await?;
    let next = kapstone_store::keyset::cut(&mut rows, q.limit, |d: &DeliveryRow| TimeKey::new(d.created_at, d.id));
    let items = rows.iter().map(|d| DeliveryView::of(d).map(|v| page::item(&v))).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(page::body(items, next.as_ref())))
}

pub async fn redeliver(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    super::idempotency::answered_with_status(StatusCode::ACCEPTED, integrations::redeliver(&state, &admin, id_of(&id)?))
        .await
}
