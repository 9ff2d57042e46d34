//! Patients' rights over their record over the JSON API (KAP-SPEC 10; TV-HIP-1..3): requests for
//! access and amendment with their deadlines, the steps on them, and the designated record set.
//! Portal routes only ever reach the signed-in patient's own requests and export.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_domain::PatientId;
use kapstone_store::keyset::TimeKey;
use serde_json::Value;
use uuid::Uuid;

use super::page::{self, Filter, ListQuery};
use super::{ApiJson, patient_id};
use crate::app::record_requests::{self as app, NewRequestInput, StepInput};
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn id_of(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

fn to_json(v: &impl serde::Serialize) -> Result<Value, AppError> {
    serde_json::to_value(v).map_err(|e| AppError::Internal(e.into()))
}

/// 201 with the new request (stored with it, see [`super::idempotency::answered`]).
fn created(v: &app::RequestView) -> Result<(StatusCode, Value), AppError> {
    Ok((StatusCode::CREATED, to_json(v)?))
}

/// `GET /api/v1/record-requests?patient=&from=&to=&limit=&cursor=`: the clinic's open requests with
/// their deadlines (staff), in the order they were recorded, a page at a time (see [`page`]).
pub async fn open(State(state): State<AppState>, user: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let q = q.parse::<TimeKey>(&state, user.clinic, &[Filter::Patient, Filter::Dates]).await?;
    let (requests, next) = app::open_page(&state, &user, &q.filter, q.after, q.limit).await?;
    Ok(Json(page::body(requests.iter().map(page::item).collect(), next.as_ref())))
}

/// `GET /api/v1/record-requests/{id}` (staff).
pub async fn one(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(to_json(&app::one(&state, &user, id_of(&id)?).await?)?))
}

/// `POST /api/v1/patients/{id}/record-requests`: staff record a request on the patient's behalf.
pub async fn create_for_patient(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<NewRequestInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(created, app::create(&state, &user, patient_id(&id)?, &b)).await
}

/// `GET /api/v1/patients/{id}/record-requests?from=&to=&limit=&cursor=` (staff): the patient's
/// requests, newest first, a page at a time (see [`page`]; `from`/`to` on when each was recorded).
pub async fn of_patient(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    q: ListQuery,
) -> ApiResult<Json<Value>> {
    let patient = patient_id(&id)?;
    kapstone_store::patients::get(&state.db, user.clinic, patient).await?.ok_or(AppError::NotFound)?;
    page_of(&state, &user, patient, q).await
}

/// A page of a patient's requests, as both the staff and the portal list send it.
async fn page_of(state: &AppState, user: &CurrentUser, patient: PatientId, q: ListQuery) -> ApiResult<Json<Value>> {
    let mut q = q.parse::<TimeKey>(state, user.clinic, &[Filter::Dates]).await?;
    q.filter.patient = Some(patient);
    let (requests, next) = app::of_patient_page(state, user, &q.filter, q.after, q.limit).await?;
    Ok(Json(page::body(requests.iter().map(page::item).collect(), next.as_ref())))
}

/// `POST /api/v1/record-requests/{id}/steps`: extend, provide, deny, accept or rebut (staff).
pub async fn step(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<StepInput>,
) -> ApiResult<Json<Value>> {
    super::idempotency::answered_ok(to_json, app::step(&state, &user, id_of(&id)?, &b)).await
}

/// `GET /api/v1/record-requests/{id}/export`: the designated record set as JSON (staff).
pub async fn export(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(to_json(&app::export(&state, &user, id_of(&id)?).await?)?))
}

/// `GET /api/v1/portal/record-requests?from=&to=&limit=&cursor=`: the signed-in patient's own
/// requests, newest first, a page at a time (the patient comes from the session).
pub async fn own(State(state): State<AppState>, user: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let Some(patient) = user.patient else { return Err(AppError::Forbidden.into()) };
    page_of(&state, &user, patient, q).await
}

/// `POST /api/v1/portal/record-requests`: the patient asks for access or an amendment.
pub async fn create_own(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<NewRequestInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(patient) = user.patient else { return Err(AppError::Forbidden.into()) };
    super::idempotency::answered(created, app::create(&state, &user, patient, &b)).await
}

/// `POST /api/v1/portal/record-requests/{id}/steps`: the patient's statement of disagreement.
pub async fn own_step(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<StepInput>,
) -> ApiResult<Json<Value>> {
    super::idempotency::answered_ok(to_json, app::step(&state, &user, id_of(&id)?, &b)).await
}

/// `GET /api/v1/portal/record-requests/{id}/export`: the patient's own record set, once provided.
pub async fn own_export(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(to_json(&app::export(&state, &user, id_of(&id)?).await?)?))
}
