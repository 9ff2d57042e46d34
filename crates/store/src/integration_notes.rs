//! Integration notes (KAP-SPEC 2.1 stage 7): progress-note content linked to a dosing session.
//! A draft row is updated in place while `signed_at` is null and only by its author (every
//! update names the author and `signed_at IS NULL`); a signed row never changes (triggers). An
//! amendment is a row of its own. Psychotherapy notes live elsewhere and are never read here.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::keyset::{self, Page};
use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct NoteRow {
    pub id: Uuid,
    pub session_id: Uuid,
    pub patient_id: Uuid,
    pub author_id: Uuid,
    pub summary: String,
    pub plan: Option<String>,
    pub created_at: DbTs,
    pub updated_at: DbTs,
    pub signed_at: Option<DbTs>,
}

const COLUMNS: &str = "id, session_id, patient_id, author_id, summary, plan, created_at, updated_at, signed_at";

#[derive(Debug, Clone, FromRow)]
pub struct AmendmentRow {
    pub id: Uuid,
    pub note_id: Uuid,
    pub author_id: Uuid,
    pub summary: String,
    pub plan: Option<String>,
    pub reason: String,
    pub request_id: Option<Uuid>,
    pub created_at: DbTs,
}

const AMENDMENT_COLUMNS: &str = "id, note_id, author_id, summary, plan, reason, request_id, created_at";

pub struct NewDraft<'a> {
    pub clinic: ClinicId,
    pub session: Uuid,
    pub patient: PatientId,
    pub author: UserId,
    pub summary: &'a str,
    pub plan: Option<&'a str>,
    pub at: UtcTs,
}

/// Stores a new draft; returns its id.
pub async fn insert_draft(tx: &mut Tx, n: &NewDraft<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO integration_notes (id, clinic_id, session_id, patient_id, author_id, summary, plan, \
             created_at, updated_at, signed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, NULL)",
        )
        .bind(id)
        .bind(n.clinic.as_uuid())
        .bind(n.session)
        .bind(n.patient.as_uuid())
        .bind(n.author.as_uuid())
        .bind(n.summary)
        .bind(n.plan)
        .bind(DbTs(n.at))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// Replaces the text of the author's own unsigned draft. `false` when there is no such draft.
#[allow(clippy::too_many_arguments)]
pub async fn update_draft(
    tx: &mut Tx,
    clinic: ClinicId,
    id: Uuid,
    author: UserId,
    summary: &str,
    plan: Option<&str>,
    at: UtcTs,
) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE integration_notes SET summary = $1, plan = $2, updated_at = $3 \
             WHERE id = $4 AND clinic_id = $5 AND author_id = $6 AND signed_at IS NULL",
        )
        .bind(summary)
        .bind(plan)
        .bind(DbTs(at))
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(author.as_uuid())
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// Signs the author's own unsigned draft. `false` when there is no such draft.
pub async fn sign(tx: &mut Tx, clinic: ClinicId, id: Uuid, author: UserId, at: UtcTs) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE integration_notes SET signed_at = $1, updated_at = $1 \
             WHERE id = $2 AND clinic_id = $3 AND author_id = $4 AND signed_at IS NULL",
        )
        .bind(DbTs(at))
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(author.as_uuid())
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

pub struct NewAmendment<'a> {
    pub note: Uuid,
    pub author: UserId,
    pub summary: &'a str,
    pub plan: Option<&'a str>,
    pub reason: &'a str,
    pub request: Option<Uuid>,
    pub at: UtcTs,
}

/// Appends an amendment to a note (the caller has checked it is signed, in this transaction).
pub async fn insert_amendment(tx: &mut Tx, a: &NewAmendment<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO integration_note_amendments (id, note_id, author_id, summary, plan, reason, request_id, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(a.note)
        .bind(a.author.as_uuid())
        .bind(a.summary)
        .bind(a.plan)
        .bind(a.reason)
        .bind(a.request)
        .bind(DbTs(a.at))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// One note of the clinic, read in a write transaction.
pub async fn note_in(tx: &mut Tx, clinic: ClinicId, id: Uuid) -> Result<Option<NoteRow>> {
    let sql = format!("SELECT {COLUMNS} FROM integration_notes WHERE clinic_id = $1 AND id = $2");
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).bind(id).fetch_optional(c).await?
    }))
}

/// A note's amendments, oldest first, read in a write transaction.
pub async fn amendments_in(tx: &mut Tx, note: Uuid) -> Result<Vec<AmendmentRow>> {
    let sql = format!(
        "SELECT {AMENDMENT_COLUMNS} FROM integration_note_amendments WHERE note_id = $1 ORDER BY created_at, id"
    );
    Ok(on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(note).fetch_all(c).await?))
}

/// One note of the clinic.
pub async fn note(db: &Db, clinic: ClinicId, id: Uuid) -> Result<Option<NoteRow>> {
    let sql = format!("SELECT {COLUMNS} FROM integration_notes WHERE clinic_id = $1 AND id = $2");
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).bind(id).fetch_optional(c).await?
    }))
}

/// A patient's notes (drafts included: the caller filters by who may read), oldest first.
pub async fn of_patient(db: &Db, clinic: ClinicId, patient: PatientId) -> Result<Vec<NoteRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM integration_notes WHERE clinic_id = $1 AND patient_id = $2 ORDER BY created_at, id"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(patient.as_uuid())
            .fetch_all(c)
            .await?
    }))
}

/// A page of `p.filter.patient`'s notes that `reader` may see (signed notes and the reader's own
/// drafts), oldest first after `p.after`, written in the window `[from, to)` when set (the API's list).
pub async fn of_patient_page(db: &Db, p: &Page<'_>, reader: UserId) -> Result<Vec<NoteRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM integration_notes WHERE clinic_id = $1 AND patient_id = $2 \
         AND (signed_at IS NOT NULL OR author_id = $8) AND ($3 IS NULL OR created_at >= $3) \
         AND ($4 IS NULL OR created_at < $4) AND created_at >= $5 AND (created_at > $5 OR id > $6) \
         ORDER BY created_at, id LIMIT $7"
    );
    keyset::fetch(db, sql, p, Some(reader.as_uuid())).await
}

/// A session's notes (drafts included: the caller filters by who may read), oldest first.
pub async fn of_session(db: &Db, clinic: ClinicId, session: Uuid) -> Result<Vec<NoteRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM integration_notes WHERE clinic_id = $1 AND session_id = $2 ORDER BY created_at, id"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).bind(session).fetch_all(c).await?
    }))
}

/// The amendments of these notes, oldest first.
pub async fn amendments(db: &Db, notes: &[Uuid]) -> Result<Vec<AmendmentRow>> {
    if notes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT id, note_id, author_id, summary, plan, reason, request_id, created_at \
             FROM integration_note_amendments WHERE note_id IN ",
        );
        crate::push_ids(&mut q, notes);
        q.push(" ORDER BY created_at, id");
        q.build_query_as().fetch_all(c).await?
    }))
}
