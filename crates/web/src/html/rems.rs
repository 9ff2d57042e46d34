//! Pages after a dosing session: the SPRAVATO REMS Patient Monitoring Form (printable, with the
//! form to record its submission), the clinic's REMS form dashboard, and the printable session
//! summary.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use jiff::tz::TimeZone;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::discharge::CriterionStatus;
use kapstone_domain::monitoring::Measurement;
use kapstone_domain::rems_form::SubmissionStatus;
use kapstone_domain::session::{Actor, SessionEvent};
use kapstone_domain::{PatientId, UserId, UtcTs};
use uuid::Uuid;

use super::{Layout, PageResult, render, sentence};
use crate::app::rems::{self as app, DashboardRow, FormView, jiff_date};
use crate::app::scheduling::{to_jiff, zones};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

fn session_id(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

/// A form status in words, with the pill class the stylesheet knows.
pub fn status_words(s: &SubmissionStatus) -> (String, &'static str) {
    match s {
        SubmissionStatus::Pending { due } => (format!("Due by {due}"), "warn"),
        SubmissionStatus::Overdue { due } => (format!("Overdue (was due {due})"), "bad"),
        SubmissionStatus::Submitted { on, late: false } => (format!("Submitted on {on}"), "ok"),
        SubmissionStatus::Submitted { on, late: true } => (format!("Submitted late on {on}"), "warn"),
    }
}

pub struct FieldLine {
    pub section: String,
    pub label: String,
    pub value: String,
    /// Required and not recorded: shown as "To complete", never as a blank.
    pub missing: bool,
    /// Where the value is recorded in Kapstone, for the values that come from the set-up.
    pub hint: Option<&'static str>,
    pub problem: Option<String>,
    pub unverified: bool,
}

/// Where an admin records a form value that comes from the clinic's set-up rather than the
/// session, so a "To complete" can be fixed once for every later form.
fn where_recorded(field: &str) -> Option<&'static str> {
    match field {
        "setting_address1" | "setting_address2" | "setting_city" | "setting_state" | "setting_zip" => {
            Some("An admin records the setting's address under Scheduling set-up, REMS healthcare setting.")
        }
        "hcp_telephone" => Some("An admin records the clinician's work telephone on their account page."),
        _ => None,
    }
}

#[derive(Template)]
#[template(path = "rems_form.html")]
struct FormPage {
    layout: Layout,
    v: FormView,
    status: String,
    status_class: &'static str,
    lines: Vec<FieldLine>,
    today: String,
    error: Option<String>,
    notice: Option<String>,
    submitted_on: String,
    confirmation: String,
}

async fn form_page(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    notice: Option<String>,
    error: Option<String>,
    input: (String, String),
) -> PageResult<Html<String>> {
    let v = app::form(state, user, id).await?;
    let (status, status_class) = status_words(&v.status);
    let lines = v
        .form
        .fields
        .iter()
        .map(|f| {
            let missing = v.form.missing_required.iter().any(|i| i.id == f.id);
            FieldLine {
                section: f.section.clone(),
                label: f.label.clone(),
                value: f.display.clone().unwrap_or_default(),
                missing,
                hint: where_recorded(&f.id),
                problem: v.form.invalid.iter().find(|i| i.id == f.id).map(|i| sentence(&i.message)),
                unverified: f.unverified,
            }
        })
        .collect();
    let tz = zones(state, user.clinic).await?.default_zone().clone();
    render(&FormPage {
        layout: Layout::for_user("REMS Patient Monitoring Form", user, "/rems-forms"),
        status,
        status_class,
        lines,
        today: jiff::Timestamp::now().to_zoned(tz).date().to_string(),
        error,
        notice,
        submitted_on: input.0,
        confirmation: input.1,
        v,
    })
}

/// `GET /sessions/{id}/rems-form`.
pub async fn form(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    form_page(&state, &user, session_id(&id)?, None, None, Default::default()).await
}

fn field<'a>(pairs: &'a [(String, String)], k: &str) -> &'a str {
    pairs.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v.trim())
}

/// `POST /sessions/{id}/rems-form`: records the submission; a refused date shows the form again
/// (422) with the message naming the field.
pub async fn submit(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let id = session_id(&id)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })?;
    let (on, confirmation) = (field(&pairs, "submitted_on"), field(&pairs, "confirmation"));
    match app::submit(&state, &user, id, on, Some(confirmation)).await {
        Ok(_) => Ok(Redirect::to(&format!("/sessions/{id}/rems-form")).into_response()),
        Err(e @ AppError::Invalid(_)) => {
            let f = e.field().map(|f| format!(" ({f})")).unwrap_or_default();
            let msg = format!("{}{f}", sentence(&e.public_message("")));
            let page = form_page(&state, &user, id, None, Some(msg), (on.to_owned(), confirmation.to_owned())).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub struct DashboardLine {
    pub row: DashboardRow,
    pub status: String,
    pub status_class: &'static str,
}

#[derive(Template)]
#[template(path = "rems_forms.html")]
struct DashboardPage {
    layout: Layout,
    lines: Vec<DashboardLine>,
    overdue: usize,
    due: usize,
}

/// `GET /rems-forms`.
pub async fn dashboard(State(state): State<AppState>, user: CurrentUser) -> PageResult<Html<String>> {
    let rows = app::dashboard(&state, &user).await?;
    let overdue = rows.iter().filter(|r| matches!(r.status, SubmissionStatus::Overdue { .. })).count();
    let due = rows.iter().filter(|r| matches!(r.status, SubmissionStatus::Pending { .. })).count();
    let lines = rows
        .into_iter()
        .map(|row| {
            let (status, status_class) = status_words(&row.status);
            DashboardLine { row, status, status_class }
        })
        .collect();
    render(&DashboardPage { layout: Layout::for_user("REMS forms", &user, "/rems-forms"), lines, overdue, due })
}

// ---------------------------------------------------------------------------------------------
// The session summary.

pub struct Row2 {
    pub label: String,
    pub value: String,
}

pub struct VitalLine {
    pub time: String,
    pub bp: String,
    pub heart_rate: String,
    pub spo2: String,
    pub resp_rate: String,
    pub moaas: String,
    pub cadss: String,
}

pub struct AlertLine {
    pub rule: String,
    pub raised: String,
    pub message: String,
    pub acknowledged: String,
}

pub struct AeLine {
    pub what: String,
    pub onset: String,
    pub severity: String,
    pub serious: bool,
    pub outcome: String,
}

pub struct CriterionLine {
    pub id: String,
    pub title: String,
    pub met: &'static str,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "session_summary.html")]
struct SummaryPage {
    layout: Layout,
    session_id: String,
    patient_id: String,
    patient: String,
    mrn: String,
    birth_date: String,
    date: String,
    zone: String,
    location: String,
    state: String,
    protocol: String,
    spravato: bool,
    times: Vec<Row2>,
    administration: Vec<Row2>,
    vitals: Vec<VitalLine>,
    alerts: Vec<AlertLine>,
    adverse_events: Vec<AeLine>,
    criteria: Vec<CriterionLine>,
    instructions: Vec<String>,
    instructions_given: Option<bool>,
    notes: Vec<Row2>,
}

fn snake(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default()
}

/// `GET /sessions/{id}/summary`: one printable page per session (audited as a read).
pub async fn summary(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    let l = crate::app::sessions::load(&state, &user, session_id(&id)?).await?;
    let s = l.session();
    let ctx = l.ctx();
    let patient = PatientId::from_uuid(l.row.patient_id);
    let p = kapstone_store::patients::get(&state.db, user.clinic, patient).await?.ok_or(AppError::NotFound)?;
    let mut e = user.event(AuditAction::PatientRead, "session_summary", Outcome::Success);
    e.entity_id = Some(l.row.id.to_string());
    e.patient_id = Some(patient);
    state.read_audit.record(e).await?;
    let zs = zones(&state, user.clinic).await?;
    let tz: TimeZone = zs.of(l.row.location_id).clone();
    let staff: Vec<(Uuid, String)> = kapstone_store::users::list(&state.db, user.clinic)
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect();
    let who = |a: &Actor| {
        let name = staff.iter().find(|(id, _)| UserId::from_uuid(*id) == a.user).map_or("", |(_, n)| n.as_str());
        format!("{name} ({})", a.role.label())
    };
    let hm = |t: UtcTs| {
        let z = to_jiff(t).to_zoned(tz.clone());
        format!("{:02}:{:02}", z.hour(), z.minute())
    };
    let date_of = |t: UtcTs| to_jiff(t).to_zoned(tz.clone()).date().to_string();
    let line = |label: &str, value: String| Row2 { label: label.to_owned(), value };

    let mut times = Vec::new();
    if let Some(c) = s.check_in() {
        times.push(line("Checked in", format!("{} by {}", hm(c.stamp.at), who(&c.stamp.by))));
    }
    if let Some(a) = s.administration() {
        times.push(line("Administration started", format!("{} by {}", hm(a.started_at), who(&a.by))));
    }
    for (i, d) in s.devices().iter().enumerate() {
        times.push(line(&format!("Device {}", i + 1), hm(*d)));
    }
    if let Some(a) = s.administration()
        && let Some(end) = a.ended_at
    {
        let why = a.end_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        times.push(line("Administration ended", format!("{}{why}", hm(end))));
    }
    if let Some(x) = s.experience_ended() {
        times.push(line("Experience over (recovery)", hm(x.at)));
    }
    if let Some(d) = s.discharged() {
        times.push(line("Discharged", format!("{} by {}", hm(d.at), who(&d.by))));
    }
    if let Some(a) = s.aborted() {
        times.push(line("Aborted", format!("{} by {}: {}", hm(a.stamp.at), who(&a.stamp.by), a.reason)));
    }
    let mut administration = Vec::new();
    if let Some(o) = s.ordered() {
        administration.push(line("Ordered", format!("{} mg by {}", o.calculation.dose_mg, who(&o.stamp.by))));
        if let Some(r) = &o.override_reason {
            administration.push(line("Override reason", r.clone()));
        }
    }
    if let Some(a) = s.administration() {
        let d = &a.details;
        administration.push(line("Product", d.product.clone()));
        administration.push(line("NDC", d.ndc.clone().unwrap_or_else(|| "—".into())));
        administration.push(line("Lot", d.lot.clone()));
        administration.push(line("Expiry", d.expiry.to_string()));
        administration.push(line("Dose", format!("{} mg", d.dose_mg)));
        administration.push(line("Route (SNOMED CT)", d.route_snomed.clone()));
    }
    let vitals = s
        .readings()
        .iter()
        .map(|r| {
            let mut v = VitalLine {
                time: hm(r.taken_at),
                bp: String::new(),
                heart_rate: String::new(),
                spo2: String::new(),
                resp_rate: String::new(),
                moaas: String::new(),
                cadss: String::new(),
            };
            match r.measurement {
                Measurement::BloodPressure { bp, heart_rate, spo2 } => {
                    v.bp = bp.to_string();
                    v.heart_rate = heart_rate.map(|h| h.to_string()).unwrap_or_default();
                    v.spo2 = spo2.map(|x| x.to_string()).unwrap_or_default();
                }
                Measurement::Spo2Rr { spo2, resp_rate } => {
                    v.spo2 = spo2.map(|x| x.to_string()).unwrap_or_default();
                    v.resp_rate = resp_rate.map(|x| x.to_string()).unwrap_or_default();
                }
                Measurement::Moaas { score } => v.moaas = score.to_string(),
                Measurement::Cadss { score } => v.cadss = score.to_string(),
            }
            v
        })
        .collect();
    let alerts = s
        .alerts()
        .iter()
        .map(|a| AlertLine {
            rule: a.alert.rule.to_owned(),
            raised: hm(a.raised_at),
            message: a.alert.message.clone(),
            acknowledged: match &a.acknowledged {
                Some(k) => format!(
                    "{} by {}{}",
                    hm(k.at),
                    who(&k.by),
                    k.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default()
                ),
                None if a.alert.needs_ack => "Not acknowledged".into(),
                None => "No acknowledgement needed".into(),
            },
        })
        .collect();
    let adverse_events = s
        .adverse_events()
        .iter()
        .map(|a| AeLine {
            what: a.code().to_string(),
            onset: hm(a.onset_at()),
            severity: snake(&a.severity()),
            serious: a.is_serious(),
            outcome: snake(&a.outcome()),
        })
        .collect();
    // The criteria as they stood at the discharge (or now, for a session still running).
    let at = s.discharged().map_or(ctx.now, |d| d.at);
    let at_ctx = kapstone_domain::session::Context { now: at, ..ctx.clone() };
    let criteria = s
        .discharge(&at_ctx)
        .map(|d| d.criteria)
        .unwrap_or_default()
        .into_iter()
        .map(|c| CriterionLine {
            id: c.id.to_owned(),
            title: c.title.to_owned(),
            met: match c.status {
                CriterionStatus::Met => "Met",
                CriterionStatus::Unmet => "Not met",
                CriterionStatus::NotYetRecorded => "Not recorded",
            },
            reason: c.reason,
        })
        .collect();
    let instructions_given = l.events.iter().rev().find_map(|e| match e.event {
        SessionEvent::Discharged { instructions_given } => Some(instructions_given),
        _ => None,
    });
    let notes =
        s.notes().iter().map(|n| line(&format!("{} {}", hm(n.stamp.at), who(&n.stamp.by)), n.text.clone())).collect();
    let session_day = s.dose_times().map_or(l.row.created_at.0, |d| d.started_at);
    render(&SummaryPage {
        layout: Layout::for_user("Session summary", &user, "/patients"),
        session_id: l.row.id.to_string(),
        patient_id: patient.to_string(),
        patient: format!("{} {}", p.given_name, p.family_name),
        mrn: p.mrn.clone(),
        birth_date: jiff_date(p.birth_date).to_string(),
        date: date_of(session_day),
        zone: tz.iana_name().unwrap_or("UTC").to_owned(),
        location: zs.place(l.row.location_id).to_owned(),
        state: s.state_now(&ctx).label().to_owned(),
        protocol: format!("{} ({}), version {}", l.protocol.title, l.protocol.id, l.protocol.version),
        spravato: l.protocol.id == app::SPRAVATO,
        times,
        administration,
        vitals,
        alerts,
        adverse_events,
        criteria,
        instructions: l.protocol.post_session_instructions.iter().map(|i| i.text.clone()).collect(),
        instructions_given,
        notes,
    })
}
