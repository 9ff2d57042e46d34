//! Cursor pagination, the same for every list that grows with the clinic: `?limit=` (1 to
//! [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) and `?cursor=` (opaque: the `next_cursor` of the page
//! before), answered as `{"items": [...], "next_cursor": string | null}`. The cursor carries the
//! sort key of the last row sent, so the store pages by keyset and a row added meanwhile is
//! neither skipped nor repeated.

use kapstone_domain::FieldError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::AppError;

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
    serde_json::from_slice(&bytes).map(Some).map_err(|_| bad())
}

/// The opaque cursor of a key.
pub fn cursor<K: Serialize>(key: &K) -> String {
    hex::encode(serde_json::to_vec(key).unwrap_or_default())
}

/// A page from `rows` fetched with `limit + 1`: the extra row only says there is a next page.
pub fn page<R, K: Serialize>(mut rows: Vec<R>, limit: i64, key: impl Fn(&R) -> K, item: impl Fn(&R) -> Value) -> Value {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(|r| cursor(&key(r))) } else { None };
    json!({ "items": rows.iter().map(item).collect::<Vec<_>>(), "next_cursor": next })
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
    fn a_full_page_with_one_more_row_has_a_next_cursor() {
        let p = page(vec![1, 2, 3], 2, |r| *r, |r| json!(r));
        assert_eq!(p["items"], json!([1, 2]));
        assert_eq!(after::<i32>(p["next_cursor"].as_str()).ok().flatten(), Some(2));
        let last = page(vec![1, 2], 2, |r| *r, |r| json!(r));
        assert!(last["next_cursor"].is_null());
    }
}
