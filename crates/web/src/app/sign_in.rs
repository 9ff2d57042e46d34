//! Signing in and out: passwords, lockout, the second factor, sessions.

use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
use kapstone_domain::{Email, FieldError, Role, UtcTs};
use kapstone_store::sessions::{self, NewSession, SessionKind};
use kapstone_store::users::{self, UserRow};
use kapstone_store::{Tx, audit};

use super::password_work;
use super::rate_limit::{self, By, Limited};
use crate::auth::guard::CurrentUser;
use crate::auth::{password, tokens, totp};
use crate::error::AppError;
use crate::state::AppState;

pub struct Credentials {
    pub email: String,
    pub password: String,
    /// API sign-in sends the TOTP code with the password; the web form asks for it next.
    pub totp_code: Option<String>,
}

/// A new session. `token` goes to the client once (cookie or JSON) and is never stored.
#[derive(Debug)]
pub struct NewSessionIssued {
    pub token: String,
    pub csrf: String,
    pub expires_at: UtcTs,
    pub mfa_pending: bool,
    pub user: UserRow,
}

fn event_for(
    user: &UserRow,
    role: Option<Role>,
    action: AuditAction,
    outcome: Outcome,
    ip: Option<&str>,
) -> NewAuditEvent {
    let mut e = NewAuditEvent::new(action, "user", outcome);
    e.clinic_id = Some(user.clinic());
    e.actor_user_id = Some(user.user_id());
    e.actor_role = role;
    e.entity_id = Some(user.user_id().to_string());
    e.source_ip = ip.map(str::to_owned);
    e
}

/// Takes the account's row lock and, if the account is locked, audits the refused attempt.
/// Returns true when the attempt must be refused (the caller commits the audit event).
async fn refuse_if_locked(state: &AppState, tx: &mut Tx, user: &UserRow, ip: Option<&str>) -> Result<bool, AppError> {
    let (_, locked_until) = users::lock_for_sign_in(tx, user.user_id()).await?;
    if !state.config.lockout.is_locked(locked_until.map(|t| t.0), UtcTs::now()) {
        return Ok(false);
    }
    let mut e = event_for(user, user.role().ok(), AuditAction::SignInFailed, Outcome::Denied, ip);
    e.reason = Some("account locked".into());
    audit::append(tx, &e).await?;
    Ok(true)
}

/// Counts a failed attempt (locking the account at the limit) and audits it.
pub(crate) async fn record_failure(
    state: &AppState,
    user: &UserRow,
    reason: &str,
    ip: Option<&str>,
) -> Result<(), AppError> {
    let role = user.role().ok();
    let mut tx = state.db.begin().await?;
    let (attempts, _) = users::lock_for_sign_in(&mut tx, user.user_id()).await?;
    let after = state.config.lockout.after_failure(u32::try_from(attempts).unwrap_or(0), UtcTs::now());
    users::record_failed_sign_in(&mut tx, user.user_id(), after.failed_attempts, after.locked_until).await?;
    let mut failed = event_for(user, role, AuditAction::SignInFailed, Outcome::Failure, ip);
    failed.reason = Some(reason.to_owned());
    audit::append(&mut tx, &failed).await?;
    if after.locked_until.is_some() {
        let mut locked = event_for(user, role, AuditAction::AccountLocked, Outcome::Success, ip);
        locked.reason = Some(format!(
            "{} failed attempts; locked for {} min",
            state.config.lockout.max_failed_attempts,
            state.config.lockout.lock_for.whole_minutes()
        ));
        audit::append(&mut tx, &locked).await?;
    }
    // Stands on its own (also inside a ledger write that a witness failed to sign).
    tx.commit_apart().await?;
    Ok(())
}

pub(crate) async fn issue_session(
    tx: &mut Tx,
    state: &AppState,
    user: &UserRow,
    kind: SessionKind,
    mfa_pending: bool,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<NewSessionIssued, AppError> {
    let token = tokens::random_token();
    let csrf = tokens::random_token();
    let hash = tokens::token_hash(&token);
    let ua: Option<String> = user_agent.map(|u| u.chars().take(200).collect());
    sessions::insert(
        tx,
        &NewSession {
            token_hash: &hash,
            user: user.user_id(),
            kind,
            csrf_token: &csrf,
            mfa_pending,
            source_ip: ip,
            user_agent: ua.as_deref(),
        },
    )
    .await?;
    let now = UtcTs::now();
    Ok(NewSessionIssued {
        token,
        csrf,
        expires_at: state.config.session.expires_at(now, now),
        mfa_pending,
        user: user.clone(),
    })
}

/// Checks email and password (and the TOTP code when given) and opens a session.
///
/// Unknown emails, inactive and locked accounts all answer `InvalidCredentials` after the same
/// argon2 work as a wrong password, so the answer does not reveal which accounts exist.
pub async fn sign_in(
    state: &AppState,
    creds: Credentials,
    kind: SessionKind,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<NewSessionIssued, AppError> {
    let email = Email::parse(&creds.email)?;
    if creds.password.is_empty() {
        return Err(FieldError::new("password", "enter your password").into());
    }
    let user = users::find_by_email(&state.db, &email).await?;
    // Counted before the password work: a refused burst costs one upsert each, not argon2.
    let account = user.as_ref().map(|u| (u.clinic(), u.user_id(), u.role().ok()));
    let by = By::Anonymous { ip, account };
    rate_limit::check(state, Limited::SignInPerAddress, ip.unwrap_or("unknown"), by).await?;
    rate_limit::check(state, Limited::SignInPerAccount, email.as_str(), by).await?;
    let phc = user.as_ref().map_or_else(|| password::dummy_hash().to_owned(), |u| u.password_hash.clone());
    let pw = creds.password.clone();
    let password_ok = password_work(state, move || password::verify(&pw, &phc)).await?;

    let Some(user) = user else {
        let mut tx = state.db.begin().await?;
        let mut e = NewAuditEvent::new(AuditAction::SignInFailed, "user", Outcome::Failure);
        e.reason = Some("unknown email".into());
        e.source_ip = ip.map(str::to_owned);
        audit::append(&mut tx, &e).await?;
        tx.commit().await?;
        return Err(AppError::InvalidCredentials);
    };
    let role = user.role()?;
    let now = UtcTs::now();
    if !user.active {
        record_failure(state, &user, "account deactivated", ip).await?;
        return Err(AppError::InvalidCredentials);
    }
    if state.config.lockout.is_locked(user.locked_until.map(|t| t.0), now) {
        let mut tx = state.db.begin().await?;
        let mut e = event_for(&user, Some(role), AuditAction::SignInFailed, Outcome::Denied, ip);
        e.reason = Some("account locked".into());
        audit::append(&mut tx, &e).await?;
        tx.commit().await?;
        return Err(AppError::InvalidCredentials);
    }
    if !password_ok {
        record_failure(state, &user, "wrong password", ip).await?;
        return Err(AppError::InvalidCredentials);
    }

    let mut mfa_pending = false;
    let mut second_factor_step = None;
    if user.totp_enabled {
        match (&creds.totp_code, kind) {
            (Some(code), _) => {
                let secret = user.totp_secret.clone().unwrap_or_default();
                match totp::check(&secret, &user.email, code, unix_secs(now)) {
                    Some(step) => second_factor_step = Some(step),
                    None => {
                        record_failure(state, &user, "wrong TOTP code", ip).await?;
                        return Err(AppError::InvalidCredentials);
                    }
                }
            }
            (None, SessionKind::Browser) => mfa_pending = true,
            (None, SessionKind::Api) => return Err(AppError::MfaRequired),
        }
    }

    let mut tx = state.db.begin().await?;
    // The lock is checked again under the row lock: a burst of parallel guesses all read the
    // account before the fifth failure locked it, and none of them may get through afterwards.
    if refuse_if_locked(state, &mut tx, &user, ip).await? {
        tx.commit().await?;
        return Err(AppError::InvalidCredentials);
    }
    if let Some(step) = second_factor_step
        && !users::claim_totp_step(&mut tx, user.user_id(), step).await?
    {
        drop(tx);
        record_failure(state, &user, "TOTP code reused", ip).await?;
        return Err(AppError::InvalidCredentials);
    }
    // The failure count restarts only when sign-in is complete: a right password alone must not
    // reset the count of wrong second-factor codes.
    if !mfa_pending {
        users::record_successful_sign_in(&mut tx, user.user_id()).await?;
    }
    let issued = issue_session(&mut tx, state, &user, kind, mfa_pending, ip, user_agent).await?;
    let action = if mfa_pending { AuditAction::SignInMfaPending } else { AuditAction::SignIn };
    let mut e = event_for(&user, Some(role), action, Outcome::Success, ip);
    e.reason = Some(format!("{} session{}", kind.as_str(), if second_factor_step.is_some() { ", totp" } else { "" }));
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(issued)
}

fn unix_secs(t: UtcTs) -> u64 {
    u64::try_from(t.unix_micros() / 1_000_000).unwrap_or(0)
}

/// The second step of a browser sign-in: a TOTP code or a one-time recovery code.
pub async fn complete_mfa(state: &AppState, pending: &CurrentUser, code: &str) -> Result<(), AppError> {
    let code = code.trim();
    if code.is_empty() {
        return Err(FieldError::new("code", "enter the 6-digit code from your authenticator app").into());
    }
    // The second step counts toward the same limits as the password step.
    let ip = pending.ip.as_deref().unwrap_or("unknown");
    rate_limit::check(state, Limited::SignInPerAddress, ip, By::User(pending)).await?;
    rate_limit::check(state, Limited::SignInPerAccount, &pending.email.to_lowercase(), By::User(pending)).await?;
    let Some(user) = users::get(&state.db, pending.id).await? else { return Err(AppError::Unauthenticated) };
    let now = UtcTs::now();
    let secret = user.totp_secret.clone().unwrap_or_default();
    let mut tx = state.db.begin().await?;
    if refuse_if_locked(state, &mut tx, &user, pending.ip.as_deref()).await? {
        tx.commit().await?;
        return Err(AppError::InvalidCredentials);
    }
    let (ok, how) = match totp::check(&secret, &user.email, code, unix_secs(now)) {
        Some(step) => (users::claim_totp_step(&mut tx, user.user_id(), step).await?, "totp"),
        None => (
            users::use_recovery_code(&mut tx, user.user_id(), &tokens::recovery_code_hash(code)).await?,
            "recovery code",
        ),
    };
    if !ok {
        drop(tx);
        record_failure(state, &user, "wrong second factor", pending.ip.as_deref()).await?;
        return Err(FieldError::new("code", "that code is not right; try the newest code from your app").into());
    }
    kapstone_store::sessions::complete_mfa(&mut tx, pending.session).await?;
    users::record_successful_sign_in(&mut tx, user.user_id()).await?;
    if how == "recovery code" {
        let e = pending.event(AuditAction::RecoveryCodeUsed, "user", Outcome::Success);
        audit::append(&mut tx, &e).await?;
    }
    let mut e = pending.event(AuditAction::SignIn, "user", Outcome::Success);
    e.entity_id = Some(pending.id.to_string());
    e.reason = Some(format!("browser session, {how}"));
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends the current session.
pub async fn sign_out(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    sessions::end(&mut tx, user.session, user.id, "signed out").await?;
    let mut e = user.event(AuditAction::SignOut, "session", Outcome::Success);
    e.entity_id = Some(user.session.to_string());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}
