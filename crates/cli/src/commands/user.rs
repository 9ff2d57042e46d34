//! `kapstone user ...`: accounts from the command line (e.g. the first admin of a new clinic).

use std::io::BufRead;
use std::process::ExitCode;

use clap::Subcommand;
use kapstone_web::app::accounts::{self, AccountUpdate, NewAccountInput, Operator};
use kapstone_web::{AppState, ServerConfig};

use crate::DbArgs;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add an account. The password is read from standard input (one line).
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// admin, prescriber, nurse, therapist, frontdesk or patient
        #[arg(long)]
        role: String,
        /// For a patient account: the MRN of its patient record.
        #[arg(long)]
        patient_mrn: Option<String>,
        /// Name of the clinic to create when the database has none yet.
        #[arg(long, default_value = "My KAP clinic")]
        clinic_name: String,
        /// IANA time zone of that new clinic.
        #[arg(long, default_value = "America/New_York")]
        clinic_time_zone: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the accounts of every clinic.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Change an account's role, name or status. Deactivation ends its sessions at once.
    Update {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// `true` to reactivate, `false` to deactivate.
        #[arg(long)]
        active: Option<bool>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set a new password (read from stdin), lift a lockout and end the account's sessions.
    ResetPassword {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Prints a use-case refusal the way an operator reads it: `field: message`, exit code 2.
fn refused(e: &kapstone_web::error::AppError) -> ExitCode {
    let field = e.field().map(|f| format!("{f}: ")).unwrap_or_default();
    eprintln!("kapstone: {field}{}", e.public_message("-"));
    ExitCode::from(2)
}

fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    Ok(password.trim_end_matches(['\n', '\r']).to_owned())
}

/// The account with this email, as (clinic, id).
async fn find(conn: &kapstone_store::Db, email: &str) -> anyhow::Result<Option<kapstone_store::users::UserRow>> {
    let email = kapstone_domain::Email::parse(email).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(kapstone_store::users::find_by_email(conn, &email).await?)
}

pub async fn run(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCommand::Add { email, name, role, patient_mrn, clinic_name, clinic_time_zone, db } => {
            let password = read_password()?;
            let conn = super::open(&db).await?;
            let clinic = match kapstone_store::clinics::list(&conn).await?.first() {
                Some(c) => c.clinic_id(),
                None => kapstone_web::app::demo::create_clinic(&conn, &clinic_name, &clinic_time_zone)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            };
            let state = AppState::new(conn.clone(), ServerConfig::default());
            let input = NewAccountInput { email, name, role, password, patient_mrn };
            let result = accounts::create_account(&state, Operator::CommandLine { clinic }, input).await;
            conn.close().await;
            match result {
                Ok(id) => {
                    println!("account {id} created");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(refused(&e)),
            }
        }
        UserCommand::List { db } => {
            let conn = super::open(&db).await?;
            for clinic in kapstone_store::clinics::list(&conn).await? {
                println!("{} ({})", clinic.name, clinic.id);
                for u in kapstone_store::users::list(&conn, clinic.clinic_id()).await? {
                    let status = if u.active { "active" } else { "deactivated" };
                    let mfa = if u.totp_enabled { "mfa" } else { "no-mfa" };
                    println!("  {}  {:<36} {:<10} {:<11} {mfa}", u.id, u.email, u.role, status);
                }
            }
            conn.close().await;
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Update { email, role, name, active, db } => {
            let conn = super::open(&db).await?;
            let Some(user) = find(&conn, &email).await? else {
                eprintln!("kapstone: email: no account with this email");
                return Ok(ExitCode::from(2));
            };
            let state = AppState::new(conn.clone(), ServerConfig::default());
            let update = AccountUpdate {
                name: name.unwrap_or_else(|| user.display_name.clone()),
                role: role.unwrap_or_else(|| user.role.clone()),
                active: active.unwrap_or(user.active),
            };
            let result = accounts::update_account(
                &state,
                Operator::CommandLine { clinic: user.clinic() },
                user.user_id(),
                update,
            )
            .await;
            conn.close().await;
            match result {
                Ok(()) => {
                    println!("account {} updated", user.id);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(refused(&e)),
            }
        }
        UserCommand::ResetPassword { email, db } => {
            let password = read_password()?;
            let conn = super::open(&db).await?;
            let Some(user) = find(&conn, &email).await? else {
                eprintln!("kapstone: email: no account with this email");
                return Ok(ExitCode::from(2));
            };
            let state = AppState::new(conn.clone(), ServerConfig::default());
            let by = Operator::CommandLine { clinic: user.clinic() };
            let result = accounts::reset_password(&state, by, user.user_id(), &password).await;
            conn.close().await;
            match result {
                Ok(()) => {
                    println!("password of {} reset; lockout lifted, sessions ended", user.id);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(refused(&e)),
            }
        }
    }
}
