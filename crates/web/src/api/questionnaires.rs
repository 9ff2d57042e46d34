//! Questionnaires and safety alerts over JSON.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_domain::FieldError;
use kapstone_domain::UtcTs;
use kapstone_store::keyset::TimeKey;
use kapstone_store::questionnaires::AlertRow;
use serde_json::Value;
use uuid::Uuid;

use super::ApiJson;
use super::page::{self, Filter, ListQuery};
use super::patient_id;
use crate::app::questionnaires::{self, AlertLevel, Submission};
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// `POST /api/v1/patients/{id}/questionnaires` (clinicians).
pub async fn submit_for_patient(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(sub): ApiJson<Submission>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        |scored: &questionnaires::Scored| Ok((StatusCode::CREATED, page::item(&scored.view(false)))),
        questionnaires::submit(&state, &user, patient_id(&id)?, sub),
    )
    .await
}

/// `POST /api/v1/portal/questionnaires`: the patient's own, from the portal.
pub async fn submit_own(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(sub): ApiJson<Submission>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Some(patient) = me.patient else { return Err(AppError::Forbidden.into()) };
    super::idempotency::answered(
        |scored: &questionnaires::Scored| Ok((StatusCode::CREATED, page::item(&scored.view(true)))),
        questionnaires::submit(&state, &me, patient, sub),
    )
    .await
}

/// `GET /api/v1/safety-alerts?patient=&from=&to=&limit=&cursor=`: open alerts, oldest first, a page
/// at a time (see [`page`]); `from`/`to` filter on when the alert was raised.
pub async fn open_alerts(State(state): State<AppState>, user: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let q = q.parse::<TimeKey>(&state, user.clinic, &[Filter::Patient, Filter::Dates]).await?;
    let mut alerts = questionnaires::open_alerts_page(&state, &user, &q.filter, q.after, q.limit).await?;
    let next = kapstone_store::keyset::cut(&mut alerts, q.limit, |a: &AlertRow| TimeKey::new(a.raised_at, a.id));
    let items = alerts.iter().map(|a| AlertView::of(a).map(|v| page::item(&v))).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(page::body(items, next.as_ref())))
}

/// An open safety alert as the API lists it.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct AlertView {
    id: Uuid,
    patient_id: Uuid,
    /// The questionnaire response that raised it.
    response_id: Uuid,
    level: AlertLevel,
    reason: String,
    raised_at: UtcTs,
}

impl AlertView {
    fn of(a: &AlertRow) -> Result<Self, AppError> {
        let level = AlertLevel::parse(&a.level)
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("safety alert {}: stored level unreadable", a.id)))?;
        Ok(AlertView {
            id: a.id,
            patient_id: a.patient_id,
            response_id: a.response_id,
            level,
            reason: a.reason.clone(),
            raised_at: a.raised_at.0,
        })
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    action_taken: String,
}

/// `POST /api/v1/safety-alerts/{id}/acknowledge` (prescriber or therapist).
pub async fn acknowledge(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Acknowledgement>,
) -> ApiResult<StatusCode> {
    let id = id.parse().map_err(|_| FieldError::new("id", "not an alert id"))?;
    super::idempotency::answered_with_status(
        StatusCode::NO_CONTENT,
        questionnaires::acknowledge(&state, &user, id, &body.action_taken),
    )
    .await
}
