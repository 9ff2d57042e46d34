//! Use cases: one function per thing a person does. Each authorises, validates through domain
//! types, writes with its audit event in the same transaction, and commits before answering.

pub mod accounts;
pub mod audit_log;
pub mod demo;
pub mod patients;
pub mod settings;
pub mod sign_in;

/// Runs CPU-heavy work (argon2) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| anyhow::anyhow!("blocking task failed: {e}"))
}
