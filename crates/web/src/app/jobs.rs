//! The background job runner inside the server: no cron needed. Each pass is safe to run in
//! several server processes at once (what it writes is idempotent in the database).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kapstone_domain::PatientId;
use kapstone_domain::reminders::{self, Reminder};
use kapstone_domain::scheduling::{AppointmentKind, AppointmentType};
use kapstone_store::{invitations, scheduling as store};
use uuid::Uuid;

use super::scheduling::{from_jiff, time_zone, to_jiff};
use crate::error::AppError;
use crate::state::AppState;

/// Queues the reminders that are due now; returns how many were queued by this pass.
pub async fn queue_reminders(state: &AppState) -> Result<usize, AppError> {
    let now = Timestamp::now();
    let from = now.checked_sub(SignedDuration::from_hours(48)).unwrap_or(now);
    // Reminders may be set up to two weeks ahead (ReminderSettings::check).
    let to = now.checked_add(SignedDuration::from_hours(337)).unwrap_or(now);
    let rows = store::booked_between_all(&state.db, from_jiff(from), from_jiff(to)).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let queued = invitations::reminders_queued(&state.db, &ids).await?;
    let mut type_ids: Vec<Uuid> = rows.iter().map(|r| r.type_id).collect();
    type_ids.sort();
    type_ids.dedup();
    let types = store::type_definitions(&state.db, &type_ids).await?;
    let mut count = 0;
    let mut settings: Vec<(Uuid, kapstone_domain::reminders::ReminderSettings)> = Vec::new();
    for row in rows {
        let store::BookedSoon { id, clinic_id: clinic, patient_id: patient, type_id, location_id, start_at: start } =
            row;
        let rs = match settings.iter().find(|(c, _)| *c == clinic) {
            Some((_, s)) => *s,
            None => {
                let s =
                    kapstone_store::clinics::current_settings(&state.db, kapstone_domain::ClinicId::from_uuid(clinic))
                        .await?
                        .reminders;
                settings.push((clinic, s));
                s
            }
        };
        let start = to_jiff(start.0);
        let dosing = types
            .iter()
            .find(|(t, _)| *t == type_id)
            .and_then(|(_, d)| serde_json::from_str::<AppointmentType>(d).ok())
            .is_some_and(|t| t.kind == AppointmentKind::Dosing);
        for kind in reminders::due(start, dosing, now, &rs) {
            if queued.iter().any(|(a, k)| *a == id && k == kind.as_str()) {
                continue;
            }
            if queue_one(state, clinic, patient, (id, location_id), start, kind).await? {
                count += 1;
            }
        }
    }
    Ok(count)
}

async fn queue_one(
    state: &AppState,
    clinic: Uuid,
    patient: Uuid,
    (appointment, location): (Uuid, Uuid),
    start: Timestamp,
    kind: Reminder,
) -> Result<bool, AppError> {
    let clinic_id = kapstone_domain::ClinicId::from_uuid(clinic);
    let patient_id = PatientId::from_uuid(patient);
    let Some(p) = kapstone_store::patients::get(&state.db, clinic_id, patient_id).await? else { return Ok(false) };
    // The address: the patient's portal account, else the email on the record.
    let account = kapstone_store::users::patient_account_email(&state.db, patient_id).await?;
    let Some(to) = account.or(p.email.clone()) else { return Ok(false) };
    // The place and zone of the appointment's own location.
    let location = store::locations(&state.db, clinic_id).await?.into_iter().find(|l| l.id == location);
    let (place, zone) = location.map_or_else(|| ("the clinic".to_owned(), "UTC".to_owned()), |l| (l.name, l.time_zone));
    let z = start.to_zoned(time_zone(&zone)?);
    let when = format!("{} {:02}:{:02}", z.date(), z.hour(), z.minute());
    let portal = format!("{}/portal", state.config.public_url.trim_end_matches('/'));
    let (subject, body) = reminders::message(kind, &place, &when, &portal);
    let mut tx = state.db.begin().await?;
    let queued =
        invitations::queue_reminder(&mut tx, clinic_id, patient_id, appointment, kind.as_str(), &to, &subject, &body)
            .await?;
    tx.commit().await?;
    Ok(queued)
}

/// Assigns the questionnaires due per the measurement cadence (KAP-SPEC 7.10); see
/// [`super::measures::assign_due`]. Idempotent, safe in several processes.
pub async fn assign_measures(state: &AppState) -> Result<usize, AppError> {
    super::measures::assign_due(state).await
}

/// Retries: 8 attempts, waiting 1, 2, 4, ... 64 minutes (capped) between them.
const MAX_ATTEMPTS: i32 = 8;

fn backoff(attempts: i32) -> SignedDuration {
    SignedDuration::from_mins(1_i64 << attempts.clamp(0, 6))
}

/// Sends what is due in the outbox through the configured mail server; returns (sent, failed).
/// Without a mail server nothing is sent and the messages stay in the outbox page.
pub async fn deliver(state: &AppState) -> Result<(usize, usize), AppError> {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let Some(url) = state.config.smtp_url.as_deref() else { return Ok((0, 0)) };
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("smtp url: {e}")))?
        .timeout(Some(Duration::from_secs(20)))
        .build();
    let from: lettre::message::Mailbox =
        state.config.mail_from.parse().map_err(|e| AppError::Internal(anyhow::anyhow!("mail from: {e}")))?;
    let now = Timestamp::now();
    // The lease outlasts the whole batch (20 messages x 20 s timeout), so no other process takes a
    // message this one is still about to send.
    let lease = now.checked_add(SignedDuration::from_mins(30)).unwrap_or(now);
    let due = invitations::claim_due(&state.db, from_jiff(now), from_jiff(lease), MAX_ATTEMPTS, 20).await?;
    let (mut sent, mut failed) = (0, 0);
    for m in due {
        let message = m.to_address.parse::<lettre::message::Mailbox>().map_err(|e| e.to_string()).and_then(|to| {
            Message::builder()
                .from(from.clone())
                .to(to)
                .subject(m.subject.clone())
                .body(m.body.clone())
                .map_err(|e| e.to_string())
        });
        let result = match message {
            Ok(msg) => mailer.send(msg).await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                invitations::mark_sent(&state.db, m.id).await?;
                sent += 1;
            }
            Err(e) => {
                let retry = now.checked_add(backoff(m.attempts)).unwrap_or(now);
                // The error text of the mail server, never the message.
                let error: String = e.chars().take(300).collect();
                invitations::mark_failed(&state.db, m.id, from_jiff(retry), &error).await?;
                tracing::warn!(message = %m.id, attempt = m.attempts + 1, "mail delivery failed");
                failed += 1;
            }
        }
    }
    Ok((sent, failed))
}

/// Removes booking claims of slots more than a day old (idempotent: safe in several processes).
pub async fn prune_claims(state: &AppState) -> Result<u64, AppError> {
    let cutoff = Timestamp::now().checked_sub(SignedDuration::from_hours(24)).unwrap_or(Timestamp::UNIX_EPOCH);
    let slot = cutoff.as_second() / (kapstone_domain::scheduling::SLOT_MINUTES * 60);
    Ok(store::prune_claims(&state.db, slot).await?)
}

/// Runs the jobs every `every` until the server stops; a failed pass is logged and retried next
/// time.
pub fn spawn(state: AppState, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match queue_reminders(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(queued = n, "reminders queued"),
                Err(e) => {
                    let id = e.log();
                    tracing::warn!(correlation = %id, "reminder pass failed");
                }
            }
            match prune_claims(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "old booking claims pruned"),
                Err(e) => {
                    let id = e.log();
                    tracing::warn!(correlation = %id, "claim pruning failed");
                }
            }
            match kapstone_store::idempotency::prune(&state.db, kapstone_domain::UtcTs::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "expired idempotency keys deleted"),
                Err(e) => {
                    let id = AppError::from(e).log();
                    tracing::warn!(correlation = %id, "idempotency key pruning failed");
                }
            }
            match super::measures::assign_due(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(assigned = n, "due measures assigned"),
                Err(e) => {
                    let id = e.log();
                    tracing::warn!(correlation = %id, "measure assignment pass failed");
                }
            }
            match super::integrations::deliver_due(&state).await {
                Ok((0, 0)) => {}
                Ok((delivered, failed)) => tracing::info!(delivered, failed, "webhooks delivered"),
                Err(e) => {
                    let id = e.log();
                    tracing::warn!(correlation = %id, "webhook pass failed");
                }
            }
            // FHIR exports left queued (or whose runner stopped) by any server process.
            let exported = crate::fhir::export::run_pending(&state).await;
            if exported > 0 {
                tracing::info!(jobs = exported, "FHIR exports run");
            }
            match deliver(&state).await {
                Ok((0, 0)) => {}
                Ok((sent, failed)) => tracing::info!(sent, failed, "outbox delivered"),
                Err(e) => {
                    let id = e.log();
                    tracing::warn!(correlation = %id, "delivery pass failed");
                }
            }
        }
    });
}
