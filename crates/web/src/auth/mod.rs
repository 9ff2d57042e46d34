//! Authentication building blocks: password hashing, tokens, TOTP, the request guard.

pub mod guard;
pub mod password;
pub mod tokens;
pub mod totp;
