//! GAD-7 (spec 7.2, [S37]): 7 items scored 0–3, total 0–21, bands at 5/10/15.

use super::{ItemError, scale_items};

/// Written as [`Severity::as_str`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Minimal,
    Mild,
    Moderate,
    Severe,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Minimal => "minimal",
            Severity::Mild => "mild",
            Severity::Moderate => "moderate",
            Severity::Severe => "severe",
        }
    }

    pub const fn of_total(total: u8) -> Self {
        match total {
            0..=4 => Severity::Minimal,
            5..=9 => Severity::Mild,
            10..=14 => Severity::Moderate,
            _ => Severity::Severe,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gad7 {
    pub items: Vec<u8>,
    pub total: u8,
    pub severity: Severity,
}

pub fn score(answers: &[Option<i64>]) -> Result<Gad7, ItemError> {
    let items = scale_items(answers, 7, 3)?;
    let total = items.iter().sum();
    Ok(Gad7 { total, severity: Severity::of_total(total), items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_test_vectors() {
        let cases: &[(&str, [i64; 7], u8, Severity)] = &[
            ("TV-GAD-1", [2, 3, 2, 1, 0, 2, 1], 11, Severity::Moderate),
            ("TV-GAD-2", [1, 1, 1, 1, 0, 0, 0], 4, Severity::Minimal),
            ("TV-GAD-3", [1, 1, 1, 1, 1, 0, 0], 5, Severity::Mild),
            ("TV-GAD-4", [3, 2, 2, 2, 2, 2, 2], 15, Severity::Severe),
            ("TV-GAD-5", [3; 7], 21, Severity::Severe),
        ];
        for (id, items, total, severity) in cases {
            let answers: Vec<Option<i64>> = items.iter().map(|x| Some(*x)).collect();
            let s = score(&answers).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!((s.total, s.severity), (*total, *severity), "{id}");
        }
        assert_eq!(Severity::of_total(14), Severity::Moderate);
        assert_eq!(Severity::of_total(9), Severity::Mild);
    }

    #[test]
    fn bad_answers_name_the_item() {
        let e = score(&[Some(0), Some(0), Some(0), Some(0), Some(0), Some(0), Some(7)]).err();
        assert_eq!(e.map(|e| e.item), Some("7".to_owned()));
    }
}
