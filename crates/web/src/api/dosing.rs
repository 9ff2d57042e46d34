//! Dosing over the JSON API: the dose calculator, the clinic's protocols and their versions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_domain::dose::DoseRequest;
use serde_json::Value;

use super::ApiJson;
use crate::app::protocols as app;
use crate::auth::guard::CurrentUser;
use crate::error::ApiResult;
use crate::error::AppError;
use crate::state::AppState;

/// `POST /api/v1/dose/calculate`.
pub async fn calculate(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(req): ApiJson<DoseRequest>,
) -> ApiResult<Json<Value>> {
    let c = app::calculate(&state, &user, &req).await?;
    Ok(Json(to_json(&c)?))
}

/// `GET /api/v1/protocols`: the protocol in force for each route.
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let set = app::current(&state, user.clinic).await?;
    let items: Vec<ProtocolSummary> = set
        .iter()
        .map(|p| ProtocolSummary {
            id: p.id.clone(),
            version: p.version.clone(),
            route: p.route,
            title: p.title.clone(),
        })
        .collect();
    Ok(Json(to_json(&super::scheduling::Items { items })?))
}

/// `GET /api/v1/protocols/{id}`: the protocol in force, whole, with its saved versions.
pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let set = app::current(&state, user.clinic).await?;
    let p = set.find(&id).ok_or(AppError::NotFound)?;
    let versions: Vec<ProtocolVersion> = app::history(&state, user.clinic, &p.id)
        .await?
        .into_iter()
        .map(|(version, reason, saved_at)| ProtocolVersion { version, reason, saved_at })
        .collect();
    Ok(Json(to_json(&ProtocolDetail { protocol: p, versions })?))
}

fn to_json(v: &impl serde::Serialize) -> Result<Value, AppError> {
    serde_json::to_value(v).map_err(|e| AppError::Internal(e.into()))
}

/// A protocol in force: which, and for which route.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ProtocolSummary {
    pub id: String,
    pub version: String,
    pub route: kapstone_domain::decision::Route,
    pub title: String,
}

/// A protocol in force, whole, with the clinic's saved versions of it.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ProtocolDetail<'a> {
    pub protocol: &'a kapstone_domain::protocol::Protocol,
    pub versions: Vec<ProtocolVersion>,
}

/// A version the clinic saved.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ProtocolVersion {
    pub version: String,
    pub reason: String,
    #[schemars(extend("format" = "date-time"))]
    pub saved_at: String,
}

/// The protocol version a save made.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ProtocolSaved {
    pub id: String,
    pub version: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionBody {
    definition: Value,
    reason: String,
}

/// `POST /api/v1/protocols/{id}/versions`: a medical director saves a new version.
pub async fn revise(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<VersionBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if b.definition["id"].as_str() != Some(id.as_str()) {
        return Err(AppError::Invalid(kapstone_domain::FieldError::new(
            "definition",
            "its id must be the protocol's id",
        ))
        .into());
    }
    // The version saved is committed with its answer (see [`super::idempotency::answered`]).
    super::idempotency::answered(
        |p: &kapstone_domain::protocol::Protocol| {
            Ok((StatusCode::CREATED, to_json(&ProtocolSaved { id: p.id.clone(), version: p.version.clone() })?))
        },
        app::revise(&state, &user, &b.definition.to_string(), &b.reason),
    )
    .await
}
