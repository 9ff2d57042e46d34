//! Adverse events of a dosing session (KAP-SPEC 5.5): a coded list with stable snake_case codes
//! (the label's common adverse reactions [S2], the ketamine and REMS risks [S12][S3], the boxed
//! warning [S1]), extendable by the clinic with `custom:` codes, and the record of one event.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{FieldError, UtcTs};

/// The built-in adverse events of KAP-SPEC 5.5. Codes are stable: they are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BuiltinAe {
    Dissociation,
    Dizziness,
    Nausea,
    Vomiting,
    SedationSomnolence,
    Vertigo,
    Headache,
    Dysgeusia,
    Hypoesthesia,
    Anxiety,
    Lethargy,
    BloodPressureIncreased,
    Insomnia,
    Diarrhea,
    NasalDiscomfort,
    ThroatIrritation,
    FeelingDrunk,
    DryMouth,
    Hyperhidrosis,
    EuphoricMood,
    Dysarthria,
    Tremor,
    MentalImpairment,
    Tachycardia,
    Pollakiuria,
    RespiratoryDepression,
    LossOfConsciousness,
    EmergenceReaction,
    Hypersalivation,
    Laryngospasm,
    Anaphylaxis,
    InjectionSiteReaction,
    UrinaryBladderSymptoms,
    DiplopiaNystagmus,
    SuicidalIdeationBehavior,
}

/// Code, display name and source of each built-in event, in the enum's order (a test holds
/// them together).
const TABLE: [(BuiltinAe, &str, &str, &str); 35] = [
    (BuiltinAe::Dissociation, "dissociation", "Dissociation", "S2"),
    (BuiltinAe::Dizziness, "dizziness", "Dizziness", "S2"),
    (BuiltinAe::Nausea, "nausea", "Nausea", "S2"),
    (BuiltinAe::Vomiting, "vomiting", "Vomiting", "S2"),
    (BuiltinAe::SedationSomnolence, "sedation_somnolence", "Sedation / somnolence", "S2"),
    (BuiltinAe::Vertigo, "vertigo", "Vertigo", "S2"),
    (BuiltinAe::Headache, "headache", "Headache", "S2"),
    (BuiltinAe::Dysgeusia, "dysgeusia", "Dysgeusia (altered taste)", "S2"),
    (BuiltinAe::Hypoesthesia, "hypoesthesia", "Hypoesthesia (incl. oral)", "S2"),
    (BuiltinAe::Anxiety, "anxiety", "Anxiety", "S2"),
    (BuiltinAe::Lethargy, "lethargy", "Lethargy", "S2"),
    (BuiltinAe::BloodPressureIncreased, "blood_pressure_increased", "Blood pressure increased", "S2"),
    (BuiltinAe::Insomnia, "insomnia", "Insomnia", "S2"),
    (BuiltinAe::Diarrhea, "diarrhea", "Diarrhea", "S2"),
    (BuiltinAe::NasalDiscomfort, "nasal_discomfort", "Nasal discomfort", "S2"),
    (BuiltinAe::ThroatIrritation, "throat_irritation", "Throat irritation", "S2"),
    (BuiltinAe::FeelingDrunk, "feeling_drunk", "Feeling drunk", "S2"),
    (BuiltinAe::DryMouth, "dry_mouth", "Dry mouth", "S2"),
    (BuiltinAe::Hyperhidrosis, "hyperhidrosis", "Hyperhidrosis (sweating)", "S2"),
    (BuiltinAe::EuphoricMood, "euphoric_mood", "Euphoric mood", "S2"),
    (BuiltinAe::Dysarthria, "dysarthria", "Dysarthria (slurred speech)", "S2"),
    (BuiltinAe::Tremor, "tremor", "Tremor", "S2"),
    (BuiltinAe::MentalImpairment, "mental_impairment", "Mental impairment", "S2"),
    (BuiltinAe::Tachycardia, "tachycardia", "Tachycardia", "S2"),
    (BuiltinAe::Pollakiuria, "pollakiuria", "Pollakiuria (frequent urination)", "S2"),
    (BuiltinAe::RespiratoryDepression, "respiratory_depression", "Respiratory depression", "S12 S3"),
    (BuiltinAe::LossOfConsciousness, "loss_of_consciousness", "Loss of consciousness", "S12 S3"),
    (BuiltinAe::EmergenceReaction, "emergence_reaction", "Emergence reaction / delirium", "S12 S3"),
    (BuiltinAe::Hypersalivation, "hypersalivation", "Hypersalivation", "S12 S3"),
    (BuiltinAe::Laryngospasm, "laryngospasm", "Laryngospasm", "S12 S3"),
    (BuiltinAe::Anaphylaxis, "anaphylaxis", "Anaphylaxis", "S12 S3"),
    (BuiltinAe::InjectionSiteReaction, "injection_site_reaction", "Injection-site pain / rash", "S12 S3"),
    (BuiltinAe::UrinaryBladderSymptoms, "urinary_bladder_symptoms", "Urinary / bladder symptoms", "S12 S3"),
    (BuiltinAe::DiplopiaNystagmus, "diplopia_nystagmus", "Diplopia / nystagmus", "S12 S3"),
    (BuiltinAe::SuicidalIdeationBehavior, "suicidal_ideation_behavior", "Suicidal ideation / behavior", "S1"),
];

impl BuiltinAe {
    pub fn all() -> impl Iterator<Item = BuiltinAe> {
        TABLE.iter().map(|e| e.0)
    }

    fn entry(self) -> &'static (BuiltinAe, &'static str, &'static str, &'static str) {
        &TABLE[self as usize]
    }

    pub fn code(self) -> &'static str {
        self.entry().1
    }

    pub fn display_name(self) -> &'static str {
        self.entry().2
    }

    /// Source ids of KAP-SPEC's register.
    pub fn source(self) -> &'static str {
        self.entry().3
    }

    pub fn parse(code: &str) -> Option<Self> {
        TABLE.iter().find(|e| e.1 == code).map(|e| e.0)
    }
}

pub const CUSTOM_PREFIX: &str = "custom:";
const MAX_CODE: usize = 64;
const MAX_TEXT: usize = 4000;

/// A clinic's own code: `custom:` and a snake_case name (`custom:jaw_clenching`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct CustomAeCode(String);

impl CustomAeCode {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let err = |m: &str| Err(FieldError::new("code", m));
        let Some(name) = raw.strip_prefix(CUSTOM_PREFIX) else {
            return err("a clinic's own adverse-event code starts with custom:");
        };
        let snake = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !snake || name.len() > MAX_CODE {
            return err(
                "after custom:, use up to 64 lowercase letters, digits and underscores, starting with a letter",
            );
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn name(&self) -> &str {
        self.0.strip_prefix(CUSTOM_PREFIX).unwrap_or(&self.0)
    }
}

impl TryFrom<String> for CustomAeCode {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse(&s)
    }
}

impl From<CustomAeCode> for String {
    fn from(c: CustomAeCode) -> String {
        c.0
    }
}

/// An adverse-event code: built in, or one of the clinic's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub enum AeCode {
    Builtin(BuiltinAe),
    Custom(CustomAeCode),
}

impl AeCode {
    /// A built-in code, or any well-formed `custom:` code (whether the clinic defines it is
    /// [`AeCatalogue::resolve`]'s question).
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if let Some(b) = BuiltinAe::parse(raw) {
            return Ok(AeCode::Builtin(b));
        }
        if raw.starts_with(CUSTOM_PREFIX) {
            return CustomAeCode::parse(raw).map(AeCode::Custom);
        }
        Err(FieldError::new("code", format!("{raw:?} is not an adverse-event code")))
    }

    pub fn as_str(&self) -> &str {
        match self {
            AeCode::Builtin(b) => b.code(),
            AeCode::Custom(c) => c.as_str(),
        }
    }
}

impl fmt::Display for AeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for AeCode {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        Self::parse(&s)
    }
}

impl From<AeCode> for String {
    fn from(c: AeCode) -> String {
        c.as_str().to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomAeEntry {
    pub code: CustomAeCode,
    pub display_name: String,
}

/// The clinic's extra adverse-event codes (KAP-SPEC 5.5 "CONFIG-extendable"). Built-in codes are
/// always there; a custom one may not repeat one of them under the prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AeCatalogue {
    #[serde(default)]
    pub custom: Vec<CustomAeEntry>,
}

impl AeCatalogue {
    pub fn check(&self) -> Result<(), FieldError> {
        let mut seen = BTreeSet::new();
        for e in &self.custom {
            if BuiltinAe::parse(e.code.name()).is_some() {
                return Err(FieldError::new(
                    "code",
                    format!("{} repeats the built-in code {}; use that instead", e.code.as_str(), e.code.name()),
                ));
            }
            if !seen.insert(&e.code) {
                return Err(FieldError::new("code", format!("{} is listed twice", e.code.as_str())));
            }
            let name = e.display_name.trim();
            if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
                return Err(FieldError::new("display_name", "give a display name of up to 200 characters"));
            }
        }
        Ok(())
    }

    /// A code staff may record: built in, or one the clinic has defined.
    pub fn resolve(&self, raw: &str) -> Result<AeCode, FieldError> {
        let code = AeCode::parse(raw)?;
        if let AeCode::Custom(c) = &code
            && !self.custom.iter().any(|e| &e.code == c)
        {
            return Err(FieldError::new("code", format!("{} is not one of the clinic's codes", c.as_str())));
        }
        Ok(code)
    }

    /// The name shown for a code; a custom code the clinic has since removed shows as itself.
    pub fn display_name<'a>(&'a self, code: &'a AeCode) -> &'a str {
        match code {
            AeCode::Builtin(b) => b.display_name(),
            AeCode::Custom(c) => {
                self.custom.iter().find(|e| &e.code == c).map_or(c.as_str(), |e| e.display_name.as_str())
            }
        }
    }

    /// Every code with its display name, built-in first: the picker's list.
    pub fn entries(&self) -> Vec<(String, String)> {
        BuiltinAe::all()
            .map(|b| (b.code().to_owned(), b.display_name().to_owned()))
            .chain(self.custom.iter().map(|e| (e.code.as_str().to_owned(), e.display_name.clone())))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AeSeverity {
    Mild,
    Moderate,
    Severe,
}

/// The criteria that make an adverse event serious (KAP-SPEC 5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SaeCriterion {
    Death,
    LifeThreatening,
    Hospitalization,
    Disability,
    OtherMedicallyImportant,
}

/// What was done, in the words of the 5.3 actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AeAction {
    NoneRequired,
    /// MON-03: BP checked more often.
    IncreasedMonitoring,
    /// MON-05.
    InfusionPaused,
    /// MON-06, MON-07, MON-09.
    DosingStopped,
    /// MON-06, MON-07: stimulation, airway support, oxygen.
    AirwaySupportOrOxygen,
    /// MON-11: rescue per protocol; or symptomatic treatment (e.g. antiemetic).
    MedicationGiven,
    /// MON-04, MON-10.
    EmergencyServicesCalled,
    TransferredToHospital,
    /// Described in `action_details`.
    Other,
}

/// Outcome of the event (the usual pharmacovigilance categories; KAP-SPEC 5.5 names the field,
/// not its values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AeOutcome {
    Resolved,
    ResolvedWithSequelae,
    Resolving,
    NotResolved,
    Fatal,
    Unknown,
}

impl AeOutcome {
    fn is_resolved(self) -> bool {
        matches!(self, AeOutcome::Resolved | AeOutcome::ResolvedWithSequelae)
    }
}

/// A recorded adverse event; one that exists is consistent (see [`AdverseEvent::new`]). It is
/// read from JSON through the same checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "NewAdverseEvent")]
pub struct AdverseEvent {
    code: AeCode,
    onset_at: UtcTs,
    severity: AeSeverity,
    seriousness: BTreeSet<SaeCriterion>,
    actions: BTreeSet<AeAction>,
    action_details: Option<String>,
    outcome: AeOutcome,
    resolved_at: Option<UtcTs>,
}

/// The parts of an event, with times as instants; the JSON shape of [`AdverseEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdverseEvent {
    pub code: AeCode,
    pub onset_at: UtcTs,
    pub severity: AeSeverity,
    /// Empty: not serious.
    #[serde(default)]
    pub seriousness: BTreeSet<SaeCriterion>,
    #[serde(default)]
    pub actions: BTreeSet<AeAction>,
    #[serde(default)]
    pub action_details: Option<String>,
    pub outcome: AeOutcome,
    #[serde(default)]
    pub resolved_at: Option<UtcTs>,
}

impl TryFrom<NewAdverseEvent> for AdverseEvent {
    type Error = FieldError;
    fn try_from(e: NewAdverseEvent) -> Result<Self, FieldError> {
        AdverseEvent::new(e)
    }
}

impl AdverseEvent {
    /// Checks that the record holds together:
    /// - it cannot resolve before it began;
    /// - a resolved outcome has a resolved time, and only a resolved outcome has one;
    /// - death as a seriousness criterion and a fatal outcome go together;
    /// - a serious event needs an action taken ("none required" does not do);
    /// - "none required" stands alone, and "other" is described.
    pub fn new(e: NewAdverseEvent) -> Result<Self, FieldError> {
        if e.resolved_at.is_some_and(|resolved| resolved < e.onset_at) {
            return Err(FieldError::new("resolved_at", "the event cannot resolve before it began"));
        }
        match (e.outcome.is_resolved(), e.resolved_at) {
            (true, None) => return Err(FieldError::new("resolved_at", "give the time the event resolved")),
            (false, Some(_)) => {
                return Err(FieldError::new("resolved_at", "only a resolved event has a resolved time"));
            }
            _ => {}
        }
        if e.seriousness.contains(&SaeCriterion::Death) != (e.outcome == AeOutcome::Fatal) {
            return Err(FieldError::new("outcome", "a fatal outcome and death as a seriousness criterion go together"));
        }
        let serious = !e.seriousness.is_empty();
        if serious && e.actions.iter().all(|a| *a == AeAction::NoneRequired) {
            return Err(FieldError::new("actions", "a serious adverse event needs the action taken"));
        }
        if e.actions.contains(&AeAction::NoneRequired) && e.actions.len() > 1 {
            return Err(FieldError::new("actions", "\"none required\" cannot go with other actions"));
        }
        let details = e.action_details.as_deref().map(str::trim).filter(|d| !d.is_empty());
        if e.actions.contains(&AeAction::Other) && details.is_none() {
            return Err(FieldError::new("action_details", "describe the other action taken"));
        }
        if details.is_some_and(|d| d.chars().count() > MAX_TEXT || d.chars().any(|c| c.is_control() && c != '\n')) {
            return Err(FieldError::new("action_details", format!("use at most {MAX_TEXT} characters of plain text")));
        }
        Ok(Self {
            code: e.code,
            onset_at: e.onset_at,
            severity: e.severity,
            seriousness: e.seriousness,
            actions: e.actions,
            action_details: details.map(str::to_owned),
            outcome: e.outcome,
            resolved_at: e.resolved_at,
        })
    }

    pub fn code(&self) -> &AeCode {
        &self.code
    }
    pub fn onset_at(&self) -> UtcTs {
        self.onset_at
    }
    pub fn severity(&self) -> AeSeverity {
        self.severity
    }
    pub fn seriousness(&self) -> &BTreeSet<SaeCriterion> {
        &self.seriousness
    }
    pub fn actions(&self) -> &BTreeSet<AeAction> {
        &self.actions
    }
    pub fn action_details(&self) -> Option<&str> {
        self.action_details.as_deref()
    }
    pub fn outcome(&self) -> AeOutcome {
        self.outcome
    }
    pub fn resolved_at(&self) -> Option<UtcTs> {
        self.resolved_at
    }

    /// Meets at least one SAE criterion.
    pub fn is_serious(&self) -> bool {
        !self.seriousness.is_empty()
    }

    /// The event with its outcome updated (an event followed until it resolves).
    pub fn with_outcome(&self, outcome: AeOutcome, resolved_at: Option<UtcTs>) -> Result<Self, FieldError> {
        Self::new(NewAdverseEvent {
            code: self.code.clone(),
            onset_at: self.onset_at,
            severity: self.severity,
            seriousness: self.seriousness.clone(),
            actions: self.actions.clone(),
            action_details: self.action_details.clone(),
            outcome,
            resolved_at,
        })
    }
}

/// DC-09: serious events of the session that have not resolved.
pub fn unresolved_serious(events: &[AdverseEvent]) -> usize {
    events.iter().filter(|e| e.is_serious() && e.resolved_at.is_none()).count()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ts(minutes: i64) -> UtcTs {
        UtcTs::from_unix_micros(1_741_341_600_000_000 + minutes * 60_000_000)
    }

    fn mild_nausea() -> NewAdverseEvent {
        NewAdverseEvent {
            code: AeCode::Builtin(BuiltinAe::Nausea),
            onset_at: ts(20),
            severity: AeSeverity::Mild,
            seriousness: BTreeSet::new(),
            actions: BTreeSet::from([AeAction::NoneRequired]),
            action_details: None,
            outcome: AeOutcome::Resolved,
            resolved_at: Some(ts(50)),
        }
    }

    fn catalogue() -> AeCatalogue {
        AeCatalogue {
            custom: vec![CustomAeEntry {
                code: CustomAeCode::parse("custom:jaw_clenching").unwrap(),
                display_name: "Jaw clenching".into(),
            }],
        }
    }

    #[test]
    fn the_built_in_list_is_the_35_events_of_5_5_in_order_with_unique_snake_case_codes() {
        let all: Vec<BuiltinAe> = BuiltinAe::all().collect();
        assert_eq!(all.len(), 35);
        for (i, ae) in all.iter().enumerate() {
            assert_eq!(*ae as usize, i, "TABLE order");
            assert_eq!(BuiltinAe::parse(ae.code()), Some(*ae));
            assert!(ae.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", ae.code());
        }
        let codes: BTreeSet<&str> = all.iter().map(|a| a.code()).collect();
        assert_eq!(codes.len(), 35);
        assert_eq!(BuiltinAe::SuicidalIdeationBehavior.source(), "S1");
        assert_eq!(BuiltinAe::Pollakiuria.display_name(), "Pollakiuria (frequent urination)");
    }

    #[test]
    fn an_event_round_trips_through_json_and_an_inconsistent_one_is_refused() {
        let ae = AdverseEvent::new(mild_nausea()).unwrap();
        let json = serde_json::to_string(&ae).unwrap();
        assert_eq!(serde_json::from_str::<AdverseEvent>(&json).unwrap(), ae);
        let bad = json.replace("\"outcome\":\"resolved\"", "\"outcome\":\"not_resolved\"");
        assert_ne!(bad, json);
        assert!(serde_json::from_str::<AdverseEvent>(&bad).is_err());
    }

    #[test]
    fn codes_round_trip_through_json_as_plain_strings() {
        for code in [AeCode::Builtin(BuiltinAe::BloodPressureIncreased), AeCode::parse("custom:jaw_clenching").unwrap()]
        {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<AeCode>(&json).unwrap(), code);
        }
        assert_eq!(serde_json::to_string(&AeCode::Builtin(BuiltinAe::DryMouth)).unwrap(), "\"dry_mouth\"");
        assert!(serde_json::from_str::<AeCode>("\"hiccups\"").is_err());
    }

    #[test]
    fn custom_codes_are_prefixed_snake_case() {
        assert!(CustomAeCode::parse("custom:jaw_clenching").is_ok());
        assert!(CustomAeCode::parse("custom:2fast").is_err());
        assert!(CustomAeCode::parse("custom:Jaw").is_err());
        assert!(CustomAeCode::parse("custom:").is_err());
        assert!(CustomAeCode::parse("jaw_clenching").is_err());
        assert!(CustomAeCode::parse(&format!("custom:{}", "a".repeat(65))).is_err());
    }

    #[test]
    fn staff_record_built_in_codes_and_the_clinics_own_only() {
        let c = catalogue();
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.resolve("nausea"), Ok(AeCode::Builtin(BuiltinAe::Nausea)));
        let jaw = c.resolve("custom:jaw_clenching").unwrap();
        assert_eq!(c.display_name(&jaw), "Jaw clenching");
        assert!(c.resolve("custom:tinnitus").is_err());
        assert_eq!(c.entries().len(), 36);
        assert_eq!(c.entries().last().map(|e| e.0.as_str()), Some("custom:jaw_clenching"));
    }

    #[test]
    fn a_clinic_code_may_not_repeat_a_built_in_one_or_itself() {
        let mut c = catalogue();
        c.custom.push(CustomAeEntry { code: CustomAeCode::parse("custom:nausea").unwrap(), display_name: "N".into() });
        assert!(c.check().is_err());
        let mut c = catalogue();
        c.custom.push(c.custom[0].clone());
        assert!(c.check().is_err());
        let json = r#"{"custom":[{"code":"custom:x","display_name":"X","colour":"red"}]}"#;
        assert!(serde_json::from_str::<AeCatalogue>(json).is_err());
    }

    #[test]
    fn a_mild_event_resolved_after_onset_is_recorded() {
        let e = AdverseEvent::new(mild_nausea()).unwrap();
        assert!(!e.is_serious());
        assert_eq!(e.resolved_at(), Some(ts(50)));
    }

    #[test]
    fn an_event_cannot_resolve_before_it_began() {
        let e = AdverseEvent::new(NewAdverseEvent { resolved_at: Some(ts(10)), ..mild_nausea() });
        assert_eq!(e.unwrap_err().field, "resolved_at");
        assert!(AdverseEvent::new(NewAdverseEvent { resolved_at: Some(ts(20)), ..mild_nausea() }).is_ok());
    }

    #[test]
    fn a_serious_event_needs_an_action_taken() {
        let sae = NewAdverseEvent {
            code: AeCode::Builtin(BuiltinAe::RespiratoryDepression),
            severity: AeSeverity::Severe,
            seriousness: BTreeSet::from([SaeCriterion::LifeThreatening]),
            outcome: AeOutcome::Resolving,
            resolved_at: None,
            ..mild_nausea()
        };
        assert_eq!(AdverseEvent::new(sae.clone()).unwrap_err().field, "actions");
        let no_actions = NewAdverseEvent { actions: BTreeSet::new(), ..sae.clone() };
        assert_eq!(AdverseEvent::new(no_actions).unwrap_err().field, "actions");
        let acted = NewAdverseEvent {
            actions: BTreeSet::from([AeAction::DosingStopped, AeAction::AirwaySupportOrOxygen]),
            ..sae
        };
        let e = AdverseEvent::new(acted).unwrap();
        assert!(e.is_serious());
        assert_eq!(unresolved_serious(std::slice::from_ref(&e)), 1);
        let resolved = e.with_outcome(AeOutcome::Resolved, Some(ts(90))).unwrap();
        assert_eq!(unresolved_serious(&[e, resolved]), 1);
    }

    #[test]
    fn outcome_and_resolved_time_agree() {
        let open = NewAdverseEvent { outcome: AeOutcome::NotResolved, ..mild_nausea() };
        assert_eq!(AdverseEvent::new(open).unwrap_err().field, "resolved_at");
        let no_time = NewAdverseEvent { resolved_at: None, ..mild_nausea() };
        assert_eq!(AdverseEvent::new(no_time).unwrap_err().field, "resolved_at");
    }

    #[test]
    fn death_and_a_fatal_outcome_go_together() {
        let fatal = NewAdverseEvent {
            seriousness: BTreeSet::from([SaeCriterion::LifeThreatening]),
            actions: BTreeSet::from([AeAction::EmergencyServicesCalled]),
            outcome: AeOutcome::Fatal,
            resolved_at: None,
            ..mild_nausea()
        };
        assert_eq!(AdverseEvent::new(fatal.clone()).unwrap_err().field, "outcome");
        let with_death = NewAdverseEvent {
            seriousness: BTreeSet::from([SaeCriterion::Death, SaeCriterion::LifeThreatening]),
            ..fatal
        };
        assert!(AdverseEvent::new(with_death).is_ok());
    }

    #[test]
    fn none_required_stands_alone_and_other_is_described() {
        let mixed = NewAdverseEvent {
            actions: BTreeSet::from([AeAction::NoneRequired, AeAction::MedicationGiven]),
            ..mild_nausea()
        };
        assert_eq!(AdverseEvent::new(mixed).unwrap_err().field, "actions");
        let other = NewAdverseEvent {
            actions: BTreeSet::from([AeAction::Other]),
            action_details: Some("  ".into()),
            ..mild_nausea()
        };
        assert_eq!(AdverseEvent::new(other.clone()).unwrap_err().field, "action_details");
        let described = NewAdverseEvent { action_details: Some(" cold compress ".into()), ..other };
        assert_eq!(AdverseEvent::new(described).unwrap().action_details(), Some("cold compress"));
    }

    proptest! {
        #[test]
        fn a_resolution_before_onset_is_always_refused(onset in 0i64..10_000, earlier in 1i64..10_000) {
            let e = NewAdverseEvent { onset_at: ts(onset), resolved_at: Some(ts(onset - earlier)), ..mild_nausea() };
            prop_assert!(AdverseEvent::new(e).is_err());
        }

        #[test]
        fn well_formed_custom_names_parse(name in "[a-z][a-z0-9_]{0,63}") {
            let code = format!("custom:{name}");
            prop_assert_eq!(AeCode::parse(&code).map(|c| c.as_str().to_owned()), Ok(code));
        }
    }
}
