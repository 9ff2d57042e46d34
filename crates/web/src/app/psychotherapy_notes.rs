//! Psychotherapy notes (KAP-SPEC 10): a therapist's or prescriber's own notes of a dosing session,
//! kept in their own store and shown to their author only.
//!
//! Three layers keep a note private: the route table lets only therapists and prescribers reach
//! these use cases; every store query names the signed-in author, so another author's note is
//! never loaded; and the domain's [`may_read`] is asked again for every row before it is shown.
//! Nothing else in Kapstone (session page, session JSON, summary, chart, portal, floor board,
//! audit log, REMS form) reads the store. Audit events carry ids and counts, never the text.

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::psychotherapy_note::{
    AmendRefusal, Amendment, AmendmentReason, Note, NoteText, ShareRefusal, may_read, may_read_shared, may_share,
    may_write,
};
use kapstone_domain::{FieldError, PatientId, UserId, UtcTs};
use kapstone_store::dosing::{self as sessions, SessionRow};
use kapstone_store::keyset::{self, ListFilter, Page, TimeKey};
use kapstone_store::psychotherapy_notes::{self as store, NewAmendment, NewNote, NoteRow};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// An amendment as its author reads it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AmendmentView {
    pub id: Uuid,
    pub text: String,
    pub reason: String,
    pub signed_at: UtcTs,
}

/// A signed note with its amendments, oldest first; `text` is always the original.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(rename = "PsychotherapyNote")]
pub struct NoteView {
    pub id: Uuid,
    pub session_id: Uuid,
    pub patient_id: Uuid,
    pub author_id: Uuid,
    pub text: String,
    pub signed_at: UtcTs,
    pub amendments: Vec<AmendmentView>,
    /// The one colleague the note is shared with now, if any (shown to the author only).
    pub shared_with: Option<Uuid>,
}

impl NoteView {
    /// The text in force: the latest amendment's, or the original.
    pub fn current_text(&self) -> &str {
        self.amendments.last().map_or(&self.text, |a| &a.text)
    }
}

/// The signed-in author's notes of one session.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SessionNotes {
    pub session_id: Uuid,
    pub patient_id: Uuid,
    /// When the session was opened (to name it on the page).
    pub session_opened_at: UtcTs,
    pub notes: Vec<NoteView>,
}

fn corrupt(e: FieldError) -> AppError {
    AppError::Internal(anyhow::anyhow!("stored psychotherapy note is invalid: {}", e.field))
}

/// The use cases check the permission themselves too, so a route wired with the wrong action
/// still cannot reach the store.
fn ensure_keeps_notes(user: &CurrentUser) -> Result<(), AppError> {
    if may_write(user.role) { Ok(()) } else { Err(AppError::Forbidden) }
}

async fn session_row(state: &AppState, user: &CurrentUser, id: Uuid) -> Result<SessionRow, AppError> {
    sessions::session(&state.db, user.clinic, id).await?.ok_or(AppError::NotFound)
}

/// Groups rows into notes with their amendments. A row the reader may not read is dropped
/// (the store only returns the reader's own rows; this is the domain's word on it as well).
fn assemble(user: &CurrentUser, rows: Vec<NoteRow>) -> Vec<NoteView> {
    assemble_if(rows, |r| may_read(user.id, user.role, UserId::from_uuid(r.author_id)))
}

fn assemble_if(rows: Vec<NoteRow>, readable: impl Fn(&NoteRow) -> bool) -> Vec<NoteView> {
    let rows: Vec<NoteRow> = rows.into_iter().filter(|r| readable(r)).collect();
    let mut notes: Vec<NoteView> = rows
        .iter()
        .filter(|r| r.amends_id.is_none())
        .map(|r| NoteView {
            id: r.id,
            session_id: r.session_id,
            patient_id: r.patient_id,
            author_id: r.author_id,
            text: r.body.clone(),
            signed_at: r.created_at.0,
            amendments: Vec::new(),
            shared_with: None,
        })
        .collect();
    for r in rows.iter().filter(|r| r.amends_id.is_some()) {
        if let Some(n) = notes.iter_mut().find(|n| Some(n.id) == r.amends_id) {
            n.amendments.push(AmendmentView {
                id: r.id,
                text: r.body.clone(),
                reason: r.reason.clone().unwrap_or_default(),
                signed_at: r.created_at.0,
            });
        }
    }
    notes
}

/// The signed-in author's notes of a session (audited: a read of the session's patient, with
/// the number of notes shown). Another clinician gets their own notes only, usually none.
pub async fn mine(state: &AppState, user: &CurrentUser, session: Uuid) -> Result<SessionNotes, AppError> {
    ensure_keeps_notes(user)?;
    let row = session_row(state, user, session).await?;
    let mut notes = assemble(user, store::of_author_in_session(&state.db, user.clinic, user.id, session).await?);
    let ids: Vec<Uuid> = notes.iter().map(|n| n.id).collect();
    for s in store::shares_of_author(&state.db, user.clinic, user.id, &ids).await? {
        if let Some(n) = notes.iter_mut().find(|n| n.id == s.note_id) {
            n.shared_with = Some(s.colleague_id);
        }
    }
    let mut e = user.event(AuditAction::PsychotherapyNoteRead, "dosing_session", Outcome::Success);
    e.entity_id = Some(session.to_string());
    e.patient_id = Some(PatientId::from_uuid(row.patient_id));
    e.reason = Some(format!("{} own psychotherapy notes", notes.len()));
    state.read_audit.record(e).await?;
    Ok(SessionNotes { session_id: session, patient_id: row.patient_id, session_opened_at: row.created_at.0, notes })
}

/// Writes and signs a note on a session of the clinic. A bad text is refused naming `text`, and
/// nothing is stored.
pub async fn write(state: &AppState, user: &CurrentUser, session: Uuid, text: &str) -> Result<NoteView, AppError> {
    ensure_keeps_notes(user)?;
    // A note is signed as it is saved: re-authenticate first.
    super::reauth::require_recent(state, user)?;
    let text = NoteText::parse("text", text)?;
    let row = session_row(state, user, session).await?;
    let patient = PatientId::from_uuid(row.patient_id);
    let note = Note::sign(user.id, UtcTs::now(), text);
    let mut tx = state.db.begin().await?;
    let id = store::insert_note(
        &mut tx,
        &NewNote {
            clinic: user.clinic,
            session,
            patient,
            author: user.id,
            body: note.text.as_str(),
            at: note.signed_at,
        },
    )
    .await?;
    let mut e = user.event(AuditAction::PsychotherapyNoteWritten, "psychotherapy_note", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    e.reason = Some(format!("session {session}"));
    kapstone_store::audit::append(&mut tx, &e).await?;
    let out = NoteView {
        id,
        session_id: session,
        patient_id: row.patient_id,
        author_id: user.id.as_uuid(),
        text: note.text.into_string(),
        signed_at: note.signed_at,
        amendments: Vec::new(),
        shared_with: None,
    };
    tx.commit_answering(&out).await?;
    Ok(out)
}

/// Rebuilds the domain's record of a note from its rows (the original first).
fn to_domain(rows: &[NoteRow]) -> Result<Option<(Uuid, Note)>, AppError> {
    let Some(original) = rows.iter().find(|r| r.amends_id.is_none()) else { return Ok(None) };
    let mut note = Note::sign(
        UserId::from_uuid(original.author_id),
        original.created_at.0,
        NoteText::parse("text", &original.body).map_err(corrupt)?,
    );
    for r in rows.iter().filter(|r| r.amends_id == Some(original.id)) {
        note.amendments.push(Amendment {
            author: UserId::from_uuid(r.author_id),
            signed_at: r.created_at.0,
            text: NoteText::parse("text", &r.body).map_err(corrupt)?,
            reason: AmendmentReason::parse("reason", r.reason.as_deref().unwrap_or_default()).map_err(corrupt)?,
        });
    }
    Ok(Some((original.id, note)))
}

/// Amends one of the author's own signed notes: the corrected text and the reason are kept
/// beside the original, which never changes. A note that is not the caller's own is "not
/// found", whether it exists or not. Returns the note with all its amendments.
pub async fn amend(
    state: &AppState,
    user: &CurrentUser,
    note_id: Uuid,
    text: &str,
    reason: &str,
) -> Result<NoteView, AppError> {
    ensure_keeps_notes(user)?;
    super::reauth::require_recent(state, user)?;
    let text = NoteText::parse("text", text)?;
    let reason = AmendmentReason::parse("reason", reason)?;
    let mut tx = state.db.begin().await?;
    let mut rows = store::one_of_author(&mut tx, user.clinic, user.id, note_id).await?;
    let Some((original_id, mut note)) = to_domain(&rows)? else { return Err(AppError::NotFound) };
    let amendment = note.amend(user.id, user.role, UtcTs::now(), text, reason).map_err(|r| match r {
        AmendRefusal::NotTheAuthor => AppError::NotFound,
        AmendRefusal::Unchanged => {
            AppError::Invalid(FieldError::new("text", "this is the note as it stands: write the corrected text"))
        }
    })?;
    let id = store::insert_amendment(
        &mut tx,
        &NewAmendment {
            clinic: user.clinic,
            author: user.id,
            original: original_id,
            body: amendment.text.as_str(),
            reason: amendment.reason.as_str(),
            at: amendment.signed_at,
        },
    )
    .await?
    .ok_or(AppError::NotFound)?;
    let (session_id, patient_id) = rows.first().map(|r| (r.session_id, r.patient_id)).ok_or(AppError::NotFound)?;
    let mut e = user.event(AuditAction::PsychotherapyNoteAmended, "psychotherapy_note", Outcome::Success);
    e.entity_id = Some(original_id.to_string());
    e.patient_id = Some(PatientId::from_uuid(patient_id));
    e.reason = Some(format!("amendment {id} of session {session_id}"));
    kapstone_store::audit::append(&mut tx, &e).await?;
    rows.push(NoteRow {
        id,
        session_id,
        patient_id,
        author_id: user.id.as_uuid(),
        amends_id: Some(original_id),
        body: amendment.text.into_string(),
        reason: Some(amendment.reason.into_string()),
        created_at: kapstone_store::DbTs(amendment.signed_at),
    });
    let out = assemble(user, rows).into_iter().next().ok_or(AppError::NotFound)?;
    tx.commit_answering(&out).await?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Sharing with one named colleague (issue 7). The author shares one original note with one
// therapist or prescriber of the clinic and may withdraw it; the colleague then reads that note
// and its amendments, and nothing else. Audit events carry ids only.

/// A colleague the author may name: a therapist or prescriber of the clinic, active, not the
/// author.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Colleague {
    pub id: Uuid,
    pub name: String,
    pub role: &'static str,
}

/// The colleagues the signed-in author may share a note with.
pub async fn colleagues(state: &AppState, user: &CurrentUser) -> Result<Vec<Colleague>, AppError> {
    ensure_keeps_notes(user)?;
    Ok(kapstone_store::users::list(&state.db, user.clinic)
        .await?
        .into_iter()
        .filter_map(|u| {
            let role: kapstone_domain::Role = u.role.parse().ok()?;
            let ok = may_share(user.id, user.role, user.id, UserId::from_uuid(u.id), role, u.active).is_ok();
            ok.then(|| Colleague { id: u.id, name: u.display_name, role: role.label() })
        })
        .collect())
}

/// A live share as the author sees it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ShareView {
    pub note_id: Uuid,
    pub colleague_id: Uuid,
    pub shared_at: UtcTs,
}

/// Shares one of the author's own notes with `colleague`. A note that is not the caller's own
/// is "not found"; a colleague who is not a therapist or prescriber of the clinic is refused
/// naming `colleague_id`; a note already shared is a conflict (withdraw first).
pub async fn share(state: &AppState, user: &CurrentUser, note: Uuid, colleague: Uuid) -> Result<ShareView, AppError> {
    ensure_keeps_notes(user)?;
    let refuse = |m: &str| AppError::Invalid(FieldError::new("colleague_id", m.to_owned()));
    let target = kapstone_store::users::get(&state.db, UserId::from_uuid(colleague))
        .await?
        .filter(|u| u.clinic_id == user.clinic.as_uuid())
        .ok_or_else(|| refuse("no such colleague in this clinic"))?;
    let role: kapstone_domain::Role = target.role.parse().map_err(|_| refuse("no such colleague in this clinic"))?;
    let mut tx = state.db.begin().await?;
    let rows = store::one_of_author(&mut tx, user.clinic, user.id, note).await?;
    let Some(original) = rows.iter().find(|r| r.amends_id.is_none()) else { return Err(AppError::NotFound) };
    match may_share(
        user.id,
        user.role,
        UserId::from_uuid(original.author_id),
        UserId::from_uuid(colleague),
        role,
        target.active,
    ) {
        Ok(()) => {}
        Err(ShareRefusal::NotTheAuthor) => return Err(AppError::NotFound),
        Err(ShareRefusal::Self_) => return Err(refuse("name a colleague other than yourself")),
        Err(ShareRefusal::NotAColleague) => {
            return Err(refuse("share only with an active therapist or prescriber of the clinic"));
        }
    }
    let at = UtcTs::now();
    let id = match store::share(&mut tx, user.clinic, user.id, note, UserId::from_uuid(colleague), at).await {
        Ok(Some(id)) => id,
        Ok(None) => return Err(AppError::NotFound),
        Err(kapstone_store::StoreError::Conflict(_)) => {
            return Err(AppError::Conflict {
                field: "colleague_id",
                message: "this note is already shared: withdraw that share first".into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let mut e = user.event(AuditAction::PsychotherapyNoteShared, "psychotherapy_note", Outcome::Success);
    e.entity_id = Some(note.to_string());
    e.patient_id = Some(PatientId::from_uuid(original.patient_id));
    e.reason = Some(format!("share {id} with user {colleague}"));
    kapstone_store::audit::append(&mut tx, &e).await?;
    let out = ShareView { note_id: note, colleague_id: colleague, shared_at: at };
    tx.commit_answering(&out).await?;
    Ok(out)
}

/// Withdraws the live share of one of the author's notes; "not found" when there is none.
pub async fn withdraw(state: &AppState, user: &CurrentUser, note: Uuid) -> Result<(), AppError> {
    ensure_keeps_notes(user)?;
    let mut tx = state.db.begin().await?;
    let rows = store::one_of_author(&mut tx, user.clinic, user.id, note).await?;
    let Some(original) = rows.iter().find(|r| r.amends_id.is_none()) else { return Err(AppError::NotFound) };
    let patient = PatientId::from_uuid(original.patient_id);
    if !store::withdraw_share(&mut tx, user.clinic, user.id, note, UtcTs::now()).await? {
        return Err(AppError::NotFound);
    }
    let mut e = user.event(AuditAction::PsychotherapyNoteShareWithdrawn, "psychotherapy_note", Outcome::Success);
    e.entity_id = Some(note.to_string());
    e.patient_id = Some(patient);
    kapstone_store::audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// A note shared with the signed-in colleague, as listed (no text).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SharedItem {
    pub note_id: Uuid,
    pub session_id: Uuid,
    pub patient_id: Uuid,
    pub author_id: Uuid,
    pub shared_at: UtcTs,
}

/// The notes shared with the signed-in colleague now (audited per patient, ids only).
pub async fn shared_with_me(state: &AppState, user: &CurrentUser) -> Result<Vec<SharedItem>, AppError> {
    ensure_keeps_notes(user)?;
    listed(state, user, store::shared_with(&state.db, user.clinic, user.id).await?).await
}

/// A page of `limit` of the notes [`shared_with_me`] lists, newest share first (the API's list;
/// see `api::page`): the notes, and the key to continue after when more follow.
pub async fn shared_with_me_page(
    state: &AppState,
    user: &CurrentUser,
    filter: &ListFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<(Vec<SharedItem>, Option<TimeKey>), AppError> {
    ensure_keeps_notes(user)?;
    let after = TimeKey::newest_first(after);
    let mut rows =
        store::shared_with_page(&state.db, &Page { clinic: user.clinic, filter, after, limit: limit + 1 }, user.id)
            .await?;
    let next = keyset::cut(&mut rows, limit, |r| TimeKey::new(r.shared_at, r.note_id));
    Ok((listed(state, user, rows).await?, next))
}

/// The shared notes `user` may read as items, each listing audited against its patient.
async fn listed(
    state: &AppState,
    user: &CurrentUser,
    rows: Vec<store::SharedWithMeRow>,
) -> Result<Vec<SharedItem>, AppError> {
    let items: Vec<SharedItem> = rows
        .into_iter()
        .filter(|r| may_read_shared(user.id, user.role, UserId::from_uuid(r.author_id), Some(user.id)))
        .map(|r| SharedItem {
            note_id: r.note_id,
            session_id: r.session_id,
            patient_id: r.patient_id,
            author_id: r.author_id,
            shared_at: r.shared_at.0,
        })
        .collect();
    for i in &items {
        let mut e = user.event(AuditAction::SharedPsychotherapyNoteRead, "psychotherapy_note", Outcome::Success);
        e.entity_id = Some(i.note_id.to_string());
        e.patient_id = Some(PatientId::from_uuid(i.patient_id));
        e.reason = Some("listed".into());
        state.read_audit.record(e).await?;
    }
    Ok(items)
}

/// One note: to its author, or to the one colleague it is shared with now. Anyone else gets
/// "not found", whether the note exists or not.
pub async fn read_one(state: &AppState, user: &CurrentUser, note: Uuid) -> Result<NoteView, AppError> {
    ensure_keeps_notes(user)?;
    let shared = store::shared_note(&state.db, user.clinic, user.id, note).await?;
    let (rows, shared_with) = if shared.is_empty() {
        let mut tx = state.db.begin().await?;
        let rows = store::one_of_author(&mut tx, user.clinic, user.id, note).await?;
        tx.commit().await?;
        (rows, None)
    } else {
        (shared, Some(user.id))
    };
    let notes = assemble_if(rows, |r| may_read_shared(user.id, user.role, UserId::from_uuid(r.author_id), shared_with));
    let mut view = notes.into_iter().next().ok_or(AppError::NotFound)?;
    let own = view.author_id == user.id.as_uuid();
    if own {
        let shares = store::shares_of_author(&state.db, user.clinic, user.id, &[note]).await?;
        view.shared_with = shares.first().map(|s| s.colleague_id);
    }
    let action = if own { AuditAction::PsychotherapyNoteRead } else { AuditAction::SharedPsychotherapyNoteRead };
    let mut e = user.event(action, "psychotherapy_note", Outcome::Success);
    e.entity_id = Some(note.to_string());
    e.patient_id = Some(PatientId::from_uuid(view.patient_id));
    state.read_audit.record(e).await?;
    Ok(view)
}
