//! One module per subcommand.

pub mod audit;
pub mod backup;
pub mod demo;
pub mod ledger;
pub mod serve;
pub mod transfer;
pub mod user;

use std::process::ExitCode;

use kapstone_store::Db;

use crate::DbArgs;

/// Connects and brings the schema up to date.
pub async fn open(db: &DbArgs) -> anyhow::Result<Db> {
    let conn = Db::connect(&db.database_url).await?;
    conn.migrate().await?;
    Ok(conn)
}

pub async fn migrate(db: DbArgs) -> anyhow::Result<ExitCode> {
    let conn = open(&db).await?;
    conn.close().await;
    println!("migrations applied to {}", db.database_url);
    Ok(ExitCode::SUCCESS)
}
