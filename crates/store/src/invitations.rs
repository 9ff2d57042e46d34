//! Portal invitations and the outbox of messages to send.

use kapstone_domain::{ClinicId, PatientId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

pub async fn queue_message(tx: &mut Tx, clinic: ClinicId, to: &str, subject: &str, body: &str) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO outbox (id, clinic_id, to_address, subject, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(to)
        .bind(subject)
        .bind(body)
        .bind(DbTs(UtcTs::now()))
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
}

pub async fn outbox(db: &Db, clinic: ClinicId, limit: i64) -> Result<Vec<OutboxRow>> {
    Ok(on_read!(db, |c| {
        sqlx::query_as(
            "SELECT id, to_address, subject, body, created_at, sent_at FROM outbox WHERE clinic_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(clinic.as_uuid())
        .bind(limit)
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
