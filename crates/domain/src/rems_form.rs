//! The SPRAVATO REMS Patient Monitoring Form (KAP-SPEC 5.6): filled from the session after every
//! Spravato treatment and submitted within 7 days.
//!
//! The form's fields come from a versioned definition (`content/rems/patient-monitoring-form.json`,
//! version `2021-11`), because the form changes: J&J's current walkthrough adds items the 11/2021
//! transcription lacks, and those are marked `unverified`. This module knows how to fill each
//! field id from the session's facts; [`FormDefinition::check`] refuses a definition with a field
//! it cannot fill, so a new form version is a reviewed change of both.

use std::collections::BTreeSet;
use std::fmt;

use jiff::ToSpan;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::adverse_event::{AdverseEvent, AeCode, BuiltinAe};
use crate::discharge::{CriterionStatus, treatment_duration_minutes};
use crate::monitoring::{Measurement, PreDoseBp, SpravatoLabel, pre_dose_bp};
use crate::session::{Context, Session};
use crate::vitals::BloodPressure;
use crate::{FieldError, UtcTs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    /// Shown as MM/DD/YYYY, as on the form.
    Date,
    /// Male / Female / Other.
    Sex,
    YesNo,
    Integer,
    /// 56 mg / 84 mg / Other (value).
    Dose,
    /// Systolic / diastolic.
    BloodPressure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub id: String,
    pub section: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// Asterisked on the form.
    pub required: bool,
    /// Required when the yes/no field named here is answered yes.
    #[serde(default)]
    pub required_if_yes: Option<String>,
    /// Not confirmed against the current form (KAP-SPEC 13 item 4).
    #[serde(default)]
    pub unverified: bool,
    /// Lowest allowed value of an integer field.
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub note: Option<String>,
}

/// A version of the form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormDefinition {
    pub form: String,
    pub title: String,
    pub version: String,
    pub source: String,
    /// Calendar days after the session by which the form is submitted (REMS: 7).
    pub submit_within_days: u16,
    pub fields: Vec<FieldDef>,
}

/// The field ids this module fills, with their kinds.
const KNOWN: [(&str, FieldKind); 37] = [
    ("patient_first_name", FieldKind::Text),
    ("patient_middle_initial", FieldKind::Text),
    ("patient_last_name", FieldKind::Text),
    ("patient_birth_date", FieldKind::Date),
    ("patient_sex", FieldKind::Sex),
    ("first_treatment", FieldKind::YesNo),
    ("enrolled_in_rems", FieldKind::YesNo),
    ("cm_benzodiazepines", FieldKind::YesNo),
    ("cm_non_benzodiazepine_sedative_hypnotics", FieldKind::YesNo),
    ("cm_psychostimulants", FieldKind::YesNo),
    ("cm_maois", FieldKind::YesNo),
    ("cm_opioids", FieldKind::YesNo),
    ("hcp_first_name", FieldKind::Text),
    ("hcp_last_name", FieldKind::Text),
    ("hcp_telephone", FieldKind::Text),
    ("hcp_email", FieldKind::Text),
    ("setting_name", FieldKind::Text),
    ("setting_address1", FieldKind::Text),
    ("setting_address2", FieldKind::Text),
    ("setting_city", FieldKind::Text),
    ("setting_state", FieldKind::Text),
    ("setting_zip", FieldKind::Text),
    ("treatment_date", FieldKind::Date),
    ("dose_administered", FieldKind::Dose),
    ("lot_number", FieldKind::Text),
    ("treatment_duration_minutes", FieldKind::Integer),
    ("minutes_until_ready_without_requirement", FieldKind::Integer),
    ("vitals_acceptable_before_administration", FieldKind::YesNo),
    ("vitals_acceptable_before_completion", FieldKind::YesNo),
    ("bp_before_administration", FieldKind::BloodPressure),
    ("bp_40_min_post_administration", FieldKind::BloodPressure),
    ("bp_before_completion", FieldKind::BloodPressure),
    ("ae_sedation", FieldKind::YesNo),
    ("ae_dissociation", FieldKind::YesNo),
    ("ae_respiratory_depression", FieldKind::YesNo),
    ("ae_serious", FieldKind::YesNo),
    ("ae_serious_details", FieldKind::Text),
];

fn known_kind(id: &str) -> Option<FieldKind> {
    KNOWN.iter().find(|(k, _)| *k == id).map(|(_, kind)| *kind)
}

/// A definition that does not fit the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("REMS form definition: {0}")]
pub struct DefinitionError(pub String);

impl FormDefinition {
    /// Every field is one this module fills, with its kind; ids are unique; conditions name a
    /// yes/no field; the duration field keeps the label's 120-minute floor.
    pub fn check(&self) -> Result<(), DefinitionError> {
        let mut seen = BTreeSet::new();
        if self.submit_within_days == 0 {
            return Err(DefinitionError("submit_within_days must be at least 1".into()));
        }
        for f in &self.fields {
            if !seen.insert(f.id.as_str()) {
                return Err(DefinitionError(format!("field {} is listed twice", f.id)));
            }
            match known_kind(&f.id) {
                None => return Err(DefinitionError(format!("no session fact fills field {}", f.id))),
                Some(kind) if kind != f.kind => {
                    return Err(DefinitionError(format!("field {} is of type {kind:?} in the code", f.id)));
                }
                Some(_) => {}
            }
            if let Some(cond) = &f.required_if_yes
                && !self.fields.iter().any(|g| &g.id == cond && g.kind == FieldKind::YesNo)
            {
                return Err(DefinitionError(format!("field {} depends on {cond}, not a yes/no field here", f.id)));
            }
            if f.id == "treatment_duration_minutes"
                && f.min.is_none_or(|m| m < i64::from(SpravatoLabel::MIN_OBSERVATION_MINUTES))
            {
                return Err(DefinitionError("treatment_duration_minutes must keep min 120 (label)".into()));
            }
        }
        Ok(())
    }

    /// The date the form must be submitted by: `submit_within_days` calendar days after the
    /// session (TV-SPR-4: Fri 2025-03-07 → 2025-03-14).
    pub fn due_by(&self, session_date: Date) -> Date {
        session_date.checked_add(i64::from(self.submit_within_days).days()).unwrap_or(Date::MAX)
    }

    pub fn submission_status(&self, session_date: Date, submitted_on: Option<Date>, today: Date) -> SubmissionStatus {
        let due = self.due_by(session_date);
        match submitted_on {
            Some(on) => SubmissionStatus::Submitted { on, late: on > due },
            None if today > due => SubmissionStatus::Overdue { due },
            None => SubmissionStatus::Pending { due },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SubmissionStatus {
    Pending {
        due: Date,
    },
    /// Not submitted and past the due date: flag it.
    Overdue {
        due: Date,
    },
    Submitted {
        on: Date,
        late: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormSex {
    Male,
    Female,
    Other,
}

/// The dose box: 56 mg, 84 mg or another value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "choice", content = "mg", rename_all = "snake_case")]
pub enum RemsDose {
    Mg56,
    Mg84,
    Other(u16),
}

impl RemsDose {
    pub fn from_mg(mg: u16) -> Self {
        match mg {
            56 => RemsDose::Mg56,
            84 => RemsDose::Mg84,
            other => RemsDose::Other(other),
        }
    }
}

/// A filled field's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum FieldValue {
    Text(String),
    Date(Date),
    Sex(FormSex),
    YesNo(bool),
    Integer(i64),
    Dose(RemsDose),
    BloodPressure { systolic: u16, diastolic: u16 },
}

impl fmt::Display for FieldValue {
    /// As written on the form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Text(t) => f.write_str(t),
            FieldValue::Date(d) => write!(f, "{:02}/{:02}/{:04}", d.month(), d.day(), d.year()),
            FieldValue::Sex(FormSex::Male) => f.write_str("Male"),
            FieldValue::Sex(FormSex::Female) => f.write_str("Female"),
            FieldValue::Sex(FormSex::Other) => f.write_str("Other"),
            FieldValue::YesNo(true) => f.write_str("Yes"),
            FieldValue::YesNo(false) => f.write_str("No"),
            FieldValue::Integer(n) => write!(f, "{n}"),
            FieldValue::Dose(RemsDose::Mg56) => f.write_str("56 mg"),
            FieldValue::Dose(RemsDose::Mg84) => f.write_str("84 mg"),
            FieldValue::Dose(RemsDose::Other(mg)) => write!(f, "Other: {mg} mg"),
            FieldValue::BloodPressure { systolic, diastolic } => write!(f, "{systolic}/{diastolic}"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConcomitantMedication {
    pub benzodiazepines: Option<bool>,
    pub non_benzodiazepine_sedative_hypnotics: Option<bool>,
    pub psychostimulants: Option<bool>,
    pub maois: Option<bool>,
    /// For a form version that asks (KAP-SPEC 5.6: verify the current form).
    pub opioids: Option<bool>,
}

/// The HCP who conducted the monitoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitoringHcp {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub telephone: Option<String>,
    pub email: Option<String>,
}

/// The certified healthcare setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthcareSetting {
    pub name: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
}

/// USPS codes of the states, the District of Columbia and the inhabited territories: the form's
/// "State" box is a US postal state (the REMS is a US program).
const US_STATE_CODES: [&str; 56] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
    "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR",
    "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "AS", "GU", "MP", "PR", "VI",
];

/// The address of a healthcare setting as the form asks for it (KAP-SPEC 5.6: Address 1*,
/// Address 2, City*, State*, ZIP*). The admin records it per location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SettingAddress {
    pub address_line1: String,
    pub address_line2: Option<String>,
    pub city: String,
    /// Two-letter USPS code, upper case.
    pub state: String,
    /// `97201` or `97201-1234`.
    pub zip: String,
}

/// One line of free text: at most `max` characters, no control characters; blank is `None`.
fn address_text(field: &'static str, raw: &str, max: usize) -> Result<Option<String>, FieldError> {
    let s = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars().count() > max {
        return Err(FieldError::new(field, format!("use at most {max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::new(field, "remove control characters"));
    }
    Ok(Some(s))
}

impl SettingAddress {
    /// The address from the admin's form. Every part blank clears it (`None`: the form then shows
    /// it as still to complete); otherwise the parts the form requires must all be given. An
    /// error names the field at fault.
    pub fn parse(
        address_line1: &str,
        address_line2: &str,
        city: &str,
        state: &str,
        zip: &str,
    ) -> Result<Option<Self>, FieldError> {
        let line1 = address_text("address_line1", address_line1, 100)?;
        let line2 = address_text("address_line2", address_line2, 100)?;
        let city = address_text("city", city, 60)?;
        let state = address_text("state", state, 2)
            .map_err(|_| FieldError::new("state", "enter the state's two-letter code, like OR"))?
            .map(|s| s.to_ascii_uppercase());
        let zip = address_text("zip", zip, 10)
            .map_err(|_| FieldError::new("zip", "enter a ZIP code like 97201 or 97201-1234"))?;
        if line1.is_none() && line2.is_none() && city.is_none() && state.is_none() && zip.is_none() {
            return Ok(None);
        }
        let needed = |field: &'static str, what: &str| {
            FieldError::new(field, format!("enter the {what} (the form requires it), or leave the whole address empty"))
        };
        let address_line1 = line1.ok_or_else(|| needed("address_line1", "first address line"))?;
        let city = city.ok_or_else(|| needed("city", "city"))?;
        let state = state.ok_or_else(|| needed("state", "state"))?;
        if !US_STATE_CODES.contains(&state.as_str()) {
            return Err(FieldError::new("state", format!("{state} is not a US state code; enter one like OR or NY")));
        }
        let zip = zip.ok_or_else(|| needed("zip", "ZIP code"))?;
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        let zip_ok = match zip.split_once('-') {
            None => digits(&zip, 5),
            Some((five, four)) => digits(five, 5) && digits(four, 4),
        };
        if !zip_ok {
            return Err(FieldError::new("zip", "enter a ZIP code like 97201 or 97201-1234"));
        }
        Ok(Some(Self { address_line1, address_line2: line2, city, state, zip }))
    }
}

/// The form's adverse-event questions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemsAeAnswers {
    pub sedation: Option<bool>,
    pub dissociation: Option<bool>,
    pub respiratory_depression: Option<bool>,
    pub serious: Option<bool>,
    pub serious_details: Option<String>,
}

impl RemsAeAnswers {
    /// The answers from the session's adverse-event records. An event recorded answers yes; no
    /// event answers no only once staff have completed the session's adverse-event review
    /// (absence from an unfinished record is not a "no").
    pub fn from_events(events: &[AdverseEvent], review_complete: bool) -> Self {
        let any = |codes: &[BuiltinAe]| {
            let found = events.iter().any(|e| matches!(e.code(), AeCode::Builtin(b) if codes.contains(b)));
            if found {
                Some(true)
            } else if review_complete {
                Some(false)
            } else {
                None
            }
        };
        let serious: Vec<&AdverseEvent> = events.iter().filter(|e| e.is_serious()).collect();
        Self {
            sedation: any(&[BuiltinAe::SedationSomnolence, BuiltinAe::LossOfConsciousness]),
            dissociation: any(&[BuiltinAe::Dissociation]),
            respiratory_depression: any(&[BuiltinAe::RespiratoryDepression]),
            serious: if !serious.is_empty() {
                Some(true)
            } else if review_complete {
                Some(false)
            } else {
                None
            },
            serious_details: None,
        }
    }
}

/// What the form is filled from. `None` is "not recorded", never "no".
#[derive(Debug, Clone, PartialEq)]
pub struct RemsSessionFacts {
    pub patient_first_name: Option<String>,
    pub patient_middle_initial: Option<String>,
    pub patient_last_name: Option<String>,
    pub patient_birth_date: Option<Date>,
    pub patient_sex: Option<FormSex>,
    pub first_treatment: Option<bool>,
    pub enrolled_in_rems: Option<bool>,
    pub concomitant: ConcomitantMedication,
    pub hcp: MonitoringHcp,
    pub setting: HealthcareSetting,
    /// The session's date on the clinic's calendar.
    pub treatment_date: Date,
    pub dose_mg: Option<u16>,
    pub lot_number: Option<String>,
    pub first_device_at: Option<UtcTs>,
    pub monitoring_completed_at: Option<UtcTs>,
    pub minutes_until_ready_without_requirement: Option<u16>,
    pub vitals_acceptable_before_administration: Option<bool>,
    pub vitals_acceptable_before_completion: Option<bool>,
    pub bp_before_administration: Option<BloodPressure>,
    pub bp_40_min: Option<BloodPressure>,
    pub bp_before_completion: Option<BloodPressure>,
    pub adverse_events: RemsAeAnswers,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FilledField {
    pub id: String,
    pub section: String,
    pub label: String,
    pub value: Option<FieldValue>,
    /// The value as written on the form.
    pub display: Option<String>,
    pub unverified: bool,
}

/// A required field with no value, or a value the form does not accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FormIssue {
    pub id: String,
    pub label: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FilledForm {
    pub form: String,
    pub version: String,
    pub fields: Vec<FilledField>,
    pub missing_required: Vec<FormIssue>,
    pub invalid: Vec<FormIssue>,
}

impl FilledForm {
    /// Ready to submit: nothing required missing, nothing invalid.
    pub fn complete(&self) -> bool {
        self.missing_required.is_empty() && self.invalid.is_empty()
    }

    pub fn value(&self, id: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|f| f.id == id).and_then(|f| f.value.as_ref())
    }
}

fn text(v: &Option<String>) -> Option<FieldValue> {
    v.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(|t| FieldValue::Text(t.to_owned()))
}

fn yes_no(v: Option<bool>) -> Option<FieldValue> {
    v.map(FieldValue::YesNo)
}

fn bp(v: Option<BloodPressure>) -> Option<FieldValue> {
    v.map(|b| FieldValue::BloodPressure { systolic: b.systolic.value(), diastolic: b.diastolic.value() })
}

impl RemsSessionFacts {
    /// The value of one field id, or why it cannot be given.
    fn value_of(&self, id: &str) -> Result<Option<FieldValue>, String> {
        let c = &self.concomitant;
        Ok(match id {
            "patient_first_name" => text(&self.patient_first_name),
            "patient_middle_initial" => text(&self.patient_middle_initial),
            "patient_last_name" => text(&self.patient_last_name),
            "patient_birth_date" => self.patient_birth_date.map(FieldValue::Date),
            "patient_sex" => self.patient_sex.map(FieldValue::Sex),
            "first_treatment" => yes_no(self.first_treatment),
            "enrolled_in_rems" => yes_no(self.enrolled_in_rems),
            "cm_benzodiazepines" => yes_no(c.benzodiazepines),
            "cm_non_benzodiazepine_sedative_hypnotics" => yes_no(c.non_benzodiazepine_sedative_hypnotics),
            "cm_psychostimulants" => yes_no(c.psychostimulants),
            "cm_maois" => yes_no(c.maois),
            "cm_opioids" => yes_no(c.opioids),
            "hcp_first_name" => text(&self.hcp.first_name),
            "hcp_last_name" => text(&self.hcp.last_name),
            "hcp_telephone" => text(&self.hcp.telephone),
            "hcp_email" => text(&self.hcp.email),
            "setting_name" => text(&self.setting.name),
            "setting_address1" => text(&self.setting.address1),
            "setting_address2" => text(&self.setting.address2),
            "setting_city" => text(&self.setting.city),
            "setting_state" => text(&self.setting.state),
            "setting_zip" => text(&self.setting.zip),
            "treatment_date" => Some(FieldValue::Date(self.treatment_date)),
            "dose_administered" => self.dose_mg.map(|mg| FieldValue::Dose(RemsDose::from_mg(mg))),
            "lot_number" => text(&self.lot_number),
            "treatment_duration_minutes" => match (self.first_device_at, self.monitoring_completed_at) {
                (Some(first), Some(done)) if done < first => {
                    return Err("monitoring cannot end before the first device".into());
                }
                (Some(first), Some(done)) => Some(FieldValue::Integer(treatment_duration_minutes(first, done))),
                _ => None,
            },
            "minutes_until_ready_without_requirement" => {
                self.minutes_until_ready_without_requirement.map(|m| FieldValue::Integer(m.into()))
            }
            "vitals_acceptable_before_administration" => yes_no(self.vitals_acceptable_before_administration),
            "vitals_acceptable_before_completion" => yes_no(self.vitals_acceptable_before_completion),
            "bp_before_administration" => bp(self.bp_before_administration),
            "bp_40_min_post_administration" => bp(self.bp_40_min),
            "bp_before_completion" => bp(self.bp_before_completion),
            "ae_sedation" => yes_no(self.adverse_events.sedation),
            "ae_dissociation" => yes_no(self.adverse_events.dissociation),
            "ae_respiratory_depression" => yes_no(self.adverse_events.respiratory_depression),
            "ae_serious" => yes_no(self.adverse_events.serious),
            "ae_serious_details" => text(&self.adverse_events.serious_details),
            other => return Err(format!("no session fact fills field {other}")),
        })
    }
}

/// Fills the form from the session and lists what is missing or not accepted.
pub fn fill(def: &FormDefinition, facts: &RemsSessionFacts) -> FilledForm {
    let mut fields = Vec::with_capacity(def.fields.len());
    let mut missing_required = Vec::new();
    let mut invalid = Vec::new();
    let issue = |f: &FieldDef, message: String| FormIssue { id: f.id.clone(), label: f.label.clone(), message };
    for f in &def.fields {
        let value = match facts.value_of(&f.id) {
            Ok(v) => v,
            Err(message) => {
                invalid.push(issue(f, message));
                None
            }
        };
        if let (Some(FieldValue::Integer(n)), Some(min)) = (&value, f.min)
            && *n < min
        {
            invalid.push(issue(f, format!("{n} is below the form's minimum of {min}")));
        }
        let condition_met = f
            .required_if_yes
            .as_deref()
            .is_some_and(|cond| matches!(facts.value_of(cond), Ok(Some(FieldValue::YesNo(true)))));
        if value.is_none() && (f.required || condition_met) {
            missing_required.push(issue(f, "required on the form and not recorded".to_owned()));
        }
        fields.push(FilledField {
            id: f.id.clone(),
            section: f.section.clone(),
            label: f.label.clone(),
            display: value.as_ref().map(ToString::to_string),
            value,
            unverified: f.unverified,
        });
    }
    FilledForm { form: def.form.clone(), version: def.version.clone(), fields, missing_required, invalid }
}

/// What the dosing session itself says for the form; the patient, the HCP, the setting and the
/// concomitant medication come from the rest of the record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionAnswers {
    pub dose_mg: Option<u16>,
    pub lot_number: Option<String>,
    pub first_device_at: Option<UtcTs>,
    /// The discharge: monitoring is complete when the patient leaves.
    pub monitoring_completed_at: Option<UtcTs>,
    pub vitals_acceptable_before_administration: Option<bool>,
    pub vitals_acceptable_before_completion: Option<bool>,
    pub bp_before_administration: Option<BloodPressure>,
    pub bp_40_min: Option<BloodPressure>,
    pub bp_before_completion: Option<BloodPressure>,
    pub adverse_events: RemsAeAnswers,
}

/// How far from 40 minutes after the first device a reading may be taken and still be the
/// form's "40 mins post-administration" blood pressure.
pub const BP_40_MIN_TOLERANCE_MINUTES: i64 = 15;

impl SessionAnswers {
    /// Reads the form's answers from the session:
    /// - the pre-administration BP is the last one taken up to the first device; it is in the
    ///   acceptable range when neither MON-01 nor MON-02 of the session's protocol is crossed;
    /// - the 40-minute BP is the one taken closest to 40 minutes after the first device (REMS
    ///   counts from the first device), within [`BP_40_MIN_TOLERANCE_MINUTES`];
    /// - the pre-completion BP is the last one taken after the dose and up to the discharge;
    ///   the vitals are acceptable at completion when DC-03 was met at the discharge;
    /// - the adverse-event answers come from the session's records; the discharge closes the
    ///   session's review (DC-09 is judged then), so no record answers "no" only once discharged.
    pub fn from_session(session: &Session, ctx: &Context) -> Self {
        let bps: Vec<(UtcTs, BloodPressure)> = session
            .readings()
            .iter()
            .filter_map(|r| match r.measurement {
                Measurement::BloodPressure { bp, .. } => Some((r.taken_at, bp)),
                _ => None,
            })
            .collect();
        let start = session.dose_times().map(|d| d.started_at);
        let discharged = session.discharged().map(|s| s.at);
        let bp_before_administration =
            start.and_then(|s| bps.iter().filter(|(t, _)| *t <= s).max_by_key(|(t, _)| *t).map(|(_, bp)| *bp));
        let bp_40_min = start.and_then(|s| {
            let target = s.unix_micros().saturating_add(40 * 60_000_000);
            bps.iter()
                .filter(|(t, _)| *t > s)
                .map(|(t, bp)| (t.unix_micros().saturating_sub(target).abs(), *bp))
                .filter(|(off, _)| *off <= BP_40_MIN_TOLERANCE_MINUTES * 60_000_000)
                .min_by_key(|(off, _)| *off)
                .map(|(_, bp)| bp)
        });
        let bp_before_completion = match (start, discharged) {
            (Some(s), Some(d)) => {
                bps.iter().filter(|(t, _)| *t > s && *t <= d).max_by_key(|(t, _)| *t).map(|(_, bp)| *bp)
            }
            _ => None,
        };
        let vitals_acceptable_before_administration = bp_before_administration
            .map(|bp| matches!(pre_dose_bp(&ctx.protocol.monitoring.thresholds, bp), PreDoseBp::Pass));
        let vitals_acceptable_before_completion = discharged.and_then(|at| {
            let at_discharge = Context { now: at, ..ctx.clone() };
            let dc03 = session.discharge(&at_discharge)?.criteria.into_iter().find(|c| c.id == "DC-03")?;
            match dc03.status {
                CriterionStatus::Met => Some(true),
                CriterionStatus::Unmet => Some(false),
                CriterionStatus::NotYetRecorded => None,
            }
        });
        let administration = session.administration();
        Self {
            dose_mg: administration.map(|a| a.details.dose_mg.round().clamp(0.0, f64::from(u16::MAX)) as u16),
            lot_number: administration.map(|a| a.details.lot.clone()),
            first_device_at: session.devices().first().copied(),
            monitoring_completed_at: discharged,
            vitals_acceptable_before_administration,
            vitals_acceptable_before_completion,
            bp_before_administration,
            bp_40_min,
            bp_before_completion,
            adverse_events: RemsAeAnswers::from_events(session.adverse_events(), discharged.is_some()),
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;
    use proptest::prelude::*;

    use super::*;
    use crate::adverse_event::{AeAction, AeOutcome, AeSeverity, NewAdverseEvent, SaeCriterion};
    use crate::vitals::{DiastolicBp, SystolicBp};

    fn definition() -> FormDefinition {
        serde_json::from_str(include_str!("../../../content/rems/patient-monitoring-form.json")).unwrap()
    }

    fn ts(h: i64, m: i64) -> UtcTs {
        // 2025-03-07T00:00:00Z
        UtcTs::from_unix_micros(1_741_305_600_000_000 + (h * 60 + m) * 60_000_000)
    }

    fn bp(sys: u16, dia: u16) -> Option<BloodPressure> {
        Some(BloodPressure::new(SystolicBp::new(sys).unwrap(), DiastolicBp::new(dia).unwrap()).unwrap())
    }

    fn text(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    /// TV-SPR-1's session on Fri 2025-03-07: 84 mg, first device 10:00, monitoring completed 12:20.
    fn facts() -> RemsSessionFacts {
        RemsSessionFacts {
            patient_first_name: text("Ada"),
            patient_middle_initial: None,
            patient_last_name: text("Example"),
            patient_birth_date: Some(date(1980, 5, 17)),
            patient_sex: Some(FormSex::Female),
            first_treatment: Some(false),
            enrolled_in_rems: None,
            concomitant: ConcomitantMedication {
                benzodiazepines: Some(false),
                non_benzodiazepine_sedative_hypnotics: Some(false),
                psychostimulants: Some(false),
                maois: Some(false),
                opioids: None,
            },
            hcp: MonitoringHcp {
                first_name: text("Sam"),
                last_name: text("Nurse"),
                telephone: text("555-0100"),
                email: text("sam@clinic.example"),
            },
            setting: HealthcareSetting {
                name: text("Kapstone Clinic"),
                address1: text("1 Main St"),
                address2: None,
                city: text("Springfield"),
                state: text("IL"),
                zip: text("62701"),
            },
            treatment_date: date(2025, 3, 7),
            dose_mg: Some(84),
            lot_number: text("LOT123"),
            first_device_at: Some(ts(10, 0)),
            monitoring_completed_at: Some(ts(12, 20)),
            minutes_until_ready_without_requirement: Some(95),
            vitals_acceptable_before_administration: Some(true),
            vitals_acceptable_before_completion: Some(true),
            bp_before_administration: bp(130, 80),
            bp_40_min: bp(150, 88),
            bp_before_completion: bp(128, 82),
            adverse_events: RemsAeAnswers {
                sedation: Some(true),
                dissociation: Some(true),
                respiratory_depression: Some(false),
                serious: Some(false),
                serious_details: None,
            },
        }
    }

    fn ids(issues: &[FormIssue]) -> Vec<&str> {
        issues.iter().map(|i| i.id.as_str()).collect()
    }

    #[test]
    fn the_2021_11_definition_loads_and_fits_the_code() {
        let def = definition();
        assert_eq!(def.version, "2021-11");
        assert_eq!(def.submit_within_days, 7);
        assert_eq!(def.check(), Ok(()));
    }

    #[test]
    fn required_fields_are_the_asterisked_ones_of_5_6() {
        let def = definition();
        let required: Vec<&str> = def.fields.iter().filter(|f| f.required).map(|f| f.id.as_str()).collect();
        assert_eq!(
            required,
            [
                "patient_first_name",
                "patient_last_name",
                "patient_birth_date",
                "patient_sex",
                "cm_benzodiazepines",
                "cm_non_benzodiazepine_sedative_hypnotics",
                "cm_psychostimulants",
                "cm_maois",
                "hcp_first_name",
                "hcp_last_name",
                "hcp_telephone",
                "hcp_email",
                "setting_name",
                "setting_address1",
                "setting_city",
                "setting_state",
                "setting_zip",
                "treatment_date",
                "dose_administered",
                "treatment_duration_minutes",
            ]
        );
        let unverified: Vec<&str> = def.fields.iter().filter(|f| f.unverified).map(|f| f.id.as_str()).collect();
        for id in ["first_treatment", "enrolled_in_rems", "cm_maois", "ae_respiratory_depression", "ae_serious"] {
            assert!(unverified.contains(&id), "{id} is marked UNVERIFIED in the spec");
        }
        assert!(!unverified.contains(&"treatment_duration_minutes"));
    }

    #[test]
    fn tv_spr_4_a_form_for_friday_2025_03_07_is_due_on_2025_03_14() {
        assert_eq!(definition().due_by(date(2025, 3, 7)), date(2025, 3, 14));
    }

    #[test]
    fn tv_spr_4_unsubmitted_on_2025_03_15_it_is_overdue() {
        let def = definition();
        let session = date(2025, 3, 7);
        assert_eq!(
            def.submission_status(session, None, date(2025, 3, 14)),
            SubmissionStatus::Pending { due: date(2025, 3, 14) }
        );
        assert_eq!(
            def.submission_status(session, None, date(2025, 3, 15)),
            SubmissionStatus::Overdue { due: date(2025, 3, 14) }
        );
        assert_eq!(
            def.submission_status(session, Some(date(2025, 3, 15)), date(2025, 3, 20)),
            SubmissionStatus::Submitted { on: date(2025, 3, 15), late: true }
        );
    }

    #[test]
    fn a_complete_session_fills_the_form_with_a_140_minute_duration() {
        let form = fill(&definition(), &facts());
        assert!(form.complete(), "{:?} {:?}", form.missing_required, form.invalid);
        assert_eq!(form.version, "2021-11");
        assert_eq!(form.value("treatment_duration_minutes"), Some(&FieldValue::Integer(140)));
        let display = |id: &str| form.fields.iter().find(|f| f.id == id).and_then(|f| f.display.clone());
        assert_eq!(display("treatment_date").as_deref(), Some("03/07/2025"));
        assert_eq!(display("patient_birth_date").as_deref(), Some("05/17/1980"));
        assert_eq!(display("dose_administered").as_deref(), Some("84 mg"));
        assert_eq!(display("bp_40_min_post_administration").as_deref(), Some("150/88"));
        assert_eq!(display("patient_sex").as_deref(), Some("Female"));
        assert_eq!(display("cm_maois").as_deref(), Some("No"));
    }

    #[test]
    fn missing_required_fields_are_listed_and_optional_ones_are_not() {
        let f = RemsSessionFacts {
            hcp: MonitoringHcp { email: None, ..facts().hcp },
            patient_sex: None,
            lot_number: None,
            dose_mg: None,
            ..facts()
        };
        let form = fill(&definition(), &f);
        assert_eq!(ids(&form.missing_required), ["patient_sex", "hcp_email", "dose_administered"]);
        assert!(!form.complete());
        let blank_name = RemsSessionFacts { patient_first_name: text("  "), ..facts() };
        assert_eq!(ids(&fill(&definition(), &blank_name).missing_required), ["patient_first_name"]);
    }

    #[test]
    fn a_duration_under_120_minutes_is_not_accepted() {
        let early = RemsSessionFacts { monitoring_completed_at: Some(ts(11, 55)), ..facts() };
        let form = fill(&definition(), &early);
        assert_eq!(ids(&form.invalid), ["treatment_duration_minutes"]);
        assert!(form.invalid[0].message.contains("115"));
        let backwards = RemsSessionFacts { monitoring_completed_at: Some(ts(9, 0)), ..facts() };
        assert_eq!(ids(&fill(&definition(), &backwards).invalid), ["treatment_duration_minutes"]);
        let running = RemsSessionFacts { monitoring_completed_at: None, ..facts() };
        assert_eq!(ids(&fill(&definition(), &running).missing_required), ["treatment_duration_minutes"]);
    }

    #[test]
    fn other_doses_are_written_as_other_with_the_value() {
        let f = RemsSessionFacts { dose_mg: Some(28), ..facts() };
        assert_eq!(fill(&definition(), &f).value("dose_administered"), Some(&FieldValue::Dose(RemsDose::Other(28))));
        assert_eq!(RemsDose::from_mg(56), RemsDose::Mg56);
    }

    #[test]
    fn a_serious_adverse_event_needs_its_details() {
        let mut f = facts();
        f.adverse_events.serious = Some(true);
        assert_eq!(ids(&fill(&definition(), &f).missing_required), ["ae_serious_details"]);
        f.adverse_events.serious_details = text("Transferred to the ED for observation");
        assert!(fill(&definition(), &f).complete());
    }

    #[test]
    fn adverse_event_answers_come_from_the_records_once_the_review_is_complete() {
        let event = |code, serious: bool| {
            AdverseEvent::new(NewAdverseEvent {
                code: AeCode::Builtin(code),
                onset_at: ts(10, 20),
                severity: AeSeverity::Moderate,
                seriousness: if serious {
                    BTreeSet::from([SaeCriterion::OtherMedicallyImportant])
                } else {
                    BTreeSet::new()
                },
                actions: BTreeSet::from([if serious { AeAction::IncreasedMonitoring } else { AeAction::NoneRequired }]),
                action_details: None,
                outcome: AeOutcome::Resolved,
                resolved_at: Some(ts(11, 0)),
            })
            .unwrap()
        };
        let events = [event(BuiltinAe::SedationSomnolence, false), event(BuiltinAe::Dissociation, true)];
        let partial = RemsAeAnswers::from_events(&events, false);
        assert_eq!(
            (partial.sedation, partial.dissociation, partial.respiratory_depression, partial.serious),
            (Some(true), Some(true), None, Some(true))
        );
        let done = RemsAeAnswers::from_events(&events[..1], true);
        assert_eq!((done.respiratory_depression, done.serious), (Some(false), Some(false)));
    }

    #[test]
    fn a_definition_the_code_cannot_fill_is_refused() {
        let mut def = definition();
        def.fields[0].id = "patient_nickname".into();
        assert!(def.check().is_err());
        let mut def = definition();
        def.fields.retain(|f| f.id != "ae_serious");
        assert!(def.check().is_err(), "ae_serious_details depends on it");
        let mut def = definition();
        if let Some(f) = def.fields.iter_mut().find(|f| f.id == "treatment_duration_minutes") {
            f.min = Some(90);
        }
        assert!(def.check().is_err(), "the 120-minute floor is the label's");
        let mut def = definition();
        def.fields[3].kind = FieldKind::Text;
        assert!(def.check().is_err());
        let mut def = definition();
        def.fields.push(def.fields[0].clone());
        assert!(def.check().is_err());
    }

    #[test]
    fn a_setting_address_has_the_forms_required_parts_or_none_at_all() {
        let a = SettingAddress::parse(" 1 Example  Way ", "", "Portland", "or", "97201-1234").unwrap().unwrap();
        assert_eq!(
            (a.address_line1.as_str(), a.address_line2, a.state.as_str(), a.zip.as_str()),
            ("1 Example Way", None, "OR", "97201-1234")
        );
        assert_eq!(SettingAddress::parse(" ", "", "", "", ""), Ok(None), "all blank clears it");
        let field = |r: Result<Option<SettingAddress>, FieldError>| r.err().map(|e| e.field);
        assert_eq!(field(SettingAddress::parse("", "Suite 2", "Portland", "OR", "97201")), Some("address_line1"));
        assert_eq!(field(SettingAddress::parse("1 Example Way", "", "", "OR", "97201")), Some("city"));
        assert_eq!(field(SettingAddress::parse("1 Example Way", "", "Portland", "Oregon", "97201")), Some("state"));
        assert_eq!(field(SettingAddress::parse("1 Example Way", "", "Portland", "XX", "97201")), Some("state"));
        for zip in ["9720", "97201-12", "ABCDE", "97201 1234", "972011234"] {
            assert_eq!(field(SettingAddress::parse("1 Example Way", "", "Portland", "OR", zip)), Some("zip"), "{zip}");
        }
        let long = "x".repeat(101);
        assert_eq!(field(SettingAddress::parse(&long, "", "Portland", "OR", "97201")), Some("address_line1"));
        assert_eq!(
            field(SettingAddress::parse("1 Example Way", "a\u{7}b", "Portland", "OR", "97201")),
            Some("address_line2")
        );
    }

    proptest! {
        #[test]
        fn the_form_is_due_seven_calendar_days_later_and_overdue_the_day_after(days in 0i64..3650) {
            let def = definition();
            let session = date(2024, 1, 1).checked_add(days.days()).unwrap();
            let due = def.due_by(session);
            prop_assert_eq!(session.until(due).unwrap().get_days(), 7);
            prop_assert_eq!(def.submission_status(session, None, due), SubmissionStatus::Pending { due });
            let next = due.tomorrow().unwrap();
            prop_assert_eq!(def.submission_status(session, None, next), SubmissionStatus::Overdue { due });
        }
    }
}
