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

/// Sets which roles must use a second factor. Returns the new settings version.
pub async fn set_mfa_required_roles(state: &AppState, admin: &CurrentUser, roles: &[Role]) -> Result<i64, AppError> {
    let mut roles: Vec<Role> = Role::ALL.into_iter().filter(|r| roles.contains(r)).collect();
    roles.dedup();
    let mut tx = state.db.begin().await?;
    let version = clinics::save_settings(&mut tx, admin.clinic, &roles, Some(admin.id)).await?;
    let mut e = admin.event(AuditAction::SettingsChanged, "clinic_settings", Outcome::Success);
    e.entity_id = Some(format!("{}/v{version}", admin.clinic));
    e.reason = Some(format!("mfa_required_roles={}", roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")));
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(version)
}
