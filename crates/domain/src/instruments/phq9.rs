//! PHQ-9 (spec 7.1, [S34]): 9 items scored 0–3, total 0–27, bands at 5/10/15/20; item 9 >= 1
//! raises the suicide-risk flag.

use super::{Flag, ItemError, scale_items};

/// Written as [`Severity::as_str`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Minimal,
    Mild,
    Moderate,
    ModeratelySevere,
    Severe,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Minimal => "minimal",
            Severity::Mild => "mild",
            Severity::Moderate => "moderate",
            Severity::ModeratelySevere => "moderately_severe",
            Severity::Severe => "severe",
        }
    }

    pub const fn of_total(total: u8) -> Self {
        match total {
            0..=4 => Severity::Minimal,
            5..=9 => Severity::Mild,
            10..=14 => Severity::Moderate,
            15..=19 => Severity::ModeratelySevere,
            _ => Severity::Severe,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phq9 {
    pub items: Vec<u8>,
    pub total: u8,
    pub severity: Severity,
    pub flags: Vec<Flag>,
}

pub fn score(answers: &[Option<i64>]) -> Result<Phq9, ItemError> {
    let items = scale_items(answers, 9, 3)?;
    let total = items.iter().sum();
    let flags = if items[8] >= 1 { vec![Flag::SuicideRisk] } else { Vec::new() };
    Ok(Phq9 { total, severity: Severity::of_total(total), flags, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(v: &[i64]) -> Vec<Option<i64>> {
        v.iter().map(|x| Some(*x)).collect()
    }

    #[test]
    fn spec_test_vectors() {
        let cases: &[(&str, [i64; 9], u8, Severity, bool)] = &[
            ("TV-PHQ-1", [2, 2, 1, 3, 1, 2, 1, 0, 1], 13, Severity::Moderate, true),
            ("TV-PHQ-2", [0; 9], 0, Severity::Minimal, false),
            ("TV-PHQ-3", [3; 9], 27, Severity::Severe, true),
            ("TV-PHQ-4", [1, 1, 1, 1, 0, 0, 0, 0, 0], 4, Severity::Minimal, false),
            ("TV-PHQ-5", [1, 1, 1, 1, 1, 0, 0, 0, 0], 5, Severity::Mild, false),
            ("TV-PHQ-6", [2, 2, 2, 1, 1, 1, 1, 0, 0], 10, Severity::Moderate, false),
            ("TV-PHQ-7", [2, 2, 2, 2, 2, 2, 2, 1, 0], 15, Severity::ModeratelySevere, false),
            ("TV-PHQ-8", [3, 3, 2, 2, 2, 2, 2, 2, 1], 19, Severity::ModeratelySevere, true),
            ("TV-PHQ-9", [3, 3, 3, 2, 2, 2, 2, 2, 1], 20, Severity::Severe, true),
        ];
        for (id, items, total, severity, flag) in cases {
            let s = score(&some(items)).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!((s.total, s.severity), (*total, *severity), "{id}");
            assert_eq!(s.flags.contains(&Flag::SuicideRisk), *flag, "{id}");
        }
    }

    #[test]
    fn incomplete_and_out_of_range_answers_name_the_item() {
        // TV-PHQ-10: item 9 missing.
        let mut missing = some(&[1, 1, 1, 1, 1, 1, 1, 1, 1]);
        missing[8] = None;
        assert_eq!(score(&missing).err().map(|e| (e.item, e.index)), Some(("9".to_owned(), 8)));
        // TV-PHQ-11: item 2 = 4.
        let e = score(&some(&[1, 4, 0, 0, 0, 0, 0, 0, 0])).err();
        assert_eq!(e.as_ref().map(|e| e.item.as_str()), Some("2"));
        assert!(e.is_some_and(|e| e.message.contains("out of range")));
        assert!(score(&some(&[0; 8])).is_err(), "too few answers");
        assert!(score(&some(&[0; 10])).is_err(), "too many answers");
        assert!(score(&some(&[0, 0, 0, 0, 0, 0, 0, 0, -1])).is_err());
    }
}
