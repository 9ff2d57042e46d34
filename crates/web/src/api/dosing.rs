//! Dosing over the JSON API: the dose calculator, the clinic's protocols and their versions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_domain::dose::DoseRequest;
use serde_json::{Value, json};

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
    Ok(Json(serde_json::to_value(c).map_err(|e| AppError::Internal(e.into()))?))
}

/// `GET /api/v1/protocols`: the protocol in force for each route.
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let set = app::current(&state, user.clinic).await?;
    let items: Vec<Value> = set
        .iter()
        .map(|p| json!({"id": p.id, "version": p.version, "route": p.route.as_str(), "title": p.title}))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/v1/protocols/{id}`: the protocol in force, whole, with its saved versions.
pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let set = app::current(&state, user.clinic).await?;
    let p = set.find(&id).ok_or(AppError::NotFound)?;
    let history: Vec<Value> = app::history(&state, user.clinic, &p.id)
        .await?
        .into_iter()
        .map(|(version, reason, at)| json!({"version": version, "reason": reason, "saved_at": at}))
        .collect();
    let definition = serde_json::to_value(p).map_err(|e| AppError::Internal(e.into()))?;
    Ok(Json(json!({ "protocol": definition, "versions": history })))
}

#[derive(serde::Deserialize)]
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
    let p = app::revise(&state, &user, &b.definition.to_string(), &b.reason).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": p.id, "version": p.version}))))
}
