//! Journal pages: the patient's own journal in the portal (write, edit, share, withdraw,
//! delete), and the care team's queue of shared entries (reading one marks it read). Every
//! journal page shows the crisis resources and says who reads shared entries and when.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use kapstone_domain::PatientId;
use kapstone_domain::journal::{MAX_TEXT, PromptKind};
use uuid::Uuid;

use super::{Layout, PageResult, render, sentence, when};
use crate::app::journal::{self as app, Change, EntryView, NewText};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// What every journal page shows: who reads shared entries and when, and the crisis resources.
pub struct Notices {
    pub sharing: String,
    pub crisis: String,
}

fn notices() -> Result<Notices, AppError> {
    let set = crate::content::journal_prompts().map_err(AppError::Internal)?;
    Ok(Notices { sharing: set.sharing_notice.clone(), crisis: set.crisis.clone() })
}

pub struct EntryLine {
    pub id: String,
    pub written: String,
    pub text: String,
    pub prompt: String,
    pub status: String,
    pub shared: bool,
    pub withdrawable: bool,
    pub session_date: String,
}

fn prompt_text(id: Option<&str>) -> String {
    let Some(id) = id else { return String::new() };
    crate::content::journal_prompts().ok().and_then(|s| s.get(id)).map(|p| p.text.clone()).unwrap_or_default()
}

fn entry_line(e: &EntryView, sessions: &[app::PromptSession]) -> EntryLine {
    let status = match (e.shared_at, e.read_at) {
        (None, _) => "Private: only you can read this entry".to_owned(),
        (Some(s), None) => {
            format!("Shared with your care team {}: not read yet, so you can still withdraw it", when(s))
        }
        (Some(s), Some(r)) => format!("Shared with your care team {}; read {} (it stays shared)", when(s), when(r)),
    };
    EntryLine {
        id: e.id.to_string(),
        written: when(e.written_at),
        text: e.text.clone(),
        prompt: prompt_text(e.prompt_id.as_deref()),
        status,
        shared: e.shared,
        withdrawable: e.withdrawable,
        session_date: e
            .session_id
            .and_then(|s| sessions.iter().find(|x| x.id == s))
            .map(|s| when(s.ended_at))
            .unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "portal_journal.html")]
struct PortalJournalPage {
    layout: Layout,
    notices: Notices,
    entries: Vec<EntryLine>,
    /// The session to write about: (id, when it ended).
    prompt_session: Option<(String, String)>,
    grounding: Vec<(String, String)>,
    reflection: Vec<(String, String)>,
    /// Sessions to link an entry to: (id, label).
    sessions: Vec<(String, String)>,
    notice: Option<String>,
    error: Option<(String, String)>,
    text: String,
    chosen_session: String,
    chosen_prompt: String,
    max_text: usize,
}

impl PortalJournalPage {
    fn invalid(&self, field: &str) -> bool {
        self.error.as_ref().is_some_and(|(f, _)| f == field)
    }
}

struct Sent {
    text: String,
    session: String,
    prompt: String,
    field: String,
    message: String,
}

async fn portal_page(
    state: &AppState,
    me: &CurrentUser,
    notice: Option<String>,
    sent: Option<Sent>,
) -> PageResult<Html<String>> {
    let j = app::own(state, me).await?;
    let set = crate::content::journal_prompts().map_err(AppError::Internal)?;
    let pick = |k: PromptKind| set.of_kind(k).map(|p| (p.id.clone(), p.text.clone())).collect::<Vec<_>>();
    let prompt_session = j.prompt_session.map(|s| (s.id.to_string(), when(s.ended_at)));
    let default_session = prompt_session.as_ref().map(|s| s.0.clone()).unwrap_or_default();
    render(&PortalJournalPage {
        layout: Layout::for_user("My journal", me, "/portal/journal"),
        notices: notices()?,
        entries: j.entries.iter().map(|e| entry_line(e, &j.sessions)).collect(),
        prompt_session,
        grounding: pick(PromptKind::Grounding),
        reflection: pick(PromptKind::Reflection),
        sessions: j
            .sessions
            .iter()
            .map(|s| (s.id.to_string(), format!("Session ended {}", when(s.ended_at))))
            .collect(),
        notice,
        text: sent.as_ref().map(|s| s.text.clone()).unwrap_or_default(),
        chosen_session: sent.as_ref().map_or(default_session, |s| s.session.clone()),
        chosen_prompt: sent.as_ref().map(|s| s.prompt.clone()).unwrap_or_default(),
        error: sent.map(|s| (s.field, s.message)),
        max_text: MAX_TEXT,
    })
}

#[derive(serde::Deserialize, Default)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

fn saved_notice(q: &SavedQuery) -> Option<String> {
    match q.saved.as_deref() {
        Some("written") => Some("Saved. The entry is private: only you can read it.".into()),
        Some("edited") => Some("Your changes are saved.".into()),
        Some("shared") => {
            Some("Shared with your care team. They will read it when they prepare for your sessions.".into())
        }
        Some("unshared") => Some("Sharing withdrawn: the entry is private again.".into()),
        Some("deleted") => Some("The entry is deleted.".into()),
        _ => None,
    }
}

/// `GET /portal/journal`.
pub async fn portal(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<SavedQuery>,
) -> PageResult<Html<String>> {
    portal_page(&state, &me, saved_notice(&q), None).await
}

fn get<'a>(pairs: &'a [(String, String)], k: &str) -> &'a str {
    pairs.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v.as_str())
}

fn form(body: &str) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_str(body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })
}

/// `POST /portal/journal`: a new private entry.
pub async fn portal_write(State(state): State<AppState>, me: CurrentUser, body: String) -> PageResult<Response> {
    let pairs = form(&body)?;
    let (text, session, prompt) = (get(&pairs, "text"), get(&pairs, "session"), get(&pairs, "prompt"));
    let input = NewText { text, session: Some(session), prompt: Some(prompt) };
    match app::write(&state, &me, &input).await {
        Ok(_) => Ok(Redirect::to("/portal/journal?saved=written").into_response()),
        Err(e @ AppError::Invalid(_)) => {
            let sent = Sent {
                text: text.to_owned(),
                session: session.to_owned(),
                prompt: prompt.to_owned(),
                field: e.field().unwrap_or("text").to_owned(),
                message: sentence(&e.public_message("")),
            };
            let page = portal_page(&state, &me, None, Some(sent)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "portal_journal_entry.html")]
struct PortalEntryPage {
    layout: Layout,
    notices: Notices,
    entry: EntryLine,
    notice: Option<String>,
    error: Option<(String, String)>,
    text: String,
    max_text: usize,
}

async fn entry_page(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    notice: Option<String>,
    sent: Option<(String, String, String)>,
) -> PageResult<Html<String>> {
    let e = app::own_entry(state, me, id).await?;
    let patient = me.patient.ok_or(AppError::Forbidden)?;
    let sessions: Vec<app::PromptSession> = kapstone_store::dosing::sessions_of_patient(&state.db, me.clinic, patient)
        .await?
        .into_iter()
        .map(|s| app::PromptSession { id: s.id, ended_at: s.updated_at.0 })
        .collect();
    let line = entry_line(&e, &sessions);
    render(&PortalEntryPage {
        layout: Layout::for_user("A journal entry", me, "/portal/journal"),
        notices: notices()?,
        text: sent.as_ref().map_or_else(|| line.text.clone(), |s| s.0.clone()),
        entry: line,
        notice,
        error: sent.map(|s| (s.1, s.2)),
        max_text: MAX_TEXT,
    })
}

fn entry_id(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

/// `GET /portal/journal/{id}`: one of the patient's own entries.
pub async fn portal_entry(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<SavedQuery>,
) -> PageResult<Html<String>> {
    entry_page(&state, &me, entry_id(&id)?, saved_notice(&q), None).await
}

/// `POST /portal/journal/{id}`: `op` is `edit` (with `text`), `share`, `unshare` or `delete`.
pub async fn portal_change(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let id = entry_id(&id)?;
    let pairs = form(&body)?;
    let text = get(&pairs, "text");
    let (change, saved) = match get(&pairs, "op") {
        "edit" => (Change::Edit(text), "edited"),
        "share" => (Change::Share, "shared"),
        "unshare" => (Change::Unshare, "unshared"),
        "delete" => (Change::Delete, "deleted"),
        _ => {
            return Err(AppError::BadRequest {
                field: Some("op".into()),
                message: "choose what to do with the entry".into(),
            }
            .into());
        }
    };
    match app::change(&state, &me, id, change).await {
        Ok(None) => Ok(Redirect::to("/portal/journal?saved=deleted").into_response()),
        Ok(Some(_)) => Ok(Redirect::to(&format!("/portal/journal/{id}?saved={saved}")).into_response()),
        Err(e @ (AppError::Invalid(_) | AppError::Refused { .. })) => {
            let sent = (text.to_owned(), e.field().unwrap_or("text").to_owned(), sentence(&e.public_message("")));
            let page = entry_page(&state, &me, id, None, Some(sent)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub struct QueueLine {
    pub id: String,
    pub patient_id: String,
    pub patient: String,
    pub shared: String,
    pub session_id: Option<String>,
}

#[derive(Template)]
#[template(path = "journal_queue.html")]
struct QueuePage {
    layout: Layout,
    notices: Notices,
    items: Vec<QueueLine>,
}

/// `GET /journal`: shared entries waiting unread for the care team.
pub async fn queue(State(state): State<AppState>, user: CurrentUser) -> PageResult<Html<String>> {
    let items = app::queue(&state, &user).await?;
    let mut lines = Vec::new();
    for i in items {
        let p = kapstone_store::patients::get(&state.db, user.clinic, PatientId::from_uuid(i.patient_id)).await?;
        lines.push(QueueLine {
            id: i.id.to_string(),
            patient_id: i.patient_id.to_string(),
            patient: p.map_or_else(String::new, |p| format!("{} {} ({})", p.given_name, p.family_name, p.mrn)),
            shared: when(i.shared_at),
            session_id: i.session_id.map(|s| s.to_string()),
        });
    }
    render(&QueuePage {
        layout: Layout::for_user("Shared journal entries", &user, "/journal"),
        notices: notices()?,
        items: lines,
    })
}

#[derive(Template)]
#[template(path = "journal_entry.html")]
struct StaffEntryPage {
    layout: Layout,
    notices: Notices,
    patient_id: String,
    patient: String,
    written: String,
    shared: String,
    prompt: String,
    session_id: Option<String>,
    text: String,
}

/// `GET /journal/{id}`: a shared entry; the first read takes it out of the queue.
pub async fn entry(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    let e = app::read_shared(&state, &user, entry_id(&id)?).await?;
    let p = kapstone_store::patients::get(&state.db, user.clinic, PatientId::from_uuid(e.patient_id))
        .await?
        .ok_or(AppError::NotFound)?;
    render(&StaffEntryPage {
        layout: Layout::for_user("Shared journal entry", &user, "/journal"),
        notices: notices()?,
        patient_id: e.patient_id.to_string(),
        patient: format!("{} {} ({})", p.given_name, p.family_name, p.mrn),
        written: when(e.written_at),
        shared: e.shared_at.map(when).unwrap_or_default(),
        prompt: prompt_text(e.prompt_id.as_deref()),
        session_id: e.session_id.map(|s| s.to_string()),
        text: e.text,
    })
}
