//! `kapstone backup` and `kapstone restore` (SQLite; PostgreSQL uses pg_dump/pg_restore).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kapstone_store::DbUrl;

use crate::DbArgs;

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The backup file to write (must not exist).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file made by `kapstone backup`.
    file: PathBuf,
    /// Where to restore: a SQLite URL whose file does not exist yet (or is empty).
    #[arg(long, env = "KAPSTONE_DATABASE_URL")]
    database_url: DbUrl,
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let db = kapstone_store::Db::connect(&args.db.database_url).await?;
    kapstone_store::backup::backup_sqlite(&db, &args.out).await?;
    db.close().await;
    println!("backup written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    kapstone_store::backup::restore_sqlite(&args.file, &args.database_url).await?;
    let db = kapstone_store::Db::connect(&args.database_url).await?;
    let verified = kapstone_store::audit::verify(&db).await?;
    db.close().await;
    match verified {
        Ok(n) => {
            println!("restored {} into {}; audit chain intact ({n} events)", args.file.display(), args.database_url);
            Ok(ExitCode::SUCCESS)
        }
        Err(b) => {
            println!("restored, but the audit chain is broken: {b}");
            Ok(ExitCode::FAILURE)
        }
    }
}
