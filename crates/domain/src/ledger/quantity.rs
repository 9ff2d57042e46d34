//! Quantities of a controlled substance, kept as whole numbers in the smallest unit a record
//! needs: micrograms of drug and microlitres (0.001 mL) of solution.
//!
//! Why integers: a balance is the sum of every entry of a lot, over years and up to hundreds of
//! thousands of entries, and a count must be compared with it exactly — a discrepancy of 0 must
//! be exactly 0, and TV-DEA-5's −10 mg exactly −10 mg. Binary floating point cannot hold 0.1 mg or
//! 0.8 mL exactly, so sums of `f64` drift and an honest ledger would show phantom differences.
//! Why these units: doses are rounded to 0.1 mg by default (KAP-SPEC 4.3 "CONFIG rounding
//! (default 0.1 mg)"), volumes are drawn to 0.01 mL at most, and the strengths in use are whole mg
//! per mL (KAP-SPEC 4.1: 10, 50, 100 mg/mL), so 1 µL of a whole-mg/mL solution is a whole number of
//! micrograms: every amount the clinic handles is exact. An `i64` of micrograms holds more than
//! nine million kilograms, far beyond any clinic.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Parses a decimal without a sign and with at most three decimals (`"40"`, `"33.5"`, `"0.125"`)
/// into thousandths, exactly: no floating point on the way.
fn parse_thousandths(raw: &str) -> Option<i64> {
    let s = raw.trim();
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 12 || !digits(whole) || frac.len() > 3 || !digits(frac) {
        return None;
    }
    if s.ends_with('.') {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut thousandths = 0i64;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += i64::from(b - b'0') * [100, 10, 1][i];
    }
    whole.checked_mul(1000)?.checked_add(thousandths)
}

/// Thousandths as a decimal without trailing zeros: 40000 → `40`, 33500 → `33.5`, −10000 → `-10`.
fn thousandths_text(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let (whole, frac) = (a / 1000, a % 1000);
    if frac == 0 {
        format!("{sign}{whole}")
    } else {
        let f = format!("{frac:03}");
        format!("{sign}{whole}.{}", f.trim_end_matches('0'))
    }
}

/// An amount of drug (ketamine or esketamine, as labelled) in micrograms. Signed, because a
/// difference between a count and the ledger can be negative; an amount an entry moves is always
/// above zero ([`Micrograms::positive`]).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Micrograms(i64);

impl Micrograms {
    pub const ZERO: Micrograms = Micrograms(0);

    pub const fn from_ug(ug: i64) -> Self {
        Self(ug)
    }

    /// Whole milligrams.
    pub const fn from_mg(mg: i64) -> Self {
        Self(mg * 1000)
    }

    pub const fn ug(self) -> i64 {
        self.0
    }

    /// Milligrams, for a JSON number such as the API's `on_hand_mg`. Exact for every amount below
    /// 2^53 µg; the exact decimal is [`Micrograms::mg_text`].
    pub fn mg(self) -> f64 {
        // Lossless for |µg| < 2^53 (nine million kg).
        self.0 as f64 / 1000.0
    }

    /// The amount in mg as an exact decimal: `40`, `33.5`, `-10`.
    pub fn mg_text(self) -> String {
        thousandths_text(self.0)
    }

    /// Parses milligrams typed by a person (`"40"`, `"33.5"`); more than three decimals, a sign or
    /// zero is refused, naming `field`.
    pub fn parse_mg(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let ug = parse_thousandths(raw)
            .ok_or_else(|| FieldError::new(field, "write the amount in mg, e.g. 40 or 33.5 (at most 3 decimals)"))?;
        Self(ug).positive(field)
    }

    /// Converts a dose in mg held as `f64` (the dosing session's `dose_mg`) to micrograms. The
    /// value must already be a whole number of micrograms (doses are rounded to 0.1 mg by
    /// default, KAP-SPEC 4.3); anything finer is refused rather than rounded away silently.
    pub fn from_mg_f64(field: &'static str, mg: f64) -> Result<Self, FieldError> {
        if !mg.is_finite() || mg <= 0.0 || mg > 1.0e9 {
            return Err(FieldError::new(field, "the amount must be a number of mg above 0"));
        }
        let ug = mg * 1000.0;
        let whole = ug.round();
        // 0.001 µg of slack absorbs the representation error of a decimal like 36.65 mg.
        if (ug - whole).abs() > 1e-3 {
            return Err(FieldError::new(field, "the amount is finer than 0.001 mg; round it"));
        }
        // In range: checked above (at most 1e12 µg).
        Ok(Self(whole as i64))
    }

    /// The amount if it is above zero, else a refusal naming `field`.
    pub fn positive(self, field: &'static str) -> Result<Self, FieldError> {
        if self.0 > 0 { Ok(self) } else { Err(FieldError::new(field, "the amount must be more than 0")) }
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    pub fn checked_mul(self, n: u32) -> Option<Self> {
        self.0.checked_mul(i64::from(n)).map(Self)
    }

    #[must_use]
    pub fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    #[must_use]
    pub fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    #[must_use]
    pub fn negated(self) -> Self {
        Self(self.0.saturating_neg())
    }
}

impl fmt::Display for Micrograms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} mg", self.mg_text())
    }
}

/// A volume of solution in microlitres (0.001 mL).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Microlitres(i64);

impl Microlitres {
    pub const fn from_ul(ul: i64) -> Self {
        Self(ul)
    }

    /// Whole millilitres.
    pub const fn from_ml(ml: i64) -> Self {
        Self(ml * 1000)
    }

    pub const fn ul(self) -> i64 {
        self.0
    }

    /// The volume in mL as an exact decimal: `0.8`, `10`.
    pub fn ml_text(self) -> String {
        thousandths_text(self.0)
    }

    /// Parses millilitres typed by a person (`"0.8"`, `"10"`); at most three decimals, above zero.
    pub fn parse_ml(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let ul = parse_thousandths(raw)
            .ok_or_else(|| FieldError::new(field, "write the volume in mL, e.g. 0.8 or 10 (at most 3 decimals)"))?;
        if ul > 0 { Ok(Self(ul)) } else { Err(FieldError::new(field, "the volume must be more than 0 mL")) }
    }
}

impl fmt::Display for Microlitres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} mL", self.ml_text())
    }
}

/// The finished form of a product and what one commercial container holds (21 CFR 1304.21(d)
/// via KAP-SPEC 9.2 receipt: "finished form (e.g., 50 mg/mL, 10 mL vial) and units per
/// commercial container").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "form", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProductForm {
    /// A vial or bottle of solution: ketamine HCl injection (KAP-SPEC 4.1: 10, 50, 100 mg/mL) or a
    /// compounded nasal solution. `strength_ug_per_ml` is the drug in 1 mL.
    Solution { strength_ug_per_ml: Micrograms, ml_per_container: Microlitres },
    /// A SPRAVATO kit of single-use nasal devices (KAP-SPEC 8.4: 28 mg devices in kits of 2 or 3).
    DeviceKit { devices_per_container: u32, ug_per_device: Micrograms },
    /// Rapid-dissolve tablets, troches or lozenges in a bottle (KAP-SPEC 4.1).
    Tablets { tablets_per_container: u32, ug_per_tablet: Micrograms },
}

impl ProductForm {
    /// The form's own checks: every figure above zero, and a container holding a whole number of
    /// micrograms (so counts in containers are exact). Fields are named as in the JSON.
    pub fn check(&self) -> Result<(), FieldError> {
        match *self {
            ProductForm::Solution { strength_ug_per_ml, ml_per_container } => {
                strength_ug_per_ml.positive("strength_ug_per_ml")?;
                if ml_per_container.ul() <= 0 {
                    return Err(FieldError::new("ml_per_container", "a container holds more than 0 mL"));
                }
                if volume_amount(strength_ug_per_ml, ml_per_container).is_none() {
                    return Err(FieldError::new(
                        "ml_per_container",
                        "this volume at this strength is not a whole number of micrograms",
                    ));
                }
            }
            ProductForm::DeviceKit { devices_per_container, ug_per_device } => {
                if devices_per_container == 0 {
                    return Err(FieldError::new("devices_per_container", "a kit holds at least one device"));
                }
                ug_per_device.positive("ug_per_device")?;
            }
            ProductForm::Tablets { tablets_per_container, ug_per_tablet } => {
                if tablets_per_container == 0 {
                    return Err(FieldError::new("tablets_per_container", "a container holds at least one tablet"));
                }
                ug_per_tablet.positive("ug_per_tablet")?;
            }
        }
        if self.per_container().is_none() {
            return Err(FieldError::new("form", "a container of this size cannot be counted"));
        }
        Ok(())
    }

    /// The drug in one full commercial container.
    pub fn per_container(&self) -> Option<Micrograms> {
        match *self {
            ProductForm::Solution { strength_ug_per_ml, ml_per_container } => {
                volume_amount(strength_ug_per_ml, ml_per_container)
            }
            ProductForm::DeviceKit { devices_per_container, ug_per_device } => {
                ug_per_device.checked_mul(devices_per_container)
            }
            ProductForm::Tablets { tablets_per_container, ug_per_tablet } => {
                ug_per_tablet.checked_mul(tablets_per_container)
            }
        }
    }

    /// Countable units in one container: devices or tablets (`None` for a solution).
    pub fn units_per_container(&self) -> Option<u32> {
        match *self {
            ProductForm::Solution { .. } => None,
            ProductForm::DeviceKit { devices_per_container, .. } => Some(devices_per_container),
            ProductForm::Tablets { tablets_per_container, .. } => Some(tablets_per_container),
        }
    }

    /// What one container holds in the form's own unit: `10 mL`, `3 devices`, `100 tablets`.
    pub fn package_quantity(&self) -> String {
        match *self {
            ProductForm::Solution { ml_per_container, .. } => ml_per_container.to_string(),
            ProductForm::DeviceKit { devices_per_container, .. } => Measure::Devices(devices_per_container).describe(),
            ProductForm::Tablets { tablets_per_container, .. } => Measure::Tablets(tablets_per_container).describe(),
        }
    }

    /// The strength and form as a record states them: `50 mg/mL solution, 10 mL per container`.
    pub fn describe(&self) -> String {
        match *self {
            ProductForm::Solution { strength_ug_per_ml, ml_per_container } => {
                format!("{} mg/mL solution, {} per container", strength_ug_per_ml.mg_text(), ml_per_container)
            }
            ProductForm::DeviceKit { devices_per_container, ug_per_device } => {
                format!("nasal spray device {ug_per_device} each, {devices_per_container} devices per kit")
            }
            ProductForm::Tablets { tablets_per_container, ug_per_tablet } => {
                format!("tablet {ug_per_tablet} each, {tablets_per_container} per container")
            }
        }
    }
}

/// µL × (µg per mL) / 1000, when that is a whole number of micrograms.
fn volume_amount(strength_ug_per_ml: Micrograms, volume: Microlitres) -> Option<Micrograms> {
    let product = i128::from(volume.ul()).checked_mul(i128::from(strength_ug_per_ml.ug()))?;
    if product % 1000 != 0 {
        return None;
    }
    i64::try_from(product / 1000).ok().map(Micrograms)
}

/// A quantity as a person measured it: whole containers, a volume, devices, tablets, or mg.
/// Each converts exactly to micrograms for the product's form ([`Measure::amount`]), and the
/// entry keeps both: the measure for the record, the amount for the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Measure {
    Containers(u32),
    /// Solutions only.
    #[serde(rename = "volume_ul")]
    Volume(Microlitres),
    /// Device kits only.
    Devices(u32),
    /// Tablets only.
    Tablets(u32),
    /// The drug itself in µg; for device kits, whole devices only.
    #[serde(rename = "amount_ug")]
    Amount(Micrograms),
}

impl Measure {
    /// The drug this measure holds for a product of `form`; refused, naming `field`, when the
    /// measure does not fit the form (mL of a device kit), is zero, or is not exact.
    pub fn amount(self, field: &'static str, form: &ProductForm) -> Result<Micrograms, FieldError> {
        let unfit = |what: &str| Err(FieldError::new(field, format!("{what} cannot measure {}", form.describe())));
        let amount = match (self, *form) {
            (Measure::Containers(n), _) => {
                form.per_container().and_then(|c| c.checked_mul(n)).ok_or_else(|| too_large(field))?
            }
            (Measure::Volume(v), ProductForm::Solution { strength_ug_per_ml, .. }) => {
                if v.ul() <= 0 {
                    return Err(FieldError::new(field, "the volume must be more than 0 mL"));
                }
                volume_amount(strength_ug_per_ml, v).ok_or_else(|| {
                    FieldError::new(field, "this volume at this strength is not a whole number of micrograms")
                })?
            }
            (Measure::Volume(_), _) => return unfit("a volume in mL"),
            (Measure::Devices(n), ProductForm::DeviceKit { ug_per_device, .. }) => {
                ug_per_device.checked_mul(n).ok_or_else(|| too_large(field))?
            }
            (Measure::Devices(_), _) => return unfit("a number of devices"),
            (Measure::Tablets(n), ProductForm::Tablets { ug_per_tablet, .. }) => {
                ug_per_tablet.checked_mul(n).ok_or_else(|| too_large(field))?
            }
            (Measure::Tablets(_), _) => return unfit("a number of tablets"),
            (Measure::Amount(a), ProductForm::DeviceKit { ug_per_device, .. }) => {
                if ug_per_device.ug() > 0 && a.ug() % ug_per_device.ug() != 0 {
                    return Err(FieldError::new(
                        field,
                        format!("a device is given or wasted whole: use a multiple of {ug_per_device}"),
                    ));
                }
                a
            }
            (Measure::Amount(a), _) => a,
        };
        amount.positive(field)
    }

    /// As a record shows it: `2 containers`, `0.8 mL`, `1 device`, `40 mg`.
    pub fn describe(&self) -> String {
        let plural = |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        match *self {
            Measure::Containers(n) => plural(n, "container", "containers"),
            Measure::Volume(v) => v.to_string(),
            Measure::Devices(n) => plural(n, "device", "devices"),
            Measure::Tablets(n) => plural(n, "tablet", "tablets"),
            Measure::Amount(a) => a.to_string(),
        }
    }
}

fn too_large(field: &'static str) -> FieldError {
    FieldError::new(field, "this quantity is too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vial_50() -> ProductForm {
        ProductForm::Solution {
            strength_ug_per_ml: Micrograms::from_mg(50),
            ml_per_container: Microlitres::from_ml(10),
        }
    }

    fn kit_3() -> ProductForm {
        ProductForm::DeviceKit { devices_per_container: 3, ug_per_device: Micrograms::from_mg(28) }
    }

    #[test]
    fn decimals_parse_exactly_and_print_back() {
        assert_eq!(Micrograms::parse_mg("amount", "33.5"), Ok(Micrograms::from_ug(33_500)));
        assert_eq!(Micrograms::parse_mg("amount", " 0.125 "), Ok(Micrograms::from_ug(125)));
        assert_eq!(Micrograms::from_ug(33_500).mg_text(), "33.5");
        assert_eq!(Micrograms::from_ug(-10_000).mg_text(), "-10");
        assert_eq!(Micrograms::from_ug(125).to_string(), "0.125 mg");
        assert_eq!(Microlitres::parse_ml("volume", "0.8").map(|v| v.ul()), Ok(800));
        // 0.1 + 0.2 in f64 is not 0.3; in µg it is.
        let sum = Micrograms::parse_mg("a", "0.1").unwrap().checked_add(Micrograms::parse_mg("b", "0.2").unwrap());
        assert_eq!(sum, Micrograms::parse_mg("c", "0.3").ok());
    }

    #[test]
    fn bad_amounts_are_refused_naming_the_field() {
        for raw in ["", "0", "0.000", "-5", "1.2345", "1e3", "12.", ".5", "ten"] {
            assert_eq!(Micrograms::parse_mg("amount", raw).map_err(|e| e.field), Err("amount"), "{raw:?}");
        }
        assert_eq!(Microlitres::parse_ml("volume", "0").map_err(|e| e.field), Err("volume"));
    }

    #[test]
    fn session_doses_convert_only_when_exact() {
        assert_eq!(Micrograms::from_mg_f64("dose_mg", 36.65), Ok(Micrograms::from_ug(36_650)));
        assert_eq!(Micrograms::from_mg_f64("dose_mg", 40.0), Ok(Micrograms::from_mg(40)));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 12.3456] {
            assert_eq!(Micrograms::from_mg_f64("dose_mg", bad).map_err(|e| e.field), Err("dose_mg"), "{bad}");
        }
    }

    #[test]
    fn measures_convert_exactly_for_their_form() {
        // TV-IV-1: 0.8 mL of 50 mg/mL is 40 mg.
        assert_eq!(Measure::Volume(Microlitres::from_ul(800)).amount("drawn", &vial_50()), Ok(Micrograms::from_mg(40)));
        assert_eq!(Measure::Containers(10).amount("count", &vial_50()), Ok(Micrograms::from_mg(5000)));
        assert_eq!(Measure::Devices(2).amount("x", &kit_3()), Ok(Micrograms::from_mg(56)));
        assert_eq!(Measure::Containers(1).amount("x", &kit_3()), Ok(Micrograms::from_mg(84)));
        assert_eq!(Measure::Devices(1).amount("drawn", &vial_50()).map_err(|e| e.field), Err("drawn"));
        assert_eq!(
            Measure::Amount(Micrograms::from_mg(30)).amount("waste", &kit_3()).map_err(|e| e.field),
            Err("waste")
        );
        assert_eq!(Measure::Containers(0).amount("received", &vial_50()).map_err(|e| e.field), Err("received"));
        let odd = ProductForm::Solution {
            strength_ug_per_ml: Micrograms::from_ug(33_333),
            ml_per_container: Microlitres::from_ml(10),
        };
        assert_eq!(Measure::Volume(Microlitres::from_ul(1)).amount("drawn", &odd).map_err(|e| e.field), Err("drawn"));
    }

    #[test]
    fn forms_check_their_figures() {
        assert_eq!(vial_50().check(), Ok(()));
        assert_eq!(vial_50().per_container(), Some(Micrograms::from_mg(500)));
        let empty = ProductForm::Tablets { tablets_per_container: 0, ug_per_tablet: Micrograms::from_mg(50) };
        assert_eq!(empty.check().map_err(|e| e.field), Err("tablets_per_container"));
        let no_strength =
            ProductForm::Solution { strength_ug_per_ml: Micrograms::ZERO, ml_per_container: Microlitres::from_ml(10) };
        assert_eq!(no_strength.check().map_err(|e| e.field), Err("strength_ug_per_ml"));
    }

    #[test]
    fn measures_round_trip_as_json() {
        let m = Measure::Volume(Microlitres::from_ul(800));
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"volume_ul":800}"#);
        assert_eq!(serde_json::from_str::<Measure>(&json).unwrap(), m);
        let f = serde_json::to_string(&kit_3()).unwrap();
        assert_eq!(serde_json::from_str::<ProductForm>(&f).unwrap(), kit_3());
    }
}
