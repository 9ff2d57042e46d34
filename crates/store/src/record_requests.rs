//! Patients' requests for access to and amendment of their record (0020; KAP-SPEC 10,
//! TV-HIP-1/2). A row holds the request, its one extension, its answer and, for a denied
//! amendment, the statement of disagreement and the rebuttal. Every query names the clinic, and
//! the portal's queries name the patient too.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::keyset::{self, Page};
use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct RequestRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub kind: String,
    pub received_on: String,
    pub requested_by: Uuid,
    pub via: String,
    pub requested: Option<String>,
    pub extended_on: Option<String>,
    pub extension_reason: Option<String>,
    pub extended_until: Option<String>,
    pub answered_on: Option<String>,
    pub outcome: Option<String>,
    pub basis: Option<String>,
    pub records: Option<String>,
    pub answered_by: Option<Uuid>,
    pub disagreement_on: Option<String>,
    pub disagreement: Option<String>,
    pub rebuttal_on: Option<String>,
    pub rebuttal: Option<String>,
    pub rebuttal_by: Option<Uuid>,
    pub created_at: DbTs,
}

const COLUMNS: &str = "id, patient_id, kind, received_on, requested_by, via, requested, extended_on, extension_reason, \
     extended_until, answered_on, outcome, basis, records, answered_by, disagreement_on, disagreement, rebuttal_on, \
     rebuttal, rebuttal_by, created_at";

pub struct NewRequest<'a> {
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub kind: &'a str,
    pub received_on: &'a str,
    pub by: UserId,
    pub via: &'a str,
    pub requested: Option<&'a str>,
}

pub async fn insert(tx: &mut Tx, r: &NewRequest<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO record_requests (id, clinic_id, patient_id, kind, received_on, requested_by, via, requested, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(r.clinic.as_uuid())
        .bind(r.patient.as_uuid())
        .bind(r.kind)
        .bind(r.received_on)
        .bind(r.by.as_uuid())
        .bind(r.via)
        .bind(r.requested)
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// One request of the clinic, read in the transaction that changes it (locked on PostgreSQL).
pub async fn one_for_update(tx: &mut Tx, clinic: ClinicId, id: Uuid) -> Result<Option<RequestRow>> {
    Ok(match tx {
        crate::Tx::Sqlite(t) => {
            let sql = format!("SELECT {COLUMNS} FROM record_requests WHERE id = $1 AND clinic_id = $2");
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(clinic.as_uuid()).fetch_optional(&mut **t).await?
        }
        crate::Tx::Postgres(t) => {
            let sql = format!("SELECT {COLUMNS} FROM record_requests WHERE id = $1 AND clinic_id = $2 FOR UPDATE");
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(clinic.as_uuid()).fetch_optional(&mut **t).await?
        }
    })
}

pub async fn one(db: &Db, clinic: ClinicId, id: Uuid) -> Result<Option<RequestRow>> {
    let sql = format!("SELECT {COLUMNS} FROM record_requests WHERE id = $1 AND clinic_id = $2");
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(id).bind(clinic.as_uuid()).fetch_optional(c).await?
    }))
}

/// A patient's requests, newest first.
pub async fn of_patient(db: &Db, clinic: ClinicId, patient: PatientId) -> Result<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM record_requests WHERE clinic_id = $1 AND patient_id = $2 ORDER BY created_at DESC, id DESC"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(patient.as_uuid())
            .fetch_all(c)
            .await?
    }))
}

/// A page of a patient's requests (`p.filter.patient`, always set), newest first after `p.after`,
/// recorded in the window `[from, to)` when set (the API's lists, staff and portal).
pub async fn of_patient_page(db: &Db, p: &Page<'_>) -> Result<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM record_requests WHERE clinic_id = $1 AND patient_id = $2 \
         AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4) \
         AND created_at <= $5 AND (created_at < $5 OR id < $6) ORDER BY created_at DESC, id DESC LIMIT $7"
    );
    keyset::fetch(db, sql, p, None).await
}

/// The clinic's requests still to answer, plus denied amendments whose disagreement awaits a
/// rebuttal, oldest first.
pub async fn open(db: &Db, clinic: ClinicId) -> Result<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM record_requests WHERE clinic_id = $1 AND (answered_on IS NULL \
         OR (disagreement IS NOT NULL AND rebuttal IS NULL)) ORDER BY received_on, created_at, id"
    );
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).fetch_all(c).await?))
}

/// A page of the requests [`open`] lists, in the order they were recorded after `p.after`: those
/// of `p.filter.patient` when set, recorded in the window `[from, to)` when set (the API's list).
pub async fn open_page(db: &Db, p: &Page<'_>) -> Result<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM record_requests WHERE clinic_id = $1 AND (answered_on IS NULL \
         OR (disagreement IS NOT NULL AND rebuttal IS NULL)) AND ($2 IS NULL OR patient_id = $2) \
         AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4) \
         AND created_at >= $5 AND (created_at > $5 OR id > $6) ORDER BY created_at, id LIMIT $7"
    );
    keyset::fetch(db, sql, p, None).await
}

/// Writes the whole mutable state of a request (the use case has checked the step in the domain).
pub async fn save(tx: &mut Tx, clinic: ClinicId, r: &RequestRow) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE record_requests SET extended_on = $3, extension_reason = $4, extended_until = $5, answered_on = $6, \
             outcome = $7, basis = $8, records = $9, answered_by = $10, disagreement_on = $11, disagreement = $12, \
             rebuttal_on = $13, rebuttal = $14, rebuttal_by = $15 WHERE id = $1 AND clinic_id = $2",
        )
        .bind(r.id)
        .bind(clinic.as_uuid())
        .bind(&r.extended_on)
        .bind(&r.extension_reason)
        .bind(&r.extended_until)
        .bind(&r.answered_on)
        .bind(&r.outcome)
        .bind(&r.basis)
        .bind(&r.records)
        .bind(r.answered_by)
        .bind(&r.disagreement_on)
        .bind(&r.disagreement)
        .bind(&r.rebuttal_on)
        .bind(&r.rebuttal)
        .bind(r.rebuttal_by)
        .execute(c)
        .await?;
    });
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct ConsentRecord {
    pub id: Uuid,
    pub document_id: String,
    pub document_version: String,
    pub signed_at: DbTs,
    pub method: String,
    pub revoked_at: Option<DbTs>,
}

/// Every consent signature of a patient, oldest first (for the record-set export).
pub async fn consents_of_patient(db: &Db, patient: PatientId) -> Result<Vec<ConsentRecord>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, document_id, document_version, signed_at, method, revoked_at FROM consents \
             WHERE patient_id = $1 ORDER BY id",
        )
        .bind(patient.as_uuid())
        .fetch_all(c)
        .await?
    }))
}
