//! Sign-in rules: session lifetimes and account lockout. The numbers are clinic settings
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
}
