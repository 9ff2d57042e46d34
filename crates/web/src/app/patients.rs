//! Reading patient records. Every read is audited, and the answer waits until its audit event
//! is committed, so there is no way to see a chart without leaving a durable trace.

use kapstone_domain::PatientId;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_store::audit;
use kapstone_store::patients::{self, PatientRow};

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// A page of the clinic's patients (staff). The listing itself is audited, without ids.
pub async fn list(state: &AppState, staff: &CurrentUser, limit: i64, offset: i64) -> Result<Vec<PatientRow>, AppError> {
    let limit = limit.clamp(1, 500);
    let offset = offset.max(0);
    let rows = patients::list(&state.db, staff.clinic, limit, offset).await?;
    let mut e = staff.event(AuditAction::PatientListed, "patient", Outcome::Success);
    e.reason = Some(format!("{} rows from offset {offset}", rows.len()));
    state.read_audit.record(e).await?;
    Ok(rows)
}

/// One patient's record for a staff member of the same clinic.
pub async fn read(state: &AppState, staff: &CurrentUser, id: PatientId) -> Result<PatientRow, AppError> {
    let row = patients::get(&state.db, staff.clinic, id).await?;
    let outcome = if row.is_some() { Outcome::Success } else { Outcome::Failure };
    let mut e = staff.event(AuditAction::PatientRead, "patient", outcome);
    e.entity_id = Some(id.to_string());
    e.patient_id = row.as_ref().map(PatientRow::patient_id);
    // Answered only once the audit event is committed (group commit with other reads).
    state.read_audit.record(e).await?;
    row.ok_or(AppError::NotFound)
}

/// The portal's view: a patient account reads only the record it is linked to. The id comes from
/// the session, never from the request, so there is nothing to tamper with.
pub async fn read_own(state: &AppState, me: &CurrentUser) -> Result<PatientRow, AppError> {
    let Some(id) = me.patient else { return Err(AppError::Forbidden) };
    read(state, me, id).await
}

/// "Who viewed my record": staff reads of this patient's data, newest first.
pub async fn access_history(
    state: &AppState,
    me: &CurrentUser,
    limit: i64,
) -> Result<Vec<kapstone_domain::audit::StoredAuditEvent>, AppError> {
    let Some(id) = me.patient else { return Err(AppError::Forbidden) };
    let filter = audit::AuditFilter {
        patient_id: Some(id.to_string()),
        action: Some(AuditAction::PatientRead.as_str().to_owned()),
        ..Default::default()
    };
    let events = audit::search(&state.db, &filter, limit).await?;
    Ok(events.into_iter().filter(|e| e.actor_user_id.as_deref() != Some(me.id.to_string().as_str())).collect())
}
