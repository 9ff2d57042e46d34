//! Schedule pages: the day by chair or by staff member, the week, booking from free slots, and
//! cancel / no-show. All times are shown in the location's time zone.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use kapstone_domain::PatientId;
use kapstone_domain::permissions::{Action, allows};
use kapstone_store::scheduling as store;

use super::{Layout, PageResult, render, sentence};
use crate::app::scheduling::{self as app, BookingRequest};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// One appointment as a card.
pub struct Card {
    pub id: String,
    /// Unique on the page (a card shows in every staff member's column of the staff view).
    pub dom: String,
    pub time: String,
    pub type_name: String,
    pub patient: String,
    pub patient_id: String,
    pub staff: String,
    pub room: String,
    pub status: String,
    pub live: bool,
    pub started: bool,
}

/// A column of the day view (a chair or a person) or of the week view (a day).
pub struct Column {
    pub title: String,
    pub cards: Vec<Card>,
}

#[derive(Template)]
#[template(path = "schedule.html")]
struct SchedulePage {
    layout: Layout,
    title: String,
    date: String,
    prev: String,
    next: String,
    view: &'static str,
    columns: Vec<Column>,
    unassigned: Vec<Card>,
    zone: String,
    can_book: bool,
    notice: Option<String>,
    /// (id, name) of each location when there is more than one, and the one shown.
    locations: Vec<(String, String)>,
    location: String,
    /// `&location=…` for links that stay at this location ("" with a single location).
    loc_q: String,
}

#[derive(serde::Deserialize)]
pub struct DayQuery {
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    view: Option<String>,
    #[serde(default)]
    notice: Option<String>,
    #[serde(default)]
    location: Option<String>,
}

fn hm(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    format!("{:02}:{:02}", z.hour(), z.minute())
}

pub async fn day(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<DayQuery>,
) -> PageResult<Html<String>> {
    // One location at a time: its chairs, its people's day, its time zone.
    let zones = app::zones(&state, user.clinic).await?;
    let location: Option<uuid::Uuid> = match q.location.as_deref().filter(|l| !l.is_empty()) {
        Some(l) => Some(
            l.parse()
                .ok()
                .filter(|id| zones.locations().any(|(x, _)| x == *id))
                .ok_or_else(|| kapstone_domain::FieldError::new("location", "not a location of this clinic"))?,
        ),
        None => zones.locations().next().map(|(id, _)| id),
    };
    let tz = location.map_or_else(|| zones.default_zone().clone(), |l| zones.of(l).clone());
    let zone = tz.iana_name().unwrap_or("UTC").to_owned();
    let locations: Vec<(String, String)> = zones.locations().map(|(id, n)| (id.to_string(), n.to_owned())).collect();
    let loc_q = match location {
        Some(l) if locations.len() > 1 => format!("&location={l}"),
        _ => String::new(),
    };
    let today = Timestamp::now().to_zoned(tz.clone()).date();
    let date: Date = match q.date.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => d.parse().map_err(|_| kapstone_domain::FieldError::new("date", "give a date as YYYY-MM-DD"))?,
        None => today,
    };
    let week = q.view.as_deref() == Some("week");
    let by_staff = q.view.as_deref() == Some("staff");
    let (first, days) = if week {
        let monday = date.checked_sub(i64::from(date.weekday().to_monday_zero_offset()).days()).unwrap_or(date);
        (monday, 7)
    } else {
        (date, 1)
    };
    let start = kapstone_domain::scheduling::instant(&tz, first, jiff::civil::Time::midnight())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let last = first.checked_add(days.days()).unwrap_or(first);
    let end = kapstone_domain::scheduling::instant(&tz, last, jiff::civil::Time::midnight())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let mut rows = app::between(&state, &user, start, end).await?;
    rows.retain(|(a, _)| Some(a.location_id) == location);
    let types = app::types(&state, &user).await?;
    let mut rooms = store::rooms(&state.db, user.clinic).await?;
    rooms.retain(|r| Some(r.location_id) == location);
    let staff = kapstone_store::users::list(&state.db, user.clinic).await?;
    let now = Timestamp::now();
    let mut cards = Vec::new();
    for (a, people) in &rows {
        let p = kapstone_store::patients::get(&state.db, user.clinic, PatientId::from_uuid(a.patient_id)).await?;
        let (s, e) = (app::to_jiff(a.start_at.0), app::to_jiff(a.end_at.0));
        cards.push((
            a.clone(),
            people.clone(),
            Card {
                id: a.id.to_string(),
                dom: a.id.to_string(),
                time: format!("{}–{}", hm(s, &tz), hm(e, &tz)),
                type_name: types
                    .iter()
                    .find(|(id, _, _)| *id == a.type_id)
                    .map_or_else(String::new, |t| t.1.name.clone()),
                patient: p.as_ref().map_or_else(String::new, |p| app::initials(&p.given_name, &p.family_name)),
                patient_id: a.patient_id.to_string(),
                staff: people
                    .iter()
                    .filter_map(|u| staff.iter().find(|x| x.id == *u).map(|x| x.display_name.clone()))
                    .collect::<Vec<_>>()
                    .join(", "),
                room: a
                    .room_id
                    .and_then(|r| rooms.iter().find(|x| x.id == r))
                    .map_or_else(String::new, |r| r.name.clone()),
                status: a.status.replace('_', "-"),
                live: a.status == "booked",
                started: s <= now,
            },
        ));
    }
    let mut unassigned = Vec::new();
    let columns: Vec<Column> = if week {
        (0..7)
            .map(|i| {
                let d = first.checked_add(i.days()).unwrap_or(first);
                Column {
                    title: format!("{} {d}", d.weekday_name()),
                    cards: cards
                        .iter()
                        .filter(|(a, _, _)| app::to_jiff(a.start_at.0).to_zoned(tz.clone()).date() == d)
                        .map(|(_, _, c)| clone_card(c))
                        .collect(),
                }
            })
            .collect()
    } else if by_staff {
        let mut cols: Vec<Column> = app::staff(&state, &user)
            .await?
            .iter()
            .map(|u| Column {
                title: u.display_name.clone(),
                cards: cards
                    .iter()
                    .filter(|(_, people, _)| people.contains(&u.id))
                    .map(|(_, _, c)| Card { dom: format!("{}-{}", c.id, u.id), ..clone_card(c) })
                    .collect(),
            })
            .collect();
        cols.retain(|c| !c.cards.is_empty());
        cols
    } else {
        for (a, _, c) in &cards {
            if a.room_id.is_none() {
                unassigned.push(clone_card(c));
            }
        }
        rooms
            .iter()
            .filter(|r| r.active)
            .map(|r| Column {
                title: r.name.clone(),
                cards: cards
                    .iter()
                    .filter(|(a, _, _)| a.room_id == Some(r.id))
                    .map(|(_, _, c)| clone_card(c))
                    .collect(),
            })
            .collect()
    };
    let step = if week { 7 } else { 1 };
    let view = if week {
        "week"
    } else if by_staff {
        "staff"
    } else {
        "chair"
    };
    render(&SchedulePage {
        layout: Layout::for_user("Schedule", &user, "/schedule"),
        title: if week { format!("Week of {first}") } else { format!("{} {date}", date.weekday_name()) },
        date: date.to_string(),
        prev: date.checked_sub(step.days()).unwrap_or(date).to_string(),
        next: date.checked_add(step.days()).unwrap_or(date).to_string(),
        view,
        columns,
        unassigned,
        zone,
        can_book: allows(Some(user.role), Action::BookAppointments),
        notice: q.notice.map(|n| sentence(&n)),
        location: location.map(|l| l.to_string()).unwrap_or_default(),
        locations: if locations.len() > 1 { locations } else { Vec::new() },
        loc_q,
    })
}

fn clone_card(c: &Card) -> Card {
    Card {
        id: c.id.clone(),
        dom: c.dom.clone(),
        time: c.time.clone(),
        type_name: c.type_name.clone(),
        patient: c.patient.clone(),
        patient_id: c.patient_id.clone(),
        staff: c.staff.clone(),
        room: c.room.clone(),
        status: c.status.clone(),
        live: c.live,
        started: c.started,
    }
}

trait WeekdayName {
    fn weekday_name(&self) -> &'static str;
}

impl WeekdayName for Date {
    fn weekday_name(&self) -> &'static str {
        match self.weekday() {
            jiff::civil::Weekday::Monday => "Monday",
            jiff::civil::Weekday::Tuesday => "Tuesday",
            jiff::civil::Weekday::Wednesday => "Wednesday",
            jiff::civil::Weekday::Thursday => "Thursday",
            jiff::civil::Weekday::Friday => "Friday",
            jiff::civil::Weekday::Saturday => "Saturday",
            jiff::civil::Weekday::Sunday => "Sunday",
        }
    }
}

/// A free slot as a one-click booking form.
pub struct OfferView {
    pub when: String,
    pub start: String,
    pub staff_ids: Vec<String>,
    pub staff: String,
    pub room_id: String,
    pub room: String,
}

#[derive(Template)]
#[template(path = "schedule_book.html")]
struct BookPage {
    layout: Layout,
    patient_id: String,
    patient: String,
    types: Vec<(String, String)>,
    kind: String,
    from: String,
    to: String,
    offers: Vec<OfferView>,
    searched: bool,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct BookQuery {
    patient: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

async fn book_page(
    state: &AppState,
    user: &CurrentUser,
    q: &BookQuery,
    error: Option<String>,
) -> PageResult<Html<String>> {
    let patient_id: PatientId = q.patient.parse().map_err(|_| AppError::NotFound)?;
    let p = crate::app::patients::read(state, user, patient_id).await?;
    let zones = app::zones(state, user.clinic).await?;
    let many_places = zones.locations().count() > 1;
    let today = Timestamp::now().to_zoned(zones.default_zone().clone()).date();
    let from = q.from.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| today.to_string());
    let to =
        q.to.clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| today.checked_add(14.days()).unwrap_or(today).to_string());
    let types: Vec<(String, String)> =
        app::types(state, user).await?.into_iter().filter(|t| t.2).map(|(_, t, _)| (t.code, t.name)).collect();
    let kind = q.kind.clone().unwrap_or_default();
    let mut offers = Vec::new();
    let mut error = error;
    if !kind.is_empty() && error.is_none() {
        match app::free_slots(state, user, &kind, &from, &to, Some(&q.patient), None, 30).await {
            Ok(found) => {
                let staff = kapstone_store::users::list(&state.db, user.clinic).await?;
                let rooms = store::rooms(&state.db, user.clinic).await?;
                for o in found {
                    let z = o.start.to_zoned(zones.of(o.location_id).clone());
                    let place = if many_places { format!(" at {}", zones.place(o.location_id)) } else { String::new() };
                    offers.push(OfferView {
                        when: format!(
                            "{} {} {:02}:{:02}{place}",
                            z.date().weekday_name(),
                            z.date(),
                            z.hour(),
                            z.minute()
                        ),
                        start: o.start.to_string(),
                        staff_ids: o.staff_ids.iter().map(ToString::to_string).collect(),
                        staff: o
                            .staff_ids
                            .iter()
                            .filter_map(|id| staff.iter().find(|u| u.id == *id).map(|u| u.display_name.clone()))
                            .collect::<Vec<_>>()
                            .join(", "),
                        room_id: o.room_id.map(|r| r.to_string()).unwrap_or_default(),
                        room: o
                            .room_id
                            .and_then(|r| rooms.iter().find(|x| x.id == r))
                            .map_or_else(String::new, |r| r.name.clone()),
                    });
                }
            }
            Err(AppError::Invalid(e)) => error = Some(sentence(&e.message)),
            Err(e) => return Err(e.into()),
        }
    }
    render(&BookPage {
        layout: Layout::for_user("Book an appointment", user, "/schedule"),
        patient_id: q.patient.clone(),
        patient: format!("{} {}", p.given_name, p.family_name),
        types,
        searched: !kind.is_empty(),
        kind,
        from,
        to,
        offers,
        error,
    })
}

pub async fn book_form(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<BookQuery>,
) -> PageResult<Html<String>> {
    book_page(&state, &user, &q, None).await
}

/// `POST /schedule/book`: books an offered slot, then shows the day.
pub async fn book(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })?;
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let req = BookingRequest {
        patient_id: get("patient_id"),
        kind: get("type"),
        start: get("start"),
        staff_ids: pairs.iter().filter(|(k, _)| k == "staff_id").map(|(_, v)| v.clone()).collect(),
        room_id: Some(get("room_id")).filter(|r| !r.is_empty()),
        location_id: None,
        course: None,
    };
    match app::book(&state, &user, &req, None).await {
        Ok(b) => {
            let notice =
                if b.warnings.is_empty() { "Booked.".to_owned() } else { format!("Booked. {}", b.warnings.join("; ")) };
            let zones = app::zones(&state, user.clinic).await?;
            let day = b.start.to_zoned(zones.of(b.location_id).clone()).date();
            let url = format!("/schedule?date={day}&location={}&notice={}", b.location_id, urlencode(&notice));
            Ok(Redirect::to(&url).into_response())
        }
        Err(e @ (AppError::Invalid(_) | AppError::Conflict { .. } | AppError::InvalidItem { .. })) => {
            let status = e.status();
            let q = BookQuery { patient: req.patient_id.clone(), kind: Some(req.kind.clone()), from: None, to: None };
            let page = book_page(&state, &user, &q, Some(sentence(&e.public_message("")))).await?;
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).map(|x| x.trim_start_matches("x=").to_owned()).unwrap_or_default()
}

#[derive(serde::Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    date: String,
}

/// `POST /schedule/appointments/{id}`: cancel (with reason) or mark a no-show.
pub async fn change(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    axum::extract::Form(f): axum::extract::Form<ChangeForm>,
) -> PageResult<Response> {
    let id: uuid::Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let status = match f.status.as_str() {
        "cancelled" | "no_show" | "completed" => f.status.as_str(),
        _ => return Err(kapstone_domain::FieldError::new("status", "cancel, no-show or attended").into()),
    };
    let mut location = String::new();
    let notice = match app::change(&state, &user, id, status, Some(&f.reason)).await {
        Ok(a) => {
            location = format!("location={}&", a.row.location_id);
            match status {
                "cancelled" => "Cancelled; the time is free again.",
                "completed" => "Marked attended.",
                _ => "No-show recorded.",
            }
            .to_owned()
        }
        Err(e @ (AppError::Invalid(_) | AppError::Conflict { .. })) => e.public_message(""),
        Err(e) => return Err(e.into()),
    };
    let date = if f.date.is_empty() { String::new() } else { format!("date={}&", urlencode(&f.date)) };
    Ok(Redirect::to(&format!("/schedule?{date}{location}notice={}", urlencode(&notice))).into_response())
}

/// An appointment as the chart lists it: when (in its place's zone), type, status, upcoming, id.
pub type TimelineItem = (String, String, String, bool, String);

/// A patient's appointments for the chart (past and upcoming), in the location's zone.
pub fn timeline(appointments: Vec<store::ChartAppointmentRow>) -> Result<Vec<TimelineItem>, AppError> {
    let now = Timestamp::now();
    appointments
        .into_iter()
        .map(|a| {
            let kind = app::stored_type(&a.type_definition, &format_args!("of appointment {}", a.id))?;
            let s = app::to_jiff(a.start_at.0);
            let z = s.to_zoned(app::time_zone(&a.time_zone)?);
            Ok((
                format!("{} {} {:02}:{:02}", z.date().weekday_name(), z.date(), z.hour(), z.minute()),
                kind.name,
                a.status.replace('_', "-"),
                s >= now,
                a.id.to_string(),
            ))
        })
        .collect()
}

#[derive(Template)]
#[template(path = "schedule_appointment.html")]
struct AppointmentPage {
    layout: Layout,
    id: String,
    patient_id: String,
    patient: String,
    what: String,
    when: String,
    status: String,
    items: Vec<kapstone_domain::preparation::Item>,
    intention: String,
    flag: Option<&'static str>,
    can_book: bool,
    can_write_medication: bool,
    error: Option<String>,
    /// Free times to move this appointment to: (value "start|staff,staff|room", label).
    moves: Option<Vec<(String, String)>>,
    move_from: String,
    move_to: String,
    /// A dosing appointment this user may run: `Some(existing session id or "")`.
    session: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub struct MoveQuery {
    #[serde(default)]
    move_from: Option<String>,
    #[serde(default)]
    move_to: Option<String>,
}

async fn appointment_page(
    state: &AppState,
    user: &CurrentUser,
    id: uuid::Uuid,
    error: Option<String>,
    q: MoveQuery,
) -> PageResult<Html<String>> {
    let a = store::appointment(&state.db, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    let p = crate::app::patients::read(state, user, PatientId::from_uuid(a.patient_id)).await?;
    let types = app::types(state, user).await?;
    let tz = app::zones(state, user.clinic).await?.of(a.location_id).clone();
    let z = app::to_jiff(a.start_at.0).to_zoned(tz.clone());
    let prepared = crate::app::preparation::checklists(state, user, std::slice::from_ref(&a)).await?;
    let prep = prepared.into_iter().next();
    let can_book = allows(Some(user.role), Action::BookAppointments);
    let today = Timestamp::now().to_zoned(tz.clone()).date();
    let move_from = q.move_from.filter(|d| !d.is_empty()).unwrap_or_else(|| today.to_string());
    let move_to = q
        .move_to
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| today.checked_add(14.days()).unwrap_or(today).to_string());
    let code = types.iter().find(|(t, _, _)| *t == a.type_id).map(|t| t.1.code.clone()).unwrap_or_default();
    let mut error = error;
    let moves = if can_book && a.status == "booked" && !code.is_empty() {
        let (patient, place) = (a.patient_id.to_string(), a.location_id.to_string());
        match app::free_slots(state, user, &code, &move_from, &move_to, Some(&patient), Some(&place), 20).await {
            Ok(offers) => {
                let staff = kapstone_store::users::list(&state.db, user.clinic).await?;
                Some(
                    offers
                        .iter()
                        .map(|o| {
                            let z = o.start.to_zoned(tz.clone());
                            let names = o
                                .staff_ids
                                .iter()
                                .filter_map(|id| staff.iter().find(|u| u.id == *id).map(|u| u.display_name.clone()))
                                .collect::<Vec<_>>()
                                .join(", ");
                            let value = format!(
                                "{}|{}|{}",
                                o.start,
                                o.staff_ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                                o.room_id.map(|r| r.to_string()).unwrap_or_default()
                            );
                            let label = format!(
                                "{} {} {:02}:{:02} — {names}",
                                z.date().weekday_name(),
                                z.date(),
                                z.hour(),
                                z.minute()
                            );
                            (value, label)
                        })
                        .collect(),
                )
            }
            Err(AppError::Invalid(e)) => {
                error = Some(sentence(&e.message));
                Some(Vec::new())
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let dosing = types
        .iter()
        .find(|(t, _, _)| *t == a.type_id)
        .is_some_and(|t| t.1.kind == kapstone_domain::scheduling::AppointmentKind::Dosing);
    let session = if dosing && allows(Some(user.role), Action::RunDosingSession) {
        let existing = kapstone_store::dosing::session_of_appointment(&state.db, user.clinic, a.id).await?;
        match existing {
            Some(s) => Some(s.id.to_string()),
            None if a.status == "booked" => Some(String::new()),
            None => None,
        }
    } else {
        None
    };
    render(&AppointmentPage {
        layout: Layout::for_user("Appointment", user, "/schedule"),
        id: a.id.to_string(),
        patient_id: a.patient_id.to_string(),
        patient: format!("{} {}", p.given_name, p.family_name),
        what: types.iter().find(|(t, _, _)| *t == a.type_id).map_or_else(String::new, |t| t.1.name.clone()),
        when: format!(
            "{} {} {}–{}",
            z.date().weekday_name(),
            z.date(),
            hm(app::to_jiff(a.start_at.0), &tz),
            hm(app::to_jiff(a.end_at.0), &tz)
        ),
        status: a.status.replace('_', "-"),
        flag: prep.as_ref().and_then(|p| p.flag),
        intention: prep.as_ref().and_then(|p| p.intention.clone()).unwrap_or_default(),
        items: prep.map(|p| p.items).unwrap_or_default(),
        can_book,
        can_write_medication: allows(Some(user.role), Action::WriteMedicationInstructions),
        error,
        moves,
        move_from,
        move_to,
        session,
    })
}

#[derive(serde::Deserialize)]
pub struct MoveForm {
    #[serde(default)]
    choice: String,
    #[serde(default)]
    reason: String,
}

/// `POST /schedule/appointments/{id}/reschedule`: moves to a chosen free time; the old
/// appointment is kept as rescheduled, linked to the new one.
pub async fn reschedule(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    axum::extract::Form(f): axum::extract::Form<MoveForm>,
) -> PageResult<Response> {
    let id: uuid::Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let old = store::appointment(&state.db, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    let mut parts = f.choice.splitn(3, '|');
    let (start, staff, room) =
        (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let result = if start.is_empty() {
        Err(AppError::Invalid(kapstone_domain::FieldError::new("choice", "choose one of the free times")))
    } else if f.reason.trim().is_empty() {
        Err(AppError::Invalid(kapstone_domain::FieldError::new("reason", "give the reason for moving the appointment")))
    } else {
        let req = BookingRequest {
            patient_id: old.patient_id.to_string(),
            kind: old.type_id.to_string(),
            start: start.to_owned(),
            staff_ids: staff.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            room_id: Some(room.to_owned()).filter(|r| !r.is_empty()),
            location_id: Some(old.location_id.to_string()),
            course: old.course_id,
        };
        app::book(&state, &user, &req, Some((id, f.reason.trim()))).await
    };
    match result {
        Ok(b) => Ok(Redirect::to(&format!("/schedule/appointments/{}", b.id)).into_response()),
        Err(e @ (AppError::Invalid(_) | AppError::Conflict { .. })) => {
            let status = e.status();
            let page = appointment_page(&state, &user, id, Some(sentence(&e.public_message(""))), MoveQuery::default())
                .await?;
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn appointment(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<MoveQuery>,
) -> PageResult<Html<String>> {
    let id: uuid::Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    appointment_page(&state, &user, id, None, q).await
}

async fn after_prep(
    state: &AppState,
    user: &CurrentUser,
    id: uuid::Uuid,
    r: Result<(), AppError>,
) -> PageResult<Response> {
    match r {
        Ok(()) => Ok(Redirect::to(&format!("/schedule/appointments/{id}")).into_response()),
        Err(e @ (AppError::Invalid(_) | AppError::Conflict { .. })) => {
            let status = e.status();
            let page =
                appointment_page(state, user, id, Some(sentence(&e.public_message(""))), MoveQuery::default()).await?;
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct RideForm {
    #[serde(default)]
    escort_name: String,
    #[serde(default)]
    escort_phone: String,
    #[serde(default)]
    escort_relationship: String,
}

/// `POST /schedule/appointments/{id}/ride`: staff record the ride (the patient confirms it).
pub async fn ride(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    axum::extract::Form(f): axum::extract::Form<RideForm>,
) -> PageResult<Response> {
    let id: uuid::Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let r =
        crate::app::preparation::set_escort(&state, &user, id, &f.escort_name, &f.escort_phone, &f.escort_relationship)
            .await;
    after_prep(&state, &user, id, r).await
}

#[derive(serde::Deserialize)]
pub struct MedicationForm {
    #[serde(default)]
    medication_instructions: String,
}

/// `POST /schedule/appointments/{id}/medication` (prescribers).
pub async fn medication(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    axum::extract::Form(f): axum::extract::Form<MedicationForm>,
) -> PageResult<Response> {
    let id: uuid::Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let r = crate::app::preparation::set_medication_instructions(&state, &user, id, &f.medication_instructions).await;
    after_prep(&state, &user, id, r).await
}

/// `GET /calendar/{token}.ics`: a staff member's feed, authenticated by its secret link.
pub async fn feed(State(state): State<AppState>, Path(token): Path<String>) -> PageResult<Response> {
    let body = crate::app::calendar::staff_feed(&state, &token).await?;
    Ok(crate::app::calendar::ics_response(body, "kapstone.ics"))
}

/// `GET /schedule.csv?from=YYYY-MM-DD&to=YYYY-MM-DD`: the schedule for a spreadsheet (issue 8).
pub async fn csv(
    State(state): State<AppState>,
    user: CurrentUser,
    q: Result<Query<crate::app::schedule_csv::CsvQuery>, axum::extract::rejection::QueryRejection>,
) -> PageResult<axum::response::Response> {
    let Query(q) = q.map_err(|_| kapstone_domain::FieldError::new("from", "give a date as YYYY-MM-DD"))?;
    let (body, name) = crate::app::schedule_csv::schedule_csv(&state, &user, &q).await?;
    Ok(crate::app::schedule_csv::response(body, &name))
}
