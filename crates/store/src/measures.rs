//! What the measurement-cadence job reads and writes (0020; KAP-SPEC 7.10): active courses with
//! their appointments, a patient's scored responses with their answers, and the assignments it
//! made, once per course, instrument and occasion whatever the number of server processes.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct ActiveCourse {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub patient_id: Uuid,
    pub template: String,
    pub first_date: String,
    pub options: String,
    pub started_by: Uuid,
}

const COURSE_COLUMNS: &str = "id, clinic_id, patient_id, template, first_date, options, started_by";

/// Active courses of every clinic (the job), or of one (`Some(clinic)`: the staff's lists).
pub async fn active_courses(db: &Db, clinic: Option<ClinicId>) -> Result<Vec<ActiveCourse>> {
    let sql = match clinic {
        Some(_) => format!(
            "SELECT {COURSE_COLUMNS} FROM treatment_courses WHERE status = 'active' AND clinic_id = $1 ORDER BY started_at, id"
        ),
        None => {
            format!("SELECT {COURSE_COLUMNS} FROM treatment_courses WHERE status = 'active' ORDER BY started_at, id")
        }
    };
    Ok(on_read!(db, |c| {
        let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
        match clinic {
            Some(k) => q.bind(k.as_uuid()).fetch_all(c).await?,
            None => q.fetch_all(c).await?,
        }
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct CourseAppointment {
    pub id: Uuid,
    pub type_id: Uuid,
    pub start_at: DbTs,
    pub end_at: DbTs,
    pub status: String,
    pub created_at: DbTs,
    /// When the dose of its dosing session was given, if any.
    pub dose_started_at: Option<DbTs>,
}

/// The appointments of a course, by start, with the dose time of their sessions.
pub async fn course_appointments(db: &Db, course: Uuid) -> Result<Vec<CourseAppointment>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT a.id, a.type_id, a.start_at, a.end_at, a.status, a.created_at, s.dose_started_at \
             FROM appointments a LEFT JOIN dosing_sessions s ON s.appointment_id = a.id \
             WHERE a.course_id = $1 ORDER BY a.start_at, a.id",
        )
        .bind(course)
        .fetch_all(c)
        .await?
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct AnsweredRow {
    pub id: Uuid,
    pub instrument: String,
    pub answers: String,
    pub submitted_at: DbTs,
}

/// Every scored response of a patient, oldest first.
pub async fn answered(db: &Db, patient: PatientId) -> Result<Vec<AnsweredRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, instrument, answers, submitted_at FROM questionnaire_responses WHERE patient_id = $1 \
             ORDER BY submitted_at, id",
        )
        .bind(patient.as_uuid())
        .fetch_all(c)
        .await?
    }))
}

/// (instrument, occasion key) of the assignments already made for a course.
pub async fn assigned(db: &Db, course: Uuid) -> Result<Vec<(String, String)>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as("SELECT instrument, occasion FROM measure_assignments WHERE course_id = $1")
            .bind(course)
            .fetch_all(c)
            .await?
    }))
}

pub struct NewMeasure<'a> {
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub course: Uuid,
    pub instrument: &'a str,
    pub occasion: &'a str,
    pub due_by: UtcTs,
    pub settings_version: i64,
    /// Named as the assigner: the prescriber who started the course.
    pub on_behalf_of: UserId,
}

/// Assigns the questionnaire and records why, once: `None` when this course, instrument and
/// occasion already had one (another pass or process); the caller then rolls back.
pub async fn assign_once(tx: &mut Tx, m: &NewMeasure<'_>) -> Result<Option<Uuid>> {
    let id = crate::questionnaires::assign(tx, m.clinic, m.patient, m.instrument, m.on_behalf_of).await?;
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO measure_assignments (assignment_id, clinic_id, patient_id, course_id, instrument, occasion, \
             due_by, settings_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (course_id, instrument, occasion) DO NOTHING",
        )
        .bind(id)
        .bind(m.clinic.as_uuid())
        .bind(m.patient.as_uuid())
        .bind(m.course)
        .bind(m.instrument)
        .bind(m.occasion)
        .bind(DbTs(m.due_by))
        .bind(m.settings_version)
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok((n == 1).then_some(id))
}

/// Queues a plain message in the outbox for the patient (delivered by the mail job).
pub async fn queue_message(
    tx: &mut Tx,
    clinic: ClinicId,
    patient: PatientId,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO outbox (id, clinic_id, to_address, subject, body, created_at, patient_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::now_v7())
        .bind(clinic.as_uuid())
        .bind(to)
        .bind(subject)
        .bind(body)
        .bind(DbTs(UtcTs::now()))
        .bind(patient.as_uuid())
        .execute(c)
        .await?;
    });
    Ok(())
}
