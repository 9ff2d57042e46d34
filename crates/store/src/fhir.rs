//! Rows behind the FHIR R4 API and the Bulk Data export (issue 8).
//!
//! Each [`Source`] is one table (or one join) read in key order. Searches page with a keyset
//! (`key >= cursor` / `key > last`, never OFFSET); the export streams a whole source with
//! `fetch`, one row at a time, so no table is ever held in memory. The SQL is built per request
//! from the filters actually given. Psychotherapy notes, integration notes, journal entries and
//! free-text session notes are not sources: nothing here can load them.

use futures_util::TryStreamExt;
use kapstone_domain::UtcTs;
use sqlx::FromRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use time::Date;
use uuid::Uuid;

use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

/// Where a source's rows come from and which columns its filters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Patients,
    Staff,
    Locations,
    Appointments,
    /// Dosing sessions (FHIR Encounter).
    Sessions,
    /// The latest consultation of each patient (diagnoses, allergies, medications, baseline vitals).
    Consultations,
    /// Readings and administrations of dosing sessions (Observation, MedicationAdministration).
    SessionEvents,
    Responses,
    Consents,
}

struct Spec {
    /// `SELECT columns FROM table(s) WHERE <clinic column> = $1`
    head: &'static str,
    k1: &'static str,
    k2: Option<&'static str>,
    patient: Option<&'static str>,
    at: Option<&'static str>,
}

impl Source {
    fn spec(self) -> Spec {
        match self {
            Source::Patients => Spec {
                head: "SELECT id, mrn, given_name, family_name, birth_date, sex_at_birth, gender_identity, phone, \
                       email, address FROM patients WHERE clinic_id = $1",
                k1: "id",
                k2: None,
                patient: Some("id"),
                at: None,
            },
            Source::Staff => Spec {
                head: "SELECT id, display_name, email, role, active FROM users WHERE role <> 'patient' AND clinic_id = $1",
                k1: "id",
                k2: None,
                patient: None,
                at: None,
            },
            Source::Locations => Spec {
                head: "SELECT id, name, time_zone FROM locations WHERE clinic_id = $1",
                k1: "id",
                k2: None,
                patient: None,
                at: None,
            },
            Source::Appointments => Spec {
                head: "SELECT a.id, a.patient_id, a.location_id, a.start_at, a.end_at, a.status, a.created_at, \
                       t.code AS type_code FROM appointments a JOIN appointment_types t ON t.id = a.type_id \
                       WHERE a.clinic_id = $1",
                k1: "a.id",
                k2: None,
                patient: Some("a.patient_id"),
                at: Some("a.start_at"),
            },
            Source::Sessions => Spec {
                head: "SELECT id, appointment_id, patient_id, location_id, state, dose_started_at, created_at, \
                       updated_at FROM dosing_sessions WHERE clinic_id = $1",
                k1: "id",
                k2: None,
                patient: Some("patient_id"),
                at: Some("created_at"),
            },
            Source::Consultations => Spec {
                head: "SELECT k.id, k.patient_id, k.version, k.body, k.diagnosis_table_version, k.recorded_at FROM consultations k \
                       WHERE k.version = (SELECT MAX(k2.version) FROM consultations k2 WHERE k2.patient_id = \
                       k.patient_id) AND k.clinic_id = $1",
                k1: "k.id",
                k2: None,
                patient: Some("k.patient_id"),
                at: None,
            },
            Source::SessionEvents => Spec {
                head: "SELECT e.session_id, e.seq, e.kind, e.payload, e.recorded_at, s.patient_id FROM session_events \
                       e JOIN dosing_sessions s ON s.id = e.session_id WHERE e.kind IN ('reading', \
                       'administration_started') AND s.clinic_id = $1",
                k1: "e.session_id",
                k2: Some("e.seq"),
                patient: Some("s.patient_id"),
                at: Some("e.recorded_at"),
            },
            Source::Responses => Spec {
                head: "SELECT id, patient_id, instrument, instrument_version, answers, total, severity, result, \
                       entered_via, submitted_at FROM questionnaire_responses WHERE clinic_id = $1",
                k1: "id",
                k2: None,
                patient: Some("patient_id"),
                at: Some("submitted_at"),
            },
            Source::Consents => Spec {
                head: "SELECT id, patient_id, document_id, document_version, document_sha256, signed_at, method, \
                       revoked_at FROM consents WHERE clinic_id = $1",
                k1: "id",
                k2: None,
                patient: Some("patient_id"),
                at: Some("signed_at"),
            },
        }
    }
}

/// A row's place in its source's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub k1: Uuid,
    pub k2: i64,
}

/// Where a page starts: at a row (the cursor of a `next` link) or after one (the next batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    At(Key),
    After(Key),
}

/// An equality filter on a column the caller names (a typed search parameter).
#[derive(Debug, Clone)]
pub enum Eq {
    Id(Uuid),
    Mrn(String),
    BirthDate(Date),
    /// Appointment status, as stored.
    AppointmentStatus(String),
    /// A questionnaire's instrument (`phq9`, ...).
    Instrument(String),
}

/// Filters on a source. `clinic` is always applied.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub clinic: Uuid,
    pub patient: Option<Uuid>,
    /// Patients with an appointment at this location (a FHIR Group of the export).
    pub location_group: Option<Uuid>,
    pub from: Option<UtcTs>,
    pub to: Option<UtcTs>,
    pub eq: Vec<Eq>,
}

enum Bind {
    Uuid(Uuid),
    Ts(DbTs),
    Int(i64),
    Text(String),
    Date(Date),
}

fn build(src: Source, f: &Filter, start: Option<Start>, limit: Option<i64>) -> (String, Vec<Bind>) {
    let s = src.spec();
    let mut sql = s.head.to_owned();
    let mut binds = vec![Bind::Uuid(f.clinic)];
    let next = |binds: &mut Vec<Bind>, b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    if let (Some(p), Some(col)) = (f.patient, s.patient) {
        sql.push_str(&format!(" AND {col} = {}", next(&mut binds, Bind::Uuid(p))));
    }
    if let (Some(g), Some(col)) = (f.location_group, s.patient) {
        let n = next(&mut binds, Bind::Uuid(g));
        sql.push_str(&format!(" AND {col} IN (SELECT ga.patient_id FROM appointments ga WHERE ga.location_id = {n})"));
    }
    if let Some(col) = s.at {
        if let Some(from) = f.from {
            sql.push_str(&format!(" AND {col} >= {}", next(&mut binds, Bind::Ts(DbTs(from)))));
        }
        if let Some(to) = f.to {
            sql.push_str(&format!(" AND {col} < {}", next(&mut binds, Bind::Ts(DbTs(to)))));
        }
    }
    for e in &f.eq {
        let (col, b) = match (e, src) {
            (Eq::Id(id), _) => (s.k1, Bind::Uuid(*id)),
            (Eq::Mrn(m), Source::Patients) => ("mrn", Bind::Text(m.clone())),
            (Eq::BirthDate(d), Source::Patients) => ("birth_date", Bind::Date(*d)),
            (Eq::AppointmentStatus(v), Source::Appointments) => ("a.status", Bind::Text(v.clone())),
            (Eq::Instrument(v), Source::Responses) => ("instrument", Bind::Text(v.clone())),
            // A filter this source has no column for matches nothing.
            _ => {
                sql.push_str(" AND 1 = 0");
                continue;
            }
        };
        sql.push_str(&format!(" AND {col} = {}", next(&mut binds, b)));
    }
    if let Some(start) = start {
        let (key, op) = match start {
            Start::At(k) => (k, ">="),
            Start::After(k) => (k, ">"),
        };
        let a = next(&mut binds, Bind::Uuid(key.k1));
        match s.k2 {
            Some(k2) => {
                let b = next(&mut binds, Bind::Int(key.k2));
                sql.push_str(&format!(" AND ({} > {a} OR ({} = {a} AND {k2} {op} {b}))", s.k1, s.k1));
            }
            None => sql.push_str(&format!(" AND {} {op} {a}", s.k1)),
        }
    }
    if let Some(limit) = limit {
        match s.k2 {
            Some(k2) => sql.push_str(&format!(" ORDER BY {}, {k2}", s.k1)),
            None => sql.push_str(&format!(" ORDER BY {}", s.k1)),
        }
        sql.push_str(&format!(" LIMIT {}", next(&mut binds, Bind::Int(limit))));
    }
    (sql, binds)
}

macro_rules! bound {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bind::Uuid(v) => q.bind(*v),
                Bind::Ts(v) => q.bind(*v),
                Bind::Int(v) => q.bind(*v),
                Bind::Text(v) => q.bind(v.clone()),
                Bind::Date(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// Rows of both engines.
pub trait SourceRow: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static {
    const SOURCE: Source;
    fn key(&self) -> Key;
}

/// One page of `R`'s source in key order, from `start`, at most `limit` rows.
pub async fn page<R: SourceRow>(db: &Db, f: &Filter, start: Option<Start>, limit: i64) -> Result<Vec<R>> {
    let (sql, binds) = build(R::SOURCE, f, start, Some(limit));
    Ok(on_read!(db, |c| {
        bound!(sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql.clone())), &binds).fetch_all(c).await?
    }))
}

/// Every row of `R`'s source that `f` selects, streamed one at a time into `each` (unordered).
/// Returns the number of rows.
pub async fn stream<R: SourceRow>(
    db: &Db,
    f: &Filter,
    each: &mut (dyn FnMut(R) -> std::io::Result<()> + Send),
) -> Result<u64> {
    let (sql, binds) = build(R::SOURCE, f, None, None);
    let mut n = 0_u64;
    on_read!(db, |c| {
        let mut rows = bound!(sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql.clone())), &binds).fetch(c);
        while let Some(row) = rows.try_next().await? {
            each(row).map_err(|e| crate::StoreError::Corrupt(format!("export write failed: {e}")))?;
            n += 1;
        }
    });
    Ok(n)
}

#[derive(Debug, Clone, FromRow)]
pub struct PatientRow {
    pub id: Uuid,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: Date,
    pub sex_at_birth: String,
    pub gender_identity: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct StaffRow {
    pub id: Uuid,
    pub display_name: String,
    pub email: String,
    pub role: String,
    pub active: bool,
}

#[derive(Debug, Clone, FromRow)]
pub struct LocationRow {
    pub id: Uuid,
    pub name: String,
    pub time_zone: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct AppointmentRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub location_id: Uuid,
    pub start_at: DbTs,
    pub end_at: DbTs,
    pub status: String,
    pub created_at: DbTs,
    pub type_code: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub appointment_id: Uuid,
    pub patient_id: Uuid,
    pub location_id: Uuid,
    pub state: String,
    pub dose_started_at: Option<DbTs>,
    pub created_at: DbTs,
    pub updated_at: DbTs,
}

#[derive(Debug, Clone, FromRow)]
pub struct ConsultationRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub version: i32,
    pub body: String,
    pub diagnosis_table_version: String,
    pub recorded_at: DbTs,
}

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub session_id: Uuid,
    pub seq: i32,
    pub kind: String,
    pub payload: String,
    pub recorded_at: DbTs,
    pub patient_id: Uuid,
}

#[derive(Debug, Clone, FromRow)]
pub struct ResponseRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub instrument: String,
    pub instrument_version: String,
    pub answers: String,
    pub total: Option<i32>,
    pub severity: Option<String>,
    pub result: String,
    pub entered_via: String,
    pub submitted_at: DbTs,
}

#[derive(Debug, Clone, FromRow)]
pub struct ConsentRow {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub document_id: String,
    pub document_version: String,
    pub document_sha256: String,
    pub signed_at: DbTs,
    pub method: String,
    pub revoked_at: Option<DbTs>,
}

macro_rules! single_key {
    ($($row:ty => $src:expr),* $(,)?) => {
        $(impl SourceRow for $row {
            const SOURCE: Source = $src;
            fn key(&self) -> Key {
                Key { k1: self.id, k2: 0 }
            }
        })*
    };
}

single_key! {
    PatientRow => Source::Patients,
    StaffRow => Source::Staff,
    LocationRow => Source::Locations,
    AppointmentRow => Source::Appointments,
    SessionRow => Source::Sessions,
    ConsultationRow => Source::Consultations,
    ResponseRow => Source::Responses,
    ConsentRow => Source::Consents,
}

impl SourceRow for EventRow {
    const SOURCE: Source = Source::SessionEvents;
    fn key(&self) -> Key {
        Key { k1: self.session_id, k2: i64::from(self.seq) }
    }
}

/// One consultation version by id (a Condition, AllergyIntolerance or MedicationStatement read
/// names the version it came from, which may since have been superseded).
pub async fn consultation(db: &Db, clinic: Uuid, id: Uuid) -> Result<Option<ConsultationRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, patient_id, version, body, diagnosis_table_version, recorded_at FROM consultations \
             WHERE clinic_id = $1 AND id = $2",
        )
        .bind(clinic)
        .bind(id)
        .fetch_optional(c)
        .await?
    }))
}

/// One reading or administration event of a session of the clinic.
pub async fn event(db: &Db, clinic: Uuid, session: Uuid, seq: i32) -> Result<Option<EventRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT e.session_id, e.seq, e.kind, e.payload, e.recorded_at, s.patient_id FROM session_events e \
             JOIN dosing_sessions s ON s.id = e.session_id WHERE s.clinic_id = $1 AND e.session_id = $2 \
             AND e.seq = $3 AND e.kind IN ('reading', 'administration_started')",
        )
        .bind(clinic)
        .bind(session)
        .bind(seq)
        .fetch_optional(c)
        .await?
    }))
}

/// An audit event for FHIR AuditEvent (admins).
#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub at: DbTs,
    pub actor_user_id: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub patient_id: Option<String>,
    pub source_ip: Option<String>,
    pub outcome: String,
}

/// The clinic's audit events in `seq` order from `from_seq`, optionally for one patient and a
/// time range, at most `limit`.
pub async fn audit_page(db: &Db, f: &Filter, seq: Option<(i64, bool)>, limit: i64) -> Result<Vec<AuditRow>> {
    let mut sql = "SELECT seq, at, actor_user_id, actor_role, action, entity_type, entity_id, patient_id, source_ip, \
                   outcome FROM audit_events WHERE clinic_id = $1"
        .to_owned();
    let mut binds = vec![Bind::Text(f.clinic.to_string())];
    let next = |binds: &mut Vec<Bind>, b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    if let Some(p) = f.patient {
        sql.push_str(&format!(" AND patient_id = {}", next(&mut binds, Bind::Text(p.to_string()))));
    }
    if let Some(from) = f.from {
        sql.push_str(&format!(" AND at >= {}", next(&mut binds, Bind::Ts(DbTs(from)))));
    }
    if let Some(to) = f.to {
        sql.push_str(&format!(" AND at < {}", next(&mut binds, Bind::Ts(DbTs(to)))));
    }
    if let Some((s, inclusive)) = seq {
        let op = if inclusive { ">=" } else { ">" };
        sql.push_str(&format!(" AND seq {op} {}", next(&mut binds, Bind::Int(s))));
    }
    sql.push_str(&format!(" ORDER BY seq LIMIT {}", next(&mut binds, Bind::Int(limit))));
    Ok(on_read!(db, |c| {
        bound!(sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql.clone())), &binds).fetch_all(c).await?
    }))
}

// ---- Bulk export jobs ----

#[derive(Debug, Clone, FromRow)]
pub struct ExportJob {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub requester: Uuid,
    pub level: String,
    pub group_id: Option<Uuid>,
    /// Comma-separated resource types.
    pub types: String,
    pub request_url: String,
    pub status: String,
    pub progress: Option<String>,
    /// JSON: `[{"type", "file", "count"}]`.
    pub output: Option<String>,
    pub error: Option<String>,
    pub requested_at: DbTs,
    pub finished_at: Option<DbTs>,
}

const JOB_COLUMNS: &str = "id, clinic_id, requester, level, group_id, types, request_url, status, progress, output, \
                           error, requested_at, finished_at";

pub struct NewExportJob<'a> {
    pub clinic: Uuid,
    pub requester: Uuid,
    pub level: &'a str,
    pub group: Option<Uuid>,
    pub types: &'a str,
    pub request_url: &'a str,
    pub at: UtcTs,
}

pub async fn insert_job(tx: &mut Tx, j: &NewExportJob<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO fhir_export_jobs (id, clinic_id, requester, level, group_id, types, request_url, status, \
             requested_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8)",
        )
        .bind(id)
        .bind(j.clinic)
        .bind(j.requester)
        .bind(j.level)
        .bind(j.group)
        .bind(j.types)
        .bind(j.request_url)
        .bind(DbTs(j.at))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// The requester's own job: another account's job is `None`, as is an unknown id.
pub async fn own_job(db: &Db, clinic: Uuid, requester: Uuid, id: Uuid) -> Result<Option<ExportJob>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM fhir_export_jobs WHERE clinic_id = $1 AND requester = $2 AND id = $3");
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic).bind(requester).bind(id).fetch_optional(c).await?
    }))
}

/// Claims the oldest queued job (or one whose runner's lease ran out) for this process. The
/// `UPDATE ... WHERE status = ...` runs once per job even with several servers on one database.
pub async fn claim_job(db: &Db, now: UtcTs, lease_until: UtcTs) -> Result<Option<ExportJob>> {
    let sql = format!(
        "UPDATE fhir_export_jobs SET status = 'running', lease_until = $1, progress = 'started' WHERE id = \
         (SELECT id FROM fhir_export_jobs WHERE status = 'queued' OR (status = 'running' AND lease_until < $2) \
         ORDER BY requested_at LIMIT 1) AND (status = 'queued' OR (status = 'running' AND lease_until < $2)) \
         RETURNING {JOB_COLUMNS}"
    );
    let mut tx = db.begin().await?;
    let job = on_tx!(&mut tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(DbTs(lease_until))
            .bind(DbTs(now))
            .fetch_optional(&mut *c)
            .await?
    });
    tx.commit().await?;
    Ok(job)
}

pub async fn job_progress(db: &Db, id: Uuid, progress: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |c| {
        sqlx::query("UPDATE fhir_export_jobs SET progress = $1 WHERE id = $2 AND status = 'running'")
            .bind(progress)
            .bind(id)
            .execute(&mut *c)
            .await?;
    });
    tx.commit().await
}

/// Records the end of a job: its files (`output`) or its error.
pub async fn finish_job(tx: &mut Tx, id: Uuid, output: Option<&str>, error: Option<&str>, at: UtcTs) -> Result<()> {
    let status = if error.is_some() { "failed" } else { "completed" };
    on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE fhir_export_jobs SET status = $1, output = $2, error = $3, finished_at = $4, lease_until = NULL, \
             progress = NULL WHERE id = $5",
        )
        .bind(status)
        .bind(output)
        .bind(error)
        .bind(DbTs(at))
        .bind(id)
        .execute(c)
        .await?;
    });
    Ok(())
}
