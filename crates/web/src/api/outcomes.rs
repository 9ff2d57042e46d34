//! Measured outcomes over the JSON API (issue 7): a patient's outcomes (clinicians), the
//! patient's own (portal), the clinic dashboard, the course review, and the clinic's outcome
//! definitions.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ApiJson, patient_id};
use crate::app::outcomes as app;
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, AppError> {
    serde_json::to_value(v).map_err(|e| AppError::Internal(e.into()))
}

/// `GET /api/v1/patients/{id}/outcomes`.
pub async fn of_patient(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let o = app::of_patient(&state, &user, patient_id(&id)?).await?;
    Ok(Json(to_json(&o)?))
}

/// `GET /api/v1/portal/outcomes`: the signed-in patient's own.
pub async fn own(State(state): State<AppState>, me: CurrentUser) -> ApiResult<Json<Value>> {
    let o = app::own(&state, &me).await?;
    Ok(Json(to_json(&o)?))
}

/// `GET /api/v1/reports/outcomes?from=&to=&location=`.
pub async fn dashboard(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<app::DashboardQuery>,
) -> ApiResult<Json<Value>> {
    let d = app::dashboard(&state, &user, &q).await?;
    Ok(Json(to_json(&d)?))
}

fn course_id(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

/// `GET /api/v1/courses/{id}/reviews`.
pub async fn reviews(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let items = app::reviews(&state, &user, course_id(&id)?).await?;
    Ok(Json(json!({ "items": items })))
}

/// `POST /api/v1/courses/{id}/reviews`: continue / modify / stop with a reason.
pub async fn review(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<app::ReviewInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        |v: &app::ReviewView| Ok((StatusCode::CREATED, to_json(v)?)),
        app::review(&state, &user, course_id(&id)?, &b),
    )
    .await
}

/// `GET /api/v1/settings/outcomes`: the outcome definitions and re-review interval in force.
pub async fn settings(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Value>> {
    let s = crate::app::settings::current(&state, user.clinic).await?;
    Ok(Json(to_json(&OutcomeSettingsView {
        version: s.version,
        outcomes: s.outcomes,
        course_review: s.course_review,
    })?))
}

/// The outcome definitions and course-review settings, with the settings version they are in.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct OutcomeSettingsView {
    pub version: i64,
    pub outcomes: kapstone_domain::outcomes::OutcomeSettings,
    pub course_review: kapstone_domain::course::ReviewSettings,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    #[serde(default)]
    outcomes: Option<kapstone_domain::outcomes::OutcomeSettings>,
    #[serde(default)]
    course_review: Option<kapstone_domain::course::ReviewSettings>,
}

/// `PUT /api/v1/settings/outcomes` (admins): a new settings version.
pub async fn set_settings(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(b): ApiJson<SettingsBody>,
) -> ApiResult<Json<Value>> {
    let mut s = crate::app::settings::current(&state, user.clinic).await?;
    if let Some(o) = b.outcomes {
        s.outcomes = o;
    }
    if let Some(r) = b.course_review {
        s.course_review = r;
    }
    let (outcomes, course_review) = (s.outcomes, s.course_review);
    super::idempotency::answered_ok(
        move |version| to_json(&OutcomeSettingsView { version: *version, outcomes, course_review }),
        crate::app::settings::save(&state, &user, &s),
    )
    .await
}
