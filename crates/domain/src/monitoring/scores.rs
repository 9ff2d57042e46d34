//! Sedation (MOAA/S, KAP-SPEC 7.8) and dissociation (CADSS, 7.7) as scores that parse: a
//! `Moaas` that exists is 0–5, a `Cadss23` total 0–92, a `Cadss6` total 0–24.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::instruments::{ItemError, scale_items};

/// A score outside its scale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ScoreError {
    pub message: String,
}

/// A score is read back (stored readings, posted JSON) through its `new`, so one out of its scale
/// is refused.
macro_rules! deserialize_through_new {
    ($name:ident) => {
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $name::new(u8::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Modified Observer's Assessment of Alertness/Sedation, 0 (no response to a painful stimulus)
/// to 5 (alert) [S43].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Moaas(u8);

impl Moaas {
    pub const MAX: u8 = 5;
    /// Alert: responds readily to name spoken in a normal tone.
    pub const ALERT: Moaas = Moaas(5);
    /// The Spravato label defines loss of consciousness as MOAA/S 0 [S1] (MON-10); a label
    /// value, not a setting.
    pub const LOSS_OF_CONSCIOUSNESS: Moaas = Moaas(0);

    pub fn new(score: u8) -> Result<Self, ScoreError> {
        if score <= Self::MAX {
            Ok(Self(score))
        } else {
            Err(ScoreError { message: format!("MOAA/S is scored 0 to 5, not {score}") })
        }
    }

    pub fn value(self) -> u8 {
        self.0
    }

    /// The responsiveness each score stands for (KAP-SPEC 7.8 table, [S43]).
    pub fn description(self) -> &'static str {
        match self.0 {
            5 => "Responds readily to name spoken in normal tone (alert)",
            4 => "Lethargic response to name spoken in normal tone",
            3 => "Responds only after name is called loudly and/or repeatedly",
            2 => "Responds only after mild prodding or shaking",
            1 => "Responds only after painful trapezius squeeze",
            _ => "Does not respond to painful trapezius squeeze",
        }
    }
}

deserialize_through_new!(Moaas);

impl fmt::Display for Moaas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MOAA/S {}", self.0)
    }
}

/// Total of the 23-item subjective CADSS used in ketamine and esketamine research: 23 items
/// scored 0–4, total 0–92 [S42].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Cadss23(u8);

/// Total of the CADSS-6 (items 1, 2, 6, 7, 15 and 22 of the 23-item CADSS), 0–24 [S42].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Cadss6(u8);

deserialize_through_new!(Cadss23);
deserialize_through_new!(Cadss6);

impl Cadss23 {
    pub const MAX: u8 = 92;

    pub fn new(total: u8) -> Result<Self, ScoreError> {
        if total <= Self::MAX {
            Ok(Self(total))
        } else {
            Err(ScoreError { message: format!("a 23-item CADSS total is 0 to 92, not {total}") })
        }
    }

    pub fn value(self) -> u8 {
        self.0
    }
}

impl Cadss6 {
    pub const MAX: u8 = 24;

    pub fn new(total: u8) -> Result<Self, ScoreError> {
        if total <= Self::MAX {
            Ok(Self(total))
        } else {
            Err(ScoreError { message: format!("a CADSS-6 total is 0 to 24, not {total}") })
        }
    }

    pub fn value(self) -> u8 {
        self.0
    }
}

/// The Spravato trials' "dissociative/perceptual change": a 23-item CADSS total above 4 with a
/// change above 0 from pre-dose (KAP-SPEC 7.7, [S8]). A trial definition, not a setting.
pub const CADSS23_DISSOCIATION_ABOVE: u8 = 4;

/// The items of the 23-item CADSS that make the CADSS-6 (1-based, KAP-SPEC 7.7, [S42]).
pub const CADSS6_ITEMS: [usize; 6] = [1, 2, 6, 7, 15, 22];

/// A CADSS total in the version that was given. Totals of different versions never compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "version", content = "total", rename_all = "snake_case")]
pub enum Cadss {
    Cadss23(Cadss23),
    Cadss6(Cadss6),
}

/// Whether dissociation is present at a post-dose check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dissociation {
    Present,
    Absent,
    /// No pre-dose score in the same version: the definition needs the change from pre-dose.
    NoComparableBaseline,
}

impl Cadss {
    pub fn total(self) -> u8 {
        match self {
            Cadss::Cadss23(c) => c.value(),
            Cadss::Cadss6(c) => c.value(),
        }
    }

    pub fn version_label(self) -> &'static str {
        match self {
            Cadss::Cadss23(_) => "CADSS (23-item)",
            Cadss::Cadss6(_) => "CADSS-6",
        }
    }

    /// `self <= other` when both are the same version.
    pub fn at_or_below(self, other: Cadss) -> Option<bool> {
        match (self, other) {
            (Cadss::Cadss23(a), Cadss::Cadss23(b)) => Some(a <= b),
            (Cadss::Cadss6(a), Cadss::Cadss6(b)) => Some(a <= b),
            _ => None,
        }
    }

    /// Dissociation at this post-dose score against the pre-dose one.
    ///
    /// 23-item: total > 4 and a rise from pre-dose ([S8]). CADSS-6: the spec gives no cut-off for
    /// the 6-item total (the > 4 definition was made on the 23-item total, which is never lower
    /// than its CADSS-6 part), so any rise from pre-dose counts — the cautious reading.
    pub fn dissociation(self, pre_dose: Option<Cadss>) -> Dissociation {
        let Some(pre) = pre_dose.filter(|pre| pre.at_or_below(self).is_some()) else {
            return Dissociation::NoComparableBaseline;
        };
        let rise = self.total() > pre.total();
        let present = match self {
            Cadss::Cadss23(c) => c.value() > CADSS23_DISSOCIATION_ABOVE && rise,
            Cadss::Cadss6(_) => rise,
        };
        if present { Dissociation::Present } else { Dissociation::Absent }
    }

    /// Dissociation resolved (DC-05): the total is at or below the clinic's cut-off for this
    /// version, or (when `or_back_to_baseline`) back at or below the pre-dose total. `None` when
    /// neither can be judged: no cut-off for this version and no comparable pre-dose score.
    pub fn resolved(self, pre_dose: Option<Cadss>, at_most: Option<u8>, or_back_to_baseline: bool) -> Option<bool> {
        let under_cut = at_most.map(|cut| self.total() <= cut);
        let at_baseline = if or_back_to_baseline { pre_dose.and_then(|pre| self.at_or_below(pre)) } else { None };
        match (under_cut, at_baseline) {
            (None, None) => None,
            (a, b) => Some(a == Some(true) || b == Some(true)),
        }
    }
}

impl fmt::Display for Cadss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.version_label(), self.total())
    }
}

/// Both totals from one 23-item CADSS administration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CadssItems {
    pub cadss23: Cadss23,
    pub cadss6: Cadss6,
}

/// Scores the 23 subjective CADSS items (each 0–4, none missing): the 23-item total and the
/// CADSS-6 from items 1, 2, 6, 7, 15 and 22.
pub fn score_cadss_items(answers: &[Option<i64>]) -> Result<CadssItems, ItemError> {
    let items = scale_items(answers, 23, 4)?;
    let total: u32 = items.iter().map(|&v| u32::from(v)).sum();
    let six: u32 = CADSS6_ITEMS.iter().filter_map(|&n| items.get(n - 1)).map(|&v| u32::from(v)).sum();
    // scale_items bounds each item to 0..=4, so the sums are within 92 and 24.
    let narrow = |v: u32| u8::try_from(v).unwrap_or(u8::MAX);
    let cadss23 = Cadss23::new(narrow(total)).map_err(|e| ItemError::new(0, "total", e.message))?;
    let cadss6 = Cadss6::new(narrow(six)).map_err(|e| ItemError::new(0, "total", e.message))?;
    Ok(CadssItems { cadss23, cadss6 })
}
