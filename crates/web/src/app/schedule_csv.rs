//! The schedule as CSV (issue 8): appointments of a day or a range of days, for a spreadsheet.
//! Times are in each appointment's location zone; every field is quoted and formula-safe; the
//! export is audited as a read of the patients it lists.

use jiff::civil::{Date, Time};
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::{FieldError, PatientId};
use kapstone_store::{patients, scheduling as store, users};

use super::audit_log::csv_field;
use super::scheduling::{between, to_jiff, types, zones};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD` of the page and the API.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvQuery {
    pub from: String,
    pub to: Option<String>,
}

/// The longest range one export covers.
pub const MAX_DAYS: i64 = 31;

fn date(field: &'static str, raw: &str) -> Result<Date, AppError> {
    raw.trim().parse().map_err(|_| AppError::Invalid(FieldError::new(field, "give a date as YYYY-MM-DD")))
}

/// The appointments starting from `from` to `to` (dates in the clinic's zone, both included; `to`
/// defaults to `from`) as CSV, with the file name to offer.
pub async fn schedule_csv(state: &AppState, user: &CurrentUser, q: &CsvQuery) -> Result<(String, String), AppError> {
    super::reauth::before_export(state, user).await?;
    let first = date("from", &q.from)?;
    let last = match q.to.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(t) => date("to", t)?,
        None => first,
    };
    let days = (last - first).get_days();
    if days < 0 {
        return Err(AppError::Invalid(FieldError::new("to", "the last day comes before the first")));
    }
    if i64::from(days) >= MAX_DAYS {
        return Err(AppError::Invalid(FieldError::new("to", format!("export at most {MAX_DAYS} days at a time"))));
    }
    let zones = zones(state, user.clinic).await?;
    let tz = zones.default_zone().clone();
    let internal = |e: kapstone_domain::scheduling::ScheduleError| AppError::Internal(anyhow::anyhow!("{e}"));
    let start = kapstone_domain::scheduling::instant(&tz, first, Time::midnight()).map_err(internal)?;
    let end_day = last.tomorrow().map_err(|_| AppError::Invalid(FieldError::new("to", "not a date")))?;
    let end = kapstone_domain::scheduling::instant(&tz, end_day, Time::midnight()).map_err(internal)?;
    // Appointments that start on the days asked for: one running past midnight into the first
    // day belongs to the day before (it is on that day's sheet), as a person reading a day expects.
    let mut rows = between(state, user, start, end).await?;
    rows.retain(|(a, _)| to_jiff(a.start_at.0) >= start);
    let kinds = types(state, user).await?;
    let rooms = store::rooms(&state.db, user.clinic).await?;
    let staff = users::list(&state.db, user.clinic).await?;
    let mut out = String::from("date,start,end,time_zone,location,room,type,status,mrn,patient,staff\r\n");
    for (a, people) in &rows {
        let zone = zones.of(a.location_id).clone();
        let (s, e) = (to_jiff(a.start_at.0).to_zoned(zone.clone()), to_jiff(a.end_at.0).to_zoned(zone.clone()));
        let p = patients::get(&state.db, user.clinic, PatientId::from_uuid(a.patient_id)).await?;
        let location = zones.locations().find(|(id, _)| *id == a.location_id).map_or("", |(_, n)| n);
        let cols = [
            s.date().to_string(),
            format!("{:02}:{:02}", s.hour(), s.minute()),
            format!("{:02}:{:02}", e.hour(), e.minute()),
            zone.iana_name().unwrap_or("UTC").to_owned(),
            location.to_owned(),
            a.room_id.and_then(|r| rooms.iter().find(|x| x.id == r)).map_or_else(String::new, |r| r.name.clone()),
            kinds.iter().find(|(id, _, _)| *id == a.type_id).map_or_else(String::new, |t| t.1.name.clone()),
            a.status.clone(),
            p.as_ref().map_or_else(String::new, |p| p.mrn.clone()),
            p.as_ref().map_or_else(String::new, |p| format!("{} {}", p.given_name, p.family_name)),
            people
                .iter()
                .filter_map(|u| staff.iter().find(|x| x.id == *u).map(|x| x.display_name.clone()))
                .collect::<Vec<_>>()
                .join("; "),
        ];
        let line: Vec<String> = cols.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    let mut e = user.event(AuditAction::PatientListed, "appointment", Outcome::Success);
    e.reason = Some(format!("schedule CSV {first} to {last}: {} appointments", rows.len()));
    state.read_audit.record(e).await?;
    let name = if first == last { format!("schedule-{first}.csv") } else { format!("schedule-{first}-to-{last}.csv") };
    Ok((out, name))
}

/// The CSV as a download (not cached: it names patients).
pub fn response(body: String, name: &str) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}
