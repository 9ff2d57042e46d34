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
    pub sex_at_birth: String,
    pub gender_identity: Option<String>,
    pub pronouns: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub emergency_contact_name: Option<String>,
    pub emergency_contact_phone: Option<String>,
    pub created_at: DbTs,
}

impl PatientRow {
    pub fn patient_id(&self) -> PatientId {
        PatientId::from_uuid(self.id)
    }

    pub fn clinic(&self) -> kapstone_domain::ClinicId {
        kapstone_domain::ClinicId::from_uuid(self.clinic_id)
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
    let d = &p.details;
    let row = PatientRow {
        id: id.as_uuid(),
        clinic_id: clinic.as_uuid(),
        mrn: mrn.as_str().to_owned(),
        given_name: p.given_name.as_str().to_owned(),
        family_name: p.family_name.as_str().to_owned(),
        birth_date: p.birth_date.date(),
        sex_at_birth: p.sex_at_birth.as_str().to_owned(),
        gender_identity: d.gender_identity.clone(),
        pronouns: d.pronouns.clone(),
        phone: d.phone.as_ref().map(|x| x.as_str().to_owned()),
        email: d.email.as_ref().map(|x| x.as_str().to_owned()),
        address: d.address.clone(),
        emergency_contact_name: d.emergency_contact_name.as_ref().map(|x| x.as_str().to_owned()),
        emergency_contact_phone: d.emergency_contact_phone.as_ref().map(|x| x.as_str().to_owned()),
        created_at: DbTs(now),
    };
    let key = p.search_key(&mrn);
    let r = &row;
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO patients (id, clinic_id, mrn, given_name, family_name, birth_date, created_at, sex_at_birth, \
             gender_identity, pronouns, phone, email, address, emergency_contact_name, emergency_contact_phone, search_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(r.id)
        .bind(r.clinic_id)
        .bind(&r.mrn)
        .bind(&r.given_name)
        .bind(&r.family_name)
        .bind(r.birth_date)
        .bind(r.created_at)
        .bind(&r.sex_at_birth)
        .bind(&r.gender_identity)
        .bind(&r.pronouns)
        .bind(&r.phone)
        .bind(&r.email)
        .bind(&r.address)
        .bind(&r.emergency_contact_name)
        .bind(&r.emergency_contact_phone)
        .bind(&key)
        .execute(c)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "mrn"))?;
    });
    Ok(row)
}

const COLUMNS: &str = "SELECT id, clinic_id, mrn, given_name, family_name, birth_date, sex_at_birth, gender_identity, \
     pronouns, phone, email, address, emergency_contact_name, emergency_contact_phone, created_at FROM patients";

/// How a search box query is read: a date of birth, an MRN, phone digits, or name words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientSearch {
    BirthDate(Date),
    Mrn(String),
    Phone(String),
    /// Up to three folded words, each of which must appear.
    Words(Vec<String>),
}

impl PatientSearch {
    pub fn parse(q: &str) -> Option<Self> {
        let q = q.trim();
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        if let Ok(d) = Date::parse(q, &fmt) {
            return Some(PatientSearch::BirthDate(d));
        }
        if let Ok(m) = Mrn::parse(q) {
            return Some(PatientSearch::Mrn(m.as_str().to_owned()));
        }
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 4 && q.chars().all(|c| c.is_ascii_digit() || " +-.()".contains(c)) {
            return Some(PatientSearch::Phone(digits));
        }
        let words: Vec<String> = kapstone_domain::patient::fold_for_search(q)
            .split(' ')
            .filter(|w| !w.is_empty())
            .take(3)
            .map(str::to_owned)
            .collect();
        (!words.is_empty()).then_some(PatientSearch::Words(words))
    }
}

/// Where a page of patients ends: the sort key of its last row (family name, given name, id).
/// The id breaks ties, so every patient is on exactly one page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PatientKey {
    pub family_name: String,
    pub given_name: String,
    pub id: Uuid,
}

impl PatientRow {
    pub fn key(&self) -> PatientKey {
        PatientKey { family_name: self.family_name.clone(), given_name: self.given_name.clone(), id: self.id }
    }
}

/// The keyset condition "after `key`" in (family_name, given_name, id) order, its parameters
/// numbered from `$n`: written out rather than as a row comparison, the same on both engines.
fn after_clause(n: usize) -> String {
    format!(
        " AND (family_name > ${n} OR (family_name = ${n} AND (given_name > ${m} OR (given_name = ${m} AND id > ${o}))))",
        m = n + 1,
        o = n + 2
    )
}

/// Finds the clinic's patients matching `q`, by family then given name, after `after`.
pub async fn search(
    db: &Db,
    clinic: ClinicId,
    q: &PatientSearch,
    after: Option<&PatientKey>,
    limit: i64,
) -> Result<Vec<PatientRow>> {
    // One statement per shape; unused filters are bound as NULL. Words are folded to [a-z0-9 ]
    // (see fold_for_search), so they carry no LIKE wildcards.
    let keyset = if after.is_some() { after_clause(8) } else { String::new() };
    let sql = format!(
        "{COLUMNS} WHERE clinic_id = $1 AND ($2 IS NULL OR birth_date = $2) AND ($3 IS NULL OR mrn = $3) \
         AND ($4 IS NULL OR search_key LIKE $4) AND ($5 IS NULL OR search_key LIKE $5) \
         AND ($6 IS NULL OR search_key LIKE $6){keyset} \
         ORDER BY family_name, given_name, id LIMIT $7"
    );
    let (date, mrn, words) = match q {
        PatientSearch::BirthDate(d) => (Some(*d), None, Vec::new()),
        PatientSearch::Mrn(m) => (None, Some(m.clone()), Vec::new()),
        PatientSearch::Phone(digits) => (None, None, vec![format!("%{digits}%")]),
        PatientSearch::Words(w) => (None, None, w.iter().map(|w| format!("%{w}%")).collect()),
    };
    let word = |i: usize| words.get(i).cloned();
    Ok(on_read!(db, |c| {
        let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(clinic.as_uuid())
            .bind(date)
            .bind(mrn.clone())
            .bind(word(0))
            .bind(word(1))
            .bind(word(2))
            .bind(limit);
        let q = match after {
            Some(k) => q.bind(k.family_name.clone()).bind(k.given_name.clone()).bind(k.id),
            None => q,
        };
        q.fetch_all(c).await?
    }))
}

/// One patient, only if they belong to `clinic`.
pub async fn get(db: &Db, clinic: ClinicId, id: PatientId) -> Result<Option<PatientRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE id = $1 AND clinic_id = $2")))
            .bind(id.as_uuid())
            .bind(clinic.as_uuid())
            .fetch_optional(c)
            .await?
    }))
}

/// (id, given name, family name) of these patients of `clinic`, in one statement (for boards
/// that show initials).
pub async fn names(db: &Db, clinic: ClinicId, ids: &[Uuid]) -> Result<Vec<(Uuid, String, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new("SELECT id, given_name, family_name FROM patients WHERE clinic_id = ");
        q.push_bind(clinic.as_uuid()).push(" AND id IN ");
        crate::push_ids(&mut q, ids);
        q.build_query_as().fetch_all(c).await?
    }))
}

/// A patient with the small facts the chart shows beside the registration, and the single-row
/// records its panels read, in one statement (each was a statement of its own; on SQLite every
/// statement is a hand-over to the connection's thread and back).
#[derive(Debug, Clone, FromRow)]
pub struct ChartHead {
    #[sqlx(flatten)]
    pub patient: PatientRow,
    /// The patient has a portal account (active or not).
    pub has_account: bool,
    /// The date of the latest recorded Spravato REMS enrolment.
    pub rems_enrolled_on: Option<String>,
    /// The clinic's time zone.
    pub clinic_time_zone: Option<String>,
    /// The version of the clinic's settings in force (`None`: none saved, the defaults apply).
    pub settings_version: Option<i64>,
    #[sqlx(flatten)]
    consultation: LatestConsultation,
    #[sqlx(flatten)]
    decision: DecisionInForce,
    /// JSON `[[instrument, assigned at (µs)], …]` of the open questionnaire assignments, oldest
    /// first (`NULL`/`[]`: none).
    open_assignments: Option<String>,
    /// JSON `[reason, …]` of the open safety alerts, oldest first; `NULL` when not asked for.
    open_alerts: Option<String>,
    /// JSON `[[event, reason, recorded at (µs)], …]` of the pathway events, in recording order.
    pathway_events: Option<String>,
    /// JSON `[[id, document, signed at (µs), revoked at (µs) or null], …]`: the latest signature
    /// of each consent document, by document.
    consents: Option<String>,
    /// JSON `[[id, opened at (µs), state, dose started at (µs) or null, protocol], …]` of the
    /// patient's dosing sessions, newest first; `NULL` when not asked for.
    dosing_sessions: Option<String>,
    /// JSON `[[id, instrument, total, severity, result, entered via, submitted at (µs)], …]` of all
    /// the patient's questionnaire responses, oldest first.
    responses: Option<String>,
    /// JSON `[[id, starts at (µs), status, type definition, place's time zone], …]` of the
    /// patient's appointments, by start; `NULL` when not asked for.
    appointments: Option<String>,
}

/// What [`chart_head`] reads beyond what every reader of the chart sees: each list only for the
/// roles that may read it.
#[derive(Debug, Clone, Copy)]
pub struct ChartParts {
    pub safety_alerts: bool,
    pub dosing_sessions: bool,
    pub appointments: bool,
}

/// The latest signature of a consent document as the chart reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartConsent {
    pub id: Uuid,
    pub document_id: String,
    pub signed_at: UtcTs,
    pub revoked: bool,
}

/// A dosing session as the chart lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSession {
    pub id: Uuid,
    pub created_at: UtcTs,
    pub state: String,
    pub dose_started_at: Option<UtcTs>,
    pub protocol_id: String,
}

/// An open questionnaire assignment as the chart lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartAssignment {
    pub instrument: String,
    pub assigned_at: UtcTs,
}

/// A pathway event (hold, resume, …) as the chart lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartPathwayEvent {
    pub event: String,
    pub reason: String,
    pub recorded_at: UtcTs,
}

/// Decodes one of the chart's JSON lists (`NULL` is an empty list: PostgreSQL's `json_agg` of no
/// rows).
fn json_list<T: serde::de::DeserializeOwned>(json: Option<&str>, what: &str) -> Result<Vec<T>> {
    match json {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("chart {what}: {e}"))),
    }
}

/// A UUID as the chart's JSON lists hold it (32 hex digits on SQLite, hyphenated on PostgreSQL).
fn json_uuid(text: &str, what: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(format!("chart {what}: {e}")))
}

/// The columns of the patient's newest consultation version, all `NULL` when there is none.
#[derive(Debug, Clone, FromRow)]
struct LatestConsultation {
    consultation_id: Option<Uuid>,
    consultation_version: Option<i32>,
    consultation_body: Option<String>,
    consultation_table_version: Option<String>,
    consultation_recorded_by: Option<Uuid>,
    consultation_recorded_at: Option<DbTs>,
}

/// The columns of the patient's eligibility decision in force, all `NULL` when there is none.
#[derive(Debug, Clone, FromRow)]
struct DecisionInForce {
    decision_verdict: Option<String>,
    decision_routes: Option<String>,
    decision_input_sha256: Option<String>,
}

impl ChartHead {
    /// The patient's newest consultation version, as [`crate::eligibility::latest_consultation`]
    /// reads it.
    pub fn consultation(&self) -> Option<crate::eligibility::ConsultationRow> {
        let c = &self.consultation;
        Some(crate::eligibility::ConsultationRow {
            id: c.consultation_id?,
            version: c.consultation_version?,
            body: c.consultation_body.clone()?,
            diagnosis_table_version: c.consultation_table_version.clone()?,
            recorded_by: c.consultation_recorded_by?,
            recorded_at: c.consultation_recorded_at?,
        })
    }

    /// The decision in force as [`crate::eligibility::PathwayInputs::decisions`] holds it:
    /// (patient, verdict, routes JSON, input hash).
    pub fn decision_in_force(&self) -> Option<(Uuid, String, String, String)> {
        let d = &self.decision;
        Some((
            self.patient.id,
            d.decision_verdict.clone()?,
            d.decision_routes.clone()?,
            d.decision_input_sha256.clone()?,
        ))
    }

    pub fn open_assignments(&self) -> Result<Vec<ChartAssignment>> {
        let rows: Vec<(String, i64)> = json_list(self.open_assignments.as_deref(), "assignments")?;
        Ok(rows
            .into_iter()
            .map(|(instrument, at)| ChartAssignment { instrument, assigned_at: UtcTs::from_unix_micros(at) })
            .collect())
    }

    /// The reasons of the open safety alerts (empty when [`chart_head`] was not asked for them).
    pub fn open_alert_reasons(&self) -> Result<Vec<String>> {
        json_list(self.open_alerts.as_deref(), "alerts")
    }

    /// The latest signature of each consent document, by document id.
    pub fn consents(&self) -> Result<Vec<ChartConsent>> {
        let rows: Vec<(String, String, i64, Option<i64>)> = json_list(self.consents.as_deref(), "consents")?;
        rows.into_iter()
            .map(|(id, document_id, signed, revoked)| {
                Ok(ChartConsent {
                    id: json_uuid(&id, "consent")?,
                    document_id,
                    signed_at: UtcTs::from_unix_micros(signed),
                    revoked: revoked.is_some(),
                })
            })
            .collect()
    }

    /// The patient's dosing sessions, newest first (empty when [`chart_head`] was not asked for
    /// them).
    pub fn dosing_sessions(&self) -> Result<Vec<ChartSession>> {
        let rows: Vec<(String, i64, String, Option<i64>, String)> =
            json_list(self.dosing_sessions.as_deref(), "dosing sessions")?;
        rows.into_iter()
            .map(|(id, created, state, dose, protocol_id)| {
                Ok(ChartSession {
                    id: json_uuid(&id, "dosing session")?,
                    created_at: UtcTs::from_unix_micros(created),
                    state,
                    dose_started_at: dose.map(UtcTs::from_unix_micros),
                    protocol_id,
                })
            })
            .collect()
    }

    /// All the patient's questionnaire responses, oldest first (by time submitted, then id; the
    /// index `(patient_id, submitted_at)`).
    pub fn responses(&self) -> Result<Vec<crate::questionnaires::ResponseSummary>> {
        type Row = (String, String, Option<i32>, Option<String>, String, String, i64);
        let rows: Vec<Row> = json_list(self.responses.as_deref(), "responses")?;
        rows.into_iter()
            .map(|(id, instrument, total, severity, result, entered_via, submitted)| {
                Ok(crate::questionnaires::ResponseSummary {
                    id: json_uuid(&id, "response")?,
                    instrument,
                    total,
                    severity,
                    result,
                    entered_via,
                    submitted_at: DbTs(UtcTs::from_unix_micros(submitted)),
                })
            })
            .collect()
    }

    /// The patient's appointments by start, then id (empty when [`chart_head`] was not asked for
    /// them).
    pub fn appointments(&self) -> Result<Vec<crate::scheduling::ChartAppointmentRow>> {
        let rows: Vec<(String, i64, String, String, String)> = json_list(self.appointments.as_deref(), "appointments")?;
        rows.into_iter()
            .map(|(id, start, status, type_definition, time_zone)| {
                Ok(crate::scheduling::ChartAppointmentRow {
                    id: json_uuid(&id, "appointment")?,
                    start_at: DbTs(UtcTs::from_unix_micros(start)),
                    status,
                    type_definition,
                    time_zone,
                })
            })
            .collect()
    }

    pub fn pathway_events(&self) -> Result<Vec<ChartPathwayEvent>> {
        let rows: Vec<(String, String, i64)> = json_list(self.pathway_events.as_deref(), "pathway events")?;
        Ok(rows
            .into_iter()
            .map(|(event, reason, at)| ChartPathwayEvent { event, reason, recorded_at: UtcTs::from_unix_micros(at) })
            .collect())
    }
}

/// The SQL of [`chart_head`] for an engine: the short lists come as JSON arrays, aggregated in
/// order by the database (`json_group_array` on SQLite, `json_agg` on PostgreSQL; timestamps as
/// integer microseconds on both, as SQLite stores them).
fn chart_head_sql(backend: crate::Backend) -> String {
    let (agg, array, micros, text, uuid) = match backend {
        crate::Backend::Sqlite => ("json_group_array", "json_array", "", "", "hex({})"),
        crate::Backend::Postgres => {
            ("json_agg", "json_build_array", "(extract(epoch FROM {})*1000000)::bigint", "::text", "{}::text")
        }
    };
    let id = |col: &str| uuid.replace("{}", col);
    let us = |col: &str| if micros.is_empty() { col.to_owned() } else { micros.replace("{}", col) };
    format!(
        "SELECT p.id, p.clinic_id, p.mrn, p.given_name, p.family_name, p.birth_date, p.sex_at_birth, \
         p.gender_identity, p.pronouns, p.phone, p.email, p.address, p.emergency_contact_name, \
         p.emergency_contact_phone, p.created_at, \
         EXISTS (SELECT 1 FROM users u WHERE u.patient_id = p.id) AS has_account, \
         (SELECT r.enrolled_on FROM rems_enrollments r WHERE r.patient_id = p.id \
          ORDER BY r.recorded_at DESC LIMIT 1) AS rems_enrolled_on, \
         (SELECT k.time_zone FROM clinics k WHERE k.id = p.clinic_id) AS clinic_time_zone, \
         (SELECT MAX(s.version) FROM clinic_settings s WHERE s.clinic_id = p.clinic_id) AS settings_version, \
         k.id AS consultation_id, k.version AS consultation_version, k.body AS consultation_body, \
         k.diagnosis_table_version AS consultation_table_version, k.recorded_by AS consultation_recorded_by, \
         k.recorded_at AS consultation_recorded_at, \
         d.verdict AS decision_verdict, d.routes AS decision_routes, d.input_sha256 AS decision_input_sha256, \
         (SELECT {agg}({array}(a.instrument, {assigned}) ORDER BY a.assigned_at, a.id){text} \
          FROM questionnaire_assignments a WHERE a.patient_id = p.id AND a.completed_at IS NULL) AS open_assignments, \
         CASE WHEN $3 THEN (SELECT {agg}(s.reason ORDER BY s.raised_at, s.id){text} FROM safety_alerts s \
          WHERE s.clinic_id = p.clinic_id AND s.patient_id = p.id AND s.acknowledged_at IS NULL) END AS open_alerts, \
         (SELECT {agg}({array}(e.event, e.reason, {recorded}) ORDER BY e.id){text} \
          FROM pathway_events e WHERE e.patient_id = p.id) AS pathway_events, \
         (SELECT {agg}({array}({consent_id}, c.document_id, {signed}, {revoked}) ORDER BY c.document_id){text} \
          FROM consents c WHERE c.patient_id = p.id AND c.id = (SELECT c2.id FROM consents c2 \
          WHERE c2.patient_id = c.patient_id AND c2.document_id = c.document_id ORDER BY c2.id DESC LIMIT 1)) \
          AS consents, \
         CASE WHEN $4 THEN (SELECT {agg}({array}({session_id}, {opened}, ds.state, {dosed}, ds.protocol_id) \
          ORDER BY ds.created_at DESC){text} FROM dosing_sessions ds \
          WHERE ds.clinic_id = p.clinic_id AND ds.patient_id = p.id) END AS dosing_sessions, \
         (SELECT {agg}({array}({response_id}, q.instrument, q.total, q.severity, q.result, q.entered_via, \
          {submitted}) ORDER BY q.submitted_at, q.id){text} FROM questionnaire_responses q \
          WHERE q.patient_id = p.id) AS responses, \
         CASE WHEN $5 THEN (SELECT {agg}({array}({appointment_id}, {starts}, ap.status, t.definition, l.time_zone) \
          ORDER BY ap.start_at, ap.id){text} FROM appointments ap JOIN appointment_types t ON t.id = ap.type_id \
          JOIN locations l ON l.id = ap.location_id WHERE ap.patient_id = p.id) END AS appointments \
         FROM patients p \
         LEFT JOIN consultations k ON k.id = (SELECT k2.id FROM consultations k2 WHERE k2.patient_id = p.id \
          ORDER BY k2.version DESC LIMIT 1) \
         LEFT JOIN eligibility_decisions d ON d.patient_id = p.id \
          AND NOT EXISTS (SELECT 1 FROM eligibility_decisions a WHERE a.amends_id = d.id) \
         WHERE p.id = $1 AND p.clinic_id = $2",
        assigned = us("a.assigned_at"),
        recorded = us("e.recorded_at"),
        consent_id = id("c.id"),
        signed = us("c.signed_at"),
        revoked = us("c.revoked_at"),
        session_id = id("ds.id"),
        opened = us("ds.created_at"),
        dosed = us("ds.dose_started_at"),
        response_id = id("q.id"),
        submitted = us("q.submitted_at"),
        appointment_id = id("ap.id"),
        starts = us("ap.start_at"),
    )
}

/// [`get`] with the facts of [`ChartHead`]; `None` when the patient is not in this clinic; the
/// open safety alerts, the dosing sessions and the appointments only when `parts` asks for them
/// (the roles that may read alerts, the clinical record, the schedule). The decision in force is
/// the last of the amendment chain (decisions are append-only, a patient has one first decision
/// and each amends at most one, so the chain has one end).
pub async fn chart_head(db: &Db, clinic: ClinicId, id: PatientId, parts: ChartParts) -> Result<Option<ChartHead>> {
    static SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| chart_head_sql(crate::Backend::Sqlite));
    static POSTGRES: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| chart_head_sql(crate::Backend::Postgres));
    let sql: &'static str = match db.backend() {
        crate::Backend::Sqlite => &SQLITE,
        crate::Backend::Postgres => &POSTGRES,
    };
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(clinic.as_uuid())
            .bind(parts.safety_alerts)
            .bind(parts.dosing_sessions)
            .bind(parts.appointments)
            .fetch_optional(c)
            .await?
    }))
}

/// A page of the clinic's patients by family name, then given name, then id: the `limit` rows
/// after `after` (keyset paging: no OFFSET, so a deep page costs what the first one does).
pub async fn page(db: &Db, clinic: ClinicId, after: Option<&PatientKey>, limit: i64) -> Result<Vec<PatientRow>> {
    let keyset = if after.is_some() { after_clause(3) } else { String::new() };
    let sql = format!("{COLUMNS} WHERE clinic_id = $1{keyset} ORDER BY family_name, given_name, id LIMIT $2");
    Ok(on_read!(db, |c| {
        let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).bind(limit);
        let q = match after {
            Some(k) => q.bind(k.family_name.clone()).bind(k.given_name.clone()).bind(k.id),
            None => q,
        };
        q.fetch_all(c).await?
    }))
}

/// The first `limit` patients after skipping `offset`, by family name, then given name (demo
/// seeding and benchmarks; the page and the API page by [`page`]).
pub async fn list(db: &Db, clinic: ClinicId, limit: i64, offset: i64) -> Result<Vec<PatientRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{COLUMNS} WHERE clinic_id = $1 ORDER BY family_name, given_name, id LIMIT $2 OFFSET $3"
        )))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart finds the patient's open safety alerts by the patient
    /// (`safety_alerts_by_patient`, migration 0031), not by walking every open alert of the
    /// clinic (`safety_alerts_open`): a clinic with many unacknowledged alerts would pay for each
    /// of them on every chart view.
    #[tokio::test]
    async fn the_chart_finds_the_patients_alerts_by_the_patient() -> std::result::Result<(), Box<dyn std::error::Error>>
    {
        let dir = std::env::temp_dir().join(format!("kapstone-chart-plan-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir)?;
        let url: crate::DbUrl = format!("sqlite://{}", dir.join("k.db").display()).parse()?;
        let db = Db::connect(&url).await?;
        db.migrate().await?;
        let sql = format!("EXPLAIN QUERY PLAN {}", chart_head_sql(crate::Backend::Sqlite));
        let plan: Vec<(i64, i64, i64, String)> = on_read!(&db, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(Uuid::now_v7())
                .bind(Uuid::now_v7())
                .bind(true)
                .bind(true)
                .bind(true)
                .fetch_all(c)
                .await?
        });
        db.close().await;
        std::fs::remove_dir_all(&dir)?;
        let steps: Vec<&str> = plan.iter().map(|(_, _, _, detail)| detail.as_str()).collect();
        assert!(steps.iter().any(|s| s.contains("USING INDEX safety_alerts_by_patient (patient_id=?")), "{steps:#?}");
        assert!(!steps.iter().any(|s| s.contains("safety_alerts_open")), "{steps:#?}");
        Ok(())
    }
}
