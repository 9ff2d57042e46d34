//! Consultation, eligibility and the pathway stage (KAP-SPEC 2.1 stages 1–3, section 3).
//!
//! The consultation is saved as versions. The eligibility evaluation is always recomputed from
//! stored data; a prescriber signs what they reviewed, named by the SHA-256 of the inputs, so a
//! decision can never be signed against data that changed under them. A signed decision keeps
//! the rule-set version, the settings version and the full input snapshot.

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::consultation::{Consultation, ConsultationInput, InputError};
use kapstone_domain::decision::{self, DecisionRequest, Route, Verdict};
use kapstone_domain::eligibility::{Evaluation, Inputs, age_on};
use kapstone_domain::instruments::cssrs::Risk;
use kapstone_domain::pathway::{self, ConsultationGate, Facts, NextStep, PathwayEvent, SideState, Stage};
use kapstone_domain::patient::SexAtBirth;
use kapstone_domain::{FieldError, PatientId, UtcTs};
use kapstone_store::eligibility::{
    self as store, ConsultationRow, DecisionRow, NewDecision, PathwayEventRow, Reviewed,
};
use kapstone_store::patients::PatientRow;
use kapstone_store::{StoreError, audit, clinics, patients, questionnaires};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::guard::CurrentUser;
use crate::content;
use crate::error::AppError;
use crate::state::AppState;

fn invalid(e: InputError) -> AppError {
    AppError::InvalidItem { field: e.field, message: e.message }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, AppError> {
    serde_json::to_string(v).map_err(|e| AppError::Internal(e.into()))
}

/// Audits a staff read of one part of a patient's clinical record (shown in "who viewed my
/// record" like any chart read).
async fn audit_read(
    state: &AppState,
    user: &CurrentUser,
    patient: PatientId,
    part: &'static str,
) -> Result<(), AppError> {
    let mut e = user.event(AuditAction::PatientRead, part, Outcome::Success);
    e.entity_id = Some(patient.to_string());
    e.patient_id = Some(patient);
    state.read_audit.record(e).await?;
    Ok(())
}

async fn patient(state: &AppState, user: &CurrentUser, id: PatientId) -> Result<PatientRow, AppError> {
    patients::get(&state.db, user.clinic, id).await?.ok_or(AppError::NotFound)
}

/// Parses a stored consultation; stored rows passed the same checks when saved.
fn parse_stored(row: &ConsultationRow) -> Result<Consultation, AppError> {
    let input: ConsultationInput =
        serde_json::from_str(&row.body).map_err(|e| AppError::Internal(anyhow::anyhow!("stored consultation: {e}")))?;
    let table = content::diagnosis_table().map_err(AppError::Internal)?;
    input.parse_stored(table).map_err(|e| AppError::Internal(anyhow::anyhow!("stored consultation: {e}")))
}

/// The patient for an audited read; a refused one (unknown, or another clinic's) is audited as a
/// failure, like any access-control refusal.
async fn patient_for_read(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    part: &'static str,
) -> Result<PatientRow, AppError> {
    match patients::get(&state.db, user.clinic, id).await? {
        Some(p) => {
            audit_read(state, user, id, part).await?;
            Ok(p)
        }
        None => {
            let mut e = user.event(AuditAction::PatientRead, part, Outcome::Failure);
            e.entity_id = Some(id.to_string());
            state.read_audit.record(e).await?;
            Err(AppError::NotFound)
        }
    }
}

/// The current consultation, if any (audited read).
pub async fn consultation(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
) -> Result<(PatientRow, Option<(ConsultationRow, Consultation)>), AppError> {
    let p = patient_for_read(state, user, id, "consultation").await?;
    let current = match store::latest_consultation(&state.db, id).await? {
        Some(row) => {
            let c = parse_stored(&row)?;
            Some((row, c))
        }
        None => None,
    };
    Ok((p, current))
}

/// Saves a new version of the consultation; returns the version number.
pub async fn save_consultation(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    input: &ConsultationInput,
    base_version: Option<i32>,
) -> Result<i32, AppError> {
    Ok(save(state, user, id, input, base_version, false).await?.0.version)
}

/// [`save_consultation`], then the version now current, read back in the same transaction as an
/// audited read (as [`consultation`] reads it): the API answers with it, stored with the change
/// (issue 9).
pub async fn save_and_read_consultation(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    input: &ConsultationInput,
    base_version: Option<i32>,
) -> Result<(ConsultationRow, Consultation), AppError> {
    save(state, user, id, input, base_version, true).await
}

async fn save(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    input: &ConsultationInput,
    base_version: Option<i32>,
    read_back: bool,
) -> Result<(ConsultationRow, Consultation), AppError> {
    patient(state, user, id).await?;
    let table = content::diagnosis_table().map_err(AppError::Internal)?;
    let parsed = input.parse(table).map_err(invalid)?;
    let body = json(&parsed.to_input())?;
    let mut tx = state.db.begin().await?;
    let (row_id, version) =
        match store::save_consultation(&mut tx, user.clinic, id, base_version, &body, &table.version, user.id).await {
            Ok(v) => v,
            Err(StoreError::Conflict(_)) => {
                return Err(AppError::Conflict {
                    field: "base_version",
                    message: "someone saved this consultation after you opened it; reload and make your changes again"
                        .into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
    let mut e = user.event(AuditAction::ConsultationRecorded, "consultation", Outcome::Success);
    e.entity_id = Some(row_id.to_string());
    e.patient_id = Some(id);
    e.reason = Some(format!("version {version}"));
    audit::append(&mut tx, &e).await?;
    let row = store::latest_consultation_in(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let consultation = parse_stored(&row)?;
    if read_back {
        let mut e = user.event(AuditAction::PatientRead, "consultation", Outcome::Success);
        e.entity_id = Some(id.to_string());
        e.patient_id = Some(id);
        audit::append(&mut tx, &e).await?;
    }
    let current = (row, consultation);
    tx.commit_answering(&current).await?;
    Ok(current)
}

/// Today's date where the clinic is (age rules count birthdays on the clinic's calendar).
async fn clinic_today(state: &AppState, clinic: kapstone_domain::ClinicId) -> Result<time::Date, AppError> {
    today_in(clinics::time_zone(&state.db, clinic).await?.as_deref())
}

/// Today's date in the clinic's time zone (UTC when it has none or an unknown one).
pub(crate) fn today_in(zone: Option<&str>) -> Result<time::Date, AppError> {
    let tz = jiff::tz::TimeZone::get(zone.unwrap_or("UTC")).unwrap_or(jiff::tz::TimeZone::UTC);
    let d = jiff::Timestamp::now().to_zoned(tz).date();
    let month = time::Month::try_from(u8::try_from(d.month()).unwrap_or(1)).unwrap_or(time::Month::January);
    time::Date::from_calendar_date(i32::from(d.year()), month, u8::try_from(d.day()).unwrap_or(1))
        .map_err(|e| AppError::Internal(e.into()))
}

/// What the Spravato indications read from the consultation.
fn decision_context(c: Option<&Consultation>) -> decision::DecisionContext {
    decision::DecisionContext {
        mdd_diagnosed: c
            .is_some_and(|c| c.diagnoses.iter().any(|d| d.code.starts_with("F32") || d.code.starts_with("F33"))),
        on_antidepressant: c.is_some_and(|c| {
            c.medications.iter().any(|m| m.drug_class == kapstone_domain::consultation::DrugClass::Antidepressant)
        }),
    }
}

/// Whether an eligible decision still passes the decision gate on the current record; `Some`
/// says why not (a new exclude finding, missing data, a review finding without disposition).
pub fn decision_no_longer_holds(a: &Assessment, d: &DecisionRow) -> Option<String> {
    if d.verdict != "eligible" {
        return None;
    }
    let request = DecisionRequest {
        verdict: Verdict::Eligible,
        routes: serde_json::from_str(&d.routes).unwrap_or_default(),
        spravato_indication: match d.spravato_indication.as_deref() {
            Some("trd") => Some(decision::SpravatoIndication::Trd),
            Some(_) => Some(decision::SpravatoIndication::MddWithAcuteSuicidalIdeation),
            None => None,
        },
        dispositions: serde_json::from_str(&d.dispositions).unwrap_or_default(),
        summary: d.summary.clone(),
    };
    decision::check(&a.evaluation, &decision_context(a.consultation.as_ref().map(|(_, c)| c)), &request)
        .err()
        .map(|e| e.message)
}

fn parse_risk(s: &str) -> Option<Risk> {
    [Risk::None, Risk::Low, Risk::Moderate, Risk::High].into_iter().find(|r| r.as_str() == s)
}

/// Everything the rules read, evaluated, with the hash of the inputs.
pub struct Assessment {
    pub evaluation: Evaluation,
    pub input_sha256: String,
    pub snapshot: String,
    pub settings_version: i64,
    pub consultation: Option<(ConsultationRow, Consultation)>,
    /// The C-SSRS screener response the rules read.
    pub cssrs_response: Option<Uuid>,
    /// Instruments with at least one scored response.
    pub instruments_done: Vec<String>,
}

/// Evaluates without auditing a read: for callers that audited already (or seed demo data).
pub(crate) async fn assess(state: &AppState, p: &PatientRow) -> Result<Assessment, AppError> {
    let id = p.patient_id();
    let settings = clinics::current_settings(&state.db, p.clinic()).await?;
    let consultation = store::latest_consultation(&state.db, id).await?;
    let latest = questionnaires::latest_per_instrument(&state.db, id).await?;
    let today = clinic_today(state, p.clinic()).await?;
    assess_from(p, &AssessInputs { settings: &settings, consultation: consultation.as_ref(), latest, today })
}

/// What the evaluation of one patient reads, loaded by the caller.
pub(crate) struct AssessInputs<'a> {
    pub settings: &'a clinics::ClinicSettings,
    /// The latest consultation version (`store::latest_consultation`).
    pub consultation: Option<&'a ConsultationRow>,
    /// The newest response of each instrument (`questionnaires::latest_per_instrument`).
    pub latest: Vec<questionnaires::ResponseSummary>,
    /// Today in the clinic's time zone.
    pub today: time::Date,
}

/// [`assess`] on inputs already read.
pub(crate) fn assess_from(p: &PatientRow, i: &AssessInputs<'_>) -> Result<Assessment, AppError> {
    let settings = i.settings;
    let today = i.today;
    let consultation = match i.consultation {
        Some(row) => {
            let c = parse_stored(row)?;
            Some((row.clone(), c))
        }
        None => None,
    };
    let latest = &i.latest;
    let cssrs = latest.iter().find(|r| r.instrument == "cssrs_screener");
    let cssrs_risk = cssrs.and_then(|r| {
        let v: serde_json::Value = serde_json::from_str(&r.result).ok()?;
        parse_risk(v["risk"].as_str()?)
    });
    let sex = SexAtBirth::parse(&p.sex_at_birth).unwrap_or(SexAtBirth::Unknown);
    let rules = content::eligibility_rules().map_err(AppError::Internal)?;
    let evaluation = rules.evaluate(&Inputs {
        birth_date: p.birth_date,
        today,
        sex_at_birth: sex,
        consultation: consultation.as_ref().map(|(_, c)| c),
        cssrs_risk,
        settings: settings.eligibility,
    });
    // The snapshot holds every input by value (age rather than today's date, so an unchanged
    // record keeps its hash from one day to the next).
    // The settings' version is recorded with a decision but not hashed: an unrelated settings
    // change (MFA roles, consent validity) does not make every signed decision look stale.
    let snapshot = serde_json::json!({
        "ruleset_version": rules.version,
        "settings": settings.eligibility,
        "patient": {
            "birth_date": p.birth_date.to_string(),
            "age_years": age_on(p.birth_date, today),
            "sex_at_birth": sex.as_str(),
        },
        "consultation": consultation.as_ref().map(|(row, c)| serde_json::json!({
            "version": row.version,
            "diagnosis_table_version": row.diagnosis_table_version,
            "data": c.to_input(),
        })),
        "cssrs_screener": cssrs.map(|r| serde_json::json!({"response_id": r.id, "risk": cssrs_risk.map(Risk::as_str)})),
    });
    let snapshot = json(&snapshot)?;
    let input_sha256 = hex::encode(Sha256::digest(snapshot.as_bytes()));
    Ok(Assessment {
        evaluation,
        input_sha256,
        snapshot,
        settings_version: settings.version,
        cssrs_response: cssrs.map(|r| r.id),
        consultation,
        instruments_done: latest.iter().map(|r| r.instrument.clone()).collect(),
    })
}

/// The eligibility evaluation of one patient (audited read).
pub async fn eligibility(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
) -> Result<(PatientRow, Assessment), AppError> {
    let p = patient_for_read(state, user, id, "eligibility").await?;
    let a = assess(state, &p).await?;
    Ok((p, a))
}

/// What the prescriber signs: the decision, the hash of the inputs they reviewed, and for an
/// amendment the decision it replaces with the reason.
pub struct Signing<'a> {
    pub request: &'a DecisionRequest,
    pub reviewed_input_sha256: &'a str,
    pub amends: Option<(Uuid, &'a str)>,
    /// The signer's password, re-entered to sign (see `app::reauth`): without it, the session
    /// must have re-authenticated within the last minutes.
    pub password: Option<&'a str>,
    /// The second-factor code with the password, when the account has one enrolled.
    pub totp_code: Option<&'a str>,
}

/// Signs (or amends) the eligibility decision; returns its id.
pub async fn sign(state: &AppState, user: &CurrentUser, id: PatientId, s: Signing<'_>) -> Result<Uuid, AppError> {
    Ok(sign_and_read(state, user, id, s).await?.id)
}

/// [`sign`], with the decision as stored, read back in the signing's transaction: the API answers
/// with it, stored with the signature (issue 9).
pub async fn sign_and_read(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    s: Signing<'_>,
) -> Result<DecisionRow, AppError> {
    let p = patient(state, user, id).await?;
    let a = assess(state, &p).await?;
    if s.reviewed_input_sha256 != a.input_sha256 {
        return Err(AppError::Conflict {
            field: "input_sha256",
            message: "the record changed since these findings were shown; review the findings again before signing"
                .into(),
        });
    }
    let context = decision_context(a.consultation.as_ref().map(|(_, c)| c));
    let checked = decision::check(&a.evaluation, &context, s.request).map_err(invalid)?;
    crate::app::reauth::require(state, user, s.password, s.totp_code).await?;
    let amends = match s.amends {
        Some((prev, reason)) => {
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > 4000 {
                return Err(FieldError::new("amendment_reason", "give the reason for the amendment").into());
            }
            Some((prev, reason))
        }
        None => None,
    };
    let verdict = match checked.verdict {
        Verdict::Eligible => "eligible",
        Verdict::NotEligible => "not_eligible",
    };
    let routes = json(&checked.routes)?;
    let dispositions = json(&checked.dispositions)?;
    let findings = json(&a.evaluation.findings)?;
    let indication = checked.spravato_indication.map(|i| match i {
        decision::SpravatoIndication::Trd => "trd",
        decision::SpravatoIndication::MddWithAcuteSuicidalIdeation => "mdd_with_acute_suicidal_ideation",
    });
    let mut tx = state.db.begin().await?;
    let new = NewDecision {
        clinic: user.clinic,
        patient: id,
        verdict,
        routes: &routes,
        spravato_indication: indication,
        dispositions: &dispositions,
        summary: &checked.summary,
        ruleset_version: &a.evaluation.ruleset_version,
        settings_version: a.settings_version,
        outcome: a.evaluation.outcome.as_str(),
        findings: &findings,
        input_snapshot: &a.snapshot,
        input_sha256: &a.input_sha256,
        signed_by: user.id,
        amends,
        reviewed: Reviewed {
            consultation_version: a.consultation.as_ref().map(|(row, _)| row.version),
            cssrs_response: a.cssrs_response,
        },
    };
    let decision_id = match store::sign_decision(&mut tx, &new).await {
        Ok(d) => d,
        // The record changed between the evaluation above and the write lock.
        Err(StoreError::Conflict("input_sha256")) => {
            return Err(AppError::Conflict {
                field: "input_sha256",
                message: "the record changed while you were signing; review the findings again before signing".into(),
            });
        }
        Err(StoreError::Conflict(_)) => {
            let message = if amends.is_some() {
                "this decision is no longer the one in force (it was amended meanwhile); reload and amend the current one"
            } else {
                "a decision is already signed for this patient; amend it instead"
            };
            return Err(AppError::Conflict { field: "amends", message: message.into() });
        }
        Err(e) => return Err(e.into()),
    };
    let action =
        if amends.is_some() { AuditAction::EligibilityDecisionAmended } else { AuditAction::EligibilityDecisionSigned };
    let mut e = user.event(action, "eligibility_decision", Outcome::Success);
    e.entity_id = Some(decision_id.to_string());
    e.patient_id = Some(id);
    let route_list = checked.routes.iter().map(|r| r.route.as_str()).collect::<Vec<_>>().join(",");
    e.reason = Some(format!(
        "{verdict} routes=[{route_list}] outcome={} ruleset={} settings=v{}{}",
        a.evaluation.outcome.as_str(),
        a.evaluation.ruleset_version,
        a.settings_version,
        amends.map(|(prev, _)| format!(" amends={prev}")).unwrap_or_default()
    ));
    audit::append(&mut tx, &e).await?;
    let signed = store::decision_in(&mut tx, id, decision_id).await?.ok_or(AppError::NotFound)?;
    tx.commit_answering(&signed).await?;
    Ok(signed)
}

/// Every decision for a patient, newest (in force) first (audited read).
pub async fn decisions(state: &AppState, user: &CurrentUser, id: PatientId) -> Result<Vec<DecisionRow>, AppError> {
    patient_for_read(state, user, id, "eligibility_decision").await?;
    Ok(store::decisions(&state.db, id).await?)
}

/// The routes a stored decision allows.
pub fn allowed_routes(d: &DecisionRow) -> Vec<Route> {
    serde_json::from_str::<Vec<decision::RouteChoice>>(&d.routes)
        .map(|v| v.into_iter().map(|c| c.route).collect())
        .unwrap_or_default()
}

pub(crate) fn side_state(events: &[String]) -> Option<SideState> {
    events.iter().filter_map(|e| PathwayEvent::parse(e)).fold(None, |s, e| pathway::apply(s, e).unwrap_or(s))
}

/// The consultation exit gate (KAP-SPEC 2.1 stage 2) from a stored consultation.
fn gate(stored: Option<&ConsultationInput>, male: bool, done: &[&str]) -> ConsultationGate {
    let Some(c) = stored else {
        return ConsultationGate {
            pregnancy_captured: male,
            phq9: done.contains(&"phq9"),
            gad7: done.contains(&"gad7"),
            cssrs: done.contains(&"cssrs_screener"),
            ..ConsultationGate::default()
        };
    };
    let v = &c.vitals;
    ConsultationGate {
        recorded: true,
        history_complete: c.mental_health_history.is_some()
            && c.current_symptoms.is_some()
            && c.treatment_goals.is_some(),
        vitals_complete: [
            v.systolic_mmhg,
            v.diastolic_mmhg,
            v.heart_rate_bpm,
            v.spo2_percent,
            v.weight_kg,
            v.height_cm,
        ]
        .iter()
        .all(Option::is_some),
        medications_reconciled: c.medications_reconciled,
        pregnancy_captured: c.pregnancy_status.is_some() || male,
        phq9: done.contains(&"phq9"),
        gad7: done.contains(&"gad7"),
        cssrs: done.contains(&"cssrs_screener"),
    }
}

/// The pathway facts of a page of patients: a fixed number of queries, plus a full evaluation
/// for each patient who has an eligible decision (re-checked against today's record) or none yet
/// (to say whether data is missing).
async fn facts_for(
    state: &AppState,
    clinic: kapstone_domain::ClinicId,
    rows: &[PatientRow],
    with_alerts: bool,
) -> Result<Vec<Facts>, AppError> {
    let ids: Vec<Uuid> = rows.iter().map(|p| p.id).collect();
    let inputs = store::pathway_inputs(&state.db, &ids).await?;
    let done = questionnaires::instruments_done(&state.db, &ids).await?;
    let consents = kapstone_store::consents::latest_many(&state.db, &ids).await?;
    let settings = clinics::current_settings(&state.db, clinic).await?;
    let alerts = if with_alerts { questionnaires::open_alerts(&state.db, clinic).await? } else { Vec::new() };
    let rems = kapstone_store::scheduling::rems_enrolled_among(&state.db, &ids).await?;
    let data = FactsData { inputs, done, consents, settings: &settings, alerts, rems };
    let mut out = Vec::with_capacity(rows.len());
    for p in rows {
        out.push(facts_of(state, p, &data, None).await?);
    }
    Ok(out)
}

/// What the pathway facts of some patients are computed from (rows of those patients only).
pub(crate) struct FactsData<'a> {
    pub inputs: store::PathwayInputs,
    /// (patient, instrument) with at least one response.
    pub done: Vec<(Uuid, String)>,
    /// (patient, document, signed at, revoked) of the latest signature of each document.
    pub consents: Vec<(Uuid, String, kapstone_store::DbTs, bool)>,
    pub settings: &'a clinics::ClinicSettings,
    /// Open safety alerts (empty when the viewer may not know of them).
    pub alerts: Vec<questionnaires::AlertRow>,
    /// The patients with a REMS enrolment.
    pub rems: Vec<Uuid>,
}

/// The pathway facts of one patient from `d`; the evaluation, when one is needed, from `pre` when
/// the caller read its inputs already, else read here.
pub(crate) async fn facts_of(
    state: &AppState,
    p: &PatientRow,
    d: &FactsData<'_>,
    pre: Option<&AssessInputs<'_>>,
) -> Result<Facts, AppError> {
    let FactsData { inputs, done, consents, settings, alerts, rems } = d;
    let validity = time::Duration::days(30 * i64::from(settings.consent_validity_months));
    let now = UtcTs::now();
    let stored = match inputs.consultations.iter().find(|(id, _)| *id == p.id) {
        Some((_, body)) => Some(
            serde_json::from_str::<ConsultationInput>(body)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("stored consultation: {e}")))?,
        ),
        None => None,
    };
    let instruments: Vec<&str> = done.iter().filter(|(id, _)| *id == p.id).map(|(_, i)| i.as_str()).collect();
    let events: Vec<String> = inputs.events.iter().filter(|(id, _)| *id == p.id).map(|(_, e)| e.clone()).collect();
    let decision = inputs.decisions.iter().find(|d| d.0 == p.id);
    let consent_valid = |doc: &str| {
        let latest = consents.iter().find(|c| c.0 == p.id && c.1 == doc).map(|c| (c.2.0, c.3));
        kapstone_domain::consent::ConsentStatus::of(latest, validity, now).is_valid()
    };
    let routes: Vec<Route> = decision
        .and_then(|d| serde_json::from_str::<Vec<decision::RouteChoice>>(&d.2).ok())
        .map(|v| v.into_iter().map(|c| c.route).collect())
        .unwrap_or_default();
    // An eligible decision is re-checked against today's record (a full evaluation, so only
    // for the patients who have one).
    let gate = gate(stored.as_ref(), p.sex_at_birth == "male", &instruments);
    let (mut inputs_changed, mut no_longer_holds, mut missing_data) = (false, None, false);
    if decision.is_some_and(|d| d.1 == "eligible") || (decision.is_none() && gate.passed()) {
        let a = match pre {
            Some(i) => assess_from(p, i)?,
            None => assess(state, p).await?,
        };
        missing_data = a
            .evaluation
            .findings
            .iter()
            .any(|f| f.severity == kapstone_domain::eligibility::FindingSeverity::MissingData);
        if let Some(d) = decision {
            inputs_changed = d.3 != a.input_sha256;
            if inputs_changed && let Some(row) = store::decisions(&state.db, p.patient_id()).await?.into_iter().next() {
                no_longer_holds = decision_no_longer_holds(&a, &row);
            }
        }
    }
    Ok(Facts {
        side_state: side_state(&events),
        open_safety_alert: alerts.iter().any(|a| a.patient_id == p.id),
        consultation: gate,
        decision_eligible: decision.map(|d| d.1 == "eligible"),
        decision_inputs_changed: inputs_changed,
        missing_data,
        decision_allows_spravato: routes.contains(&Route::SpravatoIntranasal),
        decision_no_longer_holds: no_longer_holds,
        general_consent_valid: consent_valid("kap-general"),
        spravato_acknowledgement_valid: consent_valid("spravato-rems"),
        rems_enrolled: rems.contains(&p.id),
    })
}

/// The stage of each patient of a page (same order).
pub async fn stages(state: &AppState, user: &CurrentUser, rows: &[PatientRow]) -> Result<Vec<Stage>, AppError> {
    let facts = facts_for(state, user.clinic, rows, false).await?;
    Ok(facts.iter().map(|f| pathway::assess(f).0).collect())
}

/// Where the patient is on the pathway and what is due next. Reads only what the chart that
/// calls it has already audited. `with_alerts`: whether the viewer may know of safety alerts.
pub async fn pathway_status(
    state: &AppState,
    p: &PatientRow,
    with_alerts: bool,
) -> Result<(Stage, Vec<NextStep>), AppError> {
    let facts = facts_for(state, p.clinic(), std::slice::from_ref(p), with_alerts)
        .await?
        .pop()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no pathway facts")))?;
    Ok(pathway::assess(&facts))
}

/// The recorded pathway events (hold, resume, ...), oldest first.
pub async fn pathway_events(state: &AppState, id: PatientId) -> Result<Vec<PathwayEventRow>, AppError> {
    Ok(store::pathway_events(&state.db, id).await?)
}

/// Puts the pathway on hold, resumes, withdraws, completes or reopens it.
pub async fn change_pathway(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    event: &str,
    reason: &str,
) -> Result<(), AppError> {
    patient(state, user, id).await?;
    record_pathway_change(state, user, id, event, reason, |_| Ok(())).await
}

/// [`change_pathway`], answered with the stage and what is due next after the change (as
/// [`pathway_status`] tells them): the facts are read before the change, which alters only the
/// pathway's side state, and that is taken from the events in the change's transaction. The
/// answer is so known before the commit and stored with the change (issue 9).
pub async fn change_pathway_and_assess(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    event: &str,
    reason: &str,
    with_alerts: bool,
) -> Result<(Stage, Vec<NextStep>), AppError> {
    let p = patient(state, user, id).await?;
    let mut facts = facts_for(state, p.clinic(), std::slice::from_ref(&p), with_alerts)
        .await?
        .pop()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no pathway facts")))?;
    record_pathway_change(state, user, id, event, reason, move |events| {
        facts.side_state = side_state(events);
        Ok(pathway::assess(&facts))
    })
    .await
}

/// Records the pathway change; `answer` is given the patient's events with this one (in the
/// change's transaction) and its result is committed with the change.
async fn record_pathway_change<T: 'static>(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    event: &str,
    reason: &str,
    answer: impl FnOnce(&[String]) -> Result<T, AppError>,
) -> Result<T, AppError> {
    let event = PathwayEvent::parse(event)
        .ok_or_else(|| FieldError::new("event", "choose hold, resume, withdraw, complete or reopen"))?;
    let reason = kapstone_domain::patient::optional_text("reason", Some(reason), 2000)?
        .ok_or_else(|| FieldError::new("reason", "give a reason"))?;
    let mut tx = state.db.begin().await?;
    let mut events = store::pathway_events_in(&mut tx, id).await?;
    pathway::apply(side_state(&events), event).map_err(|m| FieldError::new("event", m))?;
    let row = store::record_pathway_event(&mut tx, user.clinic, id, event.as_str(), &reason, user.id).await?;
    let mut e = user.event(AuditAction::PathwayChanged, "pathway_event", Outcome::Success);
    e.entity_id = Some(row.to_string());
    e.patient_id = Some(id);
    e.reason = Some(event.as_str().to_owned());
    audit::append(&mut tx, &e).await?;
    events.push(event.as_str().to_owned());
    let out = answer(&events)?;
    tx.commit_answering(&out).await?;
    Ok(out)
}
