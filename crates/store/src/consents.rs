//! Signed consents. Rows are never edited except to record a revocation.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

pub struct NewConsent<'a> {
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub document_id: &'a str,
    pub document_version: &'a str,
    pub document_sha256: &'a str,
    pub signed_name: &'a str,
    pub signed_at: UtcTs,
    pub signed_ip: Option<&'a str>,
    pub paper: bool,
    pub recorded_by: UserId,
}

pub async fn insert(tx: &mut Tx, c: &NewConsent<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO consents (id, clinic_id, patient_id, document_id, document_version, document_sha256, signed_name, \
             signed_at, signed_ip, method, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(c.clinic.as_uuid())
        .bind(c.patient.as_uuid())
        .bind(c.document_id)
        .bind(c.document_version)
        .bind(c.document_sha256)
        .bind(c.signed_name)
        .bind(DbTs(c.signed_at))
        .bind(c.signed_ip)
        .bind(if c.paper { "paper" } else { "portal" })
        .bind(c.recorded_by.as_uuid())
        .execute(conn)
        .await?;
    });
    Ok(id)
}

#[derive(Debug, Clone, FromRow)]
pub struct ConsentRow {
    pub id: Uuid,
    pub document_id: String,
    pub document_version: String,
    pub signed_name: String,
    pub signed_at: DbTs,
    pub method: String,
    pub revoked_at: Option<DbTs>,
}

/// The most recently recorded signature of a document for a patient (ids are UUIDv7, so id order
/// is recording order: a paper consent recorded today outranks an earlier portal one withdrawn
/// today, whatever date is written on the paper).
pub async fn latest(db: &Db, patient: PatientId, document_id: &str) -> Result<Option<ConsentRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, document_id, document_version, signed_name, signed_at, method, revoked_at FROM consents \
             WHERE patient_id = $1 AND document_id = $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(patient.as_uuid())
        .bind(document_id)
        .fetch_optional(c)
        .await?
    }))
}

/// Records a revocation of a live consent of this patient; false when there is none.
pub async fn revoke(tx: &mut Tx, id: Uuid, patient: PatientId, by: UserId, reason: &str) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE consents SET revoked_at = $4, revoked_by = $3, revoke_reason = $5 \
             WHERE id = $1 AND patient_id = $2 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(patient.as_uuid())
        .bind(by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .bind(reason)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// The latest signature of each document for each patient: (patient, document, signed at,
/// revoked).
pub async fn latest_many(db: &Db, patients: &[Uuid]) -> Result<Vec<(Uuid, String, DbTs, bool)>> {
    if patients.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid, String, DbTs, Option<DbTs>)> = on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT k.patient_id, k.document_id, k.signed_at, k.revoked_at FROM consents k WHERE k.id = \
             (SELECT k2.id FROM consents k2 WHERE k2.patient_id = k.patient_id AND k2.document_id = k.document_id \
             ORDER BY k2.id DESC LIMIT 1) AND k.patient_id IN ",
        );
        crate::push_ids(&mut q, patients);
        q.build_query_as().fetch_all(c).await?
    });
    Ok(rows.into_iter().map(|(p, d, s, r)| (p, d, s, r.is_some())).collect())
}
