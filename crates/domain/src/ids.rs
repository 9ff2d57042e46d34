//! Identifier newtypes over UUIDv7 (time-ordered, so inserts stay index-friendly).
//! A `PatientId` can never be passed where a `UserId` is wanted.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A clinic (tenant). Every record belongs to exactly one.
    ClinicId
);
id_type!(
    /// A staff or patient login account.
    UserId
);
id_type!(
    /// A patient record.
    PatientId
);
id_type!(
    /// A sign-in session (the id, not the secret token).
    SessionId
);
id_type!(
    /// A clinic location (a DEA-registered place for the Schedule III ledger, KAP-SPEC 9.1).
    LocationId
);
id_type!(
    /// A dosing session (one per dosing appointment).
    DosingSessionId
);
id_type!(
    /// A controlled-substance product in a location's registry (name, NDC, form, strength).
    CsProductId
);
id_type!(
    /// One entry of the controlled-substance ledger.
    LedgerEntryId
);
id_type!(
    /// One inventory (initial, biennial or an extra count) of a location.
    InventoryId
);
id_type!(
    /// A difference between a physical count and the ledger, with its investigation.
    DiscrepancyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = PatientId::new();
        let parsed: PatientId = id.to_string().parse().unwrap_or_else(|_| PatientId::from_uuid(Uuid::nil()));
        assert_eq!(id, parsed);
    }

    #[test]
    fn garbage_is_not_an_id() {
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }
}
