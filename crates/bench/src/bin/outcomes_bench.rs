//! `kapstone-outcomes-bench`: the clinic outcome dashboard on a network-sized history (issue 7:
//! "well under a second for a network of 100,000 patients with 1,000,000 questionnaire
//! responses", SQLite and PostgreSQL).
//!
//! On a database made by `kapstone demo --scale 100000` (never one in use), it writes
//! `--responses` scored PHQ-9 and GAD-7 responses spread over the patients (multi-row inserts,
//! in large transactions), and for every `--treated-every`th patient a course of three finished
//! dosing sessions over the last two years; then it times the dashboard (two years, and the
//! default 90 days) and one patient's outcomes `--repeat` times and prints the median and the
//! slowest. Timing is printed, never asserted.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use kapstone_bench::{DAY, PathwayPatient, ROWS_PER_STATEMENT, analyze, score_total, seed_pathway, user};
use kapstone_domain::scheduling::AppointmentKind;
use kapstone_domain::{PatientId, UtcTs};
use kapstone_store::{Db, DbTs, DbUrl, on_read, on_tx};
use kapstone_web::app::outcomes::{self, DashboardQuery};
use kapstone_web::state::{AppState, ServerConfig};
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "kapstone-outcomes-bench", about = "The outcome dashboard on a network-sized history")]
struct Args {
    #[arg(long, env = "KAPSTONE_DATABASE_URL")]
    database_url: DbUrl,
    /// Questionnaire responses to write before timing (half PHQ-9, half GAD-7).
    #[arg(long, default_value_t = 1_000_000)]
    responses: usize,
    /// Every Nth patient has had a course of three dosing sessions.
    #[arg(long, default_value_t = 5)]
    treated_every: usize,
    /// Runs of each timed call.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Time only (the history is already written).
    #[arg(long)]
    skip_seed: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = Db::connect(&args.database_url).await?;
    db.migrate().await?;
    let state = AppState::new(db.clone(), ServerConfig::default());
    let nurse = user(&state, "nurse@demo.kapstone.test").await?;
    let prescriber = user(&state, "prescriber@demo.kapstone.test").await?;
    let clinic = nurse.clinic;
    let ids: Vec<Uuid> = on_read!(&db, |c| {
        sqlx::query_scalar("SELECT id FROM patients WHERE clinic_id = $1 ORDER BY id")
            .bind(clinic.as_uuid())
            .fetch_all(c)
            .await?
    });
    anyhow::ensure!(!ids.is_empty(), "no patients: run `kapstone demo --scale 100000` first");
    let now = UtcTs::now().unix_micros();
    let two_years = 730 * DAY;

    let (responses_now, consultations_now): (i64, i64) = on_read!(&db, |c| {
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM questionnaire_responses), (SELECT COUNT(*) FROM consultations)")
            .fetch_one(c)
            .await?
    });
    // Seed what is missing, so a database seeded by an earlier version gains the pathway rows
    // without doubling its responses.
    if !args.skip_seed && usize::try_from(consultations_now).unwrap_or(0) < ids.len() / 2 {
        let started = Instant::now();
        let patients: Vec<PathwayPatient> = ids
            .iter()
            .map(|id| {
                let key = usize::from_le_bytes(id.as_bytes()[8..16].try_into().unwrap_or([0; 8]));
                PathwayPatient { id: *id, key, at: now - 800 * DAY + i64::try_from(key % 600).unwrap_or(0) * DAY }
            })
            .collect();
        let n = seed_pathway(&db, clinic, &patients, &nurse, &prescriber, args.treated_every).await?;
        println!("wrote {n} pathway rows in {:.1} s", started.elapsed().as_secs_f64());
    }
    if !args.skip_seed && usize::try_from(responses_now).unwrap_or(0) < args.responses / 2 {
        let location =
            kapstone_store::scheduling::locations(&db, clinic).await?.into_iter().next().context("location")?;
        let types = kapstone_web::app::scheduling::types(&state, &nurse).await?;
        let (type_id, _, _) =
            types.iter().find(|(_, t, _)| t.kind == AppointmentKind::Dosing).context("a dosing appointment type")?;
        let protocols = kapstone_web::app::protocols::current(&state, clinic).await?;
        let protocol = protocols.find("sublingual-lozenge").context("the lozenge protocol")?;
        let per_patient = args.responses.div_ceil(ids.len()).max(2);
        let started = Instant::now();
        let mut written = 0usize;
        let mut sessions = 0usize;
        for chunk in ids.chunks(2_000) {
            let mut tx = db.begin().await?;
            // Responses: (patient, instrument, total, at).
            let mut rows: Vec<(Uuid, &str, i32, i64)> = Vec::new();
            let mut doses: Vec<(Uuid, i64)> = Vec::new();
            for id in chunk {
                if written + rows.len() >= args.responses {
                    break;
                }
                let i = usize::from_le_bytes(id.as_bytes()[8..16].try_into().unwrap_or([0; 8]));
                // The patient's story starts somewhere in the last two years.
                let start = now - two_years + i64::try_from(i % 600).unwrap_or(0) * DAY;
                let treated = i % args.treated_every.max(1) == 0;
                for k in 0..per_patient {
                    let instrument = if k % 2 == 0 { "phq9" } else { "gad7" };
                    let max = if instrument == "phq9" { 27 } else { 21 };
                    let at = start + i64::try_from(k / 2).unwrap_or(0) * 14 * DAY + i64::try_from(k % 2).unwrap_or(0);
                    rows.push((*id, instrument, score_total(i, k / 2, max), at));
                }
                if treated {
                    for s in 0..3 {
                        doses.push((*id, start + DAY + s * 7 * DAY));
                    }
                }
            }
            for part in rows.chunks(ROWS_PER_STATEMENT) {
                on_tx!(&mut tx, |c| {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO questionnaire_responses (id, clinic_id, patient_id, instrument, instrument_version, \
                         answers, total, severity, result, entered_by, entered_via, submitted_at) ",
                    );
                    q.push_values(part, |mut b, (patient, instrument, t, at)| {
                        b.push_bind(Uuid::now_v7())
                            .push_bind(clinic.as_uuid())
                            .push_bind(*patient)
                            .push_bind(*instrument)
                            .push_bind("1")
                            .push_bind("[]")
                            .push_bind(*t)
                            .push_bind(Option::<String>::None)
                            .push_bind("{}")
                            .push_bind(nurse.id.as_uuid())
                            .push_bind("staff")
                            .push_bind(DbTs(UtcTs::from_unix_micros(*at)));
                    });
                    q.build().execute(&mut *c).await?;
                });
            }
            written += rows.len();
            for (patient, at) in &doses {
                let s = kapstone_store::outcomes::PastSession {
                    clinic,
                    patient: PatientId::from_uuid(*patient),
                    type_id: *type_id,
                    location: location.id,
                    course: None,
                    protocol_id: &protocol.id,
                    protocol_version: &protocol.version,
                    start: UtcTs::from_unix_micros(*at),
                    minutes: 150,
                    by: nurse.id,
                };
                kapstone_store::outcomes::insert_past_session(&mut tx, &s).await?;
            }
            sessions += doses.len();
            tx.commit().await?;
            if written >= args.responses {
                break;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "wrote {written} responses and {sessions} finished dosing sessions for {} patients in {secs:.1} s",
            ids.len()
        );
    }
    if !args.skip_seed {
        analyze(&db).await?;
    }

    let counts: (i64, i64) = on_read!(&db, |c| {
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM patients), (SELECT COUNT(*) FROM questionnaire_responses)")
            .fetch_one(c)
            .await?
    });
    println!("database: {} patients, {} questionnaire responses", counts.0, counts.1);

    let mut results: Vec<(&str, Vec<Duration>, String)> = Vec::new();
    let today = jiff::Zoned::now().date();
    let two_years_ago = today.checked_sub(jiff::Span::new().days(730))?;
    let wide = DashboardQuery { from: Some(two_years_ago.to_string()), to: Some(today.to_string()), location: None };
    for (name, q) in [("dashboard, last two years", wide), ("dashboard, default 90 days", DashboardQuery::default())] {
        let mut runs = Vec::new();
        let mut note = String::new();
        for _ in 0..args.repeat.max(1) {
            let t = Instant::now();
            let d = outcomes::dashboard(&state, &prescriber, &q).await?;
            runs.push(t.elapsed());
            let all = d.end_of_induction.first();
            note = format!(
                "{} active patients, {} sessions held, PHQ-9 n={} response {}",
                d.active_patients,
                d.sessions_held,
                all.map_or(0, |g| g.n),
                all.map_or_else(String::new, |g| g.response.text.clone())
            );
        }
        results.push((name, runs, note));
    }
    let one = PatientId::from_uuid(ids[0]);
    let mut runs = Vec::new();
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        outcomes::of_patient(&state, &prescriber, one).await?;
        runs.push(t.elapsed());
    }
    results.push(("one patient's outcomes", runs, String::new()));
    println!("{:<32} {:>10} {:>10}  figures", "call", "median", "slowest");
    for (name, mut runs, note) in results {
        runs.sort();
        let median = runs[runs.len() / 2];
        let max = runs[runs.len() - 1];
        println!("{name:<32} {:>8.1}ms {:>8.1}ms  {note}", median.as_secs_f64() * 1000.0, max.as_secs_f64() * 1000.0);
    }
    Ok(())
}
