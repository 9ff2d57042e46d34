//! Patients over JSON: list and read (audited), and the portal's own record.

use axum::Json;
use axum::extract::{Path, Query, State};
use kapstone_domain::{FieldError, PatientId};
use kapstone_store::patients::{PatientKey, PatientRow};

use super::page;
use serde_json::Value;

use crate::app::patients;
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// A patient's demographic record.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Patient")]
pub struct PatientView {
    pub id: uuid::Uuid,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    #[schemars(extend("format" = "date"))]
    pub birth_date: String,
    #[schemars(with = "kapstone_domain::patient::SexAtBirth")]
    pub sex_at_birth: String,
    pub gender_identity: Option<String>,
    pub pronouns: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub emergency_contact_name: Option<String>,
    pub emergency_contact_phone: Option<String>,
    pub created_at: kapstone_domain::UtcTs,
}

fn patient_json(p: &PatientRow) -> Value {
    page::item(&PatientView {
        id: p.id,
        mrn: p.mrn.clone(),
        given_name: p.given_name.clone(),
        family_name: p.family_name.clone(),
        birth_date: p.birth_date.to_string(),
        sex_at_birth: p.sex_at_birth.clone(),
        gender_identity: p.gender_identity.clone(),
        pronouns: p.pronouns.clone(),
        phone: p.phone.clone(),
        email: p.email.clone(),
        address: p.address.clone(),
        emergency_contact_name: p.emergency_contact_name.clone(),
        emergency_contact_phone: p.emergency_contact_phone.clone(),
        created_at: p.created_at.0,
    })
}

/// `POST /api/v1/patients`: registers a patient; 201 with the record and its MRN.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    super::ApiJson(input): super::ApiJson<patients::NewPatientInput>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    super::idempotency::answered(
        |row: &PatientRow| Ok((axum::http::StatusCode::CREATED, patient_json(row))),
        patients::register(&state, &user, &input),
    )
    .await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /api/v1/patients?q=&limit=&cursor=`: a page of patients by family name, given name and
/// id, all of them or those matching `q` (see [`super::page`]).
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| AppError::BadRequest { field: None, message: e.body_text() })?;
    let limit = page::limit(q.limit.as_deref())?;
    let after: Option<PatientKey> = page::after(q.cursor.as_deref())?;
    // One row more than asked says whether there is a next page.
    let rows = match q.q.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(text) => patients::search(&state, &user, text, after.as_ref(), limit + 1).await?,
        None => patients::page(&state, &user, after.as_ref(), limit + 1).await?,
    };
    Ok(Json(page::page(rows, limit, PatientRow::key, patient_json)))
}

pub async fn read(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id: PatientId = id.parse().map_err(|_| FieldError::new("id", "not a patient id"))?;
    let p = patients::read(&state, &user, id).await?;
    Ok(Json(patient_json(&p)))
}

pub async fn portal_me(State(state): State<AppState>, me: CurrentUser) -> ApiResult<Json<Value>> {
    let p = patients::read_own(&state, &me).await?;
    Ok(Json(patient_json(&p)))
}
