//! Integration notes over the JSON API: a patient's record notes, and drafting, editing, signing
//! and amending one. `GET /api/v1/patients/{id}/notes` lists integration notes only: it never
//! reads the psychotherapy-note store, for any caller.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_domain::PatientId;
use kapstone_store::keyset::TimeKey;
use serde_json::Value;
use uuid::Uuid;

use super::ApiJson;
use super::page::{self, Filter, ListQuery};
use crate::app::integration_notes::{self as app, Step};
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn id_of(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

fn to_json(v: &impl serde::Serialize) -> Result<Value, AppError> {
    serde_json::to_value(v).map_err(|e| AppError::Internal(e.into()))
}

/// `GET /api/v1/patients/{id}/notes?from=&to=&limit=&cursor=`: the caller's readable notes, oldest
/// first, a page at a time (see [`page`]); `from`/`to` filter on when the note was opened.
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    q: ListQuery,
) -> ApiResult<Json<Value>> {
    let patient = PatientId::from_uuid(id_of(&id)?);
    let mut q = q.parse::<TimeKey>(&state, user.clinic, &[Filter::Dates]).await?;
    q.filter.patient = Some(patient);
    let (notes, next) = app::of_patient_page(&state, &user, &q.filter, q.after, q.limit).await?;
    Ok(Json(page::body(notes.iter().map(page::item).collect(), next.as_ref())))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftBody {
    summary: String,
    #[serde(default)]
    plan: Option<String>,
}

/// `POST /api/v1/sessions/{id}/integration-notes`: 201 with the draft.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<DraftBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        |n| Ok((StatusCode::CREATED, to_json(n)?)),
        app::draft(&state, &user, id_of(&id)?, &b.summary, b.plan.as_deref().unwrap_or_default()),
    )
    .await
}

/// `PUT /api/v1/integration-notes/{id}`: edits the caller's own draft.
pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<DraftBody>,
) -> ApiResult<Json<Value>> {
    let step = Step::Edit { summary: &b.summary, plan: b.plan.as_deref().unwrap_or_default() };
    super::idempotency::answered_ok(to_json, app::step(&state, &user, id_of(&id)?, step)).await
}

/// `POST /api/v1/integration-notes/{id}/sign`: signs the caller's own draft.
pub async fn sign(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    super::idempotency::answered_ok(to_json, app::step(&state, &user, id_of(&id)?, Step::Sign)).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendmentBody {
    summary: String,
    #[serde(default)]
    plan: Option<String>,
    reason: String,
    #[serde(default)]
    request_id: Option<Uuid>,
}

/// `POST /api/v1/integration-notes/{id}/amendments`: 201 with the note and all its amendments.
pub async fn amend(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AmendmentBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let step = Step::Amend {
        summary: &b.summary,
        plan: b.plan.as_deref().unwrap_or_default(),
        reason: &b.reason,
        request: b.request_id,
    };
    super::idempotency::answered(
        |n| Ok((StatusCode::CREATED, to_json(n)?)),
        app::step(&state, &user, id_of(&id)?, step),
    )
    .await
}
