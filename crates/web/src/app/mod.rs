//! Use cases: one function per thing a person does. Each authorises, validates through domain
//! types, writes with its audit event in the same transaction, and commits before answering.

pub mod accounts;
pub mod audit_log;
pub mod calendar;
pub mod consents;
pub mod courses;
pub mod demo;
pub mod demo_floor;
pub mod demo_journal;
pub mod demo_ledger;
pub mod demo_outcomes;
pub mod eligibility;
pub mod floor;
pub mod floor_sessions;
pub mod floor_watch;
pub mod integration_notes;
pub mod integrations;
pub mod invitations;
pub mod jobs;
pub mod journal;
pub mod ledger;
pub mod measures;
pub mod outcomes;
pub mod patients;
pub mod preparation;
pub mod protocols;
pub mod psychotherapy_notes;
pub mod questionnaires;
pub mod rate_limit;
pub mod reauth;
pub mod record_requests;
pub mod rems;
pub mod schedule_csv;
pub mod scheduling;
pub mod sessions;
pub mod settings;
pub mod settings_cache;
pub mod sign_in;

/// Runs password hashing (argon2id: ~19 MiB and tens of milliseconds each) on the password
/// pool: a burst of sign-ins queues instead of exhausting CPU and memory.
pub(crate) async fn password_work<T: Send + 'static>(
    state: &crate::state::AppState,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    state.passwords.run(f).await
}

/// A fixed set of threads (one per CPU) for password hashing. Fixed threads matter for memory:
/// each thread that ever runs argon2 keeps a malloc arena holding about that 19 MiB, so an
/// open-ended pool of blocking threads grows the process by hundreds of megabytes.
#[derive(Clone)]
pub struct PasswordPool {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl PasswordPool {
    pub fn new(threads: usize) -> Self {
        let (jobs, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("kapstone-password-{i}")).spawn(move || {
                loop {
                    // The lock is held only while taking a job, not while running it.
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password thread");
            }
        }
        Self { jobs }
    }

    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            let _ = done.send(f());
        });
        // The queue is bounded in practice by the number of requests in flight.
        self.jobs.send(job).map_err(|_| anyhow::anyhow!("password threads stopped"))?;
        wait.await.map_err(|_| anyhow::anyhow!("password job dropped"))
    }
}
