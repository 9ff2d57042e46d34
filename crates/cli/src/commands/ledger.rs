//! `kapstone ledger verify`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::DbArgs;

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Recompute every location's controlled-substance ledger chain and re-derive each balance
    /// change; exit 0 only when every chain is intact.
    Verify {
        #[command(flatten)]
        db: DbArgs,
    },
}

pub async fn run(cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LedgerCommand::Verify { db } => {
            // Verification only reads: no migration, so it also works on a read-only copy.
            let conn = kapstone_store::Db::connect(&db.database_url).await?;
            let started = std::time::Instant::now();
            let result = kapstone_store::ledger::verify(&conn).await?;
            conn.close().await;
            match result {
                Ok(locations) => {
                    let total: i64 = locations.iter().map(|l| l.1).sum();
                    for (location, n) in &locations {
                        println!("location {location}: {n} entries, chain intact");
                    }
                    println!("{total} ledger entries in {} locations, every chain intact", locations.len());
                    tracing::info!(entries = total, seconds = started.elapsed().as_secs_f64(), "ledger verified");
                    Ok(ExitCode::SUCCESS)
                }
                Err((location, brk)) => {
                    println!("location {location}: chain broken: {brk}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
