//! The patient's journal: the portal's use cases (the signed-in patient's own entries only) and
//! the care team's (shared entries only, read from the queue).
//!
//! Scoping is in three layers: portal functions take the patient from the session, never from
//! the request, and every store query they make names that patient; staff functions only ever
//! load shared entries; and the domain's [`JournalEntry`] rules are asked before each change or
//! read. Audit events and logs carry ids, never the text.

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::journal::{JournalEntry, Refusal, Viewer, session_to_prompt};
use kapstone_domain::{FieldError, PatientId, UserId, UtcTs};
use kapstone_store::journal::{self as store, EntryRow, NewEntry};
use kapstone_store::keyset::{self, ListFilter, Page, TimeKey};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// An entry as the patient, or the care team, reads it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[schemars(rename = "JournalEntry")]
pub struct EntryView {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub session_id: Option<Uuid>,
    pub prompt_id: Option<String>,
    pub text: String,
    pub written_at: UtcTs,
    pub updated_at: UtcTs,
    pub shared: bool,
    pub shared_at: Option<UtcTs>,
    /// When someone on the care team first read it (the reader's id is not shown to the patient).
    pub read_at: Option<UtcTs>,
    /// May the patient still withdraw the sharing (shared, unread)?
    pub withdrawable: bool,
}

impl EntryView {
    fn of(r: &EntryRow) -> Self {
        Self {
            id: r.id,
            patient_id: r.patient_id,
            session_id: r.session_id,
            prompt_id: r.prompt_id.clone(),
            text: r.body.clone(),
            written_at: r.written_at.0,
            updated_at: r.updated_at.0,
            shared: r.shared_at.is_some(),
            shared_at: r.shared_at.map(|t| t.0),
            read_at: r.first_read_at.map(|t| t.0),
            withdrawable: r.shared_at.is_some() && r.first_read_at.is_none(),
        }
    }
}

/// The domain's record of a stored entry.
fn to_domain(r: &EntryRow) -> JournalEntry {
    JournalEntry {
        patient: PatientId::from_uuid(r.patient_id),
        written_at: r.written_at.0,
        updated_at: r.updated_at.0,
        text: r.body.clone(),
        session: r.session_id,
        prompt: r.prompt_id.clone(),
        shared_at: r.shared_at.map(|t| t.0),
        first_read: r.first_read_by.zip(r.first_read_at).map(|(u, t)| (UserId::from_uuid(u), t.0)),
    }
}

fn refused(r: Refusal) -> AppError {
    match r {
        Refusal::NotFound => AppError::NotFound,
        Refusal::Invalid(f) => AppError::Invalid(f),
        r @ (Refusal::Shared | Refusal::AlreadyRead | Refusal::NotShared) => {
            AppError::Refused { code: r.code(), field: None, message: r.to_string() }
        }
    }
}

fn own_patient(me: &CurrentUser) -> Result<PatientId, AppError> {
    me.patient.ok_or(AppError::Forbidden)
}

/// The patient's journal and the session the portal prompts them to write about.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OwnJournal {
    pub entries: Vec<EntryView>,
    /// The latest dosing session that has ended and that no entry is linked to yet.
    pub prompt_session: Option<PromptSession>,
    /// The patient's ended dosing sessions, newest first: (id, ended at), to link an entry to.
    pub sessions: Vec<PromptSession>,
}

#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
pub struct PromptSession {
    pub id: Uuid,
    pub ended_at: UtcTs,
}

/// The patient's dosing sessions that have ended (discharged, or aborted after the dose).
async fn ended_sessions(
    state: &AppState,
    me: &CurrentUser,
    patient: PatientId,
) -> Result<Vec<PromptSession>, AppError> {
    Ok(kapstone_store::dosing::sessions_of_patient(&state.db, me.clinic, patient)
        .await?
        .into_iter()
        .filter(|s| s.state == "discharged" || (s.state == "aborted" && s.dose_started_at.is_some()))
        .map(|s| PromptSession { id: s.id, ended_at: s.updated_at.0 })
        .collect())
}

/// The signed-in patient's own entries, newest first (audited: a read of their own record).
pub async fn own(state: &AppState, me: &CurrentUser) -> Result<OwnJournal, AppError> {
    let patient = own_patient(me)?;
    let rows = store::own(&state.db, me.clinic, patient).await?;
    let sessions = ended_sessions(state, me, patient).await?;
    let domain: Vec<JournalEntry> = rows.iter().map(to_domain).collect();
    let ended: Vec<(Uuid, UtcTs)> = sessions.iter().map(|s| (s.id, s.ended_at)).collect();
    let prompt = session_to_prompt(&ended, &domain, UtcTs::now());
    let mut e = me.event(AuditAction::JournalRead, "journal", Outcome::Success);
    e.patient_id = Some(patient);
    e.reason = Some(format!("own journal, {} entries", rows.len()));
    state.read_audit.record(e).await?;
    Ok(OwnJournal {
        entries: rows.iter().filter(|r| to_domain(r).may_read(Viewer::Patient(patient))).map(EntryView::of).collect(),
        prompt_session: prompt.and_then(|id| sessions.iter().find(|s| s.id == id).copied()),
        sessions,
    })
}

/// A page of `limit` of the signed-in patient's own entries, newest first after `after`, written in
/// `filter`'s window (the API's list; see `api::page`), with the session to prompt for (audited):
/// the journal, and the key to continue after when more follow.
pub async fn own_page(
    state: &AppState,
    me: &CurrentUser,
    filter: &ListFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<(OwnJournal, Option<TimeKey>), AppError> {
    let patient = own_patient(me)?;
    let filter = ListFilter { patient: Some(patient), ..*filter };
    let after = TimeKey::newest_first(after);
    let mut rows =
        store::own_page(&state.db, &Page { clinic: me.clinic, filter: &filter, after, limit: limit + 1 }).await?;
    let next = keyset::cut(&mut rows, limit, |r| TimeKey::new(r.written_at, r.id));
    let sessions = ended_sessions(state, me, patient).await?;
    // Whether to prompt depends on the entries linked to the latest ended session only, wherever
    // they are in the list.
    let now = UtcTs::now();
    let ended: Vec<(Uuid, UtcTs)> = sessions.iter().map(|s| (s.id, s.ended_at)).collect();
    let linked = match ended.iter().filter(|(_, at)| *at <= now).max_by_key(|(_, at)| *at) {
        Some((latest, _)) => store::own_of_session(&state.db, me.clinic, patient, *latest).await?,
        None => Vec::new(),
    };
    let domain: Vec<JournalEntry> = linked.iter().map(to_domain).collect();
    let prompt = session_to_prompt(&ended, &domain, now);
    let mut e = me.event(AuditAction::JournalRead, "journal", Outcome::Success);
    e.patient_id = Some(patient);
    e.reason = Some(format!("own journal, {} entries", rows.len()));
    state.read_audit.record(e).await?;
    let journal = OwnJournal {
        entries: rows.iter().filter(|r| to_domain(r).may_read(Viewer::Patient(patient))).map(EntryView::of).collect(),
        prompt_session: prompt.and_then(|id| sessions.iter().find(|s| s.id == id).copied()),
        sessions,
    };
    Ok((journal, next))
}

/// One of the signed-in patient's own entries (audited).
pub async fn own_entry(state: &AppState, me: &CurrentUser, id: Uuid) -> Result<EntryView, AppError> {
    let patient = own_patient(me)?;
    let mut tx = state.db.begin().await?;
    let row = store::own_in(&mut tx, me.clinic, patient, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    if !to_domain(&row).may_read(Viewer::Patient(patient)) {
        return Err(AppError::NotFound);
    }
    let mut e = me.event(AuditAction::JournalRead, "journal_entry", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    state.read_audit.record(e).await?;
    Ok(EntryView::of(&row))
}

/// What the patient sends to write an entry.
pub struct NewText<'a> {
    pub text: &'a str,
    /// One of the patient's own dosing sessions, or none.
    pub session: Option<&'a str>,
    /// A prompt id from the prompts file, or none.
    pub prompt: Option<&'a str>,
}

/// Writes a private entry for the signed-in patient.
pub async fn write(state: &AppState, me: &CurrentUser, input: &NewText<'_>) -> Result<EntryView, AppError> {
    let patient = own_patient(me)?;
    let session = match input.session.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => {
            let bad = || AppError::Invalid(FieldError::new("session", "choose one of your own dosing sessions"));
            let id: Uuid = raw.parse().map_err(|_| bad())?;
            let own = kapstone_store::dosing::sessions_of_patient(&state.db, me.clinic, patient).await?;
            if !own.iter().any(|s| s.id == id) {
                return Err(bad());
            }
            Some(id)
        }
    };
    let prompt = match input.prompt.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(p) => {
            let set = crate::content::journal_prompts().map_err(AppError::Internal)?;
            let found = set.get(p).ok_or_else(|| FieldError::new("prompt", "choose one of the prompts shown"))?;
            Some(found.id.clone())
        }
    };
    let entry = JournalEntry::write(patient, UtcTs::now(), input.text, session, prompt).map_err(refused)?;
    let mut tx = state.db.begin().await?;
    let id = store::insert(
        &mut tx,
        &NewEntry {
            clinic: me.clinic,
            patient,
            session: entry.session,
            prompt: entry.prompt.as_deref(),
            body: &entry.text,
            at: entry.written_at,
        },
    )
    .await?;
    let mut e = me.event(AuditAction::JournalWritten, "journal_entry", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    e.reason = Some("written".into());
    kapstone_store::audit::append(&mut tx, &e).await?;
    let row = EntryRow {
        id,
        patient_id: patient.as_uuid(),
        session_id: entry.session,
        prompt_id: entry.prompt,
        body: entry.text,
        written_at: kapstone_store::DbTs(entry.written_at),
        updated_at: kapstone_store::DbTs(entry.updated_at),
        shared_at: None,
        first_read_by: None,
        first_read_at: None,
    };
    let out = EntryView::of(&row);
    tx.commit_answering(&out).await?;
    Ok(out)
}

/// A change the patient makes to one of their own entries.
pub enum Change<'a> {
    Edit(&'a str),
    Share,
    Unshare,
    Delete,
}

/// Applies a change to the signed-in patient's own entry. Another patient's entry is "not
/// found", whether it exists or not. Returns the entry as it now stands (`None` once deleted).
pub async fn change(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    what: Change<'_>,
) -> Result<Option<EntryView>, AppError> {
    let patient = own_patient(me)?;
    let viewer = Viewer::Patient(patient);
    let now = UtcTs::now();
    let mut tx = state.db.begin().await?;
    let row = store::own_in(&mut tx, me.clinic, patient, id).await?.ok_or(AppError::NotFound)?;
    let mut entry = to_domain(&row);
    let (action, reason) = match what {
        Change::Edit(text) => {
            entry.edit(viewer, now, text).map_err(refused)?;
            (AuditAction::JournalWritten, "edited")
        }
        Change::Share => {
            entry.share(viewer, now).map_err(refused)?;
            (AuditAction::JournalShared, "shared with the care team")
        }
        Change::Unshare => {
            entry.unshare(viewer, now).map_err(refused)?;
            (AuditAction::JournalShared, "sharing withdrawn")
        }
        Change::Delete => {
            entry.may_delete(viewer).map_err(refused)?;
            (AuditAction::JournalWritten, "deleted")
        }
    };
    let after = if matches!(what, Change::Delete) {
        if !store::delete_own_private(&mut tx, me.clinic, patient, id).await? {
            return Err(AppError::NotFound);
        }
        None
    } else {
        let updated = EntryRow {
            body: entry.text.clone(),
            updated_at: kapstone_store::DbTs(entry.updated_at),
            shared_at: entry.shared_at.map(kapstone_store::DbTs),
            ..row
        };
        if !store::save_own(&mut tx, me.clinic, patient, &updated).await? {
            return Err(AppError::NotFound);
        }
        Some(EntryView::of(&updated))
    };
    let mut e = me.event(action, "journal_entry", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(patient);
    e.reason = Some(reason.into());
    kapstone_store::audit::append(&mut tx, &e).await?;
    tx.commit_answering(&after).await?;
    Ok(after)
}

/// An entry waiting unread in the care team's queue: ids and times only, never the text.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct QueueItem {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub session_id: Option<Uuid>,
    pub shared_at: UtcTs,
}

fn ensure_care_team(user: &CurrentUser) -> Result<Viewer, AppError> {
    let v = Viewer::Staff { user: user.id, role: user.role };
    if kapstone_domain::permissions::allows(Some(user.role), kapstone_domain::Action::ReadClinicalRecord) {
        Ok(v)
    } else {
        Err(AppError::Forbidden)
    }
}

/// Shared entries nobody on the care team has read yet, oldest share first (audited).
pub async fn queue(state: &AppState, user: &CurrentUser) -> Result<Vec<QueueItem>, AppError> {
    ensure_care_team(user)?;
    let rows = store::unread_shared(&state.db, user.clinic).await?;
    listed(state, user, rows, usize::MAX).await
}

/// A page of `limit` of the queue, read with one more that says whether a next page follows (the
/// API's list; see `api::page`), audited alike.
pub async fn queue_page(
    state: &AppState,
    user: &CurrentUser,
    filter: &ListFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<QueueItem>, AppError> {
    ensure_care_team(user)?;
    let after = TimeKey::oldest_first(after);
    let rows =
        store::unread_shared_page(&state.db, &Page { clinic: user.clinic, filter, after, limit: limit + 1 }).await?;
    listed(state, user, rows, keyset::sent(limit)).await
}

/// The queue's rows as items; listing the `sent` first ones is audited (a count, no ids).
async fn listed(
    state: &AppState,
    user: &CurrentUser,
    rows: Vec<EntryRow>,
    sent: usize,
) -> Result<Vec<QueueItem>, AppError> {
    let n = rows.len().min(sent);
    if n > 0 {
        let mut e = user.event(AuditAction::JournalRead, "journal_queue", Outcome::Success);
        e.reason = Some(format!("{n} unread shared entries listed"));
        state.read_audit.record(e).await?;
    }
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(QueueItem { id: r.id, patient_id: r.patient_id, session_id: r.session_id, shared_at: r.shared_at?.0 })
        })
        .collect())
}

/// Records the first read of shared entries by this clinician, in a transaction with its audit.
async fn mark_read(state: &AppState, user: &CurrentUser, rows: &[EntryRow]) -> Result<(), AppError> {
    let viewer = ensure_care_team(user)?;
    let unread: Vec<&EntryRow> = rows.iter().filter(|r| r.shared_at.is_some() && r.first_read_at.is_none()).collect();
    if unread.is_empty() {
        return Ok(());
    }
    let now = UtcTs::now();
    let mut tx = state.db.begin().await?;
    for r in unread {
        let mut entry = to_domain(r);
        entry.mark_read(viewer, now).map_err(refused)?;
        if store::mark_read(&mut tx, user.clinic, r.id, user.id, now).await? {
            let mut e = user.event(AuditAction::JournalRead, "journal_entry", Outcome::Success);
            e.entity_id = Some(r.id.to_string());
            e.patient_id = Some(PatientId::from_uuid(r.patient_id));
            e.reason = Some("first read by the care team".into());
            kapstone_store::audit::append(&mut tx, &e).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Opens one shared entry: the first read takes it out of the queue. A private entry, or one
/// whose sharing was withdrawn, is "not found".
pub async fn read_shared(state: &AppState, user: &CurrentUser, id: Uuid) -> Result<EntryView, AppError> {
    let viewer = ensure_care_team(user)?;
    let mut tx = state.db.begin().await?;
    let row = store::shared_in(&mut tx, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    if !to_domain(&row).may_read(viewer) {
        return Err(AppError::NotFound);
    }
    mark_read(state, user, std::slice::from_ref(&row)).await?;
    let mut e = user.event(AuditAction::JournalRead, "journal_entry", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(PatientId::from_uuid(row.patient_id));
    state.read_audit.record(e).await?;
    let mut tx = state.db.begin().await?;
    let row = store::shared_in(&mut tx, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(EntryView::of(&row))
}

/// A patient's shared entries, newest first, as the care team reads them (marks them read).
pub async fn shared_of_patient(
    state: &AppState,
    user: &CurrentUser,
    patient: PatientId,
) -> Result<Vec<EntryView>, AppError> {
    let viewer = ensure_care_team(user)?;
    let rows: Vec<EntryRow> = store::shared_of_patient(&state.db, user.clinic, patient)
        .await?
        .into_iter()
        .filter(|r| to_domain(r).may_read(viewer))
        .collect();
    mark_read(state, user, &rows).await?;
    let mut e = user.event(AuditAction::JournalRead, "journal", Outcome::Success);
    e.patient_id = Some(patient);
    e.reason = Some(format!("{} shared entries", rows.len()));
    state.read_audit.record(e).await?;
    let now_read = store::shared_of_patient(&state.db, user.clinic, patient).await?;
    Ok(now_read.iter().filter(|r| rows.iter().any(|x| x.id == r.id)).map(EntryView::of).collect())
}
