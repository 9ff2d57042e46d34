//! Measurement instruments and their scoring (KAP-SPEC section 7; test vectors in section 12).
//!
//! Scoring is pure and exact: answers are checked item by item (an [`ItemError`] names the item),
//! then totals, bands and flags are computed. Item wording lives in `content/instruments/`.

pub mod cssrs;
pub mod gad7;
pub mod pcl5;
pub mod phq9;

use std::fmt;

/// An answer that breaks the instrument's rules; `item` is 1-based as on the form (for the
/// C-SSRS: its question label, e.g. `6a`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item {item}: {message}")]
pub struct ItemError {
    pub item: String,
    /// 0-based position in the submitted `answers` array.
    pub index: usize,
    pub message: String,
}

impl ItemError {
    pub fn new(index: usize, item: impl Into<String>, message: impl Into<String>) -> Self {
        Self { item: item.into(), index, message: message.into() }
    }
}

/// The instruments Kapstone scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Instrument {
    Phq9,
    Gad7,
    Pcl5,
    CssrsScreener,
}

impl Instrument {
    pub const ALL: [Instrument; 4] = [Instrument::Phq9, Instrument::Gad7, Instrument::Pcl5, Instrument::CssrsScreener];

    pub const fn as_str(self) -> &'static str {
        match self {
            Instrument::Phq9 => "phq9",
            Instrument::Gad7 => "gad7",
            Instrument::Pcl5 => "pcl5",
            Instrument::CssrsScreener => "cssrs_screener",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }

    /// Number of answers expected, in item order.
    pub const fn item_count(self) -> usize {
        match self {
            Instrument::Phq9 => 9,
            Instrument::Gad7 => 7,
            Instrument::Pcl5 => 20,
            Instrument::CssrsScreener => 7,
        }
    }
}

written_as_name!(Instrument, "Instrument");

impl fmt::Display for Instrument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a 0..=max scale answer list: exactly `n` items, none missing (CONFIG-DEFAULT in spec
/// 7.1: an incomplete questionnaire has no valid total), each in range.
pub(crate) fn scale_items(answers: &[Option<i64>], n: usize, max: i64) -> Result<Vec<u8>, ItemError> {
    if answers.len() != n {
        let index = answers.len().min(n);
        return Err(ItemError::new(
            index,
            (index + 1).to_string(),
            format!("expected {n} answers, got {}", answers.len()),
        ));
    }
    answers
        .iter()
        .enumerate()
        .map(|(i, a)| match a {
            None => Err(ItemError::new(i, (i + 1).to_string(), "this item is not answered")),
            Some(v) if (0..=max).contains(v) => Ok(u8::try_from(*v).unwrap_or(0)),
            Some(v) => Err(ItemError::new(i, (i + 1).to_string(), format!("{v} is out of range 0–{max}"))),
        })
        .collect()
}

/// Flags that need a person's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// PHQ-9 item 9 >= 1 (spec 7.1): same-visit clinician review and a C-SSRS.
    SuicideRisk,
}

impl Flag {
    pub const fn as_str(self) -> &'static str {
        match self {
            Flag::SuicideRisk => "suicide_risk",
        }
    }
}

/// Response and remission between a baseline and a follow-up score (spec 7.1; CONFIG-DEFAULT:
/// response = reduction >= 50 %, remission = score < 5; optionally only when baseline >= 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRule {
    pub response_reduction_percent: u8,
    pub remission_below: u8,
    /// `None`: response computed for any baseline; `Some(10)`: only when the baseline is >= 10.
    pub response_min_baseline: Option<u8>,
}

impl Default for ChangeRule {
    fn default() -> Self {
        Self { response_reduction_percent: 50, remission_below: 5, response_min_baseline: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Reduction in tenths of a percent (55.0 % = 550), negative when worse.
    pub reduction_permille: i32,
    /// `None` when the rule does not compute response for this baseline.
    pub response: Option<bool>,
    pub remission: bool,
}

impl ChangeRule {
    pub fn evaluate(&self, baseline: u8, follow_up: u8) -> Change {
        let (b, f) = (i32::from(baseline), i32::from(follow_up));
        let reduction_permille = if b == 0 { 0 } else { (b - f) * 1000 / b };
        let computes = self.response_min_baseline.is_none_or(|min| baseline >= min) && b > 0;
        // Integer comparison: (b - f) / b >= p / 100  <=>  100 (b - f) >= p b.
        let response = computes.then(|| 100 * (b - f) >= i32::from(self.response_reduction_percent) * b);
        Change { reduction_permille, response, remission: follow_up < self.remission_below }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tv_phq_r_response_and_remission() {
        let rule = ChangeRule::default();
        let cases = [
            (20, 9, 550, true, false),  // TV-PHQ-R1
            (20, 10, 500, true, false), // TV-PHQ-R2 boundary
            (15, 8, 466, false, false), // TV-PHQ-R3 (46.7 %)
            (18, 4, 777, true, true),   // TV-PHQ-R4
            (8, 4, 500, true, true),    // TV-PHQ-R5
        ];
        for (b, f, permille, response, remission) in cases {
            let c = rule.evaluate(b, f);
            assert_eq!(
                (c.reduction_permille, c.response, c.remission),
                (permille, Some(response), remission),
                "{b}->{f}"
            );
        }
        let strict = ChangeRule { response_min_baseline: Some(10), ..ChangeRule::default() };
        assert_eq!(strict.evaluate(8, 4).response, None, "TV-PHQ-R5 with the baseline >= 10 rule");
    }

    #[test]
    fn instruments_round_trip_by_name() {
        for i in Instrument::ALL {
            assert_eq!(Instrument::parse(i.as_str()), Some(i));
        }
        assert_eq!(Instrument::parse("madrs"), None);
    }
}
