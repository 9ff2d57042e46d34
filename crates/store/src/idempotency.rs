//! Idempotency keys (issue 9): "acknowledged = stored exactly once" for retried API requests.
//!
//! The web layer runs a request that carries an `Idempotency-Key` inside [`with_claim`]. The first
//! transaction that request commits also inserts the key's row ([`Tx::commit`] calls
//! [`record_pending`]), so the key is stored if and only if the change is: a crash between the
//! commit and the response leaves a key that says "applied", never a change without its key or a
//! key without its change. The key is the table's primary key per principal, so two requests with
//! one key can never both commit, on either engine and across server processes.
//!
//! The answer goes into the same row, in the same transaction, when the request can say it before
//! it commits: its handler declares how the use case's result is answered ([`answer_with`]) and the
//! use case commits with that result ([`Tx::commit_answering`], or a job of the group-commit writer
//! returns it, [`crate::writer`]). A retry after a crash anywhere past that commit then gets the
//! original answer. Otherwise (a route that reads or writes again after its change commits) the
//! answer is added to the row right after ([`record_response`]), and a crash in between leaves a
//! key applied without its answer.

use std::any::Any;
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

/// An answer as stored for replay: the status, the `Content-Type` and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// How the running request answers the value `T` its change is committed with ([`answer_with`]).
type AnswerFn<T> = Box<dyn Fn(&T) -> Option<Answer> + Send + Sync>;

/// The answer a request declared before its change.
#[derive(Debug, Clone)]
enum Declared {
    /// Whatever the change ([`answer_always`]).
    Always(Answer),
    /// An [`AnswerFn`] of some `T`: the answer to the value the change is committed with.
    Of(Arc<dyn Any + Send + Sync>),
}

/// The answer declared for `value` (the value the change commits with, if any).
fn answer_of<T: 'static>(f: Option<&Declared>, value: Option<&T>) -> Option<Answer> {
    match f? {
        Declared::Always(a) => Some(a.clone()),
        Declared::Of(f) => f.downcast_ref::<AnswerFn<T>>()?(value?),
    }
}

#[derive(Debug)]
pub(crate) struct Slot {
    key: NewKey,
    recorded: bool,
    declared: Option<Declared>,
    /// The answer stored with the key, when there was one.
    answer: Option<Answer>,
}

/// What became of a claimed request's key ([`with_claim`]).
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    /// The key is stored: the request changed something.
    pub recorded: bool,
    /// The answer stored with the key, in the same transaction as the change.
    pub answer: Option<Answer>,
}

tokio::task_local! {
    static CLAIM: Arc<Mutex<Slot>>;
}

/// Runs `fut` (one request) with `key` claimed: the first transaction it commits stores the key.
/// Returns the output and what became of the key: whether it was stored (that is, whether the
/// request changed anything) and the answer stored with it, if any. Transactions of other tasks
/// (the group-commit writer) are not affected; a job it runs for this request takes the claim
/// along ([`claim`]).
pub async fn with_claim<F: Future>(key: NewKey, fut: F) -> (F::Output, Claimed) {
    let slot = Arc::new(Mutex::new(Slot { key, recorded: false, declared: None, answer: None }));
    let out = CLAIM.scope(slot.clone(), fut).await;
    let s = slot.lock().unwrap_or_else(PoisonError::into_inner);
    (out, Claimed { recorded: s.recorded, answer: s.answer.clone() })
}

/// Declares how the running request answers the value `T` its change commits with: the use case
/// passes that value to [`Tx::commit_answering`] (or returns it from its writer job), and `f`'s
/// answer is stored with the key in the same transaction. `f` must be the very function the
/// handler answers with, and pure: a retry after a crash is given what it returns. `None` stores
/// no answer (it is then recorded after the commit, as for a route that declares none). Outside a
/// request with a key, this does nothing.
pub fn answer_with<T: 'static>(f: impl Fn(&T) -> Option<Answer> + Send + Sync + 'static) {
    let f: AnswerFn<T> = Box::new(f);
    declare(Declared::Of(Arc::new(f)));
}

/// Declares the running request's answer whatever its change (a route that answers with a bare
/// status, 204 and the like): it is stored with the key by the request's first commit, whichever
/// way it commits. Outside a request with a key, this does nothing.
pub fn answer_always(answer: Answer) {
    declare(Declared::Always(answer));
}

fn declare(d: Declared) {
    let _ = CLAIM.try_with(|slot| {
        slot.lock().unwrap_or_else(PoisonError::into_inner).declared = Some(d);
    });
}

/// The claim of the running request, while its key is not stored yet.
fn pending() -> Option<(Arc<Mutex<Slot>>, NewKey, Option<Declared>)> {
    CLAIM
        .try_with(|slot| {
            let s = slot.lock().unwrap_or_else(PoisonError::into_inner);
            (!s.recorded).then(|| (slot.clone(), s.key.clone(), s.declared.clone()))
        })
        .ok()
        .flatten()
}

/// The running request's key, inserted into a transaction that is not committed yet.
pub(crate) struct Pending {
    slot: Arc<Mutex<Slot>>,
    answer: Option<Answer>,
}

/// Inserts the running request's key into `tx` (called by [`Tx::commit`] and
/// [`Tx::commit_answering`]), with the answer to `value` when the request declared one for its
/// type ([`answer_with`]); the returned handle is marked stored once the commit succeeds. A live
/// row with the same key (another request with this key committed first) refuses the
/// transaction; an expired one is replaced.
pub(crate) async fn record_pending<T: 'static>(tx: &mut Tx, value: Option<&T>) -> Result<Option<Pending>> {
    let Some((slot, k, f)) = pending() else { return Ok(None) };
    let answer = answer_of(f.as_ref(), value);
    insert_key(tx, &k, answer.as_ref()).await?;
    Ok(Some(Pending { slot, answer }))
}

/// The running request's claim on its key while the key is not stored, for a write that runs on
/// another task (the group-commit writer, [`crate::writer`]): it stores the key with that write.
#[derive(Debug, Clone)]
pub struct Claim {
    slot: Arc<Mutex<Slot>>,
    key: NewKey,
    declared: Option<Declared>,
}

/// The claim of the running request, if it has one not stored yet.
pub fn claim() -> Option<Claim> {
    pending().map(|(slot, key, declared)| Claim { slot, key, declared })
}

impl Claim {
    /// The answer the request declared for `value` (its job's result), if any.
    pub fn answer_to<T: 'static>(&self, value: &T) -> Option<Answer> {
        answer_of(self.declared.as_ref(), Some(value))
    }

    /// Inserts the key into `tx`, with `answer` ([`Claim::answer_to`]); refused as [`Tx::commit`]
    /// refuses it.
    pub async fn store(&self, tx: &mut Tx, answer: Option<&Answer>) -> Result<()> {
        insert_key(tx, &self.key, answer).await
    }

    /// Marks the key (and `answer`, stored with it) stored, once the transaction that holds it is
    /// committed.
    pub fn mark_stored(&self, answer: Option<Answer>) {
        mark_recorded(&self.slot, answer);
    }
}

async fn insert_key(tx: &mut Tx, k: &NewKey, answer: Option<&Answer>) -> Result<()> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO idempotency_keys (principal, idempotency_key, request_hash, method, path, created_at, \
             expires_at, response_status, response_content_type, response_body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (principal, idempotency_key) DO UPDATE SET request_hash = excluded.request_hash, \
             method = excluded.method, path = excluded.path, created_at = excluded.created_at, \
             expires_at = excluded.expires_at, response_status = excluded.response_status, \
             response_content_type = excluded.response_content_type, response_body = excluded.response_body \
             WHERE idempotency_keys.expires_at <= excluded.created_at",
        )
        .bind(&k.principal)
        .bind(&k.key)
        .bind(&k.request_hash)
        .bind(&k.method)
        .bind(&k.path)
        .bind(DbTs(k.created_at))
        .bind(DbTs(k.expires_at))
        .bind(answer.map(|a| i32::from(a.status)))
        .bind(answer.and_then(|a| a.content_type.as_deref()))
        .bind(answer.map(|a| a.body.as_slice()))
        .execute(c)
        .await?
        .rows_affected()
    });
    if n != 1 {
        return Err(StoreError::Conflict("Idempotency-Key"));
    }
    Ok(())
}

/// Marks the claim stored (with its answer, if one was stored) after its transaction committed.
pub(crate) fn mark_recorded(slot: &Mutex<Slot>, answer: Option<Answer>) {
    let mut s = slot.lock().unwrap_or_else(PoisonError::into_inner);
    s.recorded = true;
    s.answer = answer;
}

impl Pending {
    /// Marks the key stored, once the transaction that holds it is committed.
    pub(crate) fn committed(self) {
        mark_recorded(&self.slot, self.answer);
    }
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

/// Stores the response of the request that stored `key`, for replay, after its change committed:
/// for a request whose answer was not stored with its change ([`answer_with`]), or whose answer
/// turned out otherwise.
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
