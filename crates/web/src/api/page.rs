//! Cursor pagination, the same for every list that grows with the clinic: `?limit=` (1 to
//! [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) and `?cursor=` (opaque: the `next_cursor` of the page
//! before), answered as `{"items": [...], "next_cursor": string | null}`. The cursor carries the
//! sort key of the last row sent, so the store pages by keyset and a row added meanwhile is
//! neither skipped nor repeated.
//!
//! Lists of a clinic's rows also take the same filters, where they apply ([`ListQuery`]):
//! `?patient=` (a patient id) and `?from=`/`?to=` (an RFC 3339 instant, or a date: that whole day
//! in the clinic's time zone; `from` included, `to` excluded, a date `to` includes its day).

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use jiff::tz::TimeZone;
use kapstone_domain::{ClinicId, FieldError, PatientId, UtcTs};
use kapstone_store::keyset::ListFilter;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{ApiError, AppError};
use crate::state::AppState;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// `?limit=`: absent is [`DEFAULT_LIMIT`]; anything but a whole number in range is a 422 naming `limit`.
pub fn limit(raw: Option<&str>) -> Result<i64, AppError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(FieldError::new("limit", format!("must be a whole number from 1 to {MAX_LIMIT}")).into()),
        },
    }
}

/// `?cursor=`: the key a page ends on; one not made by [`cursor`] is a 422 naming `cursor`.
pub fn after<K: DeserializeOwned>(raw: Option<&str>) -> Result<Option<K>, AppError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else { return Ok(None) };
    let bad = || AppError::from(FieldError::new("cursor", "not a cursor from this list: send next_cursor as given"));
    let bytes = hex::decode(raw).map_err(|_| bad())?;
    let key: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    // A key this list made holds stored text, which never has a control character; one crafted
    // with a NUL would otherwise reach the query (PostgreSQL refuses it: a 500).
    if has_control_character(&key) {
        return Err(bad());
    }
    serde_json::from_value(key).map(Some).map_err(|_| bad())
}

fn has_control_character(v: &Value) -> bool {
    match v {
        Value::String(s) => s.chars().any(char::is_control),
        Value::Array(a) => a.iter().any(has_control_character),
        Value::Object(o) => o.iter().any(|(k, v)| k.chars().any(char::is_control) || has_control_character(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The opaque cursor of a key.
pub fn cursor<K: Serialize>(key: &K) -> String {
    hex::encode(serde_json::to_vec(key).unwrap_or_default())
}

/// A page from `rows` fetched with `limit + 1`: the extra row only says there is a next page.
pub fn page<R, K: Serialize>(mut rows: Vec<R>, limit: i64, key: impl Fn(&R) -> K, item: impl Fn(&R) -> Value) -> Value {
    let next = kapstone_store::keyset::cut(&mut rows, limit, key);
    body(rows.iter().map(item).collect(), next.as_ref())
}

/// The answer: the items, and the cursor of `next` (the key to continue after) when more follow.
pub fn body<K: Serialize>(items: Vec<Value>, next: Option<&K>) -> Value {
    json!({ "items": items, "next_cursor": next.map(cursor) })
}

/// An item that is a serializable struct.
pub fn item<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// A query string parsed into `T`; one that does not fit (an unknown parameter) is a 400.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, AppError> {
    q.map(|Query(q)| q).map_err(|e| AppError::BadRequest { field: None, message: e.body_text() })
}

/// The filters of [`ListQuery`] a list takes; another one given is a 422 naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `?patient=`
    Patient,
    /// `?from=&to=`
    Dates,
}

/// `?patient=&from=&to=&limit=&cursor=`: the query of a list that takes the shared filters.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub patient: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub limit: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Taken straight from the query string; one that does not fit is a 400.
impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        query(Query::<ListQuery>::from_request_parts(parts, state).await).map_err(ApiError)
    }
}

/// A list query, checked: the page size, where the page starts and the filters.
#[derive(Debug)]
pub struct Paged<K> {
    pub limit: i64,
    pub after: Option<K>,
    pub filter: ListFilter,
}

fn present(raw: Option<&str>) -> Option<&str> {
    raw.map(str::trim).filter(|s| !s.is_empty())
}

/// `?from=` or `?to=`: an RFC 3339 instant, or a date at `tz` (its start; the next day's start for
/// the end of a range, so `to` includes the day).
pub fn instant(field: &'static str, raw: Option<&str>, tz: &TimeZone, end: bool) -> Result<Option<UtcTs>, AppError> {
    let Some(raw) = present(raw) else { return Ok(None) };
    if let Ok(t) = raw.parse::<jiff::Timestamp>() {
        return Ok(Some(crate::app::scheduling::from_jiff(t)));
    }
    // Exactly a date: a date and time without its offset is refused, not read as its day.
    let d = jiff::civil::Date::strptime("%Y-%m-%d", raw).map_err(|_| {
        FieldError::new(field, "give a date (YYYY-MM-DD) or a date and time with its offset (RFC 3339)")
    })?;
    let d = if end { d.tomorrow().map_err(|_| FieldError::new(field, "date out of range"))? } else { d };
    let z = d.to_zoned(tz.clone()).map_err(|_| FieldError::new(field, "date out of range"))?;
    Ok(Some(crate::app::scheduling::from_jiff(z.timestamp())))
}

/// `from` and `to` at `tz`; a range that ends before it starts is a 422 naming `to`.
pub fn window(from: Option<&str>, to: Option<&str>, tz: &TimeZone) -> Result<(Option<UtcTs>, Option<UtcTs>), AppError> {
    let (from, to) = (instant("from", from, tz, false)?, instant("to", to, tz, true)?);
    if let (Some(f), Some(t)) = (from, to)
        && t <= f
    {
        return Err(FieldError::new("to", "the end of the range comes after its start").into());
    }
    Ok((from, to))
}

impl ListQuery {
    /// Checks the query of a list that takes `takes`: a filter it does not take is a 422 naming it.
    pub async fn parse<K: DeserializeOwned>(
        &self,
        state: &AppState,
        clinic: ClinicId,
        takes: &[Filter],
    ) -> Result<Paged<K>, AppError> {
        let refuse = |field: &'static str| -> AppError { FieldError::new(field, "this list does not take it").into() };
        let patient = match present(self.patient.as_deref()) {
            Some(_) if !takes.contains(&Filter::Patient) => return Err(refuse("patient")),
            Some(p) => Some(p.parse::<PatientId>().map_err(|_| FieldError::new("patient", "not a patient id"))?),
            None => None,
        };
        let (from, to) = match (present(self.from.as_deref()), present(self.to.as_deref())) {
            (None, None) => (None, None),
            (f, _) if !takes.contains(&Filter::Dates) => return Err(refuse(if f.is_some() { "from" } else { "to" })),
            (f, t) => window(f, t, &crate::app::scheduling::display_zone(state, clinic).await?)?,
        };
        Ok(Paged {
            limit: limit(self.limit.as_deref())?,
            after: after(self.cursor.as_deref())?,
            filter: ListFilter { patient, from, to },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors_are_checked() {
        assert_eq!(limit(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(limit(Some("500")).ok(), Some(500));
        for bad in ["0", "501", "-1", "lots", ""] {
            assert!(matches!(limit(Some(bad)), Err(AppError::Invalid(e)) if e.field == "limit"), "{bad}");
        }
        let c = cursor(&("Birch", 3));
        assert_eq!(after::<(String, i64)>(Some(&c)).ok().flatten(), Some(("Birch".to_owned(), 3)));
        for bad in ["zz", "7b", "00"] {
            assert!(matches!(after::<(String, i64)>(Some(bad)), Err(AppError::Invalid(e)) if e.field == "cursor"));
        }
        assert!(after::<(String, i64)>(None).is_ok_and(|a| a.is_none()));
    }

    #[test]
    fn dates_are_whole_days_at_the_clinic_and_instants_are_exact() {
        let tz = TimeZone::get("America/Los_Angeles").unwrap_or(TimeZone::UTC);
        let (from, to) = window(Some("2026-03-02"), Some("2026-03-02"), &tz).unwrap_or_default();
        assert_eq!(from.map(UtcTs::rfc3339).as_deref(), Some("2026-03-02T08:00:00.000000Z"));
        assert_eq!(to.map(UtcTs::rfc3339).as_deref(), Some("2026-03-03T08:00:00.000000Z"));
        let (from, _) = window(Some("2026-03-02T09:30:00+01:00"), None, &tz).unwrap_or_default();
        assert_eq!(from.map(UtcTs::rfc3339).as_deref(), Some("2026-03-02T08:30:00.000000Z"));
        for (f, t, field) in [
            (Some("March"), None, "from"),
            (Some("2027-01-01T09:00:00"), None, "from"),
            (None, Some("2026-13-01"), "to"),
            (Some("2026-03-03"), Some("2026-03-02"), "to"),
        ] {
            assert!(matches!(window(f, t, &tz), Err(AppError::Invalid(e)) if e.field == field), "{f:?} {t:?}");
        }
    }

    #[test]
    fn a_full_page_with_one_more_row_has_a_next_cursor() {
        let p = page(vec![1, 2, 3], 2, |r| *r, |r| json!(r));
        assert_eq!(p["items"], json!([1, 2]));
        assert_eq!(after::<i32>(p["next_cursor"].as_str()).ok().flatten(), Some(2));
        let last = page(vec![1, 2], 2, |r| *r, |r| json!(r));
        assert!(last["next_cursor"].is_null());
    }
}
