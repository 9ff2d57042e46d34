//! The patient record's identity part. Later stages (consultation, eligibility, ...) hang off it.

use time::Date;

use crate::{FieldError, PersonName};

/// Medical record number: `K` followed by digits, assigned by the clinic, unique per clinic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Mrn(String);

impl Mrn {
    /// The MRN for the clinic's `n`th patient (1-based): `K000001`.
    pub fn for_sequence(n: u64) -> Self {
        Self(format!("K{n:06}"))
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim().to_ascii_uppercase();
        let digits = s.strip_prefix('K').unwrap_or_default();
        if digits.len() >= 6 && digits.chars().all(|c| c.is_ascii_digit()) {
            Ok(Self(s))
        } else {
            Err(FieldError::new("mrn", "an MRN looks like K000123"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A date of birth: not in the future, not before 1900.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BirthDate(Date);

impl BirthDate {
    pub fn parse(raw: &str, today: Date) -> Result<Self, FieldError> {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let d = Date::parse(raw.trim(), &fmt)
            .map_err(|_| FieldError::new("birth_date", "enter the date of birth as YYYY-MM-DD"))?;
        Self::new(d, today)
    }

    pub fn new(d: Date, today: Date) -> Result<Self, FieldError> {
        if d > today {
            return Err(FieldError::new("birth_date", "a date of birth cannot be in the future"));
        }
        if d.year() < 1900 {
            return Err(FieldError::new("birth_date", "a date of birth before 1900 is not plausible"));
        }
        Ok(Self(d))
    }

    pub fn date(self) -> Date {
        self.0
    }
}

/// A new patient as entered at registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPatient {
    pub given_name: PersonName,
    pub family_name: PersonName,
    pub birth_date: BirthDate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn mrns_are_formatted_and_parsed() {
        assert_eq!(Mrn::for_sequence(42).as_str(), "K000042");
        assert_eq!(Mrn::parse(" k000042 ").map(|m| m.as_str().to_owned()), Ok("K000042".to_owned()));
        assert!(Mrn::parse("000042").is_err());
        assert!(Mrn::parse("K12").is_err());
    }

    #[test]
    fn birth_dates_are_plausible() {
        let today = date!(2026 - 11 - 26);
        assert!(BirthDate::parse("1985-03-14", today).is_ok());
        assert_eq!(BirthDate::parse("2027-01-01", today).err().map(|e| e.field), Some("birth_date"));
        assert!(BirthDate::parse("1899-12-31", today).is_err());
        assert!(BirthDate::parse("14/03/1985", today).is_err());
    }
}
