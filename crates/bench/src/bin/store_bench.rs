//! `kapstone-store-bench`: what the audit log costs, measured against the bare engine on the same
//! machine and database.
//!
//! Three loops, each for `--seconds` with `--clients` concurrent tasks:
//! 1. `bare_commit`  — one-row INSERT + durable COMMIT into a scratch table: the engine's limit
//!    (SQLite: the one writer connection; PostgreSQL: 4 connections).
//! 2. `read_only`    — the patient read of a chart view, no transaction, nothing written.
//! 3. `audited_read` — read the patient, then append the audit event (hash chain) in its own
//!    transaction, committed durably: one flush per view.
//! 4. `batched_audit` — what the server does for a chart view: read the patient, then hand the
//!    event to the group-commit writer, which group-commits concurrent events; the view waits for
//!    the commit that holds its event.
//!
//! Run it against a database made by `kapstone demo --scale N` (it needs patients), never one in use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
use kapstone_domain::{ClinicId, PatientId, Role, UserId};
use kapstone_store::{Db, DbUrl, audit, on_read, patients};

#[path = "../bare.rs"]
mod bare;

#[derive(Parser)]
#[command(name = "kapstone-store-bench", about = "Audit-log cost against the bare engine")]
struct Args {
    #[arg(long, env = "KAPSTONE_DATABASE_URL")]
    database_url: DbUrl,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent tasks (SQLite still has one writer).
    #[arg(long, default_value_t = 4)]
    clients: usize,
}

struct Stats {
    ops: usize,
    p50_us: u128,
    p99_us: u128,
}

fn stats(mut lat: Vec<u128>) -> Stats {
    lat.sort_unstable();
    let at = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
    Stats { ops: lat.len(), p50_us: at(0.5), p99_us: at(0.99) }
}

async fn run_loop<F, Fut>(clients: usize, seconds: u64, op: F) -> anyhow::Result<Stats>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c;
            while Instant::now() < deadline {
                let t = Instant::now();
                op(i).await?;
                lat.push(t.elapsed().as_micros());
                i += clients;
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(stats(all))
}

/// Reads one patient as a chart view does and returns the audit event that view writes.
async fn chart_read(db: &Db, (id, clinic): (uuid::Uuid, uuid::Uuid), actor: UserId) -> anyhow::Result<NewAuditEvent> {
    let (pid, cid) = (PatientId::from_uuid(id), ClinicId::from_uuid(clinic));
    let row = patients::get(db, cid, pid).await?;
    let mut e = NewAuditEvent::new(AuditAction::PatientRead, "patient", Outcome::Success);
    e.clinic_id = Some(cid);
    e.actor_user_id = Some(actor);
    e.actor_role = Some(Role::Nurse);
    e.entity_id = Some(pid.to_string());
    e.patient_id = row.map(|r| r.patient_id());
    e.reason = Some("store benchmark".into());
    Ok(e)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = Db::connect(&args.database_url).await.context("connect")?;
    db.migrate().await?;
    let ids: Vec<(uuid::Uuid, uuid::Uuid)> = on_read!(&db, |c| {
        sqlx::query_as("SELECT id, clinic_id FROM patients ORDER BY id LIMIT 5000").fetch_all(c).await?
    });
    anyhow::ensure!(!ids.is_empty(), "no patients: run `kapstone demo --scale N` on this database first");
    let ids = Arc::new(ids);

    // The bare engine as `kapstone-bench --bare-database-url` measures it (SQLite: one writer;
    // PostgreSQL: 4 connections).
    let b = bare::measure(&args.database_url, args.clients, args.seconds).await?;
    let bare_rate = b.commits_per_sec;
    let bare = Stats {
        ops: (bare_rate * args.seconds as f64).round() as usize,
        p50_us: u128::from(b.p50_us),
        p99_us: u128::from(b.p99_us),
    };

    let (d, p) = (db.clone(), ids.clone());
    let read_only = run_loop(args.clients, args.seconds, move |i| {
        let (d, p) = (d.clone(), p.clone());
        async move {
            let (id, _) = p[i % p.len()];
            let _row: Option<(String,)> = on_read!(&d, |c| {
                sqlx::query_as("SELECT mrn FROM patients WHERE id = $1").bind(id).fetch_optional(c).await?
            });
            Ok(())
        }
    })
    .await?;

    let actor = UserId::new();
    let (d, p) = (db.clone(), ids.clone());
    let audited = run_loop(args.clients, args.seconds, move |i| {
        let (d, p) = (d.clone(), p.clone());
        async move {
            let e = chart_read(&d, p[i % p.len()], actor).await?;
            let mut tx = d.begin().await?;
            audit::append(&mut tx, &e).await?;
            tx.commit().await?;
            Ok(())
        }
    })
    .await?;

    let batcher = kapstone_store::writer::Writer::spawn(db.clone());
    let (d, p) = (db.clone(), ids.clone());
    let batched = run_loop(args.clients, args.seconds, move |i| {
        let (d, p, batcher) = (d.clone(), p.clone(), batcher.clone());
        async move {
            let e = chart_read(&d, p[i % p.len()], actor).await?;
            batcher.record(e).await?;
            Ok(())
        }
    })
    .await?;

    let secs = args.seconds as f64;
    println!(
        "backend: {:?}, clients: {}, seconds per loop: {}; bare engine on {} connection(s), {} tasks: {:.0} commits/s ({:.0} %)",
        db.backend(),
        args.clients,
        args.seconds,
        b.connections,
        b.clients,
        b.commits_per_sec,
        b.percent(b.commits_per_sec)
    );
    println!("{:<14} {:>10} {:>10} {:>10} {:>12}", "loop", "ops/s", "p50 ms", "p99 ms", "vs bare");
    for (name, s) in
        [("bare_commit", &bare), ("read_only", &read_only), ("audited_read", &audited), ("batched_audit", &batched)]
    {
        let rate = s.ops as f64 / secs;
        println!(
            "{name:<14} {rate:>10.0} {:>10.2} {:>10.2} {:>11.0}%",
            s.p50_us as f64 / 1000.0,
            s.p99_us as f64 / 1000.0,
            100.0 * rate / bare_rate
        );
    }
    db.close().await;
    Ok(())
}
