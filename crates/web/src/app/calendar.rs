//! Calendar feeds (RFC 5545, via the `icalendar` crate): a staff member's secret, revocable feed
//! of their appointments (patients by initials only), and a patient's own appointment as an
//! .ics download. Times are written in UTC (`…Z`), which every client reads; the calendar names
//! the clinic's zone (`X-WR-TIMEZONE`) for display.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus};
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::{PatientId, Role, UserId, UtcTs};
use kapstone_store::scheduling::{self as store, AppointmentRow};
use rand::RngCore;
use uuid::Uuid;

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

fn stamp(t: UtcTs) -> String {
    let d = t.to_datetime();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

fn event(a: &AppointmentRow, summary: &str, location: &str, description: &str) -> Event {
    let mut e = Event::new();
    e.uid(&format!("{}@kapstone", a.id))
        .add_property("DTSTAMP", stamp(UtcTs::now()))
        .add_property("DTSTART", stamp(a.start_at.0))
        .add_property("DTEND", stamp(a.end_at.0))
        .summary(summary)
        .location(location);
    if !description.is_empty() {
        e.description(description);
    }
    match a.status.as_str() {
        "booked" => e.status(EventStatus::Confirmed),
        _ => e.status(EventStatus::Cancelled),
    };
    e.done()
}

/// Each location's name, the calendar's display zone (the first location's) and the rooms.
async fn names(
    state: &AppState,
    clinic: kapstone_domain::ClinicId,
) -> Result<(Vec<(Uuid, String)>, String, Vec<(Uuid, String)>), AppError> {
    let locations = store::locations(&state.db, clinic).await?;
    let zone = locations.first().map_or_else(|| "UTC".to_owned(), |l| l.time_zone.clone());
    let places = locations.into_iter().map(|l| (l.id, l.name)).collect();
    let rooms = store::rooms(&state.db, clinic).await?.into_iter().map(|r| (r.id, r.name)).collect();
    Ok((places, zone, rooms))
}

fn place_of(places: &[(Uuid, String)], a: &AppointmentRow) -> String {
    places.iter().find(|(id, _)| *id == a.location_id).map_or_else(|| "Clinic".to_owned(), |(_, n)| n.clone())
}

fn kind_label(k: kapstone_domain::scheduling::AppointmentKind) -> &'static str {
    use kapstone_domain::scheduling::AppointmentKind::*;
    match k {
        Consultation => "Consultation",
        Preparation => "Preparation session",
        Dosing => "Dosing session",
        Integration => "Integration session",
        FollowUp => "Follow-up",
        CourseReview => "Course review",
    }
}

pub fn ics_response(body: String, filename: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
        ],
        body,
    )
        .into_response()
}

/// The patient's own appointment (date, time, place and type only).
pub async fn patient_event(state: &AppState, me: &CurrentUser, id: Uuid) -> Result<String, AppError> {
    let a = store::appointment(&state.db, me.clinic, id).await?.ok_or(AppError::NotFound)?;
    if me.role != Role::Patient || me.patient != Some(PatientId::from_uuid(a.patient_id)) {
        return Err(AppError::NotFound);
    }
    let types = super::scheduling::types(state, me).await?;
    let kind = types.iter().find(|(t, _, _)| *t == a.type_id).map(|t| t.1.clone());
    let what = kind.as_ref().map_or_else(|| "Appointment".to_owned(), |t| t.name.clone());
    let dosing = kind.is_some_and(|t| t.kind == kapstone_domain::scheduling::AppointmentKind::Dosing);
    let (places, zone, _) = names(state, me.clinic).await?;
    let place = place_of(&places, &a);
    let mut cal = Calendar::new();
    cal.name("My appointment").timezone(zone.as_str());
    let note = if dosing { "Please arrange a ride home: no driving after the session." } else { "" };
    cal.push(event(&a, &what, &place, note));
    Ok(cal.done().to_string())
}

/// The signed-in staff member's feed link, made on first use.
pub async fn feed_url(state: &AppState, me: &CurrentUser, renew: bool) -> Result<String, AppError> {
    let existing = if renew { None } else { store::feed_token(&state.db, me.id).await? };
    let token = match existing {
        Some(t) => t,
        None => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let token = hex::encode(bytes);
            let mut tx = state.db.begin().await?;
            store::set_feed_token(&mut tx, me.id, &token).await?;
            let mut e = me.event(AuditAction::SchedulingConfigured, "calendar_feed", Outcome::Success);
            e.entity_id = Some(me.id.to_string());
            e.reason = Some(if renew { "feed link renewed" } else { "feed link created" }.into());
            kapstone_store::audit::append(&mut tx, &e).await?;
            tx.commit().await?;
            token
        }
    };
    Ok(format!("{}/calendar/{token}.ics", state.config.public_url.trim_end_matches('/')))
}

/// The feed behind a secret link: 30 days back to 180 days ahead.
pub async fn staff_feed(state: &AppState, token: &str) -> Result<String, AppError> {
    let token = token.trim_end_matches(".ics");
    if token.len() != 64 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AppError::NotFound);
    }
    let owner = store::feed_owner(&state.db, token).await?.ok_or(AppError::NotFound)?;
    let user = kapstone_store::users::get(&state.db, UserId::from_uuid(owner)).await?.ok_or(AppError::NotFound)?;
    if !user.active {
        return Err(AppError::NotFound);
    }
    let now = UtcTs::now();
    let rows = store::appointments_of_staff(
        &state.db,
        owner,
        now.plus(time::Duration::days(-30)),
        now.plus(time::Duration::days(180)),
    )
    .await?;
    let clinic = user.clinic();
    let (places, zone, rooms) = names(state, clinic).await?;
    let types = kapstone_store::scheduling::types(&state.db, clinic).await?;
    let mut cal = Calendar::new();
    cal.name(&format!("Kapstone — {}", user.display_name)).timezone(zone.as_str());
    for a in &rows {
        let what = types
            .iter()
            .find(|t| t.id == a.type_id)
            .and_then(|t| serde_json::from_str::<kapstone_domain::scheduling::AppointmentType>(&t.definition).ok())
            // The kind, not the clinic's name for the type: a feed lands in third-party calendar
            // services, which need not learn which medicine a patient receives.
            .map_or_else(|| "Appointment".to_owned(), |t| kind_label(t.kind).to_owned());
        let p = kapstone_store::patients::get(&state.db, clinic, PatientId::from_uuid(a.patient_id)).await?;
        let initials = p.map_or_else(String::new, |p| super::scheduling::initials(&p.given_name, &p.family_name));
        let room = a
            .room_id
            .and_then(|r| rooms.iter().find(|(id, _)| *id == r))
            .map(|(_, n)| format!(", {n}"))
            .unwrap_or_default();
        cal.push(event(a, &format!("{what} — {initials}"), &format!("{}{room}", place_of(&places, a)), ""));
    }
    // The feed is read without a session: record it (by owner), so a leaked link shows up.
    let mut e =
        kapstone_domain::audit::NewAuditEvent::new(AuditAction::PatientListed, "calendar_feed", Outcome::Success);
    e.clinic_id = Some(clinic);
    e.actor_user_id = Some(user.user_id());
    e.reason = Some(format!("{} appointments", rows.len()));
    state.read_audit.record(e).await?;
    Ok(cal.done().to_string())
}
