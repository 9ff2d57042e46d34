//! Helpers shared by the benchmark binaries: the demo's accounts, the stage-defining pathway rows
//! of a clinic where most referrals go on, and timing summaries. Synthetic data only.

use std::time::Duration;

use anyhow::Context;
use kapstone_domain::{ClinicId, Email, UtcTs};
use kapstone_store::{Db, DbTs, on_read, on_tx};
use kapstone_web::auth::guard::CurrentUser;
use kapstone_web::state::AppState;
use uuid::Uuid;

/// One day in microseconds.
pub const DAY: i64 = 86_400_000_000;
/// Rows per multi-row INSERT: well under both engines' parameter limits for these tables.
pub const ROWS_PER_STATEMENT: usize = 500;

/// A demo account acting without a request (made by `kapstone demo`).
pub async fn user(state: &AppState, email: &str) -> anyhow::Result<CurrentUser> {
    let row = kapstone_store::users::find_by_email(&state.db, &Email::parse(email)?)
        .await?
        .context("run `kapstone demo` on this database first")?;
    Ok(kapstone_web::app::demo::demo_actor(&row)?)
}

/// A patient to give pathway rows: its id, a number that decides its story (`key % treated_every
/// == 0`: treated) and the time its pathway started.
#[derive(Debug, Clone, Copy)]
pub struct PathwayPatient {
    pub id: Uuid,
    pub key: usize,
    pub at: i64,
}

/// The stage-defining rows of a clinic where most referrals go on (so the stage count reads
/// realistic tables, not empty ones): a consultation for nine patients in ten (and every treated
/// one), a signed decision for most of those (one in ten not eligible), a course for each treated
/// patient (active for two in three, completed otherwise) and a side state for one in twenty.
/// Patients that already have any of these rows (the demo's own) keep their real history.
pub async fn seed_pathway(
    db: &Db,
    clinic: ClinicId,
    patients: &[PathwayPatient],
    nurse: &CurrentUser,
    prescriber: &CurrentUser,
    treated_every: usize,
) -> anyhow::Result<usize> {
    let mut storied: Vec<Uuid> = on_read!(db, |c| {
        sqlx::query_scalar(
            "SELECT patient_id FROM consultations UNION SELECT patient_id FROM eligibility_decisions \
             UNION SELECT patient_id FROM treatment_courses UNION SELECT patient_id FROM pathway_events",
        )
        .fetch_all(c)
        .await?
    });
    storied.sort();
    let fresh: Vec<PathwayPatient> =
        patients.iter().filter(|p| storied.binary_search(&p.id).is_err()).copied().collect();
    let mut written = 0;
    for chunk in fresh.chunks(ROWS_PER_STATEMENT) {
        let mut consultations = Vec::new();
        let mut decisions = Vec::new();
        let mut courses = Vec::new();
        let mut events = Vec::new();
        for p in chunk {
            let (id, i, at) = (p.id, p.key, p.at);
            let treated = i % treated_every.max(1) == 0;
            if treated || i % 10 != 0 {
                consultations.push((id, at));
            }
            if treated || (1..=8).contains(&(i % 10)) {
                let verdict = if !treated && i % 10 == 8 { "not_eligible" } else { "eligible" };
                decisions.push((id, verdict, at + DAY));
            }
            if treated {
                courses.push((id, if i % 3 == 0 { "completed" } else { "active" }, at + 2 * DAY));
            }
            match i % 20 {
                1 => events.push((id, "hold", at + 3 * DAY)),
                2 => events.push((id, "withdraw", at + 3 * DAY)),
                3 => {
                    events.push((id, "hold", at + 3 * DAY));
                    events.push((id, "resume", at + 4 * DAY));
                }
                _ => {}
            }
        }
        written += consultations.len() + decisions.len() + courses.len() + events.len();
        let mut tx = db.begin().await?;
        on_tx!(&mut tx, |c| {
            if !consultations.is_empty() {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO consultations (id, clinic_id, patient_id, version, body, diagnosis_table_version, \
                     recorded_by, recorded_at) ",
                );
                q.push_values(&consultations, |mut b, (patient, at)| {
                    b.push_bind(Uuid::now_v7())
                        .push_bind(clinic.as_uuid())
                        .push_bind(*patient)
                        .push_bind(1_i32)
                        .push_bind("{}")
                        .push_bind("bench")
                        .push_bind(nurse.id.as_uuid())
                        .push_bind(DbTs(UtcTs::from_unix_micros(*at)));
                });
                q.build().execute(&mut *c).await?;
            }
            if !decisions.is_empty() {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO eligibility_decisions (id, clinic_id, patient_id, verdict, routes, dispositions, \
                     summary, ruleset_version, settings_version, outcome, findings, input_snapshot, input_sha256, \
                     signed_by, signed_at) ",
                );
                q.push_values(&decisions, |mut b, (patient, verdict, at)| {
                    b.push_bind(Uuid::now_v7())
                        .push_bind(clinic.as_uuid())
                        .push_bind(*patient)
                        .push_bind(*verdict)
                        .push_bind("[]")
                        .push_bind("[]")
                        .push_bind("Synthetic benchmark decision")
                        .push_bind("bench")
                        .push_bind(1_i64)
                        .push_bind(*verdict)
                        .push_bind("[]")
                        .push_bind("{}")
                        .push_bind("")
                        .push_bind(prescriber.id.as_uuid())
                        .push_bind(DbTs(UtcTs::from_unix_micros(*at)));
                });
                q.build().execute(&mut *c).await?;
            }
            if !courses.is_empty() {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO treatment_courses (id, clinic_id, patient_id, template, first_date, options, status, \
                     started_by, started_at) ",
                );
                q.push_values(&courses, |mut b, (patient, status, at)| {
                    let first =
                        jiff::Timestamp::from_microsecond(*at).map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date());
                    b.push_bind(Uuid::now_v7())
                        .push_bind(clinic.as_uuid())
                        .push_bind(*patient)
                        .push_bind("KAP-SL")
                        .push_bind(first.map(|d| d.to_string()).unwrap_or_default())
                        .push_bind("{}")
                        .push_bind(*status)
                        .push_bind(prescriber.id.as_uuid())
                        .push_bind(DbTs(UtcTs::from_unix_micros(*at)));
                });
                q.build().execute(&mut *c).await?;
            }
            if !events.is_empty() {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO pathway_events (id, clinic_id, patient_id, event, reason, recorded_by, recorded_at) ",
                );
                q.push_values(&events, |mut b, (patient, event, at)| {
                    b.push_bind(Uuid::now_v7())
                        .push_bind(clinic.as_uuid())
                        .push_bind(*patient)
                        .push_bind(*event)
                        .push_bind("Synthetic benchmark event")
                        .push_bind(nurse.id.as_uuid())
                        .push_bind(DbTs(UtcTs::from_unix_micros(*at)));
                });
                q.build().execute(&mut *c).await?;
            }
        });
        tx.commit().await?;
    }
    Ok(written)
}

/// A PHQ-9-like trajectory: baseline 10..=24, falling by a patient-specific share over the
/// `k`th measure (every two weeks).
pub fn score_total(patient: usize, k: usize, instrument_max: i32) -> i32 {
    let base = 10 + i32::try_from(patient % 15).unwrap_or(0);
    let drop = i32::try_from((patient / 7) % 10).unwrap_or(0); // 0..=9 tenths of the baseline, over the course
    let k = i32::try_from(k).unwrap_or(0);
    (base - base * drop * k / 40).clamp(0, instrument_max)
}

/// Fresh statistics for the planner (both engines understand `ANALYZE`). On PostgreSQL a
/// `VACUUM` as well: a table just filled by bulk inserts has no visibility map yet, so every
/// index-only scan also reads the table's rows until autovacuum comes by (the outcome
/// dashboard's two-year view took 470–520 ms before it, 320 ms after: docs/BENCHMARKS.md). A
/// clinic's database in use has been vacuumed; the generated one is measured in that state.
/// Returns what it ran.
pub async fn analyze(db: &Db) -> anyhow::Result<&'static str> {
    match db.backend() {
        // Not in a transaction: PostgreSQL refuses VACUUM inside one.
        kapstone_store::Backend::Postgres => {
            on_read!(db, |c| {
                sqlx::query("VACUUM (ANALYZE)").execute(&mut *c).await?;
            });
            Ok("VACUUM (ANALYZE)")
        }
        kapstone_store::Backend::Sqlite => {
            let mut tx = db.begin().await?;
            on_tx!(&mut tx, |c| {
                sqlx::query("ANALYZE").execute(&mut *c).await?;
            });
            tx.commit().await?;
            Ok("ANALYZE")
        }
    }
}

/// Median, 99th percentile and slowest of a set of timings (nearest rank).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub runs: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(runs: &[Duration]) -> Self {
        let mut sorted = runs.to_vec();
        sorted.sort();
        let rank = |q: f64| {
            let n = sorted.len();
            if n == 0 {
                return Duration::ZERO;
            }
            // Nearest rank: the smallest value with at least q of the runs at or below it.
            let k = ((q * n as f64).ceil() as usize).clamp(1, n);
            sorted[k - 1]
        };
        Self { runs: sorted.len(), p50: rank(0.50), p99: rank(0.99), max: sorted.last().copied().unwrap_or_default() }
    }
}

/// Milliseconds with one decimal, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let runs: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&runs);
        assert_eq!(
            (s.runs, s.p50, s.p99, s.max),
            (100, Duration::from_millis(50), Duration::from_millis(99), Duration::from_millis(100))
        );
        let one = Summary::of(&[Duration::from_millis(7)]);
        assert_eq!((one.p50, one.p99), (Duration::from_millis(7), Duration::from_millis(7)));
    }
}
