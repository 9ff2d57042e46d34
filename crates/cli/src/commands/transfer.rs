//! `kapstone export` and `kapstone import`: the whole clinic as NDJSON with a manifest
//! (docs/export-format.md), between any two databases of either engine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use kapstone_store::{Db, transfer};

use crate::DbArgs;

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The directory to write (new or empty); it will hold every patient's record: keep it safe.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct ImportArgs {
    /// A directory written by `kapstone export`.
    dir: PathBuf,
    /// The target: an empty database (it is migrated first).
    #[command(flatten)]
    db: DbArgs,
}

pub async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    // No migration: an export reads; a database behind this version is refused with a hint.
    let db = Db::connect(&args.db.database_url).await?;
    let started = Instant::now();
    let result = transfer::export(&db, &args.out, &mut |t| println!("{:<30} {:>10} rows", t.name, t.rows)).await;
    db.close().await;
    let manifest = result?;
    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "exported {rows} rows of {} tables to {} in {secs:.1} s ({:.0} rows/s)",
        manifest.tables.len(),
        args.out.display(),
        rows as f64 / secs.max(1e-9)
    );
    tracing::info!(rows, seconds = secs, "export written");
    Ok(ExitCode::SUCCESS)
}

pub async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let db = super::open(&args.db).await?;
    let started = Instant::now();
    let result = transfer::import(&db, &args.dir, &mut |t, n| println!("{t:<30} {n:>10} rows")).await;
    let imported = match result {
        Ok(i) => i,
        Err(e) => {
            db.close().await;
            return Err(e.into());
        }
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {} rows of {} tables into {} in {secs:.1} s ({:.0} rows/s)",
        imported.rows,
        imported.tables.len(),
        args.db.database_url,
        imported.rows as f64 / secs.max(1e-9)
    );
    // The chains were copied byte for byte: check them at once.
    let audit = kapstone_store::audit::verify(&db).await?;
    let ledger = kapstone_store::ledger::verify(&db).await?;
    db.close().await;
    let mut ok = true;
    match audit {
        Ok(n) => println!("audit chain intact ({n} events)"),
        Err(b) => {
            ok = false;
            println!("audit chain broken: {b}");
        }
    }
    match ledger {
        Ok(locations) => {
            println!(
                "ledger intact ({} entries in {} locations)",
                locations.iter().map(|l| l.1).sum::<i64>(),
                locations.len()
            )
        }
        Err((location, b)) => {
            ok = false;
            println!("ledger of location {location} broken: {b}");
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
