//! Server-side sessions. The client holds a random token; we store only its SHA-256.

use kapstone_domain::{Role, SessionId, UserId, UtcTs};
use sqlx::FromRow;
use uuid::Uuid;

use crate::users::UserRow;
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

/// A stored session. Its `id` and `created_at` are read as `session_id` and `session_created_at`
/// ([`COLUMNS`]), so that a row joined with the account's ([`find_signed_in`]) names each once.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    #[sqlx(rename = "session_id")]
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub csrf_token: String,
    pub mfa_pending: bool,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    #[sqlx(rename = "session_created_at")]
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

/// A [`SessionRow`]'s columns, of `sessions s`.
const COLUMNS: &str = "s.id AS session_id, s.user_id, s.kind, s.csrf_token, s.mfa_pending, s.source_ip, \
     s.user_agent, s.created_at AS session_created_at, s.last_seen_at, s.authenticated_at";

/// A live session with its account and what the clinic's current settings say of second factors:
/// everything a request's sign-in check reads, in one statement.
#[derive(Debug, Clone, FromRow)]
pub struct SignedIn {
    #[sqlx(flatten)]
    pub session: SessionRow,
    #[sqlx(flatten)]
    pub user: UserRow,
    /// `clinic_settings.mfa_required_roles` of the latest settings (`None`: none saved yet).
    mfa_required_roles: Option<String>,
}

impl SignedIn {
    /// Must this role use a second factor in the account's clinic? As
    /// [`crate::clinics::ClinicSettings::requires_mfa`] of the current settings.
    pub fn requires_mfa(&self, role: Role) -> bool {
        match &self.mfa_required_roles {
            Some(roles) => crate::clinics::roles_from_text(roles).contains(&role),
            None => crate::clinics::ClinicSettings::default().requires_mfa(role),
        }
    }
}

/// The live (not ended) session of a token with its account ([`crate::users::get`]) and its
/// clinic's second-factor rule ([`crate::clinics::current_settings`]), read together.
pub async fn find_signed_in(db: &Db, token_hash: &str) -> Result<Option<SignedIn>> {
    let sql = format!(
        "SELECT {COLUMNS}, {users}, (SELECT cs.mfa_required_roles FROM clinic_settings cs WHERE cs.clinic_id = u.clinic_id \
         ORDER BY cs.version DESC LIMIT 1) AS mfa_required_roles \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.ended_at IS NULL",
        users = crate::users::COLUMNS
    );
    Ok(on_read!(db, |c| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(token_hash).fetch_optional(c).await?))
}

pub async fn list_live_for_user(db: &Db, user: UserId) -> Result<Vec<SessionRow>> {
    let sql =
        format!("SELECT {COLUMNS} FROM sessions s WHERE user_id = $1 AND ended_at IS NULL ORDER BY last_seen_at DESC");
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
