//! `kapstone-datagen`: a network-sized synthetic clinic for the report benchmarks (issue 9:
//! "100,000 patients, 1,000,000 questionnaire responses, 2,000,000 vitals").
//!
//! On a new, empty database it seeds the demo clinic, then writes with multi-row inserts in large
//! transactions:
//! - `--patients` patients in all (the demo's twelve included), each with its audit event;
//! - the rows that decide each patient's stage (consultation, decision, course, side states);
//! - `--responses` scored PHQ-9/GAD-7 responses in all, every two weeks from a start in the last
//!   two years (baseline before the first dose for treated patients), each with its audit event;
//! - for every `--treated-every`th patient, finished dosing sessions (an induction of six, then
//!   monthly maintenance, never in the future) until the clinic holds `--vitals` readings in all,
//!   ten per session (blood pressure, SpO2/respiration, MOAA/S, CADSS) plus check-in,
//!   administration and discharge events, each session with its completed appointment and audit
//!   event;
//! - for the sessions of the injectable protocols, the controlled-substance ledger of the demo's
//!   registered location: draw, administration and witnessed waste of a 50 mg/mL vial per dose,
//!   with a receipt per lot, through the server's checked write path (hash chain, balances).
//!
//! Deterministic in shape (the same arguments give the same counts and times relative to the
//! run); synthetic data only. Prints each step's time.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use kapstone_bench::{DAY, PathwayPatient, ROWS_PER_STATEMENT, analyze, score_total, seed_pathway, user};
use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
use kapstone_domain::ids::{DosingSessionId, LocationId};
use kapstone_domain::ledger::entry::EntryHeader;
use kapstone_domain::ledger::{
    AdministrationEntry, Draw, EntryDetail, LotNumber, Measure, Micrograms, Microlitres, PatientOnRecord, Receipt,
    Registrant, Waste, Witness,
};
use kapstone_domain::monitoring::{Cadss, Cadss23, Measurement, Moaas, Reading};
use kapstone_domain::scheduling::AppointmentKind;
use kapstone_domain::session::{Actor, Administration, Recorded, SessionEvent};
use kapstone_domain::vitals::{BloodPressure, DiastolicBp, HeartRate, RespRate, Spo2, SystolicBp};
use kapstone_domain::{PatientId, UtcTs};
use kapstone_store::{Db, DbTs, DbUrl, on_read, on_tx};
use kapstone_web::app::demo::{self, SplitMix64};
use kapstone_web::app::ledger::{Writer, person, place};
use kapstone_web::auth::guard::CurrentUser;
use kapstone_web::state::{AppState, ServerConfig};
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "kapstone-datagen", about = "A network-sized synthetic clinic for the report benchmarks")]
struct Args {
    /// A new, empty database (never one in use).
    #[arg(long, env = "KAPSTONE_DATABASE_URL")]
    database_url: DbUrl,
    /// Patients in all.
    #[arg(long, default_value_t = 100_000)]
    patients: usize,
    /// Questionnaire responses in all (half PHQ-9, half GAD-7).
    #[arg(long, default_value_t = 1_000_000)]
    responses: usize,
    /// Vitals and monitoring readings in all, ten per dosing session.
    #[arg(long, default_value_t = 2_000_000)]
    vitals: usize,
    /// Every Nth patient is treated (has a course and dosing sessions).
    #[arg(long, default_value_t = 5)]
    treated_every: usize,
    /// Skip the controlled-substance ledger.
    #[arg(long)]
    no_ledger: bool,
    /// Password of every demo account.
    #[arg(long, env = "KAPSTONE_DEMO_PASSWORD", hide_env_values = true, default_value = "bench password 2026")]
    password: String,
}

/// Readings per session; the last session may have fewer so the total is exact.
const READINGS: usize = 10;
/// Session days after the first dose: an induction of six in three weeks, then monthly.
const PLAN_DAYS: [i64; 10] = [0, 3, 7, 10, 14, 17, 42, 70, 98, 126];
const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
/// Protocols in rotation by patient: (protocol, uses the ledger's vials).
const PROTOCOLS: [(&str, bool); 4] = [
    ("sublingual-lozenge", false),
    ("intramuscular-racemic", true),
    ("sublingual-lozenge", false),
    ("intravenous-racemic", true),
];

fn i64_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The story of one generated patient.
struct Story {
    id: Uuid,
    key: usize,
    treated: bool,
    /// Referral (untreated) or first dose (treated), at a daytime hour.
    anchor: i64,
}

fn story(id: Uuid, key: usize, treated_every: usize, now: i64) -> Story {
    let treated = key.is_multiple_of(treated_every.max(1));
    // Spread over the last two years; a day starts at midnight UTC, sessions from 14:00 to 21:00.
    let day = (now - 730 * DAY) / DAY * DAY + i64_of((key.wrapping_mul(7919)) % 720) * DAY;
    Story { id, key, treated, anchor: day + (14 + i64_of(key % 8)) * HOUR }
}

async fn audit_batch(tx: &mut kapstone_store::Tx, events: &[NewAuditEvent]) -> anyhow::Result<()> {
    for part in events.chunks(1_000) {
        kapstone_store::audit::append_all(tx, part).await?;
    }
    Ok(())
}

/// Writes the responses: `per_patient` each (plus one for the first `extra`), with their audit events.
async fn responses(db: &Db, nurse: &CurrentUser, stories: &[Story], total: usize, now: i64) -> anyhow::Result<usize> {
    let clinic = nurse.clinic;
    let per = total / stories.len().max(1);
    let extra = total % stories.len().max(1);
    let mut written = 0usize;
    for chunk in stories.chunks(2_000) {
        let mut rows: Vec<(Uuid, Uuid, &str, i32, i64)> = Vec::new();
        for s in chunk {
            let n = per + usize::from(s.key < extra);
            // Treated: a baseline a week before the first dose, then every two weeks. Untreated:
            // every two weeks from a week after referral. A time still to come moves before the start.
            let base = if s.treated { s.anchor - 7 * DAY } else { s.anchor + 7 * DAY };
            let pairs = n.div_ceil(2);
            let past = (0..pairs).filter(|j| base + i64_of(*j) * 14 * DAY < now - HOUR).count();
            for k in 0..n {
                let j = k / 2;
                let at = if j < past { base + i64_of(j) * 14 * DAY } else { base - i64_of(j - past + 1) * 14 * DAY };
                let (instrument, max) = if k % 2 == 0 { ("phq9", 27) } else { ("gad7", 21) };
                rows.push((Uuid::now_v7(), s.id, instrument, score_total(s.key, j, max), at + i64_of(k % 2)));
            }
        }
        let mut tx = db.begin().await?;
        for part in rows.chunks(ROWS_PER_STATEMENT) {
            on_tx!(&mut tx, |c| {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO questionnaire_responses (id, clinic_id, patient_id, instrument, instrument_version, \
                     answers, total, severity, result, entered_by, entered_via, submitted_at) ",
                );
                q.push_values(part, |mut b, (id, patient, instrument, t, at)| {
                    b.push_bind(*id)
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
        let events: Vec<NewAuditEvent> = rows
            .iter()
            .map(|(id, patient, instrument, _, _)| {
                let mut e =
                    nurse.event(AuditAction::QuestionnaireSubmitted, "questionnaire_response", Outcome::Success);
                e.entity_id = Some(id.to_string());
                e.patient_id = Some(PatientId::from_uuid(*patient));
                e.reason = Some(format!("{instrument} (synthetic)"));
                e
            })
            .collect();
        audit_batch(&mut tx, &events).await?;
        tx.commit().await?;
        written += rows.len();
    }
    Ok(written)
}

/// An injectable dose for the ledger: (session, patient, dose time, SNOMED route).
type Dose = (Uuid, Uuid, i64, String);

/// One planned session: whose, and when the dose starts.
#[derive(Clone, Copy)]
struct Planned {
    story: usize,
    at: i64,
}

/// The sessions of the treated patients: the plan's sessions that are over, then monthly
/// maintenance, round by round, until `sessions` are planned. Oldest first.
fn plan_sessions(stories: &[Story], sessions: usize, now: i64) -> anyhow::Result<Vec<Planned>> {
    let treated: Vec<usize> = (0..stories.len()).filter(|i| stories[*i].treated).collect();
    let mut out = Vec::with_capacity(sessions);
    let mut round = 0usize;
    while out.len() < sessions {
        let before = out.len();
        for &i in &treated {
            if out.len() == sessions {
                break;
            }
            let days = PLAN_DAYS.get(round).copied().unwrap_or(126 + 28 * i64_of(round + 1 - PLAN_DAYS.len()));
            let at = stories[i].anchor + days * DAY;
            if at < now - 3 * HOUR {
                out.push(Planned { story: i, at });
            }
        }
        if out.len() == before && round >= PLAN_DAYS.len() {
            bail!("only {} sessions fit in the past; treat more patients (--treated-every)", out.len());
        }
        round += 1;
    }
    out.sort_by_key(|p| p.at);
    Ok(out)
}

fn reading(at: i64, m: Measurement) -> SessionEvent {
    SessionEvent::Reading(Reading { taken_at: UtcTs::from_unix_micros(at), measurement: m })
}

fn bp(at: i64, sys: u16, dia: u16, hr: u16) -> anyhow::Result<SessionEvent> {
    let e = |e: kapstone_domain::vitals::VitalError| anyhow::anyhow!("{}", e.message);
    let bp = BloodPressure::new(SystolicBp::new(sys).map_err(e)?, DiastolicBp::new(dia).map_err(e)?).map_err(e)?;
    Ok(reading(
        at,
        Measurement::BloodPressure {
            bp,
            heart_rate: Some(HeartRate::new(hr).map_err(e)?),
            spo2: Some(Spo2::new(98).map_err(e)?),
        },
    ))
}

/// A finished session's events in order, `readings` of them readings: (kind, payload, at).
fn session_events(
    actor: Actor,
    dose: i64,
    k: usize,
    readings: usize,
    administration: &Administration,
) -> anyhow::Result<Vec<(&'static str, String, i64)>> {
    let e = |e: kapstone_domain::vitals::VitalError| anyhow::anyhow!("{}", e.message);
    let s = |e: kapstone_domain::monitoring::ScoreError| anyhow::anyhow!("{e}");
    let jitter = u16::try_from(k % 9).unwrap_or(0);
    let mut timeline: Vec<(i64, SessionEvent)> = vec![
        (dose - 20 * MINUTE, kapstone_web::app::demo_floor::check_in("Synthetic Escort")),
        (dose, SessionEvent::AdministrationStarted(administration.clone())),
        (dose + 5 * MINUTE, SessionEvent::AdministrationEnded { reason: None }),
        (dose + 125 * MINUTE, SessionEvent::Discharged { instructions_given: true }),
    ];
    let spo2_rr = |at: i64| -> anyhow::Result<SessionEvent> {
        Ok(reading(
            at,
            Measurement::Spo2Rr {
                spo2: Some(Spo2::new(97).map_err(e)?),
                resp_rate: Some(RespRate::new(14).map_err(e)?),
            },
        ))
    };
    let all = [
        bp(dose - 10 * MINUTE, 122 + jitter, 78, 72)?,
        spo2_rr(dose - 9 * MINUTE)?,
        bp(dose + 15 * MINUTE, 134 + jitter, 84, 80)?,
        spo2_rr(dose + 15 * MINUTE + 1)?,
        bp(dose + 40 * MINUTE, 130 + jitter, 82, 78)?,
        reading(dose + 40 * MINUTE + 1, Measurement::Moaas { score: Moaas::new(4).map_err(s)? }),
        bp(dose + 60 * MINUTE, 126 + jitter, 80, 76)?,
        reading(dose + 60 * MINUTE + 1, Measurement::Cadss { score: Cadss::Cadss23(Cadss23::new(6).map_err(s)?) }),
        bp(dose + 90 * MINUTE, 124 + jitter, 79, 74)?,
        bp(dose + 120 * MINUTE, 121 + jitter, 78, 72)?,
    ];
    for r in all.into_iter().take(readings) {
        let at = match &r {
            SessionEvent::Reading(x) => x.taken_at.unix_micros(),
            _ => dose,
        };
        timeline.push((at, r));
    }
    timeline.sort_by_key(|(at, _)| *at);
    timeline
        .into_iter()
        .map(|(at, event)| {
            let kind = event.kind();
            let payload = serde_json::to_string(&Recorded { at: UtcTs::from_unix_micros(at), by: actor, event })?;
            Ok((kind, payload, at))
        })
        .collect()
}

/// Where and how the sessions are held.
struct Setting {
    location: Uuid,
    type_id: Uuid,
    /// (protocol id, version, administration record, uses vials).
    protocols: Vec<(String, String, Administration, bool)>,
}

async fn setting(state: &AppState, nurse: &CurrentUser) -> anyhow::Result<Setting> {
    let clinic = nurse.clinic;
    let location =
        kapstone_store::scheduling::locations(&state.db, clinic).await?.into_iter().next().context("location")?;
    let types = kapstone_web::app::scheduling::types(state, nurse).await?;
    let (type_id, _, _) =
        types.iter().find(|(_, t, _)| t.kind == AppointmentKind::Dosing).context("a dosing appointment type")?;
    let set = kapstone_web::app::protocols::current(state, clinic).await?;
    let expiry = jiff::civil::date(2099, 12, 31);
    let mut protocols = Vec::new();
    for (id, vials) in PROTOCOLS {
        let p = set.find(id).with_context(|| format!("the {id} protocol"))?;
        let (product, dose_mg) = if vials {
            ("Ketamine HCl 50 mg/mL injection, 10 mL vial".to_owned(), 40.0)
        } else {
            ("Ketamine HCl 100 mg rapid-dissolve tablet (compounded)".to_owned(), 300.0)
        };
        let administration = Administration {
            product,
            ndc: None,
            lot: "SYNTH-0001".into(),
            expiry,
            dose_mg,
            route_snomed: p.route_code.code.clone(),
        };
        protocols.push((p.id.clone(), p.version.clone(), administration, vials));
    }
    Ok(Setting { location: location.id, type_id: *type_id, protocols })
}

/// Sessions with their appointments, events and audit events: returns (sessions, readings, the
/// injectable sessions for the ledger as (session, patient, dose time)).
async fn sessions(
    db: &Db,
    nurse: &CurrentUser,
    stories: &[Story],
    plan: &[Planned],
    readings_total: usize,
    setting: &Setting,
    courses: &HashMap<Uuid, Uuid>,
) -> anyhow::Result<(usize, usize, Vec<Dose>)> {
    let clinic = nurse.clinic.as_uuid();
    let actor = Actor { user: nurse.id, role: nurse.role };
    let mut readings = 0usize;
    let mut injectable = Vec::new();
    for chunk in plan.chunks(1_000) {
        let mut appointments = Vec::with_capacity(chunk.len());
        let mut rows = Vec::with_capacity(chunk.len());
        let mut events: Vec<(Uuid, i32, &'static str, String, i64)> = Vec::with_capacity(chunk.len() * 14);
        let mut audit = Vec::with_capacity(chunk.len());
        for p in chunk {
            let s = &stories[p.story];
            let (protocol, version, administration, vials) = &setting.protocols[s.key / 5 % setting.protocols.len()];
            let n = READINGS.min(readings_total - readings);
            readings += n;
            let (appointment, session) = (Uuid::now_v7(), Uuid::now_v7());
            appointments.push((
                appointment,
                s.id,
                p.at - 30 * MINUTE,
                p.at + 130 * MINUTE,
                courses.get(&s.id).copied(),
            ));
            let list = session_events(actor, p.at, s.key, n, administration)?;
            rows.push((
                session,
                appointment,
                s.id,
                protocol.as_str(),
                version.as_str(),
                p.at,
                list.len(),
                p.at + 125 * MINUTE,
            ));
            for (seq, (kind, payload, at)) in list.into_iter().enumerate() {
                events.push((session, i32::try_from(seq)?, kind, payload, at));
            }
            if *vials {
                injectable.push((session, s.id, p.at, administration.route_snomed.clone()));
            }
            let mut e = nurse.event(AuditAction::SessionOpened, "dosing_session", Outcome::Success);
            e.entity_id = Some(session.to_string());
            e.patient_id = Some(PatientId::from_uuid(s.id));
            e.reason = Some(format!("{protocol} (synthetic history)"));
            audit.push(e);
        }
        let mut tx = db.begin().await?;
        on_tx!(&mut tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO appointments (id, clinic_id, patient_id, type_id, location_id, start_at, end_at, status, \
                 created_by, created_at, course_id) ",
            );
            q.push_values(&appointments, |mut b, (id, patient, start, end, course)| {
                b.push_bind(*id)
                    .push_bind(clinic)
                    .push_bind(*patient)
                    .push_bind(setting.type_id)
                    .push_bind(setting.location)
                    .push_bind(DbTs(UtcTs::from_unix_micros(*start)))
                    .push_bind(DbTs(UtcTs::from_unix_micros(*end)))
                    .push_bind("completed")
                    .push_bind(nurse.id.as_uuid())
                    .push_bind(DbTs(UtcTs::from_unix_micros(*start - 7 * DAY)))
                    .push_bind(*course);
            });
            q.build().execute(&mut *c).await?;
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO dosing_sessions (id, clinic_id, appointment_id, patient_id, location_id, protocol_id, \
                 protocol_version, state, dose_started_at, event_count, created_by, created_at, updated_at) ",
            );
            q.push_values(&rows, |mut b, (id, appointment, patient, protocol, version, dose, count, end)| {
                b.push_bind(*id)
                    .push_bind(clinic)
                    .push_bind(*appointment)
                    .push_bind(*patient)
                    .push_bind(setting.location)
                    .push_bind(*protocol)
                    .push_bind(*version)
                    .push_bind("discharged")
                    .push_bind(DbTs(UtcTs::from_unix_micros(*dose)))
                    .push_bind(i32::try_from(*count).unwrap_or(0))
                    .push_bind(nurse.id.as_uuid())
                    .push_bind(DbTs(UtcTs::from_unix_micros(*dose - 20 * MINUTE)))
                    .push_bind(DbTs(UtcTs::from_unix_micros(*end)));
            });
            q.build().execute(&mut *c).await?;
            for part in events.chunks(2_000) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO session_events (session_id, seq, kind, payload, recorded_by, recorded_at) ",
                );
                q.push_values(part, |mut b, (session, seq, kind, payload, at)| {
                    b.push_bind(*session)
                        .push_bind(*seq)
                        .push_bind(*kind)
                        .push_bind(payload.as_str())
                        .push_bind(nurse.id.as_uuid())
                        .push_bind(DbTs(UtcTs::from_unix_micros(*at)));
                });
                q.build().execute(&mut *c).await?;
            }
        });
        audit_batch(&mut tx, &audit).await?;
        tx.commit().await?;
    }
    Ok((plan.len(), readings, injectable))
}

/// The end-of-induction review of every course whose sixth session is over: two days after it (if
/// that is past), the prescriber decides to go on (what the dashboard takes as the end of induction).
async fn reviews(
    db: &Db,
    prescriber: &CurrentUser,
    stories: &[Story],
    plan: &[Planned],
    courses: &HashMap<Uuid, Uuid>,
    now: i64,
) -> anyhow::Result<usize> {
    let mut held: HashMap<usize, usize> = HashMap::new();
    let mut due: Vec<(Uuid, Uuid, i64)> = Vec::new();
    for p in plan {
        let n = held.entry(p.story).or_insert(0);
        *n += 1;
        let patient = stories[p.story].id;
        if *n == 6
            && p.at + 2 * DAY < now
            && let Some(course) = courses.get(&patient)
        {
            due.push((*course, patient, p.at + 2 * DAY));
        }
    }
    let clinic = prescriber.clinic.as_uuid();
    for part in due.chunks(ROWS_PER_STATEMENT) {
        let mut tx = db.begin().await?;
        on_tx!(&mut tx, |c| {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO course_reviews (id, clinic_id, course_id, patient_id, decision, options, reason, \
                 next_review_due, outcome_summary, settings_version, reviewed_by, reviewed_at) ",
            );
            q.push_values(part, |mut b, (course, patient, at)| {
                b.push_bind(Uuid::now_v7())
                    .push_bind(clinic)
                    .push_bind(*course)
                    .push_bind(*patient)
                    .push_bind("continue")
                    .push_bind("{}")
                    .push_bind("Synthetic end-of-induction review: continue to maintenance.")
                    .push_bind(Option::<String>::None)
                    .push_bind("{}")
                    .push_bind(1_i64)
                    .push_bind(prescriber.id.as_uuid())
                    .push_bind(DbTs(UtcTs::from_unix_micros(*at)));
            });
            q.build().execute(&mut *c).await?;
        });
        tx.commit().await?;
    }
    Ok(due.len())
}

/// The injectable sessions' draws, administrations and witnessed wastes at the registered
/// location, oldest first, through the checked write path; a receipt opens each lot.
async fn ledger(
    state: &AppState,
    nurse: &CurrentUser,
    prescriber: &CurrentUser,
    doses: &[Dose],
) -> anyhow::Result<usize> {
    const DOSES_PER_LOT: usize = 330;
    const DOSES_PER_TX: usize = 100;
    let db = &state.db;
    let reg = kapstone_web::app::ledger::registry::registry(state, nurse).await?;
    let location =
        reg.locations.iter().find(|l| l.registration.is_some()).context("no registered location")?.location_id;
    let product =
        reg.products.iter().find(|p| p.ndc.as_str() == "0409-2051-05").context("the demo's 50 mg/mL vial")?.clone();
    let supplier = Registrant {
        name: "Synthetic Pharma Supply".into(),
        address: "1 Warehouse Way, Springfield".into(),
        dea_number: kapstone_domain::ledger::DeaNumber::parse("dea", "RS1234563")?,
    };
    // Names on the ledger (the patient of each administration), read once.
    let names: HashMap<Uuid, (String, Option<String>)> = {
        let rows: Vec<(Uuid, String, String, Option<String>)> = on_read!(db, |c| {
            sqlx::query_as("SELECT id, given_name, family_name, address FROM patients WHERE clinic_id = $1")
                .bind(nurse.clinic.as_uuid())
                .fetch_all(c)
                .await?
        });
        rows.into_iter().map(|(id, g, f, a)| (id, (format!("{g} {f}"), a))).collect()
    };
    let mut written = 0usize;
    for (lot_no, lot_doses) in doses.chunks(DOSES_PER_LOT).enumerate() {
        let lot = LotNumber::parse("lot", &format!("SYN{:06}", lot_no + 1))?;
        let mut tx = db.begin().await?;
        let expiry = jiff::civil::date(2099, 12, 31);
        kapstone_store::ledger::ensure_lot(&mut tx, product.id.as_uuid(), lot.as_str(), &expiry.to_string()).await?;
        tx.commit().await?;
        for (part_no, part) in lot_doses.chunks(DOSES_PER_TX).enumerate() {
            let here = place(state, nurse, location).await?;
            let mut tx = db.begin().await?;
            let mut w = Writer::start(&mut tx, nurse, here).await?;
            let recorded_at = w.now;
            let header = |at: i64| EntryHeader {
                location: LocationId::from_uuid(location),
                product: product.id,
                lot: lot.clone(),
                occurred_at: UtcTs::from_unix_micros(at),
                recorded_at,
                recorded_by: person(nurse),
            };
            if part_no == 0 {
                // Ten 500 mg vials for every 11 doses of 50 mg drawn: plenty for the lot.
                let containers = u32::try_from(DOSES_PER_LOT / 10 + 1)?;
                let amount = Measure::Containers(containers).amount("containers", &product.form)?;
                let first = part.first().map_or(0, |d| d.2) - DAY;
                w.push(
                    &mut tx,
                    header(first).entry(EntryDetail::Receipt(Receipt {
                        supplier: supplier.clone(),
                        containers,
                        amount,
                        invoice: Some(format!("INV-SYN-{lot_no}")),
                    })),
                )
                .await?;
                written += 1;
            }
            for (session, patient, at, route) in part {
                let (name, address) = names.get(patient).context("patient")?;
                let on_record = PatientOnRecord::new(PatientId::from_uuid(*patient), name, address.as_deref())?;
                let session = DosingSessionId::from_uuid(*session);
                let drawn = Measure::Volume(Microlitres::from_ml(1));
                let amount = drawn.amount("drawn", &product.form)?;
                let draw = header(*at - MINUTE).entry(EntryDetail::Draw(Draw { session, measure: drawn, amount }));
                let draw_id = draw.id;
                w.push(&mut tx, draw).await?;
                w.push(
                    &mut tx,
                    header(*at).entry(EntryDetail::Administration(AdministrationEntry {
                        draw: draw_id,
                        session,
                        patient: on_record,
                        administered_by: person(nurse),
                        amount: Micrograms::from_mg(40),
                        route_snomed: route.clone(),
                    })),
                )
                .await?;
                w.push(
                    &mut tx,
                    header(*at + 10 * MINUTE).entry(EntryDetail::Waste(Waste {
                        draw: draw_id,
                        measure: Measure::Volume(Microlitres::from_ul(200)),
                        amount: Micrograms::from_mg(10),
                        method: "Expelled into the drug-waste container".into(),
                        witness: Some(Witness {
                            user: prescriber.id,
                            role: prescriber.role,
                            name: prescriber.name.clone(),
                            authenticated_at: UtcTs::from_unix_micros(*at + 10 * MINUTE),
                        }),
                    })),
                )
                .await?;
                written += 3;
            }
            w.write(&mut tx).await?;
            tx.commit().await?;
        }
    }
    Ok(written)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let all = Instant::now();
    let db = Db::connect(&args.database_url).await?;
    db.migrate().await?;
    let state = AppState::new(db.clone(), ServerConfig::default());
    if !db.is_empty().await? {
        bail!("the database is not empty: give kapstone-datagen a new one (never a database in use)");
    }
    let t = Instant::now();
    let seed = demo::seed_demo(&state, &args.password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let clinic = seed.clinic;
    println!("demo clinic seeded in {:.1} s", t.elapsed().as_secs_f64());
    let demo_patients: Vec<Uuid> =
        on_read!(&db, |c| sqlx::query_scalar("SELECT id FROM patients").fetch_all(c).await?);
    let t = Instant::now();
    let more = args.patients.saturating_sub(demo_patients.len());
    let mut rng = SplitMix64::new(args.patients as u64);
    demo::insert_patients(&db, clinic, more, &mut rng, demo::generator_today())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{more} patients with their audit events in {:.1} s", t.elapsed().as_secs_f64());

    let nurse = user(&state, "nurse@demo.kapstone.test").await?;
    let prescriber = user(&state, "prescriber@demo.kapstone.test").await?;
    let now = UtcTs::now().unix_micros();
    let ids: Vec<Uuid> = on_read!(&db, |c| {
        sqlx::query_scalar("SELECT id FROM patients WHERE clinic_id = $1 ORDER BY id")
            .bind(clinic.as_uuid())
            .fetch_all(c)
            .await?
    });
    let stories: Vec<Story> = ids
        .iter()
        .filter(|id| !demo_patients.contains(id))
        .enumerate()
        .map(|(key, id)| story(*id, key, args.treated_every, now))
        .collect();

    let t = Instant::now();
    let pathway: Vec<PathwayPatient> = stories
        .iter()
        .map(|s| PathwayPatient { id: s.id, key: s.key, at: s.anchor - if s.treated { 30 * DAY } else { 0 } })
        .collect();
    let n = seed_pathway(&db, clinic, &pathway, &nurse, &prescriber, args.treated_every).await?;
    println!("{n} pathway rows (consultations, decisions, courses, side states) in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let have: i64 =
        on_read!(&db, |c| sqlx::query_scalar("SELECT COUNT(*) FROM questionnaire_responses").fetch_one(c).await?);
    let n = responses(&db, &nurse, &stories, args.responses.saturating_sub(usize::try_from(have)?), now).await?;
    println!("{n} questionnaire responses with their audit events in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let have: i64 = on_read!(&db, |c| {
        sqlx::query_scalar("SELECT COUNT(*) FROM session_events WHERE kind = 'reading'").fetch_one(c).await?
    });
    let readings = args.vitals.saturating_sub(usize::try_from(have)?);
    let plan = plan_sessions(&stories, readings.div_ceil(READINGS), now)?;
    let courses: HashMap<Uuid, Uuid> = {
        let rows: Vec<(Uuid, Uuid)> = on_read!(&db, |c| {
            sqlx::query_as("SELECT patient_id, id FROM treatment_courses WHERE clinic_id = $1")
                .bind(clinic.as_uuid())
                .fetch_all(c)
                .await?
        });
        rows.into_iter().collect()
    };
    let setting = setting(&state, &nurse).await?;
    let (held, readings, injectable) = sessions(&db, &nurse, &stories, &plan, readings, &setting, &courses).await?;
    println!(
        "{held} finished dosing sessions ({readings} readings, {} events) with appointments and audit events in {:.1} s",
        held * 4 + readings,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let n = reviews(&db, &prescriber, &stories, &plan, &courses, now).await?;
    println!("{n} course reviews (end of induction) in {:.1} s", t.elapsed().as_secs_f64());

    if !args.no_ledger {
        let t = Instant::now();
        let n = ledger(&state, &nurse, &prescriber, &injectable).await?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{n} ledger entries for {} injectable doses in {secs:.1} s ({:.0} entries/s)",
            injectable.len(),
            n as f64 / secs
        );
    }

    let t = Instant::now();
    let what = analyze(&db).await?;
    println!("{what} in {:.1} s", t.elapsed().as_secs_f64());
    let counts: (i64, i64, i64, i64, i64, i64) = on_read!(&db, |c| {
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM patients), (SELECT COUNT(*) FROM questionnaire_responses), \
             (SELECT COUNT(*) FROM dosing_sessions), (SELECT COUNT(*) FROM session_events WHERE kind = 'reading'), \
             (SELECT COUNT(*) FROM cs_ledger_entries), (SELECT COUNT(*) FROM audit_events)",
        )
        .fetch_one(c)
        .await?
    });
    println!(
        "database: {} patients, {} questionnaire responses, {} dosing sessions, {} readings, {} ledger entries, \
         {} audit events; {:.1} s in all",
        counts.0,
        counts.1,
        counts.2,
        counts.3,
        counts.4,
        counts.5,
        all.elapsed().as_secs_f64()
    );
    db.close().await;
    Ok(())
}
