//! The psychotherapy notes page of a dosing session (KAP-SPEC 10): the signed-in author's own
//! notes of the session, a form to write one and, under each note, a form to amend it. The page
//! says plainly that the notes are private to their author and are not part of the record the
//! patient can request.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use kapstone_domain::PatientId;
use kapstone_domain::psychotherapy_note::{MAX_REASON, MAX_TEXT};
use uuid::Uuid;

use super::{Layout, PageResult, render, sentence, when};
use crate::app::psychotherapy_notes::{self as app, NoteView};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

pub struct AmendmentLine {
    pub signed_at: String,
    pub reason: String,
    pub text: String,
}

pub struct NoteLine {
    pub id: String,
    pub signed_at: String,
    pub text: String,
    pub amendments: Vec<AmendmentLine>,
    /// What the amend form starts with: the text in force, or what was typed before a refusal.
    pub amend_text: String,
    pub amend_reason: String,
    /// A refusal of this note's amend form: (field, message).
    pub error: Option<(String, String)>,
    /// The colleague the note is shared with now: (name, role).
    pub shared_with: Option<(String, String)>,
}

impl NoteLine {
    pub fn invalid(&self, field: &str) -> bool {
        self.error.as_ref().is_some_and(|(f, _)| f == field)
    }
}

#[derive(Template)]
#[template(path = "psychotherapy_note.html")]
struct NotesPage {
    layout: Layout,
    session_id: String,
    patient_id: String,
    patient: String,
    session_opened: String,
    notes: Vec<NoteLine>,
    notice: Option<String>,
    /// A refusal of an amendment to a note not listed on this page.
    banner: Option<String>,
    /// A refusal of the new-note form: (field, message).
    error: Option<(String, String)>,
    text: String,
    max_text: usize,
    max_reason: usize,
    /// The colleagues a note may be shared with: (id, "name (role)").
    colleagues: Vec<(String, String)>,
}

/// What was sent with a refused form, to show it again next to its error.
struct Sent<'a> {
    /// The note being amended, or `None` for a new note.
    amends: Option<Uuid>,
    text: &'a str,
    reason: &'a str,
    field: String,
    message: String,
}

fn line(n: &NoteView, sent: Option<&Sent<'_>>, colleagues: &[app::Colleague]) -> NoteLine {
    let mine = sent.filter(|s| s.amends == Some(n.id));
    NoteLine {
        id: n.id.to_string(),
        signed_at: when(n.signed_at),
        text: n.text.clone(),
        amendments: n
            .amendments
            .iter()
            .map(|a| AmendmentLine { signed_at: when(a.signed_at), reason: a.reason.clone(), text: a.text.clone() })
            .collect(),
        amend_text: mine.map_or_else(|| n.current_text().to_owned(), |s| s.text.to_owned()),
        amend_reason: mine.map(|s| s.reason.to_owned()).unwrap_or_default(),
        error: mine.map(|s| (s.field.clone(), s.message.clone())),
        shared_with: n.shared_with.map(|c| {
            colleagues.iter().find(|k| k.id == c).map_or_else(
                || ("a former colleague".to_owned(), String::new()),
                |k| (k.name.clone(), k.role.to_owned()),
            )
        }),
    }
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    notice: Option<String>,
    sent: Option<&Sent<'_>>,
) -> PageResult<Html<String>> {
    let mine = app::mine(state, user, id).await?;
    let p = kapstone_store::patients::get(&state.db, user.clinic, PatientId::from_uuid(mine.patient_id))
        .await?
        .ok_or(AppError::NotFound)?;
    let colleagues = app::colleagues(state, user).await?;
    let new_note = sent.filter(|s| s.amends.is_none());
    let banner = sent
        .filter(|s| s.amends.is_some_and(|a| !mine.notes.iter().any(|n| n.id == a)))
        .map(|s| format!("{} ({})", s.message, s.field));
    render(&NotesPage {
        layout: Layout::for_user("My psychotherapy notes", user, "/floor"),
        session_id: id.to_string(),
        patient_id: mine.patient_id.to_string(),
        patient: format!("{} {}", p.given_name, p.family_name),
        session_opened: when(mine.session_opened_at),
        notes: mine.notes.iter().map(|n| line(n, sent, &colleagues)).collect(),
        notice,
        banner,
        error: new_note.map(|s| (s.field.clone(), s.message.clone())),
        text: new_note.map(|s| s.text.to_owned()).unwrap_or_default(),
        max_text: MAX_TEXT,
        max_reason: MAX_REASON,
        colleagues: colleagues.iter().map(|c| (c.id.to_string(), format!("{} ({})", c.name, c.role))).collect(),
    })
}

#[derive(serde::Deserialize, Default)]
pub struct ShowQuery {
    #[serde(default)]
    saved: Option<String>,
}

/// `GET /sessions/{id}/psychotherapy-note`.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> PageResult<Html<String>> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let notice = match q.saved.as_deref() {
        Some("note") => Some("Your note is signed and saved. Only you can read it.".to_owned()),
        Some("amendment") => Some("Your amendment is signed and saved; the original is kept.".to_owned()),
        Some("shared") => Some("The note is shared with the colleague you named, and with nobody else.".to_owned()),
        Some("withdrawn") => Some("The share is withdrawn: only you can read the note again.".to_owned()),
        _ => None,
    };
    page(&state, &user, id, notice, None).await
}

fn get<'a>(pairs: &'a [(String, String)], k: &str) -> &'a str {
    pairs.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v.as_str())
}

/// `POST /sessions/{id}/psychotherapy-note`: writes a note, or amends one when the form names
/// it in `amends`. A refusal shows the page again (422) with the message next to the field and
/// what was typed kept.
pub async fn save(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })?;
    let (text, reason) = (get(&pairs, "text"), get(&pairs, "reason"));
    let amends = match get(&pairs, "amends").trim() {
        "" => None,
        raw => Some(raw.parse::<Uuid>().map_err(|_| AppError::NotFound)?),
    };
    // An amendment goes back to its note's session, whichever page the form was on.
    let result = match amends {
        None => app::write(&state, &user, id, text).await.map(|n| (n.session_id, "note")),
        Some(note) => app::amend(&state, &user, note, text, reason).await.map(|n| (n.session_id, "amendment")),
    };
    match result {
        Ok((session, what)) => {
            Ok(Redirect::to(&format!("/sessions/{session}/psychotherapy-note?saved={what}")).into_response())
        }
        Err(e @ AppError::Invalid(_)) => {
            let sent = Sent {
                amends,
                text,
                reason,
                field: e.field().unwrap_or("text").to_owned(),
                message: sentence(&e.public_message("")),
            };
            let page = page(&state, &user, id, None, Some(&sent)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Sharing with a named colleague.

/// `POST /psychotherapy-notes/{id}/share`: the author names a colleague (form `colleague_id`).
/// A refusal shows the session's notes page again (422) with the message.
pub async fn share(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })?;
    let note = app::read_one(&state, &user, id).await?;
    if note.author_id != user.id.as_uuid() {
        return Err(AppError::NotFound.into());
    }
    let colleague = get(&pairs, "colleague_id").trim().parse::<Uuid>();
    let result = match colleague {
        Ok(c) => app::share(&state, &user, id, c).await.map(|_| ()),
        Err(_) => Err(AppError::Invalid(kapstone_domain::FieldError::new("colleague_id", "choose a colleague"))),
    };
    match result {
        Ok(()) => {
            Ok(Redirect::to(&format!("/sessions/{}/psychotherapy-note?saved=shared", note.session_id)).into_response())
        }
        Err(e @ (AppError::Invalid(_) | AppError::Conflict { .. })) => {
            let sent = Sent {
                amends: Some(Uuid::nil()),
                text: "",
                reason: "",
                field: e.field().unwrap_or("colleague_id").to_owned(),
                message: sentence(&e.public_message("")),
            };
            let page = page(&state, &user, note.session_id, None, Some(&sent)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /psychotherapy-notes/{id}/unshare`: the author withdraws the share.
pub async fn unshare(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> PageResult<Response> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let note = app::read_one(&state, &user, id).await?;
    if note.author_id != user.id.as_uuid() {
        return Err(AppError::NotFound.into());
    }
    app::withdraw(&state, &user, id).await?;
    Ok(Redirect::to(&format!("/sessions/{}/psychotherapy-note?saved=withdrawn", note.session_id)).into_response())
}

pub struct SharedLine {
    pub note_id: String,
    pub patient: String,
    pub author: String,
    pub shared_at: String,
}

#[derive(Template)]
#[template(path = "psychotherapy_shared.html")]
struct SharedPage {
    layout: Layout,
    list: Vec<SharedLine>,
    /// One note opened: (patient, author, signed at, text, amendments).
    note: Option<NoteLine>,
    note_patient: String,
    note_author: String,
}

async fn names(
    state: &AppState,
    user: &CurrentUser,
    patient: Uuid,
    author: Uuid,
) -> Result<(String, String), AppError> {
    let p = kapstone_store::patients::get(&state.db, user.clinic, PatientId::from_uuid(patient)).await?;
    let a = kapstone_store::users::get(&state.db, kapstone_domain::UserId::from_uuid(author)).await?;
    Ok((
        p.map_or_else(String::new, |p| format!("{} {}", p.given_name, p.family_name)),
        a.map_or_else(String::new, |a| a.display_name),
    ))
}

/// `GET /psychotherapy-notes/shared`: the notes colleagues have shared with the signed-in
/// clinician.
pub async fn shared_list(State(state): State<AppState>, user: CurrentUser) -> PageResult<Html<String>> {
    let items = app::shared_with_me(&state, &user).await?;
    let mut list = Vec::new();
    for i in items {
        let (patient, author) = names(&state, &user, i.patient_id, i.author_id).await?;
        list.push(SharedLine { note_id: i.note_id.to_string(), patient, author, shared_at: when(i.shared_at) });
    }
    render(&SharedPage {
        layout: Layout::for_user("Psychotherapy notes shared with me", &user, "/floor"),
        list,
        note: None,
        note_patient: String::new(),
        note_author: String::new(),
    })
}

/// `GET /psychotherapy-notes/{id}`: one note, for its author or the colleague it is shared with.
pub async fn shared_show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    let id: Uuid = id.parse().map_err(|_| AppError::NotFound)?;
    let note = app::read_one(&state, &user, id).await?;
    let (patient, author) = names(&state, &user, note.patient_id, note.author_id).await?;
    render(&SharedPage {
        layout: Layout::for_user("Psychotherapy note", &user, "/floor"),
        list: Vec::new(),
        note: Some(line(&note, None, &[])),
        note_patient: patient,
        note_author: author,
    })
}
