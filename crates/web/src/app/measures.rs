//! Measurement-based care (KAP-SPEC 7.10): the questionnaires each patient on an active course
//! owes, from the domain's [`schedule`]; a job that assigns the due ones to the portal with an
//! email through the outbox; and the staff's list of what is due and overdue.
//!
//! Readings, and why:
//! - A session's phase (induction or maintenance) is the phase of the planned dosing session with
//!   the same rank among the course's dosing appointments that were not cancelled.
//! - The PCL-5 is "if trauma"; Kapstone records no trauma flag yet, so a PCL-5 answered before is
//!   the indication (a clinician gave it because trauma was in question).
//! - The job assigns a requirement that is open ([`Requirement::to_answer`]) and due within the
//!   clinic's notice (`notice_days`, 3 by default: "about 72 h before a dosing session"), or at
//!   once for the C-SSRS after a positive PHQ-9 item 9. It never assigns an instrument the patient
//!   already has open in the portal, and records with each assignment the clinic settings version
//!   whose cadence it used.

use jiff::ToSpan;
use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
use kapstone_domain::course::{self, CourseOptions, Phase, SessionKind, Template};
use kapstone_domain::instruments::Instrument;
use kapstone_domain::measurement::{
    Answered, Attendance, CourseFacts, CourseSession, Indications, Occasion, Requirement, schedule,
};
use kapstone_domain::scheduling::{AppointmentKind, AppointmentType};
use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use kapstone_store::keyset::{self, ListFilter};
use kapstone_store::measures::{self as store, ActiveCourse, NewMeasure};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

fn internal(what: &str) -> AppError {
    AppError::Internal(anyhow::anyhow!("measurement cadence: {what}"))
}

/// The stable key of an occasion, for the once-only assignment.
fn occasion_key(r: &Requirement) -> String {
    match r.occasion {
        Occasion::Intake => "intake".into(),
        Occasion::PreDose { session } => format!("pre_dose:{session}"),
        Occasion::EndOfInduction => "end_of_induction".into(),
        Occasion::Maintenance => format!("maintenance:{}", r.due_by.unix_micros()),
        Occasion::Integration { session, phq9 } => format!("integration:{session}:{phq9}"),
    }
}

/// A course's requirements at `now`, with the settings version used.
pub struct CourseMeasures {
    pub course: ActiveCourse,
    pub settings_version: i64,
    pub notice_days: u8,
    pub requirements: Vec<Requirement>,
}

async fn measures_of(state: &AppState, c: ActiveCourse, now: UtcTs) -> Result<CourseMeasures, AppError> {
    let clinic = ClinicId::from_uuid(c.clinic_id);
    let settings = kapstone_store::clinics::current_settings(&state.db, clinic).await?;
    let template = Template::parse(&c.template).ok_or_else(|| internal("template"))?;
    let options: CourseOptions = serde_json::from_str(&c.options).map_err(|_| internal("options"))?;
    let first: jiff::civil::Date = c.first_date.parse().map_err(|_| internal("first date"))?;
    let plan = course::propose(template, first, &options).map_err(|_| internal("plan"))?;
    let phases: Vec<Phase> = plan.iter().filter(|p| p.kind == SessionKind::Dosing).map(|p| p.phase).collect();
    let zone = kapstone_store::clinics::time_zone(&state.db, clinic).await?.unwrap_or_else(|| "UTC".to_owned());
    let tz = super::scheduling::time_zone(&zone)?;
    let review_due = plan
        .iter()
        .find(|p| p.kind == SessionKind::CourseReview)
        .and_then(|p| p.date.checked_add(1.day()).ok())
        .and_then(|d| d.to_zoned(tz.clone()).ok())
        .map(|z| super::scheduling::from_jiff(z.timestamp()));
    let appointments = store::course_appointments(&state.db, c.id).await?;
    let mut type_ids: Vec<Uuid> = appointments.iter().map(|a| a.type_id).collect();
    type_ids.sort();
    type_ids.dedup();
    let types = kapstone_store::scheduling::type_definitions(&state.db, &type_ids).await?;
    let kind_of = |t: Uuid| {
        types
            .iter()
            .find(|(id, _)| *id == t)
            .and_then(|(_, d)| serde_json::from_str::<AppointmentType>(d).ok())
            .map(|t| t.kind)
    };
    let mut sessions = Vec::new();
    let mut dosing_rank = 0usize;
    for a in &appointments {
        let kind = match kind_of(a.type_id) {
            Some(AppointmentKind::Dosing) => SessionKind::Dosing,
            Some(AppointmentKind::Integration) => SessionKind::Integration,
            _ => continue,
        };
        let attendance = match a.status.as_str() {
            "booked" => Attendance::Booked,
            "completed" => Attendance::Completed,
            _ => Attendance::Missed,
        };
        let phase = if kind == SessionKind::Dosing && attendance != Attendance::Missed {
            let p = phases.get(dosing_rank).copied().unwrap_or(Phase::Maintenance);
            dosing_rank += 1;
            p
        } else {
            Phase::Induction
        };
        sessions.push(CourseSession {
            id: a.id,
            kind,
            phase,
            start: a.start_at.0,
            end: a.end_at.0,
            booked_at: a.created_at.0,
            attendance,
            dosed_at: a.dose_started_at.map(|t| t.0),
        });
    }
    let answered: Vec<Answered> = store::answered(&state.db, PatientId::from_uuid(c.patient_id))
        .await?
        .into_iter()
        .filter_map(|r| {
            let instrument = Instrument::parse(&r.instrument)?;
            let item9 = (instrument == Instrument::Phq9)
                .then(|| serde_json::from_str::<Vec<Option<i64>>>(&r.answers).ok())
                .flatten()
                .and_then(|a| a.get(8).copied().flatten())
                .and_then(|v| u8::try_from(v).ok());
            Some(Answered { id: r.id, instrument, at: r.submitted_at.0, phq9_item9: item9 })
        })
        .collect();
    let trauma = answered.iter().any(|a| a.instrument == Instrument::Pcl5);
    let facts =
        CourseFacts { sessions: &sessions, review_due, ended_at: None, indications: Indications::from_record(trauma) };
    let requirements = schedule(&facts, &answered, &settings.measurement, now);
    Ok(CourseMeasures {
        course: c,
        settings_version: settings.version,
        notice_days: settings.measurement.notice_days,
        requirements,
    })
}

fn to_send(r: &Requirement, now: UtcTs, notice_days: u8) -> bool {
    let horizon = UtcTs::from_unix_micros(now.unix_micros().saturating_add(i64::from(notice_days) * 86_400_000_000));
    r.to_answer() && (r.due_by <= horizon || matches!(r.occasion, Occasion::Integration { .. }))
}

/// Assigns the measures that are due to the portal; returns how many this pass assigned. Safe in
/// several processes: each (course, instrument, occasion) is assigned once by a unique index.
pub async fn assign_due(state: &AppState) -> Result<usize, AppError> {
    let now = UtcTs::now();
    let mut count = 0;
    for c in store::active_courses(&state.db, None).await? {
        let m = measures_of(state, c, now).await?;
        let patient = PatientId::from_uuid(m.course.patient_id);
        let clinic = ClinicId::from_uuid(m.course.clinic_id);
        let done = store::assigned(&state.db, m.course.id).await?;
        let mut open: Vec<String> = kapstone_store::questionnaires::open_assignments(&state.db, patient)
            .await?
            .into_iter()
            .map(|a| a.instrument)
            .collect();
        for r in m.requirements.iter().filter(|r| to_send(r, now, m.notice_days)) {
            let key = occasion_key(r);
            let instrument = r.instrument.as_str();
            if done.iter().any(|(i, o)| i == instrument && *o == key) || open.iter().any(|i| i == instrument) {
                continue;
            }
            let mut tx = state.db.begin().await?;
            let assigned = store::assign_once(
                &mut tx,
                &NewMeasure {
                    clinic,
                    patient,
                    course: m.course.id,
                    instrument,
                    occasion: &key,
                    due_by: r.due_by,
                    settings_version: m.settings_version,
                    on_behalf_of: UserId::from_uuid(m.course.started_by),
                },
            )
            .await?;
            let Some(id) = assigned else {
                drop(tx);
                continue;
            };
            let mut e = NewAuditEvent::new(AuditAction::MeasureAssigned, "questionnaire_assignment", Outcome::Success);
            e.clinic_id = Some(clinic);
            e.entity_id = Some(id.to_string());
            e.patient_id = Some(patient);
            e.reason = Some(format!("{instrument} {key}, settings v{}", m.settings_version));
            kapstone_store::audit::append(&mut tx, &e).await?;
            // The reminder, through the outbox like the appointment reminders: no clinical detail.
            let account = kapstone_store::users::patient_account_email(&state.db, patient).await?;
            if let Some(to) = account {
                let portal = format!("{}/portal", state.config.public_url.trim_end_matches('/'));
                let body = format!(
                    "Your care team asks you to fill in a short questionnaire before {}.\n\nSign in to your portal: {portal}\n",
                    super::scheduling::to_jiff(r.due_by).strftime("%Y-%m-%d %H:%M UTC")
                );
                store::queue_message(&mut tx, clinic, patient, &to, "A questionnaire from your care team", &body)
                    .await?;
            }
            tx.commit().await?;
            open.push(instrument.to_owned());
            count += 1;
        }
    }
    Ok(count)
}

/// A measure owed, for the staff's list.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DueMeasure {
    pub patient_id: Uuid,
    pub course_id: Uuid,
    #[serde(flatten)]
    pub requirement: Requirement,
    /// In the portal now (assigned and not yet answered).
    pub in_portal: bool,
}

/// Due and overdue measures of the clinic's active courses, overdue first (audited per patient).
pub async fn due(state: &AppState, by: &CurrentUser) -> Result<Vec<DueMeasure>, AppError> {
    let out = owed(state, by, &ListFilter::default()).await?;
    audit_due(state, by, &out).await?;
    Ok(out)
}

/// Where a measure stands in the due list: its due time, then its course, instrument and occasion
/// (together unique). Overdue measures are due before now, so they come first.
pub type DueKey = (i64, Uuid, String, String);

pub fn due_key(d: &DueMeasure) -> DueKey {
    let occasion = serde_json::to_string(&d.requirement.occasion).unwrap_or_default();
    (d.requirement.due_by.unix_micros(), d.course_id, d.requirement.instrument.as_str().to_owned(), occasion)
}

/// A page of `limit` of the due list after `after`, with one more that says whether a next page
/// follows (the API's list; see `api::page`): of `filter.patient` when set, due in
/// `[filter.from, filter.to)` when set. The list is worked out whole from the active courses (it
/// is as long as the clinic's current caseload, not its history) and cut at the key; the
/// measures on the page are audited as [`due`] audits them.
pub async fn due_page(
    state: &AppState,
    by: &CurrentUser,
    filter: &ListFilter,
    after: Option<&DueKey>,
    limit: i64,
) -> Result<Vec<DueMeasure>, AppError> {
    let mut out = owed(state, by, filter).await?;
    out.retain(|d| after.is_none_or(|a| due_key(d) > *a));
    out.truncate(keyset::sent(limit) + 1);
    audit_due(state, by, &out[..out.len().min(keyset::sent(limit))]).await?;
    Ok(out)
}

/// The measures owed on the clinic's active courses, in [`DueKey`] order.
async fn owed(state: &AppState, by: &CurrentUser, filter: &ListFilter) -> Result<Vec<DueMeasure>, AppError> {
    let now = UtcTs::now();
    let mut out = Vec::new();
    let courses = store::active_courses(&state.db, Some(by.clinic)).await?;
    for c in courses.into_iter().filter(|c| filter.patient.is_none_or(|p| p.as_uuid() == c.patient_id)) {
        let m = measures_of(state, c, now).await?;
        let patient = PatientId::from_uuid(m.course.patient_id);
        let open: Vec<String> = kapstone_store::questionnaires::open_assignments(&state.db, patient)
            .await?
            .into_iter()
            .map(|a| a.instrument)
            .collect();
        out.extend(
            m.requirements
                .iter()
                .filter(|r| r.to_answer())
                .filter(|r| filter.from.is_none_or(|f| r.due_by >= f) && filter.to.is_none_or(|t| r.due_by < t))
                .map(|r| DueMeasure {
                    patient_id: m.course.patient_id,
                    course_id: m.course.id,
                    requirement: *r,
                    in_portal: open.iter().any(|i| i == r.instrument.as_str()),
                }),
        );
    }
    out.sort_by_key(due_key);
    Ok(out)
}

/// One event per course whose measures are listed, naming its patient and the count.
async fn audit_due(state: &AppState, by: &CurrentUser, items: &[DueMeasure]) -> Result<(), AppError> {
    let mut courses: Vec<(Uuid, Uuid, usize)> = Vec::new();
    for d in items {
        match courses.iter_mut().find(|c| c.0 == d.course_id) {
            Some(c) => c.2 += 1,
            None => courses.push((d.course_id, d.patient_id, 1)),
        }
    }
    for (course, patient, n) in courses {
        let mut e = by.event(AuditAction::MeasuresRead, "treatment_course", Outcome::Success);
        e.entity_id = Some(course.to_string());
        e.patient_id = Some(PatientId::from_uuid(patient));
        e.reason = Some(format!("{n} due or overdue"));
        state.read_audit.record(e).await?;
    }
    Ok(())
}
