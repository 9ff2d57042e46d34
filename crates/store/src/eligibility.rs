//! The consultation record, signed eligibility decisions and pathway events. All three tables
//! are append-only (database triggers refuse UPDATE and DELETE): a consultation save is a new
//! version, a change to a decision is an amendment row, a hold is an event.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Db, DbTs, Result, StoreError, Tx, on_read, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct ConsultationRow {
    pub id: Uuid,
    pub version: i32,
    /// JSON of the domain's `ConsultationInput`.
    pub body: String,
    pub diagnosis_table_version: String,
    pub recorded_by: Uuid,
    pub recorded_at: DbTs,
}

/// Saves a new version of the patient's consultation. `base_version` is the version the writer
/// edited (`None`: take whatever is current); a stale base is a conflict, so two clinicians
/// saving at once cannot silently overwrite each other.
pub async fn save_consultation(
    tx: &mut Tx,
    clinic: ClinicId,
    patient: PatientId,
    base_version: Option<i32>,
    body: &str,
    diagnosis_table_version: &str,
    by: UserId,
) -> Result<(Uuid, i32)> {
    let id = Uuid::now_v7();
    tx.lock_patient(patient).await?;
    let version = on_tx!(tx, |c| {
        let current: Option<i32> = sqlx::query_scalar("SELECT MAX(version) FROM consultations WHERE patient_id = $1")
            .bind(patient.as_uuid())
            .fetch_one(&mut *c)
            .await?;
        if let Some(base) = base_version
            && current.unwrap_or(0) != base
        {
            return Err(StoreError::Conflict("consultation version"));
        }
        let version = current.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO consultations (id, clinic_id, patient_id, version, body, diagnosis_table_version, recorded_by, \
             recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .bind(version)
        .bind(body)
        .bind(diagnosis_table_version)
        .bind(by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .execute(&mut *c)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "consultation version"))?;
        version
    });
    Ok((id, version))
}

/// The patient's newest consultation version: [`latest_consultation`] and its `_in` twin.
const LATEST_CONSULTATION: &str = "SELECT id, version, body, diagnosis_table_version, recorded_by, recorded_at \
     FROM consultations WHERE patient_id = $1 ORDER BY version DESC LIMIT 1";

/// [`latest_consultation`] inside `tx` (the version just saved, before its commit).
pub async fn latest_consultation_in(tx: &mut Tx, patient: PatientId) -> Result<Option<ConsultationRow>> {
    Ok(on_tx!(tx, |c| sqlx::query_as(LATEST_CONSULTATION).bind(patient.as_uuid()).fetch_optional(c).await?))
}

pub async fn latest_consultation(db: &Db, patient: PatientId) -> Result<Option<ConsultationRow>> {
    Ok(on_read!(db, |c| sqlx::query_as(LATEST_CONSULTATION).bind(patient.as_uuid()).fetch_optional(c).await?))
}

pub struct NewDecision<'a> {
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub verdict: &'a str,
    /// JSON array of route choices.
    pub routes: &'a str,
    pub spravato_indication: Option<&'a str>,
    /// JSON array of dispositions.
    pub dispositions: &'a str,
    pub summary: &'a str,
    pub ruleset_version: &'a str,
    pub settings_version: i64,
    pub outcome: &'a str,
    /// JSON of the evaluation's findings.
    pub findings: &'a str,
    /// JSON of every input the rules read.
    pub input_snapshot: &'a str,
    pub input_sha256: &'a str,
    pub signed_by: UserId,
    /// The decision this one amends, with the reason.
    pub amends: Option<(Uuid, &'a str)>,
    /// The record versions the evaluation read, checked again under the lock.
    pub reviewed: Reviewed,
}

/// The versions of the record an evaluation read: the consultation version and the C-SSRS
/// screener response (`settings_version` of [`NewDecision`] is the third). A decision is stored
/// only if they are still current when it is written, so a save that lands between the
/// evaluation and the signature is never signed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reviewed {
    pub consultation_version: Option<i32>,
    pub cssrs_response: Option<Uuid>,
}

#[derive(Debug, Clone, FromRow)]
pub struct DecisionRow {
    pub id: Uuid,
    pub verdict: String,
    pub routes: String,
    pub spravato_indication: Option<String>,
    pub dispositions: String,
    pub summary: String,
    pub ruleset_version: String,
    pub settings_version: i64,
    pub outcome: String,
    pub findings: String,
    pub input_sha256: String,
    pub signed_by: Uuid,
    pub signed_at: DbTs,
    pub amends_id: Option<Uuid>,
    pub amendment_reason: Option<String>,
}

/// Signs a decision. The first decision for a patient must not amend anything, and a patient
/// can have only one unamended first decision; an amendment must name the current decision.
/// Both are checked here, inside the transaction, and the `UNIQUE (amends_id)` constraint
/// settles a race between two amendments. A record that changed since the evaluation
/// ([`Reviewed`]) is `Conflict("input_sha256")`. (A settings change racing a signature is
/// caught by the input hash checked just before.)
pub async fn sign_decision(tx: &mut Tx, d: &NewDecision<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let (amends, reason) = match d.amends {
        Some((a, r)) => (Some(a), Some(r)),
        None => (None, None),
    };
    tx.lock_patient(d.patient).await?;
    on_tx!(tx, |c| {
        let consultation_version: Option<i32> =
            sqlx::query_scalar("SELECT MAX(version) FROM consultations WHERE patient_id = $1")
                .bind(d.patient.as_uuid())
                .fetch_one(&mut *c)
                .await?;
        let cssrs_response: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM questionnaire_responses WHERE patient_id = $1 AND instrument = 'cssrs_screener' \
             ORDER BY submitted_at DESC, id DESC LIMIT 1",
        )
        .bind(d.patient.as_uuid())
        .fetch_optional(&mut *c)
        .await?;
        if (Reviewed { consultation_version, cssrs_response }) != d.reviewed {
            return Err(StoreError::Conflict("input_sha256"));
        }
        let current: Option<Uuid> = sqlx::query_scalar(
            "SELECT d.id FROM eligibility_decisions d WHERE d.patient_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM eligibility_decisions a WHERE a.amends_id = d.id) ORDER BY d.signed_at DESC, d.id DESC LIMIT 1",
        )
        .bind(d.patient.as_uuid())
        .fetch_optional(&mut *c)
        .await?;
        if current != amends {
            return Err(StoreError::Conflict("eligibility decision"));
        }
        sqlx::query(
            "INSERT INTO eligibility_decisions (id, clinic_id, patient_id, verdict, routes, spravato_indication, \
             dispositions, summary, ruleset_version, settings_version, outcome, findings, input_snapshot, input_sha256, \
             signed_by, signed_at, amends_id, amendment_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(id)
        .bind(d.clinic.as_uuid())
        .bind(d.patient.as_uuid())
        .bind(d.verdict)
        .bind(d.routes)
        .bind(d.spravato_indication)
        .bind(d.dispositions)
        .bind(d.summary)
        .bind(d.ruleset_version)
        .bind(d.settings_version)
        .bind(d.outcome)
        .bind(d.findings)
        .bind(d.input_snapshot)
        .bind(d.input_sha256)
        .bind(d.signed_by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .bind(amends)
        .bind(reason)
        .execute(&mut *c)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "eligibility decision"))?;
    });
    Ok(id)
}

const DECISION_COLUMNS: &str = "id, verdict, routes, spravato_indication, dispositions, summary, ruleset_version, \
     settings_version, outcome, findings, input_sha256, signed_by, signed_at, amends_id, amendment_reason";

/// Every decision for a patient, newest first; the first is the one in force.
pub async fn decisions(db: &Db, patient: PatientId) -> Result<Vec<DecisionRow>> {
    let sql = format!(
        "SELECT {DECISION_COLUMNS} FROM eligibility_decisions WHERE patient_id = $1 ORDER BY signed_at DESC, id DESC"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(patient.as_uuid()).fetch_all(c).await?
    }))
}

/// One decision of `patient` inside `tx` (the one just signed, before its commit).
pub async fn decision_in(tx: &mut Tx, patient: PatientId, id: Uuid) -> Result<Option<DecisionRow>> {
    let sql = format!("SELECT {DECISION_COLUMNS} FROM eligibility_decisions WHERE id = $1 AND patient_id = $2");
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(id).bind(patient.as_uuid()).fetch_optional(c).await?
    }))
}

/// The stored input snapshot of one decision (large; read only when asked for).
pub async fn decision_snapshot(db: &Db, patient: PatientId, id: Uuid) -> Result<Option<String>> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar("SELECT input_snapshot FROM eligibility_decisions WHERE id = $1 AND patient_id = $2")
            .bind(id)
            .bind(patient.as_uuid())
            .fetch_optional(c)
            .await?
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct PathwayEventRow {
    pub id: Uuid,
    pub event: String,
    pub reason: String,
    pub recorded_by: Uuid,
    pub recorded_at: DbTs,
}

pub async fn record_pathway_event(
    tx: &mut Tx,
    clinic: ClinicId,
    patient: PatientId,
    event: &str,
    reason: &str,
    by: UserId,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO pathway_events (id, clinic_id, patient_id, event, reason, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .bind(event)
        .bind(reason)
        .bind(by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// A patient's pathway events in the order they were recorded.
pub async fn pathway_events(db: &Db, patient: PatientId) -> Result<Vec<PathwayEventRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, event, reason, recorded_by, recorded_at FROM pathway_events WHERE patient_id = $1 ORDER BY id",
        )
        .bind(patient.as_uuid())
        .fetch_all(c)
        .await?
    }))
}

/// The same for reading inside a write transaction (to check a transition against the latest
/// state under the write lock).
pub async fn pathway_events_in(tx: &mut Tx, patient: PatientId) -> Result<Vec<String>> {
    tx.lock_patient(patient).await?;
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT event FROM pathway_events WHERE patient_id = $1 ORDER BY id")
            .bind(patient.as_uuid())
            .fetch_all(c)
            .await?
    }))
}

/// What the pathway stage of a page of patients needs, in a fixed number of queries.
#[derive(Debug, Clone, Default)]
pub struct PathwayInputs {
    /// (patient, latest consultation body)
    pub consultations: Vec<(Uuid, String)>,
    /// (patient, verdict, routes JSON, input hash) of the decision in force
    pub decisions: Vec<(Uuid, String, String, String)>,
    /// (patient, event) in recording order
    pub events: Vec<(Uuid, String)>,
}

const DECISIONS_IN_FORCE: &str = "SELECT d.patient_id, d.verdict, d.routes, d.input_sha256 FROM eligibility_decisions d \
     WHERE NOT EXISTS (SELECT 1 FROM eligibility_decisions a WHERE a.amends_id = d.id) AND d.patient_id IN ";

pub async fn pathway_inputs(db: &Db, patients: &[Uuid]) -> Result<PathwayInputs> {
    if patients.is_empty() {
        return Ok(PathwayInputs::default());
    }
    let consultations = on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT k.patient_id, k.body FROM consultations k WHERE k.version = (SELECT MAX(k2.version) \
             FROM consultations k2 WHERE k2.patient_id = k.patient_id) AND k.patient_id IN ",
        );
        crate::push_ids(&mut q, patients);
        q.build_query_as().fetch_all(c).await?
    });
    let decisions = on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(DECISIONS_IN_FORCE);
        crate::push_ids(&mut q, patients);
        q.build_query_as().fetch_all(c).await?
    });
    let events = on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new("SELECT patient_id, event FROM pathway_events WHERE patient_id IN ");
        crate::push_ids(&mut q, patients);
        q.push(" ORDER BY id");
        q.build_query_as().fetch_all(c).await?
    });
    Ok(PathwayInputs { consultations, decisions, events })
}
