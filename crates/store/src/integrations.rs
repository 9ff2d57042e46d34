//! API tokens and webhooks (issue 8). Tokens are stored as the SHA-256 of their secret; webhook
//! deliveries are an outbox written in the transaction of the change that caused the event and
//! claimed by the delivery job with a lease, so two servers never send one row at once.

use kapstone_domain::{ClinicId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::keyset::{self, Page};
use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created_by: Uuid,
    pub created_at: DbTs,
    pub expires_at: DbTs,
    pub revoked_at: Option<DbTs>,
    pub last_used_at: Option<DbTs>,
}

const TOKEN_COLUMNS: &str =
    "id, clinic_id, name, prefix, scopes, created_by, created_at, expires_at, revoked_at, last_used_at";

pub struct NewToken<'a> {
    pub clinic: ClinicId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub token_hash: &'a str,
    pub scopes: &'a str,
    pub created_by: UserId,
    pub at: UtcTs,
    pub expires_at: UtcTs,
}

pub async fn insert_token(tx: &mut Tx, t: &NewToken<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO api_tokens (id, clinic_id, name, prefix, token_hash, scopes, created_by, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(t.clinic.as_uuid())
        .bind(t.name)
        .bind(t.prefix)
        .bind(t.token_hash)
        .bind(t.scopes)
        .bind(t.created_by.as_uuid())
        .bind(DbTs(t.at))
        .bind(DbTs(t.expires_at))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// The token with this hash, whatever its state (the guard decides).
pub async fn token_by_hash(db: &Db, hash: &str) -> Result<Option<TokenRow>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(hash).fetch_optional(c).await?))
}

/// The clinic's tokens, newest first.
pub async fn tokens(db: &Db, clinic: ClinicId) -> Result<Vec<TokenRow>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE clinic_id = $1 ORDER BY created_at DESC, id DESC");
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).fetch_all(c).await?))
}

/// A page of the clinic's tokens, newest first after `p.after` (the API's list; `$2` to `$4`, the
/// filters, are not bound to anything a token has and stay null).
pub async fn tokens_page(db: &Db, p: &Page<'_>) -> Result<Vec<TokenRow>> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE clinic_id = $1 AND $2 IS NULL AND $3 IS NULL AND $4 IS NULL \
         AND created_at <= $5 AND (created_at < $5 OR id < $6) ORDER BY created_at DESC, id DESC LIMIT $7"
    );
    keyset::fetch(db, sql, p, None).await
}

/// Revokes a live token of the clinic; false when there is none.
pub async fn revoke_token(tx: &mut Tx, clinic: ClinicId, id: Uuid, by: UserId, at: UtcTs) -> Result<bool> {
    Ok(on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $4, revoked_by = $3 WHERE clinic_id = $1 AND id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(clinic.as_uuid())
        .bind(id)
        .bind(by.as_uuid())
        .bind(DbTs(at))
        .execute(c)
        .await?
        .rows_affected()
            == 1
    }))
}

pub async fn touch_token(tx: &mut Tx, id: Uuid, at: UtcTs) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1").bind(id).bind(DbTs(at)).execute(c).await?;
    });
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct EndpointRow {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub url: String,
    pub events: String,
    pub secret: String,
    pub active: bool,
    pub created_at: DbTs,
}

const ENDPOINT_COLUMNS: &str = "id, clinic_id, url, events, secret, active, created_at";

pub async fn insert_endpoint(
    tx: &mut Tx,
    clinic: ClinicId,
    url: &str,
    events: &str,
    secret: &str,
    by: UserId,
    at: UtcTs,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, clinic_id, url, events, secret, active, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7)",
        )
        .bind(id)
        .bind(clinic.as_uuid())
        .bind(url)
        .bind(events)
        .bind(secret)
        .bind(by.as_uuid())
        .bind(DbTs(at))
        .execute(c)
        .await?;
    });
    Ok(id)
}

/// Switches an endpoint of the clinic on or off; false when there is none.
pub async fn set_endpoint_active(tx: &mut Tx, clinic: ClinicId, id: Uuid, active: bool) -> Result<bool> {
    Ok(on_tx!(tx, |c| {
        sqlx::query("UPDATE webhook_endpoints SET active = $3 WHERE clinic_id = $1 AND id = $2")
            .bind(clinic.as_uuid())
            .bind(id)
            .bind(active)
            .execute(c)
            .await?
            .rows_affected()
            == 1
    }))
}

pub async fn endpoints(db: &Db, clinic: ClinicId) -> Result<Vec<EndpointRow>> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE clinic_id = $1 ORDER BY created_at, id");
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).fetch_all(c).await?))
}

/// The clinic's active endpoints, read inside the transaction that enqueues an event.
pub async fn active_endpoints_in(tx: &mut Tx, clinic: ClinicId) -> Result<Vec<(Uuid, String)>> {
    Ok(on_tx!(tx, |c| {
        sqlx::query_as("SELECT id, events FROM webhook_endpoints WHERE clinic_id = $1 AND active = TRUE")
            .bind(clinic.as_uuid())
            .fetch_all(c)
            .await?
    }))
}

pub struct NewDelivery<'a> {
    pub clinic: ClinicId,
    pub endpoint: Uuid,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub payload: &'a str,
    pub at: UtcTs,
}

pub async fn insert_delivery(tx: &mut Tx, d: &NewDelivery<'_>) -> Result<Uuid> {
    let id = Uuid::now_v7();
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, clinic_id, endpoint_id, event_id, event_type, payload, status, \
             attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
        )
        .bind(id)
        .bind(d.clinic.as_uuid())
        .bind(d.endpoint)
        .bind(d.event_id)
        .bind(d.event_type)
        .bind(d.payload)
        .bind(DbTs(d.at))
        .execute(c)
        .await?;
    });
    Ok(id)
}

#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DbTs,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DbTs,
    pub delivered_at: Option<DbTs>,
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, payload, status, attempts, next_attempt_at, \
     last_status_code, last_error, created_at, delivered_at";

/// The clinic's most recent deliveries, newest first.
pub async fn recent_deliveries(db: &Db, clinic: ClinicId, limit: i64) -> Result<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE clinic_id = $1 ORDER BY created_at DESC, id DESC \
         LIMIT $2"
    );
    Ok(on_read!(db, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(clinic.as_uuid()).bind(limit).fetch_all(c).await?
    }))
}

/// A page of the clinic's deliveries, newest first after `p.after`, queued in the window `[from, to)`
/// when set (the API's list; deliveries name no patient, so `p.filter.patient` is refused before here).
pub async fn deliveries_page(db: &Db, p: &Page<'_>) -> Result<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE clinic_id = $1 AND $2 IS NULL \
         AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4) \
         AND created_at <= $5 AND (created_at < $5 OR id < $6) ORDER BY created_at DESC, id DESC LIMIT $7"
    );
    keyset::fetch(db, sql, p, None).await
}

/// A delivery claimed for sending, with what sending needs.
#[derive(Debug, Clone, FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub url: String,
    pub secret: String,
    pub payload: String,
    pub attempts: i32,
}

/// Claims up to `limit` pending deliveries due at `now` by moving their next attempt to
/// `lease_until`: a row another process claimed first is skipped (the conditional update finds
/// it no longer due). Deliveries of switched-off endpoints stay pending.
pub async fn claim_due(db: &Db, now: UtcTs, lease_until: UtcTs, limit: i64) -> Result<Vec<Claimed>> {
    let candidates: Vec<Claimed> = on_read!(db, |c| {
        sqlx::query_as(
            "SELECT d.id, e.url, e.secret, d.payload, d.attempts FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND e.active = TRUE \
             ORDER BY d.next_attempt_at, d.id LIMIT $2",
        )
        .bind(DbTs(now))
        .bind(limit)
        .fetch_all(c)
        .await?
    });
    crate::lease_each(
        db,
        candidates,
        |d| d.id,
        "UPDATE webhook_deliveries SET next_attempt_at = $3 WHERE id = $1 AND status = 'pending' \
         AND next_attempt_at <= $2",
        now,
        lease_until,
    )
    .await
}

/// What one attempt came to.
pub enum Attempt<'a> {
    Delivered {
        status_code: i32,
    },
    /// Try again at `retry_at`, or give up (`retry_at` None: the row is marked failed).
    Failed {
        status_code: Option<i32>,
        error: &'a str,
        retry_at: Option<UtcTs>,
    },
}

pub async fn record_attempt(db: &Db, id: Uuid, at: UtcTs, attempt: Attempt<'_>) -> Result<()> {
    let mut tx = db.begin().await?;
    match attempt {
        Attempt::Delivered { status_code } => on_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = $2, \
                 last_status_code = $3, last_error = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(DbTs(at))
            .bind(status_code)
            .execute(c)
            .await?;
        }),
        Attempt::Failed { status_code, error, retry_at } => {
            let status = if retry_at.is_some() { "pending" } else { "failed" };
            let next = retry_at.unwrap_or(at);
            on_tx!(&mut tx, |c| {
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3, \
                     last_status_code = $4, last_error = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(status)
                .bind(DbTs(next))
                .bind(status_code)
                .bind(error)
                .execute(c)
                .await?;
            });
        }
    }
    tx.commit().await
}

/// Queues a delivery of the clinic again now, with a fresh count of attempts; false when there
/// is none.
pub async fn requeue(tx: &mut Tx, clinic: ClinicId, id: Uuid, at: UtcTs) -> Result<bool> {
    Ok(on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $3 \
             WHERE clinic_id = $1 AND id = $2",
        )
        .bind(clinic.as_uuid())
        .bind(id)
        .bind(DbTs(at))
        .execute(c)
        .await?
        .rows_affected()
            == 1
    }))
}
