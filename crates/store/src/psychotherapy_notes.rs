//! Psychotherapy notes: the separate, author-only store (KAP-SPEC 10). Every query here names
//! the author in its `WHERE` clause, so a mistake in a caller can at worst show an author their
//! own notes: there is no function that returns another author's note, nor one that lists notes
//! by patient or by session alone. Rows are never updated or deleted (triggers refuse it); an
//! amendment is a new row naming the original.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::keyset::{self, Page};
use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

/// A stored note or amendment. `amends_id` is `None` for an original note; an amendment names
/// the original and carries its `reason`.
#[derive(Debug, Clone, FromRow)]
pub struct NoteRow {
    pub id: Uuid,
    pub session_id: Uuid,
    pub patient_id: Uuid,
    pub author_id: Uuid,
    pub amends_id: Option<Uuid>,
    pub body: String,
    pub reason: Option<String>,
    pub created_at: DbTs,
}

const COLUMNS: &str = "id, session_id, patient_id, author_id, amends_id, body, reason, created_at";

pub struct NewNote<'a> {
    pub clinic: ClinicId,
    pub session: Uuid,
    pub patient: PatientId,
    pub author: UserId,
    pub body: &'a str,
    pub at: UtcTs,
}

/// Stores a signed note; returns its id.
pub async fn insert_note(tx: &mut Tx, n: &NewNote<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO psychotherapy_notes (id, clinic_id, session_id, patient_id, author_id, amends_id, body, reason, \
             created_at) VALUES ($1, $2, $3, $4, $5, NULL, $6, NULL, $7)",
        )
        .bind(id)
        .bind(n.clinic.as_uuid())
        .bind(n.session)
        .bind(n.patient.as_uuid())
        .bind(n.author.as_uuid())
        .bind(n.body)
        .bind(DbTs(n.at))
        .execute(c)
        .await?;
    });
    Ok(id)
}

pub struct NewAmendment<'a> {
    pub clinic: ClinicId,
    pub author: UserId,
    /// The original note (not an amendment).
    pub original: Uuid,
    pub body: &'a str,
    pub reason: &'a str,
    pub at: UtcTs,
}

/// Stores an amendment of one of the author's own original notes; session, patient and author
/// are copied from the original. `None` when the author has no such original note in the clinic
/// (unknown, another author's, or itself an amendment): nothing is written.
pub async fn insert_amendment(tx: &mut Tx, a: &NewAmendment<'_>) -> Result<Option<Uuid>> {
    let id = Uuid::now_v7();
    let written = on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO psychotherapy_notes (id, clinic_id, session_id, patient_id, author_id, amends_id, body, reason, \
             created_at) \
             SELECT $1, clinic_id, session_id, patient_id, author_id, id, $2, $3, $4 FROM psychotherapy_notes \
             WHERE id = $5 AND clinic_id = $6 AND author_id = $7 AND amends_id IS NULL",
        )
        .bind(id)
        .bind(a.body)
        .bind(a.reason)
        .bind(DbTs(a.at))
        .bind(a.original)
        .bind(a.clinic.as_uuid())
        .bind(a.author.as_uuid())
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok((written == 1).then_some(id))
}

/// The author's own notes of one session with their amendments, oldest first.
pub async fn of_author_in_session(db: &Db, clinic: ClinicId, author: UserId, session: Uuid) -> Result<Vec<NoteRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM psychotherapy_notes WHERE clinic_id = $1 AND author_id = $2 AND session_id = $3 \
         ORDER BY created_at, id"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(author.as_uuid())
            .bind(session)
            .fetch_all(c)
            .await?
    }))
}

/// One of the author's own original notes and its amendments, oldest first, read in the write
/// transaction that amends it. Empty when the author has no such original note.
pub async fn one_of_author(tx: &mut Tx, clinic: ClinicId, author: UserId, note: Uuid) -> Result<Vec<NoteRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM psychotherapy_notes WHERE clinic_id = $1 AND author_id = $2 \
         AND ((id = $3 AND amends_id IS NULL) OR amends_id = $3) ORDER BY created_at, id"
    );
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(author.as_uuid())
            .bind(note)
            .fetch_all(c)
            .await?
    }))
}

// ---------------------------------------------------------------------------------------------
// Sharing with one named colleague (0019). Every query names either the author (to share,
// withdraw, list their shares) or the colleague together with a live share (to read): a note is
// never returned to anyone else.

/// A live share of a note: who it is shared with, and since when.
#[derive(Debug, Clone, FromRow)]
pub struct ShareRow {
    pub note_id: Uuid,
    pub colleague_id: Uuid,
    pub shared_at: DbTs,
}

/// A note shared with the signed-in colleague, as listed (no text).
#[derive(Debug, Clone, FromRow)]
pub struct SharedWithMeRow {
    pub note_id: Uuid,
    pub session_id: Uuid,
    pub patient_id: Uuid,
    pub author_id: Uuid,
    pub shared_at: DbTs,
}

/// Shares one of the author's own original notes with `colleague`. `Ok(None)` when the author
/// has no such original note; a live share already on the note is a conflict.
pub async fn share(
    tx: &mut Tx,
    clinic: ClinicId,
    author: UserId,
    note: Uuid,
    colleague: UserId,
    at: UtcTs,
) -> Result<Option<Uuid>> {
    let id = Uuid::now_v7();
    let written = on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO psychotherapy_note_shares (id, clinic_id, note_id, author_id, colleague_id, shared_at) \
             SELECT $1, clinic_id, id, author_id, $2, $3 FROM psychotherapy_notes \
             WHERE id = $4 AND clinic_id = $5 AND author_id = $6 AND amends_id IS NULL",
        )
        .bind(id)
        .bind(colleague.as_uuid())
        .bind(DbTs(at))
        .bind(note)
        .bind(clinic.as_uuid())
        .bind(author.as_uuid())
        .execute(c)
        .await
        .map_err(|e| crate::StoreError::conflict_on_unique(e, "share"))?
        .rows_affected()
    });
    Ok((written == 1).then_some(id))
}

/// Withdraws the live share of one of the author's notes; false when there is none.
pub async fn withdraw_share(tx: &mut Tx, clinic: ClinicId, author: UserId, note: Uuid, at: UtcTs) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE psychotherapy_note_shares SET withdrawn_at = $1 \
             WHERE note_id = $2 AND clinic_id = $3 AND author_id = $4 AND withdrawn_at IS NULL",
        )
        .bind(DbTs(at))
        .bind(note)
        .bind(clinic.as_uuid())
        .bind(author.as_uuid())
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// The live shares of the author's own notes among `notes`.
pub async fn shares_of_author(db: &Db, clinic: ClinicId, author: UserId, notes: &[Uuid]) -> Result<Vec<ShareRow>> {
    if notes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT note_id, colleague_id, shared_at FROM psychotherapy_note_shares WHERE withdrawn_at IS NULL AND clinic_id = ",
        );
        q.push_bind(clinic.as_uuid());
        q.push(" AND author_id = ");
        q.push_bind(author.as_uuid());
        q.push(" AND note_id IN ");
        crate::push_ids(&mut q, notes);
        q.build_query_as().fetch_all(c).await?
    }))
}

/// The notes shared with `colleague` now, newest share first.
pub async fn shared_with(db: &Db, clinic: ClinicId, colleague: UserId) -> Result<Vec<SharedWithMeRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT n.id AS note_id, n.session_id, n.patient_id, n.author_id, s.shared_at \
             FROM psychotherapy_note_shares s JOIN psychotherapy_notes n ON n.id = s.note_id \
             WHERE s.clinic_id = $1 AND s.colleague_id = $2 AND s.withdrawn_at IS NULL ORDER BY s.shared_at DESC, n.id",
        )
        .bind(clinic.as_uuid())
        .bind(colleague.as_uuid())
        .fetch_all(c)
        .await?
    }))
}

/// A page of the notes shared with `colleague` now, newest share first after `p.after` (the key is
/// the share's time and the note's id): those of `p.filter.patient` when set, shared in the window `[from, to)`
/// when set (the API's list).
pub async fn shared_with_page(db: &Db, p: &Page<'_>, colleague: UserId) -> Result<Vec<SharedWithMeRow>> {
    let sql = "SELECT n.id AS note_id, n.session_id, n.patient_id, n.author_id, s.shared_at \
               FROM psychotherapy_note_shares s JOIN psychotherapy_notes n ON n.id = s.note_id \
               WHERE s.clinic_id = $1 AND s.colleague_id = $8 AND s.withdrawn_at IS NULL \
               AND ($2 IS NULL OR n.patient_id = $2) AND ($3 IS NULL OR s.shared_at >= $3) \
               AND ($4 IS NULL OR s.shared_at < $4) AND s.shared_at <= $5 AND (s.shared_at < $5 OR n.id < $6) \
               ORDER BY s.shared_at DESC, n.id DESC LIMIT $7";
    keyset::fetch(db, sql.to_owned(), p, Some(colleague.as_uuid())).await
}

/// One note shared with `colleague` now, with its amendments, oldest first; empty when it is not
/// (unknown, never shared with them, or withdrawn).
pub async fn shared_note(db: &Db, clinic: ClinicId, colleague: UserId, note: Uuid) -> Result<Vec<NoteRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM psychotherapy_notes WHERE clinic_id = $1 AND ((id = $2 AND amends_id IS NULL) OR amends_id = $2) \
         AND EXISTS (SELECT 1 FROM psychotherapy_note_shares s WHERE s.note_id = $2 AND s.clinic_id = $1 \
         AND s.colleague_id = $3 AND s.withdrawn_at IS NULL) ORDER BY created_at, id"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(note)
            .bind(colleague.as_uuid())
            .fetch_all(c)
            .await?
    }))
}
