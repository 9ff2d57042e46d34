//! Server state shared by every request (no globals: tests run many servers side by side).

use std::sync::Arc;

use kapstone_domain::auth::{LockoutPolicy, RateLimits, ReauthPolicy, SessionPolicy};
use kapstone_store::Db;
use kapstone_store::writer::Writer;

/// Settings of the running server. Defaults follow OWASP ASVS L2; see README for each.
#[derive(Clone)]
pub struct ServerConfig {
    /// Set when a TLS-terminating proxy is in front: cookies become `Secure` with the `__Host-`
    /// prefix, HSTS is sent, and the client address is read from `X-Forwarded-For`.
    pub behind_tls_proxy: bool,
    pub session: SessionPolicy,
    pub lockout: LockoutPolicy,
    /// Attempts per window on sign-in, invitations, password resets and exports (README).
    pub rate_limits: RateLimits,
    /// How long after entering their password a person may sign, witness or export.
    pub reauth: ReauthPolicy,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The address people use to reach this server, for links in messages (invitations).
    pub public_url: String,
    /// How long a portal invitation link stays valid.
    pub invitation_lifetime: time::Duration,
    /// The mail server for the outbox (`smtp://user:pass@host:587?tls=required`, or
    /// `smtps://…`); `None` keeps messages in the outbox page.
    pub smtp_url: Option<String>,
    /// The sender of outgoing mail.
    pub mail_from: String,
    /// Where FHIR bulk exports write their NDJSON files (one folder per job). Servers sharing
    /// one database must share this folder.
    pub export_dir: std::path::PathBuf,
    /// Extra root certificates (PEM) trusted for `https://` webhook endpoints, besides the public
    /// web's roots: for receivers behind the clinic's own certificate authority.
    pub webhook_ca_pem: Option<String>,
    /// How long an `Idempotency-Key` is remembered (its answer replayed) before the job loop
    /// deletes it.
    pub idempotency_key_lifetime: time::Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            behind_tls_proxy: false,
            session: SessionPolicy::default(),
            lockout: LockoutPolicy::default(),
            rate_limits: RateLimits::default(),
            reauth: ReauthPolicy::default(),
            max_body_bytes: 256 * 1024,
            public_url: "http://127.0.0.1:8080".into(),
            invitation_lifetime: time::Duration::days(7),
            smtp_url: None,
            mail_from: "Kapstone <no-reply@localhost>".into(),
            export_dir: std::env::temp_dir().join("kapstone-fhir-exports"),
            webhook_ca_pem: None,
            idempotency_key_lifetime: time::Duration::hours(24),
        }
    }
}

/// Written by hand so the mail server's URL (it holds the password) never reaches a log.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("behind_tls_proxy", &self.behind_tls_proxy)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("public_url", &self.public_url)
            .field("smtp", &self.smtp_url.as_ref().map(|_| "<configured>"))
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    pub fn session_cookie_name(&self) -> &'static str {
        if self.behind_tls_proxy { "__Host-kapstone_session" } else { "kapstone_session" }
    }

    pub fn pre_session_cookie_name(&self) -> &'static str {
        if self.behind_tls_proxy { "__Host-kapstone_csrf" } else { "kapstone_csrf" }
    }

    /// `Set-Cookie` value for a cookie only this site's pages can send (HttpOnly, SameSite=Strict).
    pub fn cookie(&self, name: &str, value: &str) -> String {
        let secure = if self.behind_tls_proxy { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}")
    }

    pub fn expired_cookie(&self, name: &str) -> String {
        let secure = if self.behind_tls_proxy { "; Secure" } else { "" };
        format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    }
}

/// What every handler shares, behind one `Arc`: axum clones the state for each extractor of each
/// request, and a clone of the parts one by one cost some ten atomic counts (and as many on drop).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(Clone)]
pub struct Shared {
    pub db: Db,
    pub config: Arc<ServerConfig>,
    /// The group-commit writer (`kapstone_store::writer`): the audit events of reads (chart views,
    /// lists, log views) and the dosing sessions' writes share its commits.
    pub read_audit: Writer,
    /// Dosing sessions as of their last committed event (`app::sessions::SessionCache`).
    pub sessions: crate::app::sessions::SessionCache,
    /// The sessions of the live floor boards, kept folded (`app::floor_sessions`).
    pub floor_sessions: crate::app::floor_sessions::FloorSessions,
    /// Runs argon2 on one thread per CPU.
    pub passwords: crate::app::PasswordPool,
    /// Turns true when the server starts to shut down: long-lived responses (the floor board's
    /// event stream) end so the graceful shutdown does not wait for them.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Requests with one `Idempotency-Key` run one after the other in this process.
    pub idempotency_locks: crate::api::idempotency::KeyLocks,
    /// Reads the floor counters of the clinics whose live boards are open here.
    pub floor_watch: crate::app::floor_watch::FloorWatch,
    /// The clinics' settings as parsed, by version (`app::settings_cache`).
    pub settings: crate::app::settings_cache::SettingsCache,
}

impl AppState {
    /// The same state with other in-process key locks (tests: a second server process on the same
    /// database, where only the database keeps two requests with one key from both committing).
    pub fn with_idempotency_locks(&self, locks: crate::api::idempotency::KeyLocks) -> Self {
        let mut shared = (*self.0).clone();
        shared.idempotency_locks = locks;
        Self(Arc::new(shared))
    }

    /// The same state with another floor watcher (tests: one that never reads the counters).
    pub fn with_floor_watch(&self, floor_watch: crate::app::floor_watch::FloorWatch) -> Self {
        let mut shared = (*self.0).clone();
        shared.floor_watch = floor_watch;
        Self(Arc::new(shared))
    }

    /// Must be called inside a tokio runtime: it starts the group-commit writer's task.
    pub fn new(db: Db, config: ServerConfig) -> Self {
        crate::install_tls_provider();
        let read_audit = Writer::spawn(db.clone());
        let floor_watch = crate::app::floor_watch::FloorWatch::spawn(db.clone());
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self(Arc::new(Shared {
            db,
            config: Arc::new(config),
            read_audit,
            sessions: crate::app::sessions::SessionCache::default(),
            floor_sessions: crate::app::floor_sessions::FloorSessions::default(),
            passwords: crate::app::PasswordPool::new(cpus),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
            idempotency_locks: crate::api::idempotency::KeyLocks::default(),
            floor_watch,
            settings: crate::app::settings_cache::SettingsCache::default(),
        }))
    }

    /// The group-commit writer.
    pub fn writer(&self) -> &Writer {
        &self.read_audit
    }
}
