//! Booking and the schedule: every rule is checked here or in the domain before the database
//! claims the slots; the database refuses what a race lets through.

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::consent::ConsentStatus;
use kapstone_domain::scheduling::{
    self as domain, AppointmentKind, AppointmentType, Block, Candidate, DosingReadiness, HoursException, WeeklyHours,
};
use kapstone_domain::webhook::{AppointmentChange, Event};
use kapstone_domain::{FieldError, PatientId, Role, UserId, UtcTs};
use kapstone_store::keyset::{self, ListFilter, Page, TimeKey};
use kapstone_store::scheduling::{self as store, AppointmentRow, LocationRow, NewAppointment, RoomRow};
use kapstone_store::users::UserRow;
use kapstone_store::{audit, patients, users};
use uuid::Uuid;

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

pub fn to_jiff(t: UtcTs) -> Timestamp {
    Timestamp::from_microsecond(t.unix_micros()).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn from_jiff(t: Timestamp) -> UtcTs {
    UtcTs::from_unix_micros(t.as_microsecond())
}

/// The time zone pages, feeds and messages show times in: the clinic's (first) location's, UTC
/// before any location exists.
pub async fn display_zone(state: &AppState, clinic: kapstone_domain::ClinicId) -> Result<TimeZone, AppError> {
    let location = store::locations(&state.db, clinic).await?.into_iter().next();
    time_zone(location.as_ref().map_or("UTC", |l| l.time_zone.as_str()))
}

/// Each location's name and time zone, so an appointment is shown in the zone of the place it
/// happens (a clinic may have locations in different zones).
pub struct Zones {
    default: TimeZone,
    places: Vec<(Uuid, String, TimeZone)>,
}

impl Zones {
    pub fn of(&self, location: Uuid) -> &TimeZone {
        self.places.iter().find(|p| p.0 == location).map_or(&self.default, |p| &p.2)
    }

    pub fn place(&self, location: Uuid) -> &str {
        self.places.iter().find(|p| p.0 == location).map_or("the clinic", |p| p.1.as_str())
    }

    /// The zone of the first location (pages that are not about one location).
    pub fn default_zone(&self) -> &TimeZone {
        &self.default
    }

    /// (id, name) of every location, in the order they were added.
    pub fn locations(&self) -> impl Iterator<Item = (Uuid, &str)> {
        self.places.iter().map(|p| (p.0, p.1.as_str()))
    }
}

pub async fn zones(state: &AppState, clinic: kapstone_domain::ClinicId) -> Result<Zones, AppError> {
    let mut places = Vec::new();
    for l in store::locations(&state.db, clinic).await? {
        places.push((l.id, l.name, time_zone(&l.time_zone)?));
    }
    let default = places.first().map_or(TimeZone::UTC, |p| p.2.clone());
    Ok(Zones { default, places })
}

/// A patient as initials ("A. B."), for screens seen over a shoulder and calendar feeds.
pub fn initials(given: &str, family: &str) -> String {
    let first = |s: &str| s.chars().next().map(|c| c.to_uppercase().to_string()).unwrap_or_default();
    format!("{}. {}.", first(given), first(family))
}

pub fn time_zone(name: &str) -> Result<TimeZone, AppError> {
    TimeZone::get(name).map_err(|e| AppError::Internal(anyhow::anyhow!("time zone {name}: {e}")))
}

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid(FieldError::new(field, message))
}

fn schedule_error(e: domain::ScheduleError) -> AppError {
    AppError::Invalid(FieldError::new(e.field, e.message))
}

/// The clinic's appointment types, active first: (row id, code, definition, active).
pub async fn types(state: &AppState, user: &CurrentUser) -> Result<Vec<(Uuid, AppointmentType, bool)>, AppError> {
    let rows = store::types(&state.db, user.clinic).await?;
    rows.into_iter().map(|r| Ok((r.id, stored_type(&r.definition, &r.code)?, r.active))).collect()
}

/// A stored appointment type's definition (`which` names it in the error: a stored definition that
/// does not parse is a fault of the database, not of the request).
pub fn stored_type(definition: &str, which: &dyn std::fmt::Display) -> Result<AppointmentType, AppError> {
    serde_json::from_str(definition).map_err(|e| AppError::Internal(anyhow::anyhow!("appointment type {which}: {e}")))
}

/// An active type by code or id; a retired version by id too when `retired_ok` (a rescheduled
/// appointment keeps the type it was booked with).
async fn find_type(
    state: &AppState,
    user: &CurrentUser,
    key: &str,
    retired_ok: bool,
) -> Result<(Uuid, AppointmentType), AppError> {
    let key = key.trim();
    types(state, user)
        .await?
        .into_iter()
        .find(|(id, t, active)| (*active && t.code == key) || ((*active || retired_ok) && id.to_string() == key))
        .map(|(id, t, _)| (id, t))
        .ok_or_else(|| invalid("type", "not an appointment type of this clinic (see GET /api/v1/appointment-types)"))
}

/// Staff accounts of the clinic that can be booked (active, clinical or front desk).
pub async fn staff(state: &AppState, user: &CurrentUser) -> Result<Vec<UserRow>, AppError> {
    Ok(users::list(&state.db, user.clinic)
        .await?
        .into_iter()
        .filter(|u| u.active && u.role().is_ok_and(|r| r.is_staff() && r != Role::Admin))
        .collect())
}

fn weekday(n: i32) -> Option<Weekday> {
    Weekday::from_monday_one_offset(i8::try_from(n).ok()?).ok()
}

fn minute_time(m: i32) -> Time {
    if m >= 1440 {
        return Time::MAX;
    }
    Time::new(i8::try_from(m / 60).unwrap_or(0), i8::try_from(m % 60).unwrap_or(0), 0, 0).unwrap_or(Time::midnight())
}

/// Each person's weekly hours at `location` and their exceptions.
async fn working_hours(
    state: &AppState,
    user: &CurrentUser,
    location: Uuid,
    from: Date,
    to: Date,
) -> Result<Vec<(Uuid, Vec<WeeklyHours>, Vec<HoursException>)>, AppError> {
    let hours = store::hours(&state.db, user.clinic).await?;
    let exceptions = store::exceptions(&state.db, user.clinic, &from.to_string(), &to.to_string()).await?;
    let mut people: Vec<Uuid> = hours.iter().filter(|h| h.location_id == location).map(|h| h.user_id).collect();
    people.dedup();
    Ok(people
        .into_iter()
        .map(|p| {
            let weekly = hours
                .iter()
                .filter(|h| h.user_id == p && h.location_id == location)
                .filter_map(|h| {
                    Some(WeeklyHours {
                        weekday: weekday(h.weekday)?,
                        start: minute_time(h.start_minute),
                        end: minute_time(h.end_minute),
                    })
                })
                .collect();
            let exc = exceptions
                .iter()
                .filter(|e| e.user_id == p)
                .filter_map(|e| {
                    Some(HoursException {
                        date: e.on_date.parse().ok()?,
                        leave: e.is_leave,
                        start: minute_time(e.start_minute),
                        end: minute_time(e.end_minute),
                    })
                })
                .collect();
            (p, weekly, exc)
        })
        .collect())
}

/// What a booking asks for.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    pub patient_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339 with any offset (`2026-12-01T09:00:00-08:00`).
    pub start: String,
    #[serde(default)]
    pub staff_ids: Vec<String>,
    #[serde(default)]
    pub room_id: Option<String>,
    #[serde(default)]
    pub location_id: Option<String>,
    /// The treatment course this session belongs to (set when a course books its plan).
    #[serde(skip)]
    pub course: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct Booked {
    pub id: Uuid,
    pub location_id: Uuid,
    pub start: Timestamp,
    pub end: Timestamp,
    pub warnings: Vec<String>,
    /// The appointment as its booking stored it (read back in the booking's transaction).
    pub stored: Stored,
}

/// An appointment as a change stored it, read back inside that change's transaction: the row, its
/// staff, and its type (`(id, definition, active)`, as [`types`] lists it). What the API answers a
/// change with is a function of this alone, so it can be stored with the change (issue 9).
#[derive(Debug, Clone)]
pub struct Stored {
    pub row: AppointmentRow,
    pub staff: Vec<Uuid>,
    pub types: Vec<(Uuid, AppointmentType, bool)>,
}

/// The appointment `id` read back inside `tx`, with `types` (the clinic's, as [`types`] lists
/// them) narrowed to its own.
async fn stored_in(
    tx: &mut kapstone_store::Tx,
    clinic: kapstone_domain::ClinicId,
    id: Uuid,
    types: Vec<(Uuid, AppointmentType, bool)>,
) -> Result<Stored, AppError> {
    let row = store::appointment_in(tx, clinic, id).await?.ok_or(AppError::NotFound)?;
    let staff = store::staff_of_in(tx, id).await?;
    let types = types.into_iter().filter(|(t, _, _)| *t == row.type_id).collect();
    Ok(Stored { row, staff, types })
}

pub fn parse_instant(field: &'static str, raw: &str) -> Result<Timestamp, AppError> {
    raw.trim()
        .parse::<Timestamp>()
        .map_err(|_| invalid(field, "give a date and time with its UTC offset, like 2026-12-01T09:00:00-08:00"))
}

fn parse_uuid(field: &'static str, raw: &str) -> Result<Uuid, AppError> {
    raw.trim().parse().map_err(|_| invalid(field, "not an id"))
}

/// The patient's state for the dosing gate.
pub(crate) async fn readiness(
    state: &AppState,
    user: &CurrentUser,
    patient: PatientId,
) -> Result<DosingReadiness, AppError> {
    let decision = kapstone_store::eligibility::decisions(&state.db, patient).await?.into_iter().next();
    let mut decision_outdated = false;
    if let Some(d) = decision.as_ref().filter(|d| d.verdict == "eligible") {
        let row = patients::get(&state.db, user.clinic, patient).await?.ok_or(AppError::NotFound)?;
        let a = crate::app::eligibility::assess(state, &row).await?;
        decision_outdated = crate::app::eligibility::decision_no_longer_holds(&a, d).is_some();
    }
    let allowed_routes = decision
        .map(|d| if d.verdict == "eligible" { crate::app::eligibility::allowed_routes(&d) } else { Vec::new() });
    let until = |s: ConsentStatus| match s {
        ConsentStatus::Valid { until } => Some(to_jiff(until)),
        _ => None,
    };
    let (general, _) = crate::app::consents::status(state, user.clinic, patient, "kap-general").await?;
    let (rems_ack, _) = crate::app::consents::status(state, user.clinic, patient, "spravato-rems").await?;
    let events: Vec<String> =
        kapstone_store::eligibility::pathway_events(&state.db, patient).await?.into_iter().map(|e| e.event).collect();
    let pathway_blocked = match crate::app::eligibility::side_state(&events) {
        Some(kapstone_domain::pathway::SideState::OnHold) => Some("on hold"),
        Some(kapstone_domain::pathway::SideState::Withdrawn) => Some("withdrawn"),
        Some(kapstone_domain::pathway::SideState::Completed) => Some("completed"),
        None => None,
    };
    Ok(DosingReadiness {
        pathway_blocked,
        allowed_routes,
        consent_valid_until: until(general),
        rems_acknowledgement_valid_until: until(rems_ack),
        rems_enrolled: store::rems_enrolled(&state.db, patient).await?.is_some(),
        decision_outdated,
    })
}

async fn location_and_room(
    state: &AppState,
    user: &CurrentUser,
    kind: &AppointmentType,
    req: &BookingRequest,
) -> Result<(LocationRow, Option<RoomRow>), AppError> {
    let locations = store::locations(&state.db, user.clinic).await?;
    let rooms = store::rooms(&state.db, user.clinic).await?;
    let room = match req.room_id.as_deref().filter(|r| !r.trim().is_empty()) {
        Some(raw) => {
            let id = parse_uuid("room_id", raw)?;
            let room = rooms
                .into_iter()
                .find(|r| r.id == id && r.active)
                .ok_or_else(|| invalid("room_id", "not a room of this clinic"))?;
            Some(room)
        }
        None if kind.needs_room => return Err(invalid("room_id", "this appointment needs a room or chair")),
        None => None,
    };
    let location = match req.location_id.as_deref().filter(|l| !l.trim().is_empty()) {
        Some(raw) => {
            let id = parse_uuid("location_id", raw)?;
            locations
                .into_iter()
                .find(|l| l.id == id)
                .ok_or_else(|| invalid("location_id", "not a location of this clinic"))?
        }
        None => match &room {
            Some(r) => locations.into_iter().find(|l| l.id == r.location_id).ok_or(AppError::NotFound)?,
            None => {
                locations.into_iter().next().ok_or_else(|| invalid("location_id", "the clinic has no location yet"))?
            }
        },
    };
    if let Some(r) = &room
        && r.location_id != location.id
    {
        return Err(invalid("room_id", "this room belongs to another location"));
    }
    Ok((location, room))
}

/// Books one appointment (or the new time of a rescheduled one).
pub async fn book(
    state: &AppState,
    user: &CurrentUser,
    req: &BookingRequest,
    rescheduled: Option<(Uuid, &str)>,
) -> Result<Booked, AppError> {
    let checked = check(state, user, req, rescheduled.is_some()).await?;
    let mut tx = state.db.begin().await?;
    let booked = book_in(&mut tx, user, checked, rescheduled).await?;
    tx.commit_answering(&booked).await?;
    Ok(booked)
}

/// A booking whose rules are all checked (the type, the people and the room, their hours, the
/// clinical gate of a dosing session), ready to claim its slots ([`book_in`]).
pub(crate) struct Checked {
    patient: PatientId,
    type_id: Uuid,
    kind: AppointmentType,
    location: LocationRow,
    room: Option<RoomRow>,
    block: Block,
    staff: Vec<UserRow>,
    warnings: Vec<String>,
    course: Option<Uuid>,
    /// The resources the booking holds: each person, the room, the patient.
    keys: Vec<String>,
}

impl Checked {
    /// Every (resource, slot) the booking claims.
    pub(crate) fn claims(&self) -> Vec<(String, i64)> {
        let slots = self.block.slots();
        self.keys.iter().flat_map(|k| slots.iter().map(move |s| (k.clone(), *s))).collect()
    }
}

/// Checks a booking against every rule that reads the clinic's committed state; nothing is
/// written. `rescheduled`: the new time of a moved appointment (it may keep a retired type).
pub(crate) async fn check(
    state: &AppState,
    user: &CurrentUser,
    req: &BookingRequest,
    rescheduled: bool,
) -> Result<Checked, AppError> {
    let patient_id: PatientId = req.patient_id.trim().parse().map_err(|_| invalid("patient_id", "not a patient id"))?;
    let patient = patients::get(&state.db, user.clinic, patient_id)
        .await?
        .ok_or_else(|| invalid("patient_id", "no such patient in this clinic"))?;
    let (type_id, kind) = find_type(state, user, &req.kind, rescheduled).await?;
    let start = parse_instant("start", &req.start)?;
    let block = Block::new(start, kind.length.minutes()).map_err(schedule_error)?;
    // A new time, booked or moved to, is never in the past.
    if block.start < Timestamp::now() {
        return Err(invalid("start", "this time has passed"));
    }
    let (location, room) = location_and_room(state, user, &kind, req).await?;
    let tz = time_zone(&location.time_zone)?;
    // Staff: known, bookable, distinct, and together filling the type's needs.
    let all_staff = staff(state, user).await?;
    let mut booked_staff: Vec<UserRow> = Vec::new();
    for raw in &req.staff_ids {
        let id = parse_uuid("staff_ids", raw)?;
        let person = all_staff
            .iter()
            .find(|u| u.id == id)
            .ok_or_else(|| invalid("staff_ids", "not a bookable staff member of this clinic"))?;
        if booked_staff.iter().any(|u| u.id == id) {
            return Err(invalid("staff_ids", "listed twice"));
        }
        booked_staff.push(person.clone());
    }
    let roles: Vec<Role> = booked_staff.iter().filter_map(|u| u.role().ok()).collect();
    kind.check_staff(&roles).map_err(schedule_error)?;
    // Everyone works then, at this location.
    let day = block.start.to_zoned(tz.clone()).date();
    let hours = working_hours(state, user, location.id, day, day).await?;
    for person in &booked_staff {
        let works = match hours.iter().find(|(id, _, _)| *id == person.id) {
            Some((_, weekly, exc)) => domain::is_working(&tz, block, weekly, exc).map_err(schedule_error)?,
            None => false,
        };
        if !works {
            return Err(invalid("start", format!("{} is not working then at {}", person.display_name, location.name)));
        }
    }
    // The clinical gate of a dosing session.
    let mut warnings = Vec::new();
    if kind.kind == AppointmentKind::Dosing
        && let Some(route) = kind.route
    {
        let r = readiness(state, user, patient_id).await?;
        match domain::dosing_gate(&r, route, block) {
            Ok(w) => warnings = w,
            Err(gate) => {
                return Err(AppError::Invalid(FieldError::new(
                    gate.code(),
                    format!("a dosing session cannot be booked: {gate}"),
                )));
            }
        }
    }
    // Claims: each person, the room, the patient, every slot.
    let mut keys: Vec<String> = booked_staff.iter().map(|u| format!("user:{}", u.user_id())).collect();
    if let Some(r) = &room {
        keys.push(format!("room:{}", r.id));
    }
    keys.push(format!("patient:{}", patient.id));
    Ok(Checked {
        patient: patient_id,
        type_id,
        kind,
        location,
        room,
        block,
        staff: booked_staff,
        warnings,
        course: req.course,
        keys,
    })
}

/// Books a checked booking inside `tx`: claims its slots, with its audit event, its webhook
/// events and (for a dosing session) the pre-session questionnaires, and reads it back. A clash
/// (409) leaves `tx` without any of this booking's writes and usable, so that a transaction can
/// book several (a course's plan) and keep those that do not clash.
pub(crate) async fn book_in(
    tx: &mut kapstone_store::Tx,
    user: &CurrentUser,
    checked: Checked,
    rescheduled: Option<(Uuid, &str)>,
) -> Result<Booked, AppError> {
    let claims = checked.claims();
    let Checked { patient: patient_id, type_id, kind, location, room, block, staff, warnings, course, .. } = checked;
    let staff_ids: Vec<UserId> = staff.iter().map(UserRow::user_id).collect();
    if let Some((old, reason)) = rescheduled
        && !store::change_status(tx, user.clinic, old, "rescheduled", Some(reason), user.id).await?
    {
        return Err(AppError::Conflict { field: "id", message: "this appointment is no longer booked".into() });
    }
    let new = NewAppointment {
        clinic: user.clinic,
        patient: patient_id,
        type_id,
        location: location.id,
        room: room.as_ref().map(|r| r.id),
        start: from_jiff(block.start),
        end: from_jiff(block.end),
        staff: &staff_ids,
        claims: &claims,
        by: user.id,
        rescheduled_from: rescheduled.map(|(old, _)| old),
        course,
    };
    let id = match store::book(tx, &new).await? {
        Ok(id) => id,
        Err(clash) => return Err(clash_error(clash.resource.as_deref(), &staff, room.as_ref())),
    };
    let mut e = user.event(AuditAction::AppointmentBooked, "appointment", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient_id);
    e.reason = Some(match rescheduled {
        Some((old, _)) => format!("{} rescheduled from {old}", kind.code),
        None => kind.code.clone(),
    });
    audit::append(tx, &e).await?;
    let booked = Event::AppointmentBooked { appointment_id: id, patient_id: patient_id.as_uuid() };
    crate::app::integrations::enqueue(tx, user.clinic, booked).await?;
    if let Some((old, _)) = rescheduled {
        let moved = Event::AppointmentChanged {
            appointment_id: old,
            patient_id: patient_id.as_uuid(),
            status: AppointmentChange::Rescheduled,
            rescheduled_to: Some(id),
        };
        crate::app::integrations::enqueue(tx, user.clinic, moved).await?;
    }
    if kind.kind == AppointmentKind::Dosing {
        crate::app::preparation::assign_pre_session_questionnaires(tx, user, patient_id).await?;
    }
    let stored = stored_in(tx, user.clinic, id, vec![(type_id, kind, true)]).await?;
    Ok(Booked { id, location_id: location.id, start: block.start, end: block.end, warnings, stored })
}

fn clash_error(resource: Option<&str>, staff: &[UserRow], room: Option<&RoomRow>) -> AppError {
    let (field, message) = match resource {
        Some(r) if r.starts_with("user:") => {
            let name = staff
                .iter()
                .find(|u| r == format!("user:{}", u.id))
                .map_or("a staff member", |u| u.display_name.as_str());
            ("staff_ids", format!("{name} is already booked then"))
        }
        Some(r) if r.starts_with("room:") => {
            ("room_id", format!("{} is already booked then", room.map_or("the room", |x| x.name.as_str())))
        }
        Some(_) => ("patient_id", "the patient already has an appointment then".to_owned()),
        None => ("start", "someone booked one of these people, the room or the patient at the same moment".to_owned()),
    };
    AppError::Conflict { field, message }
}

/// Cancels, marks a no-show or completes a booked appointment (with a reason for a cancel).
pub async fn change(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    status: &str,
    reason: Option<&str>,
) -> Result<Stored, AppError> {
    let appt = store::appointment(&state.db, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    let types = types(state, user).await?;
    let reason = kapstone_domain::patient::optional_text("reason", reason, 1000)?;
    if status == "cancelled" && reason.is_none() {
        return Err(invalid("reason", "give the reason for cancelling"));
    }
    if status == "no_show" && to_jiff(appt.start_at.0) > Timestamp::now() {
        return Err(invalid("status", "a no-show can be recorded only once the appointment has started"));
    }
    if status == "completed" && to_jiff(appt.start_at.0) > Timestamp::now() {
        return Err(invalid("status", "an appointment can be marked attended only once it has started"));
    }
    let mut tx = state.db.begin().await?;
    if !store::change_status(&mut tx, user.clinic, id, status, reason.as_deref(), user.id).await? {
        return Err(AppError::Conflict {
            field: "status",
            message: format!("this appointment is already {}", appt.status),
        });
    }
    let mut e = user.event(AuditAction::AppointmentChanged, "appointment", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(PatientId::from_uuid(appt.patient_id));
    e.reason = Some(status.to_owned());
    audit::append(&mut tx, &e).await?;
    // A cancellation is its own event; a no-show or attendance is a change of status.
    let change = AppointmentChange::from_status(status)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no event for appointment status {status}")))?;
    let (appointment_id, patient_id) = (id, appt.patient_id);
    let event = match change {
        AppointmentChange::Cancelled => Event::AppointmentCancelled { appointment_id, patient_id, status: change },
        _ => Event::AppointmentChanged { appointment_id, patient_id, status: change, rescheduled_to: None },
    };
    crate::app::integrations::enqueue(&mut tx, user.clinic, event).await?;
    let stored = stored_in(&mut tx, user.clinic, id, types).await?;
    tx.commit_answering(&stored).await?;
    Ok(stored)
}

/// Appointments overlapping `[from, to)`, with their staff (audited: the list names patients).
pub async fn between(
    state: &AppState,
    user: &CurrentUser,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<(AppointmentRow, Vec<Uuid>)>, AppError> {
    if to <= from {
        return Err(invalid("to", "the end of the range must be after its start"));
    }
    if to.duration_since(from).as_hours() > 24 * 62 {
        return Err(invalid("to", "ask for at most 62 days at a time"));
    }
    let rows = store::appointments_between(&state.db, user.clinic, from_jiff(from), from_jiff(to)).await?;
    with_staff(state, user, rows).await
}

/// A page of `limit` of the clinic's appointments by start, read with one more that says whether a
/// next page follows (the API's list; see `api::page`), audited.
pub async fn page(
    state: &AppState,
    user: &CurrentUser,
    filter: &ListFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<(AppointmentRow, Vec<Uuid>)>, AppError> {
    let after = TimeKey::oldest_first(after);
    let mut rows =
        store::appointments_page(&state.db, &Page { clinic: user.clinic, filter, after, limit: limit + 1 }).await?;
    let more = rows.len() > keyset::sent(limit);
    let next = if more { rows.pop() } else { None };
    let mut page = with_staff(state, user, rows).await?;
    page.extend(next.map(|r| (r, Vec::new())));
    Ok(page)
}

/// The appointments with their staff; listing them is audited.
async fn with_staff(
    state: &AppState,
    user: &CurrentUser,
    rows: Vec<AppointmentRow>,
) -> Result<Vec<(AppointmentRow, Vec<Uuid>)>, AppError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let staff = store::staff_of(&state.db, &ids).await?;
    let mut e = user.event(AuditAction::PatientListed, "appointment", Outcome::Success);
    e.reason = Some(format!("{} appointments", rows.len()));
    state.read_audit.record(e).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let people = staff.iter().filter(|(a, _)| *a == r.id).map(|(_, u)| *u).collect();
            (r, people)
        })
        .collect())
}

/// A free slot offered to the person booking.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Offer {
    pub start: Timestamp,
    pub end: Timestamp,
    pub staff_ids: Vec<Uuid>,
    pub room_id: Option<Uuid>,
    pub location_id: Uuid,
}

/// Free slots for a type between two local dates, at one location or (without one) at each of
/// the clinic's locations, earliest first.
#[allow(clippy::too_many_arguments)]
pub async fn free_slots(
    state: &AppState,
    user: &CurrentUser,
    type_key: &str,
    from: &str,
    to: &str,
    patient: Option<&str>,
    location: Option<&str>,
    limit: usize,
) -> Result<Vec<Offer>, AppError> {
    free_slots_besides(state, user, type_key, from, to, patient, location, limit, &[]).await
}

/// [`free_slots`] as if `also_claimed` were claimed already: the claims of bookings checked but
/// not yet made, that the offers are to be booked with in one transaction (a course's plan).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn free_slots_besides(
    state: &AppState,
    user: &CurrentUser,
    type_key: &str,
    from: &str,
    to: &str,
    patient: Option<&str>,
    location: Option<&str>,
    limit: usize,
    also_claimed: &[(String, i64)],
) -> Result<Vec<Offer>, AppError> {
    let (_, kind) = find_type(state, user, type_key, false).await?;
    let from: Date = from.trim().parse().map_err(|_| invalid("from", "give a date as YYYY-MM-DD"))?;
    let to: Date = to.trim().parse().map_err(|_| invalid("to", "give a date as YYYY-MM-DD"))?;
    let patient_key = match patient.filter(|p| !p.trim().is_empty()) {
        Some(p) => {
            let id: PatientId = p.trim().parse().map_err(|_| invalid("patient_id", "not a patient id"))?;
            patients::get(&state.db, user.clinic, id).await?.ok_or_else(|| invalid("patient_id", "no such patient"))?;
            format!("patient:{id}")
        }
        None => "patient:none".to_owned(),
    };
    let mut locations = store::locations(&state.db, user.clinic).await?;
    if let Some(raw) = location.filter(|l| !l.trim().is_empty()) {
        let id = parse_uuid("location_id", raw)?;
        locations.retain(|l| l.id == id);
        if locations.is_empty() {
            return Err(invalid("location_id", "not a location of this clinic"));
        }
    }
    if locations.is_empty() {
        return Err(invalid("location_id", "the clinic has no location yet"));
    }
    let limit = limit.clamp(1, 200);
    let mut offers = Vec::new();
    for location in &locations {
        offers.extend(slots_at(state, user, &kind, location, from, to, &patient_key, limit, also_claimed).await?);
    }
    offers.sort_by_key(|o| o.start);
    offers.truncate(limit);
    Ok(offers)
}

#[allow(clippy::too_many_arguments)]
async fn slots_at(
    state: &AppState,
    user: &CurrentUser,
    kind: &AppointmentType,
    location: &LocationRow,
    from: Date,
    to: Date,
    patient_key: &str,
    limit: usize,
    also_claimed: &[(String, i64)],
) -> Result<Vec<Offer>, AppError> {
    let tz = time_zone(&location.time_zone)?;
    let people = staff(state, user).await?;
    let hours = working_hours(state, user, location.id, from, to).await?;
    // Only people who can be booked; `candidate_ids[i]` is the id of `candidates[i]`.
    let (candidate_ids, candidates): (Vec<Uuid>, Vec<Candidate>) = hours
        .iter()
        .filter_map(|(id, weekly, exc)| {
            let person = people.iter().find(|u| u.id == *id)?;
            let candidate = Candidate {
                key: format!("user:{id}"),
                role: person.role().ok()?,
                weekly: weekly.clone(),
                exceptions: exc.clone(),
            };
            Some((*id, candidate))
        })
        .unzip();
    let rooms: Vec<RoomRow> = store::rooms(&state.db, user.clinic)
        .await?
        .into_iter()
        .filter(|r| r.active && r.location_id == location.id)
        .collect();
    let room_keys: Vec<String> = rooms.iter().map(|r| format!("room:{}", r.id)).collect();
    let range_start = domain::instant(&tz, from, Time::midnight()).map_err(schedule_error)?;
    let range_end =
        domain::instant(&tz, to.tomorrow().map_err(|_| invalid("to", "date out of range"))?, Time::midnight())
            .map_err(schedule_error)?
            .checked_add(jiff::SignedDuration::from_hours(12))
            .map_err(|_| invalid("to", "date out of range"))?;
    let size = domain::SLOT_MINUTES * 60;
    let mut resources: Vec<String> = candidates.iter().map(|c| c.key.clone()).collect();
    resources.extend(room_keys.iter().cloned());
    resources.push(patient_key.to_owned());
    let busy: std::collections::HashSet<(String, i64)> =
        store::claims_between(&state.db, &resources, range_start.as_second() / size, range_end.as_second() / size)
            .await?
            .into_iter()
            .chain(also_claimed.iter().cloned())
            .collect();
    let proposals = domain::find_slots(&domain::SlotSearch {
        tz: &tz,
        kind,
        candidates: &candidates,
        rooms: &room_keys,
        patient: patient_key,
        busy: &busy,
        from,
        to,
        step_minutes: 15,
        not_before: Timestamp::now(),
        limit,
    })
    .map_err(schedule_error)?;
    Ok(proposals
        .into_iter()
        .map(|p| Offer {
            start: p.block.start,
            end: p.block.end,
            staff_ids: p.staff.iter().filter_map(|i| candidate_ids.get(*i).copied()).collect(),
            room_id: p.room.and_then(|i| rooms.get(i)).map(|r| r.id),
            location_id: location.id,
        })
        .collect())
}

/// Records the patient's Spravato REMS enrolment (GATE-03).
pub async fn record_rems(
    state: &AppState,
    user: &CurrentUser,
    patient: PatientId,
    enrolled_on: &str,
    reference: Option<&str>,
) -> Result<(), AppError> {
    patients::get(&state.db, user.clinic, patient).await?.ok_or(AppError::NotFound)?;
    let date: Date = enrolled_on.trim().parse().map_err(|_| invalid("enrolled_on", "give the date as YYYY-MM-DD"))?;
    // "Today" where the clinic is, so a same-day enrolment east or west of UTC is accepted.
    let zone = kapstone_store::clinics::time_zone(&state.db, user.clinic).await?.unwrap_or_else(|| "UTC".into());
    if date > Timestamp::now().to_zoned(time_zone(&zone)?).date() {
        return Err(invalid("enrolled_on", "an enrolment date cannot be in the future"));
    }
    let reference = kapstone_domain::patient::optional_text("reference", reference, 100)?;
    let mut tx = state.db.begin().await?;
    let id =
        store::record_rems_enrollment(&mut tx, user.clinic, patient, &date.to_string(), reference.as_deref(), user.id)
            .await?;
    let mut e = user.event(AuditAction::RemsEnrollmentRecorded, "rems_enrollment", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

fn configured(user: &CurrentUser, what: &str, id: Uuid) -> kapstone_domain::audit::NewAuditEvent {
    let mut e = user.event(AuditAction::SchedulingConfigured, "scheduling", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.reason = Some(what.to_owned());
    e
}

/// Adds a location with its IANA time zone.
pub async fn create_location(state: &AppState, user: &CurrentUser, name: &str, zone: &str) -> Result<Uuid, AppError> {
    let name = kapstone_domain::patient::optional_text("name", Some(name), 100)?
        .ok_or_else(|| invalid("name", "enter a name"))?;
    TimeZone::get(zone.trim()).map_err(|_| invalid("time_zone", "not an IANA time zone (like America/Los_Angeles)"))?;
    let mut tx = state.db.begin().await?;
    let id = store::insert_location(&mut tx, user.clinic, &name, zone.trim()).await?;
    audit::append(&mut tx, &configured(user, "location", id)).await?;
    tx.commit_answering(&id).await?;
    Ok(id)
}

/// Adds a room or chair to a location.
pub async fn create_room(state: &AppState, user: &CurrentUser, location: &str, name: &str) -> Result<Uuid, AppError> {
    let location = parse_uuid("location_id", location)?;
    if !store::locations(&state.db, user.clinic).await?.iter().any(|l| l.id == location) {
        return Err(invalid("location_id", "not a location of this clinic"));
    }
    let name = kapstone_domain::patient::optional_text("name", Some(name), 100)?
        .ok_or_else(|| invalid("name", "enter a name"))?;
    let mut tx = state.db.begin().await?;
    let id = store::insert_room(&mut tx, user.clinic, location, &name).await?;
    audit::append(&mut tx, &configured(user, "room", id)).await?;
    tx.commit_answering(&id).await?;
    Ok(id)
}

/// Saves an appointment type (a new version if the code exists).
pub async fn save_type(state: &AppState, user: &CurrentUser, def: &AppointmentType) -> Result<Uuid, AppError> {
    def.check().map_err(schedule_error)?;
    let code = def.code.trim();
    if code.is_empty() || code.len() > 40 || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(invalid("code", "use 1 to 40 letters, digits, - or _"));
    }
    let name = kapstone_domain::patient::optional_text("name", Some(&def.name), 100)?
        .ok_or_else(|| invalid("name", "enter a name"))?;
    let def = AppointmentType { code: code.to_owned(), name, ..def.clone() };
    let json = serde_json::to_string(&def).map_err(|e| AppError::Internal(e.into()))?;
    let mut tx = state.db.begin().await?;
    let id = store::save_type(&mut tx, user.clinic, code, &json).await?;
    audit::append(&mut tx, &configured(user, "appointment type", id)).await?;
    tx.commit_answering(&id).await?;
    Ok(id)
}

/// One weekly window as entered: weekday 1 (Monday) to 7, times as HH:MM.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoursInput {
    pub weekday: i32,
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub location_id: Option<String>,
}

fn minutes_of(field: &'static str, raw: &str) -> Result<i32, AppError> {
    if raw.trim() == "24:00" {
        return Ok(1440);
    }
    let t: Time = raw.trim().parse().map_err(|_| invalid(field, "give a time as HH:MM"))?;
    Ok(i32::from(t.hour()) * 60 + i32::from(t.minute()))
}

/// Replaces a staff member's weekly hours.
pub async fn set_hours(
    state: &AppState,
    user: &CurrentUser,
    person: &str,
    rows: &[HoursInput],
) -> Result<(), AppError> {
    let person = parse_uuid("id", person)?;
    let who = staff(state, user).await?.into_iter().find(|u| u.id == person).ok_or(AppError::NotFound)?;
    let locations = store::locations(&state.db, user.clinic).await?;
    let mut out = Vec::new();
    for r in rows {
        if !(1..=7).contains(&r.weekday) {
            return Err(invalid("weekday", "1 (Monday) to 7 (Sunday)"));
        }
        let (start, end) = (minutes_of("start", &r.start)?, minutes_of("end", &r.end)?);
        if start >= end {
            return Err(invalid("end", "the end must be after the start"));
        }
        let location = match r.location_id.as_deref() {
            Some(raw) => {
                let id = parse_uuid("location_id", raw)?;
                locations
                    .iter()
                    .find(|l| l.id == id)
                    .ok_or_else(|| invalid("location_id", "not a location of this clinic"))?
                    .id
            }
            None => locations.first().ok_or_else(|| invalid("location_id", "the clinic has no location yet"))?.id,
        };
        out.push(store::HoursRow {
            user_id: who.id,
            location_id: location,
            weekday: r.weekday,
            start_minute: start,
            end_minute: end,
        });
    }
    let mut tx = state.db.begin().await?;
    store::replace_hours(&mut tx, user.clinic, who.user_id(), &out).await?;
    audit::append(&mut tx, &configured(user, "working hours", who.id)).await?;
    tx.commit().await?;
    Ok(())
}

/// Leave or extra hours on one date.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionInput {
    pub date: String,
    /// `leave` or `extra`.
    pub kind: String,
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// What adding an exception did: its id, and for leave the booked appointments that now fall in
/// it (they stay booked: the front desk moves them, with the patient).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ExceptionAdded {
    pub id: Uuid,
    pub clashes: Vec<Clash>,
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Clash {
    pub appointment_id: Uuid,
    pub start: Timestamp,
    /// "Mon 2026-12-07 10:00", in the appointment's location's zone.
    pub when: String,
}

pub async fn add_exception(
    state: &AppState,
    user: &CurrentUser,
    person: &str,
    e: &ExceptionInput,
) -> Result<ExceptionAdded, AppError> {
    let person = parse_uuid("id", person)?;
    let who = staff(state, user).await?.into_iter().find(|u| u.id == person).ok_or(AppError::NotFound)?;
    let date: Date = e.date.trim().parse().map_err(|_| invalid("date", "give the date as YYYY-MM-DD"))?;
    let is_leave = match e.kind.as_str() {
        "leave" => true,
        "extra" => false,
        _ => return Err(invalid("kind", "leave or extra")),
    };
    let (start, end) = (minutes_of("start", &e.start)?, minutes_of("end", &e.end)?);
    if start >= end {
        return Err(invalid("end", "the end must be after the start"));
    }
    let note = kapstone_domain::patient::optional_text("note", e.note.as_deref(), 200)?;
    let zones = zones(state, user.clinic).await?;
    let mut tx = state.db.begin().await?;
    let id = store::insert_exception(
        &mut tx,
        &store::NewException {
            clinic: user.clinic,
            user: who.user_id(),
            on_date: &date.to_string(),
            is_leave,
            start_minute: start,
            end_minute: end,
            note: note.as_deref(),
            by: user.id,
        },
    )
    .await?;
    audit::append(&mut tx, &configured(user, "hours exception", id)).await?;
    // Looked up in the same transaction, so the answer is stored with the leave (issue 9).
    let clashes = if is_leave { leave_clashes(&mut tx, &zones, who.id, date, start, end).await? } else { Vec::new() };
    let added = ExceptionAdded { id, clashes };
    tx.commit_answering(&added).await?;
    Ok(added)
}

/// The person's booked appointments on `date` between the two minutes of the day, each read in
/// its own location's zone.
async fn leave_clashes(
    tx: &mut kapstone_store::Tx,
    zones: &Zones,
    person: Uuid,
    date: Date,
    start: i32,
    end: i32,
) -> Result<Vec<Clash>, AppError> {
    // A window wide enough for any zone's version of that date.
    let around = domain::instant(&TimeZone::UTC, date, Time::midnight()).map_err(schedule_error)?;
    let (from, to) = (
        around.checked_sub(jiff::SignedDuration::from_hours(26)).unwrap_or(around),
        around.checked_add(jiff::SignedDuration::from_hours(50)).unwrap_or(around),
    );
    let rows = store::appointments_of_staff_in(tx, person, from_jiff(from), from_jiff(to)).await?;
    let mut out = Vec::new();
    for a in rows.iter().filter(|a| a.status == "booked") {
        let tz = zones.of(a.location_id);
        let (s, e) = (to_jiff(a.start_at.0).to_zoned(tz.clone()), to_jiff(a.end_at.0).to_zoned(tz.clone()));
        let minute = |z: &jiff::Zoned| i32::from(z.hour()) * 60 + i32::from(z.minute());
        let first = if s.date() < date { 0 } else { minute(&s) };
        let last = if e.date() > date { 24 * 60 } else { minute(&e) };
        if s.date() <= date && e.date() >= date && first < end && last > start {
            out.push(Clash {
                appointment_id: a.id,
                start: s.timestamp(),
                when: format!("{} {:02}:{:02}", s.date(), s.hour(), s.minute()),
            });
        }
    }
    Ok(out)
}

/// Removes a person's leave or extra hours.
pub async fn remove_exception(state: &AppState, user: &CurrentUser, id: &str) -> Result<(), AppError> {
    let id = parse_uuid("exception_id", id)?;
    let mut tx = state.db.begin().await?;
    if !store::delete_exception(&mut tx, user.clinic, id).await? {
        return Err(AppError::NotFound);
    }
    let mut e = configured(user, "hours exception removed", id);
    e.entity_id = Some(id.to_string());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}
