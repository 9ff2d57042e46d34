//! Clinics (tenants) and their versioned settings.

use kapstone_domain::{ClinicId, Role, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct ClinicRow {
    pub id: Uuid,
    pub name: String,
    pub time_zone: String,
}

impl ClinicRow {
    pub fn clinic_id(&self) -> ClinicId {
        ClinicId::from_uuid(self.id)
    }
}

pub async fn insert(tx: &mut Tx, id: ClinicId, name: &str, time_zone: &str) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("INSERT INTO clinics (id, name, time_zone, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id.as_uuid())
            .bind(name)
            .bind(time_zone)
            .bind(DbTs(UtcTs::now()))
            .execute(c)
            .await?;
    });
    Ok(())
}

pub async fn get(db: &Db, id: ClinicId) -> Result<Option<ClinicRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as("SELECT id, name, time_zone FROM clinics WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(c)
            .await?
    }))
}

pub async fn list(db: &Db) -> Result<Vec<ClinicRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as("SELECT id, name, time_zone FROM clinics ORDER BY created_at, id").fetch_all(c).await?
    }))
}

/// The clinic settings in force, and their version (decisions record the version they used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicSettings {
    pub version: i64,
    /// Roles that must use a second factor to sign in.
    pub mfa_required_roles: Vec<Role>,
}

impl ClinicSettings {
    pub fn requires_mfa(&self, role: Role) -> bool {
        self.mfa_required_roles.contains(&role)
    }
}

fn roles_to_text(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

fn roles_from_text(s: &str) -> Vec<Role> {
    s.split(',').filter_map(|r| r.parse().ok()).collect()
}

pub async fn current_settings(db: &Db, clinic: ClinicId) -> Result<ClinicSettings> {
    let row: Option<(i64, String)> = on_read!(db, |c| {
        sqlx::query_as(
            "SELECT version, mfa_required_roles FROM clinic_settings WHERE clinic_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(clinic.as_uuid())
        .fetch_optional(c)
        .await?
    });
    Ok(match row {
        Some((version, roles)) => ClinicSettings { version, mfa_required_roles: roles_from_text(&roles) },
        None => ClinicSettings { version: 0, mfa_required_roles: Vec::new() },
    })
}

/// Saves a new version of the settings; returns its version number.
pub async fn save_settings(
    tx: &mut Tx,
    clinic: ClinicId,
    mfa_required_roles: &[Role],
    by: Option<UserId>,
) -> Result<i64> {
    let roles = roles_to_text(mfa_required_roles);
    Ok(on_tx!(tx, |c| {
        let prev: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM clinic_settings WHERE clinic_id = $1")
            .bind(clinic.as_uuid())
            .fetch_one(&mut *c)
            .await?;
        let version = prev.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO clinic_settings (clinic_id, version, mfa_required_roles, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(clinic.as_uuid())
        .bind(version)
        .bind(roles)
        .bind(DbTs(UtcTs::now()))
        .bind(by.map(|u| u.as_uuid()))
        .execute(&mut *c)
        .await?;
        version
    }))
}
