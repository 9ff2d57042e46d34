//! Portal invitations and the outbox of messages to send.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

/// What a queued message is about: the patient it concerns and the invitation it carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageLinks {
    pub patient: Option<PatientId>,
    pub invitation: Option<Uuid>,
}

pub async fn queue_message(
    tx: &mut Tx,
    clinic: ClinicId,
    to: &str,
    subject: &str,
    body: &str,
    links: MessageLinks,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO outbox (id, clinic_id, to_address, subject, body, created_at, patient_id, invitation_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(to)
        .bind(subject)
        .bind(body)
        .bind(DbTs(UtcTs::now()))
        .bind(links.patient.map(|p| p.as_uuid()))
        .bind(links.invitation)
        .execute(c)
        .await?;
    });
    Ok(id)
}

#[derive(Debug, Clone, FromRow)]
pub struct OutboxRow {
    pub id: Uuid,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    pub created_at: DbTs,
    pub sent_at: Option<DbTs>,
    pub patient_id: Option<Uuid>,
    pub attempts: i32,
    pub last_error: Option<String>,
}

pub async fn outbox(db: &Db, clinic: ClinicId, limit: i64) -> Result<Vec<OutboxRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT o.id, o.to_address, o.subject, \
             CASE WHEN i.id IS NOT NULL AND (i.used_at IS NOT NULL OR i.expires_at <= $3) \
                  THEN '(This invitation was used, replaced or has expired; its link has been removed.)' \
                  ELSE o.body END AS body, \
             o.created_at, o.sent_at, o.patient_id, o.attempts, o.last_error \
             FROM outbox o LEFT JOIN portal_invitations i ON i.id = o.invitation_id \
             WHERE o.clinic_id = $1 ORDER BY o.created_at DESC, o.id DESC LIMIT $2",
        )
        .bind(clinic.as_uuid())
        .bind(limit)
        .bind(DbTs(UtcTs::now()))
        .fetch_all(c)
        .await?
    }))
}

pub async fn create(
    tx: &mut Tx,
    clinic: ClinicId,
    patient: PatientId,
    email: &str,
    token_hash: &str,
    by: UserId,
    expires_at: UtcTs,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO portal_invitations (id, clinic_id, patient_id, email, token_hash, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(patient.as_uuid())
        .bind(email)
        .bind(token_hash)
        .bind(by.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .bind(DbTs(expires_at))
        .execute(c)
        .await?;
    });
    Ok(id)
}

#[derive(Debug, Clone, FromRow)]
pub struct InvitationRow {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub patient_id: Uuid,
    pub email: String,
    pub expires_at: DbTs,
    pub used_at: Option<DbTs>,
}

pub async fn find(db: &Db, token_hash: &str) -> Result<Option<InvitationRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, clinic_id, patient_id, email, expires_at, used_at FROM portal_invitations WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(c)
        .await?
    }))
}

/// Marks an unused, unexpired invitation used; false when it was used or expired meanwhile.
pub async fn redeem(tx: &mut Tx, id: Uuid, now: UtcTs) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query("UPDATE portal_invitations SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(id)
            .bind(DbTs(now))
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(n == 1)
}

/// Ends every open invitation of a patient (a new one replaces them) and removes their links from
/// the outbox, so only the newest link can ever open the account.
pub async fn cancel_open(tx: &mut Tx, patient: PatientId, now: UtcTs) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE outbox SET body = '(This invitation was replaced; its link has been removed.)' \
             WHERE invitation_id IN (SELECT id FROM portal_invitations WHERE patient_id = $1 AND used_at IS NULL)",
        )
        .bind(patient.as_uuid())
        .execute(&mut *c)
        .await?;
        sqlx::query("UPDATE portal_invitations SET used_at = $2 WHERE patient_id = $1 AND used_at IS NULL")
            .bind(patient.as_uuid())
            .bind(DbTs(now))
            .execute(&mut *c)
            .await?;
    });
    Ok(())
}

/// Removes a used invitation's link from its message.
pub async fn redact_link(tx: &mut Tx, invitation: Uuid) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE outbox SET body = '(This invitation was used; its link has been removed.)' WHERE invitation_id = $1")
            .bind(invitation)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// Queues a reminder once: a second attempt for the same appointment and kind (another server
/// process, a restart) inserts nothing. True when it was queued now.
#[allow(clippy::too_many_arguments)]
pub async fn queue_reminder(
    tx: &mut Tx,
    clinic: ClinicId,
    patient: PatientId,
    appointment: Uuid,
    reminder: &str,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<bool> {
    let id = Uuid::now_v7();
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO outbox (id, clinic_id, to_address, subject, body, created_at, patient_id, appointment_id, reminder) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (appointment_id, reminder) DO NOTHING",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(to)
        .bind(subject)
        .bind(body)
        .bind(DbTs(UtcTs::now()))
        .bind(patient.as_uuid())
        .bind(appointment)
        .bind(reminder)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// Which (appointment, reminder) pairs are already queued among these appointments.
pub async fn reminders_queued(db: &Db, appointments: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
    if appointments.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_read!(db, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT appointment_id, reminder FROM outbox WHERE reminder IS NOT NULL AND appointment_id IN ",
        );
        crate::push_ids(&mut q, appointments);
        q.build_query_as().fetch_all(c).await?
    }))
}

/// A message taken for delivery.
#[derive(Debug, Clone, FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub to_address: String,
    pub subject: String,
    pub body: String,
    pub attempts: i32,
}

/// Takes up to `limit` unsent messages that are due, each leased until `lease_until` so another
/// server process does not send it too (a crashed sender's lease simply runs out). A reminder
/// whose appointment was cancelled, moved or has begun is never sent.
pub async fn claim_due(
    db: &Db,
    now: UtcTs,
    lease_until: UtcTs,
    max_attempts: i32,
    limit: i64,
) -> Result<Vec<Delivery>> {
    let candidates: Vec<Delivery> = on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, to_address, subject, body, attempts FROM outbox WHERE sent_at IS NULL AND attempts < $2 \
             AND (next_attempt_at IS NULL OR next_attempt_at <= $1) \
             AND (appointment_id IS NULL OR reminder = 'checkin' OR appointment_id IN \
                  (SELECT id FROM appointments WHERE status = 'booked' AND start_at > $1)) \
             ORDER BY created_at LIMIT $3",
        )
        .bind(DbTs(now))
        .bind(max_attempts)
        .bind(limit)
        .fetch_all(c)
        .await?
    });
    crate::lease_each(
        db,
        candidates,
        |m| m.id,
        "UPDATE outbox SET next_attempt_at = $3 WHERE id = $1 AND sent_at IS NULL \
         AND (next_attempt_at IS NULL OR next_attempt_at <= $2)",
        now,
        lease_until,
    )
    .await
}

pub async fn mark_sent(db: &Db, id: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |c| {
        sqlx::query("UPDATE outbox SET sent_at = $2, attempts = attempts + 1, last_error = NULL WHERE id = $1")
            .bind(id)
            .bind(DbTs(UtcTs::now()))
            .execute(c)
            .await?;
    });
    tx.commit().await
}

/// Records a failed attempt and when to try again.
pub async fn mark_failed(db: &Db, id: Uuid, retry_at: UtcTs, error: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, |c| {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1")
            .bind(id)
            .bind(DbTs(retry_at))
            .bind(error)
            .execute(c)
            .await?;
    });
    tx.commit().await
}
