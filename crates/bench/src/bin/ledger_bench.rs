//! `kapstone-ledger-bench`: the controlled-substance reports on a clinic's full history (issue 6:
//! "each produced in under a second on a clinic's full history; benchmark it at 100,000 entries").
//!
//! On a database made by `kapstone demo` (never one in use), it appends `--entries` ledger entries
//! to the demo's registered location through the same checked path the server uses (receipts of
//! new lots, then draw + administration + witnessed waste per dose, spread over the last two
//! years), then times each report `--repeat` times and prints the median and the slowest, and the
//! time `kapstone ledger verify` needs for the whole chain.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use kapstone_domain::ids::{DosingSessionId, LocationId};
use kapstone_domain::ledger::entry::EntryHeader;
use kapstone_domain::ledger::{
    AdministrationEntry, Draw, EntryDetail, LotNumber, Measure, Micrograms, Microlitres, PatientOnRecord, Receipt,
    Registrant, Waste, Witness,
};
use kapstone_domain::{Email, PatientId, UtcTs};
use kapstone_store::ledger::EntryFilter;
use kapstone_store::{Db, DbUrl};
use kapstone_web::app::ledger::{Writer, person, place, reports};
use kapstone_web::state::{AppState, ServerConfig};

#[derive(Parser)]
#[command(name = "kapstone-ledger-bench", about = "Controlled-substance reports on a full history")]
struct Args {
    #[arg(long, env = "KAPSTONE_DATABASE_URL")]
    database_url: DbUrl,
    /// Ledger entries to append before timing.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Runs of each report.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

const PER_LOT: usize = 1000;

async fn user(state: &AppState, email: &str) -> anyhow::Result<kapstone_web::auth::guard::CurrentUser> {
    let row = kapstone_store::users::find_by_email(&state.db, &Email::parse(email)?)
        .await?
        .context("run `kapstone demo` on this database first")?;
    Ok(kapstone_web::app::demo::demo_actor(&row)?)
}

fn at(now: UtcTs, i: usize, n: usize) -> UtcTs {
    // Spread over the last two years, oldest first.
    let span = 2 * 365 * 86_400_000_000_i64;
    let step = span / i64::try_from(n.max(1)).unwrap_or(1);
    UtcTs::from_unix_micros(now.unix_micros() - span + step * i64::try_from(i).unwrap_or(0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = Db::connect(&args.database_url).await?;
    db.migrate().await?;
    let state = AppState::new(db.clone(), ServerConfig::default());
    let nurse = user(&state, "nurse@demo.kapstone.test").await?;
    let prescriber = user(&state, "prescriber@demo.kapstone.test").await?;
    let reg = kapstone_web::app::ledger::registry::registry(&state, &nurse).await?;
    let location =
        reg.locations.iter().find(|l| l.registration.is_some()).context("no registered location")?.location_id;
    let product =
        reg.products.iter().find(|p| p.ndc.as_str() == "0409-2051-05").context("the demo's 50 mg/mL vial")?.clone();
    let patients = kapstone_store::patients::list(&db, nurse.clinic, 12, 0).await?;
    let now = UtcTs::now();
    let n = args.entries;
    let supplier = Registrant {
        name: "Synthetic Pharma Supply".into(),
        address: "1 Warehouse Way, Springfield".into(),
        dea_number: kapstone_domain::ledger::DeaNumber::parse("dea", "RS1234563")?,
    };

    // Append: one lot per PER_LOT entries, in transactions of about 300 entries.
    let started = Instant::now();
    let mut written = 0usize;
    let mut lot_no = 0usize;
    while written < n {
        lot_no += 1;
        let lot = LotNumber::parse("lot", &format!("BENCH{lot_no:05}"))?;
        let expiry = jiff::civil::date(2099, 12, 31);
        let mut tx = db.begin().await?;
        kapstone_store::ledger::ensure_lot(&mut tx, product.id.as_uuid(), lot.as_str(), &expiry.to_string()).await?;
        tx.commit().await?;
        let mut in_lot = 0usize;
        while in_lot < PER_LOT && written < n {
            let here = place(&state, &nurse, location).await?;
            let mut tx = db.begin().await?;
            let mut w = Writer::start(&mut tx, &nurse, here).await?;
            let recorded_at = w.now;
            let header = |i: usize, lot: &LotNumber| EntryHeader {
                location: LocationId::from_uuid(location),
                product: product.id,
                lot: lot.clone(),
                occurred_at: at(now, i, n),
                recorded_at,
                recorded_by: person(&nurse),
            };
            if in_lot == 0 {
                // Enough for the lot's doses: 2 containers of 500 mg per 3 entries is plenty.
                let containers = u32::try_from(PER_LOT).unwrap_or(1000);
                let amount = Measure::Containers(containers).amount("containers", &product.form)?;
                w.push(
                    &mut tx,
                    header(written, &lot).entry(EntryDetail::Receipt(Receipt {
                        supplier: supplier.clone(),
                        containers,
                        amount,
                        invoice: Some(format!("INV-{lot_no}")),
                    })),
                )
                .await?;
                written += 1;
                in_lot += 1;
            }
            let mut k = 0;
            while k < 100 && in_lot + 3 <= PER_LOT && written + 3 <= n {
                let p = &patients[written % patients.len().max(1)];
                let patient = PatientOnRecord::new(
                    PatientId::from_uuid(p.id),
                    &format!("{} {}", p.given_name, p.family_name),
                    p.address.as_deref(),
                )?;
                let session = DosingSessionId::new();
                let drawn = Measure::Volume(Microlitres::from_ml(1));
                let amount = drawn.amount("drawn", &product.form)?;
                let draw = header(written, &lot).entry(EntryDetail::Draw(Draw { session, measure: drawn, amount }));
                let draw_id = draw.id;
                w.push(&mut tx, draw).await?;
                w.push(
                    &mut tx,
                    header(written + 1, &lot).entry(EntryDetail::Administration(AdministrationEntry {
                        draw: draw_id,
                        session,
                        patient,
                        administered_by: person(&nurse),
                        amount: Micrograms::from_mg(40),
                        route_snomed: "78421000".into(),
                    })),
                )
                .await?;
                let occurred = at(now, written + 2, n);
                w.push(
                    &mut tx,
                    header(written + 2, &lot).entry(EntryDetail::Waste(Waste {
                        draw: draw_id,
                        measure: Measure::Volume(Microlitres::from_ul(200)),
                        amount: Micrograms::from_mg(10),
                        method: "Expelled into the drug-waste container".into(),
                        witness: Some(Witness {
                            user: prescriber.id,
                            role: prescriber.role,
                            name: prescriber.name.clone(),
                            authenticated_at: occurred,
                        }),
                    })),
                )
                .await?;
                written += 3;
                in_lot += 3;
                k += 1;
            }
            w.write(&mut tx).await?;
            tx.commit().await?;
            if k == 0 {
                break;
            }
        }
    }
    let append_secs = started.elapsed().as_secs_f64();
    println!(
        "appended {written} entries in {lot_no} lots in {append_secs:.1} s ({:.0} entries/s)",
        written as f64 / append_secs
    );

    // Time the reports.
    let month_ago = UtcTs::from_unix_micros(now.unix_micros() - 30 * 86_400_000_000);
    let patient = PatientId::from_uuid(patients.first().context("patients")?.id);
    let lot = "BENCH00001";
    let mut rows: Vec<(&str, Vec<Duration>, usize)> = Vec::new();
    macro_rules! time {
        ($name:expr, $e:expr) => {{
            let mut runs = Vec::new();
            let mut size = 0usize;
            for _ in 0..args.repeat.max(1) {
                let t = Instant::now();
                size = $e;
                runs.push(t.elapsed());
            }
            rows.push(($name, runs, size));
        }};
    }
    time!("balance (every lot)", reports::balance(&state, &nurse, location).await?.len());
    time!(
        "transactions, last 30 days (page of <= 1000)",
        reports::ledger(
            &state,
            &nurse,
            location,
            EntryFilter { from: Some(month_ago), ..EntryFilter::default() },
            1000
        )
        .await?
        .items
        .len()
    );
    time!(
        "transactions, last 30 days, CSV",
        reports::csv(
            &reports::ledger(
                &state,
                &nurse,
                location,
                EntryFilter { from: Some(month_ago), ..EntryFilter::default() },
                1000
            )
            .await?
            .items
        )
        .len()
    );
    time!(
        "running balance of one lot",
        reports::lot_report(&state, &nurse, location, product.id.as_uuid(), lot).await?.lines.len()
    );
    let one_patient = kapstone_store::keyset::ListFilter { patient: Some(patient), from: None, to: None };
    time!(
        "dispensing log of one patient (first page of 500)",
        reports::dispensing_log(&state, &nurse, &one_patient, None, 500).await?.0.len()
    );
    time!("location overview (balances, draws in use, inventories)", {
        let o = reports::overview(&state, &nurse, location).await?;
        o.balances.len()
    });
    time!("open discrepancies", kapstone_web::app::ledger::discrepancies::list(&state, &nurse, true).await?.len());
    time!("kapstone ledger verify (whole chain)", {
        let v = kapstone_store::ledger::verify(&db).await?;
        let chains = v.map_err(|(l, e)| anyhow::anyhow!("chain of {l} broken: {e}"))?;
        usize::try_from(chains.iter().map(|c| c.1).sum::<i64>()).unwrap_or(0)
    });
    println!("| report | rows | median ms | slowest ms |");
    println!("|---|---:|---:|---:|");
    for (name, mut runs, size) in rows {
        runs.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("| {name} | {size} | {:.1} | {:.1} |", ms(runs[runs.len() / 2]), ms(runs[runs.len() - 1]));
    }
    Ok(())
}
