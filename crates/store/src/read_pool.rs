//! The connections that run reads (`on_read!`), kept without sqlx's pool.
//!
//! sqlx's pool tests every connection it takes back with a ping. A SQLite connection answers a
//! ping from its own thread and a PostgreSQL one from the server: each read statement was two
//! round trips, the statement and the ping, and the second was half the cost of a small read (a
//! chart view, a sign-in check). This pool lends connections and takes them back without one.
//!
//! What the ping was for is kept another way: `on_read!` gives a connection back only when its
//! statements ran to the end ([`ReadConn::keep`]). One whose statement failed (a server restart
//! closed it, its thread died) or whose request was cancelled half-way is closed instead, and a
//! new one is opened on demand. A PostgreSQL connection idle for [`PG_PING_AFTER`] is pinged when
//! taken, so one that a restart closed while it sat idle is replaced before a request meets it.
//! Writes keep sqlx's pool and its transactions (`Db::begin`).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{ConnectOptions, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A PostgreSQL connection idle this long is pinged before it is lent (HikariCP's default
/// `aliveBypassWindowMs`): one used moments ago was working then.
pub const PG_PING_AFTER: Duration = Duration::from_millis(500);

/// Up to `max` read connections to one database.
pub struct ReadPool<C: Connection> {
    inner: Arc<Inner<C>>,
}

impl<C: Connection> Clone for ReadPool<C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

struct Inner<C: Connection> {
    options: C::Options,
    /// One permit per connection that may exist; a permit is held with each connection lent.
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Idle<C>>>,
    acquire_timeout: Duration,
    /// Ping a connection idle at least this long before lending it (`None`: never).
    ping_after: Option<Duration>,
    max: u32,
}

/// A connection waiting in the pool, with when it came back.
struct Idle<C> {
    conn: C,
    since: Instant,
}

impl<C: Connection> fmt::Debug for ReadPool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadPool").field("max", &self.inner.max).field("closed", &self.is_closed()).finish()
    }
}

/// A connection lent by a [`ReadPool`]. Dropped after [`ReadConn::keep`] it goes back to the
/// pool; dropped without, it is closed.
pub struct ReadConn<C: Connection> {
    conn: Option<C>,
    kept: bool,
    inner: Arc<Inner<C>>,
    _permit: OwnedSemaphorePermit,
}

impl<C> ReadPool<C>
where
    C: Connection,
    C::Options: ConnectOptions<Connection = C>,
{
    /// A pool of at most `max` connections (at least one), opened on first use. Waiting longer
    /// than `acquire_timeout` for one is `PoolTimedOut`, as with sqlx's pool.
    pub fn new(options: C::Options, max: u32, acquire_timeout: Duration, ping_after: Option<Duration>) -> Self {
        let max = max.max(1);
        let inner = Inner {
            options,
            permits: Arc::new(Semaphore::new(max as usize)),
            idle: Mutex::new(Vec::new()),
            acquire_timeout,
            ping_after,
            max,
        };
        Self { inner: Arc::new(inner) }
    }

    /// A connection: the one given back last, or a new one while fewer than the limit are open.
    pub async fn acquire(&self) -> Result<ReadConn<C>, sqlx::Error> {
        let permits = Arc::clone(&self.inner.permits);
        let permit = match tokio::time::timeout(self.inner.acquire_timeout, permits.acquire_owned()).await {
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
            Ok(Err(_)) => return Err(sqlx::Error::PoolClosed),
            Ok(Ok(p)) => p,
        };
        let idle = self.inner.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match (idle, self.inner.ping_after) {
            (Some(Idle { mut conn, since }), Some(after)) if since.elapsed() >= after => match conn.ping().await {
                Ok(()) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "an idle read connection stopped answering; opening another");
                    self.inner.options.connect().await?
                }
            },
            (Some(Idle { conn, .. }), _) => conn,
            (None, _) => self.inner.options.connect().await?,
        };
        Ok(ReadConn { conn: Some(conn), kept: false, inner: Arc::clone(&self.inner), _permit: permit })
    }

    /// Refuses new acquisitions and closes the idle connections; lent ones are closed as they
    /// come back.
    pub async fn close(&self) {
        self.inner.permits.close();
        let idle: Vec<Idle<C>> = match self.inner.idle.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => Vec::new(),
        };
        for Idle { conn, .. } in idle {
            // A connection that fails to close cleanly is still closed when dropped.
            let _ = conn.close().await;
        }
    }
}

impl<C: Connection> ReadPool<C> {
    /// How its connections are opened.
    pub fn options(&self) -> &C::Options {
        &self.inner.options
    }

    pub fn is_closed(&self) -> bool {
        self.inner.permits.is_closed()
    }

    /// Connections open now, lent or idle (for tests).
    pub fn size(&self) -> usize {
        let lent = self.inner.max as usize - self.inner.permits.available_permits();
        lent + self.inner.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

impl<C: Connection> ReadConn<C> {
    /// The statements ran to the end: the connection goes back to the pool when dropped.
    pub fn keep(&mut self) {
        self.kept = true;
    }
}

impl<C: Connection> Deref for ReadConn<C> {
    type Target = C;
    fn deref(&self) -> &C {
        // Present from `acquire` until `drop`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!("a lent connection is present until dropped"))
    }
}

impl<C: Connection> DerefMut for ReadConn<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn.as_mut().unwrap_or_else(|| unreachable!("a lent connection is present until dropped"))
    }
}

impl<C: Connection> Drop for ReadConn<C> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // Back to the idle list before the permit is released (fields drop after this), so the
        // next holder of the permit finds it. Not kept, or after `close`: dropping it closes it
        // (SQLite's thread ends, PostgreSQL's socket is shut).
        if self.kept
            && !self.inner.permits.is_closed()
            && let Ok(mut idle) = self.inner.idle.lock()
        {
            idle.push(Idle { conn, since: Instant::now() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

    fn pool(dir: &std::path::Path, max: u32, ping_after: Option<Duration>) -> ReadPool<SqliteConnection> {
        let options = SqliteConnectOptions::new().filename(dir.join("t.db")).create_if_missing(true);
        ReadPool::new(options, max, Duration::from_millis(200), ping_after)
    }

    fn temp_dir() -> std::io::Result<std::path::PathBuf> {
        let dir = std::env::temp_dir().join(format!("kapstone-read-pool-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    #[tokio::test]
    async fn kept_connections_are_reused_and_the_limit_holds() -> Result<(), sqlx::Error> {
        let dir = temp_dir()?;
        let pool = pool(&dir, 2, None);
        let mut a = pool.acquire().await?;
        let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *a).await?;
        assert_eq!(one, 1);
        let mut b = pool.acquire().await?;
        assert_eq!(pool.size(), 2);
        // The limit is two: a third waits, then times out.
        assert!(matches!(pool.acquire().await.err(), Some(sqlx::Error::PoolTimedOut)));
        a.keep();
        b.keep();
        drop(a);
        drop(b);
        // Both are back; taking one again opens nothing new.
        let _c = pool.acquire().await?;
        assert_eq!(pool.size(), 2);
        pool.close().await;
        assert!(matches!(pool.acquire().await.err(), Some(sqlx::Error::PoolClosed)));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn a_connection_not_kept_is_closed_and_replaced() -> Result<(), sqlx::Error> {
        let dir = temp_dir()?;
        let pool = pool(&dir, 1, None);
        let conn = pool.acquire().await?;
        assert_eq!(pool.size(), 1);
        // Its statement failed, or its request was cancelled: not kept.
        drop(conn);
        assert_eq!(pool.size(), 0);
        let mut conn = pool.acquire().await?;
        let two: i64 = sqlx::query_scalar("SELECT 2").fetch_one(&mut *conn).await?;
        assert_eq!(two, 2);
        conn.keep();
        drop(conn);
        assert_eq!(pool.size(), 1);
        pool.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn an_abandoned_read_leaves_a_kept_connection_usable() -> Result<(), sqlx::Error> {
        use futures_util::StreamExt;
        let dir = temp_dir()?;
        // Pinged every time it is taken: the ping answers and the connection is kept.
        let pool = pool(&dir, 1, Some(Duration::ZERO));
        {
            let mut conn = pool.acquire().await?;
            // A long result, dropped after its first row.
            let sql =
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) SELECT i FROM n";
            let mut rows = sqlx::query_scalar::<_, i64>(sql).fetch(&mut *conn);
            assert_eq!(rows.next().await.transpose()?, Some(1));
            drop(rows);
            conn.keep();
        }
        let mut conn = pool.acquire().await?;
        let two: i64 = sqlx::query_scalar("SELECT 2").fetch_one(&mut *conn).await?;
        assert_eq!(two, 2);
        assert_eq!(pool.size(), 1);
        drop(conn);
        pool.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
