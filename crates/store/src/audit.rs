//! The audit log: append in the caller's transaction, search for review, verify the chain.

use kapstone_domain::UtcTs;
use kapstone_domain::audit::{
    ChainBreak, EventView, Hash, NewAuditEvent, Segment, SegmentVerifier, StoredAuditEvent, join_segments,
};
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
    actor_token_id: Option<String>,
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
            actor_token_id: r.actor_token_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// The chain's head: the `seq` and hash of the last event.
pub type Head = (i64, Hash);

/// Appends `event` to the chain inside `tx`. Call it last in the transaction: on PostgreSQL the
/// head row stays locked until commit, which is what keeps the chain from forking.
pub async fn append(tx: &mut Tx, event: &NewAuditEvent) -> Result<i64> {
    append_all(tx, std::slice::from_ref(event)).await
}

/// Appends events in order inside `tx`; returns the `seq` of the last. The head is moved (and
/// locked) once for the whole batch, then the events are inserted, 200 to a statement, and the
/// head's hash set (PostgreSQL: with the last insert, in one statement).
pub async fn append_all(tx: &mut Tx, events: &[NewAuditEvent]) -> Result<i64> {
    Ok(append_locked(tx, events).await?.0)
}

/// [`append_all`], returning the new head.
async fn append_locked(tx: &mut Tx, events: &[NewAuditEvent]) -> Result<Head> {
    let count = batch_len(events)?;
    // Bumping the head first takes its row lock (PostgreSQL) before we read the previous hash.
    let (last_seq, prev_hash): (i64, String) = on_tx!(tx, |c| {
        sqlx::query_as("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
            .bind(count)
            .fetch_one(&mut *c)
            .await?
    });
    let prev = Hash::from_hex(&prev_hash).ok_or_else(|| StoreError::Corrupt("audit head hash".into()))?;
    let (chained, head) = chain(events, (last_seq - count, prev))?;
    let (earlier, last) = chained.split_at(chained.len().saturating_sub(ROWS_PER_INSERT));
    insert(tx, earlier).await?;
    let last_hash = head.1.to_hex();
    match tx {
        Tx::Sqlite(t) => {
            let mut q = sqlx::QueryBuilder::new("");
            push_insert(&mut q, last, false);
            q.build().execute(&mut **t).await?;
            sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(&last_hash).execute(&mut **t).await?;
        }
        // One statement (a round trip less while the head is locked).
        Tx::Postgres(t) => {
            let mut q = sqlx::QueryBuilder::new("WITH inserted AS (");
            push_insert(&mut q, last, false);
            q.push(") UPDATE audit_head SET hash = ").push_bind(last_hash).push(" WHERE id = 1");
            q.build().execute(&mut **t).await?;
        }
    }
    Ok(head)
}

/// [`append_all`] for an appender that knows the head already (the group-commit writer: its
/// last batch moved it): the events are chained on `hint`, and the head is checked and moved in
/// the statement that inserts the first of them (one statement on PostgreSQL, a data-modifying
/// `WITH`; two on SQLite) instead of being locked and read first (the writer runs its batches one
/// after the other, so each round trip counts). The check compares both the `seq` and the hash: a
/// stale hint (another process appended since, or a batch chained on it did not commit) inserts
/// nothing and moves nothing, and the events are appended as by [`append_all`]. `hint` is left at
/// the new head (the caller forgets it if the transaction does not commit).
pub async fn append_all_hinted(tx: &mut Tx, events: &[NewAuditEvent], hint: &mut Option<Head>) -> Result<i64> {
    if let Some(expected) = *hint {
        *hint = None;
        let (chained, head) = chain(events, expected)?;
        if move_head_and_insert(tx, expected, head, &chained).await? {
            *hint = Some(head);
            return Ok(head.0);
        }
    }
    let head = append_locked(tx, events).await?;
    *hint = Some(head);
    Ok(head.0)
}

/// Multi-row inserts: one round trip per this many events. 15 parameters a row keeps each
/// statement under SQLite's and PostgreSQL's parameter limits.
const ROWS_PER_INSERT: usize = 200;

fn batch_len(events: &[NewAuditEvent]) -> Result<i64> {
    if events.is_empty() {
        return Err(StoreError::Corrupt("empty audit batch".into()));
    }
    i64::try_from(events.len()).map_err(|_| StoreError::Corrupt("batch size".into()))
}

/// The events chained after `prev`, stamped now, and the head after the last.
fn chain(events: &[NewAuditEvent], prev: Head) -> Result<(Vec<StoredAuditEvent>, Head)> {
    batch_len(events)?;
    let at = UtcTs::now();
    let mut prev = prev;
    let mut chained = Vec::with_capacity(events.len());
    for event in events {
        let s = StoredAuditEvent::chain(event, at, Some(prev));
        prev = (s.seq, Hash::from_hex(&s.hash).ok_or_else(|| StoreError::Corrupt("event hash".into()))?);
        chained.push(s);
    }
    Ok((chained, prev))
}

/// Moves the head from `expected` to `head` and inserts `chained` (which run from one to the
/// other), or does neither when the stored head is not `expected`; `true` when it did.
async fn move_head_and_insert(tx: &mut Tx, expected: Head, head: Head, chained: &[StoredAuditEvent]) -> Result<bool> {
    let (first, rest) = chained.split_at(chained.len().min(ROWS_PER_INSERT));
    let (expected_hash, new_hash) = (expected.1.to_hex(), head.1.to_hex());
    let moved = match tx {
        Tx::Sqlite(t) => {
            let moved =
                sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4")
                    .bind(head.0)
                    .bind(&new_hash)
                    .bind(expected.0)
                    .bind(&expected_hash)
                    .execute(&mut **t)
                    .await?
                    .rows_affected()
                    == 1;
            if moved {
                let mut q = sqlx::QueryBuilder::new("");
                push_insert(&mut q, first, false);
                q.build().execute(&mut **t).await?;
            }
            moved
        }
        Tx::Postgres(t) => {
            // The rows are selected only when the head moved (the `WITH` returned its row).
            let mut q = sqlx::QueryBuilder::new("WITH moved AS (UPDATE audit_head SET seq = ");
            q.push_bind(head.0)
                .push(", hash = ")
                .push_bind(new_hash)
                .push(" WHERE id = 1 AND seq = ")
                .push_bind(expected.0)
                .push(" AND hash = ")
                .push_bind(expected_hash)
                .push(" RETURNING 1) ");
            push_insert(&mut q, first, true);
            q.push(" WHERE EXISTS (SELECT 1 FROM moved)");
            q.build().execute(&mut **t).await?.rows_affected() == first.len() as u64
        }
    };
    if moved {
        insert(tx, rest).await?;
    }
    Ok(moved)
}

/// Pushes `INSERT INTO audit_events (...) VALUES (...), ...` of `rows`, or with `select`,
/// `... SELECT * FROM (VALUES ...) AS v` (for a `WHERE` to follow).
fn push_insert<DB: sqlx::Database>(q: &mut sqlx::QueryBuilder<DB>, rows: &[StoredAuditEvent], select: bool)
where
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> DbTs: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<String>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    q.push(
        "INSERT INTO audit_events (seq, at, clinic_id, actor_user_id, actor_role, action, entity_type, entity_id, \
         patient_id, source_ip, outcome, reason, actor_token_id, prev_hash, hash) ",
    );
    if select {
        q.push("SELECT * FROM (");
    }
    q.push_values(rows, |mut row, s| {
        row.push_bind(s.seq)
            .push_bind(DbTs(s.at))
            .push_bind(s.clinic_id.clone())
            .push_bind(s.actor_user_id.clone())
            .push_bind(s.actor_role.clone())
            .push_bind(s.action.clone())
            .push_bind(s.entity_type.clone())
            .push_bind(s.entity_id.clone())
            .push_bind(s.patient_id.clone())
            .push_bind(s.source_ip.clone())
            .push_bind(s.outcome.clone())
            .push_bind(s.reason.clone())
            .push_bind(s.actor_token_id.clone())
            .push_bind(s.prev_hash.clone())
            .push_bind(s.hash.clone());
    });
    if select {
        q.push(") AS v");
    }
}

/// Inserts `rows` (plain multi-row inserts).
async fn insert(tx: &mut Tx, rows: &[StoredAuditEvent]) -> Result<()> {
    for rows in rows.chunks(ROWS_PER_INSERT) {
        on_tx!(tx, |c| {
            let mut q = sqlx::QueryBuilder::new("");
            push_insert(&mut q, rows, false);
            q.build().execute(&mut *c).await?;
        });
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

const NEWEST_FIRST: &str = "SELECT seq, at, clinic_id, actor_user_id, actor_role, action, entity_type, entity_id, \
     patient_id, source_ip, outcome, reason, actor_token_id, prev_hash, hash FROM audit_events \
     WHERE ($1 IS NULL OR clinic_id = $1) AND ($2 IS NULL OR actor_user_id = $2) \
     AND ($3 IS NULL OR patient_id = $3) AND ($4 IS NULL OR action = $4) \
     AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) AND ($7 IS NULL OR seq < $7) \
     ORDER BY seq DESC LIMIT $8";

const OLDEST_FIRST: &str = "SELECT seq, at, clinic_id, actor_user_id, actor_role, action, entity_type, entity_id, \
     patient_id, source_ip, outcome, reason, actor_token_id, prev_hash, hash FROM audit_events \
     WHERE ($1 IS NULL OR clinic_id = $1) AND ($2 IS NULL OR actor_user_id = $2) \
     AND ($3 IS NULL OR patient_id = $3) AND ($4 IS NULL OR action = $4) \
     AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) AND ($7 IS NULL OR seq > $7) \
     ORDER BY seq LIMIT $8";

/// Runs one of the two filter statements. Each filter is `($n IS NULL OR column = $n)`, so user
/// input is only ever bound, never spliced into SQL.
async fn filtered(
    db: &Db,
    sql: &'static str,
    f: &AuditFilter,
    cursor: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredAuditEvent>> {
    let rows: Vec<EventRow> = on_read!(db, |c| {
        sqlx::query_as(sql)
            .bind(&f.clinic_id)
            .bind(&f.actor_user_id)
            .bind(&f.patient_id)
            .bind(&f.action)
            .bind(f.from.map(DbTs))
            .bind(f.to.map(DbTs))
            .bind(cursor)
            .bind(limit)
            .fetch_all(c)
            .await?
    });
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Newest-first page of events matching `f` (below `f.before_seq` when set).
pub async fn search(db: &Db, f: &AuditFilter, limit: i64) -> Result<Vec<StoredAuditEvent>> {
    filtered(db, NEWEST_FIRST, f, f.before_seq, limit).await
}

/// Oldest-first page of events matching `f` with `seq` above `after_seq` (for exports).
pub async fn search_oldest_first(
    db: &Db,
    f: &AuditFilter,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<StoredAuditEvent>> {
    filtered(db, OLDEST_FIRST, f, Some(after_seq), limit).await
}

/// The stored chain head: (number of events, hash of the last).
pub async fn head(db: &Db) -> Result<(i64, Hash)> {
    let (seq, hash): (i64, String) =
        on_read!(db, |c| sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(c).await?);
    let hash = Hash::from_hex(&hash).ok_or_else(|| StoreError::Corrupt("audit head hash".into()))?;
    Ok((seq, hash))
}

/// Events per stretch of [`verify`]: enough that a stretch's query costs little next to its rows.
pub const VERIFY_STRETCH: i64 = 32_768;

/// Recomputes the whole chain. Outer error: the database could not be read. Inner: the first
/// break found, the same one a single pass in `seq` order would report.
///
/// Every event stores the hash it follows, so the chain is checked in stretches of
/// [`VERIFY_STRETCH`] events, [`VERIFY_STRETCHES_PER_CORE`] at once per core, each on its own
/// pooled connection, its rows streamed and hashed as they arrive (memory stays flat whatever the
/// size of the log); then the stretches are joined, each one's first `prev_hash` against the last
/// hash of the one before, and the end against the chain head ([`SegmentVerifier`],
/// [`join_segments`]).
pub async fn verify(db: &Db) -> Result<Result<i64, ChainBreak>> {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    verify_in_stretches(db, VERIFY_STRETCH, cores * VERIFY_STRETCHES_PER_CORE).await
}

/// Stretches read at once per core by [`verify`]: a stretch alternates between the database
/// (reading) and the hashing, so one per core leaves cores idle. Measured on 2 cores and 1.3 M
/// events on SQLite (docs/BENCHMARKS.md): 2 at once 4.0–4.4 s, 4 at once 3.4–3.6 s, 6 at once
/// 2.9–3.6 s, 8 no better.
pub const VERIFY_STRETCHES_PER_CORE: usize = 3;

/// [`verify`] with a chosen stretch length and number of stretches read at once.
pub async fn verify_in_stretches(db: &Db, stretch: i64, parallel: usize) -> Result<Result<i64, ChainBreak>> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    let stretch = stretch.max(1);
    // The last stored event before the head: an append commits both at once, so every event up to
    // the head read next is stored, and events appended while we read are left for the next run.
    let max_seq: Option<i64> =
        on_read!(db, |c| sqlx::query_scalar("SELECT MAX(seq) FROM audit_events").fetch_one(c).await?);
    let head = head(db).await?;
    let last = max_seq.unwrap_or(0).max(head.0);
    let count = (last + stretch - 1) / stretch;
    // Stretches are taken in order; after a break (or the end of the chain) in stretch `i`, later
    // ones are not read. Every stretch before it is.
    let next = Arc::new(AtomicI64::new(0));
    let stop_after = Arc::new(AtomicI64::new(i64::MAX));
    let workers = i64::try_from(parallel.max(1)).unwrap_or(1).min(count.max(1));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (db, next, stop_after) = (db.clone(), next.clone(), stop_after.clone());
        handles.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || i > stop_after.load(Ordering::Relaxed) {
                    return Ok::<_, StoreError>(done);
                }
                let start = 1 + i * stretch;
                let segment = verify_stretch(&db, start, stretch).await?;
                if segment.brk.is_some() || segment.last.map(|(seq, _)| seq) != Some(start + stretch - 1) {
                    stop_after.fetch_min(i, Ordering::Relaxed);
                }
                done.push((i, segment));
            }
        }));
    }
    let mut segments = Vec::new();
    for h in handles {
        let done = h.await.map_err(|e| StoreError::Corrupt(format!("audit verification task: {e}")))??;
        segments.extend(done);
    }
    segments.sort_by_key(|(i, _)| *i);
    Ok(join_segments(segments.into_iter().map(|(_, s)| s), Some(head)))
}

const VERIFY_SQL: &str = "SELECT seq, at, clinic_id, actor_user_id, actor_role, action, entity_type, entity_id, \
     patient_id, source_ip, outcome, reason, actor_token_id, prev_hash, hash FROM audit_events WHERE seq >= $1 \
     ORDER BY seq LIMIT $2";

/// Checks up to `len` events from `seq >= start`.
async fn verify_stretch(db: &Db, start: i64, len: i64) -> Result<Segment> {
    let mut v = SegmentVerifier::new(start);
    match db {
        Db::Sqlite { read, .. } => verify_stretch_sqlite(read, start, len, &mut v).await?,
        Db::Postgres { pool, .. } => verify_stretch_streamed(pool, start, len, &mut v).await?,
    }
    Ok(v.finish())
}

/// PostgreSQL: the rows streamed, each row's fields hashed where the driver holds them, without a
/// copy per field.
async fn verify_stretch_streamed(pool: &sqlx::PgPool, start: i64, len: i64, v: &mut SegmentVerifier) -> Result<()> {
    use futures_util::TryStreamExt;
    use sqlx::Row;
    let mut rows = sqlx::query(VERIFY_SQL).bind(start).bind(len).fetch(pool);
    while let Some(row) = rows.try_next().await? {
        let e = EventView {
            seq: row.try_get(0)?,
            at_micros: row.try_get::<DbTs, _>(1)?.0.unix_micros(),
            clinic_id: row.try_get(2)?,
            actor_user_id: row.try_get(3)?,
            actor_role: row.try_get(4)?,
            action: row.try_get(5)?,
            entity_type: row.try_get(6)?,
            entity_id: row.try_get(7)?,
            patient_id: row.try_get(8)?,
            source_ip: row.try_get(9)?,
            outcome: row.try_get(10)?,
            reason: row.try_get(11)?,
            actor_token_id: row.try_get(12)?,
            prev_hash: row.try_get(13)?,
            hash: row.try_get(14)?,
        };
        if v.push(&e).is_err() {
            break;
        }
    }
    Ok(())
}

/// Events per row fetched on SQLite (see [`verify_stretch_sqlite`]).
const SQLITE_VERIFY_CHUNK: i64 = 1024;

/// The select list of [`SQLITE_VERIFY_CHUNK_SQL`] and [`SQLITE_VERIFY_RANGE_SQL`], up to `FROM `.
macro_rules! sqlite_verify_chunk_select {
    () => {
        "SELECT group_concat(concat(seq, ',', at, ',', \
     octet_length(clinic_id), ':', clinic_id, octet_length(actor_user_id), ':', actor_user_id, \
     octet_length(actor_role), ':', actor_role, octet_length(action), ':', action, \
     octet_length(entity_type), ':', entity_type, octet_length(entity_id), ':', entity_id, \
     octet_length(patient_id), ':', patient_id, octet_length(source_ip), ':', source_ip, \
     octet_length(outcome), ':', outcome, octet_length(reason), ':', reason, \
     octet_length(actor_token_id), ':', actor_token_id, octet_length(prev_hash), ':', prev_hash, \
     octet_length(hash), ':', hash), ''), count(*), max(seq) FROM "
    };
}

/// The events with `seq` from `$1` to `$1 + $2 - 1` as one text, with their number and the last
/// `seq`: read straight from the table in `seq` order (`seq` is its key, migration 0030), where
/// [`SQLITE_VERIFY_CHUNK_SQL`] reads the first `$2` events from `$1` through a subquery. The two
/// are the same chunk when all `$2` are there, which is what a chain left alone holds; a short
/// range (a gap, or the end of the log) is read again by count. Measured on 1.3 M events: about
/// a fifth less of SQLite's time per chunk than the subquery (docs/BENCHMARKS.md).
const SQLITE_VERIFY_RANGE_SQL: &str =
    concat!(sqlite_verify_chunk_select!(), "audit_events WHERE seq >= $1 AND seq < $1 + $2");

/// [`SQLITE_VERIFY_CHUNK`] events as one text, with their number and the last `seq`. Each event
/// is `seq,at,` (`at` as the stored microseconds) and then the text fields in [`VERIFY_SQL`]'s
/// order, each as `<bytes>:<text>`, a NULL as a bare `:` (`concat` skips NULLs). Nothing is
/// escaped: lengths in bytes, the text copied as stored (`concat` and `group_concat` copy bytes,
/// embedded NULs included), so reading it back is a walk over lengths. The aggregate takes the rows
/// in the subquery's `seq` order (an `ORDER BY` inside it would sort them again, in a temporary
/// b-tree); the chunk is put in order again after parsing all the same, so that the result never
/// rests on the order an aggregate happens to see.
const SQLITE_VERIFY_CHUNK_SQL: &str =
    concat!(sqlite_verify_chunk_select!(), "(SELECT * FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2)");

/// One fetched chunk: the encoded events, how many, the last `seq` (none when empty).
type Chunk = (Option<String>, i64, Option<i64>);

/// The first `want` events from `seq >= from`: by range, and by count when the range is short.
async fn fetch_chunk(pool: SqliteReadPool, from: i64, want: i64) -> Result<Chunk> {
    let mut conn = pool.acquire().await?;
    let by_range: Chunk = sqlx::query_as(SQLITE_VERIFY_RANGE_SQL).bind(from).bind(want).fetch_one(&mut *conn).await?;
    let chunk = if by_range.1 == want {
        by_range
    } else {
        sqlx::query_as(SQLITE_VERIFY_CHUNK_SQL).bind(from).bind(want).fetch_one(&mut *conn).await?
    };
    conn.keep();
    Ok(chunk)
}

type SqliteReadPool = crate::read_pool::ReadPool<sqlx::SqliteConnection>;

/// Reads the events of a [`SQLITE_VERIFY_CHUNK_SQL`] text; `None` if it is not well formed.
fn parse_chunk(text: &str) -> Option<Vec<EventView<'_>>> {
    let mut r = ChunkReader { text, at: 0 };
    let mut out = Vec::with_capacity(usize::try_from(SQLITE_VERIFY_CHUNK).unwrap_or(0));
    while r.at < text.len() {
        let seq = r.number(b',')?;
        let at_micros = r.number(b',')?;
        out.push(EventView {
            seq,
            at_micros,
            clinic_id: r.field()?,
            actor_user_id: r.field()?,
            actor_role: r.field()?,
            action: r.field()??,
            entity_type: r.field()??,
            entity_id: r.field()?,
            patient_id: r.field()?,
            source_ip: r.field()?,
            outcome: r.field()??,
            reason: r.field()?,
            actor_token_id: r.field()?,
            prev_hash: r.field()??,
            hash: r.field()??,
        });
    }
    Some(out)
}

struct ChunkReader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> ChunkReader<'a> {
    /// The text up to `end` (not included), moving past `end`.
    fn until(&mut self, end: u8) -> Option<&'a str> {
        let rest = self.text.get(self.at..)?;
        let n = rest.bytes().position(|b| b == end)?;
        self.at += n + 1;
        rest.get(..n)
    }

    fn number(&mut self, end: u8) -> Option<i64> {
        self.until(end)?.parse().ok()
    }

    /// A `<bytes>:<text>` field; `Some(None)` for a NULL.
    fn field(&mut self) -> Option<Option<&'a str>> {
        let len = self.until(b':')?;
        if len.is_empty() {
            return Some(None);
        }
        let len: usize = len.parse().ok()?;
        let v = self.text.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(Some(v))
    }
}

/// SQLite: many events per fetched row. sqlx hands every result row from the connection's worker
/// thread to the async task separately (a thread wake-up per row: 768,000 futex calls for 1.3 M
/// events, most of the run's time); a chunk of [`SQLITE_VERIFY_CHUNK`] events concatenated in SQL
/// costs one hand-off. The next chunk is read (on another pooled connection) while this one is
/// checked, so SQLite and the hashing run side by side.
async fn verify_stretch_sqlite(pool: &SqliteReadPool, start: i64, len: i64, v: &mut SegmentVerifier) -> Result<()> {
    // The same events as [`VERIFY_SQL`] (the first `len` from `start`, gaps included), a chunk at a time.
    let (mut from, mut left) = (start, len);
    let mut want = left.min(SQLITE_VERIFY_CHUNK);
    let mut next = (left > 0).then(|| tokio::spawn(fetch_chunk(pool.clone(), from, want)));
    while let Some(fetching) = next.take() {
        let chunk_from = from;
        let (text, got, last) =
            fetching.await.map_err(|e| StoreError::Corrupt(format!("audit events from {chunk_from}: {e}")))??;
        left -= got;
        // A short chunk: no stored event after it.
        if let Some(last) = last
            && got == want
            && left > 0
        {
            (from, want) = (last.saturating_add(1), left.min(SQLITE_VERIFY_CHUNK));
            next = Some(tokio::spawn(fetch_chunk(pool.clone(), from, want)));
            // Let the read start (its statement handed to the connection's thread) before this
            // task spends a while hashing without an await.
            tokio::task::yield_now().await;
        }
        let text = text.unwrap_or_default();
        let mut events = parse_chunk(&text)
            .filter(|e| i64::try_from(e.len()) == Ok(got))
            .ok_or_else(|| StoreError::Corrupt(format!("audit events from {chunk_from}: not read back as written")))?;
        // Already in order: a pass that moves nothing.
        events.sort_by_key(|e| e.seq);
        for e in &events {
            if v.push(e).is_err() {
                if let Some(n) = next {
                    n.abort();
                }
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_chunk;

    const HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn event(seq: i64, reason: Option<&str>) -> String {
        let field = |v: Option<&str>| v.map_or(":".to_owned(), |v| format!("{}:{v}", v.len()));
        format!(
            "{seq},1700000000000000,{}{}{}{}{}{}{}{}{}{}{}{}{}",
            field(Some("c1")),
            field(None),
            field(Some("nurse")),
            field(Some("patient.read")),
            field(Some("patient")),
            field(Some("")),
            field(None),
            field(Some("::1")),
            field(Some("success")),
            field(reason),
            field(None),
            field(Some(HASH)),
            field(Some(HASH)),
        )
    }

    #[test]
    fn a_chunk_reads_back_its_fields_whatever_their_text() {
        let reason = "12:ab,3:x\u{0}é:";
        let text = format!("{}{}", event(7, Some(reason)), event(8, None));
        let events = parse_chunk(&text).unwrap_or_default();
        assert_eq!(events.len(), 2);
        let (first, second) = (events[0], events[1]);
        assert_eq!((first.seq, first.at_micros), (7, 1_700_000_000_000_000));
        assert_eq!(first.clinic_id, Some("c1"));
        assert_eq!(first.actor_user_id, None);
        assert_eq!(first.entity_id, Some(""));
        assert_eq!(first.patient_id, None);
        assert_eq!(first.source_ip, Some("::1"));
        assert_eq!(first.reason, Some(reason));
        assert_eq!(first.hash, HASH);
        assert_eq!((second.seq, second.reason), (8, None));
        assert_eq!(parse_chunk(""), Some(Vec::new()));
    }

    #[test]
    fn a_chunk_not_as_written_is_refused_without_a_panic() {
        let whole = event(7, Some("é"));
        // Cut at every character boundary (a cut inside "é" is the next case).
        for cut in 1..whole.len() {
            if let Some(part) = whole.get(..cut) {
                assert_eq!(parse_chunk(part), None, "cut at {cut}");
            }
        }
        // A length that ends inside a character, runs past the end, or is not a number.
        assert_eq!(parse_chunk(&event(7, Some("é")).replace("2:é", "1:é")), None);
        assert_eq!(parse_chunk(&event(7, Some("x")).replace("1:x", "99:x")), None);
        assert_eq!(parse_chunk(&event(7, Some("x")).replace("1:x", "a:x")), None);
        assert_eq!(parse_chunk("x,1,"), None);
    }
}
