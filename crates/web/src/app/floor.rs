//! The live floor board: one location's chairs with the patient (initials), the session's phase,
//! time since dose, the next check and when it is due, overdue checks and alerts waiting for an
//! acknowledgement, and who is assigned. Read as one audited list.

use jiff::Timestamp;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::monitoring::CheckStatus;
use kapstone_domain::scheduling::AppointmentKind;
use kapstone_store::dosing as store;
use serde::Serialize;
use uuid::Uuid;

use super::scheduling::{from_jiff, initials, to_jiff, zones};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct NextCheck {
    pub kind: String,
    pub due_at: String,
    /// Seconds until due (negative: late).
    pub due_in_seconds: i64,
    pub status: CheckStatus,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AlertLine {
    pub id: u32,
    pub rule: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FloorSession {
    pub session_id: Option<Uuid>,
    pub appointment_id: Uuid,
    pub patient: String,
    pub state: String,
    pub state_label: String,
    /// "10:00" local: the appointment's start.
    pub booked_at: String,
    pub minutes_since_dose: Option<i64>,
    pub next_check: Option<NextCheck>,
    pub overdue_checks: usize,
    pub alerts: Vec<AlertLine>,
    /// What stops the next step (first blocker), in words.
    pub blocked_by: Option<String>,
    pub staff: Vec<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Chair {
    pub room_id: Option<Uuid>,
    pub name: String,
    pub sessions: Vec<FloorSession>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Board {
    pub location_id: Uuid,
    pub location: String,
    pub time_zone: String,
    pub generated_at: String,
    /// Changes when anything on the clinic's floor changes (the live stream watches it).
    pub counter: i64,
    pub chairs: Vec<Chair>,
}

/// The board of `location` (default: the clinic's first) for today in its zone.
pub async fn board(state: &AppState, user: &CurrentUser, location: Option<&str>) -> Result<Board, AppError> {
    let zs = zones(state, user.clinic).await?;
    let location: Uuid = match location.filter(|l| !l.trim().is_empty()) {
        Some(raw) => raw.trim().parse().ok().filter(|id| zs.locations().any(|(l, _)| l == *id)).ok_or_else(|| {
            AppError::Invalid(kapstone_domain::FieldError::new("location", "not a location of this clinic"))
        })?,
        None => zs.locations().next().map(|(id, _)| id).ok_or(AppError::NotFound)?,
    };
    let tz = zs.of(location).clone();
    let counter = store::floor_counter(&state.db, user.clinic).await?;
    let now = Timestamp::now();
    let today = now.to_zoned(tz.clone()).date();
    let start = kapstone_domain::scheduling::instant(&tz, today, jiff::civil::Time::midnight())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let end = start.checked_add(jiff::SignedDuration::from_hours(24)).unwrap_or(start);
    let types = super::scheduling::types(state, user).await?;
    let dosing_types: Vec<Uuid> =
        types.iter().filter(|(_, t, _)| t.kind == AppointmentKind::Dosing).map(|(id, _, _)| *id).collect();
    let appointments: Vec<_> =
        kapstone_store::scheduling::appointments_between(&state.db, user.clinic, from_jiff(start), from_jiff(end))
            .await?
            .into_iter()
            .filter(|a| {
                a.location_id == location
                    && dosing_types.contains(&a.type_id)
                    && a.status != "cancelled"
                    && a.status != "rescheduled"
            })
            .collect();
    let sessions = store::sessions_on_floor(&state.db, user.clinic, location, from_jiff(start), from_jiff(end)).await?;
    // A session still open from before midnight stays on the board until it ends.
    let mut appointments = appointments;
    for s in &sessions {
        if !appointments.iter().any(|a| a.id == s.appointment_id)
            && let Some(a) = kapstone_store::scheduling::appointment(&state.db, user.clinic, s.appointment_id).await?
        {
            appointments.push(a);
        }
    }
    let ids: Vec<Uuid> = appointments.iter().map(|a| a.id).collect();
    let staff_of = kapstone_store::scheduling::staff_of(&state.db, &ids).await?;
    let people = kapstone_store::users::list(&state.db, user.clinic).await?;
    let rooms: Vec<_> = kapstone_store::scheduling::rooms(&state.db, user.clinic)
        .await?
        .into_iter()
        .filter(|r| r.active && r.location_id == location)
        .collect();
    let mut lines: Vec<(Option<Uuid>, i64, FloorSession)> = Vec::new();
    let hm = |t: Timestamp| {
        let z = t.to_zoned(tz.clone());
        format!("{:02}:{:02}", z.hour(), z.minute())
    };
    let patient_ids: Vec<Uuid> = appointments.iter().map(|a| a.patient_id).collect();
    let names = kapstone_store::patients::names(&state.db, user.clinic, &patient_ids).await?;
    state.floor_sessions.refresh(state, user, &sessions).await?;
    let at = super::scheduling::from_jiff(now);
    for a in &appointments {
        let patient = names
            .iter()
            .find(|(id, _, _)| *id == a.patient_id)
            .map_or_else(String::new, |(_, given, family)| initials(given, family));
        let staff: Vec<String> = staff_of
            .iter()
            .filter(|(appt, _)| *appt == a.id)
            .filter_map(|(_, u)| people.iter().find(|x| x.id == *u).map(|x| x.display_name.clone()))
            .collect();
        let booked_at = hm(to_jiff(a.start_at.0));
        let Some(row) = sessions.iter().find(|s| s.appointment_id == a.id) else {
            let waiting = FloorSession {
                session_id: None,
                appointment_id: a.id,
                patient,
                state: "expected".into(),
                state_label: "Expected".into(),
                booked_at,
                minutes_since_dose: None,
                next_check: None,
                overdue_checks: 0,
                alerts: Vec::new(),
                blocked_by: Some("Not checked in yet".into()),
                staff,
            };
            lines.push((a.room_id, a.start_at.0.unix_micros(), waiting));
            continue;
        };
        let line = state
            .floor_sessions
            .with(row.id, at, |view| {
                let open: Vec<_> = view
                    .checks
                    .iter()
                    .filter(|c| matches!(c.status, CheckStatus::Upcoming | CheckStatus::Due | CheckStatus::Overdue))
                    .collect();
                let next = open.iter().min_by_key(|c| c.check.due_at.unix_micros()).map(|c| {
                    let due = to_jiff(c.check.due_at);
                    NextCheck {
                        kind: serde_json::to_value(c.check.kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        due_at: hm(due),
                        due_in_seconds: due.as_second() - now.as_second(),
                        status: c.status,
                    }
                });
                FloorSession {
                    session_id: Some(row.id),
                    appointment_id: a.id,
                    patient,
                    state: view.state.as_str().to_owned(),
                    state_label: view.state.label().to_owned(),
                    booked_at,
                    minutes_since_dose: view.minutes_since_dose,
                    next_check: next,
                    overdue_checks: view.checks.iter().filter(|c| c.status == CheckStatus::Overdue).count(),
                    alerts: view
                        .unacknowledged_alerts
                        .iter()
                        .map(|r| AlertLine { id: r.id, rule: r.alert.rule, message: r.alert.message.clone() })
                        .collect(),
                    blocked_by: view.blocked_by.first().map(|b| b.message.clone()),
                    staff,
                }
            })
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("floor session {} was not loaded", row.id)))?;
        lines.push((a.room_id, a.start_at.0.unix_micros(), line));
    }
    lines.sort_by_key(|l| l.1);
    let mut chairs: Vec<Chair> = rooms
        .iter()
        .map(|r| Chair {
            room_id: Some(r.id),
            name: r.name.clone(),
            sessions: lines.iter().filter(|l| l.0 == Some(r.id)).map(|l| l.2.clone()).collect(),
        })
        .collect();
    let elsewhere: Vec<FloorSession> =
        lines.iter().filter(|l| !rooms.iter().any(|r| Some(r.id) == l.0)).map(|l| l.2.clone()).collect();
    if !elsewhere.is_empty() {
        chairs.push(Chair { room_id: None, name: "No chair".into(), sessions: elsewhere });
    }
    let mut e = user.event(AuditAction::PatientListed, "floor", Outcome::Success);
    e.reason = Some(format!("{} sessions", lines.len()));
    state.read_audit.record(e).await?;
    Ok(Board {
        location_id: location,
        location: zs.place(location).to_owned(),
        time_zone: tz.iana_name().unwrap_or("UTC").to_owned(),
        generated_at: hm(now),
        counter,
        chairs,
    })
}
