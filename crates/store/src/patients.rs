//! Patient records (identity part). Queries are always scoped by clinic.

use kapstone_domain::patient::{Mrn, NewPatient};
use kapstone_domain::{ClinicId, PatientId, UtcTs};
use sqlx::FromRow;
use time::Date;
use uuid::Uuid;

use crate::{Db, DbTs, Result, StoreError, Tx, on_read, on_tx};

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct PatientRow {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: Date,
    pub created_at: DbTs,
}

impl PatientRow {
    pub fn patient_id(&self) -> PatientId {
        PatientId::from_uuid(self.id)
    }
}

/// Inserts a patient and assigns the clinic's next MRN in the same transaction.
pub async fn insert(tx: &mut Tx, clinic: ClinicId, p: &NewPatient) -> Result<PatientRow> {
    let id = PatientId::new();
    let now = UtcTs::now();
    let n: i64 = on_tx!(tx, |c| {
        sqlx::query_scalar(
            "UPDATE clinics SET patient_counter = patient_counter + 1 WHERE id = $1 RETURNING patient_counter",
        )
        .bind(clinic.as_uuid())
        .fetch_one(c)
        .await?
    });
    let mrn = Mrn::for_sequence(u64::try_from(n).map_err(|_| StoreError::Corrupt("patient counter".into()))?);
    let row = PatientRow {
        id: id.as_uuid(),
        clinic_id: clinic.as_uuid(),
        mrn: mrn.as_str().to_owned(),
        given_name: p.given_name.as_str().to_owned(),
        family_name: p.family_name.as_str().to_owned(),
        birth_date: p.birth_date.date(),
        created_at: DbTs(now),
    };
    let r = &row;
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO patients (id, clinic_id, mrn, given_name, family_name, birth_date, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.id)
        .bind(r.clinic_id)
        .bind(&r.mrn)
        .bind(&r.given_name)
        .bind(&r.family_name)
        .bind(r.birth_date)
        .bind(r.created_at)
        .execute(c)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "mrn"))?;
    });
    Ok(row)
}

/// One patient, only if they belong to `clinic`.
pub async fn get(db: &Db, clinic: ClinicId, id: PatientId) -> Result<Option<PatientRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, clinic_id, mrn, given_name, family_name, birth_date, created_at FROM patients \
             WHERE id = $1 AND clinic_id = $2",
        )
        .bind(id.as_uuid())
        .bind(clinic.as_uuid())
        .fetch_optional(c)
        .await?
    }))
}

/// A page of the clinic's patients by family name, then given name.
pub async fn list(db: &Db, clinic: ClinicId, limit: i64, offset: i64) -> Result<Vec<PatientRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, clinic_id, mrn, given_name, family_name, birth_date, created_at FROM patients \
             WHERE clinic_id = $1 ORDER BY family_name, given_name, id LIMIT $2 OFFSET $3",
        )
        .bind(clinic.as_uuid())
        .bind(limit)
        .bind(offset)
        .fetch_all(c)
        .await?
    }))
}

pub async fn count(db: &Db, clinic: ClinicId) -> Result<i64> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM patients WHERE clinic_id = $1")
            .bind(clinic.as_uuid())
            .fetch_one(c)
            .await?
    }))
}

/// The id of the clinic's patient with this MRN.
pub async fn id_by_mrn(tx: &mut Tx, clinic: ClinicId, mrn: &Mrn) -> Result<Option<Uuid>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT id FROM patients WHERE clinic_id = $1 AND mrn = $2")
            .bind(clinic.as_uuid())
            .bind(mrn.as_str())
            .fetch_optional(c)
            .await?
    }))
}
