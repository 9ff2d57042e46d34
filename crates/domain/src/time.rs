//! `UtcTs`: an instant in UTC at microsecond precision.
//!
//! Microseconds because PostgreSQL keeps no more, so a value written and read back compares
//! equal on both engines; stored as INTEGER microseconds on SQLite because text timestamps
//! sort wrongly there (`10:00:00.500Z` sorts before `10:00:00Z`).

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTs(i64);

impl UtcTs {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Truncates to the microsecond.
    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        let micros = dt.to_offset(UtcOffset::UTC).unix_timestamp_nanos() / 1_000;
        // An OffsetDateTime spans +-9999 years, which is well inside i64 microseconds.
        Self(i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX }))
    }

    pub const fn from_unix_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(i64::try_from(d.whole_microseconds()).unwrap_or(i64::MAX)))
    }

    /// Parses RFC 3339 with any offset (`2026-11-26T10:30:00+01:00`), truncated to the
    /// microsecond; `None` if it is not RFC 3339.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        OffsetDateTime::parse(s, &Rfc3339).ok().map(Self::from_datetime)
    }

    /// RFC 3339 with microseconds, e.g. `2026-11-26T09:30:00.000000Z`.
    pub fn rfc3339(self) -> String {
        let dt = self.to_datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.microsecond()
        )
    }
}

impl fmt::Display for UtcTs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl serde::Serialize for UtcTs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

/// Described as it is written: an RFC 3339 instant in UTC.
impl schemars::JsonSchema for UtcTs {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "UtcTs".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

/// Read back from the RFC 3339 text it is written as, so stored JSON (a session's event log)
/// round-trips.
impl<'de> serde::Deserialize<'de> for UtcTs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UtcTs::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not an RFC 3339 time like 2026-11-26T09:30:00Z")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn truncates_to_microseconds() {
        let ts = UtcTs::from_datetime(datetime!(2026-11-26 09:30:00.123456789 UTC));
        assert_eq!(ts.rfc3339(), "2026-11-26T09:30:00.123456Z");
    }

    #[test]
    fn other_offsets_are_converted_to_utc() {
        let ts = UtcTs::from_datetime(datetime!(2026-11-26 10:30:00 +01:00));
        assert_eq!(ts.rfc3339(), "2026-11-26T09:30:00.000000Z");
    }

    #[test]
    fn half_second_sorts_after_whole_second() {
        let a = UtcTs::from_datetime(datetime!(2026-11-26 10:00:00 UTC));
        let b = UtcTs::from_datetime(datetime!(2026-11-26 10:00:00.5 UTC));
        assert!(a < b);
    }

    #[test]
    fn json_round_trips_and_other_offsets_are_read_as_utc() {
        let ts = UtcTs::from_datetime(datetime!(2026-11-26 09:30:00.123456 UTC));
        let json = serde_json::to_string(&ts).unwrap();
        assert_eq!(serde_json::from_str::<UtcTs>(&json).unwrap(), ts);
        let other: UtcTs = serde_json::from_str("\"2026-11-26T10:30:00.123456+01:00\"").unwrap();
        assert_eq!(other, ts);
        assert!(serde_json::from_str::<UtcTs>("\"yesterday\"").is_err());
    }

    proptest! {
        #[test]
        fn micros_round_trip(m in -62_000_000_000_000_000i64..250_000_000_000_000_000i64) {
            let ts = UtcTs::from_unix_micros(m);
            prop_assert_eq!(UtcTs::from_datetime(ts.to_datetime()), ts);
        }
    }
}
