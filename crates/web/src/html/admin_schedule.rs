//! The admins' scheduling set-up: locations, chairs and rooms, appointment types, and each
//! person's weekly hours with leave and extra hours. Every form posts, then shows this page again.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use kapstone_domain::Role;
use kapstone_domain::decision::Route;
use kapstone_domain::scheduling::{AppointmentKind, AppointmentType, Length, StaffNeed};
use kapstone_store::scheduling as store;

use super::{Layout, PageResult, render, sentence};
use crate::app::scheduling::{self as app, ExceptionInput, HoursInput};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "admin_schedule.html")]
struct SchedulePage {
    layout: Layout,
    notice: Option<String>,
    error: Option<String>,
    /// (id, name, zone)
    locations: Vec<(String, String, String)>,
    /// (location name, room name)
    rooms: Vec<(String, String)>,
    /// (code, name, minutes, needs)
    types: Vec<(String, String, i64, String)>,
    /// (user id, name, role, week summary)
    staff: Vec<(String, String, String, String)>,
    kinds: Vec<&'static str>,
    routes: Vec<(&'static str, &'static str)>,
    roles: Vec<(&'static str, &'static str)>,
    /// (value, label, ticked by default)
    weekdays: Vec<(&'static str, &'static str, bool)>,
    /// Leave and extra hours from today: (id, person, date, what).
    exceptions: Vec<(String, String, String, String)>,
    /// Each location as a REMS healthcare setting.
    settings: Vec<SettingForm>,
}

/// One location's REMS setting form: as stored, or as typed when it was refused.
#[derive(Clone)]
pub struct SettingForm {
    pub id: String,
    pub name: String,
    pub certified: bool,
    pub address_line1: String,
    pub address_line2: String,
    pub city: String,
    pub state: String,
    pub zip: String,
    /// (field, message) of a refused submission.
    pub error: Option<(String, String)>,
}

impl SettingForm {
    fn invalid(&self, field: &str) -> bool {
        self.error.as_ref().is_some_and(|(f, _)| f == field)
    }
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

async fn page(
    state: &AppState,
    user: &CurrentUser,
    notice: Option<String>,
    error: Option<String>,
    draft: Option<SettingForm>,
) -> PageResult<Html<String>> {
    let locations = store::locations(&state.db, user.clinic).await?;
    let mut settings = Vec::with_capacity(locations.len());
    for l in &locations {
        let id = l.id.to_string();
        match &draft {
            Some(d) if d.id == id => settings.push(SettingForm { name: l.name.clone(), ..d.clone() }),
            _ => {
                let s = crate::app::rems::rems_setting(state, user, l.id).await?;
                settings.push(SettingForm {
                    id,
                    name: l.name.clone(),
                    certified: s.rems_certified,
                    address_line1: s.address_line1.unwrap_or_default(),
                    address_line2: s.address_line2.unwrap_or_default(),
                    city: s.city.unwrap_or_default(),
                    state: s.state_code.unwrap_or_default(),
                    zip: s.zip.unwrap_or_default(),
                    error: None,
                });
            }
        }
    }
    let rooms = store::rooms(&state.db, user.clinic).await?;
    let hours = store::hours(&state.db, user.clinic).await?;
    let types = app::types(state, user).await?;
    let staff = app::staff(state, user).await?;
    let today = jiff::Timestamp::now().to_zoned(app::zones(state, user.clinic).await?.default_zone().clone()).date();
    let until = today.checked_add(jiff::ToSpan::days(366)).unwrap_or(today);
    let exceptions = store::exceptions(&state.db, user.clinic, &today.to_string(), &until.to_string())
        .await?
        .into_iter()
        .map(|x| {
            let who = staff.iter().find(|u| u.id == x.user_id).map_or_else(String::new, |u| u.display_name.clone());
            let what = format!(
                "{} {:02}:{:02}–{:02}:{:02}{}",
                if x.is_leave { "Leave" } else { "Extra hours" },
                x.start_minute / 60,
                x.start_minute % 60,
                x.end_minute / 60,
                x.end_minute % 60,
                x.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
            );
            (x.id.to_string(), who, x.on_date, what)
        })
        .collect();
    render(&SchedulePage {
        exceptions,
        settings,
        layout: Layout::for_user("Scheduling set-up", user, "/admin/scheduling"),
        notice,
        error,
        rooms: rooms
            .iter()
            .map(|r| {
                let loc = locations.iter().find(|l| l.id == r.location_id).map_or_else(String::new, |l| l.name.clone());
                (loc, r.name.clone())
            })
            .collect(),
        locations: locations.iter().map(|l| (l.id.to_string(), l.name.clone(), l.time_zone.clone())).collect(),
        types: types
            .iter()
            .filter(|t| t.2)
            .map(|(_, t, _)| {
                let needs = t
                    .staff
                    .iter()
                    .map(|n| n.0.iter().map(|r| r.label()).collect::<Vec<_>>().join(" or "))
                    .collect::<Vec<_>>()
                    .join(" + ");
                let room = if t.needs_room { " + chair" } else { "" };
                (t.code.clone(), t.name.clone(), t.length.minutes(), format!("{needs}{room}"))
            })
            .collect(),
        staff: staff
            .iter()
            .map(|u| {
                let week = hours
                    .iter()
                    .filter(|h| h.user_id == u.id)
                    .map(|h| {
                        let place = match locations.iter().find(|l| l.id == h.location_id) {
                            Some(l) if locations.len() > 1 => format!(" at {}", l.name),
                            _ => String::new(),
                        };
                        format!(
                            "{} {:02}:{:02}–{:02}:{:02}{place}",
                            WEEKDAYS.get(usize::try_from(h.weekday - 1).unwrap_or(0)).copied().unwrap_or("?"),
                            h.start_minute / 60,
                            h.start_minute % 60,
                            h.end_minute / 60,
                            h.end_minute % 60
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    u.id.to_string(),
                    u.display_name.clone(),
                    u.role.clone(),
                    if week.is_empty() { "no hours".into() } else { week },
                )
            })
            .collect(),
        kinds: AppointmentKind::ALL.iter().map(|k| k.as_str()).collect(),
        routes: Route::ALL.iter().map(|r| (r.as_str(), r.label())).collect(),
        weekdays: vec![
            ("1", "Monday", true),
            ("2", "Tuesday", true),
            ("3", "Wednesday", true),
            ("4", "Thursday", true),
            ("5", "Friday", true),
            ("6", "Saturday", false),
            ("7", "Sunday", false),
        ],
        roles: [Role::Prescriber, Role::Nurse, Role::Therapist, Role::Frontdesk]
            .iter()
            .map(|r| (r.as_str(), r.label()))
            .collect(),
    })
}

#[derive(serde::Deserialize)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<SavedQuery>,
) -> PageResult<Html<String>> {
    page(&state, &user, q.saved.map(|s| format!("Saved: {s}.")), None, None).await
}

fn pairs(body: &str) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_str(body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })
}

fn get<'a>(pairs: &'a [(String, String)], k: &str) -> &'a str {
    pairs.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v.trim())
}

async fn done(state: &AppState, user: &CurrentUser, what: &str, r: Result<(), AppError>) -> PageResult<Response> {
    match r {
        Ok(()) => Ok(Redirect::to(&format!("/admin/scheduling?saved={}", what.replace(' ', "+"))).into_response()),
        Err(e @ (AppError::Invalid(_) | AppError::Conflict { .. } | AppError::InvalidItem { .. })) => {
            let field = e.field().map(|f| format!(" ({f})")).unwrap_or_default();
            let msg = format!("{}{field}", sentence(&e.public_message("")));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page(state, user, None, Some(msg), None).await?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /admin/scheduling/locations`.
pub async fn add_location(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let p = pairs(&body)?;
    let r = app::create_location(&state, &user, get(&p, "name"), get(&p, "time_zone")).await.map(|_| ());
    done(&state, &user, "location", r).await
}

/// `POST /admin/scheduling/locations/{id}/rems-setting`: the location's REMS certification and
/// the address the REMS Patient Monitoring Form asks for. A refusal shows the form again as typed,
/// the field at fault marked, and saves nothing.
pub async fn set_rems_setting(
    State(state): State<AppState>,
    user: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: String,
) -> PageResult<Response> {
    let p = pairs(&body)?;
    let input = crate::app::rems::RemsSettingInput {
        certified: get(&p, "rems_certified") == "yes",
        address_line1: get(&p, "address_line1").to_owned(),
        address_line2: get(&p, "address_line2").to_owned(),
        city: get(&p, "city").to_owned(),
        state: get(&p, "state").to_owned(),
        zip: get(&p, "zip").to_owned(),
    };
    match crate::app::rems::set_rems_setting(&state, &user, &id, &input).await {
        Ok(_) => Ok(Redirect::to("/admin/scheduling?saved=REMS+setting").into_response()),
        Err(AppError::Invalid(e)) => {
            let msg = format!("{} ({})", sentence(&e.message), e.field);
            let draft = SettingForm {
                id,
                name: String::new(),
                certified: input.certified,
                address_line1: input.address_line1,
                address_line2: input.address_line2,
                city: input.city,
                state: input.state,
                zip: input.zip,
                error: Some((e.field.to_owned(), sentence(&e.message))),
            };
            let page = page(&state, &user, None, Some(msg), Some(draft)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /admin/scheduling/rooms`.
pub async fn add_room(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let p = pairs(&body)?;
    let r = app::create_room(&state, &user, get(&p, "location_id"), get(&p, "name")).await.map(|_| ());
    done(&state, &user, "room", r).await
}

fn minutes(p: &[(String, String)], k: &'static str) -> Result<u16, AppError> {
    match get(p, k) {
        "" => Ok(0),
        v => v
            .parse()
            .map_err(|_| AppError::Invalid(kapstone_domain::FieldError::new(k, "enter minutes as a whole number"))),
    }
}

/// `POST /admin/scheduling/types`: the staff needs come as `need1`/`need2` role checkboxes.
pub async fn save_type(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let p = pairs(&body)?;
    let r = async {
        let kind = AppointmentKind::parse(get(&p, "kind"))
            .ok_or_else(|| AppError::Invalid(kapstone_domain::FieldError::new("kind", "choose a kind")))?;
        let route = match get(&p, "route") {
            "" => None,
            v => Some(
                Route::parse(v)
                    .ok_or_else(|| AppError::Invalid(kapstone_domain::FieldError::new("route", "choose a route")))?,
            ),
        };
        let length = if kind == AppointmentKind::Dosing {
            Length::Dosing {
                check_in_minutes: minutes(&p, "check_in_minutes")?,
                observation_minutes: minutes(&p, "observation_minutes")?,
                recovery_minutes: minutes(&p, "recovery_minutes")?,
            }
        } else {
            Length::Fixed { minutes: minutes(&p, "minutes")? }
        };
        let need = |name: &str| -> Vec<Role> {
            p.iter().filter(|(k, _)| k == name).filter_map(|(_, v)| v.parse::<Role>().ok()).collect()
        };
        let staff: Vec<StaffNeed> =
            [need("need1"), need("need2")].into_iter().filter(|n| !n.is_empty()).map(StaffNeed).collect();
        let def = AppointmentType {
            code: get(&p, "code").to_owned(),
            name: get(&p, "name").to_owned(),
            kind,
            route,
            length,
            staff,
            needs_room: get(&p, "needs_room") == "yes",
            telehealth: get(&p, "telehealth") == "yes",
        };
        app::save_type(&state, &user, &def).await.map(|_| ())
    }
    .await;
    done(&state, &user, "appointment type", r).await
}

/// `POST /admin/scheduling/hours`: the same hours on each ticked weekday, at one location;
/// either replacing the person's week or keeping their other days (someone who works Mondays at
/// one location and Wednesdays at another).
pub async fn set_hours(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let p = pairs(&body)?;
    let mut rows: Vec<HoursInput> = p
        .iter()
        .filter(|(k, _)| k == "weekday")
        .filter_map(|(_, v)| v.parse::<i32>().ok())
        .map(|weekday| HoursInput {
            weekday,
            start: get(&p, "start").to_owned(),
            end: get(&p, "end").to_owned(),
            location_id: Some(get(&p, "location_id").to_owned()).filter(|l| !l.is_empty()),
        })
        .collect();
    if get(&p, "mode") == "add" {
        let person: uuid::Uuid = get(&p, "user_id").parse().unwrap_or_default();
        let hm = |m: i32| format!("{:02}:{:02}", m / 60, m % 60);
        let kept: Vec<HoursInput> = store::hours(&state.db, user.clinic)
            .await?
            .into_iter()
            .filter(|h| h.user_id == person && !rows.iter().any(|r| r.weekday == h.weekday))
            .map(|h| HoursInput {
                weekday: h.weekday,
                start: hm(h.start_minute),
                end: hm(h.end_minute),
                location_id: Some(h.location_id.to_string()),
            })
            .collect();
        rows.extend(kept);
    }
    let r = app::set_hours(&state, &user, get(&p, "user_id"), &rows).await;
    done(&state, &user, "working hours", r).await
}

/// `POST /admin/scheduling/exceptions`: leave or extra hours on a date.
pub async fn add_exception(State(state): State<AppState>, user: CurrentUser, body: String) -> PageResult<Response> {
    let p = pairs(&body)?;
    let input = ExceptionInput {
        date: get(&p, "date").to_owned(),
        kind: get(&p, "kind").to_owned(),
        start: get(&p, "start").to_owned(),
        end: get(&p, "end").to_owned(),
        note: Some(get(&p, "note").to_owned()).filter(|n| !n.is_empty()),
    };
    match app::add_exception(&state, &user, get(&p, "user_id"), &input).await {
        Ok(added) if !added.clashes.is_empty() => {
            let when: Vec<&str> = added.clashes.iter().map(|c| c.when.as_str()).collect();
            let msg = format!(
                "Leave saved. {} booked appointment(s) fall in it and still need moving: {}. Open them from the schedule.",
                when.len(),
                when.join(", ")
            );
            Ok((StatusCode::OK, page(&state, &user, Some(msg), None, None).await?).into_response())
        }
        r => done(&state, &user, "leave or extra hours", r.map(|_| ())).await,
    }
}

/// `POST /admin/scheduling/exceptions/{id}/remove`.
pub async fn remove_exception(
    State(state): State<AppState>,
    user: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> PageResult<Response> {
    let r = app::remove_exception(&state, &user, &id).await;
    done(&state, &user, "removal", r).await
}
