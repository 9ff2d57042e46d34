//! Reading patient records. Every read is audited, and the answer waits until its audit event
//! is committed, so there is no way to see a chart without leaving a durable trace.

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::patient::{BirthDate, NewPatient, PatientDetails, Phone, SexAtBirth, optional_text};
use kapstone_domain::{Email, FieldError, PatientId, PersonName};
use kapstone_store::audit;
use kapstone_store::patients::{self, PatientRow};
use kapstone_store::patients::{PatientKey, PatientSearch};

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// A page of the clinic's patients after `after` (the cursor of the API and the staff page), at
/// most `limit` rows.
/// The listing itself is audited, without ids.
pub async fn page(
    state: &AppState,
    staff: &CurrentUser,
    after: Option<&PatientKey>,
    limit: i64,
) -> Result<Vec<PatientRow>, AppError> {
    let rows = patients::page(&state.db, staff.clinic, after, limit.clamp(1, 501)).await?;
    let mut e = staff.event(AuditAction::PatientListed, "patient", Outcome::Success);
    e.reason = Some(format!("{} rows{}", rows.len(), if after.is_some() { " after a cursor" } else { "" }));
    state.read_audit.record(e).await?;
    Ok(rows)
}

/// One patient's record for a staff member of the same clinic.
pub async fn read(state: &AppState, staff: &CurrentUser, id: PatientId) -> Result<PatientRow, AppError> {
    let row = patients::get(&state.db, staff.clinic, id).await?;
    // Answered only once the audit event is committed (group commit with other reads).
    state.read_audit.record(read_event(staff, id, row.is_some())).await?;
    row.ok_or(AppError::NotFound)
}

/// The audit event of a staff read of patient `id`: a failure, without the patient, when the
/// patient is not found in the reader's clinic.
pub fn read_event(staff: &CurrentUser, id: PatientId, found: bool) -> kapstone_domain::audit::NewAuditEvent {
    let outcome = if found { Outcome::Success } else { Outcome::Failure };
    let mut e = staff.event(AuditAction::PatientRead, "patient", outcome);
    e.entity_id = Some(id.to_string());
    e.patient_id = found.then_some(id);
    e
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

/// A new patient as typed into the form or sent to the API.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPatientInput {
    pub given_name: String,
    pub family_name: String,
    pub birth_date: String,
    pub sex_at_birth: String,
    #[serde(default)]
    pub gender_identity: Option<String>,
    #[serde(default)]
    pub pronouns: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub emergency_contact_name: Option<String>,
    #[serde(default)]
    pub emergency_contact_phone: Option<String>,
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl NewPatientInput {
    /// Parses every field into domain types; the error names the first bad field.
    pub fn parse(&self) -> Result<NewPatient, FieldError> {
        let today = kapstone_domain::UtcTs::now().to_datetime().date();
        Ok(NewPatient {
            given_name: PersonName::parse("given_name", &self.given_name)?,
            family_name: PersonName::parse("family_name", &self.family_name)?,
            birth_date: BirthDate::parse(&self.birth_date, today)?,
            sex_at_birth: SexAtBirth::parse(&self.sex_at_birth)?,
            details: PatientDetails {
                gender_identity: optional_text("gender_identity", self.gender_identity.as_deref(), 100)?,
                pronouns: optional_text("pronouns", self.pronouns.as_deref(), 40)?,
                phone: present(&self.phone).map(|p| Phone::parse("phone", p)).transpose()?,
                email: present(&self.email)
                    .map(|e| Email::parse(e).map_err(|err| FieldError::new("email", err.message)))
                    .transpose()?,
                address: optional_text("address", self.address.as_deref(), 500)?,
                emergency_contact_name: present(&self.emergency_contact_name)
                    .map(|n| PersonName::parse("emergency_contact_name", n))
                    .transpose()?,
                emergency_contact_phone: present(&self.emergency_contact_phone)
                    .map(|p| Phone::parse("emergency_contact_phone", p))
                    .transpose()?,
            },
        })
    }
}

/// Registers a patient in the staff member's clinic; the MRN is assigned in the same transaction.
pub async fn register(state: &AppState, staff: &CurrentUser, input: &NewPatientInput) -> Result<PatientRow, AppError> {
    let new = input.parse()?;
    let mut tx = state.db.begin().await?;
    let row = patients::insert(&mut tx, staff.clinic, &new).await?;
    let mut e = staff.event(AuditAction::PatientCreated, "patient", Outcome::Success);
    e.entity_id = Some(row.id.to_string());
    e.patient_id = Some(row.patient_id());
    audit::append(&mut tx, &e).await?;
    tx.commit_answering(&row).await?;
    Ok(row)
}

/// Finds patients by name (any case, with or without accents), MRN, date of birth or phone.
pub async fn search(
    state: &AppState,
    staff: &CurrentUser,
    q: &str,
    after: Option<&PatientKey>,
    limit: i64,
) -> Result<Vec<PatientRow>, AppError> {
    let query = PatientSearch::parse(q)
        .ok_or_else(|| FieldError::new("q", "type a name, an MRN, a date of birth (YYYY-MM-DD) or a phone number"))?;
    let rows = patients::search(&state.db, staff.clinic, &query, after, limit.clamp(1, 501)).await?;
    let mut e = staff.event(AuditAction::PatientListed, "patient", Outcome::Success);
    // The search words are patient data: the event records only how many rows matched.
    e.reason = Some(format!("search, {} rows", rows.len()));
    state.read_audit.record(e).await?;
    Ok(rows)
}
