//! What can happen in a dosing session, as the events the store appends (JSON, tagged by
//! `"kind"`), and the checks each event's own content must pass whatever the session's state.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::adverse_event::{AdverseEvent, AeOutcome};
use crate::discharge::RecoveryAssessment;
use crate::dose::{DoseCalculation, DoseRequest};
use crate::identity::{PersonName, Role};
use crate::instruments::cssrs::Risk;
use crate::monitoring::{ClinicianObservation, Reading};
use crate::patient::Phone;
use crate::vitals::WeightKg;
use crate::{FieldError, UserId, UtcTs};

/// Who recorded an event: the signed-in user and the role they acted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Actor {
    pub user: UserId,
    pub role: Role,
}

/// One entry of a session's append-only log: what happened, when, and who recorded it. `at` is
/// the moment of the event itself (a device given, an infusion stopped); readings also carry the
/// time they were taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Recorded {
    pub at: UtcTs,
    pub by: Actor,
    pub event: SessionEvent,
}

/// Everything that can happen in a dosing session (KAP-SPEC 2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SessionEvent {
    /// Arrival check-in (2.2): escort, state of mind, pregnancy, weight.
    CheckedIn(CheckIn),
    /// The escort named at check-in was confirmed later (GATE-02).
    EscortConfirmed {
        how: EscortConfirmation,
    },
    /// The pre-session PHQ-9 or C-SSRS screener (from the portal when already filled).
    ScreeningLinked(Screening),
    /// Vitals, MOAA/S or CADSS. Readings before administration are the pre-dose baselines.
    Reading(Reading),
    /// MON-01: the prescriber confirms dosing with a pre-dose BP above the confirm limit.
    PreDoseBpConfirmed {
        reason: String,
    },
    /// A hold on dosing (GATE-05, GATE-06, or a clinician's judgement).
    HoldPlaced {
        rule: HoldRule,
        reason: String,
    },
    /// The prescriber's decision to go on after a hold (GATE-05, GATE-06, MON-02).
    HoldReleased {
        reason: String,
    },
    /// The prescriber's order. `calculation` is computed by the domain ([`super::order_dose`])
    /// and checked again by [`super::decide`]; a client's figures are never taken. Boxed: it is
    /// by far the largest event.
    DoseOrdered(Box<DoseOrder>),
    /// A second clinician checked the ordered dose (2.2 "dose computed and double-checked").
    DoseVerified,
    /// The pre-dose gate passed (2.2, 2.3).
    ClearedForDosing,
    /// The product is opened and administration begins (2.2 administration record).
    AdministrationStarted(Administration),
    /// One Spravato device (or compounded nasal application), timed by the event's `at`.
    DeviceGiven,
    /// MON-05: the IV infusion is paused for the prescriber's evaluation.
    InfusionPaused {
        #[serde(default)]
        reason: Option<String>,
    },
    /// The prescriber's decision, with a reason, to go on with a paused infusion.
    InfusionResumed {
        reason: String,
    },
    /// Infusion stopped, lozenge finished, or a device dose ended early (`reason` then required).
    AdministrationEnded {
        #[serde(default)]
        reason: Option<String>,
    },
    /// An alert was seen and acted on.
    AlertAcknowledged {
        alert_id: u32,
        #[serde(default)]
        note: Option<String>,
    },
    /// Signs staff see or the patient reports (MON-04, MON-11).
    ObservationFlagged {
        observation: ClinicianObservation,
        #[serde(default)]
        note: Option<String>,
    },
    AdverseEventRecorded(AdverseEvent),
    /// The outcome of an adverse event recorded earlier (1-based `number`), as it is followed up.
    AdverseEventUpdated {
        number: usize,
        outcome: AeOutcome,
        #[serde(default)]
        resolved_at: Option<UtcTs>,
    },
    /// The clinician judges the acute experience over: recovery and grounding begin.
    ExperienceEnded,
    /// The discharge check (DC-02, DC-06, DC-07, DC-08, DC-09).
    DischargeAssessment(DischargeAssessment),
    /// The patient leaves with their escort and the hand-out.
    Discharged {
        instructions_given: bool,
    },
    /// The session ends without (further) dosing; final.
    Aborted {
        reason: String,
    },
    /// A therapist's (or clinician's) observation.
    ProgressNote {
        text: String,
    },
}

impl SessionEvent {
    /// The `kind` of the JSON, for messages and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionEvent::CheckedIn(_) => "checked_in",
            SessionEvent::EscortConfirmed { .. } => "escort_confirmed",
            SessionEvent::ScreeningLinked(_) => "screening_linked",
            SessionEvent::Reading(_) => "reading",
            SessionEvent::PreDoseBpConfirmed { .. } => "pre_dose_bp_confirmed",
            SessionEvent::HoldPlaced { .. } => "hold_placed",
            SessionEvent::HoldReleased { .. } => "hold_released",
            SessionEvent::DoseOrdered(_) => "dose_ordered",
            SessionEvent::DoseVerified => "dose_verified",
            SessionEvent::ClearedForDosing => "cleared_for_dosing",
            SessionEvent::AdministrationStarted(_) => "administration_started",
            SessionEvent::DeviceGiven => "device_given",
            SessionEvent::InfusionPaused { .. } => "infusion_paused",
            SessionEvent::InfusionResumed { .. } => "infusion_resumed",
            SessionEvent::AdministrationEnded { .. } => "administration_ended",
            SessionEvent::AlertAcknowledged { .. } => "alert_acknowledged",
            SessionEvent::ObservationFlagged { .. } => "observation_flagged",
            SessionEvent::AdverseEventRecorded(_) => "adverse_event_recorded",
            SessionEvent::AdverseEventUpdated { .. } => "adverse_event_updated",
            SessionEvent::ExperienceEnded => "experience_ended",
            SessionEvent::DischargeAssessment(_) => "discharge_assessment",
            SessionEvent::Discharged { .. } => "discharged",
            SessionEvent::Aborted { .. } => "aborted",
            SessionEvent::ProgressNote { .. } => "progress_note",
        }
    }

    /// In plain words, for "a therapist may not {what}".
    pub(crate) fn what(&self) -> &'static str {
        match self {
            SessionEvent::CheckedIn(_) => "check the patient in",
            SessionEvent::EscortConfirmed { .. } => "confirm the escort",
            SessionEvent::ScreeningLinked(_) => "link a screener",
            SessionEvent::Reading(_) => "record this reading",
            SessionEvent::PreDoseBpConfirmed { .. } => "confirm dosing with a raised pre-dose BP (MON-01)",
            SessionEvent::HoldPlaced { .. } => "place a hold",
            SessionEvent::HoldReleased { .. } => "release a hold",
            SessionEvent::DoseOrdered(_) => "order a dose",
            SessionEvent::DoseVerified => "verify the dose",
            SessionEvent::ClearedForDosing => "clear the patient for dosing",
            SessionEvent::AdministrationStarted(_) => "start the administration",
            SessionEvent::DeviceGiven => "record a device",
            SessionEvent::InfusionPaused { .. } => "pause the infusion",
            SessionEvent::InfusionResumed { .. } => "resume the infusion",
            SessionEvent::AdministrationEnded { .. } => "end the administration",
            SessionEvent::AlertAcknowledged { .. } => "acknowledge an alert",
            SessionEvent::ObservationFlagged { .. } => "flag an observation",
            SessionEvent::AdverseEventRecorded(_) => "record an adverse event",
            SessionEvent::AdverseEventUpdated { .. } => "update an adverse event",
            SessionEvent::ExperienceEnded => "mark the experience over",
            SessionEvent::DischargeAssessment(_) => "record the discharge assessment",
            SessionEvent::Discharged { .. } => "discharge the patient",
            SessionEvent::Aborted { .. } => "abort the session",
            SessionEvent::ProgressNote { .. } => "write a progress note",
        }
    }
}

/// The escort or driver taking the patient home (GATE-02, DC-08).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Escort {
    pub name: String,
    pub phone: String,
    #[serde(default)]
    pub relationship: Option<String>,
}

/// How the escort was confirmed after check-in. A phone call counts: GATE-02 asks for transport
/// arranged, and DC-08 checks the escort is physically present before the patient leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscortConfirmation {
    InPerson,
    ByPhone,
}

/// Mood as the patient gives it: a 0–10 rating or their words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Mood {
    Rating(u8),
    Words(String),
}

/// The arrival "state of mind" check (KAP-SPEC 2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateOfMind {
    pub mood: Mood,
    #[serde(default)]
    pub acute_stressors: Option<String>,
    #[serde(default)]
    pub sleep_hours: Option<f64>,
    #[serde(default)]
    pub last_food_at: Option<UtcTs>,
    #[serde(default)]
    pub last_fluid_at: Option<UtcTs>,
    /// A nasal corticosteroid or decongestant used today (DDI-011: at least 1 h before Spravato).
    #[serde(default)]
    pub last_nasal_spray_at: Option<UtcTs>,
    /// GATE-06 (CONFIG-DEFAULT: any alcohol within 12 h).
    pub alcohol_or_substances_last_12h: bool,
    /// GATE-06.
    pub intoxication_signs: bool,
    /// Interval medication changes: the prescriber re-checks eligibility (2.2 pre-dose gate).
    #[serde(default)]
    pub medication_changes: Option<String>,
}

/// Pregnancy status at arrival (2.2 eligibility re-check; ELIG-011).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pregnancy {
    NotApplicable,
    NegativeTest,
    Positive,
    Declined,
}

/// A weight with the time it was measured (weight-based doses need a recent one, KAP-SPEC 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasuredWeight {
    pub kg: f64,
    pub measured_at: UtcTs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    pub escort: Escort,
    /// Staff saw the escort at drop-off (GATE-02). If not, [`SessionEvent::EscortConfirmed`]
    /// confirms them later.
    pub escort_confirmed_in_person: bool,
    pub state_of_mind: StateOfMind,
    pub pregnancy: Pregnancy,
    #[serde(default)]
    pub weight: Option<MeasuredWeight>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScreeningInstrument {
    Phq9,
    CssrsScreener,
}

/// A questionnaire response linked to the session: the PHQ-9 with its total, or the C-SSRS
/// screener with its risk level (GATE-01).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Screening {
    pub instrument: ScreeningInstrument,
    pub response_id: String,
    #[serde(default)]
    pub total: Option<u16>,
    #[serde(default)]
    pub cssrs_risk: Option<Risk>,
}

/// Why dosing is held. GATE-05 and GATE-06 are the spec's holds ("Hold; prescriber decision");
/// a clinician may also hold on their own judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum HoldRule {
    /// GATE-05 / MON-02: pre-dose BP at or above the hold threshold.
    #[serde(rename = "GATE-05")]
    PreDoseBloodPressure,
    /// GATE-06: alcohol or other substances in the last 12 h, or signs of intoxication.
    #[serde(rename = "GATE-06")]
    IntoxicationOrRecentAlcohol,
    /// A clinician's judgement (e.g. interval medication changes, a declined pregnancy test).
    #[serde(rename = "clinical")]
    ClinicalJudgement,
}

impl HoldRule {
    /// The code a refusal or blocker carries.
    pub fn code(self) -> &'static str {
        match self {
            HoldRule::PreDoseBloodPressure => "GATE-05",
            HoldRule::IntoxicationOrRecentAlcohol => "GATE-06",
            HoldRule::ClinicalJudgement => "hold",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DoseOrder {
    pub request: DoseRequest,
    pub calculation: DoseCalculation,
    /// Required in the override zone; the audited reason for going above the protocol's limit.
    #[serde(default)]
    pub override_reason: Option<String>,
}

/// The administration record (KAP-SPEC 2.2: drug, product/NDC, lot, expiry, dose, route).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Administration {
    pub product: String,
    #[serde(default)]
    pub ndc: Option<String>,
    pub lot: String,
    /// The expiry on the vial, kit or tablets: a calendar date, not past.
    pub expiry: Date,
    /// Must be the ordered dose.
    pub dose_mg: f64,
    /// SNOMED CT route (KAP-SPEC 8.3); must be the protocol's.
    pub route_snomed: String,
}

/// The discharge check by the prescriber or monitoring HCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DischargeAssessment {
    /// DC-02: clinically stable and ready to leave.
    pub ready_to_leave: bool,
    /// DC-07.
    pub recovery: RecoveryAssessment,
    /// DC-06.
    pub on_room_air: bool,
    /// DC-08: the escort is physically here.
    pub escort_present: bool,
    /// DC-09 (CONFIG): the C-SSRS screener at discharge.
    #[serde(default)]
    pub cssrs_at_discharge: Option<Risk>,
}

/// Free text up to `max` characters: trimmed, not empty, no control characters but new lines.
pub(crate) fn text(field: &'static str, raw: &str, max: usize) -> Result<String, FieldError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(FieldError::new(field, "write something here"));
    }
    if t.chars().count() > max {
        return Err(FieldError::new(field, format!("use at most {max} characters")));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(FieldError::new(field, "use plain text (no control characters)"));
    }
    Ok(t.to_owned())
}

fn optional_text(field: &'static str, raw: Option<&str>, max: usize) -> Result<(), FieldError> {
    match raw {
        Some(s) if !s.trim().is_empty() => text(field, s, max).map(drop),
        _ => Ok(()),
    }
}

pub(crate) const MAX_REASON: usize = 4000;
const MAX_NOTE: usize = 20_000;

fn not_after(field: &'static str, t: Option<UtcTs>, at: UtcTs) -> Result<(), FieldError> {
    match t {
        Some(t) if t > at => Err(FieldError::new(field, "cannot be later than the check-in")),
        _ => Ok(()),
    }
}

impl CheckIn {
    /// The content checks of the arrival record, each naming its field.
    pub fn check(&self, at: UtcTs) -> Result<(), FieldError> {
        PersonName::parse("escort.name", &self.escort.name)?;
        Phone::parse("escort.phone", &self.escort.phone)?;
        optional_text("escort.relationship", self.escort.relationship.as_deref(), 100)?;
        let s = &self.state_of_mind;
        match &s.mood {
            Mood::Rating(r) if *r > 10 => {
                return Err(FieldError::new("state_of_mind.mood", "rate mood from 0 to 10, or use words"));
            }
            Mood::Rating(_) => {}
            Mood::Words(w) => {
                text("state_of_mind.mood", w, 500)?;
            }
        }
        optional_text("state_of_mind.acute_stressors", s.acute_stressors.as_deref(), 2000)?;
        optional_text("state_of_mind.medication_changes", s.medication_changes.as_deref(), 2000)?;
        if let Some(h) = s.sleep_hours
            && !(h.is_finite() && (0.0..=24.0).contains(&h))
        {
            return Err(FieldError::new("state_of_mind.sleep_hours", "hours of sleep are 0 to 24"));
        }
        not_after("state_of_mind.last_food_at", s.last_food_at, at)?;
        not_after("state_of_mind.last_fluid_at", s.last_fluid_at, at)?;
        not_after("state_of_mind.last_nasal_spray_at", s.last_nasal_spray_at, at)?;
        if let Some(w) = &self.weight {
            WeightKg::new(w.kg).map_err(|e| FieldError::new("weight.kg", e.message))?;
            not_after("weight.measured_at", Some(w.measured_at), at)?;
        }
        Ok(())
    }

    /// GATE-06: what the check-in found, if anything.
    pub fn gate06_finding(&self) -> Option<&'static str> {
        let s = &self.state_of_mind;
        match (s.alcohol_or_substances_last_12h, s.intoxication_signs) {
            (true, true) => Some("alcohol or other substances in the last 12 h and signs of intoxication"),
            (true, false) => Some("alcohol or other substances in the last 12 h"),
            (false, true) => Some("signs of intoxication"),
            (false, false) => None,
        }
    }
}

impl Screening {
    pub fn check(&self) -> Result<(), FieldError> {
        let id = self.response_id.trim();
        if id.is_empty() || id.len() > 100 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(FieldError::new("response_id", "give the id of the questionnaire response"));
        }
        match self.instrument {
            ScreeningInstrument::Phq9 => {
                if self.cssrs_risk.is_some() {
                    return Err(FieldError::new("cssrs_risk", "a PHQ-9 has a total, not a C-SSRS risk"));
                }
                match self.total {
                    Some(t) if t <= 27 => Ok(()),
                    _ => Err(FieldError::new("total", "a PHQ-9 total is 0 to 27 (KAP-SPEC 7.1)")),
                }
            }
            ScreeningInstrument::CssrsScreener => {
                if self.total.is_some() {
                    return Err(FieldError::new("total", "the C-SSRS screener gives a risk level, not a total"));
                }
                if self.cssrs_risk.is_none() {
                    return Err(FieldError::new("cssrs_risk", "give the screener's risk level (KAP-SPEC 7.4)"));
                }
                Ok(())
            }
        }
    }
}

impl Administration {
    /// Checks that need no session: text fields, NDC layout, the expiry against the clinic's date.
    pub fn check(&self, clinic_date: Date) -> Result<(), FieldError> {
        text("product", &self.product, 200)?;
        if let Some(ndc) = self.ndc.as_deref().map(str::trim).filter(|n| !n.is_empty())
            && !crate::protocol::ndc_ok(ndc)
        {
            return Err(FieldError::new("ndc", "write a package NDC as 4-4-2, 5-3-2 or 5-4-1 digits"));
        }
        let lot = text("lot", &self.lot, 40)?;
        if lot.chars().any(char::is_whitespace) {
            return Err(FieldError::new("lot", "a lot number has no spaces"));
        }
        if self.expiry < clinic_date {
            return Err(FieldError::new("expiry", format!("this product expired on {}: do not use it", self.expiry)));
        }
        if !(self.dose_mg.is_finite() && self.dose_mg > 0.0) {
            return Err(FieldError::new("dose_mg", "the dose given must be a number above 0 mg"));
        }
        Ok(())
    }
}

/// Checks the text of events that carry a reason or note.
pub(crate) fn check_texts(event: &SessionEvent) -> Result<(), FieldError> {
    match event {
        SessionEvent::PreDoseBpConfirmed { reason }
        | SessionEvent::HoldPlaced { reason, .. }
        | SessionEvent::HoldReleased { reason }
        | SessionEvent::InfusionResumed { reason }
        | SessionEvent::Aborted { reason } => text("reason", reason, MAX_REASON).map(drop),
        SessionEvent::AdministrationEnded { reason } | SessionEvent::InfusionPaused { reason } => {
            optional_text("reason", reason.as_deref(), MAX_REASON)
        }
        SessionEvent::AlertAcknowledged { note, .. } | SessionEvent::ObservationFlagged { note, .. } => {
            optional_text("note", note.as_deref(), MAX_REASON)
        }
        SessionEvent::DoseOrdered(order) => {
            optional_text("override_reason", order.override_reason.as_deref(), MAX_REASON)
        }
        SessionEvent::ProgressNote { text: t } => text("text", t, MAX_NOTE).map(drop),
        _ => Ok(()),
    }
}
