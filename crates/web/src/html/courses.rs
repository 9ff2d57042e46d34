//! A patient's treatment courses: the plan proposed by the template with what is booked and
//! done, a prescriber's form to start a course, and the front desk's form to book the plan.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use kapstone_domain::PatientId;
use kapstone_domain::course::{CourseOptions, SessionKind};
use kapstone_domain::permissions::{Action, allows};
use kapstone_store::scheduling as store;

use super::{Layout, PageResult, render, sentence};
use crate::app::courses::{self, CourseView, PlanBooking};
use crate::app::scheduling as sched;
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

pub struct PlanRow {
    pub date: String,
    pub what: String,
    pub phase: &'static str,
    pub note: String,
    /// booked / completed / no-show … or empty when nothing is booked that day.
    pub status: String,
}

pub struct CourseCard {
    pub id: String,
    pub view: CourseView,
    pub phase: &'static str,
    pub rows: Vec<PlanRow>,
    /// The course reviews, oldest first.
    pub reviews: Vec<crate::app::outcomes::ReviewView>,
}

#[derive(Template)]
#[template(path = "courses.html")]
struct CoursesPage {
    layout: Layout,
    patient_id: String,
    patient: String,
    courses: Vec<CourseCard>,
    /// Templates the signed decision allows (for the start form).
    templates: Vec<&'static str>,
    can_start: bool,
    can_book: bool,
    /// (id, name, role) of bookable staff.
    staff: Vec<(String, String, String)>,
    /// (id, "location — chair")
    rooms: Vec<(String, String)>,
    notice: Option<String>,
    error: Option<String>,
    results: Vec<PlanBooking>,
    defaults: CourseOptions,
    /// The outcome charts the course review is decided on (clinicians only).
    outcome_panels: Vec<super::outcomes::ChartPanel>,
    can_review: bool,
}

fn phase_label(p: kapstone_domain::course::Phase) -> &'static str {
    match p {
        kapstone_domain::course::Phase::Induction => "induction",
        kapstone_domain::course::Phase::Maintenance => "maintenance",
    }
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    patient: PatientId,
    notice: Option<String>,
    error: Option<String>,
    results: Vec<PlanBooking>,
) -> PageResult<Html<String>> {
    let p = crate::app::patients::read(state, user, patient).await?;
    let views = courses::of_patient(state, user, patient).await?;
    let zones = sched::zones(state, user.clinic).await?;
    let types = sched::types(state, user).await?;
    let appointments = store::appointments_of_patient(&state.db, patient).await?;
    let cards = views
        .into_iter()
        .map(|v| {
            let mine: Vec<_> = appointments.iter().filter(|a| a.course_id == Some(v.id)).collect();
            let rows = v
                .plan
                .iter()
                .map(|planned| {
                    let kind = match planned.kind {
                        SessionKind::Dosing => kapstone_domain::scheduling::AppointmentKind::Dosing,
                        SessionKind::Integration => kapstone_domain::scheduling::AppointmentKind::Integration,
                        SessionKind::CourseReview => kapstone_domain::scheduling::AppointmentKind::CourseReview,
                    };
                    let status = mine
                        .iter()
                        .filter(|a| {
                            sched::to_jiff(a.start_at.0).to_zoned(zones.of(a.location_id).clone()).date()
                                == planned.date
                                && types.iter().any(|(id, t, _)| *id == a.type_id && t.kind == kind)
                        })
                        .map(|a| a.status.replace('_', "-"))
                        .find(|s| s != "rescheduled" && s != "cancelled")
                        .unwrap_or_default();
                    PlanRow {
                        date: planned.date.to_string(),
                        what: match (planned.kind, planned.dosing_number) {
                            (SessionKind::Dosing, Some(n)) => format!("Dosing session {n}"),
                            (SessionKind::Dosing, None) => "Dosing session".into(),
                            (SessionKind::Integration, _) => "Integration session".into(),
                            (SessionKind::CourseReview, _) => "Course review".into(),
                        },
                        phase: phase_label(planned.phase),
                        note: planned.note.unwrap_or_default().to_owned(),
                        status,
                    }
                })
                .collect();
            CourseCard { id: v.id.to_string(), phase: phase_label(v.phase), rows, view: v, reviews: Vec::new() }
        })
        .collect::<Vec<CourseCard>>();
    let can_read_clinical = allows(Some(user.role), Action::ReadClinicalRecord);
    let mut cards = cards;
    let mut outcome_panels = Vec::new();
    if can_read_clinical {
        for c in &mut cards {
            c.reviews = crate::app::outcomes::reviews(state, user, c.view.id).await?;
        }
        if !cards.is_empty() {
            let o = crate::app::outcomes::of_patient(state, user, patient).await?;
            let zone = super::outcomes::zone(state, user.clinic).await?;
            outcome_panels = super::outcomes::panels(&o, &zone, "course");
        }
    }
    let decision = kapstone_store::eligibility::decisions(&state.db, patient).await?.into_iter().next();
    let templates = decision
        .as_ref()
        .filter(|d| d.verdict == "eligible")
        .map(crate::app::eligibility::allowed_routes)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| r.course_templates().iter().copied())
        .collect();
    let staff = sched::staff(state, user)
        .await?
        .into_iter()
        .map(|u| (u.id.to_string(), u.display_name.clone(), u.role.clone()))
        .collect();
    let rooms = store::rooms(&state.db, user.clinic)
        .await?
        .into_iter()
        .filter(|r| r.active)
        .map(|r| (r.id.to_string(), format!("{} — {}", zones.place(r.location_id), r.name)))
        .collect();
    render(&CoursesPage {
        layout: Layout::for_user("Treatment courses", user, "/patients"),
        patient_id: patient.to_string(),
        patient: format!("{} {}", p.given_name, p.family_name),
        courses: cards,
        templates,
        can_start: allows(Some(user.role), Action::StartCourse),
        can_book: allows(Some(user.role), Action::BookAppointments),
        staff,
        rooms,
        notice,
        error,
        results,
        defaults: CourseOptions::default(),
        outcome_panels,
        can_review: allows(Some(user.role), Action::ReviewCourse),
    })
}

fn patient_id(raw: &str) -> Result<PatientId, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

/// `GET /patients/{id}/courses`.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    page(&state, &user, patient_id(&id)?, None, None, Vec::new()).await
}

fn pairs(body: &str) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_str(body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })
}

fn get<'a>(pairs: &'a [(String, String)], k: &str) -> &'a str {
    pairs.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v.trim())
}

async fn refused(state: &AppState, user: &CurrentUser, patient: PatientId, e: AppError) -> PageResult<Response> {
    match e {
        e @ (AppError::Invalid(_) | AppError::Conflict { .. } | AppError::InvalidItem { .. }) => {
            let field = e.field().map(|f| format!(" ({f})")).unwrap_or_default();
            let msg = format!("{}{field}", sentence(&e.public_message("")));
            let page = page(state, user, patient, None, Some(msg), Vec::new()).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        e => Err(e.into()),
    }
}

/// The course options of the start form; an empty box keeps the clinic default.
fn course_options(p: &[(String, String)]) -> Result<CourseOptions, AppError> {
    let mut o = CourseOptions::default();
    let fields: [(&'static str, &mut u8); 8] = [
        ("spravato_maintenance_every_weeks", &mut o.spravato_maintenance_every_weeks),
        ("iv_per_week", &mut o.iv_per_week),
        ("kap_sessions", &mut o.kap_sessions),
        ("kap_every_weeks", &mut o.kap_every_weeks),
        ("integration_days_after", &mut o.integration_days_after),
        ("maintenance_every_weeks", &mut o.maintenance_every_weeks),
        ("maintenance_sessions", &mut o.maintenance_sessions),
        ("review_days_after_induction", &mut o.review_days_after_induction),
    ];
    for (name, slot) in fields {
        let raw = get(p, name);
        if !raw.is_empty() {
            *slot = raw.parse().map_err(|_| {
                AppError::Invalid(kapstone_domain::FieldError::new(name, "give a whole number from 0 to 255"))
            })?;
        }
    }
    Ok(o)
}

/// `POST /patients/{id}/courses`: a prescriber starts a course.
pub async fn start(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let patient = patient_id(&id)?;
    let p = pairs(&body)?;
    let options = match course_options(&p) {
        Ok(o) => o,
        Err(e) => return refused(&state, &user, patient, e).await,
    };
    match courses::start(&state, &user, patient, get(&p, "template"), get(&p, "first_date"), options).await {
        Ok(_) => {
            Ok(page(&state, &user, patient, Some("Course started.".into()), None, Vec::new()).await?.into_response())
        }
        Err(e) => refused(&state, &user, patient, e).await,
    }
}

/// `POST /patients/{id}/courses/{course}/book`: books the plan.
pub async fn book(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, course)): Path<(String, String)>,
    body: String,
) -> PageResult<Response> {
    let patient = patient_id(&id)?;
    let course: uuid::Uuid = course.parse().map_err(|_| AppError::NotFound)?;
    // The course must be this patient's: the URL names both.
    let row = store::course(&state.db, user.clinic, course).await?.ok_or(AppError::NotFound)?;
    if row.patient_id != patient.as_uuid() {
        return Err(AppError::NotFound.into());
    }
    let p = pairs(&body)?;
    let staff: Vec<String> = p.iter().filter(|(k, _)| k == "staff_id").map(|(_, v)| v.clone()).collect();
    let room = Some(get(&p, "room_id")).filter(|r| !r.is_empty());
    let integration = get(&p, "integration") == "yes";
    match courses::book_plan(&state, &user, course, get(&p, "time"), &staff, room, integration).await {
        Ok(results) => {
            let booked = results.iter().filter(|r| r.appointment_id.is_some()).count();
            let notice = format!("{booked} session(s) booked; {} could not be.", results.len() - booked);
            Ok(page(&state, &user, patient, Some(notice), None, results).await?.into_response())
        }
        Err(e) => refused(&state, &user, patient, e).await,
    }
}

/// `POST /patients/{id}/courses/{course}/review`: a prescriber records the course review.
pub async fn review(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, course)): Path<(String, String)>,
    body: String,
) -> PageResult<Response> {
    let patient = patient_id(&id)?;
    let course: uuid::Uuid = course.parse().map_err(|_| AppError::NotFound)?;
    let row = store::course(&state.db, user.clinic, course).await?.ok_or(AppError::NotFound)?;
    if row.patient_id != patient.as_uuid() {
        return Err(AppError::NotFound.into());
    }
    let p = pairs(&body)?;
    let decision = get(&p, "decision").to_owned();
    let options = if decision == "modify" {
        // The form shows the course's options; an empty box keeps the clinic default.
        match course_options(&p) {
            Ok(o) => Some(o),
            Err(e) => return refused(&state, &user, patient, e).await,
        }
    } else {
        None
    };
    let input = crate::app::outcomes::ReviewInput { decision, options, reason: get(&p, "reason").to_owned() };
    match crate::app::outcomes::review(&state, &user, course, &input).await {
        Ok(r) => {
            let notice = format!(
                "Course review recorded: {}.{}",
                r.decision,
                if r.cancelled_bookings > 0 {
                    format!(" {} future booking(s) cancelled.", r.cancelled_bookings)
                } else {
                    String::new()
                }
            );
            Ok(page(&state, &user, patient, Some(notice), None, Vec::new()).await?.into_response())
        }
        Err(e) => refused(&state, &user, patient, e).await,
    }
}
