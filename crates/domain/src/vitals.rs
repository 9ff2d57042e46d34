//! Vital signs as values that parse: a `SystolicBp` that exists is a plausible reading.
//!
//! The bounds here are *plausibility* limits that catch typing errors (a systolic of 20 or 400, a
//! weight of 0), not clinical thresholds: the hold and exclude thresholds come from the
//! eligibility rules (KAP-SPEC 3.1) and the monitoring thresholds (5.3), and are applied to
//! readings that passed these checks. Units follow the LOINC/UCUM table of KAP-SPEC 8.2.

use std::fmt;

/// A reading outside its plausible range; `field` is filled in by the caller that knows the
/// input's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct VitalError {
    pub message: String,
}

macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident, $repr:ty, $min:expr, $max:expr, $unit:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name($repr);

        impl $name {
            pub const MIN: $repr = $min;
            pub const MAX: $repr = $max;
            pub const UNIT: &'static str = $unit;

            pub fn new(value: $repr) -> Result<Self, VitalError> {
                // `contains` rather than two comparisons: a zero minimum on an unsigned type would
                // otherwise be a useless comparison, and NaN still fails it.
                if (Self::MIN..=Self::MAX).contains(&value) {
                    Ok(Self(value))
                } else {
                    Err(VitalError {
                        message: format!(
                            "{} must be between {} and {} {}; check the reading",
                            $what,
                            Self::MIN,
                            Self::MAX,
                            Self::UNIT
                        ),
                    })
                }
            }

            pub fn value(self) -> $repr {
                self.0
            }
        }

        /// Read through [`Self::new`], so a stored or posted value out of range is refused.
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::new(<$repr as serde::Deserialize>::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} {}", self.0, Self::UNIT)
            }
        }
    };
}

bounded!(
    /// Systolic blood pressure, mm[Hg] (LOINC 8480-6).
    SystolicBp, u16, 50, 300, "mmHg", "systolic blood pressure"
);
bounded!(
    /// Diastolic blood pressure, mm[Hg] (LOINC 8462-4).
    DiastolicBp, u16, 20, 200, "mmHg", "diastolic blood pressure"
);
bounded!(
    /// Heart rate, /min (LOINC 8867-4).
    HeartRate, u16, 20, 250, "/min", "heart rate"
);
bounded!(
    /// Oxygen saturation by pulse oximetry, % (LOINC 59408-5).
    Spo2, u8, 50, 100, "%", "oxygen saturation"
);
bounded!(
    /// Respiratory rate, /min (LOINC 9279-1). Zero is allowed: apnoea is a real reading, and the one
    /// that must never be refused as a typing error.
    RespRate, u8, 0, 80, "/min", "respiratory rate"
);
bounded!(
    /// Body weight, kg (LOINC 29463-7). Weight-based doses are computed from it later.
    WeightKg, f64, 20.0, 400.0, "kg", "weight"
);
bounded!(
    /// Body height, cm (LOINC 8302-2).
    HeightCm, f64, 100.0, 250.0, "cm", "height"
);

/// A blood pressure reading: both parts plausible, and systolic above diastolic.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct BloodPressure {
    pub systolic: SystolicBp,
    pub diastolic: DiastolicBp,
}

impl BloodPressure {
    pub fn new(systolic: SystolicBp, diastolic: DiastolicBp) -> Result<Self, VitalError> {
        if systolic.value() <= diastolic.value() {
            return Err(VitalError {
                message: "systolic pressure must be higher than diastolic; check the reading".into(),
            });
        }
        Ok(Self { systolic, diastolic })
    }

    /// At or above `sys`/`dia` on either part (an "at or above 180/100" rule).
    pub fn at_or_above(self, sys: u16, dia: u16) -> bool {
        self.systolic.value() >= sys || self.diastolic.value() >= dia
    }

    /// Above `sys`/`dia` on either part (a "> 140/90" rule).
    pub fn above(self, sys: u16, dia: u16) -> bool {
        self.systolic.value() > sys || self.diastolic.value() > dia
    }
}

/// Read through [`BloodPressure::new`]: both parts in range and systolic above diastolic.
impl<'de> serde::Deserialize<'de> for BloodPressure {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            systolic: SystolicBp,
            diastolic: DiastolicBp,
        }
        let raw = Raw::deserialize(d)?;
        BloodPressure::new(raw.systolic, raw.diastolic).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for BloodPressure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} mmHg", self.systolic.value(), self.diastolic.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_readings_are_refused() {
        assert!(SystolicBp::new(20).is_err());
        assert!(SystolicBp::new(400).is_err());
        assert!(SystolicBp::new(120).is_ok());
        assert!(WeightKg::new(0.0).is_err());
        assert!(WeightKg::new(f64::NAN).is_err());
        assert!(WeightKg::new(72.5).is_ok());
        assert!(Spo2::new(101).is_err());
        assert!(HeightCm::new(172.0).is_ok());
        assert!(HeartRate::new(5).is_err());
        assert!(RespRate::new(0).is_ok());
        assert!(RespRate::new(14).is_ok());
        assert!(RespRate::new(81).is_err());
    }

    #[test]
    fn blood_pressure_compares_both_parts() {
        let bp = |s, d| BloodPressure::new(SystolicBp::new(s).unwrap(), DiastolicBp::new(d).unwrap());
        assert!(bp(80, 120).is_err());
        let reading = bp(150, 85).unwrap();
        assert!(reading.above(140, 90));
        assert!(!reading.at_or_above(180, 100));
        assert!(bp(170, 100).unwrap().at_or_above(180, 100));
        assert!(!bp(140, 90).unwrap().above(140, 90));
        assert_eq!(reading.to_string(), "150/85 mmHg");
    }

    #[test]
    fn json_is_read_through_the_same_checks() {
        let bp: BloodPressure = serde_json::from_str(r#"{"systolic":130,"diastolic":80}"#).unwrap();
        assert_eq!(serde_json::to_string(&bp).unwrap(), r#"{"systolic":130,"diastolic":80}"#);
        assert!(serde_json::from_str::<BloodPressure>(r#"{"systolic":80,"diastolic":130}"#).is_err());
        assert!(serde_json::from_str::<SystolicBp>("400").is_err());
        assert!(serde_json::from_str::<WeightKg>("72.5").is_ok());
    }
}
