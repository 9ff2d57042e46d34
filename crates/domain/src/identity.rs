//! Who someone is: roles, email addresses, names and the password policy.

use std::fmt;
use std::str::FromStr;

use crate::FieldError;

/// The roles of a KAP clinic. A patient account sees only the portal, and only its own record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Prescriber,
    Nurse,
    Therapist,
    Frontdesk,
    Patient,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::Admin, Role::Prescriber, Role::Nurse, Role::Therapist, Role::Frontdesk, Role::Patient];
    pub const STAFF: [Role; 5] = [Role::Admin, Role::Prescriber, Role::Nurse, Role::Therapist, Role::Frontdesk];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Prescriber => "prescriber",
            Role::Nurse => "nurse",
            Role::Therapist => "therapist",
            Role::Frontdesk => "frontdesk",
            Role::Patient => "patient",
        }
    }

    /// The name shown to people.
    pub const fn label(self) -> &'static str {
        match self {
            Role::Admin => "Clinic admin",
            Role::Prescriber => "Prescriber",
            Role::Nurse => "Nurse",
            Role::Therapist => "Therapist",
            Role::Frontdesk => "Front desk",
            Role::Patient => "Patient",
        }
    }

    pub const fn is_staff(self) -> bool {
        !matches!(self, Role::Patient)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim().to_ascii_lowercase()).ok_or_else(|| {
            FieldError::new(
                "role",
                format!("unknown role {s:?}; expected one of admin, prescriber, nurse, therapist, frontdesk, patient"),
            )
        })
    }
}

/// An email address, trimmed and lower-cased so that sign-in is case-insensitive.
///
/// The check is deliberately modest (one `@`, a dotted domain, no spaces): the only proof that an
/// address works is a message that arrives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim().to_lowercase();
        let err = |m: &str| Err(FieldError::new("email", m));
        if s.is_empty() {
            return err("enter an email address");
        }
        if s.len() > 254 {
            return err("an email address has at most 254 characters");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return err("an email address needs an @, like name@clinic.org");
        };
        if local.is_empty() || domain.contains('@') || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return err("this is not a valid email address");
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
            return err("the part after @ must be a domain like clinic.org");
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's display name: 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(FieldError::new(field, "enter a name"));
        }
        if s.chars().count() > 200 {
            return Err(FieldError::new(field, "a name has at most 200 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(FieldError::new(field, "a name cannot contain control characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Passwords seen again and again in breach corpora; refused whatever their length.
/// The list is content so it can be extended without touching code.
const COMMON_PASSWORDS: &str = include_str!("../../../content/security/common-passwords.txt");

/// A password that meets the policy of OWASP ASVS 4.0.3 V2.1: at least 12 characters, up to 128
/// allowed, any characters, no composition rules, not a known breached password, not the email.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_CHARS: usize = 12;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str, email: Option<&Email>) -> Result<Self, FieldError> {
        let n = raw.chars().count();
        let err = |m: String| Err(FieldError::new("password", m));
        if n < Self::MIN_CHARS {
            return err(format!("use at least {} characters (a short sentence works well)", Self::MIN_CHARS));
        }
        if n > Self::MAX_CHARS {
            return err(format!("use at most {} characters", Self::MAX_CHARS));
        }
        let lower = raw.to_lowercase();
        if COMMON_PASSWORDS.lines().map(str::trim).any(|p| !p.is_empty() && !p.starts_with('#') && p == lower) {
            return err("this password appears in lists of breached passwords; choose another".into());
        }
        if let Some(email) = email {
            let local = email.as_str().split('@').next().unwrap_or_default();
            if lower == email.as_str() || (local.len() >= 4 && lower.contains(local)) {
                return err("a password must not contain your email address".into());
            }
        }
        if raw.chars().collect::<std::collections::HashSet<_>>().len() < 4 {
            return err("this password repeats too few characters; choose another".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        let cases: &[(&str, Option<&str>)] = &[
            ("  Nurse@Demo.Kapstone.TEST ", Some("nurse@demo.kapstone.test")),
            ("a@b.co", Some("a@b.co")),
            ("", None),
            ("no-at-sign", None),
            ("two@@at.org", None),
            ("space in@x.org", None),
            ("x@nodot", None),
            ("x@.org", None),
            ("@clinic.org", None),
        ];
        for (raw, want) in cases {
            let got = Email::parse(raw).ok().map(|e| e.as_str().to_owned());
            assert_eq!(got.as_deref(), *want, "input {raw:?}");
        }
    }

    #[test]
    fn password_policy() {
        let email = Email::parse("sam.rivers@clinic.org").ok();
        assert!(NewPassword::parse("correct horse battery", email.as_ref()).is_ok());
        assert_eq!(NewPassword::parse("short", None).err().map(|e| e.field), Some("password"));
        assert!(NewPassword::parse(&"x".repeat(129), None).is_err());
        assert!(NewPassword::parse("password1234", None).is_err(), "breached list");
        assert!(NewPassword::parse("aaaaaaaaaaaaaaaa", None).is_err(), "too few distinct characters");
        assert!(NewPassword::parse("my sam.rivers pass", email.as_ref()).is_err(), "contains email");
        assert!(NewPassword::parse("ünïcödé wörds ok", None).is_ok(), "any characters are allowed");
    }

    #[test]
    fn roles_parse_case_insensitively_and_unknown_is_named() {
        assert_eq!("Nurse".parse::<Role>().ok(), Some(Role::Nurse));
        let e = "surgeon".parse::<Role>().err();
        assert_eq!(e.map(|e| e.field), Some("role"));
    }
}
