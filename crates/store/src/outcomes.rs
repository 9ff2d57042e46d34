//! Measured outcomes (issue 7): a patient's scored totals and dosing times for the outcome chart,
//! the course reviews, and the clinic dashboard's figures. The dashboard aggregates in SQL: every
//! query returns a handful of grouped rows whatever the number of patients (the baseline and
//! follow-up of each patient are one index probe each on `questionnaire_responses_outcomes`).

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

/// A scored total: (instrument, when, total).
pub type ScoreRow = (String, DbTs, i32);

/// Every scored total of the outcome instruments (PHQ-9, GAD-7, PCL-5) of a patient, oldest first.
pub async fn scores_of(db: &Db, clinic: ClinicId, patient: PatientId) -> Result<Vec<ScoreRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT instrument, submitted_at, total FROM questionnaire_responses \
             WHERE clinic_id = $1 AND patient_id = $2 AND instrument IN ('phq9', 'gad7', 'pcl5') AND total IS NOT NULL \
             ORDER BY submitted_at, id",
        )
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .fetch_all(c)
        .await?
    }))
}

/// A dosing session that got as far as the dose: (session, dose started, protocol).
pub type DoseRow = (Uuid, DbTs, String);

/// The doses of a patient, oldest first (the first is the first dose; all are chart markers).
pub async fn doses_of(db: &Db, clinic: ClinicId, patient: PatientId) -> Result<Vec<DoseRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, dose_started_at, protocol_id FROM dosing_sessions \
             WHERE clinic_id = $1 AND patient_id = $2 AND dose_started_at IS NOT NULL ORDER BY dose_started_at, id",
        )
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .fetch_all(c)
        .await?
    }))
}

// ---------------------------------------------------------------------------------------------
// Course reviews.

pub struct NewReview<'a> {
    pub clinic: ClinicId,
    pub course: Uuid,
    pub patient: PatientId,
    pub decision: &'a str,
    /// The course options after the review, JSON.
    pub options: &'a str,
    pub reason: &'a str,
    pub next_review_due: Option<&'a str>,
    /// The outcome summary shown to the prescriber, JSON.
    pub outcome_summary: &'a str,
    pub settings_version: i64,
    pub by: UserId,
}

#[derive(Debug, Clone, FromRow)]
pub struct ReviewRow {
    pub id: Uuid,
    pub course_id: Uuid,
    pub decision: String,
    pub options: String,
    pub reason: String,
    pub next_review_due: Option<String>,
    pub outcome_summary: String,
    pub settings_version: i64,
    pub reviewed_by: Uuid,
    pub reviewed_at: DbTs,
}

/// Records the review and moves the course on (status and options) in the same transaction.
/// `None` when the course is no longer active (another review got there first).
pub async fn record_review(tx: &mut Tx, r: &NewReview<'_>, status: &str) -> Result<Option<Uuid>> {
    let id = Uuid::now_v7();
    Ok(on_tx!(tx, |c| {
        let n = sqlx::query(
            "UPDATE treatment_courses SET status = $3, options = $4 WHERE id = $1 AND clinic_id = $2 AND status = 'active'",
        )
        .bind(r.course)
        .bind(r.clinic.as_uuid())
        .bind(status)
        .bind(r.options)
        .execute(&mut *c)
        .await?
        .rows_affected();
        if n != 1 {
            None
        } else {
            sqlx::query(
                "INSERT INTO course_reviews (id, clinic_id, course_id, patient_id, decision, options, reason, \
                 next_review_due, outcome_summary, settings_version, reviewed_by, reviewed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(id)
            .bind(r.clinic.as_uuid())
            .bind(r.course)
            .bind(r.patient.as_uuid())
            .bind(r.decision)
            .bind(r.options)
            .bind(r.reason)
            .bind(r.next_review_due)
            .bind(r.outcome_summary)
            .bind(r.settings_version)
            .bind(r.by.as_uuid())
            .bind(DbTs(UtcTs::now()))
            .execute(&mut *c)
            .await?;
            Some(id)
        }
    }))
}

/// The reviews of a course, oldest first.
pub async fn reviews_of_course(db: &Db, clinic: ClinicId, course: Uuid) -> Result<Vec<ReviewRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, course_id, decision, options, reason, next_review_due, outcome_summary, settings_version, \
             reviewed_by, reviewed_at FROM course_reviews WHERE clinic_id = $1 AND course_id = $2 \
             ORDER BY reviewed_at, id",
        )
        .bind(clinic.as_uuid())
        .bind(course)
        .fetch_all(c)
        .await?
    }))
}

/// One review inside `tx` (the one just recorded, before its commit).
pub async fn review_in(tx: &mut Tx, clinic: ClinicId, id: Uuid) -> Result<Option<ReviewRow>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT id, course_id, decision, options, reason, next_review_due, outcome_summary, settings_version, \
             reviewed_by, reviewed_at FROM course_reviews WHERE clinic_id = $1 AND id = $2",
        )
        .bind(clinic.as_uuid())
        .bind(id)
        .fetch_optional(c)
        .await?
    }))
}

/// The course's booked appointments that start after `after` (what a stop cancels).
pub async fn future_bookings_of_course(tx: &mut Tx, course: Uuid, after: UtcTs) -> Result<Vec<Uuid>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar(
            "SELECT id FROM appointments WHERE course_id = $1 AND status = 'booked' AND start_at > $2 ORDER BY start_at",
        )
        .bind(course)
        .bind(DbTs(after))
        .fetch_all(c)
        .await?
    }))
}

// ---------------------------------------------------------------------------------------------
// The clinic dashboard.

/// The dashboard's filter: `[from, to)` and optionally one location.
#[derive(Debug, Clone, Copy)]
pub struct Period {
    pub clinic: ClinicId,
    pub from: UtcTs,
    pub to: UtcTs,
    pub location: Option<Uuid>,
}

/// `AND EXISTS (an appointment of the patient at the location)` when a location is chosen; the
/// location is always bound as `$n`.
fn patient_at_location(patient_col: &str, n: u8, on: bool) -> String {
    if on {
        format!(
            " AND EXISTS (SELECT 1 FROM appointments la WHERE la.patient_id = {patient_col} AND la.location_id = ${n})"
        )
    } else {
        String::new()
    }
}

/// Patients of the clinic by pathway stage (one row per stage).
///
/// The stage is the pathway's (KAP-SPEC 2.1) as far as stored rows tell it (the view
/// `patient_stage_now`: the latest side state, an active course, the latest signed decision, a
/// consultation, else referral). Database triggers keep it per patient in `patient_stages` as
/// those rows are written, so this is one index read whatever the number of patients; computing
/// it here took four lookups per patient (~300 ms at 100,000 patients on either engine).
pub async fn patients_by_stage(db: &Db, p: &Period) -> Result<Vec<(String, i64)>> {
    let sql = format!(
        "SELECT s.stage, COUNT(*) FROM patient_stages s WHERE s.clinic_id = $1{} GROUP BY s.stage ORDER BY s.stage",
        patient_at_location("s.patient_id", 2, p.location.is_some())
    );
    Ok(on_read!(db, |c| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(p.clinic.as_uuid());
        if let Some(l) = p.location {
            q = q.bind(l);
        }
        q.fetch_all(c).await?
    }))
}

fn location_filter(col: &str, n: u8, on: bool) -> String {
    if on { format!(" AND {col} = ${n}") } else { String::new() }
}

/// Doses given in the period, per protocol: (protocol, sessions).
pub async fn sessions_held(db: &Db, p: &Period) -> Result<Vec<(String, i64)>> {
    let sql = format!(
        "SELECT d.protocol_id, COUNT(*) FROM dosing_sessions d \
         WHERE d.clinic_id = $1 AND d.dose_started_at >= $2 AND d.dose_started_at < $3{} \
         GROUP BY d.protocol_id ORDER BY d.protocol_id",
        location_filter("d.location_id", 4, p.location.is_some())
    );
    Ok(on_read!(db, |c| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(p.clinic.as_uuid())
            .bind(DbTs(p.from))
            .bind(DbTs(p.to));
        if let Some(l) = p.location {
            q = q.bind(l);
        }
        q.fetch_all(c).await?
    }))
}

/// (instrument: 0 for the first asked, 1 for the second; protocol, baseline, follow-up, patients)
/// grouped: the end-of-induction pairs.
pub type PairCount = (i32, String, i32, i32, i64);

/// The end-of-induction pairs of two instruments, counted by (instrument, protocol, baseline,
/// follow-up): the cohort is the patients whose first dose falls in the period (at the location,
/// when chosen); the protocol is that of the first session (its route comes from the protocol).
/// The baseline is the first (`intake_baseline`) or the last score before the first dose; the
/// follow-up is the last score from the first dose up to the end of induction, which is the
/// patient's first course review when one is recorded, else the end of the period.
///
/// The cohort is read once for both instruments: each patient's first dose from the index on
/// (clinic, patient, dose time) alone, then per patient of the cohort one index probe for the
/// protocol, one for the review and one for each score.
pub async fn end_of_induction_pairs(
    db: &Db,
    p: &Period,
    instruments: [&str; 2],
    intake_baseline: bool,
) -> Result<Vec<PairCount>> {
    let order = if intake_baseline { "ASC" } else { "DESC" };
    let score = |n: u8, baseline: bool| {
        if baseline {
            format!(
                "(SELECT q.total FROM questionnaire_responses q WHERE q.patient_id = c.patient_id AND q.instrument = ${n} \
                 AND q.total IS NOT NULL AND q.submitted_at < c.first_dose ORDER BY q.submitted_at {order} LIMIT 1)"
            )
        } else {
            format!(
                "(SELECT q.total FROM questionnaire_responses q WHERE q.patient_id = c.patient_id AND q.instrument = ${n} \
                 AND q.total IS NOT NULL AND q.submitted_at >= c.first_dose AND q.submitted_at <= c.cutoff \
                 ORDER BY q.submitted_at DESC LIMIT 1)"
            )
        }
    };
    let sql = format!(
        "WITH firsts AS MATERIALIZED ( \
           SELECT d.patient_id, MIN(d.dose_started_at) AS first_dose FROM dosing_sessions d \
           WHERE d.clinic_id = $1 AND d.dose_started_at IS NOT NULL GROUP BY d.patient_id \
           HAVING MIN(d.dose_started_at) >= $2 AND MIN(d.dose_started_at) < $3 \
         ), cohort AS MATERIALIZED ( \
           SELECT f.patient_id, f.first_dose, \
             (SELECT MIN(d.protocol_id) FROM dosing_sessions d WHERE d.clinic_id = $1 AND d.patient_id = f.patient_id \
              AND d.dose_started_at = f.first_dose{loc}) AS protocol_id, \
             COALESCE((SELECT MIN(r.reviewed_at) FROM course_reviews r WHERE r.patient_id = f.patient_id \
                       AND r.reviewed_at >= f.first_dose), $3) AS cutoff \
           FROM firsts f \
         ), pairs AS MATERIALIZED ( \
           SELECT c.protocol_id, {b1} AS b1, {f1} AS f1, {b2} AS b2, {f2} AS f2 FROM cohort c \
           WHERE c.protocol_id IS NOT NULL \
         ) \
         SELECT 0, protocol_id, b1, f1, COUNT(*) FROM pairs WHERE b1 IS NOT NULL AND f1 IS NOT NULL \
         GROUP BY protocol_id, b1, f1 \
         UNION ALL \
         SELECT 1, protocol_id, b2, f2, COUNT(*) FROM pairs WHERE b2 IS NOT NULL AND f2 IS NOT NULL \
         GROUP BY protocol_id, b2, f2 \
         ORDER BY 1, 2",
        loc = location_filter("d.location_id", 6, p.location.is_some()),
        b1 = score(4, true),
        f1 = score(4, false),
        b2 = score(5, true),
        f2 = score(5, false),
    );
    Ok(on_read!(db, |c| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(p.clinic.as_uuid())
            .bind(DbTs(p.from))
            .bind(DbTs(p.to))
            .bind(instruments[0])
            .bind(instruments[1]);
        if let Some(l) = p.location {
            q = q.bind(l);
        }
        q.fetch_all(c).await?
    }))
}

/// Open (unacknowledged) safety alerts of the clinic's patients (of the location's, when chosen).
pub async fn open_alerts(db: &Db, p: &Period) -> Result<i64> {
    let sql = format!(
        "SELECT COUNT(*) FROM safety_alerts s WHERE s.clinic_id = $1 AND s.acknowledged_at IS NULL{}",
        patient_at_location("s.patient_id", 2, p.location.is_some())
    );
    Ok(on_read!(db, |c| {
        let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).bind(p.clinic.as_uuid());
        if let Some(l) = p.location {
            q = q.bind(l);
        }
        q.fetch_one(c).await?
    }))
}

/// Measures overdue now: questionnaires the cadence job assigned for an active course (KAP-SPEC
/// 7.10) whose due time has passed and which the patient has not answered. The job assigns every
/// measure before it is due, so an overdue one is always among these rows.
pub async fn overdue_measures(db: &Db, p: &Period, now: UtcTs) -> Result<i64> {
    let sql = format!(
        "SELECT COUNT(*) FROM measure_assignments m \
         JOIN questionnaire_assignments a ON a.id = m.assignment_id \
         JOIN treatment_courses t ON t.id = m.course_id \
         WHERE m.clinic_id = $1 AND m.due_by < $2 AND a.completed_at IS NULL AND t.status = 'active'{}",
        patient_at_location("m.patient_id", 3, p.location.is_some())
    );
    Ok(on_read!(db, |c| {
        let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).bind(p.clinic.as_uuid()).bind(DbTs(now));
        if let Some(l) = p.location {
            q = q.bind(l);
        }
        q.fetch_one(c).await?
    }))
}

/// REMS Patient Monitoring Forms owed: finished sessions of `protocol` with no submission,
/// (owed, of which overdue: dose before `overdue_before`).
pub async fn rems_forms_owed(db: &Db, p: &Period, protocol: &str, overdue_before: UtcTs) -> Result<(i64, i64)> {
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN d.dose_started_at < $3 THEN 1 ELSE 0 END), 0) FROM dosing_sessions d \
         WHERE d.clinic_id = $1 AND d.protocol_id = $2 AND d.dose_started_at IS NOT NULL \
         AND d.state IN ('discharged', 'aborted') \
         AND NOT EXISTS (SELECT 1 FROM rems_form_submissions r WHERE r.session_id = d.id){}",
        location_filter("d.location_id", 4, p.location.is_some())
    );
    Ok(on_read!(db, |c| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(p.clinic.as_uuid())
            .bind(protocol)
            .bind(DbTs(overdue_before));
        if let Some(l) = p.location {
            q = q.bind(l);
        }
        q.fetch_one(c).await?
    }))
}

// ---------------------------------------------------------------------------------------------
// Demo and benchmark history.

/// A scored response written with its own time (demo history and benchmark seeding only; the
/// application's path is `questionnaires::insert`, which stamps the present).
#[allow(clippy::too_many_arguments)]
pub async fn insert_past_response(
    tx: &mut Tx,
    clinic: ClinicId,
    patient: PatientId,
    instrument: &str,
    answers: &str,
    total: i32,
    severity: Option<&str>,
    by: UserId,
    at: UtcTs,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO questionnaire_responses (id, clinic_id, patient_id, instrument, instrument_version, answers, \
             total, severity, result, entered_by, entered_via, submitted_at) \
             VALUES ($1, $2, $3, $4, '1', $5, $6, $7, '{}', $8, 'staff', $9)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .bind(instrument)
        .bind(answers)
        .bind(total)
        .bind(severity)
        .bind(by.as_uuid())
        .bind(DbTs(at))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// A finished dosing session in the past with its completed appointment (demo history and
/// benchmark seeding only: a real session is opened and recorded event by event).
pub struct PastSession<'a> {
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub type_id: Uuid,
    pub location: Uuid,
    pub course: Option<Uuid>,
    pub protocol_id: &'a str,
    pub protocol_version: &'a str,
    pub start: UtcTs,
    pub minutes: i64,
    pub by: UserId,
}

pub async fn insert_past_session(tx: &mut Tx, s: &PastSession<'_>) -> Result<Uuid> {
    let appointment = Uuid::now_v7();
    let id = Uuid::now_v7();
    let end = UtcTs::from_unix_micros(s.start.unix_micros() + s.minutes * 60_000_000);
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO appointments (id, clinic_id, patient_id, type_id, location_id, start_at, end_at, status, \
             created_by, created_at, course_id) VALUES ($1, $2, $3, $4, $5, $6, $7, 'completed', $8, $6, $9)",
        )
        .bind(appointment)
        .bind(s.clinic.as_uuid())
        .bind(s.patient.as_uuid())
        .bind(s.type_id)
        .bind(s.location)
        .bind(DbTs(s.start))
        .bind(DbTs(end))
        .bind(s.by.as_uuid())
        .bind(s.course)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "INSERT INTO dosing_sessions (id, clinic_id, appointment_id, patient_id, location_id, protocol_id, \
             protocol_version, state, dose_started_at, event_count, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'discharged', $8, 0, $9, $8, $10)",
        )
        .bind(id)
        .bind(s.clinic.as_uuid())
        .bind(appointment)
        .bind(s.patient.as_uuid())
        .bind(s.location)
        .bind(s.protocol_id)
        .bind(s.protocol_version)
        .bind(DbTs(s.start))
        .bind(s.by.as_uuid())
        .bind(DbTs(end))
        .execute(&mut *c)
        .await?;
    });
    Ok(id)
}
