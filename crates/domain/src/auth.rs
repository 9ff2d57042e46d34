//! Sign-in rules: session lifetimes, account lockout, rate limits and re-authentication. The numbers are clinic settings
//! (defaults below follow OWASP ASVS 4.0.3 V3.3 and V2.2), passed in, never constants in code.

use time::Duration;

use crate::UtcTs;

/// How long sessions live. ASVS L2: idle <= 30 min, absolute <= 12 h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    pub idle_timeout: Duration,
    pub absolute_lifetime: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self { idle_timeout: Duration::minutes(15), absolute_lifetime: Duration::hours(12) }
    }
}

/// Why a session can no longer be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Active,
    IdleExpired,
    LifetimeExpired,
}

impl SessionPolicy {
    pub fn state(&self, created_at: UtcTs, last_seen_at: UtcTs, now: UtcTs) -> SessionState {
        if now >= created_at.plus(self.absolute_lifetime) {
            SessionState::LifetimeExpired
        } else if now >= last_seen_at.plus(self.idle_timeout) {
            SessionState::IdleExpired
        } else {
            SessionState::Active
        }
    }

    /// When the session ends if nothing else happens.
    pub fn expires_at(&self, created_at: UtcTs, last_seen_at: UtcTs) -> UtcTs {
        created_at.plus(self.absolute_lifetime).min(last_seen_at.plus(self.idle_timeout))
    }
}

/// Locks an account after repeated failed sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failed_attempts: u32,
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self { max_failed_attempts: 5, lock_for: Duration::minutes(15) }
    }
}

/// What a failed attempt does to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    pub failed_attempts: u32,
    /// Set when this failure locks the account.
    pub locked_until: Option<UtcTs>,
}

impl LockoutPolicy {
    pub fn is_locked(&self, locked_until: Option<UtcTs>, now: UtcTs) -> bool {
        locked_until.is_some_and(|t| now < t)
    }

    /// Counts a failure. Reaching the limit locks the account and restarts the count, so the
    /// next lock needs a fresh run of failures.
    pub fn after_failure(&self, failed_attempts: u32, now: UtcTs) -> AfterFailure {
        let n = failed_attempts.saturating_add(1);
        if n >= self.max_failed_attempts.max(1) {
            AfterFailure { failed_attempts: 0, locked_until: Some(now.plus(self.lock_for)) }
        } else {
            AfterFailure { failed_attempts: n, locked_until: None }
        }
    }
}

/// One rate limit: at most `max` attempts per fixed `window` for one subject (an address or an
/// account). Windows are aligned to the Unix epoch, so every server process sharing a database
/// counts into the same window without talking to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window: Duration,
}

impl RateLimit {
    pub const fn new(max: u32, window_minutes: i64) -> Self {
        Self { max, window: Duration::minutes(window_minutes) }
    }

    /// The start of the window `now` falls in.
    pub fn window_start(&self, now: UtcTs) -> UtcTs {
        let len = self.window.whole_microseconds().max(1);
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        let t = now.unix_micros();
        UtcTs::from_unix_micros(t - t.rem_euclid(len))
    }

    /// Whole seconds until the window of `now` ends (at least 1): the `Retry-After` value.
    pub fn retry_after_secs(&self, now: UtcTs) -> u64 {
        let end = self.window_start(now).plus(self.window);
        let micros = u64::try_from(end.unix_micros().saturating_sub(now.unix_micros())).unwrap_or(0);
        micros.div_ceil(1_000_000).max(1)
    }

    /// "10 per 15 min", for messages and the audit trail.
    pub fn describe(&self) -> String {
        format!("{} per {} min", self.max, self.window.whole_minutes())
    }
}

/// The rate limits of the server. They are operational settings against guessing and bulk
/// extraction, not clinical facts; the defaults leave ordinary use far below each limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Sign-in attempts (password and second-factor steps) from one address.
    pub sign_in_per_ip: RateLimit,
    /// Sign-in attempts for one account (email), from anywhere.
    pub sign_in_per_account: RateLimit,
    /// Portal invitations sent by one staff account.
    pub invitations_sent: RateLimit,
    /// Invitation acceptances (password set from a link) from one address.
    pub invitation_accepts_per_ip: RateLimit,
    /// Password resets done by one admin.
    pub password_resets: RateLimit,
    /// Exports (record sets, FHIR bulk export starts, CSV reports) by one account.
    pub exports: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            sign_in_per_ip: RateLimit::new(60, 15),
            sign_in_per_account: RateLimit::new(20, 15),
            invitations_sent: RateLimit::new(30, 60),
            invitation_accepts_per_ip: RateLimit::new(20, 15),
            password_resets: RateLimit::new(20, 60),
            exports: RateLimit::new(60, 60),
        }
    }
}

/// How long a password entry counts as recent enough to sign, witness or export without typing
/// it again (ASVS 3.7.1: re-authenticate before sensitive operations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReauthPolicy {
    pub window: Duration,
}

impl Default for ReauthPolicy {
    fn default() -> Self {
        Self { window: Duration::minutes(10) }
    }
}

impl ReauthPolicy {
    pub fn is_recent(&self, authenticated_at: UtcTs, now: UtcTs) -> bool {
        now < authenticated_at.plus(self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> UtcTs {
        UtcTs::from_unix_micros(min * 60_000_000)
    }

    #[test]
    fn sessions_expire_when_idle_or_too_old() {
        let p = SessionPolicy::default();
        assert_eq!(p.state(t(0), t(0), t(14)), SessionState::Active);
        assert_eq!(p.state(t(0), t(0), t(15)), SessionState::IdleExpired);
        assert_eq!(p.state(t(0), t(715), t(719)), SessionState::Active);
        assert_eq!(p.state(t(0), t(715), t(720)), SessionState::LifetimeExpired);
        assert_eq!(p.expires_at(t(0), t(10)), t(25));
        assert_eq!(p.expires_at(t(0), t(710)), t(720));
    }

    #[test]
    fn fifth_failure_locks_for_fifteen_minutes() {
        let p = LockoutPolicy::default();
        let mut n = 0;
        for _ in 0..4 {
            let a = p.after_failure(n, t(0));
            assert_eq!(a.locked_until, None);
            n = a.failed_attempts;
        }
        let fifth = p.after_failure(n, t(0));
        assert_eq!(fifth.locked_until, Some(t(15)));
        assert!(p.is_locked(fifth.locked_until, t(14)));
        assert!(!p.is_locked(fifth.locked_until, t(15)));
    }

    #[test]
    fn rate_limit_windows_align_to_the_epoch_and_say_when_to_retry() {
        let l = RateLimit::new(10, 15);
        assert_eq!(l.window_start(t(31)), t(30));
        assert_eq!(l.window_start(t(30)), t(30));
        assert_eq!(l.retry_after_secs(t(31)), 14 * 60);
        assert_eq!(l.retry_after_secs(UtcTs::from_unix_micros(t(45).unix_micros() - 1)), 1);
        assert_eq!(l.describe(), "10 per 15 min");
    }

    #[test]
    fn a_password_entry_is_recent_for_ten_minutes() {
        let p = ReauthPolicy::default();
        assert!(p.is_recent(t(0), t(9)));
        assert!(!p.is_recent(t(0), t(10)));
    }
}
