//! Informed consent: which document text was agreed, by whom, and whether it still holds
//! (GATE-04: missing, expired or revoked consent means no dosing).

use sha2::{Digest, Sha256};
use time::Duration;

use crate::patient::fold_for_search;
use crate::{FieldError, UtcTs};

/// SHA-256 of the exact text shown (title and paragraphs joined by blank lines), so a signature
/// names the words the patient read even if the document is later revised.
pub fn document_hash(title: &str, paragraphs: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(title.as_bytes());
    for p in paragraphs {
        h.update(b"\n\n");
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The typed signature must be the patient's own name (any case, with or without accents).
pub fn check_typed_name(typed: &str, given: &str, family: &str) -> Result<String, FieldError> {
    let t = fold_for_search(typed);
    if t.is_empty() {
        return Err(FieldError::new("signed_name", "type your full name to sign"));
    }
    if t != fold_for_search(&format!("{given} {family}")) {
        return Err(FieldError::new(
            "signed_name",
            format!("type your full name as the clinic has it: {given} {family}"),
        ));
    }
    Ok(typed.trim().to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentStatus {
    Valid { until: UtcTs },
    Expired { on: UtcTs },
    Revoked,
    Missing,
}

impl ConsentStatus {
    /// Status of the latest signature (`None`: never signed) at `now`.
    pub fn of(latest: Option<(UtcTs, bool)>, validity: Duration, now: UtcTs) -> Self {
        match latest {
            None => ConsentStatus::Missing,
            Some((_, true)) => ConsentStatus::Revoked,
            Some((signed_at, false)) => {
                let until = signed_at.plus(validity);
                if now < until { ConsentStatus::Valid { until } } else { ConsentStatus::Expired { on: until } }
            }
        }
    }

    pub fn is_valid(self) -> bool {
        matches!(self, ConsentStatus::Valid { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_holds_for_its_validity_and_not_after_revocation() {
        let day = |d: i64| UtcTs::from_unix_micros(d * 86_400_000_000);
        let year = Duration::days(365);
        assert_eq!(ConsentStatus::of(None, year, day(1)), ConsentStatus::Missing);
        assert_eq!(ConsentStatus::of(Some((day(0), false)), year, day(364)), ConsentStatus::Valid { until: day(365) });
        assert_eq!(ConsentStatus::of(Some((day(0), false)), year, day(365)), ConsentStatus::Expired { on: day(365) });
        assert_eq!(ConsentStatus::of(Some((day(0), true)), year, day(1)), ConsentStatus::Revoked);
    }

    #[test]
    fn the_typed_name_must_be_the_patients() {
        assert!(check_typed_name("  zoe o briain ", "Zoë", "Ó Briain").is_ok());
        assert_eq!(check_typed_name("Someone Else", "Zoë", "Ó Briain").err().map(|e| e.field), Some("signed_name"));
        assert!(check_typed_name("", "A", "B").is_err());
    }

    #[test]
    fn the_hash_changes_with_any_word() {
        let a = document_hash("T", &["one".into(), "two".into()]);
        assert_ne!(a, document_hash("T", &["one".into(), "two!".into()]));
        assert_ne!(a, document_hash("T", &["one two".into()]));
        assert_eq!(a.len(), 64);
    }
}
