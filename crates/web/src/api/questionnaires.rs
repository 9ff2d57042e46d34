//! Questionnaires and safety alerts over JSON.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_domain::FieldError;
use kapstone_store::keyset::TimeKey;
use kapstone_store::questionnaires::AlertRow;
use serde_json::{Value, json};

use super::ApiJson;
use super::page::{self, Filter, ListQuery};
use super::patient_id;
use crate::app::questionnaires::{self, CRISIS_RESOURCES, Submission};
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
        |scored: &questionnaires::Scored| Ok((StatusCode::CREATED, scored.body.clone())),
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
        |scored: &questionnaires::Scored| {
            let mut body = scored.body.clone();
            if scored.alert.is_some()
                && let Value::Object(b) = &mut body
            {
                b.insert("crisis_resources".into(), json!(CRISIS_RESOURCES));
            }
            Ok((StatusCode::CREATED, body))
        },
        questionnaires::submit(&state, &me, patient, sub),
    )
    .await
}

/// `GET /api/v1/safety-alerts?patient=&from=&to=&limit=&cursor=`: open alerts, oldest first, a page
/// at a time (see [`page`]); `from`/`to` filter on when the alert was raised.
pub async fn open_alerts(State(state): State<AppState>, user: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let q = q.parse::<TimeKey>(&state, user.clinic, &[Filter::Patient, Filter::Dates]).await?;
    let alerts = questionnaires::open_alerts_page(&state, &user, &q.filter, q.after, q.limit).await?;
    let item = |a: &AlertRow| {
        json!({
            "id": a.id, "patient_id": a.patient_id, "response_id": a.response_id, "level": a.level,
            "reason": a.reason, "raised_at": a.raised_at.0,
        })
    };
    Ok(Json(page::page(alerts, q.limit, |a| TimeKey::new(a.raised_at, a.id), item)))
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
