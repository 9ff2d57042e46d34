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
    /// PCL-5 total at or above which the cut-point method is positive (KAP-SPEC 7.3).
    pub pcl5_cutoff: u8,
    /// How long a signed consent holds.
    pub consent_validity_months: u8,
    /// CONFIG-DEFAULT thresholds of the eligibility rules.
    pub eligibility: kapstone_domain::eligibility::EligibilitySettings,
    /// When appointment reminders go out.
    pub reminders: kapstone_domain::reminders::ReminderSettings,
    /// The measurement cadence (KAP-SPEC 7.10, CONFIG-DEFAULT).
    pub measurement: kapstone_domain::measurement::MeasurementSettings,
    /// Outcome definitions: baseline rule, response and remission thresholds (KAP-SPEC 7.1 CONFIG).
    pub outcomes: kapstone_domain::outcomes::OutcomeSettings,
    /// How often a course that goes on is reviewed again (KAP-SPEC 2.1 stage 9 CONFIG-DEFAULT).
    pub course_review: kapstone_domain::course::ReviewSettings,
}

impl Default for ClinicSettings {
    fn default() -> Self {
        Self {
            version: 0,
            mfa_required_roles: Vec::new(),
            pcl5_cutoff: kapstone_domain::instruments::pcl5::DEFAULT_CUTOFF,
            consent_validity_months: 12,
            eligibility: Default::default(),
            reminders: Default::default(),
            measurement: Default::default(),
            outcomes: Default::default(),
            course_review: Default::default(),
        }
    }
}

impl ClinicSettings {
    pub fn requires_mfa(&self, role: Role) -> bool {
        self.mfa_required_roles.contains(&role)
    }
}

fn roles_to_text(roles: &[Role]) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

pub(crate) fn roles_from_text(s: &str) -> Vec<Role> {
    s.split(',').filter_map(|r| r.parse().ok()).collect()
}

pub async fn current_settings(db: &Db, clinic: ClinicId) -> Result<ClinicSettings> {
    /// version, MFA roles, PCL-5 cut-point, consent months, eligibility, reminders, outcomes,
    /// course-review and measurement JSON.
    type SettingsRow =
        (i64, String, i32, i32, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
    let row: Option<SettingsRow> = on_read!(db, |c| {
        sqlx::query_as(
            "SELECT version, mfa_required_roles, pcl5_cutoff, consent_validity_months, eligibility, reminders, outcomes, course_review, measurement FROM clinic_settings \
             WHERE clinic_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(clinic.as_uuid())
        .fetch_optional(c)
        .await?
    });
    Ok(match row {
        Some((version, roles, cutoff, months, eligibility, reminders, outcomes, course_review, measurement)) => {
            ClinicSettings {
                version,
                mfa_required_roles: roles_from_text(&roles),
                pcl5_cutoff: u8::try_from(cutoff).map_err(|_| crate::StoreError::Corrupt("pcl5_cutoff".into()))?,
                consent_validity_months: u8::try_from(months)
                    .map_err(|_| crate::StoreError::Corrupt("consent_validity_months".into()))?,
                eligibility: match eligibility {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|_| crate::StoreError::Corrupt("clinic_settings.eligibility".into()))?,
                    None => Default::default(),
                },
                reminders: match reminders {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|_| crate::StoreError::Corrupt("clinic_settings.reminders".into()))?,
                    None => Default::default(),
                },
                measurement: match measurement {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|_| crate::StoreError::Corrupt("clinic_settings.measurement".into()))?,
                    None => Default::default(),
                },
                outcomes: match outcomes {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|_| crate::StoreError::Corrupt("clinic_settings.outcomes".into()))?,
                    None => Default::default(),
                },
                course_review: match course_review {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|_| crate::StoreError::Corrupt("clinic_settings.course_review".into()))?,
                    None => Default::default(),
                },
            }
        }
        None => ClinicSettings::default(),
    })
}

/// Saves a new version of the settings; returns its version number.
pub async fn save_settings(
    tx: &mut Tx,
    clinic: ClinicId,
    settings: &ClinicSettings,
    by: Option<UserId>,
) -> Result<i64> {
    let roles = roles_to_text(&settings.mfa_required_roles);
    let cutoff = i32::from(settings.pcl5_cutoff);
    let months = i32::from(settings.consent_validity_months);
    let eligibility = serde_json::to_string(&settings.eligibility)
        .map_err(|_| crate::StoreError::Corrupt("clinic_settings.eligibility".into()))?;
    let reminders = serde_json::to_string(&settings.reminders)
        .map_err(|_| crate::StoreError::Corrupt("clinic_settings.reminders".into()))?;
    let measurement = serde_json::to_string(&settings.measurement)
        .map_err(|_| crate::StoreError::Corrupt("clinic_settings.measurement".into()))?;
    let outcomes = serde_json::to_string(&settings.outcomes)
        .map_err(|_| crate::StoreError::Corrupt("clinic_settings.outcomes".into()))?;
    let course_review = serde_json::to_string(&settings.course_review)
        .map_err(|_| crate::StoreError::Corrupt("clinic_settings.course_review".into()))?;
    Ok(on_tx!(tx, |c| {
        let prev: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM clinic_settings WHERE clinic_id = $1")
            .bind(clinic.as_uuid())
            .fetch_one(&mut *c)
            .await?;
        let version = prev.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO clinic_settings (clinic_id, version, mfa_required_roles, created_at, created_by, pcl5_cutoff, \
             consent_validity_months, eligibility, reminders, outcomes, course_review, measurement) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(clinic.as_uuid())
        .bind(version)
        .bind(&roles)
        .bind(DbTs(UtcTs::now()))
        .bind(by.map(|u| u.as_uuid()))
        .bind(cutoff)
        .bind(months)
        .bind(&eligibility)
        .bind(&reminders)
        .bind(&outcomes)
        .bind(&course_review)
        .bind(&measurement)
        .execute(&mut *c)
        .await?;
        version
    }))
}

/// The clinic's IANA time zone (its "today" for age rules and dates).
pub async fn time_zone(db: &Db, clinic: ClinicId) -> Result<Option<String>> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar("SELECT time_zone FROM clinics WHERE id = $1")
            .bind(clinic.as_uuid())
            .fetch_optional(c)
            .await?
    }))
}
