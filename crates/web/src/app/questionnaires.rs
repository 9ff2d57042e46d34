//! Questionnaires: scoring a submission (domain), storing it with its audit event, and raising a
//! safety alert when an answer signals suicide risk (spec 7.1, 7.4; GATE-01).

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::instruments::{Flag, Instrument, ItemError, cssrs, gad7, pcl5, phq9};
use kapstone_domain::webhook::Event;
use kapstone_domain::{FieldError, PatientId};
use kapstone_store::keyset::{self, ListFilter, Page, TimeKey};
use kapstone_store::questionnaires::{self, NewResponse};
use kapstone_store::{audit, patients};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::guard::CurrentUser;
use crate::content;
use crate::error::AppError;
use crate::state::AppState;

/// What a person typed: the instrument and its answers in item order.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// Read as a name so that an unknown one is refused naming `instrument`.
    #[schemars(with = "Instrument")]
    pub instrument: String,
    /// In item order: whole numbers, or for the C-SSRS screener true/false with null for the items
    /// its skip logic leaves out (q1..q6, q6a).
    pub answers: Vec<Value>,
}

/// A scored, stored response.
#[derive(Debug, Clone)]
pub struct Scored {
    pub id: Uuid,
    pub result: ScoredResponse,
    pub alert: Option<(Uuid, AlertLevel)>,
}

/// How urgently a safety alert needs a clinician (spec 7.1, 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// PHQ-9 item 9: same-visit review and a C-SSRS screen.
    Review,
    Moderate,
    High,
}

impl AlertLevel {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Review => "review",
            AlertLevel::Moderate => "moderate",
            AlertLevel::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [AlertLevel::Review, AlertLevel::Moderate, AlertLevel::High].into_iter().find(|l| l.as_str() == s)
    }
}

/// The score of a response as stored with it (`result`) and, with [`ScoredView`]'s additions,
/// as the API answers.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ScoredResponse {
    pub instrument: Instrument,
    pub instrument_version: String,
    /// The clinic settings version the score used (CONFIG-DEFAULT values such as the PCL-5 cut-point).
    pub settings_version: i64,
    /// None for the C-SSRS screener, which has a risk level instead.
    pub total: Option<u8>,
    /// PHQ-9 and GAD-7 bands (the GAD-7 has no `moderately_severe`); none for the PCL-5 and C-SSRS.
    #[schemars(with = "Option<phq9::Severity>")]
    pub severity: Option<&'static str>,
    pub flags: Vec<Flag>,
    #[serde(flatten)]
    pub detail: Option<Detail>,
}

/// What an instrument reports beyond its total.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Detail {
    /// PCL-5: cluster sums and both provisional-diagnosis methods (spec 7.3).
    Pcl5 {
        clusters: pcl5::Clusters,
        endorsed: pcl5::Clusters,
        provisional_dsm5: bool,
        provisional_cutoff: bool,
        cutoff: u8,
    },
    /// C-SSRS screener: the risk level (spec 7.4).
    Cssrs { risk: cssrs::Risk },
}

/// The API's answer to a submitted questionnaire.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ScoredView {
    pub id: Uuid,
    #[serde(flatten)]
    pub result: ScoredResponse,
    /// The alert this response raised, if any.
    pub safety_alert: Option<RaisedAlert>,
    /// Shown to a patient whose own answers raised an alert (portal only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crisis_resources: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
pub struct RaisedAlert {
    pub id: Uuid,
    pub level: AlertLevel,
}

impl Scored {
    /// As the API answers it; `crisis` adds the crisis resources when an alert was raised.
    pub fn view(&self, crisis: bool) -> ScoredView {
        ScoredView {
            id: self.id,
            result: self.result.clone(),
            safety_alert: self.alert.map(|(id, level)| RaisedAlert { id, level }),
            crisis_resources: (crisis && self.alert.is_some()).then_some(CRISIS_RESOURCES),
        }
    }
}

fn item_error(e: ItemError) -> AppError {
    AppError::InvalidItem { field: format!("answers[{}]", e.index), message: format!("item {}: {}", e.item, e.message) }
}

fn integers(answers: &[Value]) -> Result<Vec<Option<i64>>, AppError> {
    answers
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Null => Ok(None),
            Value::Number(n) if n.as_i64().is_some() => Ok(n.as_i64()),
            _ => Err(item_error(ItemError::new(i, (i + 1).to_string(), "answer with a whole number"))),
        })
        .collect()
}

fn booleans(answers: &[Value]) -> Result<Vec<Option<bool>>, AppError> {
    answers
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            _ => {
                let label = cssrs::QUESTIONS.get(i).copied().unwrap_or("?");
                Err(item_error(ItemError::new(i, label, "answer true (yes), false (no) or null (not asked)")))
            }
        })
        .collect()
}

/// Scores the answers; returns (total, severity, flags, further results, alert level+reason).
type Outcome3 = (Option<u8>, Option<&'static str>, Vec<Flag>, Option<Detail>, Option<(AlertLevel, &'static str)>);

fn score(instrument: Instrument, answers: &[Value], pcl5_cutoff: u8) -> Result<Outcome3, AppError> {
    Ok(match instrument {
        Instrument::Phq9 => {
            let s = phq9::score(&integers(answers)?).map_err(item_error)?;
            let alert = s.flags.contains(&Flag::SuicideRisk).then_some((
                AlertLevel::Review,
                "PHQ-9 item 9 answered 1 or more: same-visit clinician review and a C-SSRS screen",
            ));
            (Some(s.total), Some(s.severity.as_str()), s.flags, None, alert)
        }
        Instrument::Gad7 => {
            let s = gad7::score(&integers(answers)?).map_err(item_error)?;
            (Some(s.total), Some(s.severity.as_str()), Vec::new(), None, None)
        }
        Instrument::Pcl5 => {
            let s = pcl5::score(&integers(answers)?, pcl5_cutoff).map_err(item_error)?;
            let detail = Detail::Pcl5 {
                clusters: s.clusters,
                endorsed: s.endorsed,
                provisional_dsm5: s.provisional_dsm5,
                provisional_cutoff: s.provisional_cutoff,
                cutoff: s.cutoff,
            };
            (Some(s.total), None, Vec::new(), Some(detail), None)
        }
        Instrument::CssrsScreener => {
            let s = cssrs::score(&booleans(answers)?).map_err(item_error)?;
            let alert = match s.risk {
                cssrs::Risk::High => Some((
                    AlertLevel::High,
                    "C-SSRS screener: high risk (KAP-SPEC 7.4). GATE-01: no routine outpatient dosing; crisis/safety workflow and prescriber",
                )),
                cssrs::Risk::Moderate => {
                    Some((AlertLevel::Moderate, "C-SSRS screener: moderate risk (KAP-SPEC 7.4); clinician review"))
                }
                _ => None,
            };
            (None, None, Vec::new(), Some(Detail::Cssrs { risk: s.risk }), alert)
        }
    })
}

/// Scores and stores a questionnaire for `patient`. Staff enter it for a patient of their
/// clinic; a patient account may only submit for itself (the caller passes the session's id).
pub async fn submit(
    state: &AppState,
    by: &CurrentUser,
    patient: PatientId,
    sub: Submission,
) -> Result<Scored, AppError> {
    submit_for(state, by, patient, sub, None).await
}

/// As [`submit`], completing the given assignment in the same transaction (portal forms).
pub async fn submit_for(
    state: &AppState,
    by: &CurrentUser,
    patient: PatientId,
    sub: Submission,
    assignment: Option<Uuid>,
) -> Result<Scored, AppError> {
    let instrument = Instrument::parse(sub.instrument.trim()).ok_or_else(|| {
        FieldError::new("instrument", "unknown instrument; expected phq9, gad7, pcl5 or cssrs_screener")
    })?;
    // The clinic's settings version in force is stored with the result (CONFIG-DEFAULT values).
    let settings = kapstone_store::clinics::current_settings(&state.db, by.clinic).await?;
    let (total, severity, flags, detail, alert) = score(instrument, &sub.answers, settings.pcl5_cutoff)?;
    let def = content::instrument(instrument)?;
    if patients::get(&state.db, by.clinic, patient).await?.is_none() {
        return Err(AppError::NotFound);
    }
    let scored = ScoredResponse {
        instrument,
        instrument_version: def.version.clone(),
        settings_version: settings.version,
        total,
        severity,
        flags,
        detail,
    };
    let answers = serde_json::to_string(&sub.answers).map_err(|e| AppError::Internal(e.into()))?;
    let result = serde_json::to_string(&scored).map_err(|e| AppError::Internal(e.into()))?;
    let mut tx = state.db.begin().await?;
    let id = questionnaires::insert(
        &mut tx,
        &NewResponse {
            clinic: by.clinic,
            patient,
            instrument: instrument.as_str(),
            instrument_version: &def.version,
            answers: &answers,
            total: total.map(i32::from),
            severity,
            result: &result,
            entered_by: by.id,
            via_portal: !by.role.is_staff(),
        },
    )
    .await?;
    if let Some(a) = assignment
        && !questionnaires::complete_assignment(&mut tx, a, patient, instrument.as_str(), id).await?
    {
        return Err(AppError::NotFound);
    }
    let mut e = by.event(AuditAction::QuestionnaireSubmitted, "questionnaire_response", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    e.reason = Some(instrument.as_str().to_owned());
    let mut events = vec![e];
    let mut raised = None;
    if let Some((level, reason)) = alert {
        let alert_id = questionnaires::raise_alert(&mut tx, by.clinic, patient, id, level.as_str(), reason).await?;
        let mut a = by.event(AuditAction::SafetyAlertRaised, "safety_alert", Outcome::Success);
        a.entity_id = Some(alert_id.to_string());
        a.patient_id = Some(patient);
        a.reason = Some(format!("level {}", level.as_str()));
        events.push(a);
        raised = Some((alert_id, level));
    }
    audit::append_all(&mut tx, &events).await?;
    let submitted = Event::QuestionnaireSubmitted { questionnaire_response_id: id, patient_id: patient.as_uuid() };
    super::integrations::enqueue(&mut tx, by.clinic, submitted).await?;
    if let Some((alert_id, _)) = raised {
        let raised = Event::SafetyAlertRaised {
            safety_alert_id: alert_id,
            questionnaire_response_id: id,
            patient_id: patient.as_uuid(),
        };
        super::integrations::enqueue(&mut tx, by.clinic, raised).await?;
    }
    let scored = Scored { id, result: scored, alert: raised };
    tx.commit_answering(&scored).await?;
    Ok(scored)
}

/// Assigns a questionnaire for the patient to fill in the portal (the C-SSRS screener is asked in
/// two steps there, following its skip logic).
pub async fn assign(
    state: &AppState,
    staff: &CurrentUser,
    patient: PatientId,
    instrument: &str,
) -> Result<Uuid, AppError> {
    let instrument = Instrument::parse(instrument.trim()).ok_or_else(|| {
        FieldError::new("instrument", "unknown instrument; expected phq9, gad7, pcl5 or cssrs_screener")
    })?;
    if patients::get(&state.db, staff.clinic, patient).await?.is_none() {
        return Err(AppError::NotFound);
    }
    let mut tx = state.db.begin().await?;
    let id = assign_in(&mut tx, staff, patient, instrument).await?;
    tx.commit().await?;
    Ok(id)
}

/// [`assign`] inside `tx`, with its audit event, for a patient already checked (a booking assigns
/// the pre-session questionnaires in its own transaction).
pub(crate) async fn assign_in(
    tx: &mut kapstone_store::Tx,
    staff: &CurrentUser,
    patient: PatientId,
    instrument: Instrument,
) -> Result<Uuid, AppError> {
    let id = questionnaires::assign(tx, staff.clinic, patient, instrument.as_str(), staff.id).await?;
    let mut e = staff.event(AuditAction::QuestionnaireAssigned, "questionnaire_assignment", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    e.reason = Some(instrument.as_str().to_owned());
    audit::append(tx, &e).await?;
    Ok(id)
}

/// Open safety alerts of the clinic, for clinicians (audited as a read of patient data).
pub async fn open_alerts(state: &AppState, by: &CurrentUser) -> Result<Vec<questionnaires::AlertRow>, AppError> {
    let alerts = questionnaires::open_alerts(&state.db, by.clinic).await?;
    audit_listed(state, by, &alerts).await?;
    Ok(alerts)
}

/// A page of `limit` open alerts, oldest first, read with one more that says whether a next page
/// follows (the API's list; see `api::page`); those on the page are audited alike.
pub async fn open_alerts_page(
    state: &AppState,
    by: &CurrentUser,
    filter: &ListFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<questionnaires::AlertRow>, AppError> {
    let after = TimeKey::oldest_first(after);
    let alerts =
        questionnaires::open_alerts_page(&state.db, &Page { clinic: by.clinic, filter, after, limit: limit + 1 })
            .await?;
    audit_listed(state, by, &alerts[..alerts.len().min(keyset::sent(limit))]).await?;
    Ok(alerts)
}

/// One event per alert, naming its patient: the alert shows who and why.
async fn audit_listed(state: &AppState, by: &CurrentUser, alerts: &[questionnaires::AlertRow]) -> Result<(), AppError> {
    for a in alerts {
        let mut e = by.event(AuditAction::SafetyAlertsViewed, "safety_alert", Outcome::Success);
        e.entity_id = Some(a.id.to_string());
        e.patient_id = Some(PatientId::from_uuid(a.patient_id));
        state.read_audit.record(e).await?;
    }
    Ok(())
}

/// A prescriber or therapist records what was done; the alert leaves everyone's home page.
pub async fn acknowledge(state: &AppState, by: &CurrentUser, alert: Uuid, action_taken: &str) -> Result<(), AppError> {
    let note = action_taken.trim();
    if note.chars().count() < 5 {
        return Err(FieldError::new("action_taken", "say what was done (at least a few words)").into());
    }
    if note.chars().count() > 4000 {
        return Err(FieldError::new("action_taken", "keep the note under 4,000 characters").into());
    }
    let mut tx = state.db.begin().await?;
    let Some(patient) = questionnaires::acknowledge(&mut tx, by.clinic, alert, by.id, note).await? else {
        return Err(AppError::NotFound);
    };
    let mut e = by.event(AuditAction::SafetyAlertAcknowledged, "safety_alert", Outcome::Success);
    e.entity_id = Some(alert.to_string());
    e.patient_id = Some(PatientId::from_uuid(patient));
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// Crisis resources shown to a patient whose answers raised an alert.
pub const CRISIS_RESOURCES: &str = "If you are thinking about suicide or are in crisis, call or text 988 (Suicide & Crisis Lifeline) or call 911. \
     Your care team has been alerted.";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn non_numbers_and_non_booleans_name_the_item() {
        let e = integers(&[json!(1), json!("2")]).err();
        assert_eq!(e.as_ref().and_then(AppError::field), Some("answers[1]"));
        let e = booleans(&[json!(true), json!(1)]).err();
        assert_eq!(e.as_ref().and_then(AppError::field), Some("answers[1]"));
    }
}
