//! Patients' rights pages (KAP-SPEC 10; TV-HIP-1..3): the portal's "My record" page (ask for a
//! copy or an amendment, see each request and its deadline, file a statement of disagreement,
//! open the copy once provided), the staff's list of open requests with their deadlines and the
//! steps on them, and the printable record-set document. No script: plain forms.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use kapstone_domain::records_access::Status;
use uuid::Uuid;

use super::{Layout, PageResult, render, sentence};
use crate::app::record_requests::{self as app, NewRequestInput, RecordExport, RequestView, StepInput};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

pub struct Line {
    pub id: String,
    pub patient_id: String,
    pub patient: String,
    pub kind: &'static str,
    pub received_on: String,
    pub due: String,
    pub status: String,
    pub overdue: bool,
    pub open: bool,
    pub extended: Option<String>,
    pub outcome: String,
    pub basis: String,
    pub requested: String,
    pub disagreement: String,
    pub rebuttal: String,
    pub can_disagree: bool,
    pub can_rebut: bool,
    pub can_extend: bool,
    pub provided: bool,
    pub access: bool,
}

fn line(v: &RequestView, patient: String) -> Line {
    let (status, overdue, open) = match v.status {
        Status::Open { due, extended } => {
            (format!("open, due {due}{}", if extended { " (extended)" } else { "" }), false, true)
        }
        Status::Overdue { due } => (format!("overdue since {due}"), true, true),
        Status::Answered { on, late } => (format!("answered {on}{}", if late { " (late)" } else { "" }), false, false),
    };
    Line {
        id: v.id.to_string(),
        patient_id: v.patient_id.to_string(),
        patient,
        kind: if v.kind == "access" { "Copy of the record" } else { "Amendment" },
        received_on: v.received_on.clone(),
        due: v.due.to_string(),
        status,
        overdue,
        open,
        extended: v.extension.as_ref().map(|e| format!("extended on {} to {}: {}", e.given_on, e.until, e.reason)),
        outcome: v.outcome.clone().unwrap_or_default(),
        basis: v.basis.clone().unwrap_or_default(),
        requested: v.requested.clone().unwrap_or_default(),
        disagreement: v.disagreement.as_ref().map(|s| format!("{} ({})", s.text, s.on)).unwrap_or_default(),
        rebuttal: v.rebuttal.as_ref().map(|s| format!("{} ({})", s.text, s.on)).unwrap_or_default(),
        can_disagree: v.kind == "amendment" && v.outcome.as_deref() == Some("denied") && v.disagreement.is_none(),
        can_rebut: v.disagreement.is_some() && v.rebuttal.is_none(),
        can_extend: open && v.extension.is_none(),
        provided: v.outcome.as_deref() == Some("provided"),
        access: v.kind == "access",
    }
}

#[derive(Template)]
#[template(path = "record_requests.html")]
struct RequestsPage {
    layout: Layout,
    portal: bool,
    lines: Vec<Line>,
    notice: Option<String>,
    /// A refusal: (field, message).
    error: Option<(String, String)>,
}

fn form(body: &str) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_str(body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })
}

fn get(pairs: &[(String, String)], k: &str) -> Option<String> {
    pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

async fn portal_page(
    state: &AppState,
    me: &CurrentUser,
    notice: Option<String>,
    error: Option<(String, String)>,
) -> PageResult<Html<String>> {
    let views = app::own(state, me).await?;
    render(&RequestsPage {
        layout: Layout::for_user("My record", me, "/portal"),
        portal: true,
        lines: views.iter().map(|v| line(v, String::new())).collect(),
        notice,
        error,
    })
}

async fn staff_page(
    state: &AppState,
    user: &CurrentUser,
    notice: Option<String>,
    error: Option<(String, String)>,
) -> PageResult<Html<String>> {
    let views = app::open(state, user).await?;
    let mut lines = Vec::new();
    for v in &views {
        let p =
            kapstone_store::patients::get(&state.db, user.clinic, kapstone_domain::PatientId::from_uuid(v.patient_id))
                .await?;
        lines.push(line(v, p.map_or_else(String::new, |p| format!("{} {} ({})", p.given_name, p.family_name, p.mrn))));
    }
    render(&RequestsPage {
        layout: Layout::for_user("Record requests", user, "/record-requests"),
        portal: false,
        lines,
        notice,
        error,
    })
}

fn refused(e: &AppError) -> Option<(String, String)> {
    matches!(e, AppError::Invalid(_) | AppError::Refused { .. })
        .then(|| (e.field().unwrap_or("step").to_owned(), sentence(&e.public_message(""))))
}

/// `GET /portal/records`.
pub async fn portal(State(state): State<AppState>, me: CurrentUser) -> PageResult<Html<String>> {
    portal_page(&state, &me, None, None).await
}

/// `POST /portal/records`: a new request (form: kind, requested).
pub async fn portal_create(State(state): State<AppState>, me: CurrentUser, body: String) -> PageResult<Response> {
    let pairs = form(&body)?;
    let Some(patient) = me.patient else { return Err(AppError::Forbidden.into()) };
    let input = NewRequestInput {
        kind: get(&pairs, "kind").unwrap_or_default(),
        requested: get(&pairs, "requested"),
        received_on: None,
    };
    match app::create(&state, &me, patient, &input).await {
        Ok(_) => Ok(Redirect::to("/portal/records?saved=1").into_response()),
        Err(e) => match refused(&e) {
            Some(err) => {
                Ok((StatusCode::UNPROCESSABLE_ENTITY, portal_page(&state, &me, None, Some(err)).await?).into_response())
            }
            None => Err(e.into()),
        },
    }
}

/// `POST /portal/records/{id}`: the patient's statement of disagreement (form: text).
pub async fn portal_step(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let pairs = form(&body)?;
    let input = StepInput { step: "disagree".into(), text: get(&pairs, "text"), ..StepInput::default() };
    match app::step(&state, &me, id, &input).await {
        Ok(_) => Ok(Redirect::to("/portal/records?saved=1").into_response()),
        Err(e) => match refused(&e) {
            Some(err) => {
                Ok((StatusCode::UNPROCESSABLE_ENTITY, portal_page(&state, &me, None, Some(err)).await?).into_response())
            }
            None => Err(e.into()),
        },
    }
}

/// `GET /record-requests`: open requests with their deadlines (staff).
pub async fn staff(State(state): State<AppState>, user: CurrentUser) -> PageResult<Html<String>> {
    staff_page(&state, &user, None, None).await
}

/// `POST /record-requests/{id}`: a step (form: step, reason, basis, records, text).
pub async fn staff_step(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let pairs = form(&body)?;
    let input = StepInput {
        step: get(&pairs, "step").unwrap_or_default(),
        reason: get(&pairs, "reason"),
        basis: get(&pairs, "basis"),
        records: get(&pairs, "records")
            .map(|r| r.split([',', ' ', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()),
        text: get(&pairs, "text"),
    };
    match app::step(&state, &user, id, &input).await {
        Ok(_) => Ok(Redirect::to("/record-requests").into_response()),
        Err(e) => {
            match refused(&e) {
                Some(err) => Ok((StatusCode::UNPROCESSABLE_ENTITY, staff_page(&state, &user, None, Some(err)).await?)
                    .into_response()),
                None => Err(e.into()),
            }
        }
    }
}

/// `POST /patients/{id}/record-requests`: staff record a request on the patient's behalf.
pub async fn staff_create(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let patient = crate::api::patient_id(&id)?;
    let pairs = form(&body)?;
    let input = NewRequestInput {
        kind: get(&pairs, "kind").unwrap_or_default(),
        requested: get(&pairs, "requested"),
        received_on: get(&pairs, "received_on"),
    };
    match app::create(&state, &user, patient, &input).await {
        Ok(_) => Ok(Redirect::to("/record-requests").into_response()),
        Err(e) => {
            match refused(&e) {
                Some(err) => Ok((StatusCode::UNPROCESSABLE_ENTITY, staff_page(&state, &user, None, Some(err)).await?)
                    .into_response()),
                None => Err(e.into()),
            }
        }
    }
}

#[derive(Template)]
#[template(path = "record_export.html")]
struct ExportPage {
    layout: Layout,
    x: RecordExport,
    name: String,
    /// (title, items as pretty JSON text)
    sections: Vec<(String, Vec<String>)>,
    json_href: String,
}

async fn export_page(state: &AppState, user: &CurrentUser, id: Uuid, json_href: String) -> PageResult<Html<String>> {
    let x = app::export(state, user, id).await?;
    let d = &x.demographics;
    let name =
        format!("{} {}", d["given_name"].as_str().unwrap_or_default(), d["family_name"].as_str().unwrap_or_default());
    let sections = x
        .sections
        .iter()
        .map(|s| {
            (s.title.to_owned(), s.items.iter().map(|i| serde_json::to_string_pretty(i).unwrap_or_default()).collect())
        })
        .collect();
    render(&ExportPage { layout: Layout::for_user("Record", user, ""), x, name, sections, json_href })
}

/// `GET /portal/records/{id}/export`: the patient's own copy, printable.
pub async fn portal_export(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    export_page(&state, &me, id, format!("/api/v1/portal/record-requests/{id}/export")).await
}

/// `GET /record-requests/{id}/export`: the record set of a request, printable (staff).
pub async fn staff_export(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    export_page(&state, &user, id, format!("/api/v1/record-requests/{id}/export")).await
}
