//! Online backup and restore of the embedded SQLite database.
//! PostgreSQL deployments use pg_dump / pg_restore (see docs/operations.md).

use std::path::Path;

use crate::{Db, DbUrl, Result, StoreError};

/// Writes a consistent copy of a live SQLite database to `out` with `VACUUM INTO`, which reads
/// one snapshot while writers carry on. Refuses to overwrite an existing file.
pub async fn backup_sqlite(db: &Db, out: &Path) -> Result<()> {
    let Db::Sqlite { read, .. } = db else {
        return Err(StoreError::Refused(
            "backup is for SQLite; for PostgreSQL use pg_dump (docs/operations.md)".into(),
        ));
    };
    if out.exists() {
        return Err(StoreError::Refused(format!("{} already exists; choose a new file", out.display())));
    }
    let target = out.to_str().ok_or_else(|| StoreError::Refused("the backup path must be valid UTF-8".into()))?;
    sqlx::query("VACUUM INTO $1").bind(target).execute(&mut *read.acquire().await?).await?;
    Ok(())
}

/// Restores a backup file into `target`, which must not exist yet or be an empty file. The
/// backup is checked with `PRAGMA integrity_check` before it is put in place.
pub async fn restore_sqlite(backup: &Path, target: &DbUrl) -> Result<()> {
    let DbUrl::Sqlite(target_path) = target else {
        return Err(StoreError::Refused(
            "restore is for SQLite; for PostgreSQL use pg_restore (docs/operations.md)".into(),
        ));
    };
    if !backup.is_file() {
        return Err(StoreError::Refused(format!("{} is not a file", backup.display())));
    }
    if target_path.exists() && std::fs::metadata(target_path).map(|m| m.len() > 0).unwrap_or(true) {
        return Err(StoreError::Refused(format!(
            "{} already holds a database; restore only into a new, empty location",
            target_path.display()
        )));
    }
    let source = Db::connect(&DbUrl::Sqlite(backup.to_path_buf())).await?;
    let check: String = match &source {
        Db::Sqlite { read, .. } => {
            sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut *read.acquire().await?).await?
        }
        Db::Postgres { .. } => String::new(),
    };
    if check != "ok" {
        source.close().await;
        return Err(StoreError::Refused(format!("the backup failed its integrity check: {check}")));
    }
    if let Some(dir) = target_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Refused(format!("cannot create {}: {e}", dir.display())))?;
    }
    // VACUUM INTO from the backup writes a fresh, compact copy at the target.
    let target_str =
        target_path.to_str().ok_or_else(|| StoreError::Refused("the target path must be valid UTF-8".into()))?;
    if target_path.exists() {
        std::fs::remove_file(target_path)
            .map_err(|e| StoreError::Refused(format!("cannot replace empty target: {e}")))?;
    }
    if let Db::Sqlite { read, .. } = &source {
        sqlx::query("VACUUM INTO $1").bind(target_str).execute(&mut *read.acquire().await?).await?;
    }
    source.close().await;
    Ok(())
}
