//! The demo clinic's day in progress: today's dosing sessions on the floor, in different phases,
//! recorded through the same domain decisions as a real session (nothing is written around them).
//! Times are relative to the moment the demo is created, so the board is live whenever it runs:
//! - Chair 1: a lozenge session in monitoring, with an acknowledged blood-pressure alert (MON-03)
//!   and a blood-pressure check left overdue;
//! - Chair 2: an IM session just checked in, waiting for the prescriber's dose order;
//! - Chair 3: a lozenge session in recovery, waiting for the discharge check.

use kapstone_domain::dose::DoseRequest;
use kapstone_domain::monitoring::{Cadss, Cadss23, Measurement, Moaas, Reading};
use kapstone_domain::session::{Administration, CheckIn, Escort, Mood, Pregnancy, SessionEvent, StateOfMind};
use kapstone_domain::vitals::{BloodPressure, DiastolicBp, HeartRate, RespRate, Spo2, SystolicBp};
use kapstone_domain::{PatientId, UtcTs};
use kapstone_store::scheduling as st;

use super::demo::{DEMO_DOMAIN, demo_actor};
use super::sessions::{self, Input};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

fn minutes_ago(now: UtcTs, m: i64) -> UtcTs {
    now.plus(time::Duration::minutes(-m))
}

fn vital(e: kapstone_domain::vitals::VitalError) -> AppError {
    AppError::Internal(anyhow::anyhow!("demo vitals: {}", e.message))
}

fn bp(at: UtcTs, sys: u16, dia: u16, hr: u16) -> Result<SessionEvent, AppError> {
    let bp = BloodPressure::new(SystolicBp::new(sys).map_err(vital)?, DiastolicBp::new(dia).map_err(vital)?)
        .map_err(vital)?;
    Ok(SessionEvent::Reading(Reading {
        taken_at: at,
        measurement: Measurement::BloodPressure {
            bp,
            heart_rate: Some(HeartRate::new(hr).map_err(vital)?),
            spo2: Some(Spo2::new(98).map_err(vital)?),
        },
    }))
}

fn breathing(at: UtcTs) -> Result<SessionEvent, AppError> {
    Ok(SessionEvent::Reading(Reading {
        taken_at: at,
        measurement: Measurement::Spo2Rr {
            spo2: Some(Spo2::new(98).map_err(vital)?),
            resp_rate: Some(RespRate::new(14).map_err(vital)?),
        },
    }))
}

fn score(e: kapstone_domain::monitoring::ScoreError) -> AppError {
    AppError::Internal(anyhow::anyhow!("demo score: {e}"))
}

fn moaas(at: UtcTs, s: u8) -> Result<SessionEvent, AppError> {
    Ok(SessionEvent::Reading(Reading {
        taken_at: at,
        measurement: Measurement::Moaas { score: Moaas::new(s).map_err(score)? },
    }))
}

fn cadss(at: UtcTs, total: u8) -> Result<SessionEvent, AppError> {
    Ok(SessionEvent::Reading(Reading {
        taken_at: at,
        measurement: Measurement::Cadss { score: Cadss::Cadss23(Cadss23::new(total).map_err(score)?) },
    }))
}

/// A check-in with the escort confirmed in person and a settled state of mind (also used by the
/// benchmark's data generator).
pub fn check_in(escort: &str) -> SessionEvent {
    SessionEvent::CheckedIn(CheckIn {
        escort: Escort { name: escort.into(), phone: "+1 555 010 0142".into(), relationship: Some("partner".into()) },
        escort_confirmed_in_person: true,
        state_of_mind: StateOfMind {
            mood: Mood::Rating(5),
            acute_stressors: None,
            sleep_hours: Some(7.0),
            last_food_at: None,
            last_fluid_at: None,
            last_nasal_spray_at: None,
            alcohol_or_substances_last_12h: false,
            intoxication_signs: false,
            medication_changes: None,
        },
        pregnancy: Pregnancy::NotApplicable,
        weight: None,
    })
}

fn lozenges(expiry: jiff::civil::Date) -> Administration {
    Administration {
        product: "Ketamine HCl 100 mg rapid-dissolve tablet (compounded)".into(),
        ndc: None,
        lot: "KRD-2611-04".into(),
        expiry,
        dose_mg: 300.0,
        route_snomed: "37839007".into(),
    }
}

fn lozenge_order() -> Input {
    Input::DoseOrder {
        request: DoseRequest {
            protocol: "sublingual-lozenge".into(),
            dose_mg: Some(300.0),
            tablet_mg: Some(100.0),
            ..Default::default()
        },
        override_reason: None,
    }
}

struct Team {
    nurse: CurrentUser,
    therapist: CurrentUser,
    floor_therapist: CurrentUser,
    prescriber: CurrentUser,
}

async fn actor(state: &AppState, role: &str) -> Result<CurrentUser, AppError> {
    let email = kapstone_domain::Email::parse(&format!("{role}@{DEMO_DOMAIN}"))?;
    let row = kapstone_store::users::find_by_email(&state.db, &email).await?.ok_or(AppError::NotFound)?;
    demo_actor(&row)
}

/// Books a dosing appointment that started `started` minutes ago in `chair` with `staff`,
/// written directly (booking refuses times in the past, and this is the past of a demo created
/// just now) but holding its slots like any booking, so nobody is double-booked.
#[allow(clippy::too_many_arguments)]
async fn appointment(
    state: &AppState,
    by: &CurrentUser,
    patient: PatientId,
    code: &str,
    chair: uuid::Uuid,
    location: uuid::Uuid,
    staff: [&CurrentUser; 2],
    now: UtcTs,
    started: i64,
) -> Result<uuid::Uuid, AppError> {
    let types = super::scheduling::types(state, by).await?;
    let type_id = types.iter().find(|(_, t, _)| t.code == code).map(|(id, _, _)| *id).ok_or(AppError::NotFound)?;
    // On the 5-minute grid, like every booking.
    let start = minutes_ago(now, started);
    let start = UtcTs::from_unix_micros(start.unix_micros() - start.unix_micros().rem_euclid(300_000_000));
    let end = start.plus(time::Duration::minutes(150));
    let staff = [staff[0].id, staff[1].id];
    let slot = |t: UtcTs| t.unix_micros().div_euclid(300_000_000);
    let keys = [
        format!("user:{}", staff[0]),
        format!("user:{}", staff[1]),
        format!("room:{chair}"),
        format!("patient:{patient}"),
    ];
    let claims: Vec<(String, i64)> =
        keys.iter().flat_map(|k| (slot(start)..slot(end)).map(move |s| (k.clone(), s))).collect();
    let mut tx = state.db.begin().await?;
    let booked = st::book(
        &mut tx,
        &st::NewAppointment {
            clinic: by.clinic,
            patient,
            type_id,
            location,
            room: Some(chair),
            start,
            end,
            staff: &staff,
            claims: &claims,
            by: by.id,
            rescheduled_from: None,
            course: None,
        },
    )
    .await?;
    tx.commit().await?;
    booked.map_err(|_| AppError::Internal(anyhow::anyhow!("demo floor: chair taken")))
}

async fn run(
    state: &AppState,
    session: uuid::Uuid,
    mut steps: Vec<(&CurrentUser, i64, Input)>,
    now: UtcTs,
) -> Result<(), AppError> {
    // The log is kept in time order: earliest first (a stable sort keeps same-minute steps in
    // the order written).
    steps.sort_by_key(|s| std::cmp::Reverse(s.1));
    for (who, ago, input) in steps {
        sessions::record(state, who, session, vec![input], Some(minutes_ago(now, ago))).await?;
    }
    Ok(())
}

fn ev(e: SessionEvent) -> Input {
    Input::Event(e)
}

/// Puts today's sessions on the floor for the three patients ready for them.
pub async fn seed_floor(state: &AppState, ready: &[PatientId]) -> Result<(), AppError> {
    let [a, b, c] = ready else { return Ok(()) };
    let team = Team {
        nurse: actor(state, "nurse").await?,
        therapist: actor(state, "therapist").await?,
        floor_therapist: actor(state, "therapist2").await?,
        prescriber: actor(state, "prescriber").await?,
    };
    let location = st::locations(&state.db, team.nurse.clinic).await?.into_iter().next().ok_or(AppError::NotFound)?;
    let mut chairs: Vec<_> =
        st::rooms(&state.db, team.nurse.clinic).await?.into_iter().filter(|r| r.location_id == location.id).collect();
    chairs.sort_by(|x, y| x.name.cmp(&y.name));
    let [one, two, three, ..] = chairs.as_slice() else { return Ok(()) };
    let now = UtcTs::now();
    let expiry = jiff::Timestamp::now().to_zoned(super::scheduling::time_zone(&location.time_zone)?).date();
    let expiry = expiry.checked_add(jiff::ToSpan::years(1)).unwrap_or(expiry);
    let (n, t, p) = (&team.nurse, &team.therapist, &team.prescriber);

    // Chair 1: lozenges 68 minutes ago; a raised BP at 15 minutes, acknowledged; the 45-minute
    // check was not taken.
    // Each session has a prescriber or nurse and its own therapist; nobody is booked twice at
    // once (chair 3 ends before chair 2 starts, so they share their two clinicians).
    let t2 = &team.floor_therapist;
    let appt = appointment(state, n, *a, "dosing-sl", one.id, location.id, [n, t], now, 80).await?;
    let (s, _) = sessions::open(state, n, appt).await?;
    let steps = vec![
        (n, 78, ev(check_in("Jordan Avery"))),
        (n, 75, ev(bp(minutes_ago(now, 75), 128, 82, 74)?)),
        (n, 75, ev(breathing(minutes_ago(now, 75))?)),
        (t, 75, ev(moaas(minutes_ago(now, 75), 5)?)),
        (t, 75, ev(cadss(minutes_ago(now, 75), 0)?)),
        (p, 72, lozenge_order()),
        (n, 70, ev(SessionEvent::ClearedForDosing)),
        (n, 68, ev(SessionEvent::AdministrationStarted(lozenges(expiry)))),
        (n, 53, ev(bp(minutes_ago(now, 53), 170, 90, 88)?)),
        (t, 53, ev(moaas(minutes_ago(now, 53), 4)?)),
        (n, 50, ev(SessionEvent::AdministrationEnded { reason: None })),
        (p, 49, ev(SessionEvent::AlertAcknowledged { alert_id: 1, note: Some("Rechecking in 15 minutes.".into()) })),
        (n, 38, ev(bp(minutes_ago(now, 38), 138, 84, 76)?)),
        (t, 38, ev(moaas(minutes_ago(now, 38), 5)?)),
        (t, 30, ev(SessionEvent::ProgressNote { text: "Settled, eyes closed, listening to music.".into() })),
    ];
    run(state, s, steps, now).await?;

    // Chair 2: IM, checked in ten minutes ago with the pre-dose baselines; the prescriber orders.
    let appt = appointment(state, n, *b, "dosing-im", two.id, location.id, [p, t2], now, 15).await?;
    let (s, _) = sessions::open(state, n, appt).await?;
    let steps = vec![
        (n, 10, ev(check_in("Riley Chen"))),
        (n, 8, ev(bp(minutes_ago(now, 8), 122, 78, 70)?)),
        (n, 8, ev(breathing(minutes_ago(now, 8))?)),
        (t2, 8, ev(moaas(minutes_ago(now, 8), 5)?)),
        (t2, 8, ev(cadss(minutes_ago(now, 8), 0)?)),
    ];
    run(state, s, steps, now).await?;

    // Chair 3: lozenges two and a half hours ago, now in recovery with settled readings.
    let appt = appointment(state, n, *c, "dosing-sl", three.id, location.id, [p, t2], now, 170).await?;
    let (s, _) = sessions::open(state, n, appt).await?;
    let mut steps = vec![
        (n, 168, ev(check_in("Morgan Lee"))),
        (n, 165, ev(bp(minutes_ago(now, 165), 124, 80, 68)?)),
        (n, 165, ev(breathing(minutes_ago(now, 165))?)),
        (t2, 165, ev(moaas(minutes_ago(now, 165), 5)?)),
        (t2, 165, ev(cadss(minutes_ago(now, 165), 0)?)),
        (p, 162, lozenge_order()),
        (n, 160, ev(SessionEvent::ClearedForDosing)),
        (n, 158, ev(SessionEvent::AdministrationStarted(lozenges(expiry)))),
        (n, 143, ev(bp(minutes_ago(now, 143), 132, 84, 80)?)),
        (t2, 143, ev(moaas(minutes_ago(now, 143), 4)?)),
        (n, 140, ev(SessionEvent::AdministrationEnded { reason: None })),
    ];
    for m in [128, 113, 98] {
        steps.push((n, m, ev(bp(minutes_ago(now, m), 128, 82, 74)?)));
    }
    steps.push((t2, 128, ev(moaas(minutes_ago(now, 128), 5)?)));
    steps.push((t2, 60, ev(SessionEvent::ExperienceEnded)));
    steps.push((n, 5, ev(bp(minutes_ago(now, 5), 124, 80, 70)?)));
    steps.push((n, 5, ev(breathing(minutes_ago(now, 5))?)));
    steps.push((t2, 5, ev(moaas(minutes_ago(now, 5), 5)?)));
    steps.push((t2, 5, ev(cadss(minutes_ago(now, 5), 1)?)));
    run(state, s, steps, now).await?;
    Ok(())
}

/// How many sessions [`seed_busy_floor`] may add: each needs a chair and two clinicians of its
/// own, so the demo's accounts and rooms stay a readable size.
pub const MAX_EXTRA_SESSIONS: usize = 100;

/// For the floor benchmark (issue 9: "20 active sessions under the write load"): `n` more dosing
/// sessions on today's floor, each in a chair of its own with a nurse and a therapist of its own
/// (`floor-nurse-K@…`, `floor-therapist-K@…`, all with `password`), the generated patient checked
/// in twenty minutes ago with pre-dose baselines. Synthetic data, through the same use cases as
/// the demo's three chairs. Refused when the demo floor has been made busy already.
pub async fn seed_busy_floor(state: &AppState, n: usize, password: &str) -> Result<usize, AppError> {
    use super::accounts::{NewAccountInput, Operator, create_account};
    if n > MAX_EXTRA_SESSIONS {
        return Err(kapstone_domain::FieldError::new("floor_sessions", "at most 100 extra sessions").into());
    }
    let lead = actor(state, "nurse").await?;
    let clinic = lead.clinic;
    let first = kapstone_domain::Email::parse(&format!("floor-nurse-1@{DEMO_DOMAIN}"))?;
    if kapstone_store::users::find_by_email(&state.db, &first).await?.is_some() {
        return Err(kapstone_domain::FieldError::new("floor_sessions", "the demo floor is busy already").into());
    }
    let location = st::locations(&state.db, clinic).await?.into_iter().next().ok_or(AppError::NotFound)?;
    let mut rng = super::demo::SplitMix64::new(9_000 + n as u64);
    let today = UtcTs::now().to_datetime().date();
    let patients = super::demo::insert_patients(&state.db, clinic, n, &mut rng, today).await?;
    let now = UtcTs::now();
    for (k, patient) in (1..=n).zip(&patients) {
        let mut staff = Vec::new();
        for role in ["nurse", "therapist"] {
            let email = format!("floor-{role}-{k}@{DEMO_DOMAIN}");
            let input = NewAccountInput {
                email: email.clone(),
                name: format!("Floor {role} {k}"),
                role: role.into(),
                password: password.into(),
                patient_mrn: None,
            };
            create_account(state, Operator::CommandLine { clinic }, input).await?;
            let row = kapstone_store::users::find_by_email(&state.db, &kapstone_domain::Email::parse(&email)?)
                .await?
                .ok_or(AppError::NotFound)?;
            staff.push(demo_actor(&row)?);
        }
        let [nurse, therapist] = staff.as_slice() else { return Err(AppError::NotFound) };
        let mut tx = state.db.begin().await?;
        let chair = st::insert_room(&mut tx, clinic, location.id, &format!("Floor chair {k}")).await?;
        tx.commit().await?;
        let pid = PatientId::from_uuid(patient.id);
        let appt = appointment(state, &lead, pid, "dosing-sl", chair, location.id, [nurse, therapist], now, 25).await?;
        let (s, _) = sessions::open(state, nurse, appt).await?;
        let steps = vec![
            (nurse, 20, ev(check_in("Sam Rivera"))),
            (nurse, 18, ev(bp(minutes_ago(now, 18), 120, 78, 72)?)),
            (nurse, 18, ev(breathing(minutes_ago(now, 18))?)),
            (therapist, 18, ev(moaas(minutes_ago(now, 18), 5)?)),
            (therapist, 18, ev(cadss(minutes_ago(now, 18), 0)?)),
        ];
        run(state, s, steps, now).await?;
    }
    Ok(n)
}
