//! The values of a protocol a medical director actually tunes, as a form of labelled inputs: dose
//! limits, stock concentrations, the minimum observation, monitoring intervals, the MON
//! thresholds the spec marks CONFIG-DEFAULT (KAP-SPEC 5.3) and the hand-out text.
//!
//! Each value is addressed by its JSON path in the protocol file (`dose.mg_per_kg.
//! block_at_or_above_mg_per_kg`), which is also the path [`Protocol::validate`] names when it
//! refuses a value, so a refusal can be shown next to the input it concerns
//! ([`value_for_error`]). [`apply`] only writes the submitted values into a copy of the protocol;
//! whether the result may be used is decided, as for any edit, by validation and
//! [`super::ProtocolSet::revise`] (label floors, absolute IV/IM limits). Everything else stays
//! editable as JSON.

use serde::Serialize;
use serde_json::Value;

use super::{DoseRule, Protocol, ProtocolError, err, limits, parse_version};
use crate::decision::Route;
use crate::monitoring::{BpLimit, Comparison, SeriesEnd};

/// The sections of the form, in the order shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    DoseLimits,
    Stock,
    Observation,
    MonitoringIntervals,
    AlertThresholds,
    Handout,
}

impl Group {
    pub const ALL: [Group; 6] = [
        Group::DoseLimits,
        Group::Stock,
        Group::Observation,
        Group::MonitoringIntervals,
        Group::AlertThresholds,
        Group::Handout,
    ];

    pub fn heading(self) -> &'static str {
        match self {
            Group::DoseLimits => "Dose and its limits",
            Group::Stock => "Stock",
            Group::Observation => "Observation",
            Group::MonitoringIntervals => "Monitoring intervals",
            Group::AlertThresholds => "Alert thresholds (MON)",
            Group::Handout => "Hand-out after the session",
        }
    }
}

/// What an input accepts before validation looks at the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ValueKind {
    /// A decimal number (mg/kg, mg/mL, mg, minutes).
    Decimal,
    /// A decimal number, or empty for none (a block the spec does not set).
    OptionalDecimal,
    /// A whole number within the range the file's field can hold.
    Whole { min: u32, max: u32 },
    /// One line of text.
    Text { max_chars: usize },
}

/// One labelled input of the form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TunableValue {
    /// The value's JSON path in the protocol: the input's name, and the path validation names.
    pub key: String,
    pub group: Group,
    /// For a clinician: what the value does, with its unit.
    pub label: String,
    /// The value in force, as the input shows it (empty: none).
    pub current: String,
    /// Where the value comes from (the content's source text).
    pub source: String,
    pub kind: ValueKind,
    /// Paths that must hold the same value: the discharge criterion DC-01 repeats the minimum
    /// observation, and validation refuses a file where the two differ.
    #[serde(skip)]
    also_sets: Vec<String>,
    /// The path of the source text, noted when the value changes.
    #[serde(skip)]
    source_key: String,
}

/// Appended to a changed value's source, so the page shows the value is the clinic's choice
/// while keeping the citation of the default it replaced.
const NOTE: &str = " | set by the clinic's medical director in version ";

fn number(v: f64) -> String {
    format!("{v}")
}

struct Builder<'a> {
    out: Vec<TunableValue>,
    group: Group,
    p: &'a Protocol,
}

impl Builder<'_> {
    fn push(&mut self, key: String, label: String, current: String, source: &str, source_key: String, kind: ValueKind) {
        self.out.push(TunableValue {
            key,
            group: self.group,
            label,
            current,
            source: source.to_owned(),
            kind,
            also_sets: Vec::new(),
            source_key,
        });
    }

    fn dose(&mut self, base: &str, field: &str, label: String, current: String, kind: ValueKind) {
        let source = match self.p.dose.source_of(field) {
            "" if kind == ValueKind::OptionalDecimal => {
                "none in the spec for this route; the medical director may add one (KAP-SPEC 4.3)".to_owned()
            }
            s => s.to_owned(),
        };
        self.push(format!("{base}.{field}"), label, current, &source, format!("{base}.sources.{field}"), kind);
    }

    fn bp(&mut self, name: &str, rule: &str, what: &str, limit: &BpLimit) {
        let how = match limit.comparison {
            Comparison::Above => "above",
            Comparison::AtOrAbove => "at or above",
        };
        for (part, v) in [("systolic", limit.systolic), ("diastolic", limit.diastolic)] {
            self.push(
                format!("monitoring.thresholds.{name}.{part}"),
                format!("{rule} {what} {how}: {part} (mmHg)"),
                v.to_string(),
                &limit.source,
                format!("monitoring.thresholds.{name}.source"),
                WHOLE_U16,
            );
        }
    }
}

const WHOLE_U8: ValueKind = ValueKind::Whole { min: 0, max: u8::MAX as u32 };
const WHOLE_U16: ValueKind = ValueKind::Whole { min: 0, max: u16::MAX as u32 };
const NONZERO_U16: ValueKind = ValueKind::Whole { min: 1, max: u16::MAX as u32 };

/// The values of `p` a medical director tunes, in the order of [`Group::ALL`].
pub fn tunable_values(p: &Protocol) -> Vec<TunableValue> {
    let mut b = Builder { out: Vec::new(), group: Group::DoseLimits, p };
    let dose_base = format!("dose.{}", p.dose.kind());
    let base = dose_base.as_str();
    match &p.dose {
        DoseRule::MgPerKg(r) => {
            b.dose(
                base,
                "default_mg_per_kg",
                "Usual starting dose (mg/kg)".into(),
                number(r.default_mg_per_kg),
                ValueKind::Decimal,
            );
            if let Some(m) = r.default_infusion_minutes {
                b.dose(
                    base,
                    "default_infusion_minutes",
                    "Usual infusion time (minutes)".into(),
                    number(m),
                    ValueKind::Decimal,
                );
            }
            b.dose(
                base,
                "override_above_mg_per_kg",
                "Needs a prescriber's override above (mg/kg)".into(),
                number(r.override_above_mg_per_kg),
                ValueKind::Decimal,
            );
            let ceiling = if p.route == Route::IntravenousRacemic {
                limits::IV_BLOCK_CEILING_MG_PER_KG
            } else {
                limits::IM_BLOCK_CEILING_MG_PER_KG
            };
            b.dose(
                base,
                "block_at_or_above_mg_per_kg",
                format!("Blocked, with no override, at or above (mg/kg; never above {ceiling})"),
                number(r.block_at_or_above_mg_per_kg),
                ValueKind::Decimal,
            );
            b.dose(
                base,
                "weight_max_age_days",
                "Weight must have been measured within (days)".into(),
                r.weight_max_age_days.to_string(),
                ValueKind::Whole { min: 0, max: u32::MAX },
            );
        }
        DoseRule::FixedMgRange(r) => {
            b.dose(
                base,
                "min_mg",
                "Needs a prescriber's override below (mg per session)".into(),
                number(r.min_mg),
                ValueKind::Decimal,
            );
            b.dose(
                base,
                "max_mg",
                "Needs a prescriber's override above (mg per session)".into(),
                number(r.max_mg),
                ValueKind::Decimal,
            );
            b.dose(
                base,
                "block_at_or_above_mg",
                "Blocked, with no override, at or above (mg per session; empty: no block)".into(),
                r.block_at_or_above_mg.map(number).unwrap_or_default(),
                ValueKind::OptionalDecimal,
            );
        }
        DoseRule::Devices(r) => {
            b.dose(
                base,
                "min_minutes_between_devices",
                format!(
                    "Wait after each device (minutes; the label requires at least {})",
                    limits::SPRAVATO_MIN_MINUTES_BETWEEN_DEVICES
                ),
                r.min_minutes_between_devices.to_string(),
                ValueKind::Whole { min: 0, max: u32::MAX },
            );
        }
        DoseRule::Applications(r) => {
            b.dose(
                base,
                "default_applications",
                "Usual number of applications".into(),
                r.default_applications.to_string(),
                WHOLE_U8,
            );
            b.dose(
                base,
                "min_minutes_between_applications",
                "Wait between applications (minutes)".into(),
                r.min_minutes_between_applications.to_string(),
                ValueKind::Whole { min: 0, max: u32::MAX },
            );
            b.dose(
                base,
                "override_above_mg",
                "Needs a prescriber's override above (mg per session)".into(),
                number(r.override_above_mg),
                ValueKind::Decimal,
            );
            b.dose(
                base,
                "block_at_or_above_mg",
                "Blocked, with no override, at or above (mg per session; empty: no block)".into(),
                r.block_at_or_above_mg.map(number).unwrap_or_default(),
                ValueKind::OptionalDecimal,
            );
        }
    }

    b.group = Group::Stock;
    let product = ValueKind::Text { max_chars: 200 };
    for (i, v) in p.stock.vials.iter().enumerate() {
        let at = format!("stock.vials[{i}]");
        let n = i + 1;
        b.push(
            format!("{at}.product"),
            format!("Vial {n}: product"),
            v.product.clone(),
            &v.source,
            format!("{at}.source"),
            product,
        );
        b.push(
            format!("{at}.mg_per_ml"),
            format!("Vial {n}: concentration (mg/mL)"),
            number(v.mg_per_ml),
            &v.source,
            format!("{at}.source"),
            ValueKind::Decimal,
        );
    }
    for (i, t) in p.stock.tablets.iter().enumerate() {
        let at = format!("stock.tablets[{i}]");
        let n = i + 1;
        b.push(
            format!("{at}.product"),
            format!("Tablet {n}: product"),
            t.product.clone(),
            &t.source,
            format!("{at}.source"),
            product,
        );
        b.push(
            format!("{at}.mg"),
            format!("Tablet {n}: strength (mg)"),
            number(t.mg),
            &t.source,
            format!("{at}.source"),
            ValueKind::Decimal,
        );
    }
    for (i, s) in p.stock.nasal_solutions.iter().enumerate() {
        let at = format!("stock.nasal_solutions[{i}]");
        let n = i + 1;
        b.push(
            format!("{at}.product"),
            format!("Nasal solution {n}: product"),
            s.product.clone(),
            &s.source,
            format!("{at}.source"),
            product,
        );
        b.push(
            format!("{at}.mg_per_ml"),
            format!("Nasal solution {n}: concentration (mg/mL)"),
            number(s.mg_per_ml),
            &s.source,
            format!("{at}.source"),
            ValueKind::Decimal,
        );
    }

    b.group = Group::Observation;
    let floor = if p.route == Route::SpravatoIntranasal {
        format!("; the label requires at least {}", limits::SPRAVATO_MIN_OBSERVATION_MINUTES)
    } else {
        String::new()
    };
    b.push(
        "observation_minutes".into(),
        format!(
            "Minimum observation before discharge (minutes from the {}{floor})",
            p.observation_from.as_str().replace('_', " ")
        ),
        p.observation_minutes.to_string(),
        p.sources.get("observation_minutes").map_or("", String::as_str),
        "sources.observation_minutes".into(),
        NONZERO_U16,
    );
    if let Some(v) = b.out.last_mut() {
        v.also_sets.push("monitoring.discharge.minimum_observation.minutes".into());
    }

    b.group = Group::MonitoringIntervals;
    for (kind, m) in &p.monitoring.plan.measures {
        for (i, s) in m.every.iter().enumerate() {
            let start = if s.after_minutes > 0 {
                format!("from {} min after {}", s.after_minutes, s.from.phrase())
            } else {
                format!("from {}", s.from.phrase())
            };
            let until = match s.until {
                SeriesEnd::DoseEnd => "until the end of dosing".to_owned(),
                SeriesEnd::Discharge => "until discharge".to_owned(),
                SeriesEnd::BackToBaseline => "until back to the pre-dose baseline".to_owned(),
                SeriesEnd::Minutes(n) => format!("for {n} min"),
            };
            let at = format!("monitoring.plan.measures.{}", kind.as_str());
            b.push(
                format!("{at}.every[{i}].every_minutes"),
                format!("{}: minutes between checks, {start} {until}", kind.label()),
                s.every_minutes.to_string(),
                &m.source,
                format!("{at}.source"),
                NONZERO_U16,
            );
        }
    }

    b.group = Group::AlertThresholds;
    let t = &p.monitoring.thresholds;
    // MON-01 is the label's guide for Spravato and CONFIG for racemic ketamine (KAP-SPEC 5.3); the
    // label value is not offered here (it may still be made stricter in the JSON).
    if p.route != Route::SpravatoIntranasal {
        b.bp("pre_dose_confirm", "MON-01", "Prescriber confirms dosing when the pre-dose BP is", &t.pre_dose_confirm);
    }
    b.bp("pre_dose_hold", "MON-02", "Dose held when the pre-dose BP is", &t.pre_dose_hold);
    for (part, v) in
        [("systolic_rise", t.post_dose_rise.systolic_rise), ("diastolic_rise", t.post_dose_rise.diastolic_rise)]
    {
        b.push(
            format!("monitoring.thresholds.post_dose_rise.{part}"),
            format!(
                "MON-03 Prescriber alerted when BP rises over the pre-dose reading by at least: {} (mmHg)",
                part.replace('_', " ")
            ),
            v.to_string(),
            &t.post_dose_rise.source,
            "monitoring.thresholds.post_dose_rise.source".into(),
            WHOLE_U16,
        );
    }
    if let Some(pause) = &t.infusion_pause {
        b.bp("infusion_pause", "MON-05", "Infusion paused when BP during it is", pause);
    }
    let spo2 = &t.spo2;
    let spo2_source = "monitoring.thresholds.spo2.source".to_owned();
    b.push(
        "monitoring.thresholds.spo2.below".into(),
        "MON-06 Alert when SpO2 is below (%)".into(),
        spo2.below.to_string(),
        &spo2.source,
        spo2_source.clone(),
        WHOLE_U8,
    );
    b.push(
        "monitoring.thresholds.spo2.sustained_seconds".into(),
        "MON-06 ... for longer than (seconds)".into(),
        spo2.sustained_seconds.to_string(),
        &spo2.source,
        spo2_source.clone(),
        WHOLE_U16,
    );
    b.push(
        "monitoring.thresholds.spo2.fall_from_baseline".into(),
        "MON-06 ... or when it falls from the pre-dose reading by at least (points)".into(),
        spo2.fall_from_baseline.to_string(),
        &spo2.source,
        spo2_source,
        WHOLE_U8,
    );
    b.push(
        "monitoring.thresholds.resp_rate.below".into(),
        "MON-07 Alert when the respiratory rate is below (/min)".into(),
        t.resp_rate.below.to_string(),
        &t.resp_rate.source,
        "monitoring.thresholds.resp_rate.source".into(),
        WHOLE_U8,
    );
    for (part, v, words) in [("above", t.heart_rate.above, "above"), ("below", t.heart_rate.below, "below")] {
        b.push(
            format!("monitoring.thresholds.heart_rate.{part}"),
            format!("MON-08 Alert when the heart rate is {words} (/min)"),
            v.to_string(),
            &t.heart_rate.source,
            "monitoring.thresholds.heart_rate.source".into(),
            WHOLE_U16,
        );
    }
    b.push(
        "monitoring.thresholds.moaas_stop_dosing.at_or_below".into(),
        "MON-09 No further dosing when MOAA/S is at or below (0 to 5)".into(),
        t.moaas_stop_dosing.at_or_below.to_string(),
        &t.moaas_stop_dosing.source,
        "monitoring.thresholds.moaas_stop_dosing.source".into(),
        WHOLE_U8,
    );

    b.group = Group::Handout;
    for (i, line) in p.post_session_instructions.iter().enumerate() {
        b.push(
            format!("post_session_instructions[{i}].text"),
            format!("Line {}: {}", i + 1, line.id.replace('_', " ")),
            line.text.clone(),
            &line.source,
            format!("post_session_instructions[{i}].source"),
            ValueKind::Text { max_chars: 1000 },
        );
    }
    b.out
}

/// The version a form edit saves: the next number of the current year, or `YYYY.1` in a new
/// year. `None` when `current` is not a version.
pub fn next_version(current: &str, this_year: u32) -> Option<String> {
    let (year, n) = parse_version(current)?;
    Some(if this_year > year { format!("{this_year}.1") } else { format!("{year}.{}", n + 1) })
}

/// A submitted value, parsed as its kind wants; the same parse reads the current value, so an
/// input left as shown (`1` for `1.0`) is not a change.
#[derive(Debug, Clone, PartialEq)]
enum Parsed {
    Number(f64),
    Whole(u32),
    Nothing,
    Text(String),
}

impl Parsed {
    fn json(&self) -> Value {
        match self {
            Parsed::Number(n) => serde_json::json!(n),
            Parsed::Whole(n) => serde_json::json!(n),
            Parsed::Nothing => Value::Null,
            Parsed::Text(t) => Value::String(t.clone()),
        }
    }
}

fn parse(v: &TunableValue, raw: &str) -> Result<Parsed, ProtocolError> {
    let raw = raw.trim();
    match v.kind {
        ValueKind::OptionalDecimal if raw.is_empty() => Ok(Parsed::Nothing),
        ValueKind::Decimal | ValueKind::OptionalDecimal => match raw.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Parsed::Number(n)),
            _ => Err(err(v.key.as_str(), "give a number, like 0.75")),
        },
        ValueKind::Whole { min, max } => match raw.parse::<u64>() {
            Ok(n) if n >= u64::from(min) && n <= u64::from(max) => Ok(Parsed::Whole(n as u32)),
            _ => Err(err(v.key.as_str(), format!("give a whole number from {min} to {max}"))),
        },
        ValueKind::Text { max_chars } => {
            let text = raw.split_whitespace().collect::<Vec<_>>().join(" ");
            if text.chars().count() > max_chars {
                return Err(err(v.key.as_str(), format!("use at most {max_chars} characters")));
            }
            Ok(Parsed::Text(text))
        }
    }
}

/// `a.b[2].c` as a JSON pointer (`/a/b/2/c`). Keys are field names: no `/` or `~`.
fn pointer(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.') {
        for piece in part.split('[') {
            out.push('/');
            out.push_str(piece.trim_end_matches(']'));
        }
    }
    out
}

/// Sets the value at `path`. An optional value the file leaves out (no block) is added to its
/// section, and removed from it when cleared.
fn set(json: &mut Value, path: &str, value: Value) -> Result<(), ProtocolError> {
    let missing = || err(path, "not a value of this protocol");
    let (section, name) = path.rsplit_once('.').unwrap_or(("", path));
    let holder = if section.is_empty() { Some(&mut *json) } else { json.pointer_mut(&pointer(section)) };
    match holder {
        Some(Value::Object(fields)) if !name.contains('[') => {
            if value.is_null() {
                fields.remove(name);
            } else {
                fields.insert(name.to_owned(), value);
            }
        }
        _ => *json.pointer_mut(&pointer(path)).ok_or_else(missing)? = value,
    }
    Ok(())
}

/// Notes on a changed value's source that the clinic set it. A value removed (an optional block
/// cleared) loses its source; a value that had none (a block added) gets one citing KAP-SPEC 4.3,
/// which lets the medical director set lower limits.
fn note_source(json: &mut Value, source_key: &str, removed: bool, version: &str) -> Result<(), ProtocolError> {
    let (parent, name) = source_key.rsplit_once('.').unwrap_or(("", source_key));
    let holder = if parent.is_empty() { Some(&mut *json) } else { json.pointer_mut(&pointer(parent)) };
    let Some(Value::Object(holder)) = holder else {
        return Err(err(source_key, "the source of this value is missing"));
    };
    if removed {
        holder.remove(name);
        return Ok(());
    }
    let text = match holder.get(name).and_then(Value::as_str) {
        Some(old) => old.split(NOTE).next().unwrap_or(old).to_owned(),
        None => "KAP-SPEC 4.3: the medical director may set lower limits".to_owned(),
    };
    holder.insert(name.to_owned(), Value::String(format!("{text}{NOTE}{version}")));
    Ok(())
}

/// A protocol edited through the form.
#[derive(Debug, Clone, PartialEq)]
pub struct Edited {
    /// The next version with the submitted values, validated.
    pub protocol: Protocol,
    /// The keys of the values that changed.
    pub changed: Vec<String>,
}

/// Writes the submitted `(key, value)` pairs into a copy of `p` as `version`, and validates it.
/// Keys not submitted, or submitted as shown, are left alone; unknown keys are ignored (the
/// form's other fields). At least one value must change. An error's path is the JSON path of the
/// value at fault; [`value_for_error`] finds its input.
pub fn apply(p: &Protocol, submitted: &[(String, String)], version: &str) -> Result<Edited, ProtocolError> {
    let mut json = serde_json::to_value(p).map_err(|e| err("", e.to_string()))?;
    let mut changed = Vec::new();
    for v in tunable_values(p) {
        let Some((_, raw)) = submitted.iter().find(|(k, _)| *k == v.key) else { continue };
        let new = parse(&v, raw)?;
        let now = parse(&v, &v.current).ok();
        if now.as_ref() == Some(&new) {
            continue;
        }
        let value = new.json();
        for path in std::iter::once(&v.key).chain(&v.also_sets) {
            set(&mut json, path, value.clone())?;
        }
        // Two values share one source (systolic and diastolic): note it once.
        if !changed.iter().any(|k: &TunableValue| k.source_key == v.source_key) {
            note_source(&mut json, &v.source_key, new == Parsed::Nothing, version)?;
        }
        changed.push(v);
    }
    if changed.is_empty() {
        return Err(err("", "no value was changed"));
    }
    json["version"] = Value::String(version.to_owned());
    let protocol = Protocol::parse(&json.to_string())?;
    Ok(Edited { protocol, changed: changed.into_iter().map(|v| v.key).collect() })
}

/// The input a refusal is about: the value at `path`, the value it repeats, the first value of
/// a section named as a whole (`monitoring.thresholds.pre_dose_confirm`), or the value whose
/// source is named (`dose.fixed_mg_range.sources.block_at_or_above_mg`). `None` when the path is
/// not on the form (the refusal is then shown above it).
pub fn value_for_error<'a>(values: &'a [TunableValue], path: &str) -> Option<&'a TunableValue> {
    if path.is_empty() {
        return None;
    }
    let exact = values.iter().find(|v| v.key == path || v.also_sets.iter().any(|a| a == path));
    let within = || {
        values
            .iter()
            .find(|v| v.key.strip_prefix(path).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('[')))
    };
    let by_source = || {
        let (section, name) = path.split_once(".sources.")?;
        values.iter().find(|v| v.key == format!("{section}.{name}"))
    };
    exact.or_else(within).or_else(by_source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ProtocolSet;

    fn protocol(route: Route) -> Protocol {
        ProtocolSet::bundled().unwrap().get(route).clone()
    }

    fn one(key: &str, value: &str) -> Vec<(String, String)> {
        vec![(key.to_owned(), value.to_owned())]
    }

    /// Every value shown as it is in force.
    fn as_shown(p: &Protocol) -> Vec<(String, String)> {
        tunable_values(p).into_iter().map(|v| (v.key, v.current)).collect()
    }

    #[test]
    fn every_value_of_every_bundled_protocol_is_found_and_submitting_them_as_shown_changes_nothing() {
        for route in Route::ALL {
            let p = protocol(route);
            let values = tunable_values(&p);
            let json = serde_json::to_value(&p).unwrap();
            for v in &values {
                let optional = v.kind == ValueKind::OptionalDecimal && v.current.is_empty();
                assert!(optional || json.pointer(&pointer(&v.key)).is_some(), "{route:?}: {}", v.key);
                assert!(!v.source.is_empty(), "{route:?}: {} has a source", v.key);
                assert!(!v.label.is_empty());
            }
            for group in [Group::DoseLimits, Group::Observation, Group::AlertThresholds, Group::Handout] {
                assert!(values.iter().any(|v| v.group == group), "{route:?} offers {group:?}");
            }
            let e = apply(&p, &as_shown(&p), "2026.2").unwrap_err();
            assert_eq!((e.path.as_str(), e.message.as_str()), ("", "no value was changed"), "{route:?}");
        }
    }

    #[test]
    fn one_changed_value_makes_the_next_version_with_its_source_noted() {
        let p = protocol(Route::IntravenousRacemic);
        let key = "dose.mg_per_kg.override_above_mg_per_kg";
        let mut submitted = as_shown(&p);
        submitted.iter_mut().find(|(k, _)| k == key).unwrap().1 = " 0.6 ".into();
        let edited = apply(&p, &submitted, "2026.2").unwrap();
        assert_eq!(edited.changed, [key]);
        assert_eq!(edited.protocol.version, "2026.2");
        let DoseRule::MgPerKg(r) = &edited.protocol.dose else { panic!("IV is mg/kg") };
        assert_eq!(r.override_above_mg_per_kg, 0.6);
        let source = edited.protocol.dose.source_of("override_above_mg_per_kg");
        assert!(
            source.starts_with("CONFIG-DEFAULT") && source.ends_with("medical director in version 2026.2"),
            "{source}"
        );
        // Changed again later: one note, the latest.
        let again = apply(&edited.protocol, &one(key, "0.7"), "2026.3").unwrap();
        let source = again.protocol.dose.source_of("override_above_mg_per_kg");
        assert_eq!(source.matches(NOTE).count(), 1, "{source}");
        assert!(source.ends_with("2026.3"));
        // Everything else is as it was.
        assert_eq!(edited.protocol.monitoring, p.monitoring);
        assert_eq!(edited.protocol.post_session_instructions, p.post_session_instructions);
    }

    #[test]
    fn the_minimum_observation_also_sets_discharge_criterion_dc_01() {
        let p = protocol(Route::IntramuscularRacemic);
        let edited = apply(&p, &one("observation_minutes", "150"), "2026.2").unwrap();
        assert_eq!(edited.protocol.observation_minutes, 150);
        assert_eq!(edited.protocol.monitoring.discharge.minimum_observation.minutes, 150);
    }

    #[test]
    fn spravato_values_below_the_label_are_refused_naming_the_input() {
        let p = protocol(Route::SpravatoIntranasal);
        let values = tunable_values(&p);
        for (key, value) in [("observation_minutes", "90"), ("dose.devices.min_minutes_between_devices", "4")] {
            let e = apply(&p, &one(key, value), "2026.2").unwrap_err();
            assert_eq!(e.path, key);
            assert!(e.message.contains("label"), "{}", e.message);
            assert_eq!(value_for_error(&values, &e.path).map(|v| v.key.as_str()), Some(key));
        }
        // A longer wait or observation is allowed.
        assert!(apply(&p, &one("observation_minutes", "150"), "2026.2").is_ok());
        // MON-01 is the label's for Spravato: not offered; the CONFIG-DEFAULT thresholds are.
        assert!(!values.iter().any(|v| v.key.contains("pre_dose_confirm")));
        assert!(values.iter().any(|v| v.key == "monitoring.thresholds.pre_dose_hold.systolic"));
        let racemic = tunable_values(&protocol(Route::SublingualLozenge));
        assert!(racemic.iter().any(|v| v.key == "monitoring.thresholds.pre_dose_confirm.systolic"));
    }

    #[test]
    fn the_absolute_iv_limit_and_unreadable_input_are_refused_naming_the_input() {
        let p = protocol(Route::IntravenousRacemic);
        let values = tunable_values(&p);
        let block = "dose.mg_per_kg.block_at_or_above_mg_per_kg";
        let e = apply(&p, &one(block, "1.5"), "2026.2").unwrap_err();
        assert_eq!(value_for_error(&values, &e.path).map(|v| v.key.as_str()), Some(block));
        let e = apply(&p, &one(block, "one"), "2026.2").unwrap_err();
        assert_eq!(e.path, block);
        let spo2 = "monitoring.thresholds.spo2.below";
        assert_eq!(apply(&p, &one(spo2, "300"), "2026.2").unwrap_err().path, spo2);
        let every = "monitoring.plan.measures.blood_pressure.every[0].every_minutes";
        assert_eq!(apply(&p, &one(every, "0"), "2026.2").unwrap_err().path, every);
        assert_eq!(apply(&p, &one(every, "5"), "2026.2").unwrap().changed, [every]);
        // A whole section named by validation maps to its first input.
        assert_eq!(
            value_for_error(&values, "monitoring.thresholds.heart_rate").map(|v| v.key.as_str()),
            Some("monitoring.thresholds.heart_rate.above")
        );
        assert!(value_for_error(&values, "route_code.code").is_none());
    }

    #[test]
    fn an_optional_block_can_be_added_and_cleared_with_its_source() {
        let p = protocol(Route::SublingualLozenge);
        let key = "dose.fixed_mg_range.block_at_or_above_mg";
        let added = apply(&p, &one(key, "500"), "2026.2").unwrap();
        let DoseRule::FixedMgRange(r) = &added.protocol.dose else { panic!("lozenges are a mg range") };
        assert_eq!(r.block_at_or_above_mg, Some(500.0));
        assert!(added.protocol.dose.source_of("block_at_or_above_mg").contains("KAP-SPEC 4.3"));
        let e = apply(&p, &one(key, "300"), "2026.2").unwrap_err();
        assert_eq!(e.path, key, "the block must be above the range");
        let cleared = apply(&added.protocol, &one(key, " "), "2026.3").unwrap();
        let DoseRule::FixedMgRange(r) = &cleared.protocol.dose else { panic!("lozenges are a mg range") };
        assert_eq!(r.block_at_or_above_mg, None);
        assert_eq!(cleared.protocol.dose.source_of("block_at_or_above_mg"), "");
    }

    #[test]
    fn hand_out_text_and_stock_are_edited_in_place() {
        let p = protocol(Route::IntramuscularRacemic);
        let edited = apply(
            &p,
            &[
                ("post_session_instructions[0].text".into(), "No driving  until tomorrow.\r\n".into()),
                ("stock.vials[1].mg_per_ml".into(), "25".into()),
                ("stock.vials[1].product".into(), "Ketamine HCl injection 25 mg/mL vial".into()),
            ],
            "2026.2",
        )
        .unwrap();
        assert_eq!(edited.protocol.post_session_instructions[0].text, "No driving until tomorrow.");
        assert_eq!(edited.protocol.stock.vials[1].mg_per_ml, 25.0);
        let e = apply(&p, &one("post_session_instructions[0].text", "  "), "2026.2").unwrap_err();
        assert_eq!(e.path, "post_session_instructions[0].text");
        let e = apply(&p, &one("stock.vials[1].mg_per_ml", "10"), "2026.2").unwrap_err();
        assert_eq!(e.path, "stock.vials[1].mg_per_ml", "a concentration listed twice");
    }

    #[test]
    fn the_next_version_follows_the_current_one() {
        assert_eq!(next_version("2026.1", 2026).as_deref(), Some("2026.2"));
        assert_eq!(next_version("2026.9", 2027).as_deref(), Some("2027.1"));
        assert_eq!(next_version("2026.3", 2025).as_deref(), Some("2026.4"));
        assert_eq!(next_version("v1", 2026), None);
    }
}
