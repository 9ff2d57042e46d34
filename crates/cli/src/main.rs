//! `kapstone`: the one binary. Parses configuration (defaults -> `KAPSTONE_*` environment ->
//! flags) and calls into the library crates; no clinical logic lives here.

mod commands;

use clap::{Args, Parser, Subcommand};
use kapstone_store::DbUrl;

// A server answers each request with many small allocations from many threads; under load glibc's
// allocator spent about a sixth of the CPU in malloc, free and their consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./kapstone-data/kapstone.db";

#[derive(Parser)]
#[command(name = "kapstone", version, about = "Kapstone: the care pathway of a ketamine-assisted psychotherapy clinic")]
struct Cli {
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "KAPSTONE_LOG_FORMAT", default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
pub struct DbArgs {
    /// `sqlite://PATH` (embedded, the default) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "KAPSTONE_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: DbUrl,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (migrates the database first).
    Serve(commands::serve::ServeArgs),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Seed the demo clinic into an empty database, optionally with N extra synthetic patients.
    Demo(commands::demo::DemoArgs),
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: commands::user::UserCommand,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: commands::audit::AuditCommand,
    },
    /// Work with the controlled-substance ledger.
    Ledger {
        #[command(subcommand)]
        command: commands::ledger::LedgerCommand,
    },
    /// Make a consistent online backup of a SQLite database.
    Backup(commands::backup::BackupArgs),
    /// Restore a SQLite backup into a new, empty location.
    Restore(commands::backup::RestoreArgs),
    /// Export the whole clinic (every table, audit and ledger included) as NDJSON with a manifest.
    Export(commands::transfer::ExportArgs),
    /// Import an export into an empty database of either engine (e.g. to move to PostgreSQL).
    Import(commands::transfer::ImportArgs),
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KAPSTONE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    kapstone_web::install_tls_provider();
    // Few blocking threads: they run argon2 (19 MiB each), and every extra thread keeps its own
    // malloc arena with that memory after the hash is done.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(4).build();
    match runtime {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("kapstone: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> std::process::ExitCode {
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(args).await,
        Command::Migrate(db) => commands::migrate(db).await,
        Command::Demo(args) => commands::demo::run(args).await,
        Command::User { command } => commands::user::run(command).await,
        Command::Audit { command } => commands::audit::run(command).await,
        Command::Ledger { command } => commands::ledger::run(command).await,
        Command::Backup(args) => commands::backup::backup(args).await,
        Command::Restore(args) => commands::backup::restore(args).await,
        Command::Export(args) => commands::transfer::export(args).await,
        Command::Import(args) => commands::transfer::import(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kapstone: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
