//! Where a patient is on the care pathway (KAP-SPEC 2.1) and what is needed next.
//!
//! The stage is *derived* from the record (consultation, decision, consent) rather than set by
//! hand, so it can never disagree with the data; only the side states a person decides (on hold,
//! withdrawn, completed) are recorded as pathway events. Each stage's exit gate from the spec
//! becomes the list of next steps.

use serde::Serialize;

/// The stages of KAP-SPEC 2.1, with the side states staff set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Referral,
    Consultation,
    Eligibility,
    Consent,
    Preparation,
    Treatment,
    Integration,
    Maintenance,
    Completed,
    Withdrawn,
    OnHold,
    /// Side state: a signed decision found the patient not eligible.
    Ineligible,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Referral => "Referral",
            Stage::Consultation => "Consultation",
            Stage::Eligibility => "Eligibility",
            Stage::Consent => "Consent",
            Stage::Preparation => "Preparation",
            Stage::Treatment => "Treatment",
            Stage::Integration => "Integration",
            Stage::Maintenance => "Maintenance",
            Stage::Completed => "Completed",
            Stage::Withdrawn => "Withdrawn",
            Stage::OnHold => "On hold",
            Stage::Ineligible => "Not eligible",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Referral => "referral",
            Stage::Consultation => "consultation",
            Stage::Eligibility => "eligibility",
            Stage::Consent => "consent",
            Stage::Preparation => "preparation",
            Stage::Treatment => "treatment",
            Stage::Integration => "integration",
            Stage::Maintenance => "maintenance",
            Stage::Completed => "completed",
            Stage::Withdrawn => "withdrawn",
            Stage::OnHold => "on_hold",
            Stage::Ineligible => "ineligible",
        }
    }
}

/// A side state a person puts the patient in (or takes them out of).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PathwayEvent {
    Hold,
    Resume,
    Withdraw,
    Complete,
    Reopen,
}

impl PathwayEvent {
    pub const ALL: [PathwayEvent; 5] = [
        PathwayEvent::Hold,
        PathwayEvent::Resume,
        PathwayEvent::Withdraw,
        PathwayEvent::Complete,
        PathwayEvent::Reopen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PathwayEvent::Hold => "hold",
            PathwayEvent::Resume => "resume",
            PathwayEvent::Withdraw => "withdraw",
            PathwayEvent::Complete => "complete",
            PathwayEvent::Reopen => "reopen",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// The side state in force after the recorded events, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideState {
    OnHold,
    Withdrawn,
    Completed,
}

/// Applies `event` to the current side state; `Err` says why it does not apply.
pub fn apply(current: Option<SideState>, event: PathwayEvent) -> Result<Option<SideState>, &'static str> {
    match (current, event) {
        (None, PathwayEvent::Hold) => Ok(Some(SideState::OnHold)),
        (None, PathwayEvent::Withdraw) | (Some(SideState::OnHold), PathwayEvent::Withdraw) => {
            Ok(Some(SideState::Withdrawn))
        }
        (None, PathwayEvent::Complete) => Ok(Some(SideState::Completed)),
        (Some(SideState::OnHold), PathwayEvent::Resume) => Ok(None),
        (Some(SideState::Withdrawn | SideState::Completed), PathwayEvent::Reopen) => Ok(None),
        (Some(SideState::OnHold), _) => Err("the patient is on hold: resume or withdraw"),
        (Some(_), _) => Err("the pathway has ended: reopen it first"),
        (None, _) => Err("the patient is neither on hold nor ended"),
    }
}

/// The consultation's exit gate items (KAP-SPEC 2.1 stage 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsultationGate {
    pub recorded: bool,
    pub history_complete: bool,
    pub vitals_complete: bool,
    pub medications_reconciled: bool,
    /// Recorded, or not applicable.
    pub pregnancy_captured: bool,
    pub phq9: bool,
    pub gad7: bool,
    pub cssrs: bool,
}

impl ConsultationGate {
    fn missing(&self) -> Vec<&'static str> {
        [
            (!self.history_complete, "history, current symptoms and treatment goals"),
            (!self.vitals_complete, "baseline vitals (BP, heart rate, SpO2, weight, height)"),
            (!self.medications_reconciled, "reconciled medication list"),
            (!self.pregnancy_captured, "pregnancy status"),
            (!self.phq9, "baseline PHQ-9"),
            (!self.gad7, "baseline GAD-7"),
            (!self.cssrs, "C-SSRS screener"),
        ]
        .into_iter()
        .filter_map(|(m, what)| m.then_some(what))
        .collect()
    }

    pub fn passed(&self) -> bool {
        self.recorded && self.missing().is_empty()
    }
}

/// What the pathway needs to know about one patient.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub side_state: Option<SideState>,
    pub open_safety_alert: bool,
    pub consultation: ConsultationGate,
    /// `Some(eligible)` once a decision is signed.
    pub decision_eligible: Option<bool>,
    /// The consultation or questionnaires changed after the decision was signed.
    pub decision_inputs_changed: bool,
    /// The current evaluation has missing-data findings.
    pub missing_data: bool,
    pub decision_allows_spravato: bool,
    /// The eligible decision no longer passes the decision gate on the current record (a new
    /// exclude, missing data or an undisposed review finding): why.
    pub decision_no_longer_holds: Option<String>,
    pub general_consent_valid: bool,
    pub spravato_acknowledgement_valid: bool,
    /// Spravato REMS patient enrolment recorded (stage 4 exit gate, GATE-03).
    pub rems_enrolled: bool,
}

/// One thing that is due, and who does it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct NextStep {
    pub what: String,
    pub who: &'static str,
    pub urgent: bool,
}

fn step(what: impl Into<String>, who: &'static str) -> NextStep {
    NextStep { what: what.into(), who, urgent: false }
}

/// The patient's stage and what is needed next, most urgent first.
pub fn assess(f: &Facts) -> (Stage, Vec<NextStep>) {
    let mut next = Vec::new();
    if f.open_safety_alert {
        next.push(NextStep {
            what: "Acknowledge the open safety alert with what was done".into(),
            who: "prescriber or therapist",
            urgent: true,
        });
    }
    match f.side_state {
        Some(SideState::OnHold) => {
            next.push(step("Resume the pathway when the hold is resolved", "clinician"));
            return (Stage::OnHold, next);
        }
        Some(SideState::Withdrawn) => return (Stage::Withdrawn, next),
        Some(SideState::Completed) => return (Stage::Completed, next),
        None => {}
    }
    if !f.consultation.passed() {
        let stage = if f.consultation.recorded { Stage::Consultation } else { Stage::Referral };
        if !f.consultation.recorded {
            next.push(step("Record the consultation", "clinician"));
        }
        for what in f.consultation.missing() {
            next.push(step(format!("Record {what}"), "clinician"));
        }
        return (stage, next);
    }
    if f.decision_eligible == Some(true)
        && let Some(why) = &f.decision_no_longer_holds
    {
        next.push(NextStep {
            what: format!(
                "The signed eligibility decision no longer holds on the current record ({why}): review and amend it"
            ),
            who: "prescriber",
            urgent: true,
        });
        return (Stage::Eligibility, next);
    }
    if f.decision_eligible.is_some() && f.decision_inputs_changed {
        next.push(step(
            "The record changed after the eligibility decision was signed: review the findings and amend if needed",
            "prescriber",
        ));
    }
    match f.decision_eligible {
        None => {
            if f.missing_data {
                next.push(step("Record the data the eligibility rules still need (see the findings)", "clinician"));
            }
            next.push(step("Review the eligibility findings and sign the decision", "prescriber"));
            (Stage::Eligibility, next)
        }
        Some(false) => (Stage::Ineligible, next),
        Some(true) => {
            let spravato_missing = f.decision_allows_spravato && !f.spravato_acknowledgement_valid;
            let rems_missing = f.decision_allows_spravato && !f.rems_enrolled;
            if !f.general_consent_valid || spravato_missing || rems_missing {
                if !f.general_consent_valid {
                    next.push(step("Informed consent to be signed (portal or paper)", "patient or front desk"));
                }
                if spravato_missing {
                    next.push(step("Spravato REMS acknowledgement to be signed", "patient or front desk"));
                }
                if rems_missing {
                    next.push(step("Record the patient's Spravato REMS enrolment", "front desk"));
                }
                return (Stage::Consent, next);
            }
            next.push(step("Preparation session with the therapist; escort for the ride home", "therapist"));
            (Stage::Preparation, next)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete_gate() -> ConsultationGate {
        ConsultationGate {
            recorded: true,
            history_complete: true,
            vitals_complete: true,
            medications_reconciled: true,
            pregnancy_captured: true,
            phq9: true,
            gad7: true,
            cssrs: true,
        }
    }

    #[test]
    fn stages_follow_the_record() {
        let mut f = Facts::default();
        let (stage, next) = assess(&f);
        assert_eq!(stage, Stage::Referral);
        assert_eq!(next[0].what, "Record the consultation");
        f.consultation = ConsultationGate { recorded: true, ..complete_gate() };
        f.consultation.gad7 = false;
        let (stage, next) = assess(&f);
        assert_eq!(stage, Stage::Consultation);
        assert_eq!(next.iter().map(|s| s.what.as_str()).collect::<Vec<_>>(), vec!["Record baseline GAD-7"]);
        f.consultation.gad7 = true;
        assert_eq!(assess(&f).0, Stage::Eligibility);
        f.decision_eligible = Some(false);
        assert_eq!(assess(&f).0, Stage::Ineligible);
        f.decision_eligible = Some(true);
        assert_eq!(assess(&f).0, Stage::Consent);
        f.general_consent_valid = true;
        assert_eq!(assess(&f).0, Stage::Preparation);
        f.decision_allows_spravato = true;
        let (stage, next) = assess(&f);
        assert_eq!(stage, Stage::Consent);
        assert!(next[0].what.contains("REMS"));
        f.spravato_acknowledgement_valid = true;
        let (stage, next) = assess(&f);
        assert_eq!(stage, Stage::Consent, "REMS enrolment is part of the consent stage's gate");
        assert!(next[0].what.contains("enrolment"));
        f.rems_enrolled = true;
        assert_eq!(assess(&f).0, Stage::Preparation);
        // A decision that no longer holds sends the patient back to eligibility, urgently.
        f.decision_no_longer_holds = Some("ELIG-011 excludes".into());
        let (stage, next) = assess(&f);
        assert_eq!(stage, Stage::Eligibility);
        assert!(next[0].urgent && next[0].what.contains("no longer holds"));
    }

    #[test]
    fn a_safety_alert_comes_first_and_side_states_win() {
        let f = Facts { open_safety_alert: true, side_state: Some(SideState::OnHold), ..Facts::default() };
        let (stage, next) = assess(&f);
        assert_eq!(stage, Stage::OnHold);
        assert!(next[0].urgent);
    }

    #[test]
    fn a_changed_record_asks_for_review() {
        let f = Facts {
            consultation: complete_gate(),
            decision_eligible: Some(true),
            decision_inputs_changed: true,
            general_consent_valid: true,
            ..Facts::default()
        };
        let (stage, next) = assess(&f);
        assert_eq!(stage, Stage::Preparation);
        assert!(next[0].what.contains("changed after"));
    }

    #[test]
    fn side_state_transitions() {
        assert_eq!(apply(None, PathwayEvent::Hold), Ok(Some(SideState::OnHold)));
        assert_eq!(apply(Some(SideState::OnHold), PathwayEvent::Resume), Ok(None));
        assert_eq!(apply(Some(SideState::OnHold), PathwayEvent::Withdraw), Ok(Some(SideState::Withdrawn)));
        assert!(apply(Some(SideState::Withdrawn), PathwayEvent::Hold).is_err());
        assert_eq!(apply(Some(SideState::Withdrawn), PathwayEvent::Reopen), Ok(None));
        assert!(apply(None, PathwayEvent::Resume).is_err());
        assert!(apply(Some(SideState::OnHold), PathwayEvent::Complete).is_err());
    }
}
