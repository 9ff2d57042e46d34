//! `kapstone-bench`: a small load generator for a locally running Kapstone server.
//!
//! It drives N concurrent clients against one scenario for a bounded time and
//! reports throughput (requests/s), latency percentiles and errors, as a human
//! table and optionally as one JSON line (for scripts and CI comparisons).
//!
//! Safety: the target must be loopback (`127.0.0.1`, `localhost` or `[::1]`).
//! A load generator pointed at a shared or production host is a denial of
//! service, so any other host is refused before a single request is sent;
//! proxies and redirects are disabled so traffic cannot leave the machine.
//!
//! Timeline: optional per-client setup (sign-in, patient list) happens first
//! and is not timed. Then all clients start together; the first
//! `--warmup-secs` warm connection pools and caches and are discarded; the
//! following `--duration-secs` is the measured window. Requests still in
//! flight when the window closes are abandoned, so the run always ends.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::{Parser, ValueEnum};
use reqwest::header::{AUTHORIZATION, COOKIE, HeaderValue, SET_COOKIE};
use reqwest::{Client, RequestBuilder, Url, redirect};
use serde_json::{Value, json};
use tokio::task::JoinSet;

mod bare;

/// Upper bound on concurrent clients: beyond this the generator itself, not
/// the server, becomes the bottleneck (and file descriptors run out).
const MAX_CLIENTS: usize = 10_000;
/// Upper bound on the measured window, so a typo cannot run for days.
const MAX_DURATION_SECS: u64 = 3_600;
/// Per-request timeout: bounds setup requests (which have no window deadline)
/// and keeps a hung server from stalling the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How many patients `patient-read` asks for when collecting ids.
const PATIENT_LIST_LIMIT: u32 = 200;
/// The server's cookies without a TLS proxy in front (`ServerConfig::session_cookie_name`).
const SESSION_COOKIE: &str = "kapstone_session";
const PRE_SESSION_COOKIE: &str = "kapstone_csrf";

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "kapstone-bench",
    version,
    about = "Load generator for a local Kapstone server: requests/s and latency percentiles."
)]
struct Args {
    /// Server base URL; only loopback hosts are accepted.
    #[arg(long, env = "KAPSTONE_BENCH_BASE_URL", default_value = "http://127.0.0.1:8080")]
    base_url: String,

    /// What each request does.
    #[arg(long, value_enum, default_value_t = Scenario::Health)]
    scenario: Scenario,

    /// Number of concurrent clients (each runs requests back to back).
    #[arg(long, default_value_t = 64)]
    clients: usize,

    /// Length of the measured window, in seconds (after the warm-up).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,

    /// Warm-up before measuring, in seconds; requests completed in it are discarded.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,

    /// Account email for sign-in based scenarios.
    #[arg(long, env = "KAPSTONE_BENCH_EMAIL")]
    email: Option<String>,

    /// Account password for sign-in based scenarios (prefer the env var so it
    /// stays out of shell history and `ps`).
    #[arg(long, env = "KAPSTONE_BENCH_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    /// Print the result as one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,

    /// The server's database: the bare engine's durable commit rate is measured on it just before
    /// the scenario (one-row INSERT + COMMIT into a scratch table), and the scenario's rate is
    /// reported as a ratio to it. SQLite: WAL, synchronous=FULL, one writer; PostgreSQL: 4
    /// connections.
    #[arg(long, env = "KAPSTONE_BENCH_BARE_DATABASE_URL", hide_env_values = true)]
    bare_database_url: Option<kapstone_store::DbUrl>,

    /// Seconds of the bare-engine measurement.
    #[arg(long, default_value_t = 5)]
    bare_secs: u64,

    /// Concurrent tasks of the bare-engine measurement.
    #[arg(long, default_value_t = 16)]
    bare_clients: usize,
}

/// The request mix a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `POST /api/v1/auth/login` per request: sign-in throughput (argon2 bound).
    SignIn,
    /// `GET /api/v1/auth/me` with a bearer token: a cheap authenticated request.
    PageView,
    /// `GET /api/v1/patients/{id}`: an authenticated, audited record read.
    PatientRead,
    /// `GET /patients/{id}`: the patient summary page (HTML) of a signed-in staff browser session,
    /// the chart view; audited.
    PatientPage,
    /// `GET /api/v1/patients/{id}/eligibility`: the rules evaluated on a stored record (audited).
    Eligibility,
    /// `GET /healthz`: the floor cost of a request including a database ping.
    Health,
    /// `GET /api/v1/floor`: the live floor board (every chair's session replayed, audited).
    Floor,
    /// `GET /api/v1/sessions/{id}`: one dosing session replayed with its checks and gates.
    SessionView,
    /// `POST /api/v1/sessions/{id}/events` (a progress note): one session event decided and
    /// written with its audit event, on the sessions of today's floor.
    SessionRecord,
    /// `POST /api/v1/sessions/{id}/vitals`: a set of vital signs checked against the session's
    /// thresholds and written with its audit event, on the sessions of today's floor.
    Vitals,
}

impl Scenario {
    /// The name used on the command line and in reports.
    fn name(self) -> &'static str {
        match self {
            Self::SignIn => "sign-in",
            Self::PageView => "page-view",
            Self::PatientRead => "patient-read",
            Self::PatientPage => "patient-page",
            Self::Eligibility => "eligibility",
            Self::Health => "health",
            Self::Floor => "floor",
            Self::SessionView => "session-view",
            Self::SessionRecord => "session-record",
            Self::Vitals => "vitals",
        }
    }

    /// Whether the scenario needs an account.
    fn needs_credentials(self) -> bool {
        !matches!(self, Self::Health)
    }
}

/// Validated run settings shared by all clients.
struct Settings {
    /// Base URL as text without a trailing slash, so paths can be appended.
    base: String,
    scenario: Scenario,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    /// Pre-serialized sign-in body (empty for `health`).
    login_body: String,
    /// The account, for the web form's sign-in (empty for `health`).
    email: String,
    password: String,
}

impl Settings {
    /// Checks the arguments once so workers can assume they are sane.
    fn from_args(args: &Args) -> Result<Self> {
        let url = check_local_base_url(&args.base_url)?;
        ensure!((1..=MAX_CLIENTS).contains(&args.clients), "--clients must be between 1 and {MAX_CLIENTS}");
        ensure!(
            (1..=MAX_DURATION_SECS).contains(&args.duration_secs),
            "--duration-secs must be between 1 and {MAX_DURATION_SECS}"
        );
        ensure!(args.warmup_secs <= MAX_DURATION_SECS, "--warmup-secs must be at most {MAX_DURATION_SECS}");
        let (email, password) = if args.scenario.needs_credentials() {
            let email = args.email.as_deref().filter(|e| !e.is_empty());
            let password = args.password.as_deref().filter(|p| !p.is_empty());
            match (email, password) {
                (Some(email), Some(password)) => (email.to_owned(), password.to_owned()),
                _ => bail!(
                    "scenario {} needs --email and --password (or KAPSTONE_BENCH_EMAIL / KAPSTONE_BENCH_PASSWORD)",
                    args.scenario.name()
                ),
            }
        } else {
            (String::new(), String::new())
        };
        let login_body =
            if email.is_empty() { String::new() } else { json!({ "email": email, "password": password }).to_string() };
        Ok(Self {
            base: url.as_str().trim_end_matches('/').to_owned(),
            scenario: args.scenario,
            clients: args.clients,
            warmup: Duration::from_secs(args.warmup_secs),
            duration: Duration::from_secs(args.duration_secs),
            login_body,
            email,
            password,
        })
    }

    /// Absolute URL for a server path (which starts with `/`).
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Parses `raw` and accepts it only if it is plain `http` to a loopback host.
///
/// `https` is refused because the client is built without TLS (a loopback
/// benchmark has no use for it); credentials in the URL are refused because
/// they would be echoed in reports.
fn check_local_base_url(raw: &str) -> Result<Url> {
    let url = Url::parse(raw).with_context(|| format!("invalid --base-url {raw:?}"))?;
    ensure!(url.scheme() == "http", "--base-url must use http:// (got {}://)", url.scheme());
    ensure!(url.username().is_empty() && url.password().is_none(), "--base-url must not contain credentials");
    ensure!(url.query().is_none() && url.fragment().is_none(), "--base-url must not have a query or fragment");
    // The URL parser normalises hosts (lower-cases names, canonicalises IPv4
    // spellings such as `127.1`, brackets IPv6), so exact matches suffice.
    let host = url.host_str().unwrap_or("");
    ensure!(
        matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        "refusing to load-test {host:?}: only 127.0.0.1, localhost or [::1] are allowed"
    );
    Ok(url)
}

/// One shared client for all workers so connections are pooled like a real
/// browser fleet behind one proxy would be; proxies and redirects are off so
/// requests can only reach the validated loopback host.
fn build_client(clients: usize) -> Result<Client> {
    Client::builder()
        .pool_max_idle_per_host(clients)
        .no_proxy()
        .redirect(redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .user_agent(concat!("kapstone-bench/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building HTTP client")
}

/// Result of a single timed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// 2xx with the body fully read.
    Ok,
    /// Any non-2xx status.
    Status(u16),
    /// No complete response: connect failure, reset, timeout, broken body.
    Transport,
}

/// Sends a request and reads the whole body, because latency should cover
/// what a client actually waits for and an unread body blocks connection reuse.
async fn execute(request: RequestBuilder) -> Outcome {
    let Ok(response) = request.send().await else {
        return Outcome::Transport;
    };
    let status = response.status();
    if response.bytes().await.is_err() {
        return Outcome::Transport;
    }
    if status.is_success() { Outcome::Ok } else { Outcome::Status(status.as_u16()) }
}

/// Sends a setup request and returns its JSON body; setup failures abort the
/// run because the scenario cannot be measured without them.
async fn fetch_json(request: RequestBuilder, what: &str) -> Result<Value> {
    let response = request.send().await.with_context(|| format!("{what}: request failed"))?;
    let status = response.status();
    ensure!(status.is_success(), "{what}: server answered {status}");
    response.json::<Value>().await.with_context(|| format!("{what}: response is not JSON"))
}

/// Signs in through the API and returns a ready `Authorization` header value.
async fn sign_in(client: &Client, settings: &Settings) -> Result<HeaderValue> {
    let body = fetch_json(login_request(client, settings), "sign-in").await?;
    let token = body
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("sign-in: response has no \"token\" string"))?;
    HeaderValue::from_str(&format!("Bearer {token}")).context("sign-in: token is not a valid header value")
}

/// The login request; built per call because a request builder is consumed.
fn login_request(client: &Client, settings: &Settings) -> RequestBuilder {
    client
        .post(settings.url("/api/v1/auth/login"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(settings.login_body.clone())
}

/// Lists patients once: their ids.
async fn patient_list(client: &Client, settings: &Settings, auth: &HeaderValue) -> Result<Vec<String>> {
    let list_url = settings.url(&format!("/api/v1/patients?limit={PATIENT_LIST_LIMIT}"));
    let body = fetch_json(client.get(list_url).header(AUTHORIZATION, auth.clone()), "patient list").await?;
    let ids = patient_ids(&body)?;
    ensure!(!ids.is_empty(), "patient list is empty: seed some patients before running this scenario");
    Ok(ids)
}

/// The value of a `Set-Cookie` header's cookie `name`, if the response sets it.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, v)| k.trim() == name && !v.is_empty())
        .map(|(_, v)| v.trim().to_owned())
}

/// Signs in through the web form, as a browser does: the sign-in page sets the pre-session cookie
/// and its CSRF token, the form post sets the session cookie. Returns a ready `Cookie` header.
async fn browser_sign_in(client: &Client, settings: &Settings) -> Result<HeaderValue> {
    let page = client.get(settings.url("/login")).send().await.context("sign-in page")?;
    let pre = set_cookie(&page, PRE_SESSION_COOKIE).ok_or_else(|| anyhow!("sign-in page: no pre-session cookie"))?;
    let html = page.text().await.context("sign-in page")?;
    let csrf = hidden_csrf(&html).ok_or_else(|| anyhow!("sign-in page: no csrf_token field"))?;
    let (email, password) = (settings.email.as_str(), settings.password.as_str());
    let response = client
        .post(settings.url("/login"))
        .header(COOKIE, format!("{PRE_SESSION_COOKIE}={pre}"))
        .form(&[("email", email), ("password", password), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .context("sign-in form")?;
    let status = response.status();
    let session = set_cookie(&response, SESSION_COOKIE)
        .ok_or_else(|| anyhow!("sign-in form: answered {status} without a session cookie"))?;
    HeaderValue::from_str(&format!("{SESSION_COOKIE}={session}")).context("session cookie is not a header value")
}

/// The value of the first `csrf_token` hidden field of a page.
fn hidden_csrf(html: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let rest = &html[html.find(marker)? + marker.len()..];
    rest.split('"').next().filter(|t| !t.is_empty()).map(str::to_owned)
}

/// The dosing sessions on today's floor board (the demo's day in progress).
async fn floor_sessions(client: &Client, settings: &Settings, auth: &HeaderValue) -> Result<Vec<String>> {
    let board =
        fetch_json(client.get(settings.url("/api/v1/floor")).header(AUTHORIZATION, auth.clone()), "floor").await?;
    let ids: Vec<String> = board["chairs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["sessions"].as_array().into_iter().flatten())
        .filter_map(|s| s["session_id"].as_str())
        .filter(|id| id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .map(str::to_owned)
        .collect();
    ensure!(!ids.is_empty(), "no dosing session on today's floor: run against the demo clinic");
    Ok(ids)
}

/// Extracts `items[].id` from a patient list, rejecting ids that could change
/// the request path (the server uses UUIDs, so hex and dashes suffice).
fn patient_ids(body: &Value) -> Result<Vec<String>> {
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("patient list: response has no \"items\" array"))?;
    items
        .iter()
        .map(|item| {
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("patient list: item without \"id\" string"))?;
            ensure!(
                !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
                "patient list: unexpected id {id:?}"
            );
            Ok(id.to_owned())
        })
        .collect()
}

/// What every client shares, prepared once before the clock starts: one sign-in for the whole
/// run (the server limits sign-ins per account and per address, README "Rate limits"), and the
/// ids the scenario picks from.
struct Setup {
    auth: Option<HeaderValue>,
    /// `Cookie` header of a signed-in browser session (HTML scenarios).
    cookie: Option<HeaderValue>,
    /// Ready-made URLs the clients pick from at random.
    urls: Vec<String>,
}

impl Setup {
    async fn prepare(client: &Client, settings: &Settings) -> Result<Self> {
        let mut setup = Self { auth: None, cookie: None, urls: Vec::new() };
        match settings.scenario {
            Scenario::Health | Scenario::SignIn => {}
            Scenario::PageView | Scenario::Floor => setup.auth = Some(sign_in(client, settings).await?),
            Scenario::PatientRead | Scenario::Eligibility => {
                let auth = sign_in(client, settings).await?;
                let ids = patient_list(client, settings, &auth).await?;
                let suffix = if settings.scenario == Scenario::Eligibility { "/eligibility" } else { "" };
                setup.urls = ids.iter().map(|id| settings.url(&format!("/api/v1/patients/{id}{suffix}"))).collect();
                setup.auth = Some(auth);
            }
            Scenario::PatientPage => {
                let auth = sign_in(client, settings).await?;
                let ids = patient_list(client, settings, &auth).await?;
                setup.urls = ids.iter().map(|id| settings.url(&format!("/patients/{id}"))).collect();
                setup.cookie = Some(browser_sign_in(client, settings).await?);
            }
            Scenario::SessionView | Scenario::SessionRecord | Scenario::Vitals => {
                let auth = sign_in(client, settings).await?;
                let ids = floor_sessions(client, settings, &auth).await?;
                let suffix = match settings.scenario {
                    Scenario::SessionView => "",
                    Scenario::Vitals => "/vitals",
                    _ => "/events",
                };
                setup.urls = ids.iter().map(|id| settings.url(&format!("/api/v1/sessions/{id}{suffix}"))).collect();
                setup.auth = Some(auth);
            }
        }
        Ok(setup)
    }
}

/// What one client repeats during the run, prepared before the clock starts.
enum Job {
    Health { url: String },
    SignIn,
    PageView { url: String, auth: HeaderValue },
    PatientRead { urls: Vec<String>, auth: HeaderValue, rng: XorShift },
    PatientPage { urls: Vec<String>, cookie: HeaderValue, rng: XorShift },
    Record { urls: Vec<String>, auth: HeaderValue, rng: XorShift },
    Vitals { urls: Vec<String>, auth: HeaderValue, rng: XorShift },
}

impl Job {
    /// The job of client `index`, from the shared setup.
    fn new(settings: &Settings, setup: &Setup, index: usize) -> Result<Self> {
        let auth = || setup.auth.clone().ok_or_else(|| anyhow!("not signed in"));
        let urls = setup.urls.clone();
        let rng = XorShift::seeded(index as u64);
        Ok(match settings.scenario {
            Scenario::Health => Self::Health { url: settings.url("/healthz") },
            Scenario::SignIn => Self::SignIn,
            Scenario::PageView => Self::PageView { url: settings.url("/api/v1/auth/me"), auth: auth()? },
            Scenario::Floor => Self::PageView { url: settings.url("/api/v1/floor"), auth: auth()? },
            Scenario::PatientRead | Scenario::Eligibility | Scenario::SessionView => {
                Self::PatientRead { urls, auth: auth()?, rng }
            }
            Scenario::PatientPage => Self::PatientPage {
                urls,
                cookie: setup.cookie.clone().ok_or_else(|| anyhow!("no browser session"))?,
                rng,
            },
            Scenario::SessionRecord => Self::Record { urls, auth: auth()?, rng },
            Scenario::Vitals => Self::Vitals { urls, auth: auth()?, rng },
        })
    }

    /// Builds the next request of this client's sequence.
    fn next_request(&mut self, client: &Client, settings: &Settings) -> RequestBuilder {
        match self {
            Self::Health { url } => client.get(url.as_str()),
            Self::SignIn => login_request(client, settings),
            Self::PageView { url, auth } => client.get(url.as_str()).header(AUTHORIZATION, auth.clone()),
            Self::PatientRead { urls, auth, rng } => {
                let url = &urls[rng.below(urls.len())];
                client.get(url.as_str()).header(AUTHORIZATION, auth.clone())
            }
            Self::PatientPage { urls, cookie, rng } => {
                let url = &urls[rng.below(urls.len())];
                client.get(url.as_str()).header(COOKIE, cookie.clone())
            }
            Self::Record { urls, auth, rng } => {
                let url = &urls[rng.below(urls.len())];
                client
                    .post(url.as_str())
                    .header(AUTHORIZATION, auth.clone())
                    .json(&json!({"kind": "progress_note", "text": "Benchmark note: resting quietly."}))
            }
            Self::Vitals { urls, auth, rng } => {
                let url = &urls[rng.below(urls.len())];
                // Ordinary readings that vary a little, inside every threshold: no alert.
                let jitter = rng.below(10) as u64;
                client.post(url.as_str()).header(AUTHORIZATION, auth.clone()).json(&json!({
                    "systolic": 118 + jitter, "diastolic": 76 + jitter / 2, "heart_rate": 70 + jitter,
                    "spo2": 97 + jitter % 3, "resp_rate": 14
                }))
            }
        }
    }
}

/// Tiny deterministic PRNG (xorshift64) so each client reads a reproducible
/// but different sequence of patients without pulling in `rand`.
struct XorShift(u64);

impl XorShift {
    /// Seeds from the client index via a splitmix64 step, which spreads
    /// neighbouring indices apart and never yields the forbidden zero state.
    fn seeded(index: u64) -> Self {
        let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (`n > 0`); modulo bias is irrelevant for picking ids.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Per-client tallies, merged after the run so workers never contend on a lock.
#[derive(Debug, Default)]
struct Tally {
    /// Latency in microseconds of each successful request in the window.
    latencies_us: Vec<u64>,
    /// Non-2xx responses by status code.
    statuses: BTreeMap<u16, u64>,
    /// Requests that never produced a complete response.
    transport_errors: u64,
}

impl Tally {
    fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Ok => self.latencies_us.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)),
            Outcome::Status(code) => *self.statuses.entry(code).or_default() += 1,
            Outcome::Transport => self.transport_errors += 1,
        }
    }

    fn merge(&mut self, other: Self) {
        self.latencies_us.extend(other.latencies_us);
        for (code, count) in other.statuses {
            *self.statuses.entry(code).or_default() += count;
        }
        self.transport_errors += other.transport_errors;
    }

    fn errors(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors
    }

    fn total(&self) -> u64 {
        self.latencies_us.len() as u64 + self.errors()
    }
}

/// When the shared run starts counting and when it stops.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
}

/// Runs one client back to back until the window ends. A request still in
/// flight at the end is abandoned (it would fall outside the window anyway),
/// which guarantees the loop terminates on time even against a stuck server.
async fn run_client(client: Client, settings: Arc<Settings>, mut job: Job, window: Window) -> Tally {
    let mut tally = Tally::default();
    let deadline = tokio::time::Instant::from_std(window.end);
    while Instant::now() < window.end {
        let request = job.next_request(&client, &settings);
        let started = Instant::now();
        let Ok(outcome) = tokio::time::timeout_at(deadline, execute(request)).await else {
            break;
        };
        let finished = Instant::now();
        if finished >= window.measure_from && finished <= window.end {
            tally.record(outcome, finished.duration_since(started));
        }
    }
    tally
}

/// Prepares the shared setup once, then every client's job from it.
async fn prepare_jobs(client: &Client, settings: &Settings) -> Result<Vec<Job>> {
    let setup = Setup::prepare(client, settings).await?;
    (0..settings.clients).map(|index| Job::new(settings, &setup, index)).collect()
}

/// Starts all clients on one shared clock and merges their tallies.
async fn run_load(client: &Client, settings: &Arc<Settings>, jobs: Vec<Job>) -> Result<Tally> {
    let start = Instant::now();
    let measure_from = start + settings.warmup;
    let window = Window { measure_from, end: measure_from + settings.duration };
    let mut set = JoinSet::new();
    for job in jobs {
        set.spawn(run_client(client.clone(), Arc::clone(settings), job, window));
    }
    let mut total = Tally::default();
    while let Some(joined) = set.join_next().await {
        total.merge(joined.context("client task failed")?);
    }
    Ok(total)
}

/// Fails fast with a clear message when nothing listens at the base URL,
/// instead of reporting a run made only of transport errors.
async fn preflight(client: &Client, settings: &Settings) -> Result<()> {
    client
        .get(settings.url("/healthz"))
        .send()
        .await
        .with_context(|| format!("cannot reach Kapstone at {}", settings.base))?;
    Ok(())
}

/// Nearest-rank percentile of an ascending slice: the smallest sample such
/// that at least `pct` percent of samples are <= it. `None` when empty.
fn percentile(sorted: &[u64], pct: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(pct.min(100)) * n).div_ceil(100).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Latency {
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

impl Latency {
    /// Summarises samples; sorts in place (unstable sort: equal values are
    /// interchangeable and it avoids a second buffer at millions of samples).
    fn from_samples(samples: &mut [u64]) -> Option<Self> {
        samples.sort_unstable();
        Some(Self {
            p50: percentile(samples, 50)?,
            p90: percentile(samples, 90)?,
            p99: percentile(samples, 99)?,
            max: *samples.last()?,
        })
    }
}

/// Everything the run reports.
struct Report {
    timestamp: String,
    base_url: String,
    scenario: Scenario,
    clients: usize,
    warmup_secs: u64,
    duration_secs: u64,
    tally: Tally,
    latency: Option<Latency>,
    /// The bare engine, measured just before the scenario.
    bare: Option<bare::Bare>,
}

impl Report {
    fn requests_per_sec(&self) -> f64 {
        self.tally.total() as f64 / self.duration_secs.max(1) as f64
    }

    fn ok(&self) -> u64 {
        self.tally.latencies_us.len() as u64
    }

    /// Successful requests per second: what is compared with the bare engine.
    fn ok_per_sec(&self) -> f64 {
        self.ok() as f64 / self.duration_secs.max(1) as f64
    }

    /// Human-readable table.
    fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |key: &str, value: String| {
            let _ = writeln!(out, "  {key:<14} {value}");
        };
        row("timestamp", self.timestamp.clone());
        row("base url", self.base_url.clone());
        row("scenario", self.scenario.name().to_owned());
        row("clients", self.clients.to_string());
        row("warm-up", format!("{} s (discarded)", self.warmup_secs));
        row("duration", format!("{} s (measured)", self.duration_secs));
        row("requests", self.tally.total().to_string());
        row("ok", self.ok().to_string());
        row("errors", self.error_summary());
        row("requests/s", format!("{:.1}", self.requests_per_sec()));
        if let Some(b) = &self.bare {
            row(
                "bare engine",
                format!(
                    "{:.0} commits/s (p50 {}, p99 {}; {} tasks, {} connection(s))",
                    b.commits_per_sec,
                    format_us(b.p50_us),
                    format_us(b.p99_us),
                    b.clients,
                    b.connections
                ),
            );
            row("vs bare", format!("{:.0} %", b.percent(self.ok_per_sec())));
        }
        match self.latency {
            Some(l) => {
                row("latency p50", format_us(l.p50));
                row("latency p90", format_us(l.p90));
                row("latency p99", format_us(l.p99));
                row("latency max", format_us(l.max));
            }
            None => row("latency", "no successful requests".to_owned()),
        }
        format!("kapstone-bench results\n{out}")
    }

    /// Error count with a per-status breakdown.
    fn error_summary(&self) -> String {
        let mut parts: Vec<String> =
            self.tally.statuses.iter().map(|(code, count)| format!("{code}: {count}")).collect();
        if self.tally.transport_errors > 0 {
            parts.push(format!("transport: {}", self.tally.transport_errors));
        }
        if parts.is_empty() { "0".to_owned() } else { format!("{} ({})", self.tally.errors(), parts.join(", ")) }
    }

    /// Machine-readable single-line form.
    fn json(&self) -> Value {
        let statuses: serde_json::Map<String, Value> =
            self.tally.statuses.iter().map(|(code, count)| (code.to_string(), json!(count))).collect();
        let latency =
            self.latency.map_or(Value::Null, |l| json!({ "p50": l.p50, "p90": l.p90, "p99": l.p99, "max": l.max }));
        json!({
            "timestamp": self.timestamp,
            "base_url": self.base_url,
            "scenario": self.scenario.name(),
            "clients": self.clients,
            "warmup_secs": self.warmup_secs,
            "duration_secs": self.duration_secs,
            "requests": self.tally.total(),
            "ok": self.ok(),
            "errors": self.tally.errors(),
            "errors_by_status": statuses,
            "transport_errors": self.tally.transport_errors,
            "requests_per_sec": self.requests_per_sec(),
            "latency_us": latency,
            "bare_engine": self.bare.map_or(Value::Null, |b| json!({
                "commits_per_sec": b.commits_per_sec, "p50_us": b.p50_us, "p99_us": b.p99_us,
                "clients": b.clients, "connections": b.connections,
            })),
            "ok_per_sec": self.ok_per_sec(),
            "vs_bare_percent": self.bare.map(|b| b.percent(self.ok_per_sec())),
        })
    }
}

/// Formats microseconds as milliseconds, the unit people compare by eye.
fn format_us(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

/// Current UTC time as RFC 3339, computed by hand to avoid a date dependency.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339_utc(secs)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (Hinnant's civil-from-days).
fn rfc3339_utc(unix_secs: u64) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3_600, rem % 3_600 / 60, rem % 60)
}

#[tokio::main]
async fn main() -> ExitCode {
    kapstone_web::install_tls_provider();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line; anyhow's
            // default `main` output would add a backtrace when RUST_BACKTRACE
            // is set, which hides the actual reason.
            eprintln!("kapstone-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The whole run: validate, prepare clients, load, report.
async fn run(args: Args) -> Result<()> {
    let settings = Arc::new(Settings::from_args(&args)?);
    let client = build_client(settings.clients)?;

    preflight(&client, &settings).await?;
    eprintln!("kapstone-bench: preparing {} client(s) for {}", settings.clients, settings.scenario.name());
    let jobs = prepare_jobs(&client, &settings).await?;
    let bare = match &args.bare_database_url {
        Some(url) => {
            eprintln!("kapstone-bench: measuring the bare engine for {} s", args.bare_secs);
            Some(bare::measure(url, args.bare_clients, args.bare_secs).await.context("bare engine")?)
        }
        None => None,
    };
    eprintln!("kapstone-bench: running {} s warm-up + {} s measured", args.warmup_secs, args.duration_secs);
    let timestamp = utc_now();
    let mut tally = run_load(&client, &settings, jobs).await?;
    let latency = Latency::from_samples(&mut tally.latencies_us);

    let report = Report {
        timestamp,
        base_url: settings.base.clone(),
        scenario: settings.scenario,
        clients: settings.clients,
        warmup_secs: args.warmup_secs,
        duration_secs: args.duration_secs,
        tally,
        latency,
        bare,
    };
    if args.json {
        eprint!("{}", report.table());
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percentile_of_empty_is_none() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(Latency::from_samples(&mut []), None);
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 0), Some(1));
        assert_eq!(percentile(&samples, 50), Some(50));
        assert_eq!(percentile(&samples, 90), Some(90));
        assert_eq!(percentile(&samples, 99), Some(99));
        assert_eq!(percentile(&samples, 100), Some(100));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
    }

    #[test]
    fn latency_summary_sorts_samples() {
        let mut samples = vec![900, 100, 500, 300, 700, 200, 800, 400, 600, 1_000];
        let l = Latency::from_samples(&mut samples).unwrap();
        assert_eq!(l, Latency { p50: 500, p90: 900, p99: 1_000, max: 1_000 });
    }

    #[test]
    fn accepts_only_loopback_http() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://LOCALHOST",
            "http://[::1]:8080",
            "http://127.1:8080",
        ] {
            assert!(check_local_base_url(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "http://example.com",
            "http://127.0.0.2:8080",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "https://127.0.0.1:8443",
            "http://user:pw@127.0.0.1",
            "http://127.0.0.1@example.com",
            "ftp://127.0.0.1",
            "127.0.0.1:8080",
            "not a url",
        ] {
            assert!(check_local_base_url(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn patient_ids_are_extracted_and_checked() {
        let body = json!({ "items": [{ "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" }], "next": null });
        assert_eq!(patient_ids(&body).unwrap().len(), 1);
        assert!(patient_ids(&json!({ "items": [{ "id": "../admin" }] })).is_err());
        assert!(patient_ids(&json!({})).is_err());
    }

    #[test]
    fn xorshift_is_deterministic_and_in_range() {
        let (mut a, mut b) = (XorShift::seeded(3), XorShift::seeded(3));
        for _ in 0..1_000 {
            let (x, y) = (a.below(7), b.below(7));
            assert_eq!(x, y);
            assert!(x < 7);
        }
        assert_ne!(XorShift::seeded(0).next(), XorShift::seeded(1).next());
    }

    #[test]
    fn timestamp_formats_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_735_689_599), "2024-12-31T23:59:59Z");
    }

    #[test]
    fn tally_counts_errors_by_status() {
        let mut a = Tally::default();
        a.record(Outcome::Ok, Duration::from_micros(42));
        a.record(Outcome::Status(401), Duration::ZERO);
        let mut b = Tally::default();
        b.record(Outcome::Status(401), Duration::ZERO);
        b.record(Outcome::Transport, Duration::ZERO);
        a.merge(b);
        assert_eq!(a.total(), 4);
        assert_eq!(a.errors(), 3);
        assert_eq!(a.statuses.get(&401), Some(&2));
        assert_eq!(a.latencies_us, vec![42]);
    }
}
