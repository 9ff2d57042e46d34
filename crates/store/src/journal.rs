//! The patient's journal. Every query a patient's request reaches names the patient in its
//! `WHERE` clause, so one patient's entry is never loaded for another. Staff queries return
//! shared entries only (`shared_at IS NOT NULL`): a private entry is never loaded for staff.
//! Triggers keep a shared entry's text frozen and a read entry shared.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::keyset::{self, Page};
use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct EntryRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub session_id: Option<Uuid>,
    pub prompt_id: Option<String>,
    pub body: String,
    pub written_at: DbTs,
    pub updated_at: DbTs,
    pub shared_at: Option<DbTs>,
    pub first_read_by: Option<Uuid>,
    pub first_read_at: Option<DbTs>,
}

const COLUMNS: &str = "id, patient_id, session_id, prompt_id, body, written_at, updated_at, shared_at, first_read_by, \
     first_read_at";

pub struct NewEntry<'a> {
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub session: Option<Uuid>,
    pub prompt: Option<&'a str>,
    pub body: &'a str,
    pub at: UtcTs,
}

pub async fn insert(tx: &mut Tx, e: &NewEntry<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO journal_entries (id, clinic_id, patient_id, session_id, prompt_id, body, written_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(id)
        .bind(e.clinic.as_uuid())
        .bind(e.patient.as_uuid())
        .bind(e.session)
        .bind(e.prompt)
        .bind(e.body)
        .bind(DbTs(e.at))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// The patient's own entry, in a write transaction.
pub async fn own_in(tx: &mut Tx, clinic: ClinicId, patient: PatientId, id: Uuid) -> Result<Option<EntryRow>> {
    let sql = format!("SELECT {COLUMNS} FROM journal_entries WHERE clinic_id = $1 AND patient_id = $2 AND id = $3");
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(patient.as_uuid())
            .bind(id)
            .fetch_optional(c)
            .await?
    }))
}

/// The patient's own entries, newest first.
pub async fn own(db: &Db, clinic: ClinicId, patient: PatientId) -> Result<Vec<EntryRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM journal_entries WHERE clinic_id = $1 AND patient_id = $2 ORDER BY written_at DESC, id DESC"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(patient.as_uuid())
            .fetch_all(c)
            .await?
    }))
}

/// A page of the patient's own entries, newest first after `p.after`, written in the window
/// `[from, to)` when set (the API's list; `p.filter.patient` is the signed-in patient).
pub async fn own_page(db: &Db, p: &Page<'_>) -> Result<Vec<EntryRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM journal_entries WHERE clinic_id = $1 AND patient_id = $2 \
         AND ($3 IS NULL OR written_at >= $3) AND ($4 IS NULL OR written_at < $4) \
         AND written_at <= $5 AND (written_at < $5 OR id < $6) ORDER BY written_at DESC, id DESC LIMIT $7"
    );
    keyset::fetch(db, sql, p, None).await
}

/// The patient's own entries linked to one of their sessions (whether to prompt for it).
pub async fn own_of_session(db: &Db, clinic: ClinicId, patient: PatientId, session: Uuid) -> Result<Vec<EntryRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM journal_entries WHERE clinic_id = $1 AND patient_id = $2 AND session_id = $3 \
         ORDER BY written_at DESC, id DESC"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(patient.as_uuid())
            .bind(session)
            .fetch_all(c)
            .await?
    }))
}

/// Writes the entry's state back (text, sharing, first read), for the patient's own entry only.
pub async fn save_own(tx: &mut Tx, clinic: ClinicId, patient: PatientId, row: &EntryRow) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE journal_entries SET body = $1, updated_at = $2, shared_at = $3 \
             WHERE clinic_id = $4 AND patient_id = $5 AND id = $6",
        )
        .bind(&row.body)
        .bind(row.updated_at)
        .bind(row.shared_at)
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .bind(row.id)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// Deletes the patient's own private entry. `false` when there is none.
pub async fn delete_own_private(tx: &mut Tx, clinic: ClinicId, patient: PatientId, id: Uuid) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "DELETE FROM journal_entries WHERE clinic_id = $1 AND patient_id = $2 AND id = $3 AND shared_at IS NULL",
        )
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .bind(id)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// A shared entry of the clinic (never a private one), in a write transaction.
pub async fn shared_in(tx: &mut Tx, clinic: ClinicId, id: Uuid) -> Result<Option<EntryRow>> {
    let sql =
        format!("SELECT {COLUMNS} FROM journal_entries WHERE clinic_id = $1 AND id = $2 AND shared_at IS NOT NULL");
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).bind(id).fetch_optional(c).await?
    }))
}

/// Records the first read of a shared, unread entry. `false` when it was already read (or is no
/// longer shared).
pub async fn mark_read(tx: &mut Tx, clinic: ClinicId, id: Uuid, by: UserId, at: UtcTs) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE journal_entries SET first_read_by = $1, first_read_at = $2 \
             WHERE clinic_id = $3 AND id = $4 AND shared_at IS NOT NULL AND first_read_at IS NULL",
        )
        .bind(by.as_uuid())
        .bind(DbTs(at))
        .bind(clinic.as_uuid())
        .bind(id)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// Shared entries of the clinic not yet read by anyone on the care team, oldest share first.
pub async fn unread_shared(db: &Db, clinic: ClinicId) -> Result<Vec<EntryRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM journal_entries WHERE clinic_id = $1 AND shared_at IS NOT NULL \
         AND first_read_at IS NULL ORDER BY shared_at, id"
    );
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).fetch_all(c).await?))
}

/// A page of the unread shared entries, in the order they were shared, after `p.after`: those of
/// `p.filter.patient` when set, shared in the window `[from, to)` when set (the API's queue).
pub async fn unread_shared_page(db: &Db, p: &Page<'_>) -> Result<Vec<EntryRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM journal_entries WHERE clinic_id = $1 AND shared_at IS NOT NULL \
         AND first_read_at IS NULL AND ($2 IS NULL OR patient_id = $2) AND ($3 IS NULL OR shared_at >= $3) \
         AND ($4 IS NULL OR shared_at < $4) AND shared_at >= $5 AND (shared_at > $5 OR id > $6) \
         ORDER BY shared_at, id LIMIT $7"
    );
    keyset::fetch(db, sql, p, None).await
}

/// A patient's shared entries (never the private ones), newest first.
pub async fn shared_of_patient(db: &Db, clinic: ClinicId, patient: PatientId) -> Result<Vec<EntryRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM journal_entries WHERE clinic_id = $1 AND patient_id = $2 AND shared_at IS NOT NULL \
         ORDER BY written_at DESC, id DESC"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(patient.as_uuid())
            .fetch_all(c)
            .await?
    }))
}

/// How many shared entries of the clinic wait unread (no patient data: a number for the home page).
pub async fn count_unread_shared(db: &Db, clinic: ClinicId) -> Result<i64> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM journal_entries WHERE clinic_id = $1 AND shared_at IS NOT NULL \
             AND first_read_at IS NULL",
        )
        .bind(clinic.as_uuid())
        .fetch_one(c)
        .await?
    }))
}
