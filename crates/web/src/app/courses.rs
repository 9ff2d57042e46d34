//! Treatment courses: a prescriber starts one from a template for a route the signed decision
//! allows; the plan is proposed from the template; the dosing sessions can be booked in one go
//! at a chosen local time; progress is read from the appointments linked to the course.

use jiff::civil::{Date, Time};
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::course::{self, CourseOptions, Phase, Planned, SessionKind, Template};
use kapstone_domain::scheduling::AppointmentKind;
use kapstone_domain::{FieldError, PatientId};
use kapstone_store::scheduling::{self as store, AppointmentRow, CourseRow};
use kapstone_store::{audit, patients};
use uuid::Uuid;

use super::scheduling::{BookingRequest, Checked, book_in, check, time_zone, types};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid(FieldError::new(field, message))
}

/// A course with its plan and progress.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct CourseView {
    pub id: Uuid,
    pub template: String,
    pub first_date: String,
    #[schemars(with = "kapstone_domain::course::CourseStatus")]
    pub status: String,
    pub options: CourseOptions,
    pub plan: Vec<Planned>,
    pub dosing_planned: usize,
    pub dosing_booked: i64,
    pub dosing_done: i64,
    pub dosing_left: i64,
    pub integration_booked: i64,
    pub integration_done: i64,
    /// The phase of the next dosing session not yet done.
    pub phase: Phase,
    pub review_due: Option<String>,
}

/// `counts`: (status, kind, count) of the course's appointments.
fn view(row: &CourseRow, counts: &[(String, AppointmentKind, i64)]) -> Result<CourseView, AppError> {
    let template =
        Template::parse(&row.template).ok_or_else(|| AppError::Internal(anyhow::anyhow!("course template")))?;
    let options: CourseOptions = serde_json::from_str(&row.options).map_err(|e| AppError::Internal(e.into()))?;
    let first: Date = row.first_date.parse().map_err(|e: jiff::Error| AppError::Internal(e.into()))?;
    let plan = course::propose(template, first, &options).map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let count_of = |kind: AppointmentKind, s: &str| {
        counts.iter().filter(|(st, k, _)| st == s && *k == kind).map(|(_, _, n)| *n).sum::<i64>()
    };
    let count = |s: &str| count_of(AppointmentKind::Dosing, s);
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
        dosing_left: (i64::try_from(dosing.len()).unwrap_or(0) - done).max(0),
        integration_booked: count_of(AppointmentKind::Integration, "booked"),
        integration_done: count_of(AppointmentKind::Integration, "completed"),
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
    // Read back before the commit: the view is stored with the course (issue 9).
    let row = store::course_in(&mut tx, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    let out = view(&row, &[])?;
    tx.commit_answering(&out).await?;
    Ok(out)
}

pub async fn of_patient(state: &AppState, user: &CurrentUser, patient: PatientId) -> Result<Vec<CourseView>, AppError> {
    let kinds: Vec<(Uuid, AppointmentKind)> =
        types(state, user).await?.into_iter().map(|(id, t, _)| (id, t.kind)).collect();
    let mut out = Vec::new();
    for row in store::courses_of_patient(&state.db, user.clinic, patient).await? {
        let counts: Vec<(String, AppointmentKind, i64)> = store::course_counts(&state.db, row.id)
            .await?
            .into_iter()
            .filter_map(|(status, type_id, n)| {
                kinds.iter().find(|(id, _)| *id == type_id).map(|(_, k)| (status, *k, n))
            })
            .collect();
        out.push(view(&row, &counts)?);
    }
    Ok(out)
}

/// The outcome of booking one planned date.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PlanBooking {
    pub date: String,
    /// `dosing` or `integration`.
    pub kind: &'static str,
    pub appointment_id: Option<Uuid>,
    pub refused: Option<String>,
}

/// Books every future dosing session of the plan at `time` (local) with these people and chair,
/// and (with `integration`) each planned integration session at the first free time that day;
/// a date that cannot be booked is reported, not fatal, so the rest of the plan is booked.
///
/// Every date is checked first (reading the committed schedule), then all are booked in one
/// transaction that commits with the outcomes (issue 9: a retry after a crash gets them): a date
/// that clashes there is rolled back alone ([`super::scheduling::book_in`]), and the slots'
/// claims still refuse a double booking, across server processes too.
pub async fn book_plan(
    state: &AppState,
    user: &CurrentUser,
    course_id: Uuid,
    time: &str,
    staff_ids: &[String],
    room_id: Option<&str>,
    integration: bool,
) -> Result<Vec<PlanBooking>, AppError> {
    let row = store::course(&state.db, user.clinic, course_id).await?.ok_or(AppError::NotFound)?;
    if row.status != "active" {
        return Err(invalid("id", format!("this course is {}", row.status)));
    }
    let v = view(&row, &[])?;
    let template = Template::parse(&row.template).ok_or(AppError::NotFound)?;
    let at: Time = time.trim().parse().map_err(|_| invalid("time", "give the local time as HH:MM"))?;
    let all_types = types(state, user).await?;
    let kind = all_types
        .iter()
        .find(|(_, t, active)| *active && t.kind == AppointmentKind::Dosing && t.route == Some(template.route()))
        .map(|(_, t, _)| t.code.clone())
        .ok_or_else(|| invalid("template", "the clinic has no dosing appointment type for this route"))?;
    let integration_type = all_types
        .iter()
        .find(|(_, t, active)| *active && t.kind == AppointmentKind::Integration)
        .map(|(id, t, _)| (*id, t.code.clone()));
    // The chair's location (its time zone turns the local time into instants), else the first.
    let room_location = match room_id.filter(|r| !r.trim().is_empty()) {
        Some(raw) => {
            let id: Uuid = raw.trim().parse().map_err(|_| invalid("room_id", "not a room id"))?;
            let room = store::rooms(&state.db, user.clinic).await?.into_iter().find(|r| r.id == id);
            Some(room.ok_or_else(|| invalid("room_id", "not a room of this clinic"))?.location_id)
        }
        None => None,
    };
    let location = store::locations(&state.db, user.clinic)
        .await?
        .into_iter()
        .find(|l| room_location.is_none_or(|r| r == l.id))
        .ok_or_else(|| invalid("location_id", "the clinic has no location yet"))?;
    let tz = time_zone(&location.time_zone)?;
    // Days (local) that already have a session of this kind in this course are left alone, so
    // booking the plan twice is safe.
    let patient_id = PatientId::from_uuid(row.patient_id);
    let course_days = |rows: Vec<AppointmentRow>| -> Vec<(Date, AppointmentKind)> {
        rows.into_iter()
            .filter(|a| a.course_id == Some(course_id) && matches!(a.status.as_str(), "booked" | "completed"))
            .filter_map(|a| {
                let kind = all_types.iter().find(|(id, _, _)| *id == a.type_id).map(|(_, t, _)| t.kind)?;
                Some((super::scheduling::to_jiff(a.start_at.0).to_zoned(tz.clone()).date(), kind))
            })
            .collect()
    };
    let booked = course_days(store::appointments_of_patient(&state.db, patient_id).await?);
    let has = |d: Date, k: AppointmentKind| booked.contains(&(d, k));
    let now = jiff::Timestamp::now();
    // Each date to book, checked (or refused) against the committed schedule.
    let mut steps: Vec<(Date, AppointmentKind, Result<Checked, String>)> = Vec::new();
    for p in v.plan.iter().filter(|p| p.kind == SessionKind::Dosing) {
        let start = kapstone_domain::scheduling::instant(&tz, p.date, at).map_err(|e| invalid(e.field, e.message))?;
        if start <= now || has(p.date, AppointmentKind::Dosing) {
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
        steps.push((p.date, AppointmentKind::Dosing, refusal(check(state, user, &req, false).await)?));
    }
    if integration {
        let today = now.to_zoned(tz.clone()).date();
        for p in v.plan.iter().filter(|p| p.kind == SessionKind::Integration && p.date >= today) {
            if has(p.date, AppointmentKind::Integration) {
                continue;
            }
            let Some((_, code)) = &integration_type else {
                steps.push((
                    p.date,
                    AppointmentKind::Integration,
                    Err("the clinic has no integration appointment type".into()),
                ));
                continue;
            };
            let day = p.date.to_string();
            let patient = row.patient_id.to_string();
            let place = location.id.to_string();
            // Not at a time this plan is about to book in the same transaction (a dosing session
            // the same day): its claims count as made.
            let planned: Vec<(String, i64)> =
                steps.iter().filter_map(|(_, _, c)| c.as_ref().ok()).flat_map(Checked::claims).collect();
            let offers = super::scheduling::free_slots_besides(
                state,
                user,
                code,
                &day,
                &day,
                Some(&patient),
                Some(&place),
                1,
                &planned,
            )
            .await?;
            let Some(offer) = offers.into_iter().next() else {
                steps.push((p.date, AppointmentKind::Integration, Err("no free time that day".into())));
                continue;
            };
            let req = BookingRequest {
                patient_id: patient,
                kind: code.clone(),
                start: offer.start.to_string(),
                staff_ids: offer.staff_ids.iter().map(ToString::to_string).collect(),
                room_id: offer.room_id.map(|r| r.to_string()),
                location_id: Some(place),
                course: Some(course_id),
            };
            steps.push((p.date, AppointmentKind::Integration, refusal(check(state, user, &req, false).await)?));
        }
    }
    let outcome = |date: Date, kind: AppointmentKind, appointment_id: Option<Uuid>, refused: Option<String>| {
        let kind = if kind == AppointmentKind::Dosing { "dosing" } else { "integration" };
        PlanBooking { date: date.to_string(), kind, appointment_id, refused }
    };
    if steps.iter().all(|(_, _, c)| c.is_err()) {
        // Nothing to book, nothing to store.
        return Ok(steps.into_iter().map(|(d, k, c)| outcome(d, k, None, c.err())).collect());
    }
    let mut tx = state.db.begin().await?;
    // One plan booking of this patient at a time (SQLite's write lock is one already), reading the
    // days booked since the check: two at once book each date once.
    tx.lock_patient(patient_id).await?;
    let booked = course_days(store::appointments_of_patient_in(&mut tx, patient_id).await?);
    let mut out = Vec::new();
    for (date, kind, checked) in steps {
        let checked = match checked {
            Err(why) => {
                out.push(outcome(date, kind, None, Some(why)));
                continue;
            }
            // Booked since the check (by another booking of the plan): left alone.
            Ok(_) if booked.contains(&(date, kind)) => continue,
            Ok(c) => c,
        };
        out.push(match refusal(book_in(&mut tx, user, checked, None).await)? {
            Ok(b) => outcome(date, kind, Some(b.id), None),
            Err(why) => outcome(date, kind, None, Some(why)),
        });
    }
    if out.iter().any(|o| o.appointment_id.is_some()) {
        tx.commit_answering(&out).await?;
    }
    Ok(out)
}

/// A date's refusal (a rule or a clash: reported, and the rest of the plan booked) as its message;
/// any other error stops the booking.
fn refusal<T>(r: Result<T, AppError>) -> Result<Result<T, String>, AppError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e @ (AppError::Invalid(_) | AppError::Conflict { .. })) => Ok(Err(e.public_message(""))),
        Err(e) => Err(e),
    }
}
