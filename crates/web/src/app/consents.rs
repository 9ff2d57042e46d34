//! Informed consent: the patient signs in the portal (typed full name, time, address, and the
//! hash of the exact text), or staff record a paper consent; either can be revoked. Validity is
//! a clinic setting. GATE-04 reads [`status`].

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::consent::{ConsentStatus, check_typed_name};
use kapstone_domain::{FieldError, PatientId, UtcTs};
use kapstone_store::consents::{self, ConsentRow, NewConsent};
use kapstone_store::{audit, clinics, patients};
use time::{Date, PrimitiveDateTime, Time};

use crate::auth::guard::CurrentUser;
use crate::content::{self, ConsentDocument};
use crate::error::AppError;
use crate::state::AppState;

fn document(id: &str) -> Result<&'static ConsentDocument, AppError> {
    content::consent(id).ok_or_else(|| FieldError::new("document", "unknown consent document").into())
}

/// The status of `document` for a patient, with the latest signature if any.
pub async fn status(
    state: &AppState,
    clinic: kapstone_domain::ClinicId,
    patient: PatientId,
    document: &str,
) -> Result<(ConsentStatus, Option<ConsentRow>), AppError> {
    let settings = clinics::current_settings(&state.db, clinic).await?;
    let latest = consents::latest(&state.db, patient, document).await?;
    let s = status_of(&settings, latest.as_ref().map(|c| (c.signed_at.0, c.revoked_at.is_some())), UtcTs::now());
    Ok((s, latest))
}

/// The status of a document from its latest signature, if any (as [`status`], on rows read).
/// `latest`: when it was signed, and whether it was withdrawn since.
pub fn status_of(settings: &clinics::ClinicSettings, latest: Option<(UtcTs, bool)>, now: UtcTs) -> ConsentStatus {
    // Months as 30-day periods: the clinic's setting is a period, not a calendar rule.
    let validity = time::Duration::days(30 * i64::from(settings.consent_validity_months));
    ConsentStatus::of(latest, validity, now)
}

async fn record(
    state: &AppState,
    by: &CurrentUser,
    patient: PatientId,
    doc: &ConsentDocument,
    typed_name: &str,
    signed_at: UtcTs,
    paper: bool,
) -> Result<(), AppError> {
    let p = patients::get(&state.db, by.clinic, patient).await?.ok_or(AppError::NotFound)?;
    let signed_name = check_typed_name(typed_name, &p.given_name, &p.family_name)?;
    let hash = doc.sha256();
    let mut tx = state.db.begin().await?;
    let id = consents::insert(
        &mut tx,
        &NewConsent {
            clinic: by.clinic,
            patient,
            document_id: &doc.id,
            document_version: &doc.version,
            document_sha256: &hash,
            signed_name: &signed_name,
            signed_at,
            signed_ip: if paper { None } else { by.ip.as_deref() },
            paper,
            recorded_by: by.id,
        },
    )
    .await?;
    let mut e = by.event(AuditAction::ConsentSigned, "consent", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    e.reason = Some(format!("{} v{} ({})", doc.id, doc.version, if paper { "paper" } else { "portal" }));
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// The patient signs in the portal.
pub async fn sign_in_portal(
    state: &AppState,
    me: &CurrentUser,
    document_id: &str,
    typed_name: &str,
) -> Result<(), AppError> {
    let patient = me.patient.ok_or(AppError::Forbidden)?;
    super::reauth::require_recent(state, me)?;
    record(state, me, patient, document(document_id)?, typed_name, UtcTs::now(), false).await
}

/// Staff record a consent signed on paper on `signed_on` (not in the future).
pub async fn record_paper(
    state: &AppState,
    staff: &CurrentUser,
    patient: PatientId,
    document_id: &str,
    typed_name: &str,
    signed_on: &str,
) -> Result<(), AppError> {
    // Staff attest a paper signature: their own signature, so re-authenticate.
    super::reauth::require_recent(state, staff)?;
    let doc = document(document_id)?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let day = Date::parse(signed_on.trim(), &fmt)
        .map_err(|_| FieldError::new("signed_on", "enter the date as YYYY-MM-DD"))?;
    let at = UtcTs::from_datetime(PrimitiveDateTime::new(day, Time::MIDNIGHT).assume_utc());
    if at > UtcTs::now() {
        return Err(FieldError::new("signed_on", "the signing date cannot be in the future").into());
    }
    record(state, staff, patient, doc, typed_name, at, true).await
}

/// Withdraws a live consent (staff for a patient, or the patient for themselves).
pub async fn revoke(
    state: &AppState,
    by: &CurrentUser,
    patient: PatientId,
    consent: uuid::Uuid,
    reason: &str,
) -> Result<(), AppError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(FieldError::new("reason", "give a short reason (up to 500 characters)").into());
    }
    if patients::get(&state.db, by.clinic, patient).await?.is_none() {
        return Err(AppError::NotFound);
    }
    let mut tx = state.db.begin().await?;
    if !consents::revoke(&mut tx, consent, patient, by.id, reason).await? {
        return Err(AppError::NotFound);
    }
    let mut e = by.event(AuditAction::ConsentRevoked, "consent", Outcome::Success);
    e.entity_id = Some(consent.to_string());
    e.patient_id = Some(patient);
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// How a status reads on a page.
pub fn describe(s: ConsentStatus) -> String {
    match s {
        ConsentStatus::Valid { until } => format!("✓ Signed, valid until {}", crate::html::when(until)),
        ConsentStatus::Expired { on } => format!("! Expired on {} — needs signing again", crate::html::when(on)),
        ConsentStatus::Revoked => "! Withdrawn — no dosing until signed again".into(),
        ConsentStatus::Missing => "! Not signed".into(),
    }
}
