//! Dosing sessions and the protocols they run under. A session's clinical content is its
//! append-only list of events (`session_events`); the `dosing_sessions` row is a projection the
//! floor board reads, rewritten in the same transaction as each event. Protocol changes are new
//! versions, never updates.

use std::collections::HashMap;

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Db, DbTs, Result, StoreError, Tx, on_read, on_tx};

// ---------------------------------------------------------------------------------------------
// Protocol versions.

#[derive(Debug, Clone, FromRow)]
pub struct ProtocolVersionRow {
    pub protocol_id: String,
    pub version: String,
    pub route: String,
    pub definition: String,
    pub reason: String,
    pub created_by: Option<Uuid>,
    pub created_at: DbTs,
}

pub struct NewProtocolVersion<'a> {
    pub clinic: ClinicId,
    pub protocol_id: &'a str,
    pub version: &'a str,
    pub route: &'a str,
    pub definition: &'a str,
    pub reason: &'a str,
    pub by: Option<UserId>,
}

/// Stores a protocol version; a version already stored for this protocol is a conflict.
pub async fn insert_protocol_version(tx: &mut Tx, p: &NewProtocolVersion<'_>) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO protocol_versions (clinic_id, protocol_id, version, route, definition, reason, created_by, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(p.clinic.as_uuid())
        .bind(p.protocol_id)
        .bind(p.version)
        .bind(p.route)
        .bind(p.definition)
        .bind(p.reason)
        .bind(p.by.map(|u| u.as_uuid()))
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "protocol version"))?;
    });
    Ok(())
}

const PROTOCOL_COLUMNS: &str = "protocol_id, version, route, definition, reason, created_by, created_at";

/// Every stored version of the clinic's protocols, newest first within each protocol.
pub async fn protocol_versions(db: &Db, clinic: ClinicId) -> Result<Vec<ProtocolVersionRow>> {
    let sql = format!(
        "SELECT {PROTOCOL_COLUMNS} FROM protocol_versions WHERE clinic_id = $1 ORDER BY protocol_id, created_at DESC"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).fetch_all(c).await?
    }))
}

/// One stored version.
pub async fn protocol_version(
    db: &Db,
    clinic: ClinicId,
    protocol_id: &str,
    version: &str,
) -> Result<Option<ProtocolVersionRow>> {
    let sql = format!(
        "SELECT {PROTOCOL_COLUMNS} FROM protocol_versions WHERE clinic_id = $1 AND protocol_id = $2 AND version = $3"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(protocol_id)
            .bind(version)
            .fetch_optional(c)
            .await?
    }))
}

/// Grants or withdraws the medical-director permission (changing the clinic's protocols).
pub async fn set_medical_director(tx: &mut Tx, user: UserId, on: bool) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE users SET medical_director = $2 WHERE id = $1")
            .bind(user.as_uuid())
            .bind(on)
            .execute(c)
            .await?;
    });
    Ok(())
}

pub async fn is_medical_director(db: &Db, user: UserId) -> Result<bool> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar::<_, bool>("SELECT medical_director FROM users WHERE id = $1")
            .bind(user.as_uuid())
            .fetch_optional(c)
            .await?
            .unwrap_or(false)
    }))
}

// ---------------------------------------------------------------------------------------------
// Sessions and their events.

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub appointment_id: Uuid,
    pub patient_id: Uuid,
    pub location_id: Uuid,
    pub room_id: Option<Uuid>,
    pub protocol_id: String,
    pub protocol_version: String,
    pub state: String,
    pub dose_started_at: Option<DbTs>,
    pub event_count: i32,
    pub created_at: DbTs,
    pub updated_at: DbTs,
}

const SESSION_COLUMNS: &str = "id, appointment_id, patient_id, location_id, room_id, protocol_id, protocol_version, \
     state, dose_started_at, event_count, created_at, updated_at";

pub struct NewSession<'a> {
    pub clinic: ClinicId,
    pub appointment: Uuid,
    pub patient: PatientId,
    pub location: Uuid,
    pub room: Option<Uuid>,
    pub protocol_id: &'a str,
    pub protocol_version: &'a str,
    pub state: &'a str,
    pub by: UserId,
}

/// Opens the session of a dosing appointment; a second session for it is a conflict.
pub async fn insert_session(tx: &mut Tx, s: &NewSession<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let now = DbTs(UtcTs::now());
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO dosing_sessions (id, clinic_id, appointment_id, patient_id, location_id, room_id, protocol_id, \
             protocol_version, state, event_count, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $11)",
        )
        .bind(id)
        .bind(s.clinic.as_uuid())
        .bind(s.appointment)
        .bind(s.patient.as_uuid())
        .bind(s.location)
        .bind(s.room)
        .bind(s.protocol_id)
        .bind(s.protocol_version)
        .bind(s.state)
        .bind(s.by.as_uuid())
        .bind(now)
        .execute(c)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "session for this appointment"))?;
    });
    bump_floor(tx, s.clinic).await?;
    Ok(id)
}

/// One session of the clinic by id: [`session`] and [`session_in`] read the same row.
fn session_by_id() -> String {
    format!("SELECT {SESSION_COLUMNS} FROM dosing_sessions WHERE clinic_id = $1 AND id = $2")
}

pub async fn session(db: &Db, clinic: ClinicId, id: Uuid) -> Result<Option<SessionRow>> {
    let sql = session_by_id();
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).bind(id).fetch_optional(c).await?
    }))
}

/// [`session`] inside `tx` (the session just opened, before its commit).
pub async fn session_in(tx: &mut Tx, clinic: ClinicId, id: Uuid) -> Result<Option<SessionRow>> {
    let sql = session_by_id();
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).bind(id).fetch_optional(c).await?
    }))
}

pub async fn session_of_appointment(db: &Db, clinic: ClinicId, appointment: Uuid) -> Result<Option<SessionRow>> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM dosing_sessions WHERE clinic_id = $1 AND appointment_id = $2");
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(appointment)
            .fetch_optional(c)
            .await?
    }))
}

/// Sessions of a patient, newest first.
pub async fn sessions_of_patient(db: &Db, clinic: ClinicId, patient: PatientId) -> Result<Vec<SessionRow>> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM dosing_sessions WHERE clinic_id = $1 AND patient_id = $2 ORDER BY created_at DESC"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(patient.as_uuid())
            .fetch_all(c)
            .await?
    }))
}

/// Sessions opened at a location in `[from, to)`, plus any still open from before (a session is
/// on the floor until it is discharged or aborted).
pub async fn sessions_on_floor(
    db: &Db,
    clinic: ClinicId,
    location: Uuid,
    from: UtcTs,
    to: UtcTs,
) -> Result<Vec<SessionRow>> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM dosing_sessions WHERE clinic_id = $1 AND location_id = $2 \
         AND ((created_at >= $3 AND created_at < $4) OR (created_at < $3 AND state NOT IN ('discharged', 'aborted'))) \
         ORDER BY created_at, id"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(location)
            .bind(DbTs(from))
            .bind(DbTs(to))
            .fetch_all(c)
            .await?
    }))
}

/// Where a page of the REMS forms ends (see [`rems_forms_page`]): forms not yet submitted first
/// (`submitted` false), by dose time; then the submitted ones, the latest submission date first
/// (`on`, empty before one is submitted), then by dose time; the session id breaks ties.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemsFormKey {
    pub submitted: bool,
    pub on: String,
    /// The dose time, microseconds since the Unix epoch.
    pub at: i64,
    pub id: Uuid,
}

impl RemsFormKey {
    /// Before every form: where the first page starts.
    pub fn first() -> Self {
        Self { submitted: false, on: String::new(), at: crate::keyset::TimeKey::FIRST.at, id: Uuid::nil() }
    }
}

/// A session a REMS form is owed for, with its patient's name and its latest submission (the
/// one recorded last), as the clinic's list of forms shows it.
#[derive(Debug, Clone, FromRow)]
pub struct RemsFormRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub location_id: Uuid,
    pub state: String,
    pub dose_started_at: DbTs,
    pub given_name: String,
    pub family_name: String,
    /// 0 before a form is submitted, 1 after.
    pub grp: i32,
    /// The latest submission's date (YYYY-MM-DD), empty before one.
    pub sort_on: String,
    pub confirmation: Option<String>,
}

impl RemsFormRow {
    pub fn key(&self) -> RemsFormKey {
        RemsFormKey {
            submitted: self.grp != 0,
            on: self.sort_on.clone(),
            at: self.dose_started_at.0.unix_micros(),
            id: self.id,
        }
    }
}

/// A page of the sessions of a protocol that got as far as the dose and have ended (discharged,
/// or aborted after dosing began): the sessions a REMS form is owed for, `limit` after `after` in
/// the order of [`RemsFormKey`], in one query (the patient's name and the latest submission
/// joined, so a page costs one round trip whatever its size).
pub async fn rems_forms_page(
    db: &Db,
    clinic: ClinicId,
    protocol_id: &str,
    after: &RemsFormKey,
    limit: i64,
) -> Result<Vec<RemsFormRow>> {
    let sql = "SELECT * FROM (SELECT s.id, s.patient_id, s.location_id, s.state, s.dose_started_at, \
               p.given_name, p.family_name, CASE WHEN r.id IS NULL THEN 0 ELSE 1 END AS grp, \
               COALESCE(r.submitted_on, '') AS sort_on, r.confirmation \
               FROM dosing_sessions s JOIN patients p ON p.id = s.patient_id AND p.clinic_id = s.clinic_id \
               LEFT JOIN rems_form_submissions r ON r.session_id = s.id AND NOT EXISTS (SELECT 1 \
                 FROM rems_form_submissions n WHERE n.session_id = s.id \
                 AND (n.recorded_at > r.recorded_at OR (n.recorded_at = r.recorded_at AND n.id > r.id))) \
               WHERE s.clinic_id = $1 AND s.protocol_id = $2 AND s.dose_started_at IS NOT NULL \
               AND s.state IN ('discharged', 'aborted')) f \
               WHERE f.grp > $3 OR (f.grp = $3 AND (f.sort_on < $4 OR (f.sort_on = $4 \
                 AND (f.dose_started_at > $5 OR (f.dose_started_at = $5 AND f.id > $6))))) \
               ORDER BY f.grp, f.sort_on DESC, f.dose_started_at, f.id LIMIT $7";
    let grp = i32::from(after.submitted);
    let at = DbTs(UtcTs::from_unix_micros(after.at));
    Ok(on_read!(db, |c| {
        sqlx::query_as(sql)
            .bind(clinic.as_uuid())
            .bind(protocol_id)
            .bind(grp)
            .bind(after.on.as_str())
            .bind(at)
            .bind(after.id)
            .bind(limit)
            .fetch_all(c)
            .await?
    }))
}

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub seq: i32,
    pub kind: String,
    pub payload: String,
    pub recorded_by: Uuid,
    pub recorded_at: DbTs,
}

/// A session's events in order.
pub async fn events(db: &Db, session: Uuid) -> Result<Vec<EventRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT seq, kind, payload, recorded_by, recorded_at FROM session_events WHERE session_id = $1 ORDER BY seq",
        )
        .bind(session)
        .fetch_all(c)
        .await?
    }))
}

/// An event of one of several sessions ([`events_from`]).
#[derive(Debug, Clone, FromRow)]
pub struct SessionEventRow {
    pub session_id: Uuid,
    #[sqlx(flatten)]
    pub event: EventRow,
}

/// The events of each `(session, first)` from its event number `first` on (events are numbered
/// from 0), in one statement: ordered by session, then number. The live floor board folds only
/// the events its sessions gained since it last read them.
pub async fn events_from(db: &Db, from: &[(Uuid, i32)]) -> Result<Vec<SessionEventRow>> {
    if from.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT session_id, seq, kind, payload, recorded_by, recorded_at FROM session_events WHERE ",
        );
        for (i, (session, first)) in from.iter().enumerate() {
            q.push(if i == 0 { "(session_id = " } else { " OR (session_id = " });
            q.push_bind(*session).push(" AND seq >= ").push_bind(*first).push(")");
        }
        q.push(" ORDER BY session_id, seq");
        q.build_query_as().fetch_all(c).await?
    }))
}

/// The events of a session read inside a write transaction, after [`lock_sessions`], so the
/// decision about a new event sees every event before it.
pub async fn events_in(tx: &mut Tx, session: Uuid) -> Result<Vec<EventRow>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT seq, kind, payload, recorded_by, recorded_at FROM session_events WHERE session_id = $1 ORDER BY seq",
        )
        .bind(session)
        .fetch_all(c)
        .await?
    }))
}

/// An event to append, decided and serialised (a request may decide several before writing them).
pub struct NewEvent<'a> {
    pub session: Uuid,
    /// The event's place: the number of events before it.
    pub seq: i32,
    pub kind: &'a str,
    pub payload: String,
    pub by: UserId,
    pub at: UtcTs,
    /// The session's state and dose start after this event (the projection).
    pub state: &'a str,
    pub dose_started_at: Option<UtcTs>,
}

/// Serialises the writers of the sessions `ids`: locks them for this transaction, in the order of
/// their ids, and returns the number of events of each that exists (absent: no such session). On
/// PostgreSQL the rows stay locked until commit, so the counts read here stay true until then;
/// SQLite's write transaction already holds the lock. The group-commit writer locks all the
/// sessions its batch writes at once, before its jobs run. The same order everywhere: two server
/// processes on one PostgreSQL never wait for each other in a circle.
pub async fn lock_sessions(tx: &mut Tx, ids: &[Uuid]) -> Result<HashMap<Uuid, i32>> {
    let mut counts = HashMap::with_capacity(ids.len());
    let lock = matches!(tx, Tx::Postgres(_));
    for chunk in ids.chunks(1000) {
        let rows: Vec<(Uuid, i32)> = on_tx!(tx, |c| {
            let mut q = sqlx::QueryBuilder::new("SELECT id, event_count FROM dosing_sessions WHERE id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(if lock { ") ORDER BY id FOR UPDATE" } else { ") ORDER BY id" });
            q.build_query_as().fetch_all(&mut *c).await?
        });
        counts.extend(rows);
    }
    Ok(counts)
}

/// Rows of events in one insert: 6 parameters each, far under both engines' limits.
const EVENTS_PER_INSERT: usize = 1000;

/// Pushes the insert of `rows` (one builder type per engine, hence a macro).
macro_rules! push_insert {
    ($q:expr, $rows:expr) => {
        $q.push("INSERT INTO session_events (session_id, seq, kind, payload, recorded_by, recorded_at) ");
        $q.push_values($rows, |mut row, e| {
            row.push_bind(e.session)
                .push_bind(e.seq)
                .push_bind(e.kind)
                .push_bind(e.payload.as_str())
                .push_bind(e.by.as_uuid())
                .push_bind(DbTs(e.at));
        });
    };
}

/// Appends events, of one session or of several (a batch of the group-commit writer), each
/// session's in `seq` order, and rewrites each session's projection as of its last: one insert and
/// one update however many events and sessions, sent as one statement on PostgreSQL (a
/// data-modifying `WITH`: a round trip less on the writer, which runs its batches one after the
/// other; SQLite has no such statement, and its round trips stay in the process). Two writers
/// racing for the same `seq` cannot both succeed: the second gets a conflict. The caller bumps the
/// clinic's floor counter ([`bump_floor`]) in the same transaction, once however many events it
/// appends.
pub async fn append_events(tx: &mut Tx, events: &[NewEvent<'_>]) -> Result<()> {
    // Each session's projection as of its last event here.
    let mut latest: Vec<&NewEvent<'_>> = Vec::new();
    for e in events {
        match latest.iter_mut().find(|l| l.session == e.session) {
            Some(l) if e.seq > l.seq => *l = e,
            Some(_) => {}
            None => latest.push(e),
        }
    }
    let Some((last_rows, earlier)) = events.rchunks(EVENTS_PER_INSERT).next().map(|last| {
        let split = events.len() - last.len();
        (last, &events[..split])
    }) else {
        return Ok(());
    };
    for rows in earlier.chunks(EVENTS_PER_INSERT) {
        on_tx!(tx, |c| {
            let mut q = sqlx::QueryBuilder::new("");
            push_insert!(q, rows);
            q.build().execute(&mut *c).await.map_err(|err| StoreError::conflict_on_unique(err, "session event"))?;
        });
    }
    let one_statement = matches!(tx, Tx::Postgres(_));
    let now = DbTs(UtcTs::now());
    on_tx!(tx, |c| {
        let mut q = sqlx::QueryBuilder::new(if one_statement { "WITH appended AS (" } else { "" });
        push_insert!(q, last_rows);
        let mut projection = sqlx::QueryBuilder::new("");
        let update = if one_statement { q.push("), ") } else { projection.push("WITH ") };
        update.push("latest (id, state, dose_started_at, event_count) AS (");
        update.push_values(&latest, |mut row, e| {
            row.push_bind(e.session).push_bind(e.state).push_bind(e.dose_started_at.map(DbTs)).push_bind(e.seq + 1);
        });
        update
            .push(
                ") UPDATE dosing_sessions SET state = latest.state, dose_started_at = latest.dose_started_at, \
                 event_count = latest.event_count, updated_at = ",
            )
            .push_bind(now)
            .push(" FROM latest WHERE dosing_sessions.id = latest.id");
        q.build().execute(&mut *c).await.map_err(|err| StoreError::conflict_on_unique(err, "session event"))?;
        if !one_statement {
            projection.build().execute(&mut *c).await?;
        }
    });
    Ok(())
}

/// Marks a change on the clinic's floor (read by the live board, across server processes);
/// returns the clinic's floor counter after it.
pub async fn bump_floor(tx: &mut Tx, clinic: ClinicId) -> Result<i64> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO floor_changes (clinic_id, counter) VALUES ($1, 1) \
             ON CONFLICT (clinic_id) DO UPDATE SET counter = floor_changes.counter + 1 RETURNING counter",
        )
        .bind(clinic.as_uuid())
        .fetch_one(c)
        .await?
    }))
}

/// The clinic's floor counter (0 before any session).
pub async fn floor_counter(db: &Db, clinic: ClinicId) -> Result<i64> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar::<_, i64>("SELECT counter FROM floor_changes WHERE clinic_id = $1")
            .bind(clinic.as_uuid())
            .fetch_optional(c)
            .await?
            .unwrap_or(0)
    }))
}

// ---------------------------------------------------------------------------------------------
// REMS Patient Monitoring Form submissions.

#[derive(Debug, Clone, FromRow)]
pub struct RemsSubmissionRow {
    pub id: Uuid,
    pub session_id: Uuid,
    pub form_version: String,
    pub submitted_on: String,
    pub confirmation: Option<String>,
    pub submitted_by: Uuid,
    pub recorded_at: DbTs,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_rems_submission(
    tx: &mut Tx,
    session: Uuid,
    form_version: &str,
    submitted_on: &str,
    confirmation: Option<&str>,
    by: UserId,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO rems_form_submissions (id, session_id, form_version, submitted_on, confirmation, submitted_by, \
             recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(session)
        .bind(form_version)
        .bind(submitted_on)
        .bind(confirmation)
        .bind(by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// [`rems_submissions`] of one session inside `tx` (with the one just recorded, before its commit).
pub async fn rems_submissions_in(tx: &mut Tx, session: Uuid) -> Result<Vec<RemsSubmissionRow>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_as(
            "SELECT id, session_id, form_version, submitted_on, confirmation, submitted_by, recorded_at \
             FROM rems_form_submissions WHERE session_id = $1 ORDER BY recorded_at",
        )
        .bind(session)
        .fetch_all(c)
        .await?
    }))
}

/// Submissions of the given sessions.
pub async fn rems_submissions(db: &Db, sessions: &[Uuid]) -> Result<Vec<RemsSubmissionRow>> {
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT id, session_id, form_version, submitted_on, confirmation, submitted_by, recorded_at \
             FROM rems_form_submissions WHERE session_id IN ",
        );
        crate::push_ids(&mut q, sessions);
        q.push(" ORDER BY recorded_at");
        q.build_query_as().fetch_all(c).await?
    }))
}

// ---------------------------------------------------------------------------------------------
// REMS certification of a location (GATE-03).

pub async fn set_rems_certified(tx: &mut Tx, clinic: ClinicId, location: Uuid, on: bool) -> Result<bool> {
    Ok(on_tx!(tx, |c| {
        sqlx::query("UPDATE locations SET rems_certified = $3 WHERE id = $1 AND clinic_id = $2")
            .bind(location)
            .bind(clinic.as_uuid())
            .bind(on)
            .execute(c)
            .await?
            .rows_affected()
            == 1
    }))
}

pub async fn rems_certified(db: &Db, location: Uuid) -> Result<bool> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar::<_, bool>("SELECT rems_certified FROM locations WHERE id = $1")
            .bind(location)
            .fetch_optional(c)
            .await?
            .unwrap_or(false)
    }))
}

// ---------------------------------------------------------------------------------------------
// What the REMS Patient Monitoring Form needs that the schedule does not: the setting's address
// and the monitoring HCP's telephone (KAP-SPEC 5.6).

/// A location as a REMS healthcare setting. The address parts are NULL until an admin records
/// them.
#[derive(Debug, Clone, Default, FromRow)]
pub struct RemsSettingRow {
    pub rems_certified: bool,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub state_code: Option<String>,
    pub zip: Option<String>,
}

pub async fn rems_setting(db: &Db, clinic: ClinicId, location: Uuid) -> Result<Option<RemsSettingRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT rems_certified, address_line1, address_line2, city, state_code, zip FROM locations \
             WHERE id = $1 AND clinic_id = $2",
        )
        .bind(location)
        .bind(clinic.as_uuid())
        .fetch_optional(c)
        .await?
    }))
}

/// Records a location's certification and address in one write; `false` when the location is
/// not the clinic's.
pub async fn set_rems_setting(tx: &mut Tx, clinic: ClinicId, location: Uuid, s: &RemsSettingRow) -> Result<bool> {
    Ok(on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE locations SET rems_certified = $3, address_line1 = $4, address_line2 = $5, city = $6, \
             state_code = $7, zip = $8 WHERE id = $1 AND clinic_id = $2",
        )
        .bind(location)
        .bind(clinic.as_uuid())
        .bind(s.rems_certified)
        .bind(s.address_line1.as_deref())
        .bind(s.address_line2.as_deref())
        .bind(s.city.as_deref())
        .bind(s.state_code.as_deref())
        .bind(s.zip.as_deref())
        .execute(c)
        .await?
        .rows_affected()
            == 1
    }))
}

/// A staff member's work telephone, as the form's "HCP conducting monitoring: Telephone".
pub async fn set_work_phone(tx: &mut Tx, user: UserId, phone: Option<&str>) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE users SET work_phone = $2 WHERE id = $1")
            .bind(user.as_uuid())
            .bind(phone)
            .execute(c)
            .await?;
    });
    Ok(())
}

pub async fn work_phone(db: &Db, user: UserId) -> Result<Option<String>> {
    Ok(on_read!(db, |c| {
        sqlx::query_scalar::<_, Option<String>>("SELECT work_phone FROM users WHERE id = $1")
            .bind(user.as_uuid())
            .fetch_optional(c)
            .await?
            .flatten()
    }))
}
