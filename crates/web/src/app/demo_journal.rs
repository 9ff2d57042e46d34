//! The demo clinic's integration notes and journal, written through the same use cases as a
//! real therapist and patient:
//! - a signed integration note and a signed-then-amended one (TV-HIP-4) on the dosing session
//!   furthest along: a discharged session when there is one, else today's session that dosed
//!   earliest;
//! - journal entries of a demo patient account: one shared with the care team (waiting unread in
//!   the therapist's queue) and one private. They are linked to that patient's ended session
//!   when the patient has one.

use kapstone_domain::Email;
use kapstone_store::dosing::SessionRow;

use super::demo::{DEMO_DOMAIN, demo_actor};
use super::integration_notes::{self as notes, Step};
use super::journal::{self, Change, NewText};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

async fn account(state: &AppState, local: &str) -> Result<CurrentUser, AppError> {
    let email = Email::parse(&format!("{local}@{DEMO_DOMAIN}"))?;
    let row = kapstone_store::users::find_by_email(&state.db, &email).await?.ok_or(AppError::NotFound)?;
    demo_actor(&row)
}

/// The session an integration note is most at home on: discharged first, then the earliest dose.
fn furthest_along(sessions: &[SessionRow]) -> Option<&SessionRow> {
    let rank = |s: &SessionRow| (s.state != "discharged", s.dose_started_at.is_none(), s.dose_started_at);
    sessions.iter().min_by_key(|s| rank(s))
}

pub async fn seed_journal(state: &AppState) -> Result<(), AppError> {
    let therapist = account(state, "therapist").await?;
    let mut all = Vec::new();
    for p in kapstone_store::patients::list(&state.db, therapist.clinic, 1000, 0).await? {
        all.extend(kapstone_store::dosing::sessions_of_patient(&state.db, therapist.clinic, p.patient_id()).await?);
    }
    if let Some(s) = furthest_along(&all) {
        let first = notes::draft(
            state,
            &therapist,
            s.id,
            "Integration session the day after dosing. The patient described the experience as calm, with \
             images of open water; no distress since. Mood today 6/10, sleeping well.",
            "Continue the course as planned; review the journal entries at the next integration session.",
        )
        .await?;
        notes::step(state, &therapist, first.id, Step::Sign).await?;
        let second = notes::draft(
            state,
            &therapist,
            s.id,
            "Second integration session. The patient related the session's sense of distance from a long-held \
             self-criticism to their intention. PHQ-9 to be repeated before the next dosing session.",
            "Next dosing session as booked.",
        )
        .await?;
        notes::step(state, &therapist, second.id, Step::Sign).await?;
        notes::step(
            state,
            &therapist,
            second.id,
            Step::Amend {
                summary: "Second integration session. The patient related the session's sense of distance from a \
                          long-held self-criticism to their intention. PHQ-9 repeated today: 11, down from 17.",
                plan: "Next dosing session as booked.",
                reason: "The PHQ-9 was repeated in the session; the note said it was still to be done.",
                request: None,
            },
        )
        .await?;
    }
    // The patient account whose journal is seeded: one with an ended session if any, else patient 2.
    let mut writer = account(state, "patient2").await?;
    let mut session = None;
    for local in ["patient1", "patient2", "patient3"] {
        let p = account(state, local).await?;
        let Some(id) = p.patient else { continue };
        let ended = kapstone_store::dosing::sessions_of_patient(&state.db, p.clinic, id)
            .await?
            .into_iter()
            .find(|s| s.state == "discharged");
        if let Some(s) = ended {
            session = Some(s.id.to_string());
            writer = p;
            break;
        }
    }
    let shared = journal::write(
        state,
        &writer,
        &NewText {
            text: "The music at the end felt like the tide going out. I noticed I was kinder to myself for a \
                   whole afternoon. I would like to talk about that next time.",
            session: session.as_deref(),
            prompt: Some("reflection-what-stayed"),
        },
    )
    .await?;
    journal::change(state, &writer, shared.id, Change::Share).await?;
    journal::write(
        state,
        &writer,
        &NewText {
            text: "Private: a list of things that helped this week. Walks before breakfast. Calling my sister.",
            session: None,
            prompt: Some("grounding-support"),
        },
    )
    .await?;
    Ok(())
}
