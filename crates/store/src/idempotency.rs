//! Idempotency keys (issue 9): "acknowledged = stored exactly once" for retried API requests.
//!
//! The web layer runs a request that carries an `Idempotency-Key` inside [`with_claim`]. The first
//! transaction that request commits also inserts the key's row ([`Tx::commit`] calls
//! [`record_pending`]), so the key is stored if and only if the change is: a crash between the
//! commit and the response leaves a key that says "applied", never a change without its key or a
//! key without its change. The response is added to the row right after ([`record_response`]) and
//! replayed to retries. The key is the table's primary key per principal, so two requests with one
//! key can never both commit, on either engine and across server processes.

use std::sync::{Arc, Mutex, PoisonError};

use kapstone_domain::UtcTs;

use crate::{DbTs, Result, StoreError, Tx, on_read, on_tx};

/// The key of a request about to run: who sent it, the key, and what the request was.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// `user:<id>` or `token:<id>`: keys of different principals never meet.
    pub principal: String,
    pub key: String,
    /// Hex SHA-256 of the method, path and body: the same key with another request is refused.
    pub request_hash: String,
    pub method: String,
    pub path: String,
    pub created_at: UtcTs,
    pub expires_at: UtcTs,
}

/// A stored key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub request_hash: String,
    pub expires_at: DbTs,
    /// `None` while the response is not recorded: the change is stored, its answer is not (the
    /// server was still answering, or stopped before it could).
    pub response_status: Option<i32>,
    pub response_content_type: Option<String>,
    pub response_body: Option<Vec<u8>>,
}

#[derive(Debug)]
pub(crate) struct Slot {
    key: NewKey,
    recorded: bool,
}

tokio::task_local! {
    static CLAIM: Arc<Mutex<Slot>>;
}

/// Runs `fut` (one request) with `key` claimed: the first transaction it commits stores the key.
/// Returns the output and whether the key was stored (that is, whether the request changed
/// anything). Transactions of other tasks (the group-commit writer) are not affected; a job it runs
/// for this request takes the claim along ([`claim`]).
pub async fn with_claim<F: Future>(key: NewKey, fut: F) -> (F::Output, bool) {
    let slot = Arc::new(Mutex::new(Slot { key, recorded: false }));
    let out = CLAIM.scope(slot.clone(), fut).await;
    let recorded = slot.lock().unwrap_or_else(PoisonError::into_inner).recorded;
    (out, recorded)
}

/// The claim of the running request, while its key is not stored yet.
fn pending() -> Option<(Arc<Mutex<Slot>>, NewKey)> {
    CLAIM
        .try_with(|slot| {
            let s = slot.lock().unwrap_or_else(PoisonError::into_inner);
            (!s.recorded).then(|| (slot.clone(), s.key.clone()))
        })
        .ok()
        .flatten()
}

/// Inserts the running request's key into `tx` (called by [`Tx::commit`]); the returned handle is
/// marked stored once the commit succeeds. A live row with the same key (another request with
/// this key committed first) refuses the transaction; an expired one is replaced.
pub(crate) async fn record_pending(tx: &mut Tx) -> Result<Option<Arc<Mutex<Slot>>>> {
    let Some((slot, k)) = pending() else { return Ok(None) };
    insert_key(tx, &k).await?;
    Ok(Some(slot))
}

/// The running request's claim on its key while the key is not stored, for a write that runs on
/// another task (the group-commit writer, [`crate::writer`]): it stores the key with that write.
#[derive(Debug, Clone)]
pub struct Claim {
    slot: Arc<Mutex<Slot>>,
    key: NewKey,
}

/// The claim of the running request, if it has one not stored yet.
pub fn claim() -> Option<Claim> {
    pending().map(|(slot, key)| Claim { slot, key })
}

impl Claim {
    /// Inserts the key into `tx`; refused as [`Tx::commit`] refuses it.
    pub async fn store(&self, tx: &mut Tx) -> Result<()> {
        insert_key(tx, &self.key).await
    }

    /// Marks the key stored, once the transaction that holds it is committed.
    pub fn mark_stored(&self) {
        mark_recorded(&self.slot);
    }
}

async fn insert_key(tx: &mut Tx, k: &NewKey) -> Result<()> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO idempotency_keys (principal, idempotency_key, request_hash, method, path, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (principal, idempotency_key) DO UPDATE SET request_hash = excluded.request_hash, \
             method = excluded.method, path = excluded.path, created_at = excluded.created_at, \
             expires_at = excluded.expires_at, response_status = NULL, response_content_type = NULL, \
             response_body = NULL WHERE idempotency_keys.expires_at <= excluded.created_at",
        )
        .bind(&k.principal)
        .bind(&k.key)
        .bind(&k.request_hash)
        .bind(&k.method)
        .bind(&k.path)
        .bind(DbTs(k.created_at))
        .bind(DbTs(k.expires_at))
        .execute(c)
        .await?
        .rows_affected()
    });
    if n != 1 {
        return Err(StoreError::Conflict("Idempotency-Key"));
    }
    Ok(())
}

/// Marks the claim stored after its transaction committed.
pub(crate) fn mark_recorded(slot: &Mutex<Slot>) {
    slot.lock().unwrap_or_else(PoisonError::into_inner).recorded = true;
}

/// The live (unexpired) key of `principal`, if any.
pub async fn find(db: &crate::Db, principal: &str, key: &str, now: UtcTs) -> Result<Option<StoredKey>> {
    let row: Option<StoredKey> = on_read!(db, |c| {
        sqlx::query_as(
            "SELECT request_hash, expires_at, response_status, response_content_type, response_body \
             FROM idempotency_keys WHERE principal = $1 AND idempotency_key = $2",
        )
        .bind(principal)
        .bind(key)
        .fetch_optional(c)
        .await?
    });
    Ok(row.filter(|r| r.expires_at.0 > now))
}

/// Stores the response of the request that stored `key`, for replay.
pub async fn record_response(
    db: &crate::Db,
    principal: &str,
    key: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<()> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |c| {
        sqlx::query(
            "UPDATE idempotency_keys SET response_status = $3, response_content_type = $4, response_body = $5 \
             WHERE principal = $1 AND idempotency_key = $2",
        )
        .bind(principal)
        .bind(key)
        .bind(i32::from(status))
        .bind(content_type)
        .bind(body)
        .execute(c)
        .await?;
    });
    tx.commit().await
}

/// Deletes keys expired at `now`; returns how many. Safe in several processes at once.
pub async fn prune(db: &crate::Db, now: UtcTs) -> Result<u64> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, |c| {
        sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(DbTs(now))
            .execute(c)
            .await?
            .rows_affected()
    });
    tx.commit().await?;
    Ok(n)
}
