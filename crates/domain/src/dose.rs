//! Dose arithmetic against a route's protocol (KAP-SPEC 4.1–4.3, test vectors 12.5 and 12.6).
//!
//! [`calculate`] is the one entry point (`POST /api/v1/dose/calculate`): it turns a
//! [`DoseRequest`] into a [`DoseCalculation`] — dose, volume to draw, infusion and pump rates,
//! tablets, devices or applications — and places it in a [`Zone`]: `normal`, `override` (a
//! prescriber must confirm) or `block` (refused, no override), with the limit behind each
//! reason. Input that cannot be computed at all (a missing weight, a dose that is not a whole
//! number of tablets) is an error naming the request field.
//!
//! The software never converts doses between routes (KAP-SPEC 4.1 notes): each calculation uses
//! its own route's protocol only.
//!
//! Quantities are `f64`; every computed value is tidied to nine decimals, so the numbers match the
//! spec as written (33.5 mg, 0.8375 mg/min, 0.175 mL) instead of carrying binary noise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FieldError;
use crate::decision::{Route, SpravatoIndication};
use crate::patient::SexAtBirth;
use crate::protocol::{
    ApplicationRule, DeviceRule, DoseRule, FixedMgRangeRule, MgPerKgRule, ObservationFrom, Protocol, ProtocolSet,
    Stock, WeightBasis, limits,
};
use crate::time::UtcTs;
use crate::vitals::{HeightCm, WeightKg};

/// Removes floating-point noise (0.30000000000000004) from a computed quantity: nine decimals
/// is far finer than any syringe, pump or scale.
fn tidy(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// `x` as a whole count, if it is one (after removing noise).
fn whole(x: f64) -> Option<u32> {
    let r = tidy(x);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    if r >= 1.0 && r <= f64::from(u32::MAX) && r.fract() == 0.0 { Some(r as u32) } else { None }
}

/// Formats a quantity without trailing zeros (`40`, `0.8375`).
fn num(v: f64) -> String {
    format!("{}", tidy(v))
}

macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident, $field:literal, $what:literal, $unit:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(f64);

        impl $name {
            /// The request field this quantity is read from, named in its errors.
            pub const FIELD: &'static str = $field;
            pub const UNIT: &'static str = $unit;

            /// Refuses NaN, infinities, zero and negative values.
            pub fn new(value: f64) -> Result<Self, FieldError> {
                if value.is_finite() && value > 0.0 {
                    Ok(Self(value))
                } else {
                    Err(FieldError::new($field, format!("{} must be a number above 0 {}", $what, $unit)))
                }
            }

            pub fn value(self) -> f64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} {}", num(self.0), $unit)
            }
        }
    };
}

quantity!(
    /// A dose of ketamine or esketamine, mg.
    DoseMg, "dose_mg", "the dose", "mg"
);
quantity!(
    /// A weight-based dose, mg per kg of body weight.
    MgPerKg, "dose_mg_per_kg", "the dose per kilogram", "mg/kg"
);
quantity!(
    /// The concentration of the vial or solution drawn from, mg/mL.
    StockMgPerMl, "stock_mg_per_ml", "the stock concentration", "mg/mL"
);
quantity!(
    /// How long an IV infusion runs, minutes.
    InfusionMinutes, "infusion_minutes", "the infusion time", "min"
);
quantity!(
    /// The volume of the infusion bag, mL.
    BagMl, "bag_ml", "the bag volume", "mL"
);

/// `round(weight_kg × mg_per_kg, increment)` (KAP-SPEC 4.3): to the nearest increment, halves
/// away from zero.
pub fn weight_based_dose(weight_kg: f64, mg_per_kg: MgPerKg, increment_mg: f64) -> Result<DoseMg, FieldError> {
    DoseMg::new(round_to_increment(weight_kg * mg_per_kg.value(), increment_mg))
}

/// Rounds `mg` to the nearest multiple of `increment_mg`. The quotient is tidied first so that a
/// decimal half (31.95 mg at 0.1 mg) rounds up as written, not down because of binary noise.
pub fn round_to_increment(mg: f64, increment_mg: f64) -> f64 {
    tidy(tidy(mg / increment_mg).round() * increment_mg)
}

/// Volume to draw: `dose / stock` (KAP-SPEC 4.3).
pub fn draw_volume_ml(dose: DoseMg, stock: StockMgPerMl) -> f64 {
    tidy(dose.value() / stock.value())
}

/// IV infusion rate: `dose / minutes`, mg/min (KAP-SPEC 4.3).
pub fn infusion_rate_mg_per_min(dose: DoseMg, minutes: InfusionMinutes) -> f64 {
    tidy(dose.value() / minutes.value())
}

/// Pump rate: `bag / minutes × 60`, mL/h (KAP-SPEC 4.3).
pub fn pump_ml_per_h(bag: BagMl, minutes: InfusionMinutes) -> f64 {
    tidy(bag.value() / minutes.value() * 60.0)
}

/// Devine ideal body weight (KAP-SPEC 4.3): male 50 + 2.3 × (height_in − 60), female
/// 45.5 + 2.3 × (height_in − 60). Unrounded: the dose is computed from it and then rounded once.
pub fn devine_ideal_body_weight_kg(height: HeightCm, sex: SexAtBirth) -> Result<f64, FieldError> {
    let base = match sex {
        SexAtBirth::Male => 50.0,
        SexAtBirth::Female => 45.5,
        SexAtBirth::Other | SexAtBirth::Unknown => {
            return Err(FieldError::new(
                "sex_at_birth",
                "the Devine ideal body weight is defined for male or female; dose on actual weight instead",
            ));
        }
    };
    let inches = height.value() / 2.54;
    let ibw = base + 2.3 * (inches - 60.0);
    WeightKg::new(ibw).map(WeightKg::value).map_err(|_| {
        FieldError::new(
            "height_cm",
            format!("the Devine ideal body weight for this height ({} kg) is not a plausible dosing weight", num(ibw)),
        )
    })
}

/// Where a dose falls against its protocol's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    Normal,
    /// A prescriber must confirm the dose (an audited override).
    Override,
    /// Refused; no override.
    Block,
}

/// The limit behind a zone, as a stable code for the API and the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    OverrideAboveMgPerKg,
    BlockAtOrAboveMgPerKg,
    OutsideMgRange,
    OverrideAboveMg,
    BlockAtOrAboveMg,
    /// 100 mg/mL for IV without a recorded equal-volume dilution [S12].
    UndilutedIvConcentrate,
    /// The weight is older than the protocol allows for weight-based dosing.
    WeightTooOld,
    SpravatoDoseNotAllowed,
    /// TRD, first session: the label's day-1 dose.
    SpravatoDay1Dose,
    /// TRD: 84 mg only after a 56 mg session.
    #[serde(rename = "spravato_84_mg_before_a_56_mg_session")]
    Spravato84MgBeforeA56MgSession,
}

/// One reason a dose is not in the normal zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ZoneReason {
    pub zone: Zone,
    pub limit: Limit,
    /// For the clinician, with the numbers.
    pub message: String,
    /// Where the limit comes from (the protocol's source, or the label).
    pub source: String,
}

fn rule_source<'a>(sources: &'a BTreeMap<String, String>, field: &str) -> &'a str {
    sources.get(field).map_or("", String::as_str)
}

fn reason(zone: Zone, limit: Limit, message: String, source: &str) -> ZoneReason {
    ZoneReason { zone, limit, message, source: source.to_owned() }
}

/// The zone of a weight-based dose: block at or above the block limit, override above the
/// override limit (KAP-SPEC 4.3; TV-IV-4, TV-IV-5, TV-IV-7). `None` is the normal zone.
pub fn mg_per_kg_zone(rule: &MgPerKgRule, mg_per_kg: f64) -> Option<ZoneReason> {
    let block = rule.block_at_or_above_mg_per_kg;
    let over = rule.override_above_mg_per_kg;
    if mg_per_kg >= block {
        Some(reason(
            Zone::Block,
            Limit::BlockAtOrAboveMgPerKg,
            format!(
                "{} mg/kg is at or above this protocol's block of {} mg/kg: it cannot be given",
                num(mg_per_kg),
                num(block)
            ),
            rule_source(&rule.sources, "block_at_or_above_mg_per_kg"),
        ))
    } else if mg_per_kg > over {
        Some(reason(
            Zone::Override,
            Limit::OverrideAboveMgPerKg,
            format!("{} mg/kg is above {} mg/kg: a prescriber must confirm the dose", num(mg_per_kg), num(over)),
            rule_source(&rule.sources, "override_above_mg_per_kg"),
        ))
    } else {
        None
    }
}

/// A dose of whole tablets of one strength.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Tablets {
    pub count: u32,
    pub tablet_mg: f64,
}

/// The tablets for a dose: of the strength asked for, or else the largest stocked strength that
/// makes the dose in whole tablets (one product, one lot on the record). A dose that no strength
/// makes whole is refused: tablets are not split (TV-SL-1: 300 mg = 3 × 100 mg).
pub fn tablets_for(dose: DoseMg, stock: &Stock, tablet_mg: Option<f64>) -> Result<Tablets, FieldError> {
    let strengths = stock.tablet_strengths_mg();
    let listed = strengths.iter().map(|s| format!("{} mg", num(*s))).collect::<Vec<_>>().join(", ");
    if let Some(t) = tablet_mg {
        if !strengths.contains(&t) {
            return Err(FieldError::new("tablet_mg", format!("the stocked tablet strengths are {listed}")));
        }
        return whole(dose.value() / t).map(|count| Tablets { count, tablet_mg: t }).ok_or_else(|| {
            FieldError::new("dose_mg", format!("{dose} is not a whole number of {} mg tablets", num(t)))
        });
    }
    strengths.iter().find_map(|s| whole(dose.value() / s).map(|count| Tablets { count, tablet_mg: *s })).ok_or_else(
        || {
            FieldError::new(
                "dose_mg",
                format!("{dose} is not a whole number of tablets of any stocked strength ({listed})"),
            )
        },
    )
}

/// What the Spravato dose check needs to know about the patient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpravatoContext {
    /// From the signed eligibility decision.
    pub indication: Option<SpravatoIndication>,
    /// Doses of this patient's previous Spravato sessions, mg (empty: this is day 1).
    #[serde(default)]
    pub previous_doses_mg: Vec<u16>,
    /// Needed only where the older-adult 28 mg start is enabled.
    #[serde(default)]
    pub age_years: Option<u8>,
}

/// The label's rules for a Spravato dose (KAP-SPEC 4.2; TV-SPR-2). TRD: day 1 is 56 mg (28 mg
/// with the older-adult option), and 84 mg only after a 56 mg session. MDD with acute suicidal
/// ideation starts at 84 mg (may be reduced to 56 mg), so neither rule applies to it.
pub fn spravato_dose_reasons(rule: &DeviceRule, dose_mg: u16, context: &SpravatoContext) -> Vec<ZoneReason> {
    let source = |f: &str| rule_source(&rule.sources, f).to_owned();
    let first = context.previous_doses_mg.is_empty();
    let older_start = rule
        .older_adult_start
        .as_ref()
        .filter(|o| context.age_years.is_some_and(|age| age >= o.age_at_or_above))
        .map(|o| o.day1_dose_mg);
    if first && older_start == Some(dose_mg) {
        return Vec::new();
    }
    if !rule.allowed_doses_mg.contains(&dose_mg) {
        let allowed: Vec<String> = rule.allowed_doses_mg.iter().map(u16::to_string).collect();
        return vec![reason(
            Zone::Block,
            Limit::SpravatoDoseNotAllowed,
            format!("{dose_mg} mg is not a Spravato dose this protocol allows ({} mg)", allowed.join(" or ")),
            &source("allowed_doses_mg"),
        )];
    }
    if context.indication == Some(SpravatoIndication::MddWithAcuteSuicidalIdeation) {
        return Vec::new();
    }
    let start = rule.day1_dose_mg;
    if first && dose_mg != start {
        let older =
            older_start.map(|mg| format!(" ({mg} mg for patients of the older-adult option)")).unwrap_or_default();
        return vec![reason(
            Zone::Block,
            Limit::SpravatoDay1Dose,
            format!("day 1 of Spravato for TRD is {start} mg{older}; {dose_mg} mg only after a {start} mg session"),
            &source("day1_dose_mg"),
        )];
    }
    if dose_mg > start && !context.previous_doses_mg.contains(&start) {
        return vec![reason(
            Zone::Block,
            Limit::Spravato84MgBeforeA56MgSession,
            format!("{dose_mg} mg is given only after a {start} mg session (label); none is recorded"),
            &source("day1_dose_mg"),
        )];
    }
    Vec::new()
}

/// The body of `POST /api/v1/dose/calculate`. Numbers arrive raw and are parsed here, so an
/// error names the field at fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DoseRequest {
    /// Protocol id (`intravenous-racemic`) or route (`intravenous_racemic`).
    pub protocol: String,
    #[serde(default)]
    pub weight_kg: Option<f64>,
    /// Days since the weight was measured: weight-based doses need a recent weight (KAP-SPEC 4.3).
    #[serde(default)]
    pub weight_measured_days_ago: Option<u32>,
    /// For an ideal-body-weight protocol.
    #[serde(default)]
    pub height_cm: Option<f64>,
    #[serde(default)]
    pub sex_at_birth: Option<String>,
    /// A weight-based dose is ordered in mg/kg or in mg, not both.
    #[serde(default)]
    pub dose_mg_per_kg: Option<f64>,
    #[serde(default)]
    pub dose_mg: Option<f64>,
    /// The vial or solution drawn from; may be left out when the protocol stocks only one.
    #[serde(default)]
    pub stock_mg_per_ml: Option<f64>,
    /// The 100 mg/mL concentration was diluted with an equal volume before IV use [S12].
    #[serde(default)]
    pub diluted_with_equal_volume: bool,
    /// IV: defaults to the protocol's infusion time.
    #[serde(default)]
    pub infusion_minutes: Option<f64>,
    /// IV: the bag volume, for the pump rate.
    #[serde(default)]
    pub bag_ml: Option<f64>,
    /// Sublingual: the tablet strength to use (default: the largest that makes whole tablets).
    #[serde(default)]
    pub tablet_mg: Option<f64>,
    /// Spravato: indication and previous sessions.
    #[serde(default)]
    pub spravato: Option<SpravatoContext>,
}

/// The answer of `POST /api/v1/dose/calculate`. Values that do not apply to the route are left
/// out of the JSON. It is read back only from the domain's own records (a dosing session's
/// order); a calculation posted by a client is never trusted: it is computed again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DoseCalculation {
    pub protocol_id: String,
    /// The protocol version the dose was computed with, to be recorded with it.
    pub protocol_version: String,
    pub route: Route,
    pub dose_mg: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dose_mg_per_kg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_basis: Option<WeightBasis>,
    /// The weight the dose was computed from (the ideal body weight, rounded to 0.01 kg for
    /// display, when the protocol uses it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dosing_weight_kg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock_mg_per_ml: Option<f64>,
    /// Volume of stock to draw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_ml: Option<f64>,
    /// IV from 100 mg/mL: the equal volume of diluent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diluent_ml: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infusion_minutes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_mg_per_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_mg_per_h: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pump_ml_per_h: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tablets: Option<Tablets>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<u32>,
    /// The Spravato kit whose devices make the dose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kit_ndc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applications: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_per_application_ml: Option<f64>,
    /// Devices or applications: the least wait after each one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_minutes_between: Option<u32>,
    pub zone: Zone,
    pub reasons: Vec<ZoneReason>,
}

impl DoseCalculation {
    fn new(protocol: &Protocol, dose: DoseMg) -> Self {
        Self {
            protocol_id: protocol.id.clone(),
            protocol_version: protocol.version.clone(),
            route: protocol.route,
            dose_mg: tidy(dose.value()),
            dose_mg_per_kg: None,
            weight_basis: None,
            dosing_weight_kg: None,
            stock_mg_per_ml: None,
            volume_ml: None,
            diluent_ml: None,
            infusion_minutes: None,
            rate_mg_per_min: None,
            rate_mg_per_h: None,
            pump_ml_per_h: None,
            tablets: None,
            devices: None,
            kit_ndc: None,
            applications: None,
            volume_per_application_ml: None,
            min_minutes_between: None,
            zone: Zone::Normal,
            reasons: Vec::new(),
        }
    }

    fn with_reasons(mut self, reasons: Vec<ZoneReason>) -> Self {
        self.zone = reasons.iter().map(|r| r.zone).max().unwrap_or(Zone::Normal);
        self.reasons = reasons;
        self
    }
}

/// Refuses a request field that the protocol's route does not use, rather than ignoring it.
fn not_for_route(present: bool, field: &'static str, why: &str) -> Result<(), FieldError> {
    if present { Err(FieldError::new(field, why.to_owned())) } else { Ok(()) }
}

/// The requested stock, which must be one the protocol lists; with a single liquid stock it may
/// be left out.
fn pick_stock(protocol: &Protocol, requested: Option<f64>) -> Result<StockMgPerMl, FieldError> {
    let stocked = protocol.stock.liquid_mg_per_ml();
    let listed = stocked.iter().map(|s| format!("{} mg/mL", num(*s))).collect::<Vec<_>>().join(", ");
    match (requested, stocked.as_slice()) {
        (None, [only]) => StockMgPerMl::new(*only),
        (None, _) => Err(FieldError::new("stock_mg_per_ml", format!("choose the concentration drawn from: {listed}"))),
        (Some(s), _) => {
            let s = StockMgPerMl::new(s)?;
            if stocked.contains(&s.value()) {
                Ok(s)
            } else {
                Err(FieldError::new("stock_mg_per_ml", format!("{s} is not stocked for this protocol ({listed})")))
            }
        }
    }
}

fn required(v: Option<f64>, field: &'static str, what: &str) -> Result<f64, FieldError> {
    v.ok_or_else(|| FieldError::new(field, what.to_owned()))
}

/// Computes a dose with `protocol` (the entry point of `POST /api/v1/dose/calculate`).
pub fn calculate(protocol: &Protocol, request: &DoseRequest) -> Result<DoseCalculation, FieldError> {
    if !request.protocol.is_empty() && request.protocol != protocol.id && request.protocol != protocol.route.as_str() {
        return Err(FieldError::new("protocol", format!("this calculation uses the protocol `{}`", protocol.id)));
    }
    let iv = protocol.route == Route::IntravenousRacemic;
    not_for_route(
        !iv && request.infusion_minutes.is_some(),
        "infusion_minutes",
        "only an IV infusion has an infusion time",
    )?;
    not_for_route(!iv && request.bag_ml.is_some(), "bag_ml", "only an IV infusion has a bag")?;
    not_for_route(
        !matches!(protocol.dose, DoseRule::FixedMgRange(_)) && request.tablet_mg.is_some(),
        "tablet_mg",
        "only a lozenge protocol is dosed in tablets",
    )?;
    not_for_route(
        !matches!(protocol.dose, DoseRule::Devices(_)) && request.spravato.is_some(),
        "spravato",
        "only for a Spravato dose",
    )?;
    not_for_route(
        !matches!(protocol.dose, DoseRule::MgPerKg(_)) && request.dose_mg_per_kg.is_some(),
        "dose_mg_per_kg",
        "this protocol doses in mg, not mg/kg: give dose_mg",
    )?;
    match &protocol.dose {
        DoseRule::MgPerKg(rule) => weight_based(protocol, rule, request),
        DoseRule::FixedMgRange(rule) => fixed_mg(protocol, rule, request),
        DoseRule::Devices(rule) => devices(protocol, rule, request),
        DoseRule::Applications(rule) => applications(protocol, rule, request),
    }
}

impl ProtocolSet {
    /// Finds the request's protocol and computes the dose with it.
    pub fn calculate(&self, request: &DoseRequest) -> Result<DoseCalculation, FieldError> {
        let protocol = self.find(&request.protocol).ok_or_else(|| {
            let ids: Vec<&str> = self.iter().map(|p| p.id.as_str()).collect();
            FieldError::new("protocol", format!("choose one of: {}", ids.join(", ")))
        })?;
        calculate(protocol, request)
    }
}

/// IV and IM (KAP-SPEC 4.3; TV-IV-*, TV-IM-*).
fn weight_based(protocol: &Protocol, rule: &MgPerKgRule, request: &DoseRequest) -> Result<DoseCalculation, FieldError> {
    let mut reasons = Vec::new();
    let source = |f: &str| protocol.dose.source_of(f).to_owned();
    let (weight, shown_weight) = match rule.weight_basis {
        WeightBasis::Actual => {
            let w = required(request.weight_kg, "weight_kg", "a weight-based dose needs the patient's weight")?;
            let w = WeightKg::new(w).map_err(|e| FieldError::new("weight_kg", e.message))?.value();
            let max = rule.weight_max_age_days;
            let age = request.weight_measured_days_ago.ok_or_else(|| {
                FieldError::new(
                    "weight_measured_days_ago",
                    format!("say how many days ago the weight was measured (it must be within {max} days)"),
                )
            })?;
            if age > max {
                reasons.push(reason(
                    Zone::Block,
                    Limit::WeightTooOld,
                    format!("the weight was measured {age} days ago; weigh the patient again (within {max} days)"),
                    &source("weight_max_age_days"),
                ));
            }
            (w, w)
        }
        WeightBasis::Ideal => {
            let h = required(request.height_cm, "height_cm", "an ideal-body-weight dose needs the patient's height")?;
            let h = HeightCm::new(h).map_err(|e| FieldError::new("height_cm", e.message))?;
            let sex = request.sex_at_birth.as_deref().ok_or_else(|| {
                FieldError::new("sex_at_birth", "an ideal-body-weight dose needs the sex at birth (Devine formula)")
            })?;
            let ibw = devine_ideal_body_weight_kg(h, SexAtBirth::parse(sex)?)?;
            (ibw, (ibw * 100.0).round() / 100.0)
        }
    };
    let (mg_per_kg, dose) = match (request.dose_mg_per_kg, request.dose_mg) {
        (Some(_), Some(_)) => {
            return Err(FieldError::new("dose_mg_per_kg", "give the dose in mg/kg or in mg, not both"));
        }
        (None, None) => {
            return Err(FieldError::new(
                "dose_mg_per_kg",
                format!("give the dose in mg/kg (protocol default {} mg/kg)", num(rule.default_mg_per_kg)),
            ));
        }
        (Some(x), None) => {
            let m = MgPerKg::new(x)?;
            (m.value(), weight_based_dose(weight, m, rule.rounding_increment_mg)?)
        }
        (None, Some(x)) => {
            let d = DoseMg::new(x)?;
            (tidy(d.value() / weight), d)
        }
    };
    reasons.extend(mg_per_kg_zone(rule, mg_per_kg));
    // Rounding must never carry a dose to the block (0.9999 mg/kg × 70 kg rounds to 70.0 mg).
    let block_mg = tidy(rule.block_at_or_above_mg_per_kg * weight);
    if dose.value() >= block_mg && !reasons.iter().any(|r| r.limit == Limit::BlockAtOrAboveMgPerKg) {
        reasons.push(reason(
            Zone::Block,
            Limit::BlockAtOrAboveMgPerKg,
            format!(
                "{dose} is at or above the block of {} mg/kg ({} mg): it cannot be given",
                num(rule.block_at_or_above_mg_per_kg),
                num(block_mg)
            ),
            &source("block_at_or_above_mg_per_kg"),
        ));
    }
    let stock = pick_stock(protocol, request.stock_mg_per_ml)?;
    let volume = draw_volume_ml(dose, stock);
    let mut calc = DoseCalculation::new(protocol, dose);
    calc.dose_mg_per_kg = Some(tidy(mg_per_kg));
    calc.weight_basis = Some(rule.weight_basis);
    calc.dosing_weight_kg = Some(shown_weight);
    calc.stock_mg_per_ml = Some(stock.value());
    calc.volume_ml = Some(volume);
    if protocol.route == Route::IntravenousRacemic {
        if stock.value() >= limits::IV_UNDILUTED_FROM_MG_PER_ML {
            if request.diluted_with_equal_volume {
                calc.diluent_ml = Some(volume);
            } else {
                reasons.push(reason(
                    Zone::Block,
                    Limit::UndilutedIvConcentrate,
                    format!(
                        "{stock} must not be given IV undiluted: dilute with an equal volume ({} mL) of sterile \
                         water, 0.9% NaCl or D5W and record it",
                        num(volume)
                    ),
                    "Ketalar label, KAP-SPEC 4.1 [S12]",
                ));
            }
        }
        let minutes = match request.infusion_minutes {
            Some(m) => m,
            None => required(rule.default_infusion_minutes, "infusion_minutes", "give the infusion time")?,
        };
        let minutes = InfusionMinutes::new(minutes)?;
        let rate = infusion_rate_mg_per_min(dose, minutes);
        calc.infusion_minutes = Some(minutes.value());
        calc.rate_mg_per_min = Some(rate);
        calc.rate_mg_per_h = Some(tidy(rate * 60.0));
        calc.pump_ml_per_h = request.bag_ml.map(BagMl::new).transpose()?.map(|bag| pump_ml_per_h(bag, minutes));
    }
    Ok(calc.with_reasons(reasons))
}

/// Sublingual/buccal (KAP-SPEC 4.3; TV-SL-1, TV-SL-2).
fn fixed_mg(
    protocol: &Protocol,
    rule: &FixedMgRangeRule,
    request: &DoseRequest,
) -> Result<DoseCalculation, FieldError> {
    not_for_route(request.stock_mg_per_ml.is_some(), "stock_mg_per_ml", "a lozenge is dosed in tablets, not mL")?;
    let dose = DoseMg::new(required(request.dose_mg, "dose_mg", "give the dose in mg")?)?;
    let tablets = tablets_for(dose, &protocol.stock, request.tablet_mg)?;
    let source = |f: &str| protocol.dose.source_of(f).to_owned();
    let mut reasons = Vec::new();
    match rule.block_at_or_above_mg {
        Some(block) if dose.value() >= block => reasons.push(reason(
            Zone::Block,
            Limit::BlockAtOrAboveMg,
            format!("{dose} is at or above this protocol's block of {} mg: it cannot be given", num(block)),
            &source("block_at_or_above_mg"),
        )),
        _ if dose.value() < rule.min_mg || dose.value() > rule.max_mg => reasons.push(reason(
            Zone::Override,
            Limit::OutsideMgRange,
            format!(
                "{dose} is outside this protocol's range of {}–{} mg: a prescriber must confirm the dose",
                num(rule.min_mg),
                num(rule.max_mg)
            ),
            &format!("{}; {}", source("min_mg"), source("max_mg")),
        )),
        _ => {}
    }
    let mut calc = DoseCalculation::new(protocol, dose);
    calc.tablets = Some(tablets);
    Ok(calc.with_reasons(reasons))
}

/// Spravato (KAP-SPEC 4.2; TV-SPR-2).
fn devices(protocol: &Protocol, rule: &DeviceRule, request: &DoseRequest) -> Result<DoseCalculation, FieldError> {
    not_for_route(request.stock_mg_per_ml.is_some(), "stock_mg_per_ml", "Spravato is dosed in devices, not mL")?;
    let dose = DoseMg::new(required(request.dose_mg, "dose_mg", "give the dose in mg (56 or 84)")?)?;
    let per_device = rule.mg_per_device;
    let whole_devices = || {
        FieldError::new("dose_mg", format!("Spravato is given in whole {per_device} mg devices (56 mg = 2, 84 mg = 3)"))
    };
    let count = whole(dose.value() / f64::from(per_device)).ok_or_else(whole_devices)?;
    let dose_mg =
        count.checked_mul(u32::from(per_device)).and_then(|mg| u16::try_from(mg).ok()).ok_or_else(whole_devices)?;
    let context = request.spravato.as_ref().ok_or_else(|| {
        FieldError::new("spravato", "give the indication and the doses of the patient's previous Spravato sessions")
    })?;
    if context.indication.is_none() {
        return Err(FieldError::new(
            "spravato.indication",
            "give the Spravato indication from the eligibility decision",
        ));
    }
    // The older-adult start depends on the age: without it, say so instead of refusing 28 mg.
    if let Some(o) = &rule.older_adult_start
        && context.previous_doses_mg.is_empty()
        && dose_mg == o.day1_dose_mg
        && context.age_years.is_none()
    {
        return Err(FieldError::new(
            "spravato.age_years",
            format!("the {} mg start is for patients aged {} or more: give the age", o.day1_dose_mg, o.age_at_or_above),
        ));
    }
    let reasons = spravato_dose_reasons(rule, dose_mg, context);
    let mut calc = DoseCalculation::new(protocol, dose);
    calc.devices = Some(count);
    calc.kit_ndc = protocol
        .stock
        .device_kits
        .iter()
        .find(|k| u32::from(k.devices) * u32::from(k.mg_per_device) == u32::from(dose_mg))
        .map(|k| k.ndc.clone());
    calc.min_minutes_between = Some(rule.min_minutes_between_devices);
    Ok(calc.with_reasons(reasons))
}

/// Compounded racemic nasal spray (KAP-SPEC 4.1: 10 mg applications, 5 minutes apart).
fn applications(
    protocol: &Protocol,
    rule: &ApplicationRule,
    request: &DoseRequest,
) -> Result<DoseCalculation, FieldError> {
    let default_mg = f64::from(rule.default_applications) * rule.mg_per_application;
    let dose = DoseMg::new(required(
        request.dose_mg,
        "dose_mg",
        &format!("give the dose in mg (protocol default {})", num(default_mg)),
    )?)?;
    let per = rule.mg_per_application;
    let count = whole(dose.value() / per).ok_or_else(|| {
        FieldError::new("dose_mg", format!("{dose} is not a whole number of {} mg applications", num(per)))
    })?;
    let stock = pick_stock(protocol, request.stock_mg_per_ml)?;
    let source = |f: &str| protocol.dose.source_of(f).to_owned();
    let mut reasons = Vec::new();
    match rule.block_at_or_above_mg {
        Some(block) if dose.value() >= block => reasons.push(reason(
            Zone::Block,
            Limit::BlockAtOrAboveMg,
            format!("{dose} is at or above this protocol's block of {} mg: it cannot be given", num(block)),
            &source("block_at_or_above_mg"),
        )),
        _ if dose.value() > rule.override_above_mg => reasons.push(reason(
            Zone::Override,
            Limit::OverrideAboveMg,
            format!("{dose} is above {} mg: a prescriber must confirm the dose", num(rule.override_above_mg)),
            &source("override_above_mg"),
        )),
        _ => {}
    }
    let mut calc = DoseCalculation::new(protocol, dose);
    calc.stock_mg_per_ml = Some(stock.value());
    calc.volume_ml = Some(draw_volume_ml(dose, stock));
    calc.applications = Some(count);
    calc.volume_per_application_ml = Some(tidy(per / stock.value()));
    calc.min_minutes_between = Some(rule.min_minutes_between_applications);
    Ok(calc.with_reasons(reasons))
}

/// Whether a timed log holds Spravato devices or nasal applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimedUnit {
    Device,
    Application,
}

impl TimedUnit {
    fn word(self) -> &'static str {
        match self {
            TimedUnit::Device => "device",
            TimedUnit::Application => "application",
        }
    }

    fn field(self) -> &'static str {
        match self {
            TimedUnit::Device => "device_times",
            TimedUnit::Application => "application_times",
        }
    }
}

const MICROS_PER_MINUTE: i64 = 60_000_000;

fn duration_text(micros: i64) -> String {
    let secs = micros / 1_000_000;
    let (m, s) = (secs / 60, secs % 60);
    if s == 0 { format!("{m} min") } else { format!("{m} min {s} s") }
}

/// The time-stamped devices of a Spravato session (or applications of a compounded nasal dose),
/// each at least the protocol's wait after the previous one (KAP-SPEC 2.2, 4.2; TV-SPR-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DeviceLog {
    unit: TimedUnit,
    planned: u32,
    min_gap_minutes: u32,
    times: Vec<UtcTs>,
}

impl DeviceLog {
    /// An empty log for a dose of `planned` devices (applications) under `protocol`.
    pub fn new(protocol: &Protocol, planned: u32) -> Result<Self, FieldError> {
        let (unit, min_gap_minutes) = match &protocol.dose {
            DoseRule::Devices(r) => (TimedUnit::Device, r.min_minutes_between_devices),
            DoseRule::Applications(r) => (TimedUnit::Application, r.min_minutes_between_applications),
            _ => {
                return Err(FieldError::new(
                    "protocol",
                    "only Spravato and compounded nasal doses are timed per device",
                ));
            }
        };
        if planned == 0 {
            return Err(FieldError::new(unit.field(), format!("a dose has at least one {}", unit.word())));
        }
        Ok(Self { unit, planned, min_gap_minutes, times: Vec::new() })
    }

    /// A log with these times, each checked in turn.
    pub fn with_times(protocol: &Protocol, planned: u32, times: &[UtcTs]) -> Result<Self, FieldError> {
        let mut log = Self::new(protocol, planned)?;
        for t in times {
            log.record(*t)?;
        }
        Ok(log)
    }

    /// Records the next device; refused if all are given or it is too soon after the previous one.
    pub fn record(&mut self, at: UtcTs) -> Result<(), FieldError> {
        let (word, field) = (self.unit.word(), self.unit.field());
        let n = self.times.len() + 1;
        if n > self.planned as usize {
            return Err(FieldError::new(field, format!("all {} {word}s of this dose are recorded", self.planned)));
        }
        if let Some(prev) = self.times.last().copied() {
            let gap = at.unix_micros() - prev.unix_micros();
            if gap < 0 {
                return Err(FieldError::new(field, format!("{word} {n} is timed before {word} {}", n - 1)));
            }
            if gap < i64::from(self.min_gap_minutes) * MICROS_PER_MINUTE {
                return Err(FieldError::new(
                    field,
                    format!(
                        "{word} {n} was given {} after {word} {}: wait at least {} min after each {word}",
                        duration_text(gap),
                        n - 1,
                        self.min_gap_minutes
                    ),
                ));
            }
        }
        self.times.push(at);
        Ok(())
    }

    pub fn times(&self) -> &[UtcTs] {
        &self.times
    }

    pub fn is_complete(&self) -> bool {
        self.times.len() == self.planned as usize
    }

    pub fn first(&self) -> Option<UtcTs> {
        self.times.first().copied()
    }

    pub fn last(&self) -> Option<UtcTs> {
        self.times.last().copied()
    }

    /// The moment observation is counted from: the first device, or the last once all are given.
    pub fn observation_start(&self, from: ObservationFrom) -> Option<UtcTs> {
        match from {
            ObservationFrom::FirstDevice | ObservationFrom::FirstApplication => self.first(),
            ObservationFrom::LastDevice | ObservationFrom::LastApplication if self.is_complete() => self.last(),
            _ => None,
        }
    }

    /// The earliest discharge by observation time (DC-01; TV-SPR-1: 12:00 from the first device,
    /// 12:10 from the last). `None` until it can be known.
    pub fn earliest_discharge(&self, protocol: &Protocol) -> Option<UtcTs> {
        self.observation_start(protocol.observation_from).map(|start| protocol.earliest_discharge(start))
    }

    /// Refuses a discharge before the minimum observation time (TV-SPR-1: 11:55 is 115 min).
    pub fn check_discharge(&self, protocol: &Protocol, at: UtcTs) -> Result<(), FieldError> {
        let word = self.unit.word();
        if !self.is_complete() {
            return Err(FieldError::new(
                "discharge_at",
                format!("{} of {} {word}s are recorded", self.times.len(), self.planned),
            ));
        }
        let Some(start) = self.observation_start(protocol.observation_from) else {
            return Err(FieldError::new("discharge_at", format!("no {word} is recorded")));
        };
        let earliest = protocol.earliest_discharge(start);
        if at < earliest {
            let which = match protocol.observation_from {
                ObservationFrom::LastDevice | ObservationFrom::LastApplication => "last",
                _ => "first",
            };
            return Err(FieldError::new(
                "discharge_at",
                format!(
                    "{} since the {which} {word}: observe for at least {} min from the {which} {word}, then \
                     until clinically stable",
                    duration_text(at.unix_micros() - start.unix_micros()),
                    protocol.observation_minutes
                ),
            ));
        }
        Ok(())
    }

    /// REMS "treatment duration": whole minutes from the first device to the completion of
    /// monitoring, whatever the observation option (KAP-SPEC 5.6; TV-SPR-1: 12:20 → 140).
    pub fn rems_treatment_minutes(&self, completed_at: UtcTs) -> Option<i64> {
        self.first().map(|first| (completed_at.unix_micros() - first.unix_micros()).div_euclid(MICROS_PER_MINUTE))
    }
}

#[cfg(test)]
mod tests;
