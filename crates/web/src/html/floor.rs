//! The floor board as a page: one card per chair with the patient's initials, the phase, the time
//! since dose, the next check with a countdown, overdue checks and alerts in words (not colour
//! alone), and the staff. It updates itself: `/floor/events` is a Server-Sent Events stream fed by
//! the clinic's floor counter in the database (so it works across server processes) and
//! `/static/floor.js` re-fetches `/floor/board` when it moves. Without JavaScript the page
//! refreshes every 30 seconds.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use jiff::Timestamp;
use kapstone_domain::monitoring::CheckStatus;
use kapstone_domain::permissions::{Action, allows};
use uuid::Uuid;

use super::{Layout, PageResult, render};
use crate::app::floor::{Board, FloorSession};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

#[derive(serde::Deserialize, Default)]
pub struct FloorQuery {
    #[serde(default)]
    location: Option<String>,
}

pub struct SeatView {
    pub session_id: Option<Uuid>,
    pub appointment_id: Uuid,
    pub patient: String,
    pub state: String,
    pub state_label: String,
    pub booked_at: String,
    pub minutes_since_dose: Option<i64>,
    /// (what, due "10:40", due instant in Unix seconds, countdown text, late)
    pub next_check: Option<(String, String, i64, String, bool)>,
    pub overdue_checks: usize,
    /// (rule, message)
    pub alerts: Vec<(&'static str, String)>,
    pub blocked_by: Option<String>,
    pub staff: String,
    pub attention: bool,
}

pub struct ChairView {
    pub name: String,
    pub seats: Vec<SeatView>,
}

/// "4:05" (minutes:seconds) until or since a moment.
pub fn countdown(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    let text = format!("{}:{:02}", s / 60, s % 60);
    if seconds >= 0 { format!("in {text}") } else { format!("{text} late") }
}

fn kind_label(kind: &str) -> String {
    match kind {
        "blood_pressure" => "Blood pressure".into(),
        "spo2_rr" => "SpO2 and resp. rate".into(),
        "moaas" => "Sedation (MOAA/S)".into(),
        "cadss" => "Dissociation (CADSS)".into(),
        other => other.replace('_', " "),
    }
}

fn seat(s: &FloorSession, now: i64) -> SeatView {
    SeatView {
        session_id: s.session_id,
        appointment_id: s.appointment_id,
        patient: s.patient.clone(),
        state: s.state.clone(),
        state_label: s.state_label.clone(),
        booked_at: s.booked_at.clone(),
        minutes_since_dose: s.minutes_since_dose,
        next_check: s.next_check.as_ref().map(|n| {
            (
                kind_label(&n.kind),
                n.due_at.clone(),
                now + n.due_in_seconds,
                countdown(n.due_in_seconds),
                n.due_in_seconds < 0 || n.status == CheckStatus::Overdue,
            )
        }),
        overdue_checks: s.overdue_checks,
        alerts: s.alerts.iter().map(|a| (a.rule, a.message.clone())).collect(),
        blocked_by: s.blocked_by.clone(),
        staff: s.staff.join(", "),
        attention: s.overdue_checks > 0 || !s.alerts.is_empty(),
    }
}

#[derive(Template)]
#[template(path = "floor_board.html")]
struct BoardFragment {
    chairs: Vec<ChairView>,
    generated_at: String,
    can_open: bool,
    csrf: String,
}

fn fragment(board: &Board, user: &CurrentUser) -> BoardFragment {
    let now = Timestamp::now().as_second();
    BoardFragment {
        chairs: board
            .chairs
            .iter()
            .map(|c| ChairView { name: c.name.clone(), seats: c.sessions.iter().map(|s| seat(s, now)).collect() })
            .collect(),
        generated_at: board.generated_at.clone(),
        can_open: allows(Some(user.role), Action::RunDosingSession),
        csrf: user.csrf.clone(),
    }
}

#[derive(Template)]
#[template(path = "floor.html")]
struct FloorPage {
    layout: Layout,
    location_id: Uuid,
    location: String,
    /// (id, name, current)
    locations: Vec<(Uuid, String, bool)>,
    counter: i64,
    board: String,
}

/// `GET /floor?location=`.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<FloorQuery>,
) -> PageResult<Html<String>> {
    let board = crate::app::floor::board(&state, &user, q.location.as_deref()).await?;
    let zs = crate::app::scheduling::zones(&state, user.clinic).await?;
    let inner = fragment(&board, &user).render().map_err(|e| AppError::Internal(anyhow::anyhow!("template: {e}")))?;
    render(&FloorPage {
        layout: Layout::for_user("Floor", &user, "/floor"),
        location_id: board.location_id,
        location: board.location.clone(),
        locations: zs.locations().map(|(id, name)| (id, name.to_owned(), id == board.location_id)).collect(),
        counter: board.counter,
        board: inner,
    })
}

/// `GET /floor/board?location=`: the chairs alone, for the page's script to swap in.
pub async fn board(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<FloorQuery>,
) -> PageResult<Html<String>> {
    let board = crate::app::floor::board(&state, &user, q.location.as_deref()).await?;
    render(&fragment(&board, &user))
}

struct Watch {
    counter: tokio::sync::watch::Receiver<Option<i64>>,
    last: Option<i64>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// `GET /floor/events?location=`: Server-Sent Events. First `ready` with the floor's counter, then
/// `change` with the new counter whenever anything on the clinic's floor changes (the process's
/// [`FloorWatch`](crate::app::floor_watch::FloorWatch) reads the counter in the database every
/// 50 ms), and a keep-alive comment every 15 s. Ends when the server stops.
pub async fn events(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<FloorQuery>,
) -> PageResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    if let Some(l) = q.location.as_deref().filter(|l| !l.trim().is_empty()) {
        let zs = crate::app::scheduling::zones(&state, user.clinic).await?;
        if !zs.locations().any(|(id, _)| id.to_string() == l.trim()) {
            return Err(AppError::Invalid(kapstone_domain::FieldError::new(
                "location",
                "not a location of this clinic",
            ))
            .into());
        }
    }
    let w =
        Watch { counter: state.floor_watch.subscribe(user.clinic), last: None, stopping: state.stopping.subscribe() };
    let stream = futures_util::stream::unfold(w, |mut w| async move {
        loop {
            if *w.stopping.borrow() {
                return None;
            }
            let seen = *w.counter.borrow_and_update();
            let name = match (w.last, seen) {
                (None, Some(_)) => "ready",
                (Some(last), Some(counter)) if last != counter => "change",
                _ => {
                    tokio::select! {
                        r = w.counter.changed() => if r.is_err() { return None; },
                        r = w.stopping.changed() => if r.is_err() || *w.stopping.borrow() { return None; },
                    }
                    continue;
                }
            };
            let counter = seen.unwrap_or_default();
            w.last = Some(counter);
            let event = Event::default().event(name).data(counter.to_string()).retry(Duration::from_secs(2));
            return Some((Ok(event), w));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
