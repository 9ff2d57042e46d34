//! The group-commit writer: one task that takes the writes queued by concurrent requests, runs them
//! in one transaction and commits them with one durable flush, then answers each request. A
//! request is answered only after the commit that holds its write, so "acknowledged = on disk"
//! holds as it does for a transaction of its own.
//!
//! Two kinds of work are queued:
//! - the audit event of a *read* ([`Writer::record`]): a chart view waits until its event is
//!   committed, and many views share one commit;
//! - a *job* ([`Writer::run`]): a change and its audit events, written by a closure on the
//!   batch's transaction. Each job runs inside a savepoint, so a job that fails (a refusal, a
//!   conflict) rolls back its own writes and no one else's.
//!
//! A dosing session's write (a keyed job, [`Writer::run_keyed`]) is cheaper still: the batch locks
//! all its sessions with one statement before the jobs run ([`Batch::session_count`]), and a job
//! that only appends events hands them to the batch ([`Batch::defer_session_events`]); they are
//! written together, one insert for all the batch's sessions, before anything else touches the
//! transaction. Such a job needs no savepoint: a job takes its savepoint when it first uses the
//! transaction ([`Batch::tx`]), so one that never does has nothing to roll back. A vitals entry
//! was four statements in the writer's sequential part (savepoint, lock, insert, projection); it
//! is now none of its own.
//!
//! The audit events of a batch are appended to the chain at its end, with one multi-row insert:
//! the chain head is locked once per batch, not once per event. Both engines run this same code;
//! on SQLite the batch is one write transaction of the single writer connection, on PostgreSQL one
//! transaction on one pooled connection.

use futures_util::future::BoxFuture;
use kapstone_domain::audit::NewAuditEvent;
use tokio::sync::{mpsc, oneshot};

use std::collections::HashMap;

use crate::db::statement;
use crate::dosing::{self, NewEvent};
use crate::idempotency;
use crate::{Db, Result, StoreError, Tx, audit};

/// Why a batch could not be committed (shared by everything in the batch).
#[derive(Debug, Clone)]
pub struct BatchFailure {
    pub unavailable: bool,
    /// The disk is full or failing ([`StoreError::is_storage_fault`]).
    pub storage_fault: bool,
    pub message: String,
}

impl BatchFailure {
    fn of(e: &StoreError) -> Self {
        Self { unavailable: e.is_unavailable(), storage_fault: e.is_storage_fault(), message: e.to_string() }
    }

    fn stopped() -> StoreError {
        StoreError::Batch(Self { unavailable: true, storage_fault: false, message: "the writer stopped".into() })
    }
}

/// A statement run once per batch, just before its audit events (see [`Batch::once`]).
type OnceFn = Box<dyn for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, Result<()>> + Send>;

/// The open batch a job writes into.
pub struct Batch {
    tx: Tx,
    /// Increases with every batch this writer opens (see [`Batch::number`]).
    number: u64,
    audit: Vec<NewAuditEvent>,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
    once: Vec<(String, OnceFn)>,
    /// Session events handed over by jobs ([`Batch::defer_session_events`]), not yet written.
    deferred: Vec<NewEvent<'static>>,
    /// Where the running job's own deferred events begin (those before are earlier jobs').
    job_deferred_from: usize,
    /// Whether the running job has taken its savepoint (it has used the transaction).
    in_savepoint: bool,
    /// Sessions locked in this batch, with their number of events as written so far (`None`: no
    /// such session).
    counts: HashMap<uuid::Uuid, Option<i32>>,
    /// Writing earlier jobs' deferred events failed: the batch must not commit.
    failure: Option<StoreError>,
}

impl Batch {
    fn new(tx: Tx, number: u64) -> Self {
        Self {
            tx,
            number,
            audit: Vec::new(),
            after_commit: Vec::new(),
            once: Vec::new(),
            deferred: Vec::new(),
            job_deferred_from: 0,
            in_savepoint: false,
            counts: HashMap::new(),
            failure: None,
        }
    }

    /// The batch's transaction. The running job's first use takes its savepoint (a job that fails
    /// rolls back to it), after writing what earlier jobs deferred.
    pub async fn tx(&mut self) -> Result<&mut Tx> {
        if !self.in_savepoint {
            self.write_deferred(self.job_deferred_from, true).await?;
            statement(&mut self.tx, "SAVEPOINT kapstone_job").await?;
            self.in_savepoint = true;
        }
        Ok(&mut self.tx)
    }

    /// The number of events of the dosing session `id` as this batch has written or deferred
    /// them, under the session's lock (taken for every keyed job's session when the batch opens;
    /// otherwise here). `None`: no such session.
    pub async fn session_count(&mut self, id: uuid::Uuid) -> Result<Option<i32>> {
        if let Some(e) = self.deferred.iter().rev().find(|e| e.session == id) {
            return Ok(Some(e.seq + 1));
        }
        if let Some(count) = self.counts.get(&id) {
            return Ok(*count);
        }
        let count = dosing::lock_sessions(self.tx().await?, &[id]).await?.get(&id).copied();
        self.counts.insert(id, count);
        Ok(count)
    }

    /// Appends session events now (they must precede what the job writes next, e.g. the ledger's
    /// draw of an administration), after the job's own deferred ones.
    pub async fn append_session_events(&mut self, events: &[NewEvent<'_>]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.tx().await?;
        self.write_deferred(self.deferred.len(), false).await?;
        dosing::append_events(&mut self.tx, events).await?;
        self.count_written(events);
        Ok(())
    }

    /// Hands session events to the batch: written with the other jobs' before anything else uses
    /// the transaction, or at the end of the batch; dropped if this job fails. A job defers its
    /// events last (what it writes after may not depend on them).
    pub fn defer_session_events(&mut self, events: Vec<NewEvent<'static>>) {
        self.deferred.extend(events);
    }

    /// Writes the first `upto` deferred events. `earlier_jobs`: they are earlier jobs' (outside
    /// the running job's savepoint), so a failure leaves the batch unable to commit.
    async fn write_deferred(&mut self, upto: usize, earlier_jobs: bool) -> Result<()> {
        if upto == 0 {
            return Ok(());
        }
        let events: Vec<NewEvent<'static>> = self.deferred.drain(..upto).collect();
        self.job_deferred_from = self.job_deferred_from.saturating_sub(upto);
        if let Err(e) = dosing::append_events(&mut self.tx, &events).await {
            if !earlier_jobs {
                return Err(e);
            }
            let failure = BatchFailure::of(&e);
            self.failure = Some(e);
            return Err(StoreError::Batch(failure));
        }
        self.count_written(&events);
        Ok(())
    }

    fn count_written(&mut self, events: &[NewEvent<'_>]) {
        for e in events {
            let count = self.counts.entry(e.session).or_insert(None);
            *count = Some(count.map_or(e.seq + 1, |c| c.max(e.seq + 1)));
        }
    }

    /// This batch's number in the writer's sequence: what a job stages for later jobs of the same
    /// batch can be told apart from what an earlier batch, that may have failed, left behind.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Queues an audit event: it is appended to the chain with the batch, in the order of the jobs,
    /// and dropped with the job's writes when the job fails.
    pub fn audit(&mut self, event: NewAuditEvent) {
        self.audit.push(event);
    }

    /// Runs `f` once the batch is committed (never when it fails, nor when this job fails).
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(f));
    }

    /// Runs `f` on the batch's transaction once for all the jobs that ask with the same `key`,
    /// after every job (e.g. one bump of the clinic's floor counter for all the batch's session
    /// events). Late in the batch, the row it writes stays locked for the shortest time, and
    /// always after the rows the jobs lock. Dropped with the job's writes when the job fails.
    pub fn once<F>(&mut self, key: String, f: F)
    where
        F: for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, Result<()>> + Send + 'static,
    {
        if !self.once.iter().any(|(k, _)| *k == key) {
            self.once.push((key, Box::new(f)));
        }
    }
}

/// A job as the writer task runs it: `true` when it succeeded.
type JobFn = Box<dyn for<'a> FnOnce(&'a mut Batch) -> BoxFuture<'a, bool> + Send>;

enum Item {
    Read(NewAuditEvent, oneshot::Sender<std::result::Result<i64, BatchFailure>>),
    Job(Option<uuid::Uuid>, JobFn, oneshot::Sender<std::result::Result<(), BatchFailure>>),
}

/// A handle on the writer task; cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    queue: mpsc::Sender<Item>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Item::Read(..) => "Read",
            Item::Job(..) => "Job",
        })
    }
}

impl Writer {
    /// Most items in one batch; bounds the time the write lock is held.
    const MAX_BATCH: usize = 256;
    /// Most jobs in one batch (a job does more than an audit event).
    const MAX_JOBS: usize = 64;

    /// Starts the writer task on the current tokio runtime.
    pub fn spawn(db: Db) -> Self {
        let (queue, mut rx) = mpsc::channel::<Item>(4096);
        tokio::spawn(async move {
            let mut number = 0u64;
            let mut own = Own { connection: db.writer_connection(), head: None };
            while let Some(first) = rx.recv().await {
                let mut items = vec![first];
                let mut jobs = usize::from(matches!(items[0], Item::Job(..)));
                while items.len() < Self::MAX_BATCH && jobs < Self::MAX_JOBS {
                    match rx.try_recv() {
                        Ok(item) => {
                            jobs += usize::from(matches!(item, Item::Job(..)));
                            items.push(item);
                        }
                        Err(_) => break,
                    }
                }
                number += 1;
                run_batch(&db, &mut own, number, items).await;
            }
        });
        Self { queue }
    }

    /// Records the audit event of a read and waits until it is committed; returns its `seq`.
    pub async fn record(&self, event: NewAuditEvent) -> Result<i64> {
        let (reply, wait) = oneshot::channel();
        self.queue.send(Item::Read(event, reply)).await.map_err(|_| BatchFailure::stopped())?;
        wait.await.map_err(|_| BatchFailure::stopped())?.map_err(StoreError::Batch)
    }

    /// Records the audit events of one read, in this order, and waits until all are committed: they
    /// are queued together, so they normally share one batch (one durable commit) instead of the
    /// second waiting for a commit of its own after the first.
    pub async fn record_all(&self, events: Vec<NewAuditEvent>) -> Result<Vec<i64>> {
        let mut waits = Vec::with_capacity(events.len());
        for event in events {
            let (reply, wait) = oneshot::channel();
            self.queue.send(Item::Read(event, reply)).await.map_err(|_| BatchFailure::stopped())?;
            waits.push(wait);
        }
        let mut seqs = Vec::with_capacity(waits.len());
        for wait in waits {
            seqs.push(wait.await.map_err(|_| BatchFailure::stopped())?.map_err(StoreError::Batch)?);
        }
        Ok(seqs)
    }

    /// Runs `job` in the next batch and waits until that batch is committed. The job writes through
    /// [`Batch::tx`] and queues its audit events with [`Batch::audit`]; an `Err` rolls back its
    /// writes (and only its). The job runs on the writer's task: it must only write what it has
    /// decided, with everything slow (reads that do not need the lock, rendering) done before.
    ///
    /// Inside a request with an `Idempotency-Key`, the key is stored with the job's writes, as
    /// [`Tx::commit`] does for a transaction of the request's own, and with it the answer to the
    /// job's result when the request declared one for its type
    /// ([`crate::idempotency::answer_with`]), as [`Tx::commit_answering`] does.
    pub async fn run<T, E, F>(&self, job: F) -> std::result::Result<T, E>
    where
        F: for<'a> FnOnce(&'a mut Batch) -> BoxFuture<'a, std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.submit(None, job).await
    }

    /// [`Writer::run`] for a job that first locks the row `key` (a dosing session): the jobs of a
    /// batch run in the order of their keys (in the order they came for one key), so two server
    /// processes on one PostgreSQL take the rows of their batches in the same order and never
    /// wait for each other in a circle.
    pub async fn run_keyed<T, E, F>(&self, key: uuid::Uuid, job: F) -> std::result::Result<T, E>
    where
        F: for<'a> FnOnce(&'a mut Batch) -> BoxFuture<'a, std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.submit(Some(key), job).await
    }

    async fn submit<T, E, F>(&self, key: Option<uuid::Uuid>, job: F) -> std::result::Result<T, E>
    where
        F: for<'a> FnOnce(&'a mut Batch) -> BoxFuture<'a, std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let claim = idempotency::claim();
        let (out_tx, out_rx) = oneshot::channel::<std::result::Result<T, E>>();
        let wrapped: JobFn = Box::new(move |batch: &mut Batch| {
            Box::pin(async move {
                let out = match (job(batch).await, &claim) {
                    // The key, and the answer to `v` if the request declared one, go with the
                    // job's writes.
                    (Ok(v), Some(c)) => {
                        let answer = c.answer_to(&v);
                        let stored = match batch.tx().await {
                            Ok(tx) => c.store(tx, answer.as_ref()).await,
                            Err(e) => Err(e),
                        };
                        match stored {
                            Ok(()) => {
                                let c = c.clone();
                                batch.after_commit(move || c.mark_stored(answer));
                                Ok(v)
                            }
                            Err(e) => Err(E::from(e)),
                        }
                    }
                    (out, _) => out,
                };
                let ok = out.is_ok();
                let _ = out_tx.send(out);
                ok
            })
        });
        let (reply, committed) = oneshot::channel();
        self.queue.send(Item::Job(key, wrapped, reply)).await.map_err(|_| E::from(BatchFailure::stopped()))?;
        let committed = committed.await.map_err(|_| E::from(BatchFailure::stopped()))?;
        // `None`: the batch stopped before the job ran.
        let out = out_rx.await.ok();
        match (out, committed) {
            // A job that failed wrote nothing, whatever became of the batch.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(failure)) => Err(E::from(StoreError::Batch(failure))),
            (None, Ok(())) => Err(E::from(BatchFailure::stopped())),
        }
    }
}

/// What a batch runs, its answers taken out first so that everyone is answered, also when the
/// batch stops half-way.
enum Work {
    Read(NewAuditEvent),
    Job(Option<uuid::Uuid>, JobFn),
}

impl Work {
    /// Reads and unkeyed jobs first (in their order), then keyed jobs by key.
    fn order(&self) -> Option<uuid::Uuid> {
        match self {
            Work::Read(_) => None,
            Work::Job(key, _) => *key,
        }
    }
}

/// What the writer task keeps from one batch to the next.
struct Own {
    /// Its own connection (PostgreSQL; `None` on SQLite: [`Db::writer_connection`]).
    connection: Option<crate::read_pool::ReadPool<sqlx::postgres::PgConnection>>,
    /// The audit chain's head as the writer's last batch left it: the next batch's events are
    /// chained on it and checked against the stored head in the statement that inserts them
    /// ([`audit::append_all_hinted`]), without locking and reading the head first.
    head: Option<audit::Head>,
}

/// Runs one batch: every job in its savepoint, then the audit events, then one commit; answers
/// everyone.
async fn run_batch(db: &Db, own: &mut Own, number: u64, items: Vec<Item>) {
    let mut work = Vec::with_capacity(items.len());
    let mut read_replies = Vec::new();
    let mut job_replies = Vec::new();
    for item in items {
        match item {
            Item::Read(event, reply) => {
                read_replies.push(reply);
                work.push(Work::Read(event));
            }
            Item::Job(key, job, reply) => {
                job_replies.push(reply);
                work.push(Work::Job(key, job));
            }
        }
    }
    // Stable: the jobs of one key keep the order they came in; the reads theirs.
    work.sort_by_key(Work::order);
    let mut read_index = Vec::with_capacity(read_replies.len());
    let outcome = async {
        let tx = match &own.connection {
            Some(connection) => match Db::begin_on(connection.acquire().await?).await {
                Ok(tx) => tx,
                // The kept connection was closed under it since the last batch (a server restart,
                // an administrator; within the idle time that would have had it pinged). Nothing
                // was begun on it, and it is closed: begin on a new one.
                Err(_) => Db::begin_on(connection.acquire().await?).await?,
            },
            None => db.begin().await?,
        };
        let mut batch = Batch::new(tx, number);
        // The keyed jobs' sessions, locked at once (in the order of their ids, as `work` is).
        let mut keys: Vec<uuid::Uuid> = work.iter().filter_map(Work::order).collect();
        keys.dedup();
        if !keys.is_empty() {
            let counts = dosing::lock_sessions(&mut batch.tx, &keys).await?;
            batch.counts = keys.iter().map(|k| (*k, counts.get(k).copied())).collect();
        }
        for w in work {
            match w {
                Work::Read(event) => {
                    read_index.push(batch.audit.len());
                    batch.audit.push(event);
                }
                Work::Job(_, job) => {
                    let marks = (batch.audit.len(), batch.after_commit.len(), batch.once.len());
                    batch.job_deferred_from = batch.deferred.len();
                    batch.in_savepoint = false;
                    // The savepoint a job takes when it first uses the transaction is not released
                    // after a job that succeeds: the next one nests inside it, and the commit
                    // releases them all. `ROLLBACK TO` names the most recent savepoint of that
                    // name on both engines, i.e. this job's.
                    let ok = job(&mut batch).await;
                    if let Some(e) = batch.failure.take() {
                        return Err(e);
                    }
                    if !ok {
                        batch.deferred.truncate(batch.job_deferred_from);
                        if batch.in_savepoint {
                            statement(&mut batch.tx, "ROLLBACK TO SAVEPOINT kapstone_job").await?;
                            // What the job wrote is undone, its counts with it: read again.
                            batch.counts.clear();
                        }
                        batch.audit.truncate(marks.0);
                        batch.after_commit.truncate(marks.1);
                        batch.once.truncate(marks.2);
                    }
                }
            }
        }
        let all = batch.deferred.len();
        batch.write_deferred(all, true).await?;
        for (_, f) in std::mem::take(&mut batch.once) {
            f(&mut batch.tx).await?;
        }
        let last = if batch.audit.is_empty() {
            0
        } else {
            audit::append_all_hinted(&mut batch.tx, &batch.audit, &mut own.head).await?
        };
        let first = last - i64::try_from(batch.audit.len()).unwrap_or(0) + 1;
        // Not `Tx::commit`: the writer's task carries no request's idempotency claim (each job
        // stored its own).
        batch.tx.commit_apart().await?;
        Ok::<_, StoreError>((first, batch.after_commit))
    }
    .await;
    match outcome {
        Ok((first, hooks)) => {
            for hook in hooks {
                hook();
            }
            for (reply, index) in read_replies.into_iter().zip(read_index) {
                let _ = reply.send(Ok(first + i64::try_from(index).unwrap_or(0)));
            }
            for reply in job_replies {
                let _ = reply.send(Ok(()));
            }
        }
        Err(e) => {
            // Whatever it chained the events on was not committed.
            own.head = None;
            tracing::error!(error = %e, "write batch failed");
            let failure = BatchFailure::of(&e);
            for reply in read_replies {
                let _ = reply.send(Err(failure.clone()));
            }
            for reply in job_replies {
                let _ = reply.send(Err(failure.clone()));
            }
        }
    }
}
