//! Demo outcome history (issue 7): three demo patients with five months of PHQ-9 and GAD-7
//! scores around a six-session sublingual course, so the outcome charts and the dashboard show
//! something: a responder, a non-responder and a patient in remission. The sessions are written
//! as finished history (appointment completed, dose time recorded), the scores with their dates;
//! no one in the demo can book or score in the past, so this is the only way to show months.

use kapstone_domain::decision::Route;
use kapstone_domain::instruments::{gad7, phq9};
use kapstone_domain::scheduling::AppointmentKind;
use kapstone_domain::{PatientId, UtcTs};
use kapstone_store::outcomes::{self as store, PastSession};

use super::demo::{DEMO_DOMAIN, demo_actor};
use crate::error::AppError;
use crate::state::AppState;

const DAY: i64 = 86_400_000_000;

/// (PHQ-9 at intake, before each of the 6 doses, then follow-ups), (GAD-7 at intake, follow-ups).
struct Story {
    phq9: [u8; 10],
    gad7: [u8; 4],
}

const STORIES: [Story; 3] = [
    // A responder: PHQ-9 19 → 8 (−58 %), no remission.
    Story { phq9: [19, 18, 17, 14, 12, 10, 9, 8, 7, 8], gad7: [15, 11, 8, 7] },
    // A remission: PHQ-9 16 → 2.
    Story { phq9: [16, 16, 13, 10, 7, 5, 4, 3, 3, 2], gad7: [12, 8, 5, 3] },
    // A non-responder: PHQ-9 23 → 14 (−39 %), or to a score already on record (the demo's
    // consultation baseline is 12: −48 %, still short of a response).
    Story { phq9: [23, 23, 22, 20, 19, 18, 17, 16, 15, 14], gad7: [14, 13, 12, 12] },
];

/// Answers (item 9 left at 0) adding up to `total`, for an instrument of `items` items.
fn answers(total: u8, items: usize, spare_last: bool) -> String {
    let usable = if spare_last { items - 1 } else { items };
    let mut left = total;
    let mut a = vec![0u8; items];
    for slot in a.iter_mut().take(usable) {
        let v = left.min(3);
        *slot = v;
        left -= v;
    }
    serde_json::to_string(&a).unwrap_or_else(|_| "[]".into())
}

pub async fn seed_outcomes(state: &AppState) -> Result<(), AppError> {
    let email = kapstone_domain::Email::parse(&format!("nurse@{DEMO_DOMAIN}"))?;
    let nurse = kapstone_store::users::find_by_email(&state.db, &email).await?.ok_or(AppError::NotFound)?;
    let nurse = demo_actor(&nurse)?;
    let clinic = nurse.clinic;
    let Some(location) = kapstone_store::scheduling::locations(&state.db, clinic).await?.into_iter().next() else {
        return Ok(());
    };
    let types = super::scheduling::types(state, &nurse).await?;
    let Some((type_id, _, _)) =
        types.iter().find(|(_, t, _)| t.kind == AppointmentKind::Dosing && t.route == Some(Route::SublingualLozenge))
    else {
        return Ok(());
    };
    let protocols = super::protocols::current(state, clinic).await?;
    let Some(protocol) = protocols.find("sublingual-lozenge") else { return Ok(()) };
    // Patients without a portal account or a dosing session, those with no score yet first (a
    // score already on record stays the latest: the non-responder's story is told last for it).
    let mut candidates: Vec<(usize, PatientId)> = Vec::new();
    for p in kapstone_store::patients::list(&state.db, clinic, 12, 0).await? {
        let id = p.patient_id();
        if kapstone_store::users::patient_has_account(&state.db, id).await?
            || !kapstone_store::dosing::sessions_of_patient(&state.db, clinic, id).await?.is_empty()
        {
            continue;
        }
        candidates.push((store::scores_of(&state.db, clinic, id).await?.len(), id));
    }
    candidates.sort_by_key(|(n, _)| *n);
    let chosen: Vec<PatientId> = candidates.into_iter().map(|(_, id)| id).take(STORIES.len()).collect();
    let now = UtcTs::now().unix_micros();
    // Intake 150 days ago; six weekly doses from day −140 (10:00 UTC-ish, with the pre-dose PHQ-9
    // half an hour before); follow-ups 2, 6 and 12 weeks after the last dose... up to a week ago.
    let day =
        |d: i64, minutes: i64| UtcTs::from_unix_micros(now - now.rem_euclid(DAY) + d * DAY + minutes * 60_000_000);
    let follow_ups = [-91, -63, -21];
    for (patient, story) in chosen.into_iter().zip(STORIES.iter()) {
        let mut tx = state.db.begin().await?;
        let phq = |t: u8| (answers(t, 9, true), phq9::Severity::of_total(t).as_str());
        let gad = |t: u8| (answers(t, 7, false), gad7::Severity::of_total(t).as_str());
        let put = |instrument: &'static str, t: u8, at: UtcTs| {
            let (a, sev) = if instrument == "phq9" { phq(t) } else { gad(t) };
            (instrument, a, i32::from(t), sev, at)
        };
        let mut rows = vec![put("phq9", story.phq9[0], day(-150, 600)), put("gad7", story.gad7[0], day(-150, 610))];
        for i in 0..6 {
            let d = -140 + 7 * i64::try_from(i).unwrap_or(0);
            rows.push(put("phq9", story.phq9[1 + i], day(d, 570)));
            store::insert_past_session(
                &mut tx,
                &PastSession {
                    clinic,
                    patient,
                    type_id: *type_id,
                    location: location.id,
                    course: None,
                    protocol_id: &protocol.id,
                    protocol_version: &protocol.version,
                    start: day(d, 600),
                    minutes: 150,
                    by: nurse.id,
                },
            )
            .await?;
        }
        for (k, d) in follow_ups.iter().enumerate() {
            rows.push(put("phq9", story.phq9[7 + k], day(*d, 600)));
            rows.push(put("gad7", story.gad7[1 + k], day(*d, 610)));
        }
        for (instrument, a, total, sev, at) in rows {
            store::insert_past_response(&mut tx, clinic, patient, instrument, &a, total, Some(sev), nurse.id, at)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}
