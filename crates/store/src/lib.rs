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
pub mod ledger;
pub mod measures;
pub mod outcomes;
pub mod patients;
pub mod psychotherapy_notes;
pub mod questionnaires;
pub mod record_requests;
pub mod scheduling;
pub mod sessions;
pub mod transfer;
pub mod users;

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
    #[error("audit batch failed: {}", .0.message)]
    Batch(audit::BatchFailure),
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`] naming `what`.
    pub fn conflict_on_unique(e: sqlx::Error, what: &'static str) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::Sqlx(e),
        }
    }
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
