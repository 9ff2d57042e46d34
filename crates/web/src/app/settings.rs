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

/// Ranges an admin may choose for the eligibility CONFIG-DEFAULTs. They bracket the spec's
/// defaults (180/100, 8 mg, 6 weeks) to catch typing errors; they are not clinical advice.
pub const BP_SYSTOLIC_RANGE: std::ops::RangeInclusive<u16> = 140..=220;
pub const BP_DIASTOLIC_RANGE: std::ops::RangeInclusive<u16> = 90..=130;
pub const BENZODIAZEPINE_RANGE: std::ops::RangeInclusive<u16> = 1..=100;
pub const TRD_WEEKS_RANGE: std::ops::RangeInclusive<u8> = 2..=16;

fn within<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    v: T,
    r: &std::ops::RangeInclusive<T>,
) -> Result<(), AppError> {
    if r.contains(&v) {
        Ok(())
    } else {
        Err(kapstone_domain::FieldError::new(field, format!("choose {} to {}", r.start(), r.end())).into())
    }
}

/// Saves a new settings version (the `version` field of `settings` is ignored).
pub async fn save(state: &AppState, admin: &CurrentUser, settings: &ClinicSettings) -> Result<i64, AppError> {
    if !PCL5_CUTOFF_RANGE.contains(&settings.pcl5_cutoff) {
        return Err(kapstone_domain::FieldError::new("pcl5_cutoff", "choose a PCL-5 cut-point from 31 to 38").into());
    }
    within("consent_validity_months", settings.consent_validity_months, &(1..=24))?;
    let el = &settings.eligibility;
    within("bp_exclude_systolic", el.bp_exclude_systolic, &BP_SYSTOLIC_RANGE)?;
    within("bp_exclude_diastolic", el.bp_exclude_diastolic, &BP_DIASTOLIC_RANGE)?;
    within("benzodiazepine_review_above_mg", el.benzodiazepine_review_above_mg, &BENZODIAZEPINE_RANGE)?;
    within("trd_min_adequate_weeks", el.trd_min_adequate_weeks, &TRD_WEEKS_RANGE)?;
    settings
        .reminders
        .check()
        .map_err(|m| AppError::from(kapstone_domain::FieldError::new("reminder_first_hours", m)))?;
    settings.outcomes.check().map_err(|e| AppError::from(kapstone_domain::FieldError::new(e.field, e.message)))?;
    settings.course_review.check().map_err(|e| AppError::from(kapstone_domain::FieldError::new(e.field, e.message)))?;
    let roles: Vec<Role> = Role::ALL.into_iter().filter(|r| settings.mfa_required_roles.contains(r)).collect();
    let settings = ClinicSettings { version: 0, mfa_required_roles: roles.clone(), ..settings.clone() };
    let mut tx = state.db.begin().await?;
    let version = clinics::save_settings(&mut tx, admin.clinic, &settings, Some(admin.id)).await?;
    let mut e = admin.event(AuditAction::SettingsChanged, "clinic_settings", Outcome::Success);
    e.entity_id = Some(format!("{}/v{version}", admin.clinic));
    let roles_text = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",");
    e.reason = Some(format!(
        "mfa_required_roles={roles_text} pcl5_cutoff={} consent_validity_months={} bp_exclude={}/{} \
         benzodiazepine_review_above_mg={} trd_min_adequate_weeks={} pregnancy={:?} current_mania={:?} \
         outcomes={:?} course_review={:?}",
        settings.pcl5_cutoff,
        settings.consent_validity_months,
        el.bp_exclude_systolic,
        el.bp_exclude_diastolic,
        el.benzodiazepine_review_above_mg,
        el.trd_min_adequate_weeks,
        el.pregnancy_severity,
        el.current_mania_severity,
        settings.outcomes,
        settings.course_review,
    ));
    audit::append(&mut tx, &e).await?;
    tx.commit_answering(&version).await?;
    Ok(version)
}
