//! The SPRAVATO REMS Patient Monitoring Form (KAP-SPEC 5.6): filled from a finished Spravato
//! session and the rest of the record, due 7 calendar days after the session (TV-SPR-4), and the
//! record of its submission to the REMS (the form itself is submitted on SPRAVATOrems.com or by
//! fax; Kapstone keeps the date and the confirmation number).
//!
//! Where each answer comes from:
//! - patient name, birth date, sex: the patient record (sex at birth; "unknown" is not answered);
//! - first treatment: no earlier Spravato dose on the record; enrolled: the REMS enrolment;
//! - concomitant medication: the drug classes of the latest consultation, only once its
//!   medications are reconciled (an unreconciled list cannot answer "no");
//! - HCP: the clinician who signed the discharge: name, account email and the work telephone an
//!   admin recorded on the account;
//! - setting: the location's name and the address an admin recorded for it (scheduling set-up);
//!   a value not recorded is reported missing, never invented;
//! - treatment date: the first device's date in the location's time zone;
//! - the session's own answers: [`SessionAnswers::from_session`].

use jiff::Timestamp;
use jiff::civil::Date;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::consultation::DrugClass;
use kapstone_domain::decision::Route;
use kapstone_domain::patient::{Phone, SexAtBirth};
use kapstone_domain::rems_form::{
    ConcomitantMedication, FilledForm, FormSex, HealthcareSetting, MonitoringHcp, RemsSessionFacts, SessionAnswers,
    SettingAddress, SubmissionStatus, fill,
};
use kapstone_domain::{FieldError, PatientId, Role, UserId, UtcTs};
use kapstone_store::dosing::{self as store, RemsFormKey, RemsFormRow, RemsSubmissionRow, SessionRow};
use serde::Serialize;
use uuid::Uuid;

use super::scheduling::{to_jiff, zones};
use super::sessions::{Loaded, load};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

pub const SPRAVATO: &str = "spravato-intranasal";

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid(FieldError::new(field, message))
}

fn content_error(e: anyhow::Error) -> AppError {
    AppError::Internal(e)
}

pub fn jiff_date(d: time::Date) -> Date {
    jiff::civil::date(d.year() as i16, u8::from(d.month()) as i8, d.day() as i8)
}

/// The session's date on the location's calendar: the day of the first device.
fn session_date(tz: &jiff::tz::TimeZone, row: &SessionRow) -> Date {
    let at = row.dose_started_at.map_or(row.created_at.0, |t| t.0);
    to_jiff(at).to_zoned(tz.clone()).date()
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Submission {
    pub submitted_on: String,
    pub confirmation: Option<String>,
    pub recorded_at: UtcTs,
}

fn submissions_of(rows: &[RemsSubmissionRow], session: Uuid) -> Vec<Submission> {
    rows.iter()
        .filter(|r| r.session_id == session)
        .map(|r| Submission {
            submitted_on: r.submitted_on.clone(),
            confirmation: r.confirmation.clone(),
            recorded_at: r.recorded_at.0,
        })
        .collect()
}

/// The status of a session's form: the latest recorded submission counts (a correction is a new
/// record).
fn status(session: Date, subs: &[Submission], today: Date) -> Result<SubmissionStatus, AppError> {
    let def = crate::content::rems_form().map_err(content_error)?;
    let on = subs.last().and_then(|s| s.submitted_on.parse::<Date>().ok());
    Ok(def.submission_status(session, on, today))
}

/// The form as a page or the API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FormView {
    pub session_id: Uuid,
    pub patient_id: Uuid,
    pub patient: String,
    pub session_state: String,
    pub location: String,
    pub session_date: Date,
    pub due: Date,
    pub status: SubmissionStatus,
    pub title: String,
    pub form: FilledForm,
    pub submissions: Vec<Submission>,
}

fn is_spravato(l: &Loaded) -> bool {
    l.protocol.route == Route::SpravatoIntranasal
}

/// Splits a display name into first and last name at the last space.
fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    match name.rsplit_once(' ') {
        Some((first, last)) => (Some(first.trim().to_owned()), Some(last.trim().to_owned())),
        None if name.is_empty() => (None, None),
        None => (None, Some(name.to_owned())),
    }
}

/// The concomitant medication answers from the latest consultation's reconciled medications.
async fn concomitant(state: &AppState, patient: PatientId) -> Result<ConcomitantMedication, AppError> {
    let Some(c) = kapstone_store::eligibility::latest_consultation(&state.db, patient).await? else {
        return Ok(ConcomitantMedication::default());
    };
    let body: serde_json::Value = serde_json::from_str(&c.body)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored consultation is invalid: {e}")))?;
    if body["medications_reconciled"].as_bool() != Some(true) {
        return Ok(ConcomitantMedication::default());
    }
    let classes: Vec<DrugClass> = body["medications"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| serde_json::from_value(m["drug_class"].clone()).ok()).collect())
        .unwrap_or_default();
    let has = |c: DrugClass| Some(classes.contains(&c));
    Ok(ConcomitantMedication {
        benzodiazepines: has(DrugClass::Benzodiazepine),
        non_benzodiazepine_sedative_hypnotics: has(DrugClass::NonBenzodiazepineHypnotic),
        psychostimulants: has(DrugClass::Psychostimulant),
        maois: has(DrugClass::Maoi),
        opioids: has(DrugClass::Opioid),
    })
}

/// The clinician who ended the monitoring (signed the discharge, or aborted after the dose).
async fn hcp(state: &AppState, user: &CurrentUser, l: &Loaded) -> Result<MonitoringHcp, AppError> {
    let s = l.session();
    let by = s.discharged().map(|d| d.by.user).or_else(|| s.aborted().map(|a| a.stamp.by.user));
    let Some(by) = by else { return Ok(MonitoringHcp::default()) };
    let Some(u) = kapstone_store::users::get(&state.db, by).await? else {
        return Ok(MonitoringHcp::default());
    };
    if u.clinic_id != user.clinic.as_uuid() {
        return Ok(MonitoringHcp::default());
    }
    let (first_name, last_name) = split_name(&u.display_name);
    let telephone = store::work_phone(&state.db, by).await?;
    Ok(MonitoringHcp { first_name, last_name, telephone, email: Some(u.email) })
}

/// The session's location as the form's healthcare setting.
async fn setting(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
    name: &str,
) -> Result<HealthcareSetting, AppError> {
    let row = store::rems_setting(&state.db, user.clinic, location).await?.unwrap_or_default();
    Ok(HealthcareSetting {
        name: Some(name.to_owned()),
        address1: row.address_line1,
        address2: row.address_line2,
        city: row.city,
        state: row.state_code,
        zip: row.zip,
    })
}

/// The form of a finished Spravato session (audited as a read of the session).
pub async fn form(state: &AppState, user: &CurrentUser, id: Uuid) -> Result<FormView, AppError> {
    let l = load(state, user, id).await?;
    if !is_spravato(&l) {
        return Err(AppError::NotFound);
    }
    let def = crate::content::rems_form().map_err(content_error)?;
    let patient = PatientId::from_uuid(l.row.patient_id);
    let p = kapstone_store::patients::get(&state.db, user.clinic, patient).await?.ok_or(AppError::NotFound)?;
    let zs = zones(state, user.clinic).await?;
    let tz = zs.of(l.row.location_id).clone();
    let date = session_date(&tz, &l.row);
    let today = Timestamp::now().to_zoned(tz).date();
    let session = l.session();
    let answers = SessionAnswers::from_session(&session, &l.ctx());
    let facts = RemsSessionFacts {
        patient_first_name: Some(p.given_name.clone()),
        patient_middle_initial: None,
        patient_last_name: Some(p.family_name.clone()),
        patient_birth_date: Some(jiff_date(p.birth_date)),
        patient_sex: match SexAtBirth::parse(&p.sex_at_birth).ok() {
            Some(SexAtBirth::Female) => Some(FormSex::Female),
            Some(SexAtBirth::Male) => Some(FormSex::Male),
            Some(SexAtBirth::Other) => Some(FormSex::Other),
            Some(SexAtBirth::Unknown) | None => None,
        },
        first_treatment: Some(l.gates.previous_spravato_doses_mg.is_empty()),
        enrolled_in_rems: Some(l.gates.rems_enrolled),
        concomitant: concomitant(state, patient).await?,
        hcp: hcp(state, user, &l).await?,
        setting: setting(state, user, l.row.location_id, zs.place(l.row.location_id)).await?,
        treatment_date: date,
        dose_mg: answers.dose_mg,
        lot_number: answers.lot_number,
        first_device_at: answers.first_device_at,
        monitoring_completed_at: answers.monitoring_completed_at,
        minutes_until_ready_without_requirement: None,
        vitals_acceptable_before_administration: answers.vitals_acceptable_before_administration,
        vitals_acceptable_before_completion: answers.vitals_acceptable_before_completion,
        bp_before_administration: answers.bp_before_administration,
        bp_40_min: answers.bp_40_min,
        bp_before_completion: answers.bp_before_completion,
        adverse_events: answers.adverse_events,
    };
    let submissions = submissions_of(&store::rems_submissions(&state.db, &[id]).await?, id);
    Ok(FormView {
        session_id: id,
        patient_id: l.row.patient_id,
        patient: format!("{} {}", p.given_name, p.family_name),
        session_state: session.state_now(&l.ctx()).as_str().to_owned(),
        location: zs.place(l.row.location_id).to_owned(),
        session_date: date,
        due: def.due_by(date),
        status: status(date, &submissions, today)?,
        title: def.title.clone(),
        form: fill(def, &facts),
        submissions,
    })
}

const MAX_CONFIRMATION: usize = 100;

/// Records that the form was submitted to the REMS on `submitted_on` (YYYY-MM-DD), with the
/// confirmation number if one was given. The date cannot be in the future nor before the
/// session; the session must have ended.
pub async fn submit(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    submitted_on: &str,
    confirmation: Option<&str>,
) -> Result<SubmissionRecorded, AppError> {
    let row = store::session(&state.db, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    super::reauth::require_recent(state, user)?;
    if row.protocol_id != SPRAVATO {
        return Err(AppError::NotFound);
    }
    let def = crate::content::rems_form().map_err(content_error)?;
    let on: Date = submitted_on
        .trim()
        .parse()
        .map_err(|_| invalid("submitted_on", "give the date the form was submitted as YYYY-MM-DD"))?;
    if row.dose_started_at.is_none() || !(row.state == "discharged" || row.state == "aborted") {
        return Err(invalid("submitted_on", "the form is submitted after the session has ended"));
    }
    let tz = zones(state, user.clinic).await?.of(row.location_id).clone();
    let date = session_date(&tz, &row);
    let today = Timestamp::now().to_zoned(tz).date();
    if on > today {
        return Err(invalid("submitted_on", format!("{on} is in the future; give the day it was submitted")));
    }
    if on < date {
        return Err(invalid("submitted_on", format!("{on} is before the session on {date}")));
    }
    let confirmation = confirmation.map(str::trim).filter(|c| !c.is_empty());
    if let Some(c) = confirmation
        && (c.chars().count() > MAX_CONFIRMATION || c.chars().any(char::is_control))
    {
        return Err(invalid("confirmation", format!("use at most {MAX_CONFIRMATION} characters of plain text")));
    }
    let mut tx = state.db.begin().await?;
    let sub = store::insert_rems_submission(&mut tx, id, &def.version, &on.to_string(), confirmation, user.id).await?;
    let mut e = user.event(AuditAction::RemsFormSubmitted, "dosing_session", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(PatientId::from_uuid(row.patient_id));
    e.reason = Some(format!("REMS form {} submitted on {on}", def.version));
    kapstone_store::audit::append(&mut tx, &e).await?;
    // The form's status with this submission, read in the same transaction: the API answers with
    // it, stored with the submission (issue 9).
    let submissions = submissions_of(&store::rems_submissions_in(&mut tx, id).await?, id);
    let recorded = SubmissionRecorded { id: sub, status: status(date, &submissions, today)?, due: def.due_by(date) };
    tx.commit_answering(&recorded).await?;
    Ok(recorded)
}

/// A recorded submission, with the form's status and due date now.
#[derive(Debug, Clone)]
pub struct SubmissionRecorded {
    pub id: Uuid,
    pub status: SubmissionStatus,
    pub due: Date,
}

/// One line of the REMS dashboard.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DashboardRow {
    pub session_id: Uuid,
    pub patient_id: Uuid,
    pub patient: String,
    pub location: String,
    pub session_state: String,
    pub session_date: Date,
    pub due: Date,
    /// Calendar days left to the due date (negative once overdue).
    pub days_left: i32,
    pub status: SubmissionStatus,
    pub confirmation: Option<String>,
}

/// Every finished Spravato session of the clinic with its form's status (the page): those not yet
/// submitted first, oldest session first, so the overdue ones (oldest due date first) come before
/// those still due (soonest first); then the submitted ones, latest submission date first.
pub async fn dashboard(state: &AppState, user: &CurrentUser) -> Result<Vec<DashboardRow>, AppError> {
    // Every row: the page shows the whole list with its counts.
    Ok(dashboard_page(state, user, None, i64::from(i32::MAX)).await?.0)
}

/// A page of `limit` of the list [`dashboard`] shows, after `after` (the API's list; see
/// `api::page`), read in one keyset query: the rows, and the key to continue after when more follow.
pub async fn dashboard_page(
    state: &AppState,
    user: &CurrentUser,
    after: Option<RemsFormKey>,
    limit: i64,
) -> Result<(Vec<DashboardRow>, Option<RemsFormKey>), AppError> {
    let after = after.unwrap_or_else(RemsFormKey::first);
    let mut rows = store::rems_forms_page(&state.db, user.clinic, SPRAVATO, &after, limit + 1).await?;
    let next = kapstone_store::keyset::cut(&mut rows, limit, RemsFormRow::key);
    let zs = zones(state, user.clinic).await?;
    let def = crate::content::rems_form().map_err(content_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let tz = zs.of(row.location_id).clone();
        let date = to_jiff(row.dose_started_at.0).to_zoned(tz.clone()).date();
        let today = Timestamp::now().to_zoned(tz).date();
        let due = def.due_by(date);
        let on = if row.grp == 0 { None } else { row.sort_on.parse::<Date>().ok() };
        out.push(DashboardRow {
            session_id: row.id,
            patient_id: row.patient_id,
            patient: format!("{} {}", row.given_name, row.family_name),
            location: zs.place(row.location_id).to_owned(),
            session_state: row.state,
            session_date: date,
            due,
            days_left: today.until(due).map(|s| s.get_days()).unwrap_or(0),
            status: def.submission_status(date, on, today),
            confirmation: row.confirmation,
        });
    }
    let mut e = user.event(AuditAction::PatientListed, "rems_form", Outcome::Success);
    e.reason = Some(format!("REMS forms, {} sessions", out.len()));
    state.read_audit.record(e).await?;
    Ok((out, next))
}

/// The hand-out of the patient's last discharged session (KAP-SPEC 6.2), for the portal.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Handout {
    pub session_date: Date,
    pub protocol: String,
    pub lines: Vec<String>,
    /// The next booked integration appointment, as the patient reads it.
    pub next_integration: Option<String>,
}

/// The signed-in patient's own last hand-out: the patient id comes from the account, never from
/// the request.
pub async fn own_handout(state: &AppState, me: &CurrentUser) -> Result<Option<Handout>, AppError> {
    let Some(patient) = me.patient else { return Err(AppError::Forbidden) };
    let Some(row) =
        store::sessions_of_patient(&state.db, me.clinic, patient).await?.into_iter().find(|r| r.state == "discharged")
    else {
        return Ok(None);
    };
    let protocol = super::protocols::version(state, me.clinic, &row.protocol_id, &row.protocol_version).await?;
    let zs = zones(state, me.clinic).await?;
    let date = session_date(zs.of(row.location_id), &row);
    let types = super::scheduling::types(state, me).await?;
    let now = Timestamp::now();
    let next_integration = kapstone_store::scheduling::appointments_of_patient(&state.db, patient)
        .await?
        .into_iter()
        .filter(|a| a.status == "booked" && to_jiff(a.start_at.0) > now)
        .filter(|a| {
            types.iter().any(|(id, t, _)| {
                *id == a.type_id && t.kind == kapstone_domain::scheduling::AppointmentKind::Integration
            })
        })
        .min_by_key(|a| a.start_at.0)
        .map(|a| {
            let tz = zs.of(a.location_id);
            let z = to_jiff(a.start_at.0).to_zoned(tz.clone());
            format!(
                "{} {:02}:{:02} ({}) at {}",
                z.date(),
                z.hour(),
                z.minute(),
                tz.iana_name().unwrap_or("UTC"),
                zs.place(a.location_id)
            )
        });
    Ok(Some(Handout {
        session_date: date,
        protocol: protocol.title.clone(),
        lines: protocol.post_session_instructions.iter().map(|i| i.text.clone()).collect(),
        next_integration,
    }))
}

/// What an admin records about a location as a REMS healthcare setting: its certification
/// (GATE-03) and the address the form asks for.
#[derive(Debug, Clone, Default)]
pub struct RemsSettingInput {
    pub certified: bool,
    pub address_line1: String,
    pub address_line2: String,
    pub city: String,
    pub state: String,
    pub zip: String,
}

/// Records a location's REMS certification and address (admins). Bad input names the field and
/// changes nothing; all address parts blank clears the address.
pub async fn set_rems_setting(
    state: &AppState,
    admin: &CurrentUser,
    location: &str,
    input: &RemsSettingInput,
) -> Result<store::RemsSettingRow, AppError> {
    let location: Uuid = location.trim().parse().map_err(|_| AppError::NotFound)?;
    let address =
        SettingAddress::parse(&input.address_line1, &input.address_line2, &input.city, &input.state, &input.zip)?;
    let row = store::RemsSettingRow {
        rems_certified: input.certified,
        address_line1: address.as_ref().map(|a| a.address_line1.clone()),
        address_line2: address.as_ref().and_then(|a| a.address_line2.clone()),
        city: address.as_ref().map(|a| a.city.clone()),
        state_code: address.as_ref().map(|a| a.state.clone()),
        zip: address.as_ref().map(|a| a.zip.clone()),
    };
    let mut tx = state.db.begin().await?;
    if !store::set_rems_setting(&mut tx, admin.clinic, location, &row).await? {
        return Err(AppError::NotFound);
    }
    let mut e = admin.event(AuditAction::SchedulingConfigured, "location", Outcome::Success);
    e.entity_id = Some(location.to_string());
    e.reason = Some(format!(
        "REMS setting: {}, address {}",
        if input.certified { "certified" } else { "not certified" },
        if address.is_some() { "recorded" } else { "cleared" }
    ));
    kapstone_store::audit::append(&mut tx, &e).await?;
    // What was written is the setting now (the update sets every column of it).
    tx.commit_answering(&row).await?;
    Ok(row)
}

/// A location's REMS setting as recorded (for the admin page and the API).
pub async fn rems_setting(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
) -> Result<store::RemsSettingRow, AppError> {
    store::rems_setting(&state.db, user.clinic, location).await?.ok_or(AppError::NotFound)
}

/// Records (or, blank, clears) a staff member's work telephone, which the form gives as the
/// monitoring HCP's (admins).
pub async fn set_work_phone(state: &AppState, admin: &CurrentUser, user: UserId, raw: &str) -> Result<(), AppError> {
    let row = kapstone_store::users::get(&state.db, user)
        .await?
        .filter(|u| u.clinic() == admin.clinic)
        .ok_or(AppError::NotFound)?;
    if row.role == Role::Patient.as_str() {
        return Err(invalid("work_phone", "only staff accounts have a work telephone"));
    }
    let phone = match raw.trim() {
        "" => None,
        s => Some(Phone::parse("work_phone", s)?),
    };
    let mut tx = state.db.begin().await?;
    store::set_work_phone(&mut tx, user, phone.as_ref().map(Phone::as_str)).await?;
    let mut e = admin.event(AuditAction::UserUpdated, "user", Outcome::Success);
    e.entity_id = Some(user.to_string());
    e.reason = Some(if phone.is_some() { "work telephone recorded" } else { "work telephone cleared" }.into());
    kapstone_store::audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn work_phone(state: &AppState, user: UserId) -> Result<Option<String>, AppError> {
    Ok(store::work_phone(&state.db, user).await?)
}
