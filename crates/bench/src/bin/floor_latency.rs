//! `kapstone-floor-latency`: how long a change on the dosing floor takes to reach another
//! client's live board (issue 9: "a change reaches another client's live board within 250 ms
//! (p99), also when the two clients are served by two different server processes").
//!
//! A watcher does what the floor page's script does, against `--watch-url`: it keeps
//! `/floor/events` open and, on each `change`, fetches `/floor/board` (one fetch at a time,
//! another straight after if the counter moved meanwhile). A prober records a vitals reading on a
//! floor session through `--write-url` every `--interval-ms`, then reads that server's floor
//! counter: the first board fetch on the watcher that started at that counter or later ends the
//! probe. The latency is from just before the write was sent to the end of that fetch, so it
//! counts the write itself and is an upper bound (the counter read after the answer may include
//! later writes of other clients). Run it while `kapstone-bench --scenario vitals` loads the floor
//! (`scripts/floor-latency.sh` does both, on one or two server processes). Targets 127.0.0.1 only.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use clap::Parser;
use reqwest::Client;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "kapstone-floor-latency", about = "Time for a floor change to reach another client's live board")]
struct Args {
    /// The server the writes go to.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    write_url: String,
    /// The server the watching board is on (another process on the same database, or the same).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    watch_url: String,
    #[arg(long, default_value = "nurse@demo.kapstone.test")]
    email: String,
    #[arg(long, env = "KAPSTONE_BENCH_PASSWORD", hide_env_values = true)]
    password: String,
    /// Number of timed changes.
    #[arg(long, default_value_t = 200)]
    probes: usize,
    /// Pause between probes.
    #[arg(long, default_value_t = 150)]
    interval_ms: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn loopback(raw: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(raw).with_context(|| format!("{raw} is not a URL"))?;
    ensure!(url.scheme() == "http", "{raw}: only http:// on this machine");
    ensure!(matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")), "{raw}: only 127.0.0.1 is allowed");
    Ok(raw.trim_end_matches('/').to_owned())
}

async fn sign_in(client: &Client, base: &str, email: &str, password: &str) -> anyhow::Result<HeaderValue> {
    let body: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = body["token"].as_str().ok_or_else(|| anyhow!("sign-in on {base}: no token"))?;
    Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
}

async fn floor(client: &Client, base: &str, auth: &HeaderValue) -> anyhow::Result<Value> {
    Ok(client
        .get(format!("{base}/api/v1/floor"))
        .header(AUTHORIZATION, auth.clone())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// The board fetches the watcher finished: the counter that started each, and when it ended.
type Fetches = Arc<Mutex<Vec<(i64, Instant)>>>;

/// Reads the event stream; keeps the newest counter in a watch channel for the board fetcher.
async fn read_events(
    client: Client,
    base: String,
    auth: HeaderValue,
    latest: tokio::sync::watch::Sender<i64>,
) -> anyhow::Result<()> {
    let mut response = client
        .get(format!("{base}/floor/events"))
        .header(AUTHORIZATION, auth)
        .header("Accept", "text/event-stream")
        .send()
        .await?
        .error_for_status()?;
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(counter) =
                event.lines().find_map(|l| l.strip_prefix("data:")).and_then(|d| d.trim().parse().ok())
            {
                latest.send_replace(counter);
            }
        }
    }
    bail!("the event stream ended")
}

/// Fetches the board whenever the counter moves, one fetch at a time (as `/static/floor.js`).
async fn fetch_boards(
    client: Client,
    base: String,
    auth: HeaderValue,
    mut latest: tokio::sync::watch::Receiver<i64>,
    fetches: Fetches,
) -> anyhow::Result<()> {
    loop {
        latest.changed().await?;
        let counter = *latest.borrow_and_update();
        client
            .get(format!("{base}/floor/board"))
            .header(AUTHORIZATION, auth.clone())
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        fetches.lock().unwrap_or_else(PoisonError::into_inner).push((counter, Instant::now()));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    kapstone_web::install_tls_provider();
    let args = Args::parse();
    let write_url = loopback(&args.write_url)?;
    let watch_url = loopback(&args.watch_url)?;
    let client = Client::builder().pool_max_idle_per_host(8).build()?;
    let write_auth = sign_in(&client, &write_url, &args.email, &args.password).await?;
    let watch_auth = sign_in(&client, &watch_url, &args.email, &args.password).await?;
    let board = floor(&client, &write_url, &write_auth).await?;
    let sessions: Vec<String> = board["chairs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["sessions"].as_array().into_iter().flatten())
        .filter_map(|s| s["session_id"].as_str().map(str::to_owned))
        .collect();
    ensure!(!sessions.is_empty(), "no dosing session on today's floor: run against the demo clinic");

    let (latest_tx, latest_rx) = tokio::sync::watch::channel(i64::MIN);
    let fetches: Fetches = Arc::default();
    let events = tokio::spawn(read_events(client.clone(), watch_url.clone(), watch_auth.clone(), latest_tx));
    let boards = tokio::spawn(fetch_boards(client.clone(), watch_url.clone(), watch_auth, latest_rx, fetches.clone()));
    // Let the stream open and the first board load.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut latencies = Vec::with_capacity(args.probes);
    let mut missed = 0;
    for i in 0..args.probes {
        let session = &sessions[i % sessions.len()];
        let started = Instant::now();
        let written = client
            .post(format!("{write_url}/api/v1/sessions/{session}/vitals"))
            .header(AUTHORIZATION, write_auth.clone())
            .json(&json!({"systolic": 118 + (i % 7), "diastolic": 76, "heart_rate": 70, "spo2": 98, "resp_rate": 14}))
            .send()
            .await?;
        ensure!(written.status().is_success(), "vitals on {session}: {}", written.status());
        let counter = floor(&client, &write_url, &write_auth).await?["counter"]
            .as_i64()
            .ok_or_else(|| anyhow!("the floor has no counter"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let reached = loop {
            let seen = fetches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|(c, at)| *c >= counter && *at >= started)
                .map(|(_, at)| *at);
            if let Some(at) = seen {
                break Some(at);
            }
            if Instant::now() > deadline || events.is_finished() || boards.is_finished() {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        match reached {
            Some(at) => latencies.push(at.duration_since(started).as_secs_f64() * 1000.0),
            None => missed += 1,
        }
        fetches.lock().unwrap_or_else(PoisonError::into_inner).retain(|(_, at)| *at >= started);
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
    events.abort();
    boards.abort();
    latencies.sort_by(f64::total_cmp);
    let (p50, p99, max) =
        (percentile(&latencies, 50.0), percentile(&latencies, 99.0), latencies.last().copied().unwrap_or(f64::NAN));
    let same = write_url == watch_url;
    if args.json {
        println!(
            "{}",
            json!({"probes": args.probes, "reached": latencies.len(), "missed": missed, "p50_ms": p50, "p99_ms": p99,
                   "max_ms": max, "sessions": sessions.len(), "same_process": same})
        );
    } else {
        println!(
            "floor change -> other client's board ({}; {} sessions on the floor): {} probes, {} missed, p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
            if same { "same server process" } else { "two server processes" },
            sessions.len(),
            latencies.len(),
            missed
        );
    }
    ensure!(missed == 0, "{missed} change(s) never reached the board within 5 s");
    Ok(())
}
