//! Dosing sessions over the JSON API: open one for a dosing appointment, read it (state, what
//! blocks the next step, the timed checks), record vitals, scores, the dose order, the
//! administration and any other step; a refused step returns 422 naming the rule.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kapstone_domain::FieldError;
use kapstone_domain::UtcTs;
use kapstone_domain::adverse_event::{AdverseEvent, NewAdverseEvent};
use kapstone_domain::dose::DoseRequest;
use kapstone_domain::monitoring::{Cadss, Cadss6, Cadss23, Measurement, Moaas, Reading};
use kapstone_domain::session::{Administration, SessionEvent};
use kapstone_domain::vitals::{BloodPressure, DiastolicBp, HeartRate, RespRate, Spo2, SystolicBp};
use serde_json::Value;
use uuid::Uuid;

use super::ApiJson;
use crate::app::sessions::{self as app, Input};
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn session_id(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid(FieldError::new(field, message))
}

/// `POST /api/v1/appointments/{id}/session`: opens (or returns) the appointment's session.
pub async fn open(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let appointment = session_id(&id)?;
    // A session opened now is loaded in its own transaction, and the answer stored with it.
    super::idempotency::answered(
        |o: &app::Opened| {
            let status = if o.created { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, app::to_json(&o.loaded)?))
        },
        app::open_and_load(&state, &user, appointment),
    )
    .await
}

/// `GET /api/v1/sessions/{id}`.
pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let loaded = app::load(&state, &user, session_id(&id)?).await?;
    Ok(Json(app::to_json(&loaded)?))
}

async fn recorded(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    inputs: Vec<Input>,
    at: Option<UtcTs>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // The writer job returns the outcome: its answer is stored with the session's events.
    super::idempotency::answered(
        |out: &app::RecordedOutcome| {
            let body = serde_json::to_value(Recorded { state: out.state, alerts: out.new_alerts.clone() })
                .map_err(|e| AppError::Internal(e.into()))?;
            Ok((StatusCode::CREATED, body))
        },
        app::record(state, user, id, inputs, at),
    )
    .await
}

/// What recording a step did: the session's state now and the alerts it raised.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "SessionStep")]
pub struct Recorded {
    #[schemars(with = "kapstone_domain::session::SessionState")]
    pub state: &'static str,
    pub alerts: Vec<kapstone_domain::session::RaisedAlert>,
}

fn parse_at(v: Option<&Value>, field: &'static str) -> Result<Option<UtcTs>, AppError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s
            .parse::<jiff::Timestamp>()
            .map(|t| Some(app::ts(t)))
            .map_err(|_| invalid(field, "give a date and time with its UTC offset (RFC 3339)")),
        Some(_) => Err(invalid(field, "give a date and time with its UTC offset (RFC 3339)")),
    }
}

/// The body of `POST /api/v1/sessions/{id}/events`, as the OpenAPI document describes it: a step
/// as the domain's event (`{"kind": ..., fields}`) and optionally when it happened. [`event`]
/// reads it in parts so that an error names the field at fault, with these same types; the dose
/// order and the screening link are refused there (they have their own routes).
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct EventBody {
    #[serde(flatten)]
    pub step: SessionEvent,
    /// When it happened (RFC 3339; default: now).
    #[serde(default)]
    pub at: Option<UtcTs>,
}

/// The body of `POST /api/v1/sessions/{id}/administrations`, as the OpenAPI document describes
/// it: the administration record, what was drawn from the lot when more than the dose, and when
/// it started. [`administration`] reads it in parts (errors name the field) with these types.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct AdministrationBody {
    #[serde(flatten)]
    pub administration: Administration,
    /// What was drawn from the lot when more than the dose, e.g. `{"volume_ul": 1000}`.
    #[serde(default)]
    pub drawn: Option<kapstone_domain::ledger::Measure>,
    /// When administration started (RFC 3339; default: now).
    #[serde(default)]
    pub at: Option<UtcTs>,
}

/// `POST /api/v1/sessions/{id}/events`: any step, as the domain's event JSON (`{"kind": ...}`),
/// with an optional `"at"` (see [`EventBody`]).
pub async fn event(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(mut body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let at = parse_at(body.get("at"), "at")?;
    if let Some(o) = body.as_object_mut() {
        o.remove("at");
    }
    // An adverse event is checked as a whole after it parses (resolved with a time, a serious one
    // with its action): built here so that such a refusal is a 422 naming its field.
    if body.get("kind").and_then(Value::as_str) == Some("adverse_event_recorded") {
        if let Some(o) = body.as_object_mut() {
            o.remove("kind");
        }
        let event = SessionEvent::AdverseEventRecorded(adverse_event(&body)?);
        return recorded(&state, &user, session_id(&id)?, vec![Input::Event(event)], at).await;
    }
    let event: SessionEvent = serde_path_to_error::deserialize(&body).map_err(|e| {
        let path = e.path().to_string();
        AppError::BadRequest {
            field: Some(if path == "." { "kind".to_owned() } else { path }),
            message: e.into_inner().to_string(),
        }
    })?;
    if matches!(event, SessionEvent::DoseOrdered(_)) {
        return Err(invalid("kind", "order a dose with POST /api/v1/sessions/{id}/dose-order").into());
    }
    // A screener's score is read from the record, never from the client.
    if matches!(event, SessionEvent::ScreeningLinked(_)) {
        return Err(invalid("kind", "link a screener with POST /api/v1/sessions/{id}/screenings").into());
    }
    recorded(&state, &user, session_id(&id)?, vec![Input::Event(event)], at).await
}

/// An adverse event from its JSON parts (`code`, `onset_at`, `severity`, ...): a part that does
/// not parse is a 400 naming it, a record that does not hold together a 422 naming the field.
pub fn adverse_event(parts: &Value) -> Result<AdverseEvent, AppError> {
    let parts: NewAdverseEvent = serde_path_to_error::deserialize(parts).map_err(|e| {
        let path = e.path().to_string();
        AppError::BadRequest { field: (path != ".").then_some(path), message: e.into_inner().to_string() }
    })?;
    AdverseEvent::new(parts).map_err(AppError::Invalid)
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VitalsBody {
    #[serde(default)]
    systolic: Option<f64>,
    #[serde(default)]
    diastolic: Option<f64>,
    #[serde(default)]
    heart_rate: Option<f64>,
    #[serde(default)]
    spo2: Option<f64>,
    #[serde(default)]
    resp_rate: Option<f64>,
    /// When the reading was taken (default: now).
    #[serde(default)]
    recorded_at: Option<Value>,
    /// When it is entered in the session's log, for an entry made after the fact (e.g. from a
    /// paper chart after an outage); default: now. The log is kept in time order.
    #[serde(default)]
    at: Option<Value>,
}

/// A whole number in range for a reading; the error names the field.
fn whole(field: &'static str, v: f64) -> Result<u16, AppError> {
    if v.fract() != 0.0 || !(0.0..=f64::from(u16::MAX)).contains(&v) {
        return Err(invalid(field, "give a whole number"));
    }
    Ok(v as u16)
}

fn small(field: &'static str, v: f64) -> Result<u8, AppError> {
    u8::try_from(whole(field, v)?).map_err(|_| invalid(field, "out of range; check the reading"))
}

/// The readings a vitals entry makes: BP (with HR and SpO2), and a respiratory reading for the
/// rate (or for SpO2 taken without a BP).
pub fn vitals_readings(b: &VitalsBody, taken_at: UtcTs) -> Result<Vec<Reading>, AppError> {
    let vital = |field: &'static str| move |e: kapstone_domain::vitals::VitalError| invalid(field, e.message);
    let heart_rate = b
        .heart_rate
        .map(|v| whole("heart_rate", v).and_then(|v| HeartRate::new(v).map_err(vital("heart_rate"))))
        .transpose()?;
    let spo2 = b.spo2.map(|v| small("spo2", v).and_then(|v| Spo2::new(v).map_err(vital("spo2")))).transpose()?;
    let resp_rate = b
        .resp_rate
        .map(|v| small("resp_rate", v).and_then(|v| RespRate::new(v).map_err(vital("resp_rate"))))
        .transpose()?;
    let mut out = Vec::new();
    match (b.systolic, b.diastolic) {
        (Some(s), Some(d)) => {
            let s = SystolicBp::new(whole("systolic", s)?).map_err(vital("systolic"))?;
            let d = DiastolicBp::new(whole("diastolic", d)?).map_err(vital("diastolic"))?;
            let bp = BloodPressure::new(s, d).map_err(vital("diastolic"))?;
            out.push(Reading { taken_at, measurement: Measurement::BloodPressure { bp, heart_rate, spo2 } });
            if resp_rate.is_some() {
                out.push(Reading { taken_at, measurement: Measurement::Spo2Rr { spo2, resp_rate } });
            }
        }
        (Some(_), None) => return Err(invalid("diastolic", "give both parts of the blood pressure")),
        (None, Some(_)) => return Err(invalid("systolic", "give both parts of the blood pressure")),
        (None, None) => {
            if heart_rate.is_some() {
                return Err(invalid("heart_rate", "record the heart rate with a blood pressure"));
            }
            if spo2.is_none() && resp_rate.is_none() {
                return Err(invalid("systolic", "give at least one reading"));
            }
            out.push(Reading { taken_at, measurement: Measurement::Spo2Rr { spo2, resp_rate } });
        }
    }
    Ok(out)
}

/// `POST /api/v1/sessions/{id}/vitals`: 201 with the alerts raised; impossible values are 422
/// naming the field.
pub async fn vitals(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<VitalsBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let taken_at = parse_at(b.recorded_at.as_ref(), "recorded_at")?.unwrap_or_else(UtcTs::now);
    let at = parse_at(b.at.as_ref(), "at")?;
    let readings = vitals_readings(&b, taken_at)?;
    let inputs = readings.into_iter().map(|r| Input::Event(SessionEvent::Reading(r))).collect();
    recorded(&state, &user, session_id(&id)?, inputs, at).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoresBody {
    #[serde(default)]
    moaas: Option<f64>,
    #[serde(default)]
    cadss23: Option<f64>,
    #[serde(default)]
    cadss6: Option<f64>,
    #[serde(default)]
    recorded_at: Option<Value>,
    #[serde(default)]
    at: Option<Value>,
}

/// `POST /api/v1/sessions/{id}/scores`: MOAA/S and CADSS (23-item or CADSS-6 total).
pub async fn scores(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ScoresBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let taken_at = parse_at(b.recorded_at.as_ref(), "recorded_at")?.unwrap_or_else(UtcTs::now);
    let mut inputs = Vec::new();
    let reading = |measurement| Input::Event(SessionEvent::Reading(Reading { taken_at, measurement }));
    if let Some(v) = b.moaas {
        let score = Moaas::new(small("moaas", v)?).map_err(|e| invalid("moaas", e.to_string()))?;
        inputs.push(reading(Measurement::Moaas { score }));
    }
    match (b.cadss23, b.cadss6) {
        (Some(_), Some(_)) => {
            return Err(invalid("cadss6", "give the 23-item total or the CADSS-6 total, not both").into());
        }
        (Some(v), None) => {
            let score = Cadss23::new(small("cadss23", v)?).map_err(|e| invalid("cadss23", e.to_string()))?;
            inputs.push(reading(Measurement::Cadss { score: Cadss::Cadss23(score) }));
        }
        (None, Some(v)) => {
            let score = Cadss6::new(small("cadss6", v)?).map_err(|e| invalid("cadss6", e.to_string()))?;
            inputs.push(reading(Measurement::Cadss { score: Cadss::Cadss6(score) }));
        }
        (None, None) => {}
    }
    if inputs.is_empty() {
        return Err(invalid("moaas", "give a MOAA/S or a CADSS score").into());
    }
    let at = parse_at(b.at.as_ref(), "at")?;
    recorded(&state, &user, session_id(&id)?, inputs, at).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderBody {
    request: DoseRequest,
    #[serde(default)]
    override_reason: Option<String>,
    #[serde(default)]
    at: Option<Value>,
}

/// `POST /api/v1/sessions/{id}/dose-order`: the prescriber's order, computed by the domain from
/// the record; a block is refused, an override needs the reason.
pub async fn order(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<OrderBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let at = parse_at(b.at.as_ref(), "at")?;
    let input = Input::DoseOrder { request: b.request, override_reason: b.override_reason };
    recorded(&state, &user, session_id(&id)?, vec![input], at).await
}

/// `POST /api/v1/sessions/{id}/administrations`: administration starts (product, NDC, lot,
/// expiry, dose, route); 422 names the gate or limit that refuses it.
pub async fn administration(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let at = parse_at(b.get("at"), "at")?;
    let mut body = b;
    let mut drawn = None;
    if let Some(o) = body.as_object_mut() {
        o.remove("at");
        drawn = o.remove("drawn");
    }
    let administration: Administration = serde_path_to_error::deserialize(&body).map_err(|e| {
        let path = e.path().to_string();
        AppError::BadRequest { field: Some(path), message: e.into_inner().to_string() }
    })?;
    // What is drawn from the lot, when more than the dose (`{"volume_ul": 1000}`, ...).
    let drawn = match drawn {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v).map_err(|e| AppError::BadRequest {
            field: Some("drawn".into()),
            message: format!("give the amount drawn as {{\"volume_ul\": n}}, {{\"amount_ug\": n}}, ...: {e}"),
        })?),
    };
    let input = Input::Administration { administration, drawn };
    recorded(&state, &user, session_id(&id)?, vec![input], at).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreeningBody {
    response_id: String,
}

/// `GET /api/v1/sessions/{id}/screenings`: the PHQ-9 and C-SSRS screener responses answered
/// since the last visit, which can be linked as the pre-session screens.
pub async fn screenings(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let loaded = app::load(&state, &user, session_id(&id)?).await?;
    let linked = loaded.session();
    let screenings: Vec<ScreenView> = app::pre_session_screens(&state, &user, &loaded.row)
        .await?
        .into_iter()
        .map(|c| ScreenView {
            linked: linked.screenings().iter().any(|l| l.screening.response_id == c.screening.response_id),
            screening: c.screening,
            submitted_at: c.submitted_at,
            via_portal: c.via_portal,
        })
        .collect();
    Ok(Json(serde_json::to_value(Screens { screenings }).map_err(|e| AppError::Internal(e.into()))?))
}

/// The pre-session screeners of a session.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Screens {
    pub screenings: Vec<ScreenView>,
}

/// A PHQ-9 or C-SSRS screener answered since the last visit (KAP-SPEC 7.10), with its stored score.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ScreenView {
    #[serde(flatten)]
    pub screening: kapstone_domain::session::Screening,
    pub submitted_at: UtcTs,
    pub via_portal: bool,
    /// Already linked to this session as its pre-session screen.
    pub linked: bool,
}

/// `POST /api/v1/sessions/{id}/screenings` with `{"response_id"}`: links a screener answered
/// since the last visit; its score comes from the stored response.
pub async fn link_screening(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ScreeningBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let response_id = b
        .response_id
        .trim()
        .parse()
        .map_err(|_| invalid("response_id", "give the id of the questionnaire response"))?;
    recorded(&state, &user, session_id(&id)?, vec![Input::LinkScreening { response_id }], None).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FloorQuery {
    #[serde(default)]
    location: Option<String>,
}

/// `GET /api/v1/floor?location=`: the floor board's data.
pub async fn floor(
    State(state): State<AppState>,
    user: CurrentUser,
    q: Result<Query<FloorQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| AppError::BadRequest { field: None, message: e.body_text() })?;
    let board = crate::app::floor::board(&state, &user, q.location.as_deref()).await?;
    Ok(Json(serde_json::to_value(board).map_err(|e| AppError::Internal(e.into()))?))
}
