//! The two engines behind one enum. Dialects differ only where a `match` says so.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqliteConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::read_pool::{ReadConn, ReadPool};
use crate::{Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the data lives: `sqlite://PATH` or `postgres://...`. `Debug` and `Display` hide any
/// password so the URL can be logged.
#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DbUrl {
    pub fn backend(&self) -> Backend {
        match self {
            DbUrl::Sqlite(_) => Backend::Sqlite,
            DbUrl::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL with its password, for connecting only.
    pub fn expose(&self) -> String {
        match self {
            DbUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DbUrl::Postgres(u) => u.clone(),
        }
    }

    fn redacted(&self) -> String {
        match self {
            DbUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DbUrl::Postgres(u) => {
                // postgres://user:secret@host/db -> postgres://user:***@host/db
                let Some((scheme, rest)) = u.split_once("://") else { return "postgres://***".into() };
                match rest.rsplit_once('@') {
                    Some((userinfo, host)) => {
                        let user = userinfo.split(':').next().unwrap_or_default();
                        let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_owned() };
                        format!("{scheme}://{masked}@{host}")
                    }
                    None => u.clone(),
                }
            }
        }
    }
}

impl FromStr for DbUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("sqlite://").or_else(|| s.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err("a sqlite URL needs a file path, like sqlite://./kapstone-data/kapstone.db".into());
            }
            return Ok(DbUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(s.to_owned()));
        }
        Err("the database URL must start with sqlite:// or postgres://".into())
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A connected database: connections for writes (sqlx's pool: transactions) and for reads
/// ([`crate::read_pool`]). SQLite gets one writer connection (SQLite admits one writer at a
/// time; queueing in the pool is cheaper than lock retries).
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite { write: SqlitePool, read: ReadPool<SqliteConnection> },
    Postgres { pool: PgPool, read: ReadPool<PgConnection> },
}

/// A transaction on either engine. Dropped without `commit` it rolls back.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(PgTx),
}

/// A PostgreSQL transaction: sqlx's, on a connection of the write pool ([`Db::begin`]), or one
/// begun by hand on the connection the group-commit writer keeps from batch to batch
/// ([`Db::begin_on`]). That one is not taken from sqlx's pool, so it is not pinged when given back:
/// a round trip less on the writer, which runs its batches one after the other. Either derefs to
/// the connection.
pub struct PgTx(PgTxOn);

enum PgTxOn {
    Pooled(Transaction<'static, Postgres>),
    /// In a transaction (`BEGIN` sent) until `COMMIT`; dropped before, the connection is closed,
    /// which ends the transaction on the server (it is not kept to be lent again).
    Kept(ReadConn<PgConnection>),
}

impl PgTx {
    async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        match self.0 {
            PgTxOn::Pooled(t) => t.commit().await,
            PgTxOn::Kept(mut c) => {
                sqlx::raw_sql("COMMIT").execute(&mut *c).await?;
                c.keep();
                Ok(())
            }
        }
    }
}

impl std::ops::Deref for PgTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match &self.0 {
            PgTxOn::Pooled(t) => t,
            PgTxOn::Kept(c) => c,
        }
    }
}

impl std::ops::DerefMut for PgTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.0 {
            PgTxOn::Pooled(t) => t,
            PgTxOn::Kept(c) => c,
        }
    }
}

/// Runs `$body` with `$c` bound to the transaction's connection, once per engine.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// Runs `$body` with `$c` bound to a read connection, once per engine. The connection goes back
/// to the pool only when `$body` ran to its end: one left by an error (`?`) or a cancelled request
/// is closed ([`crate::read_pool`]).
#[macro_export]
macro_rules! on_read {
    ($db:expr, |$c:ident| $body:expr) => {
        match $db {
            $crate::Db::Sqlite { read, .. } => $crate::on_read_conn!(read, |$c| $body),
            $crate::Db::Postgres { read, .. } => $crate::on_read_conn!(read, |$c| $body),
        }
    };
}

/// [`on_read!`] for one engine's [`crate::read_pool::ReadPool`].
#[doc(hidden)]
#[macro_export]
macro_rules! on_read_conn {
    ($read:ident, |$c:ident| $body:expr) => {{
        let mut conn = $read.acquire().await?;
        let out = {
            let $c = &mut *conn;
            $body
        };
        conn.keep();
        out
    }};
}

/// Connection settings a deployment may tune.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { max_connections: 8, acquire_timeout: Duration::from_secs(3) }
    }
}

impl PoolSettings {
    /// What `kapstone serve` uses unless told: on SQLite 8 readers (threads of this process; 8
    /// and 16 measured best, 2 and 4 worse); on PostgreSQL three per core of this machine, from 4
    /// to 16 (each process opens as many again for writes, and all the processes share
    /// PostgreSQL's `max_connections`: docs/operations.md). Each PostgreSQL connection is a server
    /// process, and where PostgreSQL shares the machine more of them than it can run only take
    /// turns on the same cores: on 2 cores, 6 read connections served 5,926–6,053 audited chart
    /// views/s, 16 served 3,907–4,191/s, and 4 slowed the eligibility, floor and session reads by
    /// 12–18 % (docs/BENCHMARKS.md, seventeenth session).
    pub fn default_for(backend: Backend) -> Self {
        let max_connections = match backend {
            Backend::Sqlite => return Self::default(),
            Backend::Postgres => {
                let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
                u32::try_from(cores.saturating_mul(3)).unwrap_or(u32::MAX).clamp(4, 16)
            }
        };
        Self { max_connections, ..Self::default() }
    }
}

impl Db {
    pub async fn connect(url: &DbUrl) -> Result<Self> {
        Self::connect_with(url, PoolSettings::default()).await
    }

    pub async fn connect_with(url: &DbUrl, settings: PoolSettings) -> Result<Self> {
        match url {
            DbUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Refused(format!("cannot create {}: {e}", dir.display())))?;
                }
                // WAL + synchronous=FULL: an acknowledged commit survives power loss.
                let opts = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    // The writer runs each group-commit job that writes more than session events
                    // inside a savepoint (store::writer), so SQLite keeps the pages a job changes in a
                    // sub-journal until the savepoint is released; by default that spills into a
                    // temporary file (a pwrite per page, about a twentieth of the server's CPU under a
                    // vitals load). It is never needed after a crash (the WAL is the durable record),
                    // so it lives in memory.
                    .pragma("temp_store", "memory")
                    .busy_timeout(Duration::from_secs(5));
                let write = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    // No ping when the writer is taken (see the readers below); the one after
                    // release stays, it finds a connection a failed commit left marked.
                    .test_before_acquire(false)
                    // A COMMIT that fails (disk full, I/O error) is rolled back by SQLite itself;
                    // sqlx still counts the transaction as open and would refuse every later BEGIN
                    // on this, the only writer connection. Let the queued rollback run (a ping is
                    // answered after it), then replace the connection if it is still marked: writes
                    // resume by themselves once the fault clears.
                    .after_release(|conn, _| {
                        Box::pin(async move {
                            use sqlx::Connection;
                            // A commit that succeeded has closed the transaction by now (sqlx
                            // counts it closed before it answers): no round trip for a batch
                            // that committed.
                            if !conn.is_in_transaction() {
                                return Ok(true);
                            }
                            Ok(conn.ping().await.is_ok() && !conn.is_in_transaction())
                        })
                    })
                    .connect_with(opts.clone())
                    .await?;
                // No ping when a reader is taken or given back (crate::read_pool): a SQLite
                // connection is an open file that cannot have been hung up on.
                let read = ReadPool::new(opts, settings.max_connections, settings.acquire_timeout, None);
                Ok(Db::Sqlite { write, read })
            }
            DbUrl::Postgres(u) => {
                let opts = PgConnectOptions::from_str(u)?;
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections.max(1))
                    .acquire_timeout(settings.acquire_timeout)
                    // A connection is pinged when taken only if it has been idle for a while (a
                    // round trip to the server that was a third of a small read's). One used
                    // moments ago was working then; one that a server restart closed since fails
                    // its statement, and sqlx's ping after release then drops it.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            use sqlx::Connection;
                            Ok(meta.idle_for < crate::read_pool::PG_PING_AFTER || conn.ping().await.is_ok())
                        })
                    })
                    .connect_lazy_with(opts.clone());
                // Reads on connections of their own, as many again as for writes.
                let read = ReadPool::new(
                    opts,
                    settings.max_connections,
                    settings.acquire_timeout,
                    Some(crate::read_pool::PG_PING_AFTER),
                );
                Ok(Db::Postgres { pool, read })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Applies every pending migration (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Db::Sqlite { write, .. } => sqlx::migrate!("./migrations/sqlite").run(write).await?,
            Db::Postgres { pool: p, .. } => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Migration versions shipped for each engine (they must be the same list).
    pub fn migration_versions(backend: Backend) -> Vec<i64> {
        let m = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        m.iter().map(|m| m.version).collect()
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so a read-then-write cannot fail half-way with SQLITE_BUSY.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite { write, .. } => Tx::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres { pool: p, .. } => Tx::Postgres(PgTx(PgTxOn::Pooled(p.begin().await?))),
        })
    }

    /// A connection of its own for the group-commit writer, kept from one batch to the next
    /// ([`Db::begin_on`]); `None` on SQLite, whose single writer connection the requests' own
    /// transactions share. Pinged before use only after [`crate::read_pool::PG_PING_AFTER`] idle,
    /// like the readers; one that a failed batch left is closed and another opened.
    pub fn writer_connection(&self) -> Option<ReadPool<PgConnection>> {
        match self {
            Db::Sqlite { .. } => None,
            Db::Postgres { read, .. } => Some(ReadPool::new(
                read.options().clone(),
                1,
                Duration::from_secs(30),
                Some(crate::read_pool::PG_PING_AFTER),
            )),
        }
    }

    /// Starts a write transaction on the writer's kept connection ([`Db::writer_connection`]).
    pub async fn begin_on(mut conn: ReadConn<PgConnection>) -> Result<Tx> {
        sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
        Ok(Tx::Postgres(PgTx(PgTxOn::Kept(conn))))
    }

    /// `true` when a trivial query succeeds within the pool's acquire timeout.
    pub async fn is_healthy(&self) -> bool {
        let probe = async {
            Ok::<i32, sqlx::Error>(on_read!(self, |c| sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(c).await?))
        };
        matches!(tokio::time::timeout(Duration::from_secs(3), probe).await, Ok(Ok(1)))
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres { pool, read } => {
                read.close().await;
                pool.close().await;
            }
        }
    }

    /// Number of rows in the tables that hold clinic data (clinics, users, patients, audit).
    /// Used to refuse seeding or restoring over a database that is in use.
    pub async fn is_empty(&self) -> Result<bool> {
        let n: i64 = on_read!(self, |c| {
            sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM clinics) + (SELECT COUNT(*) FROM users)")
                .fetch_one(c)
                .await?
        });
        Ok(n == 0)
    }
}

impl Tx {
    /// Commits. Inside a request that carries an `Idempotency-Key`, the first commit also stores
    /// the key (see [`crate::idempotency`]): the key is stored exactly when the change is.
    pub async fn commit(self) -> Result<()> {
        self.commit_with::<()>(None).await
    }

    /// [`Tx::commit`] for a use case whose result is `value`: inside a request with an
    /// `Idempotency-Key` that declared how it answers a `T` ([`crate::idempotency::answer_with`]),
    /// the answer is stored with the key and the change, in this transaction, so that a retry after
    /// a crash at any later moment gets it.
    pub async fn commit_answering<T: 'static>(self, value: &T) -> Result<()> {
        self.commit_with(Some(value)).await
    }

    async fn commit_with<T: 'static>(mut self, value: Option<&T>) -> Result<()> {
        let claim = crate::idempotency::record_pending(&mut self, value).await?;
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        if let Some(pending) = claim {
            pending.committed();
        }
        Ok(())
    }

    /// Commits without carrying the request's `Idempotency-Key`: for bookkeeping that stands on
    /// its own before the change (a witness's sign-in lock or second-factor step, a failed
    /// attempt's audit event). The key then goes with the change's own commit.
    pub async fn commit_apart(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Serialises writers of one patient's record until commit: a check-then-insert (is this
    /// still the decision in force? may this hold be applied?) then sees the latest state. SQLite
    /// transactions already hold the single write lock (BEGIN IMMEDIATE); PostgreSQL locks the
    /// patient row.
    pub async fn lock_patient(&mut self, patient: kapstone_domain::PatientId) -> Result<()> {
        if let Tx::Postgres(t) = self {
            sqlx::query("SELECT id FROM patients WHERE id = $1 FOR UPDATE")
                .bind(patient.as_uuid())
                .fetch_optional(&mut **t)
                .await?;
        }
        Ok(())
    }
}

/// Runs one fixed statement on `tx` (a savepoint's `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`: the
/// same words on both engines).
pub(crate) async fn statement(tx: &mut Tx, sql: &'static str) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(sql).execute(c).await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_hide_passwords() {
        let u: DbUrl = "postgres://kap:s3cret@127.0.0.1:5432/kapstone".parse().unwrap_or(DbUrl::Sqlite("x".into()));
        assert_eq!(u.backend(), Backend::Postgres);
        let shown = format!("{u:?} {u}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("kap:***@127.0.0.1:5432/kapstone"), "{shown}");
        assert_eq!(u.expose(), "postgres://kap:s3cret@127.0.0.1:5432/kapstone");

        let s: std::result::Result<DbUrl, _> = "sqlite://./kapstone-data/kapstone.db".parse();
        assert_eq!(s, Ok(DbUrl::Sqlite(PathBuf::from("./kapstone-data/kapstone.db"))));
        assert!("mysql://x".parse::<DbUrl>().is_err());
        assert!("sqlite://".parse::<DbUrl>().is_err());
    }

    /// `.cargo/config.toml` builds SQLite with a page cache per connection and no allocation
    /// statistics (each a global mutex the readers' threads queued on).
    #[tokio::test]
    async fn sqlite_is_built_without_its_global_locks() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("kapstone-compile-options-{}", uuid::Uuid::now_v7()));
        let db = Db::connect(&DbUrl::Sqlite(dir.join("k.db"))).await?;
        let options: Vec<String> =
            on_read!(&db, |c| sqlx::query_scalar("SELECT compile_options FROM pragma_compile_options")
                .fetch_all(c)
                .await?);
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
        assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
        // The options the driver sets are still there (the extra flags add to them).
        assert!(options.iter().any(|o| o == "THREADSAFE=1"), "{options:?}");
        Ok(())
    }

    #[test]
    fn both_engines_ship_the_same_migration_versions() {
        let sqlite = Db::migration_versions(Backend::Sqlite);
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, Db::migration_versions(Backend::Postgres));
    }
}
