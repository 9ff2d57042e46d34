//! Scored questionnaire responses and the safety alerts they raise.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::keyset::{self, Page};
use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

pub struct NewResponse<'a> {
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub instrument: &'a str,
    pub instrument_version: &'a str,
    /// The answers as submitted, JSON.
    pub answers: &'a str,
    pub total: Option<i32>,
    pub severity: Option<&'a str>,
    /// The full scored result, JSON (clusters, risk, flags).
    pub result: &'a str,
    pub entered_by: UserId,
    pub via_portal: bool,
}

pub async fn insert(tx: &mut Tx, r: &NewResponse<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO questionnaire_responses (id, clinic_id, patient_id, instrument, instrument_version, answers, \
             total, severity, result, entered_by, entered_via, submitted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(id)
        .bind(r.clinic.as_uuid())
        .bind(r.patient.as_uuid())
        .bind(r.instrument)
        .bind(r.instrument_version)
        .bind(r.answers)
        .bind(r.total)
        .bind(r.severity)
        .bind(r.result)
        .bind(r.entered_by.as_uuid())
        .bind(if r.via_portal { "portal" } else { "staff" })
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?;
    });
    Ok(id)
}

#[derive(Debug, Clone, FromRow)]
pub struct AlertRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub response_id: Uuid,
    pub level: String,
    pub reason: String,
    pub raised_at: DbTs,
    pub acknowledged_by: Option<Uuid>,
    pub acknowledged_at: Option<DbTs>,
    pub action_taken: Option<String>,
}

pub async fn raise_alert(
    tx: &mut Tx,
    clinic: ClinicId,
    patient: PatientId,
    response: Uuid,
    level: &str,
    reason: &str,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO safety_alerts (id, clinic_id, patient_id, response_id, level, reason, raised_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .bind(response)
        .bind(level)
        .bind(reason)
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// Open alerts of a clinic, oldest first (the longest-waiting is the most urgent to see).
pub async fn open_alerts(db: &Db, clinic: ClinicId) -> Result<Vec<AlertRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, patient_id, response_id, level, reason, raised_at, acknowledged_by, acknowledged_at, action_taken \
             FROM safety_alerts WHERE clinic_id = $1 AND acknowledged_at IS NULL ORDER BY raised_at, id",
        )
        .bind(clinic.as_uuid())
        .fetch_all(c)
        .await?
    }))
}

/// A page of the clinic's open alerts, oldest first after `p.after`: those of `p.filter.patient` when set,
/// raised in the window `[from, to)` when set (the API's list).
pub async fn open_alerts_page(db: &Db, p: &Page<'_>) -> Result<Vec<AlertRow>> {
    let sql = "SELECT id, patient_id, response_id, level, reason, raised_at, acknowledged_by, acknowledged_at, \
               action_taken FROM safety_alerts WHERE clinic_id = $1 AND acknowledged_at IS NULL \
               AND ($2 IS NULL OR patient_id = $2) AND ($3 IS NULL OR raised_at >= $3) AND ($4 IS NULL OR raised_at < $4) \
               AND raised_at >= $5 AND (raised_at > $5 OR id > $6) ORDER BY raised_at, id LIMIT $7";
    keyset::fetch(db, sql.to_owned(), p, None).await
}

/// Acknowledges an open alert; false when there is no such open alert in this clinic.
pub async fn acknowledge(
    tx: &mut Tx,
    clinic: ClinicId,
    id: Uuid,
    by: UserId,
    action_taken: &str,
) -> Result<Option<Uuid>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar(
            "UPDATE safety_alerts SET acknowledged_by = $3, acknowledged_at = $4, action_taken = $5 \
             WHERE id = $1 AND clinic_id = $2 AND acknowledged_at IS NULL RETURNING patient_id",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .bind(action_taken)
        .fetch_optional(c)
        .await?
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct AssignmentRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub instrument: String,
    pub assigned_at: DbTs,
    pub completed_at: Option<DbTs>,
}

pub async fn assign(tx: &mut Tx, clinic: ClinicId, patient: PatientId, instrument: &str, by: UserId) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO questionnaire_assignments (id, clinic_id, patient_id, instrument, assigned_by, assigned_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .bind(instrument)
        .bind(by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// Open (not yet completed) assignments of one patient, oldest first: [`open_assignments`] and
/// [`open_assignments_in`] read the same rows.
const OPEN_ASSIGNMENTS: &str = "SELECT id, patient_id, instrument, assigned_at, completed_at FROM \
     questionnaire_assignments WHERE patient_id = $1 AND completed_at IS NULL ORDER BY assigned_at, id";

/// Open (not yet completed) assignments of one patient, oldest first.
pub async fn open_assignments(db: &Db, patient: PatientId) -> Result<Vec<AssignmentRow>> {
    Ok(on_read!(db, |c| sqlx::query_as(OPEN_ASSIGNMENTS).bind(patient.as_uuid()).fetch_all(c).await?))
}

/// [`open_assignments`] inside `tx` (a booking about to assign the pre-session questionnaires sees
/// those its own transaction assigned).
pub async fn open_assignments_in(tx: &mut Tx, patient: PatientId) -> Result<Vec<AssignmentRow>> {
    Ok(on_tx!(tx, |c| sqlx::query_as(OPEN_ASSIGNMENTS).bind(patient.as_uuid()).fetch_all(c).await?))
}

/// Marks an open assignment of `patient` complete with its response; false when there is none.
pub async fn complete_assignment(
    tx: &mut Tx,
    id: Uuid,
    patient: PatientId,
    instrument: &str,
    response: Uuid,
) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE questionnaire_assignments SET response_id = $4, completed_at = $5 \
             WHERE id = $1 AND patient_id = $2 AND instrument = $3 AND completed_at IS NULL",
        )
        .bind(id)
        .bind(patient.as_uuid())
        .bind(instrument)
        .bind(response)
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct ResponseSummary {
    pub id: Uuid,
    pub instrument: String,
    pub total: Option<i32>,
    pub severity: Option<String>,
    pub result: String,
    pub entered_via: String,
    pub submitted_at: DbTs,
}

/// A patient's most recent responses, newest first.
pub async fn recent_responses(db: &Db, patient: PatientId, limit: i64) -> Result<Vec<ResponseSummary>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, instrument, total, severity, result, entered_via, submitted_at FROM questionnaire_responses \
             WHERE patient_id = $1 ORDER BY submitted_at DESC, id DESC LIMIT $2",
        )
        .bind(patient.as_uuid())
        .bind(limit)
        .fetch_all(c)
        .await?
    }))
}

/// The newest response of each instrument for a patient (what the pathway gate and the
/// eligibility rules read).
pub async fn latest_per_instrument(db: &Db, patient: PatientId) -> Result<Vec<ResponseSummary>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, instrument, total, severity, result, entered_via, submitted_at FROM questionnaire_responses q \
             WHERE patient_id = $1 AND id = (SELECT q2.id FROM questionnaire_responses q2 WHERE q2.patient_id = q.patient_id \
             AND q2.instrument = q.instrument ORDER BY q2.submitted_at DESC, q2.id DESC LIMIT 1) ORDER BY instrument",
        )
        .bind(patient.as_uuid())
        .fetch_all(c)
        .await?
    }))
}

/// (patient, instrument) for every instrument each patient has at least one response for.
pub async fn instruments_done(db: &Db, patients: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
    if patients.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT DISTINCT patient_id, instrument FROM questionnaire_responses WHERE patient_id IN ",
        );
        crate::push_ids(&mut q, patients);
        q.build_query_as().fetch_all(c).await?
    }))
}
