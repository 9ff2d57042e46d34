//! The `kapstone` binary as an operator uses it: accounts from stdin, audit verification with
//! exit codes, backup and restore, data generation, and a server that stops cleanly on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_kapstone");

struct Dir(PathBuf);
impl Dir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!("kapstone-cli-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    fn url(&self, name: &str) -> String {
        format!("sqlite://{}", self.0.join(name).display())
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn kapstone(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("KAPSTONE_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn user_add_reads_the_password_from_stdin_and_audit_verify_checks_the_chain() {
    let dir = Dir::new();
    let url = dir.url("k.db");
    let add = kapstone(
        &[
            "user",
            "add",
            "--email",
            "first.admin@clinic.test",
            "--name",
            "First Admin",
            "--role",
            "admin",
            "--database-url",
            &url,
        ],
        Some("a long first password\n"),
    );
    assert!(add.status.success(), "{}", stderr(&add));
    assert!(stdout(&add).contains("created"));

    let weak = kapstone(
        &[
            "user",
            "add",
            "--email",
            "second@clinic.test",
            "--name",
            "Second",
            "--role",
            "nurse",
            "--database-url",
            &url,
        ],
        Some("short\n"),
    );
    assert_eq!(weak.status.code(), Some(2));
    assert!(stderr(&weak).contains("password:"), "{}", stderr(&weak));

    let role = kapstone(
        &[
            "user",
            "add",
            "--email",
            "third@clinic.test",
            "--name",
            "Third",
            "--role",
            "janitor",
            "--database-url",
            &url,
        ],
        Some("a long enough password\n"),
    );
    assert_eq!(role.status.code(), Some(2));
    assert!(stderr(&role).contains("role:"), "{}", stderr(&role));

    let ok = kapstone(&["audit", "verify", "--database-url", &url], None);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(stdout(&ok).trim(), "1 events, chain intact");

    let list = kapstone(&["user", "list", "--database-url", &url], None);
    assert!(stdout(&list).contains("first.admin@clinic.test"));
}

async fn tamper(path: &Path) {
    let url = format!("sqlite://{}", path.display());
    let db = kapstone_store::Db::connect(&url.parse().unwrap()).await.unwrap();
    if let kapstone_store::Db::Sqlite { write, .. } = &db {
        sqlx::query("DROP TRIGGER audit_events_no_update").execute(write).await.unwrap();
        sqlx::query("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 2").execute(write).await.unwrap();
    }
    db.close().await;
}

#[test]
fn audit_verify_exits_1_and_names_the_first_altered_event() {
    let dir = Dir::new();
    let url = dir.url("k.db");
    let demo = kapstone(&["demo", "--database-url", &url, "--password", "demo password 2026"], None);
    assert!(demo.status.success(), "{}", stderr(&demo));
    assert!(stdout(&demo).contains("admin@demo.kapstone.test"));
    tokio::runtime::Runtime::new().unwrap().block_on(tamper(&dir.0.join("k.db")));
    let bad = kapstone(&["audit", "verify", "--database-url", &url], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout(&bad).contains("event 2 was altered"), "{}", stdout(&bad));
}

async fn tamper_ledger(path: &Path) {
    let url = format!("sqlite://{}", path.display());
    let db = kapstone_store::Db::connect(&url.parse().unwrap()).await.unwrap();
    if let kapstone_store::Db::Sqlite { write, .. } = &db {
        sqlx::query("DROP TRIGGER cs_ledger_entries_no_delete").execute(write).await.unwrap();
        sqlx::query("DELETE FROM cs_ledger_entries WHERE seq = 5").execute(write).await.unwrap();
    }
    db.close().await;
}

#[test]
fn ledger_verify_exits_0_on_the_demo_and_1_when_an_entry_is_deleted() {
    let dir = Dir::new();
    let url = dir.url("k.db");
    let demo = kapstone(&["demo", "--database-url", &url, "--password", "demo password 2026"], None);
    assert!(demo.status.success(), "{}", stderr(&demo));
    let ok = kapstone(&["ledger", "verify", "--database-url", &url], None);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("every chain intact"), "{}", stdout(&ok));
    tokio::runtime::Runtime::new().unwrap().block_on(tamper_ledger(&dir.0.join("k.db")));
    let bad = kapstone(&["ledger", "verify", "--database-url", &url], None);
    assert_eq!(bad.status.code(), Some(1), "{}", stdout(&bad));
    assert!(stdout(&bad).contains("ledger entry 5 is missing"), "{}", stdout(&bad));
}

#[test]
fn backup_then_restore_gives_an_intact_copy_and_refuses_to_overwrite() {
    let dir = Dir::new();
    let url = dir.url("live.db");
    assert!(kapstone(&["demo", "--database-url", &url, "--scale", "200"], None).status.success());
    let out = dir.0.join("nightly.backup");
    let b = kapstone(&["backup", "--database-url", &url, "--out", out.to_str().unwrap()], None);
    assert!(b.status.success(), "{}", stderr(&b));
    let target = dir.url("restored/kapstone.db");
    let r = kapstone(&["restore", out.to_str().unwrap(), "--database-url", &target], None);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stdout(&r).contains("audit chain intact"), "{}", stdout(&r));
    let again = kapstone(&["restore", out.to_str().unwrap(), "--database-url", &url], None);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already holds a database"));
}

#[test]
fn demo_scale_is_deterministic() {
    let (a, b) = (Dir::new(), Dir::new());
    for d in [&a, &b] {
        let o = kapstone(&["demo", "--database-url", &d.url("k.db"), "--scale", "100"], None);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("Generated 100 synthetic patients"));
    }
    let names = |d: &Dir| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let db = kapstone_store::Db::connect(&d.url("k.db").parse().unwrap()).await.unwrap();
            let rows: Vec<(String, String, String)> = match &db {
                kapstone_store::Db::Sqlite { read, .. } => sqlx::query_as(
                    "SELECT mrn, given_name, family_name FROM patients WHERE mrn > 'K000012' ORDER BY mrn",
                )
                .fetch_all(&mut *read.acquire().await.unwrap())
                .await
                .unwrap(),
                kapstone_store::Db::Postgres { .. } => unreachable!(),
            };
            db.close().await;
            rows
        })
    };
    let (x, y) = (names(&a), names(&b));
    assert_eq!(x.len(), 100);
    assert_eq!(x, y);
}

#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    let dir = Dir::new();
    let url = dir.url("k.db");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--demo",
            "--demo-password",
            "demo password 2026",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let addr = loop {
        let line = lines.next().expect("server exited early").unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("Kapstone is running at http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    assert!(printed.contains("patient1@demo.kapstone.test"), "{printed}");
    assert!(printed.contains("password for every demo account: demo password 2026"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    kapstone_web::install_tls_provider();
    let status = rt.block_on(async { reqwest::get(format!("http://{addr}/healthz")).await.unwrap().status() });
    assert_eq!(status, 200);
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let code = child.wait().unwrap();
    assert!(code.success(), "graceful shutdown exits 0, got {code:?}");
    assert!(dir.0.join("k.db").exists());
}

#[test]
fn an_operator_can_deactivate_and_reset_accounts_from_the_command_line() {
    let dir = Dir::new();
    let url = dir.url("k.db");
    assert!(kapstone(&["demo", "--database-url", &url, "--password", "demo password 2026"], None).status.success());
    let off = kapstone(
        &["user", "update", "--email", "nurse@demo.kapstone.test", "--active", "false", "--database-url", &url],
        None,
    );
    assert!(off.status.success(), "{}", stderr(&off));
    let list = stdout(&kapstone(&["user", "list", "--database-url", &url], None));
    let nurse = list.lines().find(|l| l.contains("nurse@demo.kapstone.test")).unwrap();
    assert!(nurse.contains("deactivated"), "{nurse}");

    let bad_role = kapstone(
        &["user", "update", "--email", "nurse@demo.kapstone.test", "--role", "patient", "--database-url", &url],
        None,
    );
    assert_eq!(bad_role.status.code(), Some(2));
    assert!(stderr(&bad_role).contains("role:"), "{}", stderr(&bad_role));

    let unknown = kapstone(
        &["user", "reset-password", "--email", "nobody@demo.kapstone.test", "--database-url", &url],
        Some("a new long passphrase\n"),
    );
    assert_eq!(unknown.status.code(), Some(2));
    let weak = kapstone(
        &["user", "reset-password", "--email", "admin@demo.kapstone.test", "--database-url", &url],
        Some("short\n"),
    );
    assert_eq!(weak.status.code(), Some(2));
    let reset = kapstone(
        &["user", "reset-password", "--email", "admin@demo.kapstone.test", "--database-url", &url],
        Some("a new long passphrase\n"),
    );
    assert!(reset.status.success(), "{}", stderr(&reset));

    let verify = kapstone(&["audit", "verify", "--database-url", &url], None);
    assert_eq!(verify.status.code(), Some(0));
}

#[test]
fn export_then_import_moves_the_clinic_and_refuses_a_non_empty_target() {
    let dir = Dir::new();
    let url = dir.url("source.db");
    assert!(kapstone(&["demo", "--database-url", &url, "--scale", "200"], None).status.success());
    let out = dir.0.join("export");
    let e = kapstone(&["export", "--database-url", &url, "--out", out.to_str().unwrap()], None);
    assert!(e.status.success(), "{}", stderr(&e));
    assert!(stdout(&e).contains("exported ") && out.join("manifest.json").is_file(), "{}", stdout(&e));
    // Never into a directory that holds something.
    let again = kapstone(&["export", "--database-url", &url, "--out", out.to_str().unwrap()], None);
    assert!(!again.status.success() && stderr(&again).contains("is not empty"), "{}", stderr(&again));

    let target = dir.url("target.db");
    let i = kapstone(&["import", out.to_str().unwrap(), "--database-url", &target], None);
    assert!(i.status.success(), "{}{}", stdout(&i), stderr(&i));
    assert!(stdout(&i).contains("audit chain intact") && stdout(&i).contains("ledger intact"), "{}", stdout(&i));
    let v = kapstone(&["audit", "verify", "--database-url", &target], None);
    assert!(v.status.success(), "{}", stdout(&v));
    let l = kapstone(&["ledger", "verify", "--database-url", &target], None);
    assert!(l.status.success(), "{}", stdout(&l));

    // The same export into the now populated target is refused, with exit code 1.
    let twice = kapstone(&["import", out.to_str().unwrap(), "--database-url", &target], None);
    assert_eq!(twice.status.code(), Some(1));
    assert!(stderr(&twice).contains("already holds data"), "{}", stderr(&twice));
}
