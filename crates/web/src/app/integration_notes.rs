//! Integration notes (KAP-SPEC 2.1 stage 7, KAP-SPEC 10, TV-HIP-4): the therapist drafts a note
//! linked to the dosing session it follows, signs it (then it never changes), and corrects it
//! with an amendment that keeps the original.
//!
//! These are progress notes, part of the record once signed. Psychotherapy notes are a different
//! store (`psychotherapy_notes`) that nothing here reads: a patient's note list is integration
//! notes only, for every caller. A draft is shown only to its author; the domain's
//! [`IntegrationNote::may_read`] is asked for every note before it is shown. Audit events carry
//! ids and counts, never the text.

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::integration_note::{Amendment, IntegrationNote, NoteBody, Reader, Refusal};
use kapstone_domain::{PatientId, UserId, UtcTs};
use kapstone_store::integration_notes::{self as store, AmendmentRow, NewAmendment, NewDraft, NoteRow};
use kapstone_store::keyset::{self, ListFilter, Page, TimeKey};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AmendmentView {
    pub id: Uuid,
    pub author_id: Uuid,
    pub at: UtcTs,
    pub summary: String,
    pub plan: Option<String>,
    pub reason: String,
    pub request_id: Option<Uuid>,
}

/// A note as its reader sees it: `summary`/`plan` are always as drafted or signed; `current` is
/// the text in force (the latest amendment's, or the note's own).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(rename = "IntegrationNote")]
pub struct NoteView {
    pub id: Uuid,
    pub kind: &'static str,
    pub session_id: Uuid,
    pub patient_id: Uuid,
    pub author_id: Uuid,
    /// `draft`, `signed` or `amended`.
    pub status: &'static str,
    pub summary: String,
    pub plan: Option<String>,
    pub created_at: UtcTs,
    pub updated_at: UtcTs,
    pub signed_at: Option<UtcTs>,
    pub amendments: Vec<AmendmentView>,
    pub current: NoteBody,
}

fn corrupt(what: &str) -> AppError {
    AppError::Internal(anyhow::anyhow!("stored integration note is invalid: {what}"))
}

fn refused(r: Refusal) -> AppError {
    match r {
        Refusal::Role => AppError::Forbidden,
        // Another therapist's draft is not disclosed.
        Refusal::NotTheAuthor => AppError::NotFound,
        Refusal::Invalid(f) => AppError::Invalid(f),
        r @ (Refusal::Signed | Refusal::NotSigned | Refusal::Unchanged) => {
            AppError::Refused { code: r.code(), field: None, message: r.to_string() }
        }
    }
}

fn body_of(summary: &str, plan: Option<&str>) -> Result<NoteBody, AppError> {
    NoteBody::parse(summary, plan.unwrap_or_default()).map_err(|e| corrupt(e.field))
}

/// Rebuilds the domain's note from its rows.
fn to_domain(n: &NoteRow, amendments: &[AmendmentRow]) -> Result<IntegrationNote, AppError> {
    let mut note = IntegrationNote {
        dosing_session: n.session_id,
        author: UserId::from_uuid(n.author_id),
        created_at: n.created_at.0,
        updated_at: n.updated_at.0,
        body: body_of(&n.summary, n.plan.as_deref())?,
        signed_at: n.signed_at.map(|t| t.0),
        amendments: Vec::new(),
    };
    for a in amendments.iter().filter(|a| a.note_id == n.id) {
        note.amendments.push(Amendment {
            author: UserId::from_uuid(a.author_id),
            at: a.created_at.0,
            body: body_of(&a.summary, a.plan.as_deref())?,
            reason: a.reason.clone(),
            request: a.request_id,
        });
    }
    Ok(note)
}

fn view(n: &NoteRow, amendments: &[AmendmentRow], note: &IntegrationNote) -> NoteView {
    let amendments: Vec<AmendmentView> = amendments
        .iter()
        .filter(|a| a.note_id == n.id)
        .map(|a| AmendmentView {
            id: a.id,
            author_id: a.author_id,
            at: a.created_at.0,
            summary: a.summary.clone(),
            plan: a.plan.clone(),
            reason: a.reason.clone(),
            request_id: a.request_id,
        })
        .collect();
    NoteView {
        id: n.id,
        kind: "integration_note",
        session_id: n.session_id,
        patient_id: n.patient_id,
        author_id: n.author_id,
        status: match (note.is_signed(), amendments.is_empty()) {
            (false, _) => "draft",
            (true, true) => "signed",
            (true, false) => "amended",
        },
        summary: note.body.summary.clone(),
        plan: note.body.plan.clone(),
        created_at: note.created_at,
        updated_at: note.updated_at,
        signed_at: note.signed_at,
        current: note.current().clone(),
        amendments,
    }
}

fn reader(user: &CurrentUser) -> Reader {
    Reader::Staff { user: user.id, role: user.role }
}

/// The notes among `rows` that `user` may read, with their amendments.
async fn visible(state: &AppState, user: &CurrentUser, rows: Vec<NoteRow>) -> Result<Vec<NoteView>, AppError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let amendments = store::amendments(&state.db, &ids).await?;
    let mut out = Vec::new();
    for r in &rows {
        let note = to_domain(r, &amendments)?;
        if note.may_read(reader(user)) {
            out.push(view(r, &amendments, &note));
        }
    }
    Ok(out)
}

/// A page of `limit` of `filter.patient`'s record notes as `user` may read them: signed (and
/// amended) integration notes, plus the caller's own drafts, never a psychotherapy note; oldest
/// first (the API's list; see `api::page`). The notes, and the key to continue after when more
/// follow. Audited (ids and a count).
pub async fn of_patient_page(
    state: &AppState,
    user: &CurrentUser,
    filter: &ListFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<(Vec<NoteView>, Option<TimeKey>), AppError> {
    let patient = filter.patient.ok_or(AppError::NotFound)?;
    kapstone_store::patients::get(&state.db, user.clinic, patient).await?.ok_or(AppError::NotFound)?;
    let after = TimeKey::oldest_first(after);
    let mut rows =
        store::of_patient_page(&state.db, &Page { clinic: user.clinic, filter, after, limit: limit + 1 }, user.id)
            .await?;
    // The next page starts after the last row read, whether or not this reader may see it.
    let next = keyset::cut(&mut rows, limit, |r| TimeKey::new(r.created_at, r.id));
    let notes = visible(state, user, rows).await?;
    let mut e = user.event(AuditAction::IntegrationNoteRead, "patient_notes", Outcome::Success);
    e.patient_id = Some(patient);
    e.reason = Some(format!("{} notes", notes.len()));
    state.read_audit.record(e).await?;
    Ok((notes, next))
}

/// A session's integration notes as `user` may read them (audited).
pub async fn of_session(state: &AppState, user: &CurrentUser, session: Uuid) -> Result<Vec<NoteView>, AppError> {
    let row = kapstone_store::dosing::session(&state.db, user.clinic, session).await?.ok_or(AppError::NotFound)?;
    let notes = visible(state, user, store::of_session(&state.db, user.clinic, session).await?).await?;
    let mut e = user.event(AuditAction::IntegrationNoteRead, "dosing_session", Outcome::Success);
    e.entity_id = Some(session.to_string());
    e.patient_id = Some(PatientId::from_uuid(row.patient_id));
    e.reason = Some(format!("{} integration notes", notes.len()));
    state.read_audit.record(e).await?;
    Ok(notes)
}

fn audit(
    user: &CurrentUser,
    action: AuditAction,
    note: Uuid,
    patient: Uuid,
    reason: String,
) -> kapstone_domain::audit::NewAuditEvent {
    let mut e = user.event(action, "integration_note", Outcome::Success);
    e.entity_id = Some(note.to_string());
    e.patient_id = Some(PatientId::from_uuid(patient));
    e.reason = Some(reason);
    e
}

/// Opens a draft on a dosing session of the clinic (therapists). Bad text names `summary` or
/// `plan` and stores nothing.
pub async fn draft(
    state: &AppState,
    user: &CurrentUser,
    session: Uuid,
    summary: &str,
    plan: &str,
) -> Result<NoteView, AppError> {
    let body = NoteBody::parse(summary, plan)?;
    let note = IntegrationNote::draft(user.id, user.role, session, UtcTs::now(), body).map_err(refused)?;
    let s = kapstone_store::dosing::session(&state.db, user.clinic, session).await?.ok_or(AppError::NotFound)?;
    let patient = PatientId::from_uuid(s.patient_id);
    let mut tx = state.db.begin().await?;
    let id = store::insert_draft(
        &mut tx,
        &NewDraft {
            clinic: user.clinic,
            session,
            patient,
            author: user.id,
            summary: &note.body.summary,
            plan: note.body.plan.as_deref(),
            at: note.created_at,
        },
    )
    .await?;
    let e = audit(
        user,
        AuditAction::IntegrationNoteDrafted,
        id,
        s.patient_id,
        format!("draft opened on session {session}"),
    );
    kapstone_store::audit::append(&mut tx, &e).await?;
    let row = NoteRow {
        id,
        session_id: session,
        patient_id: s.patient_id,
        author_id: user.id.as_uuid(),
        summary: note.body.summary.clone(),
        plan: note.body.plan.clone(),
        created_at: kapstone_store::DbTs(note.created_at),
        updated_at: kapstone_store::DbTs(note.updated_at),
        signed_at: None,
    };
    let out = view(&row, &[], &note);
    tx.commit_answering(&out).await?;
    Ok(out)
}

/// What to do to an existing note.
pub enum Step<'a> {
    Edit { summary: &'a str, plan: &'a str },
    Sign,
    Amend { summary: &'a str, plan: &'a str, reason: &'a str, request: Option<Uuid> },
}

/// Edits or signs the author's own draft, or amends a signed note. A note the caller may not
/// read (another's draft) is "not found"; a signed note is never edited (TV-HIP-4: 422
/// `signed_note_immutable`).
pub async fn step(state: &AppState, user: &CurrentUser, id: Uuid, what: Step<'_>) -> Result<NoteView, AppError> {
    if !kapstone_domain::integration_note::may_write(user.role) {
        return Err(AppError::Forbidden);
    }
    if matches!(what, Step::Sign | Step::Amend { .. }) {
        super::reauth::require_recent(state, user)?;
    }
    let now = UtcTs::now();
    let mut tx = state.db.begin().await?;
    let row = store::note_in(&mut tx, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    let mut amendments = store::amendments_in(&mut tx, id).await?;
    let mut note = to_domain(&row, &amendments)?;
    if !note.may_read(reader(user)) {
        return Err(AppError::NotFound);
    }
    let mut row = row;
    let e = match what {
        Step::Edit { summary, plan } => {
            let body = NoteBody::parse(summary, plan)?;
            note.edit(user.id, user.role, now, body).map_err(refused)?;
            if !store::update_draft(
                &mut tx,
                user.clinic,
                id,
                user.id,
                &note.body.summary,
                note.body.plan.as_deref(),
                now,
            )
            .await?
            {
                return Err(AppError::NotFound);
            }
            row.summary.clone_from(&note.body.summary);
            row.plan.clone_from(&note.body.plan);
            row.updated_at = kapstone_store::DbTs(now);
            audit(user, AuditAction::IntegrationNoteDrafted, id, row.patient_id, "draft edited".into())
        }
        Step::Sign => {
            note.sign(user.id, user.role, now).map_err(refused)?;
            if !store::sign(&mut tx, user.clinic, id, user.id, now).await? {
                return Err(AppError::NotFound);
            }
            row.signed_at = Some(kapstone_store::DbTs(now));
            row.updated_at = kapstone_store::DbTs(now);
            audit(user, AuditAction::IntegrationNoteSigned, id, row.patient_id, format!("session {}", row.session_id))
        }
        Step::Amend { summary, plan, reason, request } => {
            let body = NoteBody::parse(summary, plan)?;
            let a = note.amend(user.id, user.role, now, body, reason, request).map_err(refused)?.clone();
            let aid = store::insert_amendment(
                &mut tx,
                &NewAmendment {
                    note: id,
                    author: user.id,
                    summary: &a.body.summary,
                    plan: a.body.plan.as_deref(),
                    reason: &a.reason,
                    request: a.request,
                    at: a.at,
                },
            )
            .await?;
            amendments.push(AmendmentRow {
                id: aid,
                note_id: id,
                author_id: user.id.as_uuid(),
                summary: a.body.summary,
                plan: a.body.plan,
                reason: a.reason,
                request_id: a.request,
                created_at: kapstone_store::DbTs(a.at),
            });
            audit(user, AuditAction::IntegrationNoteAmended, id, row.patient_id, format!("amendment {aid}"))
        }
    };
    kapstone_store::audit::append(&mut tx, &e).await?;
    let out = view(&row, &amendments, &note);
    tx.commit_answering(&out).await?;
    Ok(out)
}
