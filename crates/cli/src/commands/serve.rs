//! `kapstone serve`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use kapstone_domain::auth::{LockoutPolicy, SessionPolicy};
use kapstone_web::{AppState, ServerConfig};
use time::Duration;

use super::demo::{print_demo, seed_if_empty};
use crate::DbArgs;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KAPSTONE_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    #[command(flatten)]
    db: DbArgs,
    /// Seed the synthetic demo clinic when the database is empty.
    #[arg(long, env = "KAPSTONE_DEMO")]
    demo: bool,
    /// Password for every demo account (default: a random one, printed).
    #[arg(long, env = "KAPSTONE_DEMO_PASSWORD", hide_env_values = true)]
    demo_password: Option<String>,
    /// A TLS-terminating proxy is in front: Secure `__Host-` cookies, HSTS, X-Forwarded-For.
    #[arg(long, env = "KAPSTONE_BEHIND_TLS_PROXY")]
    behind_tls_proxy: bool,
    /// Minutes without activity after which a session ends.
    #[arg(long, env = "KAPSTONE_IDLE_TIMEOUT_MINUTES", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=30))]
    idle_timeout_minutes: u32,
    /// Hours after sign-in at which a session ends regardless of activity.
    #[arg(long, env = "KAPSTONE_SESSION_LIFETIME_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=12))]
    session_lifetime_hours: u32,
    /// Failed sign-ins in a row that lock an account.
    #[arg(long, env = "KAPSTONE_LOCKOUT_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    lockout_attempts: u32,
    /// Minutes an account stays locked.
    #[arg(long, env = "KAPSTONE_LOCKOUT_MINUTES", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=1440))]
    lockout_minutes: u32,
    /// Read connections per server process (PostgreSQL opens as many again for writes, and one for the
    /// group-commit writer; SQLite has one writer). Unset: 8 on SQLite; on PostgreSQL three per core
    /// of this machine, from 4 to 16.
    #[arg(long, env = "KAPSTONE_DB_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=512))]
    db_max_connections: Option<u32>,
    /// The address people use to reach Kapstone, for links in messages (e.g. https://kap.example.org).
    #[arg(long, env = "KAPSTONE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Days a portal invitation link stays valid.
    #[arg(long, env = "KAPSTONE_INVITATION_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=30))]
    invitation_days: u32,
    /// Seconds between passes of the background jobs (appointment reminders); 0 turns them off
    /// in this process (another process can run them).
    #[arg(long, env = "KAPSTONE_JOBS_EVERY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=3600))]
    jobs_every_secs: u64,
    /// Mail server for the outbox, e.g. smtp://user:pass@mail.example:587?tls=required (unset:
    /// messages stay in the admins' outbox page).
    #[arg(long, env = "KAPSTONE_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// Sender of outgoing mail.
    #[arg(long, env = "KAPSTONE_MAIL_FROM", default_value = "Kapstone <no-reply@localhost>")]
    mail_from: String,
    /// Folder for FHIR bulk export files (one subfolder per job); servers sharing a database
    /// must share it.
    #[arg(long, env = "KAPSTONE_EXPORT_DIR", default_value = "kapstone-data/fhir-exports")]
    export_dir: std::path::PathBuf,
    /// PEM file of extra root certificates trusted for https:// webhook endpoints (the clinic's
    /// own certificate authority); the public web's roots are always trusted.
    #[arg(long, env = "KAPSTONE_WEBHOOK_CA_FILE")]
    webhook_ca_file: Option<std::path::PathBuf>,
    /// Largest accepted request body, in KiB.
    #[arg(long, env = "KAPSTONE_MAX_BODY_KIB", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    max_body_kib: u32,
    /// Hours an `Idempotency-Key` of the JSON API is remembered (a retry within them gets the
    /// original answer); expired keys are deleted by the background jobs.
    #[arg(long, env = "KAPSTONE_IDEMPOTENCY_KEY_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=720))]
    idempotency_key_hours: u32,
}

impl ServeArgs {
    fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let webhook_ca_pem = match &self.webhook_ca_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading --webhook-ca-file {}", path.display()))?,
            ),
            None => None,
        };
        let config = ServerConfig {
            behind_tls_proxy: self.behind_tls_proxy,
            session: SessionPolicy {
                idle_timeout: Duration::minutes(self.idle_timeout_minutes.into()),
                absolute_lifetime: Duration::hours(self.session_lifetime_hours.into()),
            },
            lockout: LockoutPolicy {
                max_failed_attempts: self.lockout_attempts,
                lock_for: Duration::minutes(self.lockout_minutes.into()),
            },
            max_body_bytes: usize::try_from(self.max_body_kib).unwrap_or(256) * 1024,
            public_url: self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.bind)),
            invitation_lifetime: Duration::days(self.invitation_days.into()),
            smtp_url: self.smtp_url.clone(),
            mail_from: self.mail_from.clone(),
            export_dir: self.export_dir.clone(),
            webhook_ca_pem,
            // The documented defaults (README, Security in short); not yet flags.
            rate_limits: kapstone_domain::auth::RateLimits::default(),
            reauth: kapstone_domain::auth::ReauthPolicy::default(),
            idempotency_key_lifetime: Duration::hours(self.idempotency_key_hours.into()),
        };
        // A CA file that does not parse stops the start with the reason, not the first delivery.
        kapstone_web::app::integrations::webhook_client(&config).map_err(|e| anyhow::anyhow!(e))?;
        Ok(config)
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.server_config()?;
    let mut pool = kapstone_store::db::PoolSettings::default_for(args.db.database_url.backend());
    if let Some(n) = args.db_max_connections {
        pool.max_connections = n;
    }
    let db = kapstone_store::Db::connect_with(&args.db.database_url, pool)
        .await
        .with_context(|| format!("cannot open {}", args.db.database_url))?;
    db.migrate().await.context("migrating the database")?;
    kapstone_web::content::check_all().context("checking the clinical content")?;
    let state = AppState::new(db.clone(), config);
    if args.jobs_every_secs > 0 {
        kapstone_web::app::jobs::spawn(state.clone(), std::time::Duration::from_secs(args.jobs_every_secs));
    }
    if args.demo {
        match seed_if_empty(&state, args.demo_password.clone()).await? {
            Some((seed, password)) => print_demo(&seed, &password),
            None => {
                println!("Demo: the database already holds data; nothing seeded (the demo passwords are unchanged).")
            }
        }
    }
    let listener =
        tokio::net::TcpListener::bind(args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = listener.local_addr()?;
    println!("Kapstone is running at http://{addr}/ (database: {})", args.db.database_url);
    tracing::info!(%addr, backend = ?db.backend(), "listening");
    kapstone_web::launch_with_listener(state, listener, shutdown_signal()).await?;
    db.close().await;
    Ok(ExitCode::SUCCESS)
}
