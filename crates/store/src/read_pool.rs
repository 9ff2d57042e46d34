//! SQLite's read connections, kept without sqlx's pool.
//!
//! sqlx's pool tests every connection it takes back with a ping, and a SQLite connection answers
//! a ping from its own thread: each read statement was two hand-overs to that thread and back (the
//! statement, then the ping), and the second was half the cost of a small read (a chart view, a
//! sign-in check). A SQLite connection needs no such test: it is an open file that nothing can
//! hang up on, and its thread runs commands one after another, so a read abandoned half-way (its
//! request cancelled) is finished or dropped before the next one starts. This pool hands out
//! connections and takes them back; connections are opened on demand up to the limit. A
//! connection's thread could still die (a bug in the driver): a connection idle since its last
//! check more than [`CHECK_EVERY`] ago is pinged when taken, and replaced if it does not answer,
//! so a dead one is gone within seconds at the cost of one ping per connection per interval.
//! PostgreSQL keeps sqlx's pool: its ping finds connections a server restart closed.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a connection is used without a check that its thread still answers.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// Up to `max` read connections to one SQLite database.
#[derive(Clone)]
pub struct ReadPool {
    inner: Arc<Inner>,
}

struct Inner {
    options: SqliteConnectOptions,
    /// One permit per connection that may exist; a permit is held with each connection lent.
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
    acquire_timeout: Duration,
    check_every: Duration,
    max: u32,
}

/// A connection waiting in the pool, with when it last answered a ping (or was opened).
struct Idle {
    conn: SqliteConnection,
    checked: Instant,
}

impl fmt::Debug for ReadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadPool").field("max", &self.inner.max).field("closed", &self.is_closed()).finish()
    }
}

/// A connection lent by a [`ReadPool`]; it goes back to the pool when dropped.
pub struct ReadConn {
    conn: Option<SqliteConnection>,
    checked: Instant,
    inner: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl ReadPool {
    /// A pool of at most `max` connections (at least one), opened on first use. Waiting longer
    /// than `acquire_timeout` for one is `PoolTimedOut`, as with sqlx's pool.
    pub fn new(options: SqliteConnectOptions, max: u32, acquire_timeout: Duration) -> Self {
        Self::with_check_interval(options, max, acquire_timeout, CHECK_EVERY)
    }

    fn with_check_interval(
        options: SqliteConnectOptions,
        max: u32,
        acquire_timeout: Duration,
        check_every: Duration,
    ) -> Self {
        let max = max.max(1);
        let inner = Inner {
            options,
            permits: Arc::new(Semaphore::new(max as usize)),
            idle: Mutex::new(Vec::new()),
            acquire_timeout,
            check_every,
            max,
        };
        Self { inner: Arc::new(inner) }
    }

    /// A connection: an idle one, or a new one while fewer than the limit are open.
    pub async fn acquire(&self) -> Result<ReadConn, sqlx::Error> {
        let permits = Arc::clone(&self.inner.permits);
        let permit = match tokio::time::timeout(self.inner.acquire_timeout, permits.acquire_owned()).await {
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
            Ok(Err(_)) => return Err(sqlx::Error::PoolClosed),
            Ok(Ok(p)) => p,
        };
        let idle = self.inner.idle.lock().ok().and_then(|mut v| v.pop());
        let (conn, checked) = match idle {
            Some(Idle { conn, checked }) if checked.elapsed() < self.inner.check_every => (conn, checked),
            Some(Idle { mut conn, .. }) => match conn.ping().await {
                Ok(()) => (conn, Instant::now()),
                Err(e) => {
                    tracing::warn!(error = %e, "a SQLite read connection stopped answering; opening another");
                    (self.inner.options.connect().await?, Instant::now())
                }
            },
            None => (self.inner.options.connect().await?, Instant::now()),
        };
        Ok(ReadConn { conn: Some(conn), checked, inner: Arc::clone(&self.inner), _permit: permit })
    }

    /// Refuses new acquisitions and closes the idle connections; lent ones are closed as they
    /// come back.
    pub async fn close(&self) {
        self.inner.permits.close();
        let idle: Vec<Idle> = match self.inner.idle.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => Vec::new(),
        };
        for Idle { conn, .. } in idle {
            // A connection that fails to close cleanly still has its file closed when dropped.
            let _ = conn.close().await;
        }
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

impl Deref for ReadConn {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        // Present from `acquire` until `drop`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!("a lent connection is present until dropped"))
    }
}

impl DerefMut for ReadConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!("a lent connection is present until dropped"))
    }
}

impl Drop for ReadConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // Back to the idle list before the permit is released (fields drop after this), so the
        // next holder of the permit finds it. After `close`, dropping it closes it.
        if !self.inner.permits.is_closed()
            && let Ok(mut idle) = self.inner.idle.lock()
        {
            idle.push(Idle { conn, checked: self.checked });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &std::path::Path) -> SqliteConnectOptions {
        SqliteConnectOptions::new().filename(dir.join("t.db")).create_if_missing(true)
    }

    #[tokio::test]
    async fn connections_are_reused_and_bounded() -> Result<(), sqlx::Error> {
        let dir = std::env::temp_dir().join(format!("kapstone-read-pool-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let pool = ReadPool::new(options(&dir), 2, Duration::from_millis(200));
        let mut a = pool.acquire().await?;
        let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *a).await?;
        assert_eq!(one, 1);
        let b = pool.acquire().await?;
        assert_eq!(pool.size(), 2);
        // The limit is two: a third waits, then times out.
        assert!(matches!(pool.acquire().await.err(), Some(sqlx::Error::PoolTimedOut)));
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
    async fn an_abandoned_read_leaves_the_connection_usable() -> Result<(), sqlx::Error> {
        use futures_util::StreamExt;
        let dir = std::env::temp_dir().join(format!("kapstone-read-pool-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        // Checked every time it is taken: the check answers and the connection is kept.
        let pool = ReadPool::with_check_interval(options(&dir), 1, Duration::from_secs(2), Duration::ZERO);
        {
            let mut conn = pool.acquire().await?;
            // A long result, dropped after its first row (a cancelled request).
            let sql =
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) SELECT i FROM n";
            let mut rows = sqlx::query_scalar::<_, i64>(sql).fetch(&mut *conn);
            assert_eq!(rows.next().await.transpose()?, Some(1));
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
