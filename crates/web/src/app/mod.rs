//! Use cases: one function per thing a person does. Each authorises, validates through domain
//! types, writes with its audit event in the same transaction, and commits before answering.

pub mod accounts;
pub mod audit_log;
pub mod demo;
pub mod patients;
pub mod settings;
pub mod sign_in;

/// Runs password hashing (argon2id: ~19 MiB and tens of milliseconds each) off the async
/// workers, at most one per CPU at a time, so a burst of sign-ins queues instead of exhausting
/// memory and starving every other request.
pub(crate) async fn password_work<T: Send + 'static>(
    state: &crate::state::AppState,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let _permit = state.password_slots.acquire().await.map_err(|e| anyhow::anyhow!("password slots closed: {e}"))?;
    tokio::task::spawn_blocking(f).await.map_err(|e| anyhow::anyhow!("password task failed: {e}"))
}
