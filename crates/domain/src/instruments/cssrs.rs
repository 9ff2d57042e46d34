//! C-SSRS screener, recent version (spec 7.4, [S39]): yes/no questions with skip logic and a
//! derived risk level (the highest triggered). Item labels are paraphrased in content; the
//! official wording is licensed separately.

use super::ItemError;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    None,
    Low,
    Moderate,
    High,
}

impl Risk {
    pub const fn as_str(self) -> &'static str {
        match self {
            Risk::None => "none",
            Risk::Low => "low",
            Risk::Moderate => "moderate",
            Risk::High => "high",
        }
    }
}

/// Question labels in submission order.
pub const QUESTIONS: [&str; 7] = ["1", "2", "3", "4", "5", "6", "6a"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screener {
    pub answers: [Option<bool>; 7],
    pub risk: Risk,
}

/// `answers` in the order q1, q2, q3, q4, q5, q6, q6a; `None` for a skipped question.
/// Q3–Q5 are asked only when Q2 is yes; Q6a only when Q6 is yes.
pub fn score(answers: &[Option<bool>]) -> Result<Screener, ItemError> {
    if answers.len() != 7 {
        let index = answers.len().min(6);
        return Err(ItemError::new(
            index,
            QUESTIONS[index],
            format!("expected 7 answers (q1–q6, q6a), got {}", answers.len()),
        ));
    }
    let required = |i: usize| {
        answers[i].ok_or_else(|| ItemError::new(i, QUESTIONS[i], "this question must be answered yes or no"))
    };
    let skipped = |i: usize, why: &str| match answers[i] {
        None => Ok(()),
        Some(_) => Err(ItemError::new(i, QUESTIONS[i], format!("must be left unanswered (null) because {why}"))),
    };
    let (q1, q2, q6) = (required(0)?, required(1)?, required(5)?);
    let (q3, q4, q5) = if q2 {
        (required(2)?, required(3)?, required(4)?)
    } else {
        for i in 2..5 {
            skipped(i, "question 2 was answered no")?;
        }
        (false, false, false)
    };
    let q6a = if q6 {
        Some(required(6)?)
    } else {
        skipped(6, "question 6 was answered no")?;
        None
    };
    let risk = if q4 || q5 || q6a == Some(true) {
        Risk::High
    } else if q3 || q6a == Some(false) {
        Risk::Moderate
    } else if q1 || q2 {
        Risk::Low
    } else {
        Risk::None
    };
    let mut stored = [None; 7];
    stored.copy_from_slice(answers);
    Ok(Screener { answers: stored, risk })
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: Option<bool> = Some(true);
    const N: Option<bool> = Some(false);
    const S: Option<bool> = None;

    #[test]
    fn spec_test_vectors() {
        let cases = [
            ("TV-CS-1", [N, N, S, S, S, N, S], Risk::None),
            ("TV-CS-2", [Y, N, S, S, S, N, S], Risk::Low),
            ("TV-CS-3", [Y, Y, N, N, N, N, S], Risk::Low),
            ("TV-CS-4", [Y, Y, Y, N, N, N, S], Risk::Moderate),
            ("TV-CS-5", [Y, Y, Y, Y, N, N, S], Risk::High),
            ("TV-CS-6", [N, N, S, S, S, Y, N], Risk::Moderate),
            ("TV-CS-7", [N, N, S, S, S, Y, Y], Risk::High),
            ("TV-CS-8", [Y, Y, Y, N, Y, N, S], Risk::High),
        ];
        for (id, answers, risk) in cases {
            assert_eq!(score(&answers).map(|s| s.risk), Ok(risk), "{id}");
        }
    }

    #[test]
    fn tv_cs_9_q3_answered_after_q2_no_is_invalid() {
        let e = score(&[Y, N, Y, S, S, N, S]).err();
        assert_eq!(e.map(|e| e.item), Some("3".to_owned()));
    }

    #[test]
    fn required_questions_and_q6a_are_checked() {
        assert_eq!(score(&[S, N, S, S, S, N, S]).err().map(|e| e.item), Some("1".to_owned()));
        assert_eq!(score(&[N, Y, N, S, N, N, S]).err().map(|e| e.item), Some("4".to_owned()));
        assert_eq!(score(&[N, N, S, S, S, Y, S]).err().map(|e| e.item), Some("6a".to_owned()));
        assert_eq!(score(&[N, N, S, S, S, N, Y]).err().map(|e| e.item), Some("6a".to_owned()));
        assert!(score(&[N, N, S, S, S, N]).is_err());
    }
}
