//! The bare engine's limit, measured on the machine and database of the run: one-row INSERTs, each
//! in its own durably committed transaction, into a scratch table. Every Kapstone figure is
//! reported as a ratio to it (issue 9, "the limit in the same run").
//!
//! SQLite: the server's settings (WAL, `synchronous=FULL`) and its single writer connection;
//! PostgreSQL: 4 connections (`fsync` and `synchronous_commit` as the server has them).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use kapstone_store::db::PoolSettings;
use kapstone_store::{Backend, Db, DbUrl, on_tx};

/// Connections of the PostgreSQL measurement (the reference: "PostgreSQL (4 connections)").
pub const PG_CONNECTIONS: u32 = 4;

/// What the bare loop measured.
#[derive(Debug, Clone, Copy)]
pub struct Bare {
    pub commits_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub clients: usize,
    pub connections: u32,
}

impl Bare {
    /// `rate` as a percentage of the bare commit rate.
    pub fn percent(&self, rate: f64) -> f64 {
        if self.commits_per_sec > 0.0 { 100.0 * rate / self.commits_per_sec } else { 0.0 }
    }
}

/// Runs `clients` tasks for `secs` seconds, each committing one-row transactions back to back.
pub async fn measure(url: &DbUrl, clients: usize, secs: u64) -> anyhow::Result<Bare> {
    let connections = match url.backend() {
        // One writer connection, as the server has (readers do not take part).
        Backend::Sqlite => 1,
        Backend::Postgres => PG_CONNECTIONS,
    };
    let settings = PoolSettings { max_connections: connections, acquire_timeout: Duration::from_secs(30) };
    let db = Db::connect_with(url, settings).await.context("bare engine: connect")?;
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |c| {
        sqlx::query("CREATE TABLE IF NOT EXISTS bench_scratch (id BIGINT PRIMARY KEY, note TEXT NOT NULL)")
            .execute(c)
            .await?;
    });
    tx.commit().await?;
    let base = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros())? * 1000;
    let next = Arc::new(AtomicI64::new(base));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (db, next) = (db.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut tx = db.begin().await?;
                on_tx!(&mut tx, |c| {
                    sqlx::query("INSERT INTO bench_scratch (id, note) VALUES ($1, $2)")
                        .bind(next.fetch_add(1, Ordering::Relaxed))
                        .bind("x")
                        .execute(c)
                        .await?;
                });
                tx.commit().await?;
                lat.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |c| {
        sqlx::query("DELETE FROM bench_scratch").execute(c).await?;
    });
    tx.commit().await?;
    db.close().await;
    all.sort_unstable();
    let at = |q: f64| all.get(((all.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
    Ok(Bare {
        commits_per_sec: all.len() as f64 / secs.max(1) as f64,
        p50_us: at(0.5),
        p99_us: at(0.99),
        clients,
        connections,
    })
}
