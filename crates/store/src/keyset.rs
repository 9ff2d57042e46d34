//! Keyset paging for the lists the API pages by cursor: a list is read in a stable order that
//! ends on the row id (unique, so it breaks every tie), and a page starts strictly after the key
//! of the last row the page before sent. A row added meanwhile is neither skipped nor repeated,
//! and a page costs the same wherever it is in the list (no OFFSET).
//!
//! Each query binds a key always: for the first page a key before every row ([`TimeKey::FIRST`])
//! or, newest first, after every row ([`TimeKey::LAST`]). The condition is written
//! `at >= $k AND (at > $k OR id > $k2)`, so the leading comparison can use the (…, at) index on
//! both engines, and the statement text stays the same for every page.
//!
//! The queries number their parameters alike, and [`bind`] binds them: `$1` the clinic, `$2` the
//! patient filter, `$3` and `$4` the window, `$5` and `$6` the key, `$7` the limit; a query's own
//! parameters follow from `$8`.

use kapstone_domain::{ClinicId, PatientId, UtcTs};
use sqlx::postgres::PgRow;
use sqlx::query::QueryAs;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, Encode, FromRow, Type};
use uuid::Uuid;

use crate::{Db, DbTs, Result, on_read};

/// Where a page of a list in (time, id) order ends: the time and id of its last row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TimeKey {
    /// Microseconds since the Unix epoch.
    pub at: i64,
    pub id: Uuid,
}

impl TimeKey {
    /// Before every row (0001-01-01T00:00:00Z): the start of a list read oldest first.
    pub const FIRST: TimeKey = TimeKey { at: -62_135_596_800_000_000, id: Uuid::nil() };
    /// After every row (9999-12-31T23:59:59Z): the start of a list read newest first.
    pub const LAST: TimeKey = TimeKey { at: 253_402_300_799_000_000, id: Uuid::max() };

    pub fn new(at: impl Into<UtcTs>, id: Uuid) -> Self {
        Self { at: at.into().unix_micros(), id }
    }

    /// The time, as a query binds it.
    pub fn ts(&self) -> DbTs {
        DbTs(UtcTs::from_unix_micros(self.at))
    }

    /// Where a first page starts, or the page after `after`.
    pub fn oldest_first(after: Option<TimeKey>) -> TimeKey {
        after.unwrap_or(Self::FIRST)
    }

    /// Where a first page starts newest first, or the page after `after`.
    pub fn newest_first(after: Option<TimeKey>) -> TimeKey {
        after.unwrap_or(Self::LAST)
    }
}

/// The filters a clinic's list takes beside the cursor: one patient, and a time window
/// (`from` included, `to` excluded). Each list applies them to its own time column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub patient: Option<PatientId>,
    pub from: Option<UtcTs>,
    pub to: Option<UtcTs>,
}

impl ListFilter {
    pub fn patient(&self) -> Option<Uuid> {
        self.patient.map(|p| p.as_uuid())
    }

    pub fn from(&self) -> Option<DbTs> {
        self.from.map(DbTs)
    }

    pub fn to(&self) -> Option<DbTs> {
        self.to.map(DbTs)
    }
}

/// How many of the `limit + 1` rows read for a page of `limit` the page sends (the extra row only
/// says there is a next page): what a listing audits.
pub fn sent(limit: i64) -> usize {
    usize::try_from(limit).unwrap_or(0)
}

/// One page of a clinic's list to read: the clinic, the filters, the key it starts after and how
/// many rows to read (the page size and one more).
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    pub clinic: ClinicId,
    pub filter: &'a ListFilter,
    pub after: TimeKey,
    pub limit: i64,
}

/// Cuts `limit + 1` rows read for a page down to the page; when the extra row was there, a next
/// page follows, and starts after the key of the page's last row.
pub fn cut<R, K>(rows: &mut Vec<R>, limit: i64, key: impl Fn(&R) -> K) -> Option<K> {
    let more = rows.len() > sent(limit);
    rows.truncate(sent(limit));
    if more { rows.last().map(key) } else { None }
}

/// Runs a list query numbered as the module's text says, with `$8` bound to `extra` when the
/// query takes one more id (the reader, the colleague).
pub(crate) async fn fetch<R>(db: &Db, sql: String, p: &Page<'_>, extra: Option<Uuid>) -> Result<Vec<R>>
where
    R: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>,
{
    Ok(on_read!(db, |c| {
        let q = bind(sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())), p);
        match extra {
            Some(id) => q.bind(id).fetch_all(c).await?,
            None => q.fetch_all(c).await?,
        }
    }))
}

/// Binds `$1..$7` of a list query (see the module's text).
fn bind<'q, DB, O>(
    q: QueryAs<'q, DB, O, <DB as Database>::Arguments>,
    p: &Page<'_>,
) -> QueryAs<'q, DB, O, <DB as Database>::Arguments>
where
    DB: Database,
    Uuid: Encode<'q, DB> + Type<DB>,
    Option<Uuid>: Encode<'q, DB> + Type<DB>,
    DbTs: Encode<'q, DB> + Type<DB>,
    Option<DbTs>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    q.bind(p.clinic.as_uuid())
        .bind(p.filter.patient())
        .bind(p.filter.from())
        .bind(p.filter.to())
        .bind(p.after.ts())
        .bind(p.after.id)
        .bind(p.limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentinels_are_the_ends_of_the_calendar() {
        assert_eq!(UtcTs::from_unix_micros(TimeKey::FIRST.at).rfc3339(), "0001-01-01T00:00:00.000000Z");
        assert_eq!(UtcTs::from_unix_micros(TimeKey::LAST.at).rfc3339(), "9999-12-31T23:59:59.000000Z");
        let k = TimeKey::new(UtcTs::from_unix_micros(5), Uuid::nil());
        assert!(TimeKey::FIRST < k && k < TimeKey::LAST);
    }
}
