//! Consultation, eligibility rules, findings, decisions and the pathway over JSON.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use kapstone_domain::FieldError;
use kapstone_domain::consultation::ConsultationInput;
use kapstone_domain::decision::{DecisionRequest, Disposition, RouteChoice, SpravatoIndication, Verdict};
use kapstone_store::eligibility::{ConsultationRow, DecisionRow};
use serde_json::{Value, json};

use super::ApiJson;
use super::patient_id;
use crate::app::eligibility::{self as app, Signing};
use crate::auth::guard::CurrentUser;
use crate::content;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn alerts(user: &CurrentUser) -> bool {
    user.may(kapstone_domain::Action::ReadSafetyAlerts)
}

/// `GET /api/v1/eligibility/rules`: the rule set in force.
pub async fn rules(_user: CurrentUser) -> ApiResult<Json<Value>> {
    let set = content::eligibility_rules().map_err(AppError::Internal)?;
    let rules: Vec<Value> = set
        .rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "condition": r.condition, "scope": r.scope, "severity": r.headline_severity(),
                "cases": r.cases, "reads": r.reads, "params": r.params, "rationale": r.rationale, "source": r.source,
            })
        })
        .collect();
    Ok(Json(json!({ "version": set.version, "source": set.source, "rules": rules })))
}

/// `GET /api/v1/codes/icd10cm`: the shipped ICD-10-CM table.
pub async fn diagnosis_codes(_user: CurrentUser) -> ApiResult<Json<Value>> {
    let table = content::diagnosis_table().map_err(AppError::Internal)?;
    Ok(Json(json!({ "version": table.version, "codes": table.codes })))
}

fn consultation_json(row: &ConsultationRow, c: &kapstone_domain::consultation::Consultation) -> Value {
    json!({
        "version": row.version,
        "recorded_at": row.recorded_at.0,
        "recorded_by": row.recorded_by,
        "diagnosis_table_version": row.diagnosis_table_version,
        "diagnoses": c.diagnoses,
        "data": c.to_input(),
    })
}

/// `GET /api/v1/patients/{id}/consultation`: the current version (404 before the first save).
pub async fn read_consultation(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (_, current) = app::consultation(&state, &user, patient_id(&id)?).await?;
    let (row, c) = current.ok_or(AppError::NotFound)?;
    Ok(Json(consultation_json(&row, &c)))
}

/// The version the client edited, from `If-Match: "3"` (optional: without it the save applies
/// to whatever is current).
fn base_version(headers: &HeaderMap) -> Result<Option<i32>, AppError> {
    let Some(v) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let text = v.to_str().unwrap_or_default().trim().trim_start_matches("W/").trim_matches('"');
    text.parse::<i32>()
        .map(Some)
        .map_err(|_| FieldError::new("If-Match", "send the consultation version you edited, like \"3\"").into())
}

/// `PUT /api/v1/patients/{id}/consultation`: saves a new version.
pub async fn save_consultation(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<ConsultationInput>,
) -> ApiResult<Json<Value>> {
    let id = patient_id(&id)?;
    app::save_consultation(&state, &user, id, &input, base_version(&headers)?).await?;
    let (_, current) = app::consultation(&state, &user, id).await?;
    let (row, c) = current.ok_or(AppError::NotFound)?;
    Ok(Json(consultation_json(&row, &c)))
}

fn decision_json(d: &DecisionRow) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    json!({
        "id": d.id,
        "verdict": d.verdict,
        "routes": parse(&d.routes),
        "spravato_indication": d.spravato_indication,
        "dispositions": parse(&d.dispositions),
        "summary": d.summary,
        "ruleset_version": d.ruleset_version,
        "settings_version": d.settings_version,
        "outcome": d.outcome,
        "findings": parse(&d.findings),
        "input_sha256": d.input_sha256,
        "signed_by": d.signed_by,
        "signed_at": d.signed_at.0,
        "amends": d.amends_id,
        "amendment_reason": d.amendment_reason,
    })
}

/// `GET /api/v1/patients/{id}/eligibility`: the evaluation of the current record, with the
/// decision in force (if any).
pub async fn evaluate(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = patient_id(&id)?;
    let (_, a) = app::eligibility(&state, &user, id).await?;
    let decisions = kapstone_store::eligibility::decisions(&state.db, id).await.map_err(AppError::from)?;
    let e = &a.evaluation;
    Ok(Json(json!({
        "ruleset_version": e.ruleset_version,
        "settings_version": a.settings_version,
        "outcome": e.outcome.as_str(),
        "outcome_by_product": { "esketamine": e.esketamine.as_str(), "racemic": e.racemic.as_str() },
        "findings": e.findings,
        "input_sha256": a.input_sha256,
        "consultation_version": a.consultation.as_ref().map(|(row, _)| row.version),
        "decision": decisions.first().map(decision_json),
    })))
}

/// What a prescriber posts to sign or amend a decision.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignBody {
    /// The `input_sha256` of the evaluation the prescriber reviewed.
    pub input_sha256: String,
    pub verdict: Verdict,
    #[serde(default)]
    pub routes: Vec<RouteChoice>,
    #[serde(default)]
    pub spravato_indication: Option<SpravatoIndication>,
    #[serde(default)]
    pub dispositions: Vec<Disposition>,
    pub summary: String,
    /// For an amendment: the id of the decision in force, and why it changes.
    #[serde(default)]
    pub amends: Option<uuid::Uuid>,
    #[serde(default)]
    pub amendment_reason: Option<String>,
    /// The prescriber's password: signing needs a re-authentication within the last minutes
    /// (README, "Re-authentication"); a password given here re-authenticates and must be right.
    #[serde(default)]
    pub password: String,
    /// The second-factor code, with `password`, when the account has one enrolled.
    #[serde(default)]
    pub totp_code: Option<String>,
}

/// `POST /api/v1/patients/{id}/eligibility/decisions`: signs (or amends) the decision.
pub async fn sign(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SignBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = patient_id(&id)?;
    let request = DecisionRequest {
        verdict: body.verdict,
        routes: body.routes,
        spravato_indication: body.spravato_indication,
        dispositions: body.dispositions,
        summary: body.summary,
    };
    let amends = match (body.amends, body.amendment_reason.as_deref()) {
        (Some(prev), Some(reason)) => Some((prev, reason)),
        (Some(_), None) => return Err(FieldError::new("amendment_reason", "give the reason for the amendment").into()),
        (None, Some(_)) => return Err(FieldError::new("amends", "name the decision this amends").into()),
        (None, None) => None,
    };
    let signed = app::sign(
        &state,
        &user,
        id,
        Signing {
            request: &request,
            reviewed_input_sha256: &body.input_sha256,
            amends,
            password: Some(&body.password),
            totp_code: body.totp_code.as_deref(),
        },
    )
    .await?;
    let decisions = kapstone_store::eligibility::decisions(&state.db, id).await.map_err(AppError::from)?;
    let d = decisions.iter().find(|d| d.id == signed).ok_or(AppError::NotFound)?;
    Ok((StatusCode::CREATED, Json(decision_json(d))))
}

/// `GET /api/v1/patients/{id}/eligibility/decisions`: every decision, the one in force first.
pub async fn decisions(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let rows = app::decisions(&state, &user, patient_id(&id)?).await?;
    Ok(Json(json!({ "items": rows.iter().map(decision_json).collect::<Vec<_>>() })))
}

/// `GET /api/v1/patients/{id}/pathway`: the stage and what is needed next.
pub async fn pathway(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = patient_id(&id)?;
    let p = crate::app::patients::read(&state, &user, id).await?;
    let (stage, next) = app::pathway_status(&state, &p, alerts(&user)).await?;
    let events = app::pathway_events(&state, id).await?;
    // The reason of a hold can be clinical ("awaiting the cardiology letter"): clinicians only.
    let clinical = user.may(kapstone_domain::Action::ReadClinicalRecord);
    Ok(Json(json!({
        "stage": stage.as_str(),
        "stage_label": stage.label(),
        "next": next,
        "events": events.iter().map(|e| json!({
            "id": e.id, "event": e.event, "reason": if clinical { Some(e.reason.clone()) } else { None },
            "recorded_by": e.recorded_by, "recorded_at": e.recorded_at.0,
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathwayBody {
    pub event: String,
    pub reason: String,
}

/// `POST /api/v1/patients/{id}/pathway/events`: hold, resume, withdraw, complete or reopen.
pub async fn change_pathway(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PathwayBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = patient_id(&id)?;
    app::change_pathway(&state, &user, id, &body.event, &body.reason).await?;
    let p = kapstone_store::patients::get(&state.db, user.clinic, id)
        .await
        .map_err(AppError::from)?
        .ok_or(AppError::NotFound)?;
    let (stage, next) = app::pathway_status(&state, &p, alerts(&user)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "stage": stage.as_str(), "stage_label": stage.label(), "next": next }))))
}
