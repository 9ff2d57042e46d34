//! `kapstone user ...`: accounts from the command line (e.g. the first admin of a new clinic).

use std::io::BufRead;
use std::process::ExitCode;

use clap::Subcommand;
use kapstone_web::app::accounts::{self, NewAccountInput};
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
}

pub async fn run(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCommand::Add { email, name, role, patient_mrn, clinic_name, clinic_time_zone, db } => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']).to_owned();
            let conn = super::open(&db).await?;
            let clinic = match kapstone_store::clinics::list(&conn).await?.first() {
                Some(c) => c.clinic_id(),
                None => kapstone_web::app::demo::create_clinic(&conn, &clinic_name, &clinic_time_zone)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            };
            let state = AppState::new(conn.clone(), ServerConfig::default());
            let input = NewAccountInput { email, name, role, password, patient_mrn };
            match accounts::create_account(&state, clinic, None, input).await {
                Ok(id) => {
                    println!("account {id} created");
                    conn.close().await;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    conn.close().await;
                    let field = e.field().map(|f| format!("{f}: ")).unwrap_or_default();
                    eprintln!("kapstone: {field}{}", e.public_message("-"));
                    Ok(ExitCode::from(2))
                }
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
    }
}
