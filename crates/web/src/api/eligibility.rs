//! Consultation, eligibility rules, findings, decisions and the pathway over JSON.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use kapstone_domain::FieldError;
use kapstone_domain::consultation::ConsultationInput;
use kapstone_domain::decision::{DecisionRequest, Disposition, RouteChoice, SpravatoIndication, Verdict};
use kapstone_store::eligibility::{ConsultationRow, DecisionRow};
use serde_json::Value;

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
    let rules: Vec<RuleView> = set
        .rules
        .iter()
        .map(|r| RuleView {
            id: &r.id,
            condition: &r.condition,
            scope: r.scope,
            severity: r.headline_severity(),
            cases: &r.cases,
            reads: &r.reads,
            params: &r.params,
            rationale: &r.rationale,
            source: &r.source,
        })
        .collect();
    Ok(Json(to_json(&RuleSetView { version: &set.version, source: &set.source, rules })))
}

fn to_json(v: &impl serde::Serialize) -> Value {
    super::page::item(v)
}

/// The eligibility rule set in force.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "RuleSet")]
pub struct RuleSetView<'a> {
    pub version: &'a str,
    pub source: &'a str,
    pub rules: Vec<RuleView<'a>>,
}

/// One rule, with the most severe of its cases as its headline.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct RuleView<'a> {
    pub id: &'a str,
    pub condition: &'a str,
    pub scope: kapstone_domain::eligibility::Scope,
    pub severity: kapstone_domain::eligibility::Severity,
    /// Case name to severity.
    pub cases: &'a std::collections::BTreeMap<String, kapstone_domain::eligibility::Severity>,
    pub reads: &'a [String],
    pub params: &'a std::collections::BTreeMap<String, f64>,
    pub rationale: &'a str,
    pub source: &'a str,
}

/// `GET /api/v1/codes/icd10cm`: the shipped ICD-10-CM table.
pub async fn diagnosis_codes(_user: CurrentUser) -> ApiResult<Json<Value>> {
    let table = content::diagnosis_table().map_err(AppError::Internal)?;
    Ok(Json(to_json(&CodeTable { version: &table.version, codes: &table.codes })))
}

/// The shipped ICD-10-CM code table.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct CodeTable<'a> {
    pub version: &'a str,
    pub codes: &'a [kapstone_domain::consultation::DiagnosisCode],
}

/// A saved version of the consultation.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "ConsultationVersion")]
pub struct ConsultationVersion {
    pub version: i32,
    pub recorded_at: kapstone_domain::UtcTs,
    pub recorded_by: uuid::Uuid,
    pub diagnosis_table_version: String,
    pub diagnoses: Vec<kapstone_domain::consultation::DiagnosisCode>,
    pub data: ConsultationInput,
}

fn consultation_json(row: &ConsultationRow, c: &kapstone_domain::consultation::Consultation) -> Value {
    to_json(&ConsultationVersion {
        version: row.version,
        recorded_at: row.recorded_at.0,
        recorded_by: row.recorded_by,
        diagnosis_table_version: row.diagnosis_table_version.clone(),
        diagnoses: c.diagnoses.clone(),
        data: c.to_input(),
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
    let base = base_version(&headers)?;
    // The version now current is read back (audited) in the save's transaction, and the answer
    // stored with it.
    super::idempotency::answered_ok(
        |(row, c): &(ConsultationRow, kapstone_domain::consultation::Consultation)| Ok(consultation_json(row, c)),
        app::save_and_read_consultation(&state, &user, id, &input, base),
    )
    .await
}

/// A signed eligibility decision (or amendment). The lists are stored as the JSON of their types.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Decision")]
pub struct DecisionView {
    pub id: uuid::Uuid,
    #[schemars(with = "Verdict")]
    pub verdict: String,
    #[schemars(with = "Vec<RouteChoice>")]
    pub routes: Value,
    #[schemars(with = "Option<SpravatoIndication>")]
    pub spravato_indication: Option<String>,
    #[schemars(with = "Vec<Disposition>")]
    pub dispositions: Value,
    pub summary: String,
    pub ruleset_version: String,
    pub settings_version: i64,
    #[schemars(with = "kapstone_domain::eligibility::Outcome")]
    pub outcome: String,
    #[schemars(with = "Vec<kapstone_domain::eligibility::Finding>")]
    pub findings: Value,
    pub input_sha256: String,
    pub signed_by: uuid::Uuid,
    pub signed_at: kapstone_domain::UtcTs,
    pub amends: Option<uuid::Uuid>,
    pub amendment_reason: Option<String>,
}

fn decision_view(d: &DecisionRow) -> DecisionView {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    DecisionView {
        id: d.id,
        verdict: d.verdict.clone(),
        routes: parse(&d.routes),
        spravato_indication: d.spravato_indication.clone(),
        dispositions: parse(&d.dispositions),
        summary: d.summary.clone(),
        ruleset_version: d.ruleset_version.clone(),
        settings_version: d.settings_version,
        outcome: d.outcome.clone(),
        findings: parse(&d.findings),
        input_sha256: d.input_sha256.clone(),
        signed_by: d.signed_by,
        signed_at: d.signed_at.0,
        amends: d.amends_id,
        amendment_reason: d.amendment_reason.clone(),
    }
}

fn decision_json(d: &DecisionRow) -> Value {
    to_json(&decision_view(d))
}

/// The evaluation of the current record, with the decision in force.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Eligibility")]
pub struct EligibilityView<'a> {
    pub ruleset_version: &'a str,
    pub settings_version: i64,
    pub outcome: kapstone_domain::eligibility::Outcome,
    pub outcome_by_product: ByProduct,
    pub findings: &'a [kapstone_domain::eligibility::Finding],
    pub input_sha256: &'a str,
    pub consultation_version: Option<i32>,
    pub decision: Option<DecisionView>,
}

/// The outcome for each product.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ByProduct {
    pub esketamine: kapstone_domain::eligibility::Outcome,
    pub racemic: kapstone_domain::eligibility::Outcome,
}

/// The pathway stage and what is needed next (and, when read, its events).
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Pathway")]
pub struct PathwayView {
    pub stage: kapstone_domain::pathway::Stage,
    pub stage_label: String,
    pub next: Vec<kapstone_domain::pathway::NextStep>,
    /// On a read, not on a change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<PathwayEventView>>,
}

/// A hold, resume, withdrawal, completion or reopening.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct PathwayEventView {
    pub id: uuid::Uuid,
    #[schemars(with = "kapstone_domain::pathway::PathwayEvent")]
    pub event: String,
    /// Clinicians only (a hold's reason can be clinical).
    pub reason: Option<String>,
    pub recorded_by: uuid::Uuid,
    pub recorded_at: kapstone_domain::UtcTs,
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
    Ok(Json(to_json(&EligibilityView {
        ruleset_version: &e.ruleset_version,
        settings_version: a.settings_version,
        outcome: e.outcome,
        outcome_by_product: ByProduct { esketamine: e.esketamine, racemic: e.racemic },
        findings: &e.findings,
        input_sha256: &a.input_sha256,
        consultation_version: a.consultation.as_ref().map(|(row, _)| row.version),
        decision: decisions.first().map(decision_view),
    })))
}

/// What a prescriber posts to sign or amend a decision.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
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
    // The decision as stored is read back in the signing's transaction, and the answer stored
    // with it.
    super::idempotency::answered(
        |d: &DecisionRow| Ok((StatusCode::CREATED, decision_json(d))),
        app::sign_and_read(
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
        ),
    )
    .await
}

/// `GET /api/v1/patients/{id}/eligibility/decisions`: every decision, the one in force first.
pub async fn decisions(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let rows = app::decisions(&state, &user, patient_id(&id)?).await?;
    Ok(Json(to_json(&super::scheduling::Items { items: rows.iter().map(decision_view).collect() })))
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
    let events = events
        .iter()
        .map(|e| PathwayEventView {
            id: e.id,
            event: e.event.clone(),
            reason: if clinical { Some(e.reason.clone()) } else { None },
            recorded_by: e.recorded_by,
            recorded_at: e.recorded_at.0,
        })
        .collect();
    Ok(Json(to_json(&PathwayView { stage, stage_label: stage.label().to_owned(), next, events: Some(events) })))
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
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
    super::idempotency::answered(
        |(stage, next): &(kapstone_domain::pathway::Stage, Vec<kapstone_domain::pathway::NextStep>)| {
            let view =
                PathwayView { stage: *stage, stage_label: stage.label().to_owned(), next: next.clone(), events: None };
            Ok((StatusCode::CREATED, to_json(&view)))
        },
        app::change_pathway_and_assess(&state, &user, id, &body.event, &body.reason, alerts(&user)),
    )
    .await
}
