//! The patient record's identity part. Later stages (consultation, eligibility, ...) hang off it.

use time::Date;

use crate::{FieldError, PersonName};

/// Medical record number: `K` followed by digits, assigned by the clinic, unique per clinic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct BirthDate(#[schemars(with = "jiff::civil::Date")] Date);

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
    pub sex_at_birth: SexAtBirth,
    pub details: PatientDetails,
}

/// Optional registration details.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientDetails {
    pub gender_identity: Option<String>,
    pub pronouns: Option<String>,
    pub phone: Option<Phone>,
    pub email: Option<crate::Email>,
    pub address: Option<String>,
    pub emergency_contact_name: Option<PersonName>,
    pub emergency_contact_phone: Option<Phone>,
}

impl NewPatient {
    /// The folded text that name, MRN and phone searches match against.
    pub fn search_key(&self, mrn: &Mrn) -> String {
        let phone = self.details.phone.as_ref().map(Phone::digits).unwrap_or_default();
        fold_for_search(&format!("{} {} {} {phone}", self.family_name.as_str(), self.given_name.as_str(), mrn.as_str()))
    }
}

/// Free text of at most `max` characters without control characters; blank becomes `None`.
pub fn optional_text(field: &'static str, raw: Option<&str>, max: usize) -> Result<Option<String>, FieldError> {
    let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    if s.chars().count() > max {
        return Err(FieldError::new(field, format!("use at most {max} characters")));
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::new(field, "remove control characters"));
    }
    Ok(Some(s.to_owned()))
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

/// Sex assigned at birth, as the REMS patient form records it (KAP-SPEC 5.6: Male/Female/Other),
/// plus `unknown` when the patient has not said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SexAtBirth {
    Female,
    Male,
    Other,
    Unknown,
}

impl SexAtBirth {
    pub const fn as_str(self) -> &'static str {
        match self {
            SexAtBirth::Female => "female",
            SexAtBirth::Male => "male",
            SexAtBirth::Other => "other",
            SexAtBirth::Unknown => "unknown",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "female" | "f" => Ok(SexAtBirth::Female),
            "male" | "m" => Ok(SexAtBirth::Male),
            "other" => Ok(SexAtBirth::Other),
            "unknown" => Ok(SexAtBirth::Unknown),
            _ => Err(FieldError::new("sex_at_birth", "choose female, male, other or unknown")),
        }
    }
}

/// A phone number as people type it: digits with optional `+`, spaces, dashes, dots and
/// parentheses; 7 to 15 digits (E.164 allows at most 15).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim();
        let digits = s.chars().filter(char::is_ascii_digit).count();
        let allowed = s
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')') || (c == '+' && i == 0));
        if !allowed || !(7..=15).contains(&digits) {
            return Err(FieldError::new(field, "enter a phone number with 7 to 15 digits, like +1 555 010 0199"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn digits(&self) -> String {
        self.0.chars().filter(char::is_ascii_digit).collect()
    }
}

/// Folds text for search: lower case, accents removed (`Zoë` -> `zoe`), punctuation to spaces.
pub fn fold_for_search(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = s
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn search_folding_ignores_case_and_accents() {
        assert_eq!(fold_for_search("  Zoë O'Brien-Núñez "), "zoe o brien nunez");
        assert_eq!(fold_for_search("ÅSA"), "asa");
    }

    #[test]
    fn phones_and_sex_at_birth_parse() {
        assert_eq!(Phone::parse("phone", "+1 (555) 010-0199").map(|p| p.digits()), Ok("15550100199".into()));
        assert!(Phone::parse("phone", "12345").is_err());
        assert!(Phone::parse("phone", "555-CALL-NOW").is_err());
        assert!(Phone::parse("phone", "1+5550100199").is_err());
        assert_eq!(SexAtBirth::parse("Female"), Ok(SexAtBirth::Female));
        assert_eq!(SexAtBirth::parse("x").err().map(|e| e.field), Some("sex_at_birth"));
    }
}
