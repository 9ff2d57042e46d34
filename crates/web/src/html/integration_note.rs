//! The integration note page of a dosing session (KAP-SPEC 2.1 stage 7): what the therapist
//! needs in view (the patient's intention from the preparation, the session summary, the journal
//! entries the patient shared), the session's integration notes, and forms to draft, edit, sign
//! and amend. Psychotherapy notes are not shown here: they have their own page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use kapstone_domain::integration_note::{MAX_PLAN, MAX_REASON, MAX_SUMMARY, may_write};
use kapstone_domain::{PatientId, UserId};
use uuid::Uuid;

use super::{Layout, PageResult, render, sentence, when};
use crate::app::integration_notes::{self as app, NoteView, Step};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

pub struct AmendmentLine {
    pub at: String,
    pub author: String,
    pub reason: String,
    pub summary: String,
    pub plan: String,
}

pub struct NoteLine {
    pub id: String,
    pub status: &'static str,
    pub author: String,
    pub created: String,
    pub signed: String,
    pub summary: String,
    pub plan: String,
    pub amendments: Vec<AmendmentLine>,
    /// The caller's own draft: edit and sign forms.
    pub my_draft: bool,
    /// A signed note the caller may amend.
    pub can_amend: bool,
    pub form_summary: String,
    pub form_plan: String,
    pub form_reason: String,
    pub error: Option<(String, String)>,
}

impl NoteLine {
    pub fn invalid(&self, field: &str) -> bool {
        self.error.as_ref().is_some_and(|(f, _)| f == field)
    }
}

pub struct SharedLine {
    pub id: String,
    pub written: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "integration_note.html")]
struct NotePage {
    layout: Layout,
    session_id: String,
    patient_id: String,
    patient: String,
    session_opened: String,
    intention: Option<String>,
    facts: Vec<(String, String)>,
    shared: Vec<SharedLine>,
    notes: Vec<NoteLine>,
    can_write: bool,
    notice: Option<String>,
    banner: Option<String>,
    error: Option<(String, String)>,
    summary: String,
    plan: String,
    max_summary: usize,
    max_plan: usize,
    max_reason: usize,
}

impl NotePage {
    fn invalid(&self, field: &str) -> bool {
        self.error.as_ref().is_some_and(|(f, _)| f == field)
    }
}

/// What was sent with a refused form.
struct Sent<'a> {
    note: Option<Uuid>,
    summary: &'a str,
    plan: &'a str,
    reason: &'a str,
    field: String,
    message: String,
}

fn line(user: &CurrentUser, n: &NoteView, staff: &[(Uuid, String)], sent: Option<&Sent<'_>>) -> NoteLine {
    let name = |id: Uuid| staff.iter().find(|(u, _)| *u == id).map_or_else(String::new, |(_, n)| n.clone());
    let mine = sent.filter(|s| s.note == Some(n.id));
    let my_draft = n.signed_at.is_none() && UserId::from_uuid(n.author_id) == user.id;
    NoteLine {
        id: n.id.to_string(),
        status: n.status,
        author: name(n.author_id),
        created: when(n.created_at),
        signed: n.signed_at.map(when).unwrap_or_default(),
        summary: n.summary.clone(),
        plan: n.plan.clone().unwrap_or_default(),
        amendments: n
            .amendments
            .iter()
            .map(|a| AmendmentLine {
                at: when(a.at),
                author: name(a.author_id),
                reason: a.reason.clone(),
                summary: a.summary.clone(),
                plan: a.plan.clone().unwrap_or_default(),
            })
            .collect(),
        my_draft,
        can_amend: n.signed_at.is_some() && may_write(user.role),
        form_summary: mine.map_or_else(|| n.current.summary.clone(), |s| s.summary.to_owned()),
        form_plan: mine.map_or_else(|| n.current.plan.clone().unwrap_or_default(), |s| s.plan.to_owned()),
        form_reason: mine.map(|s| s.reason.to_owned()).unwrap_or_default(),
        error: mine.map(|s| (s.field.clone(), s.message.clone())),
    }
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    notice: Option<String>,
    sent: Option<&Sent<'_>>,
) -> PageResult<Html<String>> {
    let l = crate::app::sessions::load(state, user, id).await?;
    let patient = PatientId::from_uuid(l.row.patient_id);
    let p = kapstone_store::patients::get(&state.db, user.clinic, patient).await?.ok_or(AppError::NotFound)?;
    let s = l.session();
    let mut facts =
        vec![("Protocol".to_owned(), l.protocol.title.clone()), ("Phase".to_owned(), s.state().label().to_owned())];
    if let Some(o) = s.ordered() {
        facts.push(("Dose ordered".to_owned(), format!("{} mg", o.calculation.dose_mg)));
    }
    if let Some(a) = s.administration() {
        facts.push(("Administration started".to_owned(), when(a.started_at)));
    }
    if let Some(d) = s.discharged() {
        facts.push(("Discharged".to_owned(), when(d.at)));
    }
    if let Some(a) = s.aborted() {
        facts.push(("Aborted".to_owned(), format!("{}: {}", when(a.stamp.at), a.reason)));
    }
    for n in s.notes() {
        facts.push((format!("Progress note {}", when(n.stamp.at)), n.text.clone()));
    }
    let intention = kapstone_store::scheduling::preparation(&state.db, &[l.row.appointment_id])
        .await?
        .into_iter()
        .next()
        .and_then(|p| p.intention);
    let shared = crate::app::journal::shared_of_patient(state, user, patient)
        .await?
        .into_iter()
        .map(|e| SharedLine { id: e.id.to_string(), written: when(e.written_at), text: e.text })
        .collect();
    let notes = app::of_session(state, user, id).await?;
    let staff: Vec<(Uuid, String)> = kapstone_store::users::list(&state.db, user.clinic)
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect();
    let new_form = sent.filter(|s| s.note.is_none());
    let banner = sent
        .filter(|s| s.note.is_some_and(|n| !notes.iter().any(|x| x.id == n)))
        .map(|s| format!("{} ({})", s.message, s.field));
    render(&NotePage {
        layout: Layout::for_user("Integration notes", user, "/floor"),
        session_id: id.to_string(),
        patient_id: patient.to_string(),
        patient: format!("{} {}", p.given_name, p.family_name),
        session_opened: when(l.row.created_at.0),
        intention,
        facts,
        shared,
        notes: notes.iter().map(|n| line(user, n, &staff, sent)).collect(),
        can_write: may_write(user.role),
        notice,
        banner,
        error: new_form.map(|s| (s.field.clone(), s.message.clone())),
        summary: new_form.map(|s| s.summary.to_owned()).unwrap_or_default(),
        plan: new_form.map(|s| s.plan.to_owned()).unwrap_or_default(),
        max_summary: MAX_SUMMARY,
        max_plan: MAX_PLAN,
        max_reason: MAX_REASON,
    })
}

#[derive(serde::Deserialize, Default)]
pub struct ShowQuery {
    #[serde(default)]
    saved: Option<String>,
}

/// `GET /sessions/{id}/integration-note`.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> PageResult<Html<String>> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let notice = match q.saved.as_deref() {
        Some("draft") => Some("Draft saved. Only you can read it until you sign it.".to_owned()),
        Some("signed") => Some("Signed. The note is now part of the record and cannot be edited.".to_owned()),
        Some("amended") => Some("Amendment saved; the original is kept.".to_owned()),
        _ => None,
    };
    page(&state, &user, id, notice, None).await
}

fn get<'a>(pairs: &'a [(String, String)], k: &str) -> &'a str {
    pairs.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v.as_str())
}

/// `POST /sessions/{id}/integration-note`: `op` is `draft` (a new draft), `edit` or `sign` (the
/// author's draft named in `note`) or `amend` (a signed note named in `note`, with `reason`). A
/// refusal shows the page again (422) with the message next to the field and the text kept.
pub async fn save(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })?;
    let (summary, plan, reason) = (get(&pairs, "summary"), get(&pairs, "plan"), get(&pairs, "reason"));
    let note = match get(&pairs, "note").trim() {
        "" => None,
        raw => Some(raw.parse::<Uuid>().map_err(|_| AppError::NotFound)?),
    };
    let result = match (get(&pairs, "op"), note) {
        ("draft", _) => app::draft(&state, &user, id, summary, plan).await.map(|_| "draft"),
        ("edit", Some(n)) => app::step(&state, &user, n, Step::Edit { summary, plan }).await.map(|_| "draft"),
        ("sign", Some(n)) => app::step(&state, &user, n, Step::Sign).await.map(|_| "signed"),
        ("amend", Some(n)) => {
            app::step(&state, &user, n, Step::Amend { summary, plan, reason, request: None }).await.map(|_| "amended")
        }
        _ => Err(AppError::BadRequest { field: Some("op".into()), message: "choose what to do with the note".into() }),
    };
    match result {
        Ok(what) => Ok(Redirect::to(&format!("/sessions/{id}/integration-note?saved={what}")).into_response()),
        Err(e @ (AppError::Invalid(_) | AppError::Refused { .. })) => {
            let sent = Sent {
                note,
                summary,
                plan,
                reason,
                field: e.field().unwrap_or("summary").to_owned(),
                message: sentence(&e.public_message("")),
            };
            let page = page(&state, &user, id, None, Some(&sent)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
