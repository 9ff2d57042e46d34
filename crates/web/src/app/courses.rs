//! Treatment courses: a prescriber starts one from a template for a route the signed decision
//! allows; the plan is proposed from the template; the dosing sessions can be booked in one go
//! at a chosen local time; progress is read from the appointments linked to the course.

use jiff::civil::{Date, Time};
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::course::{self, CourseOptions, Phase, Planned, SessionKind, Template};
use kapstone_domain::scheduling::AppointmentKind;
use kapstone_domain::{FieldError, PatientId};
use kapstone_store::scheduling::{self as store, CourseRow};
use kapstone_store::{audit, patients};
use uuid::Uuid;

use super::scheduling::{BookingRequest, time_zone, types};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid(FieldError::new(field, message))
}

/// A course with its plan and progress.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CourseView {
    pub id: Uuid,
    pub template: String,
    pub first_date: String,
    pub status: String,
    pub options: CourseOptions,
    pub plan: Vec<Planned>,
    pub dosing_planned: usize,
    pub dosing_booked: i64,
    pub dosing_done: i64,
    pub dosing_left: i64,
    /// The phase of the next dosing session not yet done.
    pub phase: Phase,
    pub review_due: Option<String>,
}

fn view(row: &CourseRow, counts: &[(String, i64)]) -> Result<CourseView, AppError> {
    let template =
        Template::parse(&row.template).ok_or_else(|| AppError::Internal(anyhow::anyhow!("course template")))?;
    let options: CourseOptions = serde_json::from_str(&row.options).map_err(|e| AppError::Internal(e.into()))?;
    let first: Date = row.first_date.parse().map_err(|e: jiff::Error| AppError::Internal(e.into()))?;
    let plan = course::propose(template, first, &options).map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let count = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    let done = count("completed");
    let dosing: Vec<&Planned> = plan.iter().filter(|p| p.kind == SessionKind::Dosing).collect();
    let next = dosing.get(usize::try_from(done).unwrap_or(0));
    Ok(CourseView {
        id: row.id,
        template: row.template.clone(),
        first_date: row.first_date.clone(),
        status: row.status.clone(),
        options,
        dosing_planned: dosing.len(),
        dosing_booked: count("booked"),
        dosing_done: done,
        dosing_left: i64::try_from(dosing.len()).unwrap_or(0) - done,
        phase: next.map_or(Phase::Maintenance, |p| p.phase),
        review_due: plan.iter().find(|p| p.kind == SessionKind::CourseReview).map(|p| p.date.to_string()),
        plan,
    })
}

/// Starts a course (prescribers). The signed decision must allow the template's route and name
/// the template as the course for it.
pub async fn start(
    state: &AppState,
    user: &CurrentUser,
    patient: PatientId,
    template: &str,
    first_date: &str,
    options: CourseOptions,
) -> Result<CourseView, AppError> {
    patients::get(&state.db, user.clinic, patient).await?.ok_or(AppError::NotFound)?;
    let template =
        Template::parse(template.trim()).ok_or_else(|| invalid("template", "SPRAVATO-TRD, IV-6, KAP-SL or KAP-IM"))?;
    let first: Date = first_date.trim().parse().map_err(|_| invalid("first_date", "give the date as YYYY-MM-DD"))?;
    course::propose(template, first, &options).map_err(|e| invalid(e.field, e.message))?;
    let decision = kapstone_store::eligibility::decisions(&state.db, patient).await?.into_iter().next();
    let allowed = decision
        .as_ref()
        .filter(|d| d.verdict == "eligible")
        .map(crate::app::eligibility::allowed_routes)
        .unwrap_or_default();
    if !allowed.contains(&template.route()) {
        return Err(invalid(
            "template",
            format!("the signed eligibility decision does not allow {}", template.route().label()),
        ));
    }
    let json = serde_json::to_string(&options).map_err(|e| AppError::Internal(e.into()))?;
    let mut tx = state.db.begin().await?;
    let id = store::insert_course(&mut tx, user.clinic, patient, template.as_str(), &first.to_string(), &json, user.id)
        .await?;
    let mut e = user.event(AuditAction::AppointmentChanged, "treatment_course", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    e.reason = Some(format!("course {} started", template.as_str()));
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    let row = store::course(&state.db, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    view(&row, &[])
}

pub async fn of_patient(state: &AppState, user: &CurrentUser, patient: PatientId) -> Result<Vec<CourseView>, AppError> {
    let mut out = Vec::new();
    for row in store::courses_of_patient(&state.db, user.clinic, patient).await? {
        let counts = store::course_counts(&state.db, row.id).await?;
        out.push(view(&row, &counts)?);
    }
    Ok(out)
}

/// The outcome of booking one planned dosing date.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanBooking {
    pub date: String,
    pub appointment_id: Option<Uuid>,
    pub refused: Option<String>,
}

/// Books every future dosing session of the plan at `time` (local) with these people and chair;
/// a date that cannot be booked is reported, not fatal, so the rest of the plan is booked.
pub async fn book_plan(
    state: &AppState,
    user: &CurrentUser,
    course_id: Uuid,
    time: &str,
    staff_ids: &[String],
    room_id: Option<&str>,
) -> Result<Vec<PlanBooking>, AppError> {
    let row = store::course(&state.db, user.clinic, course_id).await?.ok_or(AppError::NotFound)?;
    if row.status != "active" {
        return Err(invalid("id", format!("this course is {}", row.status)));
    }
    let v = view(&row, &[])?;
    // Dates that already have a session of this course are left alone (booking twice is safe).
    let booked_days: Vec<Date> = store::appointments_of_patient(&state.db, PatientId::from_uuid(row.patient_id))
        .await?
        .into_iter()
        .filter(|a| a.course_id == Some(course_id) && a.status == "booked")
        .map(|a| super::scheduling::to_jiff(a.start_at.0).to_zoned(jiff::tz::TimeZone::UTC).date())
        .collect();
    let template = Template::parse(&row.template).ok_or(AppError::NotFound)?;
    let at: Time = time.trim().parse().map_err(|_| invalid("time", "give the local time as HH:MM"))?;
    let kind = types(state, user)
        .await?
        .into_iter()
        .find(|(_, t, active)| *active && t.kind == AppointmentKind::Dosing && t.route == Some(template.route()))
        .map(|(_, t, _)| t.code)
        .ok_or_else(|| invalid("template", "the clinic has no dosing appointment type for this route"))?;
    let location = store::locations(&state.db, user.clinic).await?.into_iter().next().ok_or(AppError::NotFound)?;
    let tz = time_zone(&location.time_zone)?;
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    for p in v.plan.iter().filter(|p| p.kind == SessionKind::Dosing) {
        let start = kapstone_domain::scheduling::instant(&tz, p.date, at).map_err(|e| invalid(e.field, e.message))?;
        if start <= now || booked_days.contains(&start.to_zoned(jiff::tz::TimeZone::UTC).date()) {
            continue;
        }
        let req = BookingRequest {
            patient_id: row.patient_id.to_string(),
            kind: kind.clone(),
            start: start.to_string(),
            staff_ids: staff_ids.to_vec(),
            room_id: room_id.map(str::to_owned),
            location_id: Some(location.id.to_string()),
            course: Some(course_id),
        };
        out.push(match super::scheduling::book(state, user, &req, None).await {
            Ok(b) => PlanBooking { date: p.date.to_string(), appointment_id: Some(b.id), refused: None },
            Err(e @ (AppError::Invalid(_) | AppError::Conflict { .. })) => {
                PlanBooking { date: p.date.to_string(), appointment_id: None, refused: Some(e.public_message("")) }
            }
            Err(e) => return Err(e),
        });
    }
    Ok(out)
}
