//! Scored questionnaire responses and the safety alerts they raise.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

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
