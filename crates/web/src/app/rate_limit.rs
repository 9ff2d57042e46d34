//! Rate limits on sign-in, invitations, password resets and exports (README, "Rate limits").
//!
//! The counters live in the database (`rate_limit_counters`), so several server processes on one
//! PostgreSQL share every limit. Subjects (addresses, emails, account ids) are stored only as a
//! hash inside the bucket name; the refusal is audited once per window, with ids only.

use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
use kapstone_domain::auth::RateLimit;
use kapstone_domain::{ClinicId, Role, UserId, UtcTs};
use kapstone_store::{audit, rate_limits};

use crate::auth::guard::CurrentUser;
use crate::auth::tokens::token_hash;
use crate::error::AppError;
use crate::state::AppState;

/// What is being limited, and per what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    SignInPerAddress,
    SignInPerAccount,
    InvitationsSent,
    InvitationAcceptsPerAddress,
    PasswordResets,
    Exports,
}

impl Limited {
    pub const fn as_str(self) -> &'static str {
        match self {
            Limited::SignInPerAddress => "sign_in_per_address",
            Limited::SignInPerAccount => "sign_in_per_account",
            Limited::InvitationsSent => "invitations_sent",
            Limited::InvitationAcceptsPerAddress => "invitation_accepts_per_address",
            Limited::PasswordResets => "password_resets",
            Limited::Exports => "exports",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Limited::SignInPerAddress => "sign-in attempts from this address",
            Limited::SignInPerAccount => "sign-in attempts for this account",
            Limited::InvitationsSent => "portal invitations sent",
            Limited::InvitationAcceptsPerAddress => "invitation links used from this address",
            Limited::PasswordResets => "password resets",
            Limited::Exports => "exports",
        }
    }

    fn limit(self, state: &AppState) -> RateLimit {
        let l = &state.config.rate_limits;
        match self {
            Limited::SignInPerAddress => l.sign_in_per_ip,
            Limited::SignInPerAccount => l.sign_in_per_account,
            Limited::InvitationsSent => l.invitations_sent,
            Limited::InvitationAcceptsPerAddress => l.invitation_accepts_per_ip,
            Limited::PasswordResets => l.password_resets,
            Limited::Exports => l.exports,
        }
    }
}

/// Who the refusal is recorded against: a signed-in account, or an anonymous request (with the
/// account it named, when there is one).
#[derive(Clone, Copy)]
pub enum By<'a> {
    User(&'a CurrentUser),
    Anonymous { ip: Option<&'a str>, account: Option<(ClinicId, UserId, Option<Role>)> },
}

/// Counts one attempt of `what` by `subject`; refuses with 429 once the window's limit is passed.
pub async fn check(state: &AppState, what: Limited, subject: &str, by: By<'_>) -> Result<(), AppError> {
    let limit = what.limit(state);
    let now = UtcTs::now();
    let start = limit.window_start(now);
    let bucket = format!("{}:{}", what.as_str(), &token_hash(&format!("{}\u{1f}{subject}", what.as_str()))[..32]);
    let mut tx = state.db.begin().await?;
    let hits = rate_limits::hit(&mut tx, &bucket, start, start.plus(limit.window), now).await?;
    let max = i64::from(limit.max);
    if hits <= max {
        tx.commit().await?;
        return Ok(());
    }
    // One audit event per subject and window: a flood of refused requests must not become a
    // flood of audit rows.
    if hits == max + 1 {
        let mut e = match by {
            By::User(u) => u.event(AuditAction::RateLimited, "rate_limit", Outcome::Denied),
            By::Anonymous { ip, account } => {
                let mut e = NewAuditEvent::new(AuditAction::RateLimited, "rate_limit", Outcome::Denied);
                if let Some((clinic, user, role)) = account {
                    e.clinic_id = Some(clinic);
                    e.actor_user_id = Some(user);
                    e.actor_role = role;
                }
                e.source_ip = ip.map(str::to_owned);
                e
            }
        };
        e.entity_id = Some(what.as_str().to_owned());
        e.reason = Some(format!("more than {}", limit.describe()));
        audit::append(&mut tx, &e).await?;
    }
    tx.commit().await?;
    Err(AppError::RateLimited {
        limit: format!("{} {} per {} min", limit.max, what.describe(), limit.window.whole_minutes()),
        retry_after_secs: limit.retry_after_secs(now),
    })
}

/// The export limit of a signed-in account (record sets, FHIR bulk export starts, CSV reports).
pub async fn export(state: &AppState, user: &CurrentUser) -> Result<(), AppError> {
    check(state, Limited::Exports, &user.id.to_string(), By::User(user)).await
}
