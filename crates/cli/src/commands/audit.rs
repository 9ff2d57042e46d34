//! `kapstone audit verify`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::DbArgs;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 0 only when it is intact.
    Verify {
        #[command(flatten)]
        db: DbArgs,
    },
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { db } => {
            // Verification only reads: no migration, so it also works on a read-only copy.
            let conn = kapstone_store::Db::connect(&db.database_url).await?;
            let started = std::time::Instant::now();
            let result = kapstone_store::audit::verify(&conn).await?;
            conn.close().await;
            match result {
                Ok(n) => {
                    println!("{n} events, chain intact");
                    tracing::info!(events = n, seconds = started.elapsed().as_secs_f64(), "audit chain verified");
                    Ok(ExitCode::SUCCESS)
                }
                Err(brk) => {
                    println!("chain broken: {brk}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
