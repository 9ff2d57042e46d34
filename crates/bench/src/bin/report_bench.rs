//! `kapstone-report-bench`: the report pages of issue 9 on a network-sized clinic (made by
//! `kapstone-datagen`): the clinic outcome dashboard, the controlled-substance transaction report
//! and a patient's chart timeline, each through the whole server (router, guard, use case,
//! audit event, template) over HTTP on 127.0.0.1.
//!
//! The server runs in this process on a free port of 127.0.0.1 with the production router; the
//! requests are sent one at a time (latency, not throughput), each `--repeat` times after one
//! untimed warm-up, and the p50, p99 and slowest are printed. The chart timeline is read for
//! `--chart-requests` requests spread over `--chart-patients` patients (half of them treated).
//! Timing is printed, never asserted.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use kapstone_bench::{Summary, ms};
use kapstone_store::db::PoolSettings;
use kapstone_store::sessions::SessionKind;
use kapstone_store::{Db, DbUrl, on_read};
use kapstone_web::app::sign_in::{Credentials, sign_in};
use kapstone_web::state::{AppState, ServerConfig};
use reqwest::header::{AUTHORIZATION, COOKIE};
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "kapstone-report-bench", about = "Report pages on a network-sized clinic, one request at a time")]
struct Args {
    #[arg(long, env = "KAPSTONE_DATABASE_URL")]
    database_url: DbUrl,
    /// Runs of each report.
    #[arg(long, default_value_t = 20)]
    repeat: usize,
    /// Chart pages read in all.
    #[arg(long, default_value_t = 400)]
    chart_requests: usize,
    /// Different patients the chart pages are read for.
    #[arg(long, default_value_t = 200)]
    chart_patients: usize,
    /// Read-pool connections of the server (unset: `kapstone serve`'s default for the engine,
    /// `PoolSettings::default_for`).
    #[arg(long)]
    db_max_connections: Option<u32>,
    #[arg(long, env = "KAPSTONE_DEMO_PASSWORD", hide_env_values = true, default_value = "bench password 2026")]
    password: String,
}

struct Timed {
    name: String,
    runs: Vec<Duration>,
    bytes: usize,
}

async fn get(client: &reqwest::Client, url: &str, auth: (&'static str, &str)) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let res = client.get(url).header(auth.0, auth.1).send().await?;
    let status = res.status();
    let body = res.bytes().await?;
    let took = started.elapsed();
    if !status.is_success() {
        bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
    }
    Ok((took, body.len()))
}

async fn time(
    client: &reqwest::Client,
    name: &str,
    urls: &[String],
    runs: usize,
    auth: (&'static str, &str),
) -> anyhow::Result<Timed> {
    let first = urls.first().context("no url")?;
    get(client, first, auth).await?; // warm-up, not counted
    let mut out = Timed { name: name.to_owned(), runs: Vec::with_capacity(runs), bytes: 0 };
    for i in 0..runs {
        let (took, bytes) = get(client, &urls[i % urls.len()], auth).await?;
        out.runs.push(took);
        out.bytes = out.bytes.max(bytes);
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kapstone_web::install_tls_provider();
    let args = Args::parse();
    let mut settings = PoolSettings::default_for(args.database_url.backend());
    if let Some(n) = args.db_max_connections {
        settings.max_connections = n;
    }
    let db = Db::connect_with(&args.database_url, settings).await?;
    db.migrate().await?;
    let state = AppState::new(db.clone(), ServerConfig::default());
    let counts: (i64, i64, i64, i64, i64) = on_read!(&db, |c| {
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM patients), (SELECT COUNT(*) FROM questionnaire_responses), \
             (SELECT COUNT(*) FROM dosing_sessions), (SELECT COUNT(*) FROM session_events WHERE kind = 'reading'), \
             (SELECT COUNT(*) FROM cs_ledger_entries)",
        )
        .fetch_one(c)
        .await?
    });
    println!(
        "# database: {} patients, {} questionnaire responses, {} dosing sessions, {} readings, {} ledger entries",
        counts.0, counts.1, counts.2, counts.3, counts.4
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kapstone_web::launch_with_listener(state.clone(), listener, async move {
        let _ = stopped.await;
    }));

    let creds = || Credentials {
        email: "prescriber@demo.kapstone.test".into(),
        password: args.password.clone(),
        totp_code: None,
    };
    let browser = sign_in(&state, creds(), SessionKind::Browser, Some("127.0.0.1"), None).await?;
    let api = sign_in(&state, creds(), SessionKind::Api, Some("127.0.0.1"), None).await?;
    let cookie = format!("{}={}", state.config.session_cookie_name(), browser.token);
    let bearer = format!("Bearer {}", api.token);
    let page = (COOKIE.as_str(), cookie.as_str());
    let json = (AUTHORIZATION.as_str(), bearer.as_str());
    let client = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build()?;

    let user = kapstone_bench::user(&state, "prescriber@demo.kapstone.test").await?;
    let reg = kapstone_web::app::ledger::registry::registry(&state, &user).await?;
    let location =
        reg.locations.iter().find(|l| l.registration.is_some()).context("no registered location")?.location_id;
    let today = jiff::Zoned::now().date();
    let month_ago = today.checked_sub(jiff::Span::new().days(30))?;
    let two_years_ago = today.checked_sub(jiff::Span::new().days(730))?;
    // Chart patients: half with dosing sessions, half without, spread over the clinic.
    let half = i64::try_from(args.chart_patients / 2)?;
    let mut patients: Vec<Uuid> = on_read!(&db, |c| {
        sqlx::query_scalar(
            "SELECT patient_id FROM (SELECT DISTINCT patient_id FROM dosing_sessions) s ORDER BY patient_id LIMIT $1",
        )
        .bind(half)
        .fetch_all(c)
        .await?
    });
    let untreated: Vec<Uuid> = on_read!(&db, |c| {
        sqlx::query_scalar(
            "SELECT id FROM patients p WHERE NOT EXISTS (SELECT 1 FROM dosing_sessions d WHERE d.patient_id = p.id) \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(half)
        .fetch_all(c)
        .await?
    });
    patients.extend(untreated);
    let charts: Vec<String> = patients.iter().map(|p| format!("{base}/patients/{p}")).collect();

    let u = |path: String| vec![format!("{base}{path}")];
    let mut results = Vec::new();
    let runs = args.repeat.max(1);
    results.push(
        time(&client, "outcome dashboard, default 90 days (page)", &u("/reports/outcomes".into()), runs, page).await?,
    );
    results.push(
        time(
            &client,
            "outcome dashboard, last two years (page)",
            &u(format!("/reports/outcomes?from={two_years_ago}&to={today}")),
            runs,
            page,
        )
        .await?,
    );
    results.push(
        time(&client, "outcome dashboard, 90 days (API)", &u("/api/v1/reports/outcomes".into()), runs, json).await?,
    );
    results.push(
        time(
            &client,
            "CS transactions, last 30 days (printable page)",
            &u(format!("/cs/report?location={location}")),
            runs,
            page,
        )
        .await?,
    );
    results.push(
        time(
            &client,
            "CS transactions, last 30 days, first page (API)",
            &u(format!("/api/v1/cs/ledger?location={location}&from={month_ago}&to={today}")),
            runs,
            json,
        )
        .await?,
    );
    results.push(time(&client, "patient chart timeline (page)", &charts, args.chart_requests.max(1), page).await?);

    println!("| Report | runs | p50 ms | p99 ms | slowest ms | bytes |");
    println!("|---|---:|---:|---:|---:|---:|");
    for t in &results {
        let s = Summary::of(&t.runs);
        println!("| {} | {} | {} | {} | {} | {} |", t.name, s.runs, ms(s.p50), ms(s.p99), ms(s.max), t.bytes);
    }
    let _ = stop.send(());
    server.await??;
    db.close().await;
    Ok(())
}
