//! Dosing protocols (KAP-SPEC 4, 5.4, 6.2, 8.3, 8.4): one versioned content file per route in
//! `content/protocols/`, read and changed by the medical director.
//!
//! A protocol holds the CONFIG-DEFAULT values of its route (default dose, override and block
//! limits, observation time, hand-out text) with the source of each. What a file may *not*
//! change lives here as code: the label and anaesthetic ceilings of [`limits`]. A medical director
//! may set a lower block than the spec's, never a higher one; Spravato's label values cannot be
//! loosened at all. [`Protocol::validate`] enforces both, on load and on every edit, and names the
//! JSON path of the field at fault so an editor can show the message next to it.
//!
//! The top level accepts sections this module does not own (monitoring and discharge are added
//! by their own modules): they are kept as written so a protocol round-trips. Inside the sections
//! owned here, an unknown field is an error, because a misspelt limit must never be ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decision::Route;
use crate::time::UtcTs;

pub mod form;

/// Limits from labels that no protocol may cross. Each constant states its source.
pub mod limits {
    /// A protocol's IV block may not be above this: the lower end of the Ketalar IV anaesthetic
    /// induction range, 1–4.5 mg/kg [S12] (KAP-SPEC 4.1 notes, 4.3).
    pub const IV_BLOCK_CEILING_MG_PER_KG: f64 = 1.0;
    /// A protocol's IM block may not be above this: the lower end of the Ketalar IM induction
    /// range, 6.5–13 mg/kg [S12] (KAP-SPEC 4.1 notes, 4.3).
    pub const IM_BLOCK_CEILING_MG_PER_KG: f64 = 6.5;
    /// The 100 mg/mL concentration must not be given IV undiluted: dilute with an equal volume of
    /// sterile water, 0.9% NaCl or D5W [S12] (KAP-SPEC 4.1 notes, TV-IV-6).
    pub const IV_UNDILUTED_FROM_MG_PER_ML: f64 = 100.0;
    /// One Spravato device is 28 mg (2 sprays) [S2][S6] (KAP-SPEC 4.2).
    pub const SPRAVATO_MG_PER_DEVICE: u16 = 28;
    /// The Spravato doses of the label: 56 or 84 mg [S2][S10] (KAP-SPEC 4.2).
    pub const SPRAVATO_DOSES_MG: [u16; 2] = [56, 84];
    /// US label, TRD: day 1 is 56 mg, and 84 mg only after a 56 mg start [S2][S10] (KAP-SPEC 4.2).
    pub const SPRAVATO_DAY1_MG: u16 = 56;
    /// Ex-US (Hong Kong/EU-style) label: patients aged 65 or more start at 28 mg; a jurisdiction
    /// option, off in the US content (KAP-SPEC 4.2).
    pub const SPRAVATO_OLDER_ADULT_AGE: u8 = 65;
    pub const SPRAVATO_OLDER_ADULT_DAY1_MG: u16 = 28;
    /// Wait 5 minutes after each device [S2][S6][S11] (KAP-SPEC 4.2, 2.2).
    pub const SPRAVATO_MIN_MINUTES_BETWEEN_DEVICES: u32 = 5;
    /// At least 2 hours of observation at every session [S1][S3][S4] (KAP-SPEC 5.4).
    pub const SPRAVATO_MIN_OBSERVATION_MINUTES: u32 = 120;
}

/// A protocol file or edit that cannot be used. `path` is the JSON path of the field at fault
/// (`dose.mg_per_kg.block_at_or_above_mg_per_kg`, `stock.vials[2].mg_per_ml`); `file` names the
/// content file when a set of files is loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{path}: {message}", file.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct ProtocolError {
    pub file: Option<String>,
    pub path: String,
    pub message: String,
}

impl ProtocolError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { file: None, path: path.into(), message: message.into() }
    }

    fn in_file(mut self, file: &str) -> Self {
        self.file = Some(file.to_owned());
        self
    }
}

/// The SNOMED CT route of administration (KAP-SPEC 8.3), for the administration record and FHIR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteCode {
    /// `http://snomed.info/sct`.
    pub system: String,
    pub code: String,
    pub display: String,
    /// Whether a terminologist confirmed the code in an official SNOMED CT browser (KAP-SPEC 13.12
    /// lists the ones still to confirm).
    pub verified: bool,
    pub source: String,
}

pub const SNOMED_SYSTEM: &str = "http://snomed.info/sct";

/// A vial of ketamine HCl injection (IV, IM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vial {
    pub product: String,
    pub mg_per_ml: f64,
    /// Package NDC, when the clinic records which product it stocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ndc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rxcui: Option<String>,
    pub source: String,
}

/// A Spravato kit of single-use nasal devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceKit {
    pub product: String,
    pub ndc: String,
    pub devices: u8,
    pub mg_per_device: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rxcui: Option<String>,
    pub source: String,
}

/// A (compounded) rapid-dissolve tablet or troche of one strength.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tablet {
    pub product: String,
    pub mg: f64,
    pub source: String,
}

/// A (compounded) nasal solution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NasalSolution {
    pub product: String,
    pub mg_per_ml: f64,
    pub source: String,
}

/// The products a route's doses are drawn from. Only the kind the route uses may be filled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stock {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vials: Vec<Vial>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_kits: Vec<DeviceKit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tablets: Vec<Tablet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nasal_solutions: Vec<NasalSolution>,
}

impl Stock {
    /// Concentrations of the liquid products (vials or nasal solutions), mg/mL.
    pub fn liquid_mg_per_ml(&self) -> Vec<f64> {
        self.vials.iter().map(|v| v.mg_per_ml).chain(self.nasal_solutions.iter().map(|s| s.mg_per_ml)).collect()
    }

    /// Tablet strengths, largest first.
    pub fn tablet_strengths_mg(&self) -> Vec<f64> {
        let mut s: Vec<f64> = self.tablets.iter().map(|t| t.mg).collect();
        s.sort_by(|a, b| b.total_cmp(a));
        s
    }
}

/// Which weight a weight-based dose uses (KAP-SPEC 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeightBasis {
    /// Actual body weight (the default).
    Actual,
    /// Devine ideal body weight from height and sex.
    Ideal,
}

/// IV and IM: a dose per kilogram of body weight (KAP-SPEC 4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MgPerKgRule {
    /// The dose a new order starts from.
    pub default_mg_per_kg: f64,
    /// IV only: the infusion time a new order starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_infusion_minutes: Option<f64>,
    /// Above this a prescriber must confirm the dose (override).
    pub override_above_mg_per_kg: f64,
    /// At or above this the dose is refused, with no override.
    pub block_at_or_above_mg_per_kg: f64,
    pub rounding_increment_mg: f64,
    pub weight_basis: WeightBasis,
    /// A weight older than this many days must be measured again.
    pub weight_max_age_days: u32,
    pub sources: BTreeMap<String, String>,
}

/// Sublingual/buccal: a fixed dose in mg, outside the range only with a prescriber override
/// (KAP-SPEC 4.3). The tablet strengths are the stock's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FixedMgRangeRule {
    pub min_mg: f64,
    pub max_mg: f64,
    /// A lower hard limit the medical director may add; the spec gives none for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_at_or_above_mg: Option<f64>,
    pub sources: BTreeMap<String, String>,
}

/// The ex-US option to start patients aged 65 or more at 28 mg (KAP-SPEC 4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OlderAdultStart {
    pub age_at_or_above: u8,
    pub day1_dose_mg: u16,
}

/// Spravato: whole devices of 28 mg, at the label's doses and pace (KAP-SPEC 4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRule {
    pub mg_per_device: u16,
    pub allowed_doses_mg: Vec<u16>,
    /// The TRD starting dose (US label: 56 mg).
    pub day1_dose_mg: u16,
    /// `null` where the jurisdiction's label has no 28 mg start (the US).
    #[serde(default)]
    pub older_adult_start: Option<OlderAdultStart>,
    pub min_minutes_between_devices: u32,
    pub sources: BTreeMap<String, String>,
}

/// Compounded racemic nasal spray: a dose given as timed applications (KAP-SPEC 4.1: 5 × 10 mg,
/// 5 minutes apart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRule {
    pub mg_per_application: f64,
    pub default_applications: u8,
    pub min_minutes_between_applications: u32,
    pub override_above_mg: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_at_or_above_mg: Option<f64>,
    pub sources: BTreeMap<String, String>,
}

/// How a route's dose is set. In JSON the kind is the key: `"dose": {"mg_per_kg": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DoseRule {
    MgPerKg(MgPerKgRule),
    FixedMgRange(FixedMgRangeRule),
    Devices(DeviceRule),
    Applications(ApplicationRule),
}

impl DoseRule {
    pub fn kind(&self) -> &'static str {
        match self {
            DoseRule::MgPerKg(_) => "mg_per_kg",
            DoseRule::FixedMgRange(_) => "fixed_mg_range",
            DoseRule::Devices(_) => "devices",
            DoseRule::Applications(_) => "applications",
        }
    }

    fn sources(&self) -> &BTreeMap<String, String> {
        match self {
            DoseRule::MgPerKg(r) => &r.sources,
            DoseRule::FixedMgRange(r) => &r.sources,
            DoseRule::Devices(r) => &r.sources,
            DoseRule::Applications(r) => &r.sources,
        }
    }

    /// The source the content gives for one of this rule's values.
    pub fn source_of(&self, field: &str) -> &str {
        self.sources().get(field).map_or("", String::as_str)
    }
}

/// The dose rule kind each route must use.
fn dose_kind_for(route: Route) -> &'static str {
    match route {
        Route::IntravenousRacemic | Route::IntramuscularRacemic => "mg_per_kg",
        Route::SublingualLozenge => "fixed_mg_range",
        Route::SpravatoIntranasal => "devices",
        Route::IntranasalRacemic => "applications",
    }
}

/// The moment the minimum observation time is counted from (KAP-SPEC 5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObservationFrom {
    /// Spravato default: the REMS form counts "from 1st device administration".
    FirstDevice,
    /// Spravato conservative option (TV-SPR-1: 12:10 instead of 12:00).
    LastDevice,
    /// IV: after the end of the infusion.
    EndOfInfusion,
    /// IM, sublingual: after the dose.
    Administration,
    FirstApplication,
    /// Compounded nasal spray: the dose is complete at the last application.
    LastApplication,
}

impl ObservationFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            ObservationFrom::FirstDevice => "first_device",
            ObservationFrom::LastDevice => "last_device",
            ObservationFrom::EndOfInfusion => "end_of_infusion",
            ObservationFrom::Administration => "administration",
            ObservationFrom::FirstApplication => "first_application",
            ObservationFrom::LastApplication => "last_application",
        }
    }

    /// The choices that make sense for a route.
    pub fn allowed_for(route: Route) -> &'static [ObservationFrom] {
        match route {
            Route::SpravatoIntranasal => &[ObservationFrom::FirstDevice, ObservationFrom::LastDevice],
            Route::IntravenousRacemic => &[ObservationFrom::EndOfInfusion],
            Route::IntramuscularRacemic | Route::SublingualLozenge => &[ObservationFrom::Administration],
            Route::IntranasalRacemic => &[ObservationFrom::FirstApplication, ObservationFrom::LastApplication],
        }
    }
}

/// One line of the patient's post-session hand-out (KAP-SPEC 6.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Instruction {
    /// A stable key (`no_driving`), so the text can be reworded or translated and still found.
    pub id: String,
    pub text: String,
    pub source: String,
}

/// Hand-out lines every protocol must keep: the patient must not drive and goes home with an
/// escort (GATE-02, DC-08 [S1][S2][S12]), and knows when to call for help (MON-04 [S1]).
pub const REQUIRED_INSTRUCTIONS: [&str; 3] = ["no_driving", "escort_home", "when_to_call"];

/// One route's protocol, as in `content/protocols/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Protocol {
    pub id: String,
    /// `YYYY.N`; a change is a new version (see [`Protocol::check_revision`]).
    pub version: String,
    pub route: Route,
    pub title: String,
    pub route_code: RouteCode,
    pub stock: Stock,
    pub dose: DoseRule,
    /// Minimum observation time (KAP-SPEC 5.4, discharge criterion DC-01).
    pub observation_minutes: u32,
    pub observation_from: ObservationFrom,
    /// The sources of the top-level values (`observation_minutes`, `observation_from`).
    pub sources: BTreeMap<String, String>,
    pub post_session_instructions: Vec<Instruction>,
    /// What is measured and when, the alert thresholds and the discharge criteria (KAP-SPEC 5.2,
    /// 5.3, 6.1), checked by [`crate::monitoring`].
    pub monitoring: crate::monitoring::MonitoringProtocol,
    /// Top-level sections owned by other modules (monitoring, discharge), kept as written.
    #[serde(flatten, skip_deserializing)]
    pub other_sections: BTreeMap<String, Value>,
}

/// The top-level fields this module owns; anything else is another module's section.
const OWN_FIELDS: [&str; 12] = [
    "id",
    "version",
    "route",
    "title",
    "route_code",
    "stock",
    "dose",
    "observation_minutes",
    "observation_from",
    "sources",
    "post_session_instructions",
    "monitoring",
];

fn err(path: impl Into<String>, message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(path, message)
}

/// A positive, finite number.
fn positive(path: &str, v: f64) -> Result<(), ProtocolError> {
    if v.is_finite() && v > 0.0 { Ok(()) } else { Err(err(path, format!("must be a number greater than 0, not {v}"))) }
}

fn non_empty(path: &str, s: &str) -> Result<(), ProtocolError> {
    if s.trim().is_empty() { Err(err(path, "must not be empty")) } else { Ok(()) }
}

/// A source names an entry of the spec's source register (`S12`) or a spec section (`KAP-SPEC
/// 4.3`), so a reviewer can look it up.
fn source(path: &str, s: &str) -> Result<(), ProtocolError> {
    non_empty(path, s)?;
    let cites_register = s.match_indices('S').any(|(i, _)| {
        let before_ok = i == 0 || !s.as_bytes()[i - 1].is_ascii_alphanumeric();
        before_ok && s[i + 1..].starts_with(|c: char| c.is_ascii_digit())
    });
    if cites_register || s.contains("KAP-SPEC") {
        Ok(())
    } else {
        Err(err(path, "name the source: an id of the spec's source register (e.g. S12) or a KAP-SPEC section"))
    }
}

/// Every value of a section has a source, and every source belongs to a value of the section.
fn sources_complete(path: &str, section: &Value, sources: &BTreeMap<String, String>) -> Result<(), ProtocolError> {
    let Value::Object(fields) = section else {
        return Err(err(path, "must be an object"));
    };
    for (name, value) in fields {
        if name == "sources" || value.is_null() {
            continue;
        }
        match sources.get(name) {
            Some(s) => source(&format!("{path}.sources.{name}"), s)?,
            None => return Err(err(format!("{path}.sources"), format!("give the source of `{name}`"))),
        }
    }
    if let Some(extra) = sources.keys().find(|k| fields.get(k.as_str()).is_none_or(Value::is_null)) {
        return Err(err(format!("{path}.sources.{extra}"), format!("`{extra}` is not a value of this section")));
    }
    Ok(())
}

/// SNOMED CT identifiers end in a Verhoeff check digit; checking it catches a mistyped code.
fn snomed_check_digit_ok(code: &str) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    if !(6..=18).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut c = 0u8;
    for (i, b) in code.bytes().rev().enumerate() {
        c = D[usize::from(c)][usize::from(P[i % 8][usize::from(b - b'0')])];
    }
    c == 0
}

/// A package NDC in one of the three 10-digit hyphenated layouts (4-4-2, 5-3-2, 5-4-1).
pub(crate) fn ndc_ok(ndc: &str) -> bool {
    let parts: Vec<&str> = ndc.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && matches!(lens.as_slice(), [4, 4, 2] | [5, 3, 2] | [5, 4, 1])
}

/// `YYYY.N`, e.g. `2026.1`.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (year, n) = v.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if year.len() != 4 || !digits(year) || !digits(n) || n.len() > 6 {
        return None;
    }
    Some((year.parse().ok()?, n.parse().ok()?))
}

impl Protocol {
    /// Parses and validates one protocol file. Unknown top-level sections (objects or lists) are
    /// kept for the modules that own them; an unknown top-level *value* is refused, since it is
    /// more likely a misspelt field than a section.
    pub fn parse(json: &str) -> Result<Protocol, ProtocolError> {
        let value: Value = serde_json::from_str(json).map_err(|e| err("", format!("not valid JSON: {e}")))?;
        let Value::Object(top) = &value else {
            return Err(err("", "a protocol is a JSON object"));
        };
        let mut protocol: Protocol = serde_path_to_error::deserialize(&value).map_err(|e| {
            let path = e.path().to_string();
            err(if path == "." { String::new() } else { path }, e.into_inner().to_string())
        })?;
        for (name, section) in top {
            if OWN_FIELDS.contains(&name.as_str()) {
                continue;
            }
            protocol.other_sections.insert(name.clone(), section.clone());
        }
        protocol.validate()?;
        Ok(protocol)
    }

    /// The protocol as pretty JSON, other modules' sections included.
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        serde_json::to_string_pretty(self).map_err(|e| err("", e.to_string()))
    }

    /// A section owned by another module (`monitoring`, `discharge`), as written.
    pub fn section(&self, name: &str) -> Option<&Value> {
        self.other_sections.get(name)
    }

    /// Checks the whole protocol; run on load and on every edit before it is saved as a new
    /// version.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if self.id.is_empty()
            || !self.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || self.id.starts_with('-')
        {
            return Err(err("id", "use lower-case letters, digits and dashes (e.g. intravenous-racemic)"));
        }
        if parse_version(&self.version).is_none() {
            return Err(err("version", "write the version as YYYY.N, e.g. 2026.1"));
        }
        non_empty("title", &self.title)?;
        self.check_route_code()?;
        self.check_stock()?;
        self.check_dose()?;
        self.check_observation()?;
        self.check_monitoring()?;
        self.check_instructions()?;
        for (name, section) in &self.other_sections {
            if OWN_FIELDS.contains(&name.as_str()) {
                return Err(err(name.as_str(), "is a field of the protocol, not another section"));
            }
            if !(section.is_object() || section.is_array()) {
                return Err(err(
                    name.as_str(),
                    "unknown field: only sections (objects or lists) may be added at the top level; check the spelling",
                ));
            }
        }
        Ok(())
    }

    /// A change to a protocol is a new version of it: same id and route, a later version, and
    /// valid. The store keeps every version; a dose records the version it was computed with.
    pub fn check_revision(&self, next: &Protocol) -> Result<(), ProtocolError> {
        if next.id != self.id {
            return Err(err("id", format!("a new version keeps the id `{}`", self.id)));
        }
        if next.route != self.route {
            return Err(err("route", format!("a new version keeps the route `{}`", self.route.as_str())));
        }
        match (parse_version(&self.version), parse_version(&next.version)) {
            (Some(old), Some(new)) if new > old => {}
            _ => return Err(err("version", format!("a new version must come after {}", self.version))),
        }
        next.validate()
    }

    /// When a patient may leave at the earliest: the minimum observation after `start`, the
    /// moment named by [`Protocol::observation_from`]. Discharge also needs the other criteria
    /// of KAP-SPEC 6.1; this is only DC-01.
    pub fn earliest_discharge(&self, start: UtcTs) -> UtcTs {
        start.plus(time::Duration::minutes(i64::from(self.observation_minutes)))
    }

    fn check_route_code(&self) -> Result<(), ProtocolError> {
        let c = &self.route_code;
        if c.system != SNOMED_SYSTEM {
            return Err(err("route_code.system", format!("route codes are SNOMED CT: {SNOMED_SYSTEM}")));
        }
        if !snomed_check_digit_ok(&c.code) {
            return Err(err("route_code.code", "not a SNOMED CT identifier (6 to 18 digits with a valid check digit)"));
        }
        non_empty("route_code.display", &c.display)?;
        source("route_code.source", &c.source)
    }

    fn check_stock(&self) -> Result<(), ProtocolError> {
        let s = &self.stock;
        let used = match self.route {
            Route::IntravenousRacemic | Route::IntramuscularRacemic => "vials",
            Route::SpravatoIntranasal => "device_kits",
            Route::SublingualLozenge => "tablets",
            Route::IntranasalRacemic => "nasal_solutions",
        };
        let filled = [
            ("vials", s.vials.len()),
            ("device_kits", s.device_kits.len()),
            ("tablets", s.tablets.len()),
            ("nasal_solutions", s.nasal_solutions.len()),
        ];
        for (kind, n) in filled {
            if kind == used && n == 0 {
                return Err(err(format!("stock.{kind}"), format!("list the {kind} this route is given from")));
            }
            if kind != used && n > 0 {
                return Err(err(format!("stock.{kind}"), format!("{} uses {used}, not {kind}", self.route.label())));
            }
        }
        for (i, v) in s.vials.iter().enumerate() {
            let p = format!("stock.vials[{i}]");
            non_empty(&format!("{p}.product"), &v.product)?;
            positive(&format!("{p}.mg_per_ml"), v.mg_per_ml)?;
            if s.vials[..i].iter().any(|o| o.mg_per_ml == v.mg_per_ml) {
                return Err(err(format!("{p}.mg_per_ml"), "this concentration is listed twice"));
            }
            if let Some(ndc) = &v.ndc
                && !ndc_ok(ndc)
            {
                return Err(err(format!("{p}.ndc"), "write a package NDC as 4-4-2, 5-3-2 or 5-4-1 digits"));
            }
            source(&format!("{p}.source"), &v.source)?;
        }
        for (i, k) in s.device_kits.iter().enumerate() {
            let p = format!("stock.device_kits[{i}]");
            non_empty(&format!("{p}.product"), &k.product)?;
            if !ndc_ok(&k.ndc) {
                return Err(err(format!("{p}.ndc"), "write a package NDC as 4-4-2, 5-3-2 or 5-4-1 digits"));
            }
            if k.devices == 0 {
                return Err(err(format!("{p}.devices"), "a kit holds at least one device"));
            }
            if k.mg_per_device != limits::SPRAVATO_MG_PER_DEVICE {
                return Err(err(
                    format!("{p}.mg_per_device"),
                    format!("a Spravato device is {} mg (label [S2])", limits::SPRAVATO_MG_PER_DEVICE),
                ));
            }
            if s.device_kits[..i].iter().any(|o| o.ndc == k.ndc) {
                return Err(err(format!("{p}.ndc"), "this kit is listed twice"));
            }
            source(&format!("{p}.source"), &k.source)?;
        }
        for (i, t) in s.tablets.iter().enumerate() {
            let p = format!("stock.tablets[{i}]");
            non_empty(&format!("{p}.product"), &t.product)?;
            positive(&format!("{p}.mg"), t.mg)?;
            if s.tablets[..i].iter().any(|o| o.mg == t.mg) {
                return Err(err(format!("{p}.mg"), "this strength is listed twice"));
            }
            source(&format!("{p}.source"), &t.source)?;
        }
        for (i, n) in s.nasal_solutions.iter().enumerate() {
            let p = format!("stock.nasal_solutions[{i}]");
            non_empty(&format!("{p}.product"), &n.product)?;
            positive(&format!("{p}.mg_per_ml"), n.mg_per_ml)?;
            if s.nasal_solutions[..i].iter().any(|o| o.mg_per_ml == n.mg_per_ml) {
                return Err(err(format!("{p}.mg_per_ml"), "this concentration is listed twice"));
            }
            source(&format!("{p}.source"), &n.source)?;
        }
        Ok(())
    }

    fn check_dose(&self) -> Result<(), ProtocolError> {
        let expected = dose_kind_for(self.route);
        if self.dose.kind() != expected {
            return Err(err(
                format!("dose.{}", self.dose.kind()),
                format!("{} is dosed by `{expected}`", self.route.label()),
            ));
        }
        let path = format!("dose.{expected}");
        let p = |field: &str| format!("{path}.{field}");
        match &self.dose {
            DoseRule::MgPerKg(r) => {
                positive(&p("default_mg_per_kg"), r.default_mg_per_kg)?;
                positive(&p("override_above_mg_per_kg"), r.override_above_mg_per_kg)?;
                positive(&p("block_at_or_above_mg_per_kg"), r.block_at_or_above_mg_per_kg)?;
                positive(&p("rounding_increment_mg"), r.rounding_increment_mg)?;
                if r.override_above_mg_per_kg >= r.block_at_or_above_mg_per_kg {
                    return Err(err(
                        p("override_above_mg_per_kg"),
                        format!(
                            "the override limit ({}) must be below the block ({}) mg/kg",
                            r.override_above_mg_per_kg, r.block_at_or_above_mg_per_kg
                        ),
                    ));
                }
                if r.default_mg_per_kg > r.override_above_mg_per_kg {
                    return Err(err(
                        p("default_mg_per_kg"),
                        "the default dose must not itself need an override: keep it at or below the override limit",
                    ));
                }
                let (ceiling, what) = if self.route == Route::IntravenousRacemic {
                    (limits::IV_BLOCK_CEILING_MG_PER_KG, "the Ketalar IV induction range starts at 1.0 mg/kg [S12]")
                } else {
                    (limits::IM_BLOCK_CEILING_MG_PER_KG, "the Ketalar IM induction range starts at 6.5 mg/kg [S12]")
                };
                if r.block_at_or_above_mg_per_kg > ceiling {
                    return Err(err(
                        p("block_at_or_above_mg_per_kg"),
                        format!("the block may be set lower but never above {ceiling} mg/kg: {what}"),
                    ));
                }
                match (self.route, r.default_infusion_minutes) {
                    (Route::IntravenousRacemic, None) => {
                        return Err(err(
                            path.as_str(),
                            "missing field `default_infusion_minutes` (an IV dose is an infusion)",
                        ));
                    }
                    (Route::IntravenousRacemic, Some(m)) => positive(&p("default_infusion_minutes"), m)?,
                    (_, Some(_)) => {
                        return Err(err(p("default_infusion_minutes"), "only an IV protocol has an infusion time"));
                    }
                    (_, None) => {}
                }
                if r.weight_max_age_days == 0 {
                    return Err(err(p("weight_max_age_days"), "must be at least 1 day"));
                }
            }
            DoseRule::FixedMgRange(r) => {
                positive(&p("min_mg"), r.min_mg)?;
                positive(&p("max_mg"), r.max_mg)?;
                if r.min_mg >= r.max_mg {
                    return Err(err(p("min_mg"), "the lower end of the range must be below the upper end"));
                }
                if let Some(b) = r.block_at_or_above_mg {
                    positive(&p("block_at_or_above_mg"), b)?;
                    if b <= r.max_mg {
                        return Err(err(p("block_at_or_above_mg"), "the block must be above the range's upper end"));
                    }
                }
            }
            DoseRule::Devices(r) => self.check_device_rule(r, &p)?,
            DoseRule::Applications(r) => {
                positive(&p("mg_per_application"), r.mg_per_application)?;
                if r.default_applications == 0 {
                    return Err(err(p("default_applications"), "must be at least 1"));
                }
                if r.min_minutes_between_applications == 0 {
                    return Err(err(p("min_minutes_between_applications"), "must be at least 1 minute"));
                }
                positive(&p("override_above_mg"), r.override_above_mg)?;
                if f64::from(r.default_applications) * r.mg_per_application > r.override_above_mg {
                    return Err(err(p("default_applications"), "the default dose must not itself need an override"));
                }
                if let Some(b) = r.block_at_or_above_mg {
                    positive(&p("block_at_or_above_mg"), b)?;
                    if b <= r.override_above_mg {
                        return Err(err(p("block_at_or_above_mg"), "the block must be above the override limit"));
                    }
                }
            }
        }
        let section = match &self.dose {
            DoseRule::MgPerKg(r) => serde_json::to_value(r),
            DoseRule::FixedMgRange(r) => serde_json::to_value(r),
            DoseRule::Devices(r) => serde_json::to_value(r),
            DoseRule::Applications(r) => serde_json::to_value(r),
        }
        .map_err(|e| err(path.as_str(), e.to_string()))?;
        sources_complete(&path, &section, self.dose.sources())
    }

    /// Spravato's label values may be made stricter where that is safe (a longer gap between
    /// devices, fewer allowed doses) but never looser [S1][S2].
    fn check_device_rule(&self, r: &DeviceRule, p: &dyn Fn(&str) -> String) -> Result<(), ProtocolError> {
        if r.mg_per_device != limits::SPRAVATO_MG_PER_DEVICE {
            return Err(err(
                p("mg_per_device"),
                format!("a Spravato device is {} mg (label [S2])", limits::SPRAVATO_MG_PER_DEVICE),
            ));
        }
        if r.allowed_doses_mg.is_empty() {
            return Err(err(p("allowed_doses_mg"), "allow at least the 56 mg dose"));
        }
        for (i, d) in r.allowed_doses_mg.iter().enumerate() {
            if !limits::SPRAVATO_DOSES_MG.contains(d) || r.allowed_doses_mg[..i].contains(d) {
                return Err(err(
                    format!("{}[{i}]", p("allowed_doses_mg")),
                    "Spravato doses are 56 or 84 mg, each listed once (label [S2][S10])",
                ));
            }
        }
        if r.day1_dose_mg != limits::SPRAVATO_DAY1_MG {
            return Err(err(
                p("day1_dose_mg"),
                format!("the label's day-1 dose is {} mg [S2][S10]", limits::SPRAVATO_DAY1_MG),
            ));
        }
        if !r.allowed_doses_mg.contains(&r.day1_dose_mg) {
            return Err(err(p("allowed_doses_mg"), "the day-1 dose must be one of the allowed doses"));
        }
        if let Some(o) = &r.older_adult_start {
            if o.age_at_or_above != limits::SPRAVATO_OLDER_ADULT_AGE {
                return Err(err(
                    p("older_adult_start.age_at_or_above"),
                    format!("the 28 mg start is for patients aged {} or more", limits::SPRAVATO_OLDER_ADULT_AGE),
                ));
            }
            if o.day1_dose_mg != limits::SPRAVATO_OLDER_ADULT_DAY1_MG {
                return Err(err(
                    p("older_adult_start.day1_dose_mg"),
                    format!("the older-adult start is {} mg (one device)", limits::SPRAVATO_OLDER_ADULT_DAY1_MG),
                ));
            }
        }
        if r.min_minutes_between_devices < limits::SPRAVATO_MIN_MINUTES_BETWEEN_DEVICES {
            return Err(err(
                p("min_minutes_between_devices"),
                format!(
                    "the label requires at least {} minutes after each device [S2]; a longer wait may be set",
                    limits::SPRAVATO_MIN_MINUTES_BETWEEN_DEVICES
                ),
            ));
        }
        Ok(())
    }

    /// The monitoring section is valid for the route and agrees with the observation time above
    /// (one protocol file cannot say two things about DC-01).
    fn check_monitoring(&self) -> Result<(), ProtocolError> {
        use crate::monitoring::Anchor;
        self.monitoring.check(self.route).map_err(|e| err(format!("monitoring.{}", e.path), e.message))?;
        let minimum = &self.monitoring.discharge.minimum_observation;
        if u32::from(minimum.minutes) != self.observation_minutes {
            return Err(err(
                "monitoring.discharge.minimum_observation.minutes",
                format!("must equal observation_minutes ({})", self.observation_minutes),
            ));
        }
        let agrees = match self.observation_from {
            ObservationFrom::FirstDevice | ObservationFrom::FirstApplication => minimum.from == Anchor::DoseStart,
            ObservationFrom::LastDevice => minimum.from == Anchor::LastDevice,
            ObservationFrom::LastApplication => matches!(minimum.from, Anchor::LastDevice | Anchor::DoseEnd),
            ObservationFrom::EndOfInfusion | ObservationFrom::Administration => minimum.from == Anchor::DoseEnd,
        };
        if !agrees {
            return Err(err(
                "monitoring.discharge.minimum_observation.from",
                format!("must count from the same moment as observation_from ({})", self.observation_from.as_str()),
            ));
        }
        Ok(())
    }

    fn check_observation(&self) -> Result<(), ProtocolError> {
        if self.observation_minutes == 0 {
            return Err(err("observation_minutes", "must be at least 1 minute"));
        }
        if self.route == Route::SpravatoIntranasal
            && self.observation_minutes < limits::SPRAVATO_MIN_OBSERVATION_MINUTES
        {
            return Err(err(
                "observation_minutes",
                format!(
                    "Spravato needs at least {} minutes of observation at every session (label and REMS [S1][S3][S4])",
                    limits::SPRAVATO_MIN_OBSERVATION_MINUTES
                ),
            ));
        }
        let allowed = ObservationFrom::allowed_for(self.route);
        if !allowed.contains(&self.observation_from) {
            let names: Vec<&str> = allowed.iter().map(|o| o.as_str()).collect();
            return Err(err(
                "observation_from",
                format!("for {} count from: {}", self.route.label(), names.join(" or ")),
            ));
        }
        let top = serde_json::json!({
            "observation_minutes": self.observation_minutes,
            "observation_from": self.observation_from,
        });
        sources_complete("", &top, &self.sources).map_err(|mut e| {
            e.path = e.path.trim_start_matches('.').to_owned();
            e
        })
    }

    fn check_instructions(&self) -> Result<(), ProtocolError> {
        for (i, line) in self.post_session_instructions.iter().enumerate() {
            let p = format!("post_session_instructions[{i}]");
            if line.id.is_empty() || !line.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(err(format!("{p}.id"), "use lower-case letters, digits and underscores"));
            }
            if self.post_session_instructions[..i].iter().any(|o| o.id == line.id) {
                return Err(err(format!("{p}.id"), "this id is used twice"));
            }
            non_empty(&format!("{p}.text"), &line.text)?;
            source(&format!("{p}.source"), &line.source)?;
        }
        for id in REQUIRED_INSTRUCTIONS {
            if !self.post_session_instructions.iter().any(|l| l.id == id) {
                return Err(err("post_session_instructions", format!("the hand-out must keep the `{id}` line")));
            }
        }
        Ok(())
    }
}

/// The bundled content files, by name.
const BUNDLED: [(&str, &str); 5] = [
    ("spravato-intranasal.json", include_str!("../../../content/protocols/spravato-intranasal.json")),
    ("intravenous-racemic.json", include_str!("../../../content/protocols/intravenous-racemic.json")),
    ("intramuscular-racemic.json", include_str!("../../../content/protocols/intramuscular-racemic.json")),
    ("sublingual-lozenge.json", include_str!("../../../content/protocols/sublingual-lozenge.json")),
    ("intranasal-racemic.json", include_str!("../../../content/protocols/intranasal-racemic.json")),
];

fn route_index(route: Route) -> usize {
    match route {
        Route::SpravatoIntranasal => 0,
        Route::IntravenousRacemic => 1,
        Route::IntramuscularRacemic => 2,
        Route::SublingualLozenge => 3,
        Route::IntranasalRacemic => 4,
    }
}

/// The clinic's protocols: exactly one per route.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolSet {
    /// In [`Route::ALL`] order.
    protocols: [Protocol; 5],
}

impl ProtocolSet {
    /// One validated protocol per route, ids unique.
    pub fn new(protocols: Vec<Protocol>) -> Result<Self, ProtocolError> {
        let mut slots: [Option<Protocol>; 5] = Default::default();
        for p in protocols {
            p.validate().map_err(|e| e.in_file(&p.id))?;
            let slot = &mut slots[route_index(p.route)];
            if slot.is_some() {
                return Err(err("route", format!("two protocols for {}", p.route.label())).in_file(&p.id));
            }
            *slot = Some(p);
        }
        let mut found = Vec::with_capacity(5);
        for (route, slot) in Route::ALL.into_iter().zip(slots) {
            found.push(slot.ok_or_else(|| err("route", format!("no protocol for {}", route.label())))?);
        }
        for (i, p) in found.iter().enumerate() {
            if found[..i].iter().any(|o| o.id == p.id) {
                return Err(err("id", "two protocols have this id").in_file(&p.id));
            }
        }
        let protocols: [Protocol; 5] = found.try_into().map_err(|_| err("", "expected five protocols"))?;
        Ok(Self { protocols })
    }

    /// Parses named JSON files (the caller reads them); an error names the file.
    pub fn from_files(files: &[(&str, &str)]) -> Result<Self, ProtocolError> {
        let mut protocols = Vec::with_capacity(files.len());
        for (name, json) in files {
            protocols.push(Protocol::parse(json).map_err(|e| e.in_file(name))?);
        }
        Self::new(protocols)
    }

    /// The five protocols shipped in `content/protocols/` (compiled in).
    pub fn bundled() -> Result<Self, ProtocolError> {
        Self::from_files(&BUNDLED)
    }

    pub fn get(&self, route: Route) -> &Protocol {
        &self.protocols[route_index(route)]
    }

    /// By protocol id (`intravenous-racemic`) or route (`intravenous_racemic`).
    pub fn find(&self, id_or_route: &str) -> Option<&Protocol> {
        self.protocols.iter().find(|p| p.id == id_or_route || p.route.as_str() == id_or_route)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Protocol> {
        self.protocols.iter()
    }

    /// Replaces one route's protocol with a new version of it.
    pub fn revise(&mut self, next: Protocol) -> Result<(), ProtocolError> {
        let slot = &mut self.protocols[route_index(next.route)];
        slot.check_revision(&next)?;
        *slot = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
