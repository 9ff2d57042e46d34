//! Clinic settings (admins). Every change is a new, audited version.

use kapstone_domain::Role;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_store::audit;
use kapstone_store::clinics::{self, ClinicSettings};

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

pub async fn current(state: &AppState, clinic: kapstone_domain::ClinicId) -> Result<ClinicSettings, AppError> {
    Ok(clinics::current_settings(&state.db, clinic).await?)
}

/// The PCL-5 cut-points the spec names (KAP-SPEC 7.3: 31–33 current guidance, 38 in an older VA page).
pub const PCL5_CUTOFF_RANGE: std::ops::RangeInclusive<u8> = 31..=38;

/// Saves a new settings version: which roles must use a second factor, and the PCL-5 cut-point.
pub async fn save(
    state: &AppState,
    admin: &CurrentUser,
    roles: &[Role],
    pcl5_cutoff: u8,
    consent_validity_months: u8,
) -> Result<i64, AppError> {
    if !PCL5_CUTOFF_RANGE.contains(&pcl5_cutoff) {
        return Err(kapstone_domain::FieldError::new("pcl5_cutoff", "choose a PCL-5 cut-point from 31 to 38").into());
    }
    if !(1..=24).contains(&consent_validity_months) {
        return Err(kapstone_domain::FieldError::new("consent_validity_months", "choose 1 to 24 months").into());
    }
    let roles: Vec<Role> = Role::ALL.into_iter().filter(|r| roles.contains(r)).collect();
    let settings =
        ClinicSettings { version: 0, mfa_required_roles: roles.clone(), pcl5_cutoff, consent_validity_months };
    let mut tx = state.db.begin().await?;
    let version = clinics::save_settings(&mut tx, admin.clinic, &settings, Some(admin.id)).await?;
    let mut e = admin.event(AuditAction::SettingsChanged, "clinic_settings", Outcome::Success);
    e.entity_id = Some(format!("{}/v{version}", admin.clinic));
    let roles_text = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",");
    e.reason = Some(format!(
        "mfa_required_roles={roles_text} pcl5_cutoff={pcl5_cutoff} consent_validity_months={consent_validity_months}"
    ));
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(version)
}
