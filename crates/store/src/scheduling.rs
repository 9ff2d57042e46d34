//! Locations, rooms, appointment types, working hours and appointments. A booking claims every
//! 5-minute slot of each resource it uses in `booking_claims`, whose primary key refuses a second
//! claim: the database, not the application, makes double booking impossible.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::statement;
use crate::keyset::{self, Page};
use crate::{Db, DbTs, Result, StoreError, Tx, on_read, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct LocationRow {
    pub id: Uuid,
    pub name: String,
    pub time_zone: String,
}

pub async fn insert_location(tx: &mut Tx, clinic: ClinicId, name: &str, time_zone: &str) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query("INSERT INTO locations (id, clinic_id, name, time_zone, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(clinic.as_uuid())
            .bind(name)
            .bind(time_zone)
            .bind(DbTs(UtcTs::now()))
            .execute(c)
            .await
            .map_err(|e| StoreError::conflict_on_unique(e, "location name"))?;
    });
    Ok(id)
}

pub async fn locations(db: &Db, clinic: ClinicId) -> Result<Vec<LocationRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as("SELECT id, name, time_zone FROM locations WHERE clinic_id = $1 ORDER BY created_at, id")
            .bind(clinic.as_uuid())
            .fetch_all(c)
            .await?
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct RoomRow {
    pub id: Uuid,
    pub location_id: Uuid,
    pub name: String,
    pub active: bool,
}

pub async fn insert_room(tx: &mut Tx, clinic: ClinicId, location: Uuid, name: &str) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query("INSERT INTO rooms (id, clinic_id, location_id, name, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(clinic.as_uuid())
            .bind(location)
            .bind(name)
            .bind(DbTs(UtcTs::now()))
            .execute(c)
            .await
            .map_err(|e| StoreError::conflict_on_unique(e, "room name"))?;
    });
    Ok(id)
}

pub async fn rooms(db: &Db, clinic: ClinicId) -> Result<Vec<RoomRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as("SELECT id, location_id, name, active FROM rooms WHERE clinic_id = $1 ORDER BY name, id")
            .bind(clinic.as_uuid())
            .fetch_all(c)
            .await?
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct TypeRow {
    pub id: Uuid,
    pub code: String,
    /// JSON of the domain's `AppointmentType`.
    pub definition: String,
    pub active: bool,
}

/// Saves a type; a type with the same code is retired (kept for the appointments that used it).
pub async fn save_type(tx: &mut Tx, clinic: ClinicId, code: &str, definition: &str) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query("UPDATE appointment_types SET active = FALSE WHERE clinic_id = $1 AND code = $2 AND active")
            .bind(clinic.as_uuid())
            .bind(code)
            .execute(&mut *c)
            .await?;
        sqlx::query(
            "INSERT INTO appointment_types (id, clinic_id, code, definition, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(code)
        .bind(definition)
        .bind(DbTs(UtcTs::now()))
        .execute(&mut *c)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "appointment type"))?;
    });
    Ok(id)
}

/// Every type of the clinic, active ones first (retired ones still name old appointments).
pub async fn types(db: &Db, clinic: ClinicId) -> Result<Vec<TypeRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, code, definition, active FROM appointment_types WHERE clinic_id = $1 ORDER BY active DESC, code, id",
        )
        .bind(clinic.as_uuid())
        .fetch_all(c)
        .await?
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct HoursRow {
    pub user_id: Uuid,
    pub location_id: Uuid,
    pub weekday: i32,
    pub start_minute: i32,
    pub end_minute: i32,
}

/// Replaces one person's weekly hours.
pub async fn replace_hours(tx: &mut Tx, clinic: ClinicId, user: UserId, rows: &[HoursRow]) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("DELETE FROM staff_hours WHERE user_id = $1 AND clinic_id = $2")
            .bind(user.as_uuid())
            .bind(clinic.as_uuid())
            .execute(&mut *c)
            .await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO staff_hours (id, clinic_id, user_id, location_id, weekday, start_minute, end_minute) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(Uuid::now_v7())
            .bind(clinic.as_uuid())
            .bind(user.as_uuid())
            .bind(r.location_id)
            .bind(r.weekday)
            .bind(r.start_minute)
            .bind(r.end_minute)
            .execute(&mut *c)
            .await?;
        }
    });
    Ok(())
}

pub async fn hours(db: &Db, clinic: ClinicId) -> Result<Vec<HoursRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT user_id, location_id, weekday, start_minute, end_minute FROM staff_hours WHERE clinic_id = $1 \
             ORDER BY user_id, weekday, start_minute",
        )
        .bind(clinic.as_uuid())
        .fetch_all(c)
        .await?
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct ExceptionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub on_date: String,
    pub is_leave: bool,
    pub start_minute: i32,
    pub end_minute: i32,
    pub note: Option<String>,
}

pub struct NewException<'a> {
    pub clinic: ClinicId,
    pub user: UserId,
    pub on_date: &'a str,
    pub is_leave: bool,
    pub start_minute: i32,
    pub end_minute: i32,
    pub note: Option<&'a str>,
    pub by: UserId,
}

pub async fn insert_exception(tx: &mut Tx, e: &NewException<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO staff_hour_exceptions (id, clinic_id, user_id, on_date, is_leave, start_minute, end_minute, \
             note, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(e.clinic.as_uuid())
        .bind(e.user.as_uuid())
        .bind(e.on_date)
        .bind(e.is_leave)
        .bind(e.start_minute)
        .bind(e.end_minute)
        .bind(e.note)
        .bind(e.by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// Removes an exception (leave cancelled, extra hours no longer worked); false when unknown.
/// Working hours are set-up, not clinical record: the audit log keeps who removed what.
pub async fn delete_exception(tx: &mut Tx, clinic: ClinicId, id: Uuid) -> Result<bool> {
    Ok(on_tx!(tx, |c| {
        sqlx::query("DELETE FROM staff_hour_exceptions WHERE id = $1 AND clinic_id = $2")
            .bind(id)
            .bind(clinic.as_uuid())
            .execute(c)
            .await?
            .rows_affected()
            == 1
    }))
}

/// Exceptions dated within `[from, to]` (ISO dates compare as text).
pub async fn exceptions(db: &Db, clinic: ClinicId, from: &str, to: &str) -> Result<Vec<ExceptionRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, user_id, on_date, is_leave, start_minute, end_minute, note FROM staff_hour_exceptions \
             WHERE clinic_id = $1 AND on_date >= $2 AND on_date <= $3 ORDER BY on_date, start_minute",
        )
        .bind(clinic.as_uuid())
        .bind(from)
        .bind(to)
        .fetch_all(c)
        .await?
    }))
}

pub struct NewAppointment<'a> {
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub type_id: Uuid,
    pub location: Uuid,
    pub room: Option<Uuid>,
    pub start: UtcTs,
    pub end: UtcTs,
    pub staff: &'a [UserId],
    /// Every (resource key, slot) the booking holds.
    pub claims: &'a [(String, i64)],
    pub by: UserId,
    pub rescheduled_from: Option<Uuid>,
    pub course: Option<Uuid>,
}

/// A booking refused because a resource is already claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    /// The resource key (`user:…`, `room:…`, `patient:…`), or `None` when a concurrent booking
    /// won the race and its claim could not be read (it is refused by the primary key all the same).
    pub resource: Option<String>,
}

/// Books an appointment and claims its slots; a clash names the resource already claimed. Its
/// writes run in a savepoint, rolled back on a clash: `tx` then holds none of them and stays
/// usable (PostgreSQL would otherwise refuse every later statement of `tx`), so one transaction
/// can book several appointments and keep those that do not clash (a course's plan).
pub async fn book(tx: &mut Tx, a: &NewAppointment<'_>) -> Result<std::result::Result<Uuid, Clash>> {
    let id = Uuid::now_v7();
    if let Some(resource) = claimed_already(tx, a.claims).await? {
        return Ok(Err(Clash { resource: Some(resource) }));
    }
    // Claims are written in one global order (resource, then slot): two bookings racing for the
    // same people in a different order then wait for each other instead of deadlocking.
    let mut ordered: Vec<&(String, i64)> = a.claims.iter().collect();
    ordered.sort_unstable();
    statement(tx, "SAVEPOINT kapstone_booking").await?;
    let inserted = on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO appointments (id, clinic_id, patient_id, type_id, location_id, room_id, start_at, end_at, status, \
             rescheduled_from, created_by, created_at, course_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'booked', $9, $10, $11, $12)",
        )
        .bind(id)
        .bind(a.clinic.as_uuid())
        .bind(a.patient.as_uuid())
        .bind(a.type_id)
        .bind(a.location)
        .bind(a.room)
        .bind(DbTs(a.start))
        .bind(DbTs(a.end))
        .bind(a.rescheduled_from)
        .bind(a.by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .bind(a.course)
        .execute(&mut *c)
        .await?;
        for u in a.staff {
            sqlx::query("INSERT INTO appointment_staff (appointment_id, user_id) VALUES ($1, $2)")
                .bind(id)
                .bind(u.as_uuid())
                .execute(&mut *c)
                .await?;
        }
        let mut claimed = Ok(());
        for chunk in ordered.chunks(300) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO booking_claims (resource, slot, appointment_id) ");
            q.push_values(chunk, |mut row, (r, s)| {
                row.push_bind(r.clone()).push_bind(*s).push_bind(id);
            });
            if let Err(e) = q.build().execute(&mut *c).await {
                claimed = Err(e);
                break;
            }
        }
        claimed
    });
    if inserted.is_ok()
        && let Some(old) = a.rescheduled_from
    {
        // A moved session keeps its preparation (ride, intention, instructions).
        on_tx!(tx, |c| {
            sqlx::query(
                "INSERT INTO appointment_preparation (appointment_id, escort_name, escort_phone, escort_relationship, \
                 escort_confirmed_at, intention, intention_written_at, medication_instructions, medication_by, \
                 instructions_ack_at, updated_at) SELECT $2, escort_name, escort_phone, escort_relationship, \
                 escort_confirmed_at, intention, intention_written_at, medication_instructions, medication_by, \
                 instructions_ack_at, updated_at FROM appointment_preparation WHERE appointment_id = $1",
            )
            .bind(old)
            .bind(id)
            .execute(&mut *c)
            .await?;
        });
    }
    match inserted {
        Ok(()) => {
            statement(tx, "RELEASE SAVEPOINT kapstone_booking").await?;
            Ok(Ok(id))
        }
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            // A concurrent booking won the race: its claim is committed (the primary key waited
            // for it), so reading again in `tx` names it.
            statement(tx, "ROLLBACK TO SAVEPOINT kapstone_booking").await?;
            statement(tx, "RELEASE SAVEPOINT kapstone_booking").await?;
            Ok(Err(Clash { resource: claimed_already(tx, a.claims).await? }))
        }
        Err(e) => Err(e.into()),
    }
}

/// The resource of one of `claims` that is claimed already, as `tx` sees the claims.
async fn claimed_already(tx: &mut Tx, claims: &[(String, i64)]) -> Result<Option<String>> {
    if claims.is_empty() {
        return Ok(None);
    }
    Ok(on_tx!(tx, |c| {
        let mut q = sqlx::QueryBuilder::new("SELECT resource FROM booking_claims WHERE (resource, slot) IN (");
        let mut list = q.separated(", ");
        for (r, s) in claims {
            list.push("(");
            list.push_bind_unseparated(r.clone());
            list.push_unseparated(", ");
            list.push_bind_unseparated(*s);
            list.push_unseparated(")");
        }
        q.push(") LIMIT 1");
        q.build_query_scalar().fetch_optional(&mut *c).await?
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct AppointmentRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub type_id: Uuid,
    pub location_id: Uuid,
    pub room_id: Option<Uuid>,
    pub start_at: DbTs,
    pub end_at: DbTs,
    pub status: String,
    pub status_reason: Option<String>,
    pub rescheduled_from: Option<Uuid>,
    pub course_id: Option<Uuid>,
}

const APPOINTMENT_COLUMNS: &str = "id, patient_id, type_id, location_id, room_id, start_at, end_at, status, \
     status_reason, rescheduled_from, course_id";

/// Appointments of the clinic that overlap `[from, to)`, by start.
pub async fn appointments_between(db: &Db, clinic: ClinicId, from: UtcTs, to: UtcTs) -> Result<Vec<AppointmentRow>> {
    let sql = format!(
        "SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE clinic_id = $1 AND start_at < $3 AND end_at > $2 \
         ORDER BY start_at, id"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(DbTs(from))
            .bind(DbTs(to))
            .fetch_all(c)
            .await?
    }))
}

/// A page of the clinic's appointments by start, after `p.after`: those of `p.filter.patient` when set,
/// overlapping the window `[from, to)` when set (the API's list).
pub async fn appointments_page(db: &Db, p: &Page<'_>) -> Result<Vec<AppointmentRow>> {
    let sql = format!(
        "SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE clinic_id = $1 AND ($2 IS NULL OR patient_id = $2) \
         AND ($3 IS NULL OR end_at > $3) AND ($4 IS NULL OR start_at < $4) \
         AND start_at >= $5 AND (start_at > $5 OR id > $6) ORDER BY start_at, id LIMIT $7"
    );
    keyset::fetch(db, sql, p, None).await
}

/// A patient's appointments: [`appointments_of_patient`] and [`appointments_of_patient_in`] read
/// the same rows.
fn appointments_of_patient_sql() -> String {
    format!("SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE patient_id = $1 ORDER BY start_at, id")
}

pub async fn appointments_of_patient(db: &Db, patient: PatientId) -> Result<Vec<AppointmentRow>> {
    let sql = appointments_of_patient_sql();
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(patient.as_uuid()).fetch_all(c).await?
    }))
}

/// An appointment as the patient's chart lists it: with its type's definition (the name is in it)
/// and its place's time zone, read with it rather than with every type and place of the clinic
/// (with the rest of the chart: [`crate::patients::ChartHead::appointments`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartAppointmentRow {
    pub id: Uuid,
    pub start_at: DbTs,
    pub status: String,
    pub type_definition: String,
    pub time_zone: String,
}

/// [`appointments_of_patient`] inside `tx` (what a transaction about to book for the patient
/// sees, its own bookings included).
pub async fn appointments_of_patient_in(tx: &mut Tx, patient: PatientId) -> Result<Vec<AppointmentRow>> {
    let sql = appointments_of_patient_sql();
    Ok(on_tx!(tx, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(patient.as_uuid()).fetch_all(c).await?))
}

/// One appointment of the clinic by id: [`appointment`] and [`appointment_in`] read the same row.
fn appointment_by_id() -> String {
    format!("SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE id = $1 AND clinic_id = $2")
}

pub async fn appointment(db: &Db, clinic: ClinicId, id: Uuid) -> Result<Option<AppointmentRow>> {
    let sql = appointment_by_id();
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(id).bind(clinic.as_uuid()).fetch_optional(c).await?
    }))
}

/// [`appointment`] inside `tx` (the booking or change just made, before its commit).
pub async fn appointment_in(tx: &mut Tx, clinic: ClinicId, id: Uuid) -> Result<Option<AppointmentRow>> {
    let sql = appointment_by_id();
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(id).bind(clinic.as_uuid()).fetch_optional(c).await?
    }))
}

/// [`staff_of`] one appointment inside `tx`: its staff's user ids.
pub async fn staff_of_in(tx: &mut Tx, appointment: Uuid) -> Result<Vec<Uuid>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT user_id FROM appointment_staff WHERE appointment_id = $1")
            .bind(appointment)
            .fetch_all(c)
            .await?
    }))
}

/// (appointment, user) for the staff of these appointments.
pub async fn staff_of(db: &Db, appointments: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>> {
    if appointments.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q =
            sqlx::QueryBuilder::new("SELECT appointment_id, user_id FROM appointment_staff WHERE appointment_id IN ");
        crate::push_ids(&mut q, appointments);
        q.build_query_as().fetch_all(c).await?
    }))
}

/// Claims held in a slot range by any of `resources` (for the slot search).
pub async fn claims_between(db: &Db, resources: &[String], from_slot: i64, to_slot: i64) -> Result<Vec<(String, i64)>> {
    if resources.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new("SELECT resource, slot FROM booking_claims WHERE slot >= ");
        q.push_bind(from_slot).push(" AND slot < ").push_bind(to_slot).push(" AND resource IN (");
        let mut list = q.separated(", ");
        for r in resources {
            list.push_bind(r.clone());
        }
        list.push_unseparated(")");
        q.build_query_as().fetch_all(c).await?
    }))
}

/// Moves a booked appointment to `status` (cancelled, no_show, rescheduled, completed) with the
/// reason, and releases its claims unless it is a no-show or completed (their time has passed).
/// Deletes the claims of slots before `before_slot`. Nothing can be booked in the past, so old
/// claims only slow the table down; the appointments themselves are kept.
pub async fn prune_claims(db: &Db, before_slot: i64) -> Result<u64> {
    let mut tx = db.begin().await?;
    let n = on_tx!(&mut tx, |c| {
        sqlx::query("DELETE FROM booking_claims WHERE slot < $1").bind(before_slot).execute(c).await?.rows_affected()
    });
    tx.commit().await?;
    Ok(n)
}

/// False when the appointment is not booked (already changed).
pub async fn change_status(
    tx: &mut Tx,
    clinic: ClinicId,
    id: Uuid,
    status: &str,
    reason: Option<&str>,
    by: UserId,
) -> Result<bool> {
    let release = matches!(status, "cancelled" | "rescheduled");
    Ok(on_tx!(tx, |c| {
        let n = sqlx::query(
            "UPDATE appointments SET status = $3, status_reason = $4, status_changed_by = $5, status_changed_at = $6 \
             WHERE id = $1 AND clinic_id = $2 AND status = 'booked'",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(status)
        .bind(reason)
        .bind(by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .execute(&mut *c)
        .await?
        .rows_affected();
        if n == 1 && release {
            sqlx::query("DELETE FROM booking_claims WHERE appointment_id = $1").bind(id).execute(&mut *c).await?;
        }
        n == 1
    }))
}

pub async fn record_rems_enrollment(
    tx: &mut Tx,
    clinic: ClinicId,
    patient: PatientId,
    enrolled_on: &str,
    reference: Option<&str>,
    by: UserId,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO rems_enrollments (id, clinic_id, patient_id, enrolled_on, reference, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .bind(enrolled_on)
        .bind(reference)
        .bind(by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?;
    });
    Ok(id)
}

pub async fn rems_enrolled(db: &Db, patient: PatientId) -> Result<Option<String>> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar(
            "SELECT enrolled_on FROM rems_enrollments WHERE patient_id = $1 ORDER BY recorded_at DESC LIMIT 1",
        )
        .bind(patient.as_uuid())
        .fetch_optional(c)
        .await?
    }))
}

#[derive(Debug, Clone, Default, FromRow)]
pub struct PreparationRow {
    pub appointment_id: Uuid,
    pub escort_name: Option<String>,
    pub escort_phone: Option<String>,
    pub escort_relationship: Option<String>,
    pub escort_confirmed_at: Option<DbTs>,
    pub intention: Option<String>,
    pub intention_written_at: Option<DbTs>,
    pub medication_instructions: Option<String>,
    pub instructions_ack_at: Option<DbTs>,
}

pub async fn preparation(db: &Db, appointments: &[Uuid]) -> Result<Vec<PreparationRow>> {
    if appointments.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT appointment_id, escort_name, escort_phone, escort_relationship, escort_confirmed_at, intention, \
             intention_written_at, medication_instructions, instructions_ack_at FROM appointment_preparation \
             WHERE appointment_id IN ",
        );
        crate::push_ids(&mut q, appointments);
        q.build_query_as().fetch_all(c).await?
    }))
}

/// One change to a preparation.
pub enum PrepChange<'a> {
    /// The ride home; `confirmed` when the patient enters or confirms it.
    Escort {
        name: &'a str,
        phone: &'a str,
        relationship: Option<&'a str>,
        confirmed: bool,
    },
    Intention(&'a str),
    MedicationInstructions {
        text: &'a str,
        by: UserId,
    },
    InstructionsAcknowledged,
}

pub async fn change_preparation(tx: &mut Tx, appointment: Uuid, change: &PrepChange<'_>) -> Result<()> {
    let now = DbTs(UtcTs::now());
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO appointment_preparation (appointment_id, updated_at) VALUES ($1, $2) \
             ON CONFLICT (appointment_id) DO NOTHING",
        )
        .bind(appointment)
        .bind(now)
        .execute(&mut *c)
        .await?;
        match change {
            PrepChange::Escort { name, phone, relationship, confirmed } => {
                sqlx::query(
                    "UPDATE appointment_preparation SET escort_name = $2, escort_phone = $3, escort_relationship = $4, \
                     escort_confirmed_at = CASE WHEN $5 THEN $6 ELSE NULL END, updated_at = $6 WHERE appointment_id = $1",
                )
                .bind(appointment)
                .bind(*name)
                .bind(*phone)
                .bind(*relationship)
                .bind(*confirmed)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
            PrepChange::Intention(text) => {
                sqlx::query(
                    "UPDATE appointment_preparation SET intention = $2, intention_written_at = $3, updated_at = $3 \
                     WHERE appointment_id = $1",
                )
                .bind(appointment)
                .bind(*text)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
            PrepChange::MedicationInstructions { text, by } => {
                sqlx::query(
                    "UPDATE appointment_preparation SET medication_instructions = $2, medication_by = $3, updated_at = $4 \
                     WHERE appointment_id = $1",
                )
                .bind(appointment)
                .bind(*text)
                .bind(by.as_uuid())
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
            PrepChange::InstructionsAcknowledged => {
                sqlx::query(
                    "UPDATE appointment_preparation SET instructions_ack_at = $2, updated_at = $2 WHERE appointment_id = $1",
                )
                .bind(appointment)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
        }
    });
    Ok(())
}

/// (patient, instrument, submitted at) of responses since `since`, for the checklist.
pub async fn responses_since(db: &Db, patients: &[Uuid], since: UtcTs) -> Result<Vec<(Uuid, String, DbTs)>> {
    if patients.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT patient_id, instrument, submitted_at FROM questionnaire_responses WHERE submitted_at >= ",
        );
        q.push_bind(DbTs(since)).push(" AND patient_id IN ");
        crate::push_ids(&mut q, patients);
        q.build_query_as().fetch_all(c).await?
    }))
}

/// When each appointment was booked (the checklist counts questionnaires from then).
pub async fn created_at(db: &Db, appointments: &[Uuid]) -> Result<Vec<(Uuid, DbTs)>> {
    if appointments.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new("SELECT id, created_at FROM appointments WHERE id IN ");
        crate::push_ids(&mut q, appointments);
        q.build_query_as().fetch_all(c).await?
    }))
}

/// The user's feed token, if they made one.
pub async fn feed_token(db: &Db, user: UserId) -> Result<Option<String>> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar("SELECT token FROM calendar_feeds WHERE user_id = $1")
            .bind(user.as_uuid())
            .fetch_optional(c)
            .await?
    }))
}

/// Replaces the user's feed token (the old link stops working).
pub async fn set_feed_token(tx: &mut Tx, user: UserId, token: &str) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("DELETE FROM calendar_feeds WHERE user_id = $1").bind(user.as_uuid()).execute(&mut *c).await?;
        sqlx::query("INSERT INTO calendar_feeds (user_id, token, created_at) VALUES ($1, $2, $3)")
            .bind(user.as_uuid())
            .bind(token)
            .bind(DbTs(UtcTs::now()))
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

pub async fn feed_owner(db: &Db, token: &str) -> Result<Option<Uuid>> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar("SELECT user_id FROM calendar_feeds WHERE token = $1").bind(token).fetch_optional(c).await?
    }))
}

/// A staff member's appointments in `[from, to)`: [`appointments_of_staff`] and its `_in` twin.
fn appointments_of_staff_sql() -> String {
    format!(
        "SELECT {APPOINTMENT_COLUMNS} FROM appointments WHERE id IN (SELECT appointment_id FROM appointment_staff \
         WHERE user_id = $1) AND start_at < $3 AND end_at > $2 ORDER BY start_at, id"
    )
}

/// A staff member's appointments in `[from, to)`.
pub async fn appointments_of_staff(db: &Db, user: Uuid, from: UtcTs, to: UtcTs) -> Result<Vec<AppointmentRow>> {
    let sql = appointments_of_staff_sql();
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(user).bind(DbTs(from)).bind(DbTs(to)).fetch_all(c).await?
    }))
}

/// [`appointments_of_staff`] inside `tx`.
pub async fn appointments_of_staff_in(tx: &mut Tx, user: Uuid, from: UtcTs, to: UtcTs) -> Result<Vec<AppointmentRow>> {
    let sql = appointments_of_staff_sql();
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(user).bind(DbTs(from)).bind(DbTs(to)).fetch_all(c).await?
    }))
}

/// Which of these patients have a REMS enrolment recorded.
pub async fn rems_enrolled_among(db: &Db, patients: &[Uuid]) -> Result<Vec<Uuid>> {
    if patients.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new("SELECT DISTINCT patient_id FROM rems_enrollments WHERE patient_id IN ");
        crate::push_ids(&mut q, patients);
        q.build_query_scalar().fetch_all(c).await?
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct CourseRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub template: String,
    pub first_date: String,
    pub options: String,
    pub status: String,
    pub started_at: DbTs,
}

pub async fn insert_course(
    tx: &mut Tx,
    clinic: ClinicId,
    patient: PatientId,
    template: &str,
    first_date: &str,
    options: &str,
    by: UserId,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO treatment_courses (id, clinic_id, patient_id, template, first_date, options, status, started_by, \
             started_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .bind(template)
        .bind(first_date)
        .bind(options)
        .bind(by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?;
    });
    Ok(id)
}

pub async fn courses_of_patient(db: &Db, clinic: ClinicId, patient: PatientId) -> Result<Vec<CourseRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, patient_id, template, first_date, options, status, started_at FROM treatment_courses \
             WHERE clinic_id = $1 AND patient_id = $2 ORDER BY started_at DESC, id DESC",
        )
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .fetch_all(c)
        .await?
    }))
}

/// One course of the clinic by id: [`course`] and [`course_in`] read the same row.
const COURSE_BY_ID: &str = "SELECT id, patient_id, template, first_date, options, status, started_at \
     FROM treatment_courses WHERE clinic_id = $1 AND id = $2";

/// [`course`] inside `tx` (the course just started, before its commit).
pub async fn course_in(tx: &mut Tx, clinic: ClinicId, id: Uuid) -> Result<Option<CourseRow>> {
    Ok(on_tx!(tx, |c| sqlx::query_as(COURSE_BY_ID).bind(clinic.as_uuid()).bind(id).fetch_optional(c).await?))
}

pub async fn course(db: &Db, clinic: ClinicId, id: Uuid) -> Result<Option<CourseRow>> {
    Ok(on_read!(db, |c| sqlx::query_as(COURSE_BY_ID).bind(clinic.as_uuid()).bind(id).fetch_optional(c).await?))
}

/// (status, type, count) of a course's appointments.
pub async fn course_counts(db: &Db, course: Uuid) -> Result<Vec<(String, Uuid, i64)>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT status, type_id, COUNT(*) FROM appointments WHERE course_id = $1 GROUP BY status, type_id",
        )
        .bind(course)
        .fetch_all(c)
        .await?
    }))
}

/// An appointment the reminder job looks at (any clinic).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BookedSoon {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub patient_id: Uuid,
    pub type_id: Uuid,
    pub location_id: Uuid,
    pub start_at: DbTs,
}

/// start). The reminder job reads these.
/// Booked and completed appointments of every clinic starting in `[from, to)`.
pub async fn booked_between_all(db: &Db, from: UtcTs, to: UtcTs) -> Result<Vec<BookedSoon>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, clinic_id, patient_id, type_id, location_id, start_at FROM appointments WHERE status IN ('booked', 'completed') \
             AND start_at >= $1 AND start_at < $2 ORDER BY start_at",
        )
        .bind(DbTs(from))
        .bind(DbTs(to))
        .fetch_all(c)
        .await?
    }))
}

/// The type definition of each id (any clinic), for the job.
pub async fn type_definitions(db: &Db, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new("SELECT id, definition FROM appointment_types WHERE id IN ");
        crate::push_ids(&mut q, ids);
        q.build_query_as().fetch_all(c).await?
    }))
}

pub async fn insert_request(
    tx: &mut Tx,
    clinic: ClinicId,
    appointment: Uuid,
    patient: PatientId,
    kind: &str,
    note: Option<&str>,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO appointment_requests (id, clinic_id, appointment_id, patient_id, kind, note, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(appointment)
        .bind(patient.as_uuid())
        .bind(kind)
        .bind(note)
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// Requests on appointments still booked: (appointment, kind, note, asked at).
pub async fn open_requests(db: &Db, clinic: ClinicId) -> Result<Vec<(Uuid, String, Option<String>, DbTs)>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT r.appointment_id, r.kind, r.note, r.created_at FROM appointment_requests r JOIN appointments a \
             ON a.id = r.appointment_id WHERE r.clinic_id = $1 AND a.status = 'booked' ORDER BY r.created_at",
        )
        .bind(clinic.as_uuid())
        .fetch_all(c)
        .await?
    }))
}
