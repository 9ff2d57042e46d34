//! `kapstone demo` and the `--demo` seeding of `serve`.

use std::process::ExitCode;

use clap::Args;
use kapstone_web::app::demo::{self, DemoSeed, SplitMix64};
use kapstone_web::{AppState, ServerConfig};

use crate::DbArgs;

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Password for every demo account (default: a random one, printed).
    #[arg(long, env = "KAPSTONE_DEMO_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Also generate N synthetic patients (deterministic: the same N gives the same clinic).
    #[arg(long, default_value_t = 0)]
    scale: usize,
    /// Also put N more dosing sessions on today's floor (at most 100), each with a chair, a nurse
    /// and a therapist of its own (`floor-nurse-K@…`, `floor-therapist-K@…`): for the floor
    /// benchmark's "20 active sessions".
    #[arg(long, default_value_t = 0)]
    floor_sessions: usize,
}

fn random_password() -> String {
    let a = kapstone_web::auth::tokens::recovery_code();
    let b = kapstone_web::auth::tokens::recovery_code();
    format!("{a}-{b}")
}

/// Seeds the demo clinic when the database is empty; returns what was made and the password.
pub async fn seed_if_empty(state: &AppState, password: Option<String>) -> anyhow::Result<Option<(DemoSeed, String)>> {
    if !state.db.is_empty().await? {
        return Ok(None);
    }
    let password = password.unwrap_or_else(random_password);
    let seed = demo::seed_demo(state, &password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some((seed, password)))
}

pub fn print_demo(seed: &DemoSeed, password: &str) {
    println!("Demo clinic \"{}\" seeded with synthetic data. Sign in with any of:", demo::DEMO_CLINIC);
    for (email, role) in &seed.accounts {
        println!("  {:<34} {}", email, role.label());
    }
    println!("  password for every demo account: {password}");
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let db = super::open(&args.db).await?;
    let state = AppState::new(db.clone(), ServerConfig::default());
    let (clinic, password) = match seed_if_empty(&state, args.password.clone()).await? {
        Some((seed, password)) => {
            print_demo(&seed, &password);
            (seed.clinic, password)
        }
        None => {
            let clinics = kapstone_store::clinics::list(&db).await?;
            let first = clinics.first().ok_or_else(|| anyhow::anyhow!("the database has accounts but no clinic"))?;
            println!("The database already holds data; adding generated patients to \"{}\".", first.name);
            (first.clinic_id(), args.password.clone().unwrap_or_else(random_password))
        }
    };
    if args.floor_sessions > 0 {
        let added = kapstone_web::app::demo_floor::seed_busy_floor(&state, args.floor_sessions, &password)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let shown = if args.password.is_some() { "the one given" } else { password.as_str() };
        println!(
            "Added {added} dosing sessions to today's floor (floor-nurse-K / floor-therapist-K, password: {shown})."
        );
    }
    if args.scale > 0 {
        let started = std::time::Instant::now();
        let mut rng = SplitMix64::new(args.scale as u64);
        demo::insert_patients(&db, clinic, args.scale, &mut rng, demo::generator_today())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("Generated {} synthetic patients in {:.1} s.", args.scale, started.elapsed().as_secs_f64());
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}
