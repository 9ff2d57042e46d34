//! Server-side sessions. The client holds a random token; we store only its SHA-256.

use kapstone_domain::{SessionId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::{Db, DbTs, Result, Tx, on_read, on_tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Cookie session of the web pages; state changes need the CSRF token.
    Browser,
    /// Bearer token from `POST /api/v1/auth/login`.
    Api,
}

impl SessionKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionKind::Browser => "browser",
            SessionKind::Api => "api",
        }
    }
}

/// A live session joined with the account it belongs to.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub csrf_token: String,
    pub mfa_pending: bool,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DbTs,
    pub last_seen_at: DbTs,
    /// When the password was last entered again (re-authentication); `None`: at sign-in.
    pub authenticated_at: Option<DbTs>,
}

impl SessionRow {
    pub fn session_id(&self) -> SessionId {
        SessionId::from_uuid(self.id)
    }
    pub fn user(&self) -> UserId {
        UserId::from_uuid(self.user_id)
    }
    pub fn is_api(&self) -> bool {
        self.kind == SessionKind::Api.as_str()
    }
    /// When the account's password was last proved in this session: sign-in or a later
    /// re-authentication.
    pub fn last_authenticated(&self) -> UtcTs {
        self.authenticated_at.unwrap_or(self.created_at).0
    }
}

pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user: UserId,
    pub kind: SessionKind,
    pub csrf_token: &'a str,
    pub mfa_pending: bool,
    pub source_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub async fn insert(tx: &mut Tx, s: &NewSession<'_>) -> Result<SessionId> {
    let id = SessionId::new();
    let now = DbTs(UtcTs::now());
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO sessions (id, token_hash, user_id, kind, csrf_token, mfa_pending, source_ip, user_agent, \
             created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(id.as_uuid())
        .bind(s.token_hash)
        .bind(s.user.as_uuid())
        .bind(s.kind.as_str())
        .bind(s.csrf_token)
        .bind(s.mfa_pending)
        .bind(s.source_ip)
        .bind(s.user_agent)
        .bind(now)
        .execute(c)
        .await?;
    });
    Ok(id)
}

const SELECT: &str = "SELECT id, user_id, kind, csrf_token, mfa_pending, source_ip, user_agent, created_at, \
     last_seen_at, authenticated_at FROM sessions";

/// The session for a token, if it has not been ended.
pub async fn find_live(db: &Db, token_hash: &str) -> Result<Option<SessionRow>> {
    let sql = format!("{SELECT} WHERE token_hash = $1 AND ended_at IS NULL");
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(token_hash).fetch_optional(c).await?))
}

pub async fn list_live_for_user(db: &Db, user: UserId) -> Result<Vec<SessionRow>> {
    let sql = format!("{SELECT} WHERE user_id = $1 AND ended_at IS NULL ORDER BY last_seen_at DESC");
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(user.as_uuid()).fetch_all(c).await?))
}

/// Moves `last_seen_at` forward (idle timeout). Written at most once a minute per session by the
/// caller, so reads do not each cost a durable write.
pub async fn touch(tx: &mut Tx, id: SessionId, now: UtcTs) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND ended_at IS NULL AND last_seen_at < $2")
            .bind(id.as_uuid())
            .bind(DbTs(now))
            .execute(c)
            .await?;
    });
    Ok(())
}

/// Records a re-authentication (the password, and the second factor when enrolled, entered again).
pub async fn mark_authenticated(tx: &mut Tx, id: SessionId, at: UtcTs) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE sessions SET authenticated_at = $2 WHERE id = $1 AND ended_at IS NULL")
            .bind(id.as_uuid())
            .bind(DbTs(at))
            .execute(c)
            .await?;
    });
    Ok(())
}

pub async fn complete_mfa(tx: &mut Tx, id: SessionId) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query("UPDATE sessions SET mfa_pending = FALSE WHERE id = $1").bind(id.as_uuid()).execute(c).await?;
    });
    Ok(())
}

/// Ends one session; false when it was not live (or not the user's).
pub async fn end(tx: &mut Tx, id: SessionId, user: UserId, reason: &str) -> Result<bool> {
    let n = on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE sessions SET ended_at = $3, ended_reason = $4 WHERE id = $1 AND user_id = $2 AND ended_at IS NULL",
        )
        .bind(id.as_uuid())
        .bind(user.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .bind(reason)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// Ends every live session of `user` (deactivation, password change), except `keep`.
pub async fn end_all_for_user(tx: &mut Tx, user: UserId, keep: Option<SessionId>, reason: &str) -> Result<u64> {
    Ok(on_tx!(tx, |c| {
        sqlx::query(
            "UPDATE sessions SET ended_at = $2, ended_reason = $3 WHERE user_id = $1 AND ended_at IS NULL \
             AND ($4 IS NULL OR id <> $4)",
        )
        .bind(user.as_uuid())
        .bind(DbTs(UtcTs::now()))
        .bind(reason)
        .bind(keep.map(|k| k.as_uuid()))
        .execute(c)
        .await?
        .rows_affected()
    }))
}
