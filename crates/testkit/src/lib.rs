//! Test harness: starts the real Kapstone server on port 0 against a fresh database.
//!
//! SQLite always; PostgreSQL too when `KAPSTONE_TEST_POSTGRES_URL` points at a server where the
//! user may create databases (each test gets its own). `KAPSTONE_TEST_BACKENDS=postgres` runs
//! only PostgreSQL; `KAPSTONE_REQUIRE_POSTGRES=1` (set by `.ci/run`) fails instead of skipping
//! when the URL is missing.

pub mod openapi_check;

use std::path::PathBuf;

use kapstone_store::{Backend, Db, DbUrl};
use kapstone_web::{AppState, ServerConfig};
use tokio::sync::oneshot;

pub use kapstone_store::Backend as TestBackend;

/// The password of every demo account in tests.
pub const PASSWORD: &str = "demo password 2026";

/// The backends this run covers.
pub fn backends() -> Vec<Backend> {
    let only = std::env::var("KAPSTONE_TEST_BACKENDS").unwrap_or_default();
    let pg = std::env::var("KAPSTONE_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty());
    if pg.is_none() && std::env::var("KAPSTONE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("KAPSTONE_REQUIRE_POSTGRES=1 but KAPSTONE_TEST_POSTGRES_URL is not set");
    }
    let mut out = Vec::new();
    if only.is_empty() || only.contains("sqlite") {
        out.push(Backend::Sqlite);
    }
    if pg.is_some() && (only.is_empty() || only.contains("postgres")) {
        out.push(Backend::Postgres);
    }
    out
}

/// A fresh, empty database of `backend`; keeps a temp dir alive for SQLite.
pub struct FreshDb {
    pub url: DbUrl,
    _dir: Option<TempDir>,
}

impl FreshDb {
    /// A SQLite database at `path`, in a directory the caller owns (e.g. a small tmpfs).
    pub fn sqlite_at(path: PathBuf) -> Self {
        Self { url: DbUrl::Sqlite(path), _dir: None }
    }
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(format!("kapstone-test-{}", uuid::Uuid::now_v7().simple()));
        let _ = std::fs::create_dir_all(&p);
        Self(p)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl FreshDb {
    /// The same database for a second server; the first `FreshDb` keeps it alive.
    pub fn shared(&self) -> FreshDb {
        FreshDb { url: self.url.clone(), _dir: None }
    }
}

pub async fn fresh_db(backend: Backend) -> anyhow::Result<FreshDb> {
    match backend {
        Backend::Sqlite => {
            let dir = TempDir::new();
            let url = DbUrl::Sqlite(dir.0.join("kapstone.db"));
            Ok(FreshDb { url, _dir: Some(dir) })
        }
        Backend::Postgres => {
            let admin = std::env::var("KAPSTONE_TEST_POSTGRES_URL")?;
            let name = format!("kapstone_test_{}", uuid::Uuid::now_v7().simple());
            let mut conn: sqlx::PgConnection = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await?;
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await?;
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let url: DbUrl = format!("{base}/{name}").parse().map_err(|e: String| anyhow::anyhow!(e))?;
            Ok(FreshDb { url, _dir: None })
        }
    }
}

/// Serves `state` on another port of this process (tests that swap a part of a [`TestApp`]'s
/// state: its in-process key locks, its floor watcher); the base URL. It runs until the test ends.
pub async fn serve_state(state: AppState) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = kapstone_web::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });
    Ok(format!("http://{addr}"))
}

/// A running server and a way to talk to it.
pub struct TestApp {
    pub backend: Backend,
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub db: Db,
    pub state: AppState,
    pub fresh: FreshDb,
    /// Responses to `/api/v1/...` that do not match the OpenAPI document; the test fails on them.
    pub violations: openapi_check::Violations,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> anyhow::Result<Self> {
        Self::spawn_with(backend, ServerConfig::default()).await
    }

    pub async fn spawn_with(backend: Backend, config: ServerConfig) -> anyhow::Result<Self> {
        let fresh = fresh_db(backend).await?;
        Self::spawn_on(fresh, config).await
    }

    /// Starts a server on an existing database (e.g. a second process on the same PostgreSQL).
    pub async fn spawn_on(fresh: FreshDb, config: ServerConfig) -> anyhow::Result<Self> {
        let db = Db::connect(&fresh.url).await?;
        db.migrate().await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::new(db.clone(), config);
        let violations = openapi_check::Violations::default();
        let seen = violations.clone();
        let check = move |app: axum::Router| {
            app.layer(axum::middleware::from_fn(move |req, next| {
                openapi_check::validate_api_responses(seen.clone(), req, next)
            }))
        };
        let shutdown = async move {
            let _ = rx.await;
        };
        let server = tokio::spawn(kapstone_web::launch_with_listener_layered(state.clone(), listener, shutdown, check));
        Ok(Self {
            backend: fresh.url.backend(),
            base: format!("http://{addr}"),
            addr,
            db,
            state,
            fresh,
            violations,
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    /// Spawns and seeds the demo clinic (password [`PASSWORD`]).
    pub async fn demo(backend: Backend) -> anyhow::Result<Self> {
        let app = Self::spawn(backend).await?;
        app.seed().await?;
        Ok(app)
    }

    pub async fn demo_with(backend: Backend, config: ServerConfig) -> anyhow::Result<Self> {
        let app = Self::spawn_with(backend, config).await?;
        app.seed().await?;
        Ok(app)
    }

    pub async fn seed(&self) -> anyhow::Result<kapstone_web::app::demo::DemoSeed> {
        kapstone_web::app::demo::seed_demo(&self.state, PASSWORD).await.map_err(|e| anyhow::anyhow!("{e}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client that keeps cookies and does not follow redirects (tests look at them).
    pub fn browser(&self) -> reqwest::Client {
        kapstone_web::install_tls_provider();
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    }

    /// A client without cookies.
    pub fn client(&self) -> reqwest::Client {
        kapstone_web::install_tls_provider();
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default()
    }

    pub async fn api_login(&self, email: &str, password: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .client()
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await?)
    }

    /// Signs in through the API and returns the bearer token.
    pub async fn token(&self, email: &str) -> anyhow::Result<String> {
        let resp = self.api_login(email, PASSWORD).await?;
        anyhow::ensure!(resp.status() == 200, "sign-in of {email} failed: {}", resp.status());
        let body: serde_json::Value = resp.json().await?;
        body["token"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no token"))
    }

    /// A bearer token for the demo account of every role, in `Role::ALL` order (the patient is
    /// the first demo patient).
    pub async fn tokens_by_role(&self) -> anyhow::Result<Vec<(kapstone_domain::Role, String)>> {
        let mut tokens = Vec::new();
        for role in kapstone_domain::Role::ALL {
            let email = match role {
                kapstone_domain::Role::Patient => "patient1@demo.kapstone.test".to_owned(),
                r => format!("{}@demo.kapstone.test", r.as_str()),
            };
            tokens.push((role, self.token(&email).await?));
        }
        Ok(tokens)
    }

    pub async fn get_bearer(&self, token: &str, path: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self.client().get(self.url(path)).bearer_auth(token).send().await?)
    }

    /// `GET path` with a bearer token: the status and the JSON body (null when there is none).
    pub async fn get_json(&self, token: &str, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        Self::status_and_json(self.get_bearer(token, path).await?).await
    }

    /// `POST path` with a bearer token and a JSON body: the status and the JSON answer.
    pub async fn post_json(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        self.send_json(reqwest::Method::POST, token, path, body).await
    }

    /// `PUT path` with a bearer token and a JSON body: the status and the JSON answer.
    pub async fn put_json(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        self.send_json(reqwest::Method::PUT, token, path, body).await
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let r = self.client().request(method, self.url(path)).bearer_auth(token).json(&body).send().await?;
        Self::status_and_json(r).await
    }

    /// The patient id of a portal account's token (from `/api/v1/portal/me`).
    pub async fn portal_patient_id(&self, token: &str) -> anyhow::Result<String> {
        let (status, me) = self.get_json(token, "/api/v1/portal/me").await?;
        match me["id"].as_str() {
            Some(id) if status == 200 => Ok(id.to_owned()),
            _ => anyhow::bail!("not a portal account: {status} {me}"),
        }
    }

    async fn status_and_json(r: reqwest::Response) -> anyhow::Result<(u16, serde_json::Value)> {
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(serde_json::Value::Null)))
    }

    /// Walks every page of a cursor-paged list (`path` may carry filters; `limit` is added) and
    /// returns every item, in order. Fails on a page over the limit, a walk that does not end, or
    /// a last page whose `next_cursor` is not null.
    pub async fn walk_pages(&self, token: &str, path: &str, limit: usize) -> anyhow::Result<Vec<serde_json::Value>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
                None => format!("{path}{sep}limit={limit}"),
            };
            let resp = self.get_bearer(token, &url).await?;
            let status = resp.status();
            let page: serde_json::Value = resp.json().await?;
            anyhow::ensure!(status == 200, "{url}: {status} {page}");
            let got = page["items"].as_array().cloned().unwrap_or_default();
            anyhow::ensure!(got.len() <= limit, "{url}: {} items on a page of {limit}", got.len());
            let next = &page["next_cursor"];
            anyhow::ensure!(next.is_null() || next.is_string(), "{url}: next_cursor {next}");
            items.extend(got);
            match next.as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(items),
            }
        }
        anyhow::bail!("{path}: the walk does not end")
    }

    /// [`Self::walk_pages`], keeping `field` of each item; fails when an item comes twice.
    pub async fn walk_ids(&self, token: &str, path: &str, limit: usize, field: &str) -> anyhow::Result<Vec<String>> {
        let items = self.walk_pages(token, path, limit).await?;
        let ids: Vec<String> = items.iter().map(|i| i[field].to_string()).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        anyhow::ensure!(unique.len() == ids.len(), "{path}: an item came twice: {ids:?}");
        Ok(ids)
    }

    /// A paged list refuses a bad `limit` (0, 501, not a number) and a cursor it did not make with
    /// a 422 naming the parameter.
    pub async fn refuses_bad_paging(&self, token: &str, path: &str) -> anyhow::Result<()> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let cases = [
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("limit=x", "limit"),
            ("cursor=zz", "cursor"),
            ("cursor=7b7d", "cursor"),
            ("cursor=not-a-cursor", "cursor"),
        ];
        // A cursor in the patient list's shape (hex of its JSON key) whose name holds a NUL:
        // refused before any query (PostgreSQL cannot compare text with a NUL: it was a 500).
        let nul = format!(
            "cursor={}",
            br#"{"family_name":"a\u0000","given_name":"b","id":"01a21565-0000-7000-8000-000000000000"}"#
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let cases = cases.iter().map(|(q, f)| ((*q).to_owned(), *f)).chain([(nul, "cursor")]);
        for (query, field) in cases {
            let resp = self.get_bearer(token, &format!("{path}{sep}{query}")).await?;
            let status = resp.status();
            let e: serde_json::Value = resp.json().await?;
            anyhow::ensure!(status == 422 && e["error"]["field"] == field, "{path} {query}: {status} {e}");
        }
        Ok(())
    }

    /// Signs in through the web form; returns the cookie-keeping client and its CSRF token.
    pub async fn browser_login(
        &self,
        email: &str,
        password: &str,
    ) -> anyhow::Result<(reqwest::Client, reqwest::Response)> {
        let c = self.browser();
        let page = c.get(self.url("/login")).send().await?.text().await?;
        let csrf = hidden_csrf(&page).ok_or_else(|| anyhow::anyhow!("no csrf on /login"))?;
        let resp = c
            .post(self.url("/login"))
            .form(&[("email", email), ("password", password), ("csrf_token", csrf.as_str())])
            .send()
            .await?;
        Ok((c, resp))
    }

    /// The CSRF token of a signed-in browser client (read from a page it can see).
    pub async fn csrf_of(&self, c: &reqwest::Client) -> anyhow::Result<String> {
        let page = c.get(self.url("/account")).send().await?.text().await?;
        hidden_csrf(&page).ok_or_else(|| anyhow::anyhow!("no csrf on /account"))
    }

    /// Runs SQL directly against the database, as someone with database access would.
    pub async fn raw_sql(&self, sql: &str) -> anyhow::Result<u64> {
        let stmt = sqlx::AssertSqlSafe(sql.to_owned());
        Ok(match &self.db {
            Db::Sqlite { write, .. } => sqlx::query(stmt).execute(write).await?.rows_affected(),
            Db::Postgres { pool: p, .. } => sqlx::query(stmt).execute(p).await?.rows_affected(),
        })
    }

    /// Makes every session's last password entry 20 minutes old, so signing and exporting need
    /// a re-authentication (README, "Re-authentication").
    pub async fn age_authentication(&self) -> anyhow::Result<()> {
        let old = kapstone_domain::UtcTs::now().plus(time::Duration::minutes(-20));
        let sql = match self.backend {
            Backend::Sqlite => format!("UPDATE sessions SET authenticated_at = {}", old.unix_micros()),
            Backend::Postgres => "UPDATE sessions SET authenticated_at = now() - interval '20 minutes'".to_owned(),
        };
        self.raw_sql(&sql).await?;
        Ok(())
    }

    pub async fn count(&self, table: &str) -> anyhow::Result<i64> {
        let stmt = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        Ok(kapstone_store::on_read!(&self.db, |c| sqlx::query_scalar(stmt).fetch_one(c).await?))
    }

    /// Stops the server and hands back its database (still connected) and what keeps it alive,
    /// for checks that must not race the server's background jobs.
    pub async fn stop_keeping_db(mut self) -> anyhow::Result<(Db, FreshDb)> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await??;
        }
        self.fail_on_violations()?;
        let url = self.fresh.url.clone();
        let fresh = std::mem::replace(&mut self.fresh, FreshDb { url, _dir: None });
        Ok((self.db.clone(), fresh))
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await??;
        }
        self.fail_on_violations()
    }

    /// Takes the OpenAPI violations seen so far (for a test that provokes one on purpose).
    pub fn take_violations(&self) -> Vec<String> {
        self.violations.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }

    fn fail_on_violations(&self) -> anyhow::Result<()> {
        let seen = self.take_violations();
        anyhow::ensure!(
            seen.is_empty(),
            "{} response(s) did not match the OpenAPI document:\n{}",
            seen.len(),
            seen.join("\n")
        );
        Ok(())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // A test that never calls `stop()` still fails on a response the document does not describe.
        if !std::thread::panicking()
            && let Err(e) = self.fail_on_violations()
        {
            panic!("{e}");
        }
    }
}

/// The value of the first `csrf_token` hidden field in a page.
pub fn hidden_csrf(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf_token\" value=\"")?;
    let rest = &html[at + "name=\"csrf_token\" value=\"".len()..];
    rest.split('"').next().map(str::to_owned)
}

/// The current TOTP code for a base32 secret.
pub fn totp_now(secret: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    kapstone_web::auth::totp::code_at(secret, now).unwrap_or_default()
}

/// Runs each async test body once per backend in [`backends`].
#[macro_export]
macro_rules! both_backends {
    ($($(#[$m:meta])* async fn $name:ident($b:ident) $body:block)*) => {
        $(
            $(#[$m])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                for $b in $crate::backends() {
                    let run = async { $body };
                    let result: anyhow::Result<()> = run.await;
                    if let Err(e) = result {
                        panic!("{} on {:?}: {e:#}", stringify!($name), $b);
                    }
                }
            }
        )*
    };
}
