//! Crash safety (issue 9): the real `kapstone serve` is SIGKILLed at random moments while several
//! clients write through the JSON API with `Idempotency-Key`s; it is restarted each time and the
//! clients retry whatever was not answered, with the same keys. At the end every acknowledged
//! write must be stored exactly once, every retry must have got the original answer (the routes
//! used store it with the change, so a kill never leaves a write "applied, answer lost"), SQLite's
//! `PRAGMA integrity_check` must pass and the audit and ledger chains must verify.
//!
//! `KAPSTONE_CRASH_KILLS` sets the number of kills (default 10, about 20 s here);
//! `KAPSTONE_CRASH_SEED` replays a run. With `KAPSTONE_TEST_POSTGRES_URL` set, the same run is
//! made on a fresh PostgreSQL database too (the app server is killed, never PostgreSQL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kapstone_store::{Db, DbUrl, StoreError, on_read};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kapstone");
const PASSWORD: &str = "demo password 2026";
const CLIENTS: usize = 4;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// xorshift64*: enough randomness for kill timing, and a seed that replays a run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// One `kapstone serve` process.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(url: &str) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", url, "--demo", "--demo-password", PASSWORD])
            .env("KAPSTONE_JOBS_EVERY_SECS", "0")
            .env("KAPSTONE_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("the server exited before listening").unwrap();
            if let Some(rest) = line.strip_prefix("Kapstone is running at http://") {
                break rest.split('/').next().unwrap().to_owned();
            }
        };
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    fn sigkill(mut self) {
        // `Child::kill` is SIGKILL on Unix: no shutdown code runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Patient,
    Receipt,
    Vitals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A 2xx answer (the original or a replay).
    Acknowledged,
    /// 409 on `Idempotency-Key`: applied, but the answer was lost in a kill. Must not happen:
    /// these routes store their answer with their change.
    AppliedAnswerLost,
}

#[derive(Debug)]
struct Write {
    kind: Kind,
    marker: String,
    outcome: Outcome,
    body: Value,
}

#[derive(Default)]
struct Tally {
    writes: Vec<Write>,
    retries: u64,
    replays: u64,
}

struct Fixture {
    location: String,
    product: String,
    session: String,
}

async fn login(http: &reqwest::Client, base: &str) -> String {
    let r = http
        .post(format!("http://{base}/api/v1/auth/login"))
        .json(&json!({"email": "nurse@demo.kapstone.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

/// The demo's registered location, a product, and a session on the floor that takes readings.
async fn fixture(http: &reqwest::Client, base: &str, token: &str) -> Fixture {
    let get = |path: String| async move {
        http.get(format!("http://{base}{path}")).bearer_auth(token).send().await.unwrap().json::<Value>().await.unwrap()
    };
    let registry = get("/api/v1/cs/registry".into()).await;
    let location = registry["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| !l["registration"].is_null())
        .and_then(|l| l["location_id"].as_str())
        .unwrap()
        .to_owned();
    let product = registry["products"][0]["id"].as_str().unwrap().to_owned();
    let board = get("/api/v1/floor".into()).await;
    let candidates: Vec<String> = board["chairs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["sessions"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["session_id"].as_str().map(str::to_owned))
        .collect();
    let mut refusals = Vec::new();
    for id in candidates {
        let r = http
            .post(format!("http://{base}/api/v1/sessions/{id}/vitals"))
            .bearer_auth(token)
            .json(&json!({"systolic": 120, "diastolic": 78, "heart_rate": 72}))
            .send()
            .await
            .unwrap();
        if r.status() == 201 {
            return Fixture { location, product, session: id };
        }
        refusals.push(r.text().await.unwrap_or_default());
    }
    panic!("no demo session on the floor takes a reading: {refusals:?}");
}

fn plan(client: usize, n: u64, fx: &Fixture) -> (Kind, String, String, Value) {
    let marker = format!("CR{client}N{n}");
    // Vitals come from one client only: two readings sent at the same instant to one session can
    // be refused as out of time order on PostgreSQL (the default `at` is taken before the lock).
    let turn = if client == 0 { n % 3 } else { n % 2 };
    match turn {
        0 => (
            Kind::Patient,
            marker.clone(),
            "/api/v1/patients".into(),
            json!({"given_name": marker, "family_name": "Crashtest", "birth_date": "1980-01-02", "sex_at_birth": "male"}),
        ),
        1 => (
            Kind::Receipt,
            marker.clone(),
            "/api/v1/cs/receipts".into(),
            json!({"location": fx.location, "product": fx.product, "lot": marker, "expiry": "2031-03-31",
                "supplier": {"name": "Synthetic Pharma Supply", "address": "1 Warehouse Way", "dea_number": "RS1234563"},
                "containers": 1, "invoice": format!("INV-{marker}")}),
        ),
        _ => (
            Kind::Vitals,
            marker,
            format!("/api/v1/sessions/{}/vitals", fx.session),
            json!({"systolic": 110 + n % 20, "diastolic": 75, "heart_rate": 70 + n % 20}),
        ),
    }
}

/// Sends one write until it gets an answer, through kills and restarts, always with its key.
async fn send_until_answered(
    http: &reqwest::Client,
    base: &RwLock<String>,
    token: &str,
    path: &str,
    key: &str,
    body: &Value,
    tally: &Mutex<Tally>,
) -> (Outcome, Value) {
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(60), "{key} got no answer in a minute");
        let url = format!("http://{}{path}", base.read().unwrap());
        let sent = http.post(url).bearer_auth(token).header("Idempotency-Key", key).json(body).send().await;
        if let Ok(r) = sent {
            let status = r.status().as_u16();
            let replayed = r.headers().contains_key("idempotent-replayed");
            if let Ok(answer) = r.json::<Value>().await {
                match status {
                    200..=299 => {
                        if replayed {
                            tally.lock().unwrap().replays += 1;
                        }
                        return (Outcome::Acknowledged, answer);
                    }
                    409 if answer["error"]["field"] == "Idempotency-Key" => {
                        return (Outcome::AppliedAnswerLost, answer);
                    }
                    // 503 while the database is unavailable: retry; anything else is a bug.
                    503 => {}
                    _ => panic!("{key}: unexpected answer {status}: {answer}"),
                }
            }
        }
        tally.lock().unwrap().retries += 1;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn count(db: &Db, sql: &'static str, marker: &str) -> i64 {
    let read =
        async { Ok::<i64, StoreError>(on_read!(db, |c| sqlx::query_scalar(sql).bind(marker).fetch_one(c).await?)) };
    read.await.unwrap()
}

async fn readings(db: &Db, session: &str) -> i64 {
    let id: uuid::Uuid = session.parse().unwrap();
    let read = async {
        Ok::<i64, StoreError>(on_read!(db, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM session_events WHERE session_id = $1 AND kind = 'reading'"
        )
        .bind(id)
        .fetch_one(c)
        .await?))
    };
    read.await.unwrap()
}

fn verify_with_cli(what: &str, url: &str) {
    let out = Command::new(BIN).args([what, "verify", "--database-url", url]).output().unwrap();
    assert!(
        out.status.success(),
        "{what} verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn crash_run(url: String) {
    let kills = env_number("KAPSTONE_CRASH_KILLS", 10);
    let seed = env_number(
        "KAPSTONE_CRASH_SEED",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1,
    );
    println!("crash run: {kills} kills, seed {seed}, {url}");
    let started = Instant::now();
    let mut server = Server::start(&url);
    let base = Arc::new(RwLock::new(server.addr.clone()));
    kapstone_web::install_tls_provider();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let setup_token = login(&http, &server.addr).await;
    let fx = Arc::new(fixture(&http, &server.addr, &setup_token).await);
    let parsed: DbUrl = url.parse().unwrap();
    let readings_before = {
        let db = Db::connect(&parsed).await.unwrap();
        let n = readings(&db, &fx.session).await;
        db.close().await;
        n
    };

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (base, stop, tally, fx, http) = (base.clone(), stop.clone(), tally.clone(), fx.clone(), http.clone());
        let token = login(&http, &server.addr).await;
        clients.spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let (kind, marker, path, body) = plan(client, n, &fx);
                let key = format!("crash-{seed}-{client}-{n}");
                let (outcome, answer) = send_until_answered(&http, &base, &token, &path, &key, &body, &tally).await;
                tally.lock().unwrap().writes.push(Write { kind, marker, outcome, body: answer });
                n += 1;
            }
        });
    }

    let mut rng = Rng(seed);
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.between(50, 600))).await;
        server.sigkill();
        server = Server::start(&url);
        *base.write().unwrap() = server.addr.clone();
    }
    // Let the clients see the last restart, then finish their current write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    server.sigkill();
    let elapsed = started.elapsed();

    // Every write that was acknowledged (or applied with its answer lost) is stored exactly once,
    // and its answer (first or replayed) is about it.
    let db = Db::connect(&parsed).await.unwrap();
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let (mut lost, mut duplicated, mut vitals) = (0, 0, 0);
    for w in &tally.writes {
        let n = match w.kind {
            Kind::Patient => count(&db, "SELECT COUNT(*) FROM patients WHERE given_name = $1", &w.marker).await,
            Kind::Receipt => {
                count(&db, "SELECT COUNT(*) FROM cs_ledger_entries WHERE kind = 'receipt' AND lot = $1", &w.marker)
                    .await
            }
            Kind::Vitals => {
                vitals += 1;
                1
            }
        };
        if w.kind == Kind::Patient && w.outcome == Outcome::Acknowledged {
            // The answer (first or replayed) names the one stored patient.
            let id: uuid::Uuid = w.body["id"].as_str().unwrap().parse().unwrap();
            let read = async {
                Ok::<i64, StoreError>(on_read!(&db, |c| sqlx::query_scalar(
                    "SELECT COUNT(*) FROM patients WHERE id = $1 AND given_name = $2"
                )
                .bind(id)
                .bind(&w.marker)
                .fetch_one(c)
                .await?))
            };
            let named = read.await.unwrap();
            assert_eq!(named, 1, "{w:?}");
        }
        if w.kind == Kind::Receipt && w.outcome == Outcome::Acknowledged {
            assert_eq!(w.body["entries"][0]["lot"], w.marker.as_str(), "{w:?}");
        }
        if w.kind == Kind::Vitals && w.outcome == Outcome::Acknowledged {
            assert!(w.body["state"].is_string(), "{w:?}");
        }
        lost += i64::from(n == 0);
        duplicated += (n - 1).max(0);
    }
    let readings_after = readings(&db, &fx.session).await;
    let vitals_difference = readings_after - readings_before - vitals;
    if vitals_difference < 0 {
        lost -= vitals_difference;
    } else {
        duplicated += vitals_difference;
    }
    if let Db::Sqlite { read, .. } = &db {
        let check: String =
            sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut *read.acquire().await.unwrap()).await.unwrap();
        assert_eq!(check, "ok");
    }
    db.close().await;
    verify_with_cli("audit", &url);
    verify_with_cli("ledger", &url);

    let acknowledged = tally.writes.iter().filter(|w| w.outcome == Outcome::Acknowledged).count();
    let answer_lost = tally.writes.len() - acknowledged;
    println!(
        "crash run on {:?}: {kills} kills in {:.1} s; {} writes acknowledged, {answer_lost} applied with the answer lost, \
         {} retries, {} replayed answers; lost {lost}, duplicated {duplicated}; integrity and chains ok",
        parsed.backend(),
        elapsed.as_secs_f64(),
        acknowledged,
        tally.retries,
        tally.replays,
    );
    assert!(acknowledged > 0, "no write got through");
    assert_eq!((lost, duplicated), (0, 0), "every acknowledged write exactly once");
    assert_eq!(answer_lost, 0, "a retry after a kill gets the original answer: it is stored with the change");
}

#[test]
fn acknowledged_writes_survive_sigkill_exactly_once_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("kapstone-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("crash.db").display());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(crash_run(url));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn acknowledged_writes_survive_sigkill_exactly_once_on_postgres() {
    let Ok(admin) = std::env::var("KAPSTONE_TEST_POSTGRES_URL") else {
        println!("KAPSTONE_TEST_POSTGRES_URL is not set: the PostgreSQL crash run is skipped");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let name = format!("kapstone_crash_{}", std::process::id());
        let pool = sqlx::PgPool::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(&pool).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
        let (prefix, _) = admin.rsplit_once('/').unwrap();
        crash_run(format!("{prefix}/{name}")).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&pool)
            .await
            .unwrap();
    });
}
