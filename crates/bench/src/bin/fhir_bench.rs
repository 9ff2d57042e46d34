//! `kapstone-fhir-bench`: the FHIR bulk export's own code (rows streamed from the database into
//! NDJSON files) on a whole clinic, timed per resource type (issue 8).
//!
//! Without `--database-url` it builds the demo clinic in a fresh SQLite file in a temporary
//! folder, plus `--scale` generated patients (as `kapstone demo --scale N` does). With one, it
//! exports the first clinic of that database (never one in use: it only reads, but it reads
//! everything). Files go to `--out`; the validator script reads them from there. Timing is
//! printed, never asserted.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use kapstone_store::fhir::Filter;
use kapstone_store::{Db, DbUrl};
use kapstone_web::app::demo::{self, SplitMix64};
use kapstone_web::fhir::export::{SYSTEM_TYPES, export_type};
use kapstone_web::state::{AppState, ServerConfig};

#[derive(Parser)]
#[command(name = "kapstone-fhir-bench", about = "Times the FHIR bulk export of a whole clinic")]
struct Args {
    /// An existing database to export (default: a fresh demo clinic in a temporary SQLite file).
    #[arg(long, env = "KAPSTONE_DATABASE_URL")]
    database_url: Option<DbUrl>,
    /// Generated patients to add to the fresh demo clinic.
    #[arg(long, default_value_t = 0)]
    scale: usize,
    /// Folder for the NDJSON files (created; existing files of the same names are replaced).
    #[arg(long)]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let scratch = std::env::temp_dir().join(format!("kapstone-fhir-bench-{}", uuid::Uuid::now_v7()));
    let url = match &args.database_url {
        Some(u) => u.clone(),
        None => {
            std::fs::create_dir_all(&scratch)?;
            DbUrl::Sqlite(scratch.join("bench.db"))
        }
    };
    let db = Db::connect(&url).await?;
    db.migrate().await?;
    let state = AppState::new(db.clone(), ServerConfig::default());
    let clinic = if args.database_url.is_none() {
        let seed = demo::seed_demo(&state, "bench-password-not-secret").await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if args.scale > 0 {
            let started = Instant::now();
            let mut rng = SplitMix64::new(args.scale as u64);
            demo::insert_patients(&db, seed.clinic, args.scale, &mut rng, demo::generator_today())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("seeded {} generated patients in {:.1} s", args.scale, started.elapsed().as_secs_f64());
        }
        seed.clinic
    } else {
        let clinics = kapstone_store::clinics::list(&db).await?;
        clinics.first().context("the database has no clinic")?.clinic_id()
    };
    let ctx = kapstone_web::fhir::resources::Ctx { base: "http://127.0.0.1:8080/fhir/R4".into() };
    let filter = Filter { clinic: clinic.as_uuid(), ..Default::default() };
    println!("backend {:?}", db.backend());
    println!("{:<26} {:>10} {:>9} {:>12}", "type", "resources", "seconds", "resources/s");
    let started = Instant::now();
    let mut total = 0_u64;
    for kind in SYSTEM_TYPES {
        let t = Instant::now();
        let path = args.out.join(format!("{}.ndjson", kind.as_str()));
        let n = export_type(&db, &ctx, kind, &filter, &path).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let secs = t.elapsed().as_secs_f64();
        if n == 0 {
            std::fs::remove_file(&path)?;
        }
        println!("{:<26} {n:>10} {secs:>9.2} {:>12.0}", kind.as_str(), n as f64 / secs.max(1e-9));
        total += n;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{:<26} {total:>10} {secs:>9.2} {:>12.0}", "all", total as f64 / secs.max(1e-9));
    db.close().await;
    if args.database_url.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(())
}
