//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of clock skew
//! either way), via `totp-rs`.

use totp_rs::{Algorithm, Builder, Secret, Totp};

const ISSUER: &str = "Kapstone";

fn build(secret_b32: &str, account: &str) -> anyhow::Result<Totp> {
    let secret = Secret::try_from_base32(secret_b32).map_err(|e| anyhow::anyhow!("bad TOTP secret: {e}"))?;
    // Authenticator apps show "Kapstone:account"; a colon inside the account would split it.
    let account = account.replace(':', "_");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .map_err(|e| anyhow::anyhow!("bad TOTP parameters: {e}"))
}

/// A new random 160-bit secret, base32-encoded.
pub fn new_secret() -> String {
    let mut b = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    Secret::from(b).to_base32()
}

/// The `otpauth://` URI an authenticator app imports.
pub fn otpauth_url(secret_b32: &str, account: &str) -> anyhow::Result<String> {
    build(secret_b32, account)?.to_url().map_err(|e| anyhow::anyhow!("otpauth url: {e}"))
}

/// Checks `code` at `unix_secs`. Returns the time step that matched, so the caller can refuse a
/// replay of the same code (RFC 6238 section 5.2).
pub fn check(secret_b32: &str, account: &str, code: &str, unix_secs: u64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let totp = build(secret_b32, account).ok()?;
    totp.check(&code, unix_secs).and_then(|s| i64::try_from(s).ok())
}

/// The code at `unix_secs` (for tests and scripted sign-in).
pub fn code_at(secret_b32: &str, unix_secs: u64) -> Option<String> {
    build(secret_b32, "x").ok().map(|t| t.generate(unix_secs).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vector() {
        // RFC 6238 appendix B: secret "12345678901234567890", T=59 -> 94287082 (8 digits);
        // the 6-digit code is its last six digits.
        let secret = Secret::from(*b"12345678901234567890").to_base32();
        assert_eq!(code_at(&secret, 59).as_deref(), Some("287082"));
        assert_eq!(check(&secret, "a", "287082", 59), Some(1));
        assert_eq!(check(&secret, "a", "287 082", 59), Some(1));
        assert_eq!(check(&secret, "a", "287083", 59), None);
        assert_eq!(check(&secret, "a", "28708", 59), None);
    }

    #[test]
    fn new_secrets_round_trip() {
        let s = new_secret();
        assert_eq!(s.len(), 32);
        let code = code_at(&s, 1_000_000);
        assert!(code.is_some_and(|c| check(&s, "me@x.org", &c, 1_000_000).is_some()));
    }
}
