//! Kapstone's functional core: the rules of the clinic, with no I/O and no async.
//!
//! Everything here is a value that parses (an [`Email`] that exists is valid) or a pure
//! function of such values. Storage, the web server and the CLI are thin shells around it.

/// A closed list of names stored and sent as text (`as_str`, every value in `ALL`): written as its
/// name, and described to the API's schema as exactly those names, so the document cannot list a
/// value the code does not have.
macro_rules! written_as_name {
    ($t:ty, $schema:literal) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $schema.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let names: Vec<&str> = Self::ALL.iter().map(|x| x.as_str()).collect();
                schemars::json_schema!({ "type": "string", "enum": names })
            }
        }
    };
}

pub mod adverse_event;
pub mod audit;
pub mod auth;
pub mod consent;
pub mod consultation;
pub mod course;
pub mod decision;
pub mod discharge;
pub mod dose;
pub mod eligibility;
pub mod identity;
pub mod ids;
pub mod instruments;
pub mod integration_note;
pub mod journal;
pub mod ledger;
pub mod measurement;
pub mod monitoring;
pub mod outcomes;
pub mod pathway;
pub mod patient;
pub mod permissions;
pub mod preparation;
pub mod protocol;
pub mod psychotherapy_note;
pub mod records_access;
pub mod reminders;
pub mod rems_form;
pub mod scheduling;
pub mod session;
pub mod text;
pub mod time;
pub mod vitals;
pub mod webhook;

pub use identity::{Email, NewPassword, PersonName, Role};
pub use ids::{ClinicId, PatientId, SessionId, UserId};
pub use permissions::Action;
pub use time::UtcTs;

/// A value from outside failed to parse. `field` names the input at fault so a page can show the
/// message next to it and an API can return it in `error.field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}
