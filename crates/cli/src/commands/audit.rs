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
        /// Stretches of the chain read and hashed at once (default: three per core; fewer
        /// leaves cores to a server running beside it).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
        parallel: Option<u16>,
    },
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { db, parallel } => {
            // Verification only reads: no migration, so it also works on a read-only copy.
            let conn = kapstone_store::Db::connect(&db.database_url).await?;
            let started = std::time::Instant::now();
            let result = match parallel {
                Some(n) => {
                    kapstone_store::audit::verify_in_stretches(&conn, kapstone_store::audit::VERIFY_STRETCH, n.into())
                        .await?
                }
                None => kapstone_store::audit::verify(&conn).await?,
            };
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
