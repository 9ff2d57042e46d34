//! A witness who authenticates on the spot (KAP-SPEC 9.2; issue 6): the second person types their
//! own email and password, and their TOTP code when they have enrolled, on the recorder's screen.
//! Their authentication is their signature on the waste or the Form 41 record.
//!
//! A wrong password counts toward the witness's own lockout exactly as a failed sign-in does
//! (and is audited as one), so the witness form cannot be used to guess passwords.

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::ledger::Witness;
use kapstone_domain::{Email, UtcTs};
use kapstone_store::users;
use serde::Deserialize;

use crate::app::password_work;
use crate::app::sign_in::record_failure;
use crate::auth::guard::CurrentUser;
use crate::auth::{password, totp};
use crate::error::AppError;
use crate::state::AppState;

/// What the witness types.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WitnessCredentials {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub totp_code: Option<String>,
}

fn refused(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Refused { code: "witness", field: Some(field), message: message.into() }
}

/// Authenticates the witness named in `field` (`witness`, `witnesses[1]`). The domain then
/// decides whether they may witness and whether they are a second person. Its own commits (the
/// sign-in lock, the second-factor step, failed attempts) use `commit_apart`: the ledger write's
/// `Idempotency-Key` goes with the ledger entries' commit, not with this bookkeeping.
pub async fn authenticate(
    state: &AppState,
    user: &CurrentUser,
    field: &'static str,
    creds: &WitnessCredentials,
) -> Result<Witness, AppError> {
    let email = Email::parse(&creds.email).map_err(|_| refused(field, "give the witness's email address"))?;
    if creds.password.is_empty() {
        return Err(refused(field, "the witness types their own password"));
    }
    let row = users::find_by_email(&state.db, &email).await?;
    let phc = row.as_ref().map_or_else(|| password::dummy_hash().to_owned(), |u| u.password_hash.clone());
    let pw = creds.password.clone();
    let ok = password_work(state, move || password::verify(&pw, &phc)).await?;
    let wrong = || refused(field, "the witness's email or password is not right (or their account is locked)");
    // Another clinic's account is treated like an unknown one, and audited as a failed attempt.
    let Some(w) = row.filter(|w| w.clinic() == user.clinic) else {
        let mut tx = state.db.begin().await?;
        let mut e = user.event(AuditAction::SignInFailed, "user", Outcome::Failure);
        e.reason = Some("ledger witness: unknown email".into());
        kapstone_store::audit::append(&mut tx, &e).await?;
        tx.commit_apart().await?;
        return Err(wrong());
    };
    let now = UtcTs::now();
    if !w.active || state.config.lockout.is_locked(w.locked_until.map(|t| t.0), now) {
        return Err(wrong());
    }
    if !ok {
        record_failure(state, &w, "wrong password (ledger witness)", user.ip.as_deref()).await?;
        return Err(wrong());
    }
    // The lock is read again under the account's row lock: a burst of parallel guesses all read
    // the account before the failure that locked it, and none may pass afterwards.
    {
        let mut tx = state.db.begin().await?;
        let (_, locked_until) = users::lock_for_sign_in(&mut tx, w.user_id()).await?;
        tx.commit_apart().await?;
        if state.config.lockout.is_locked(locked_until.map(|t| t.0), UtcTs::now()) {
            return Err(wrong());
        }
    }
    if w.totp_enabled {
        let Some(code) = creds.totp_code.as_deref().map(str::trim).filter(|c| !c.is_empty()) else {
            return Err(refused(field, "the witness uses a second factor: enter the 6-digit code from their app"));
        };
        let secret = w.totp_secret.clone().unwrap_or_default();
        let unix = u64::try_from(now.unix_micros() / 1_000_000).unwrap_or(0);
        let claimed = match totp::check(&secret, &w.email, code, unix) {
            Some(step) => {
                let mut tx = state.db.begin().await?;
                let fresh = users::claim_totp_step(&mut tx, w.user_id(), step).await?;
                tx.commit_apart().await?;
                fresh
            }
            None => false,
        };
        if !claimed {
            record_failure(state, &w, "wrong TOTP code (ledger witness)", user.ip.as_deref()).await?;
            return Err(refused(field, "the witness's code is not right; use the newest code from their app"));
        }
    }
    Ok(Witness { user: w.user_id(), role: w.role()?, name: w.display_name.clone(), authenticated_at: now })
}
