//! Kapstone storage: one code path over SQLite (embedded default) and PostgreSQL.
//!
//! Each query is written once with `$1..$n` placeholders and run through [`on_tx!`] /
//! [`on_read!`], which expand the same body once per engine. Repositories are free functions
//! grouped by aggregate; writes take a [`Tx`] so the audit event lands in the same transaction.

pub mod db;
mod ts;

pub mod audit;
pub mod backup;
pub mod clinics;
pub mod consents;
pub mod dosing;
pub mod eligibility;
pub mod fhir;
pub mod idempotency;
pub mod integration_notes;
pub mod integrations;
pub mod invitations;
pub mod journal;
pub mod keyset;
pub mod ledger;
pub mod measures;
pub mod outcomes;
pub mod patients;
pub mod psychotherapy_notes;
pub mod questionnaires;
pub mod rate_limits;
pub mod read_pool;
pub mod record_requests;
pub mod scheduling;
pub mod sessions;
pub mod transfer;
pub mod users;
pub mod writer;

pub use db::{Backend, Db, DbUrl, Tx};
pub use ts::DbTs;

/// A storage failure. Its text is for logs only: it may contain SQL, never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a record with this {0} already exists")]
    Conflict(&'static str),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Refused(String),
    #[error("write batch failed: {}", .0.message)]
    Batch(writer::BatchFailure),
}

impl StoreError {
    /// The database cannot store anything right now: the disk is full or failing (SQLite's
    /// SQLITE_FULL and SQLITE_IOERR, PostgreSQL's classes 53 "insufficient resources" and 58
    /// "system error"). Writes are refused until it clears; the transaction was rolled back whole.
    pub fn is_storage_fault(&self) -> bool {
        match self {
            StoreError::Sqlx(sqlx::Error::Database(d)) => {
                let code = d.code().unwrap_or_default();
                if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    sqlite_storage_fault(&code)
                } else {
                    postgres_storage_fault(&code)
                }
            }
            StoreError::Batch(f) => f.storage_fault,
            _ => false,
        }
    }

    /// The database cannot be reached or cannot store right now: a 503, not a 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Sqlx(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)) => true,
            StoreError::Batch(f) => f.unavailable,
            other => other.is_storage_fault(),
        }
    }

    /// Text the engine cannot hold: PostgreSQL refuses a NUL in text (SQLSTATE 22021,
    /// character_not_in_repertoire). Request text is checked before it reaches a query (the
    /// domain's text types refuse control characters); this is the last line, so that a path
    /// that missed the check answers a 400, not a 500.
    pub fn is_unstorable_text(&self) -> bool {
        match self {
            StoreError::Sqlx(sqlx::Error::Database(d)) => {
                d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_none() && d.code().as_deref() == Some("22021")
            }
            _ => false,
        }
    }

    /// Maps a unique-constraint violation to [`StoreError::Conflict`] naming `what`.
    pub fn conflict_on_unique(e: sqlx::Error, what: &'static str) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::Sqlx(e),
        }
    }
}

/// SQLite reports extended result codes; the primary code is the low byte: SQLITE_IOERR (10,
/// with its many extended forms) and SQLITE_FULL (13).
fn sqlite_storage_fault(code: &str) -> bool {
    code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 10 | 13))
}

/// SQLSTATE class 53 (disk_full 53100, out_of_memory 53200, ...) and class 58 (io_error 58030,
/// ...).
fn postgres_storage_fault(code: &str) -> bool {
    code.starts_with("53") || code.starts_with("58")
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Appends `(id, id, ...)` to a query for an `IN` list. Callers return early on an empty list.
pub(crate) fn push_ids<DB>(q: &mut sqlx::QueryBuilder<DB>, ids: &[uuid::Uuid])
where
    DB: sqlx::Database,
    for<'t> uuid::Uuid: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    q.push("(");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
}

/// Claims each of `candidates` with `claim_sql` (`$1` the row's id, `$2` now, `$3` the lease end),
/// one short transaction per row; keeps the rows this process updated. The statement must match
/// only a row still due at `$2`, so a row another process claimed first is skipped: the outbox
/// and webhook delivery jobs never send one row twice.
pub(crate) async fn lease_each<T>(
    db: &Db,
    candidates: Vec<T>,
    id: impl Fn(&T) -> uuid::Uuid,
    claim_sql: &'static str,
    now: kapstone_domain::UtcTs,
    lease_until: kapstone_domain::UtcTs,
) -> Result<Vec<T>> {
    let mut claimed = Vec::new();
    for row in candidates {
        let mut tx = db.begin().await?;
        let n = on_tx!(&mut tx, |c| {
            sqlx::query(claim_sql)
                .bind(id(&row))
                .bind(DbTs(now))
                .bind(DbTs(lease_until))
                .execute(c)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        if n == 1 {
            claimed.push(row);
        }
    }
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_and_io_errors_are_storage_faults_on_both_engines() {
        // SQLITE_FULL, SQLITE_IOERR, SQLITE_IOERR_WRITE (778), SQLITE_IOERR_FSYNC (1034).
        for c in ["13", "10", "778", "1034"] {
            assert!(sqlite_storage_fault(c), "{c}");
        }
        // SQLITE_CONSTRAINT_UNIQUE (2067), SQLITE_BUSY (5), SQLITE_CORRUPT (11).
        for c in ["2067", "5", "11", "", "x"] {
            assert!(!sqlite_storage_fault(c), "{c}");
        }
        for c in ["53100", "53200", "58030", "58P01"] {
            assert!(postgres_storage_fault(c), "{c}");
        }
        for c in ["23505", "40001", "57014", ""] {
            assert!(!postgres_storage_fault(c), "{c}");
        }
    }
}
