//! Accounts: staff and patients. Email is unique across the installation (it is the sign-in).

use kapstone_domain::{ClinicId, Email, PatientId, PersonName, Role, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::keyset::{self, Page};
use crate::{Db, DbTs, Result, StoreError, Tx, on_read, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub patient_id: Option<Uuid>,
    pub password_hash: String,
    pub active: bool,
    pub failed_attempts: i32,
    pub locked_until: Option<DbTs>,
    pub totp_secret: Option<String>,
    pub totp_enabled: bool,
    pub totp_last_step: Option<i64>,
    pub created_at: DbTs,
}

impl UserRow {
    pub fn user_id(&self) -> UserId {
        UserId::from_uuid(self.id)
    }
    pub fn clinic(&self) -> ClinicId {
        ClinicId::from_uuid(self.clinic_id)
    }
    pub fn patient(&self) -> Option<PatientId> {
        self.patient_id.map(PatientId::from_uuid)
    }
    /// The stored role. The CHECK constraint admits only known roles.
    pub fn role(&self) -> Result<Role> {
        self.role.parse().map_err(|_| StoreError::Corrupt(format!("role of user {}", self.id)))
    }
}

/// A [`UserRow`]'s columns, of `users u`.
pub(crate) const COLUMNS: &str = "u.id, u.clinic_id, u.email, u.display_name, u.role, u.patient_id, u.password_hash, \
     u.active, u.failed_attempts, u.locked_until, u.totp_secret, u.totp_enabled, u.totp_last_step, u.created_at";

pub struct NewUser<'a> {
    pub clinic: ClinicId,
    pub email: &'a Email,
    pub display_name: &'a PersonName,
    pub role: Role,
    pub patient: Option<PatientId>,
    pub password_hash: &'a str,
}

pub async fn insert(tx: &mut Tx, u: &NewUser<'_>) -> Result<UserId> {
    let id = UserId::new();
    let now = DbTs(UtcTs::now());
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO users (id, clinic_id, email, display_name, role, patient_id, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(id.as_uuid())
        .bind(u.clinic.as_uuid())
        .bind(u.email.as_str())
        .bind(u.display_name.as_str())
        .bind(u.role.as_str())
        .bind(u.patient.map(|p| p.as_uuid()))
        .bind(u.password_hash)
        .bind(now)
        .execute(c)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "email"))?;
    });
    Ok(id)
}

pub async fn find_by_email(db: &Db, email: &Email) -> Result<Option<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users u WHERE email = $1");
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(email.as_str())
        .fetch_optional(c)
        .await?))
}

/// Reads the failed-attempt count while taking the row's write lock (a no-op UPDATE locks the
/// row on PostgreSQL; SQLite already holds the database write lock), so two concurrent failures
/// cannot both count from the same number.
pub async fn lock_for_sign_in(tx: &mut Tx, id: UserId) -> Result<(i32, Option<DbTs>)> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(
            "UPDATE users SET failed_attempts = failed_attempts WHERE id = $1 RETURNING failed_attempts, locked_until",
        )
        .bind(id.as_uuid())
        .fetch_one(c)
        .await?
    }))
}

pub async fn get(db: &Db, id: UserId) -> Result<Option<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users u WHERE id = $1");
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(id.as_uuid()).fetch_optional(c).await?))
}

pub async fn get_in(tx: &mut Tx, id: UserId) -> Result<Option<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users u WHERE id = $1");
    Ok(on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(id.as_uuid()).fetch_optional(c).await?))
}

pub async fn list(db: &Db, clinic: ClinicId) -> Result<Vec<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users u WHERE clinic_id = $1 ORDER BY role, display_name, email");
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).fetch_all(c).await?))
}

/// A page of the clinic's accounts in the order they were made, after `p.after`: the portal
/// account of `p.filter.patient` when set, made in the window `[from, to)` when set (the API's list).
pub async fn page(db: &Db, p: &Page<'_>) -> Result<Vec<UserRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM users u WHERE clinic_id = $1 AND ($2 IS NULL OR patient_id = $2) AND ($3 IS NULL OR created_at >= $3) \
         AND ($4 IS NULL OR created_at < $4) AND created_at >= $5 AND (created_at > $5 OR id > $6) \
         ORDER BY created_at, id LIMIT $7"
    );
    keyset::fetch(db, sql, p, None).await
}

/// Records a failed sign-in (and, when the policy says so, the lock).
pub async fn record_failed_sign_in(
    tx: &mut Tx,
    id: UserId,
    failed_attempts: u32,
    locked_until: Option<UtcTs>,
) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE users SET failed_attempts = $2, locked_until = COALESCE($3, locked_until) WHERE id = $1")
            .bind(id.as_uuid())
            .bind(i32::try_from(failed_attempts).unwrap_or(i32::MAX))
            .bind(locked_until.map(DbTs))
            .execute(c)
            .await?;
    });
    Ok(())
}

pub async fn record_successful_sign_in(tx: &mut Tx, id: UserId) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE id = $1")
            .bind(id.as_uuid())
            .execute(c)
            .await?;
    });
    Ok(())
}

pub async fn update_profile(tx: &mut Tx, id: UserId, name: &PersonName, role: Role, active: bool) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE users SET display_name = $2, role = $3, active = $4, updated_at = $5 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(name.as_str())
            .bind(role.as_str())
            .bind(active)
            .bind(DbTs(UtcTs::now()))
            .execute(c)
            .await?;
    });
    Ok(())
}

pub async fn set_password_hash(tx: &mut Tx, id: UserId, hash: &str) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(hash)
            .bind(DbTs(UtcTs::now()))
            .execute(c)
            .await?;
    });
    Ok(())
}

/// Stores a TOTP secret. `enabled = false` while the user has not yet confirmed a code.
pub async fn set_totp(tx: &mut Tx, id: UserId, secret: Option<&str>, enabled: bool) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE users SET totp_secret = $2, totp_enabled = $3, totp_last_step = NULL, updated_at = $4 WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(secret)
        .bind(enabled)
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?;
    });
    Ok(())
}

/// Records the time step of an accepted TOTP code so the same code cannot be replayed.
/// Returns false when this step (or a later one) was already used.
pub async fn claim_totp_step(tx: &mut Tx, id: UserId, step: i64) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(id.as_uuid())
        .bind(step)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

pub async fn replace_recovery_codes(tx: &mut Tx, id: UserId, code_hashes: &[String]) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(id.as_uuid()).execute(&mut *c).await?;
        for h in code_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(id.as_uuid())
                .bind(h)
                .execute(&mut *c)
                .await?;
        }
    });
    Ok(())
}

/// Marks an unused recovery code as used; false when there is no such unused code.
pub async fn use_recovery_code(tx: &mut Tx, id: UserId, code_hash: &str) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query("UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL")
            .bind(id.as_uuid())
            .bind(code_hash)
            .bind(DbTs(UtcTs::now()))
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(n == 1)
}

pub async fn unused_recovery_codes(db: &Db, id: UserId) -> Result<i64> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(id.as_uuid())
            .fetch_one(c)
            .await?
    }))
}

pub async fn exists_for_patient(tx: &mut Tx, patient: PatientId) -> Result<bool> {
    let n: i64 = on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE patient_id = $1")
            .bind(patient.as_uuid())
            .fetch_one(c)
            .await?
    });
    Ok(n > 0)
}

/// Whether a patient already has a portal account (outside a transaction).
pub async fn patient_has_account(db: &Db, patient: PatientId) -> Result<bool> {
    let n: i64 = on_read!(db, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE patient_id = $1")
            .bind(patient.as_uuid())
            .fetch_one(c)
            .await?
    });
    Ok(n > 0)
}

/// The email of the patient's active portal account, if any.
pub async fn patient_account_email(db: &Db, patient: PatientId) -> Result<Option<String>> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar("SELECT email FROM users WHERE patient_id = $1 AND active ORDER BY created_at LIMIT 1")
            .bind(patient.as_uuid())
            .fetch_optional(c)
            .await?
    }))
}
