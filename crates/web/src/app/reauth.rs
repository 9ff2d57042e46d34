//! Re-authentication before signing, witnessing and exporting (ASVS 3.7.1; SECURITY.md).
//!
//! The rule, in one place: such a step needs the account's password, and its second factor when
//! one is enrolled, entered in this session within the last `ReauthPolicy::window` (10 minutes
//! by default). Signing in counts; after that, the person confirms on `/reauth` (or
//! `POST /api/v1/auth/reauth`), or types the password into a signing form that carries one. The
//! time is kept on the server-side session (`sessions.authenticated_at`), so it holds across
//! server processes. A wrong password counts toward the account's lockout like a failed sign-in.
//!
//! API tokens (integrations) have no person at a keyboard: the admin re-authenticated to create
//! the token, and its scopes bound what it can do, so token requests pass this check.

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::{FieldError, UtcTs};
use kapstone_store::{audit, sessions, users};

use super::password_work;
use super::sign_in::record_failure;
use crate::auth::guard::CurrentUser;
use crate::auth::{password, totp};
use crate::error::AppError;
use crate::state::AppState;

/// The refusal when the last password entry is too old: 422 naming `password`.
fn needed(state: &AppState) -> AppError {
    AppError::Refused {
        code: "reauth_required",
        field: Some("password"),
        message: format!(
            "confirm it is you: enter your password again (on the Confirm page, /reauth) to sign, witness or \
             export; it stays confirmed for {} minutes",
            state.config.reauth.window.whole_minutes()
        ),
    }
}

/// Refuses unless the session proved its password recently.
pub fn require_recent(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    if user.token.is_some() {
        return Ok(());
    }
    match user.authenticated_at {
        Some(at) if state.config.reauth.is_recent(at, UtcTs::now()) => Ok(()),
        _ => Err(needed(state)),
    }
}

/// For forms and bodies that carry the password: a given password (and code) is checked and
/// re-authenticates; without one, the session must have re-authenticated recently.
pub async fn require(
    state: &AppState,
    user: &CurrentUser,
    password: Option<&str>,
    totp_code: Option<&str>,
) -> Result<(), AppError> {
    match password.filter(|p| !p.is_empty()) {
        Some(pw) if user.token.is_none() => reauthenticate(state, user, pw, totp_code).await,
        _ => require_recent(state, user),
    }
}

/// Checks the account's password (and TOTP code when enrolled) and marks the session as
/// re-authenticated now. Wrong → 422 naming the field, counted toward the lockout.
pub async fn reauthenticate(
    state: &AppState,
    user: &CurrentUser,
    password_input: &str,
    totp_code: Option<&str>,
) -> Result<(), AppError> {
    if user.token.is_some() {
        return Err(AppError::Forbidden);
    }
    let Some(row) = users::get(&state.db, user.id).await? else { return Err(AppError::Unauthenticated) };
    let now = UtcTs::now();
    if state.config.lockout.is_locked(row.locked_until.map(|t| t.0), now) {
        return Err(
            FieldError::new("password", "your account is locked after repeated failures; try again later").into()
        );
    }
    let (pw, phc) = (password_input.to_owned(), row.password_hash.clone());
    if password_input.is_empty() || !password_work(state, move || password::verify(&pw, &phc)).await? {
        record_failure(state, &row, "wrong password at re-authentication", user.ip.as_deref()).await?;
        return Err(FieldError::new("password", "this is not your password").into());
    }
    let mut step = None;
    if row.totp_enabled {
        let code = totp_code.map(str::trim).unwrap_or_default();
        if code.is_empty() {
            return Err(FieldError::new("totp_code", "enter the 6-digit code from your authenticator app").into());
        }
        let secret = row.totp_secret.clone().unwrap_or_default();
        let secs = u64::try_from(now.unix_micros() / 1_000_000).unwrap_or(0);
        match totp::check(&secret, &row.email, code, secs) {
            Some(s) => step = Some(s),
            None => {
                record_failure(state, &row, "wrong TOTP code at re-authentication", user.ip.as_deref()).await?;
                return Err(
                    FieldError::new("totp_code", "that code is not right; use the newest code from your app").into()
                );
            }
        }
    }
    let mut tx = state.db.begin().await?;
    if let Some(s) = step
        && !users::claim_totp_step(&mut tx, row.user_id(), s).await?
    {
        drop(tx);
        record_failure(state, &row, "TOTP code reused at re-authentication", user.ip.as_deref()).await?;
        return Err(FieldError::new("totp_code", "that code was used already; wait for the next one").into());
    }
    sessions::mark_authenticated(&mut tx, user.session, now).await?;
    let mut e = user.event(AuditAction::Reauthenticated, "session", Outcome::Success);
    e.entity_id = Some(user.session.to_string());
    audit::append(&mut tx, &e).await?;
    // Stands on its own before the step it allows (a signature with the password in its body):
    // the request's `Idempotency-Key` goes with that step's own commit, not with this one, so a
    // step that is then refused leaves its key unused, and one that is made stores its answer
    // with it (issue 9).
    tx.commit_apart().await?;
    Ok(())
}

/// Before an export (record sets, FHIR bulk export starts, CSV reports): a recent password entry,
/// then the export rate limit.
pub async fn before_export(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    require_recent(state, user)?;
    super::rate_limit::export(state, user).await
}
