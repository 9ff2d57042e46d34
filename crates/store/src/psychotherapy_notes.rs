//! Psychotherapy notes: the separate, author-only store (KAP-SPEC 10). Every query here names
//! the author in its `WHERE` clause, so a mistake in a caller can at worst show an author their
//! own notes: there is no function that returns another author's note, nor one that lists notes
//! by patient or by session alone. Rows are never updated or deleted (triggers refuse it); an
//! amendment is a new row naming the original.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

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
