//! The audit log: append in the caller's transaction, search for review, verify the chain.

use kapstone_domain::UtcTs;
use kapstone_domain::audit::{ChainBreak, ChainVerifier, Hash, NewAuditEvent, StoredAuditEvent};
use sqlx::FromRow;

use crate::{Db, DbTs, Result, StoreError, Tx, on_read, on_tx};

#[derive(Debug, FromRow)]
struct EventRow {
    seq: i64,
    at: DbTs,
    clinic_id: Option<String>,
    actor_user_id: Option<String>,
    actor_role: Option<String>,
    action: String,
    entity_type: String,
    entity_id: Option<String>,
    patient_id: Option<String>,
    source_ip: Option<String>,
    outcome: String,
    reason: Option<String>,
    prev_hash: String,
    hash: String,
}

impl From<EventRow> for StoredAuditEvent {
    fn from(r: EventRow) -> Self {
        Self {
            seq: r.seq,
            at: r.at.0,
            clinic_id: r.clinic_id,
            actor_user_id: r.actor_user_id,
            actor_role: r.actor_role,
            action: r.action,
            entity_type: r.entity_type,
            entity_id: r.entity_id,
            patient_id: r.patient_id,
            source_ip: r.source_ip,
            outcome: r.outcome,
            reason: r.reason,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

const VERIFY_SQL: &str = "SELECT seq, at, clinic_id, actor_user_id, actor_role, action, entity_type, entity_id, \
     patient_id, source_ip, outcome, reason, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2";

/// Appends `event` to the chain inside `tx`. Call it last in the transaction: on PostgreSQL the
/// head row stays locked until commit, which is what keeps the chain from forking.
pub async fn append(tx: &mut Tx, event: &NewAuditEvent) -> Result<i64> {
    let at = UtcTs::now();
    // Bumping the head first takes its row lock (PostgreSQL) before we read the previous hash.
    let (seq, prev_hash): (i64, String) = on_tx!(tx, |c| {
        sqlx::query_as("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *c)
            .await?
    });
    let prev = Hash::from_hex(&prev_hash).ok_or_else(|| StoreError::Corrupt("audit head hash".into()))?;
    let stored = StoredAuditEvent::chain(event, at, Some((seq - 1, prev)));
    let s = &stored;
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO audit_events (seq, at, clinic_id, actor_user_id, actor_role, action, entity_type, \
             entity_id, patient_id, source_ip, outcome, reason, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(s.seq)
        .bind(DbTs(s.at))
        .bind(&s.clinic_id)
        .bind(&s.actor_user_id)
        .bind(&s.actor_role)
        .bind(&s.action)
        .bind(&s.entity_type)
        .bind(&s.entity_id)
        .bind(&s.patient_id)
        .bind(&s.source_ip)
        .bind(&s.outcome)
        .bind(&s.reason)
        .bind(&s.prev_hash)
        .bind(&s.hash)
        .execute(&mut *c)
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(&s.hash).execute(&mut *c).await?;
    });
    Ok(stored.seq)
}

/// Appends several events in order (e.g. a failed sign-in that also locks the account).
pub async fn append_all(tx: &mut Tx, events: &[NewAuditEvent]) -> Result<()> {
    for e in events {
        append(tx, e).await?;
    }
    Ok(())
}

/// Filters for reviewing the log. Every field is optional; the date range has no fixed limit.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub clinic_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub patient_id: Option<String>,
    pub action: Option<String>,
    pub from: Option<UtcTs>,
    pub to: Option<UtcTs>,
    /// Keyset paging: only events with `seq` below this (newest first).
    pub before_seq: Option<i64>,
}

/// Newest-first page of events matching `f`.
pub async fn search(db: &Db, f: &AuditFilter, limit: i64) -> Result<Vec<StoredAuditEvent>> {
    // One static statement: each filter is `($n IS NULL OR column = $n)`, so user input is only
    // ever bound, never spliced into SQL.
    const SQL: &str = "SELECT seq, at, clinic_id, actor_user_id, actor_role, action, entity_type, entity_id, \
         patient_id, source_ip, outcome, reason, prev_hash, hash FROM audit_events \
         WHERE ($1 IS NULL OR clinic_id = $1) AND ($2 IS NULL OR actor_user_id = $2) \
         AND ($3 IS NULL OR patient_id = $3) AND ($4 IS NULL OR action = $4) \
         AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) AND ($7 IS NULL OR seq < $7) \
         ORDER BY seq DESC LIMIT $8";
    let rows: Vec<EventRow> = on_read!(db, |c| {
        sqlx::query_as(SQL)
            .bind(&f.clinic_id)
            .bind(&f.actor_user_id)
            .bind(&f.patient_id)
            .bind(&f.action)
            .bind(f.from.map(DbTs))
            .bind(f.to.map(DbTs))
            .bind(f.before_seq)
            .bind(limit)
            .fetch_all(c)
            .await?
    });
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Oldest-first page of events matching `f` with `seq` above `after_seq` (for exports).
pub async fn search_oldest_first(
    db: &Db,
    f: &AuditFilter,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<StoredAuditEvent>> {
    const SQL: &str = "SELECT seq, at, clinic_id, actor_user_id, actor_role, action, entity_type, entity_id, \
         patient_id, source_ip, outcome, reason, prev_hash, hash FROM audit_events \
         WHERE ($1 IS NULL OR clinic_id = $1) AND ($2 IS NULL OR actor_user_id = $2) \
         AND ($3 IS NULL OR patient_id = $3) AND ($4 IS NULL OR action = $4) \
         AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) AND seq > $7 \
         ORDER BY seq LIMIT $8";
    let rows: Vec<EventRow> = on_read!(db, |c| {
        sqlx::query_as(SQL)
            .bind(&f.clinic_id)
            .bind(&f.actor_user_id)
            .bind(&f.patient_id)
            .bind(&f.action)
            .bind(f.from.map(DbTs))
            .bind(f.to.map(DbTs))
            .bind(after_seq)
            .bind(limit)
            .fetch_all(c)
            .await?
    });
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The stored chain head: (number of events, hash of the last).
pub async fn head(db: &Db) -> Result<(i64, Hash)> {
    let (seq, hash): (i64, String) =
        on_read!(db, |c| sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(c).await?);
    let hash = Hash::from_hex(&hash).ok_or_else(|| StoreError::Corrupt("audit head hash".into()))?;
    Ok((seq, hash))
}

/// Recomputes the whole chain in `seq` order, in batches so memory stays flat.
/// Outer error: the database could not be read. Inner: the first break found.
pub async fn verify(db: &Db) -> Result<Result<i64, ChainBreak>> {
    const BATCH: i64 = 20_000;
    let head = head(db).await?;
    let mut verifier = ChainVerifier::default();
    let mut after = 0i64;
    loop {
        let rows: Vec<EventRow> =
            on_read!(db, |c| sqlx::query_as(VERIFY_SQL).bind(after).bind(BATCH).fetch_all(c).await?);
        let Some(last) = rows.last().map(|r| r.seq) else { break };
        for r in rows {
            if let Err(b) = verifier.push(&r.into()) {
                return Ok(Err(b));
            }
        }
        after = last;
    }
    Ok(verifier.finish(Some(head)))
}
