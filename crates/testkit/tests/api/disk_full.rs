//! Fail-stop on a full disk (issue 9): the SQLite database lives on a small tmpfs that the test
//! fills. Writes are refused with 503 and store nothing, reads that need no write keep working,
//! and writes resume, without a restart, once space is freed.
//!
//! Mounting needs root (CI runs as root). Where mounting is not permitted the test fails, unless
//! `KAPSTONE_SKIP_DISK_FULL_TEST=1` says to skip it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use kapstone_testkit::{FreshDb, TestApp, TestBackend};
use serde_json::{Value, json};

/// A tmpfs mounted for the test, unmounted on drop (also when the test fails).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("kapstone-disk-full-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self(dir))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Writes zeros to `path` until the file system has no room left; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    let mut written = 0;
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    // Single bytes fill the last partial block.
    while f.write(&[0]).is_ok_and(|n| n == 1) {
        written += 1;
    }
    let _ = f.sync_all();
    written
}

fn patient(given: &str) -> Value {
    json!({"given_name": given, "family_name": "Diskfull", "birth_date": "1979-09-09", "sex_at_birth": "female"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_503_keeps_reads_and_recovers_without_restart() {
    if !kapstone_testkit::backends().contains(&TestBackend::Sqlite) {
        return;
    }
    let disk = match SmallDisk::mount("16M") {
        Ok(d) => d,
        Err(e) if std::env::var("KAPSTONE_SKIP_DISK_FULL_TEST").is_ok_and(|v| v == "1") => {
            eprintln!("disk-full test skipped (KAPSTONE_SKIP_DISK_FULL_TEST=1): cannot mount a tmpfs: {e}");
            return;
        }
        Err(e) => panic!(
            "the disk-full test mounts a small tmpfs and needs root (CI runs as root): {e}. \
             Set KAPSTONE_SKIP_DISK_FULL_TEST=1 to skip it on this machine."
        ),
    };
    let fresh = FreshDb::sqlite_at(disk.0.join("kapstone.db"));
    let app = TestApp::spawn_on(fresh, kapstone_web::ServerConfig::default()).await.unwrap();
    app.seed().await.unwrap();
    let nurse = app.token("nurse@demo.kapstone.test").await.unwrap();
    let url = app.url("/api/v1/patients");
    let post = |given: String, key: Option<&'static str>| {
        let mut req = app.client().post(&url).bearer_auth(&nurse).json(&patient(&given));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send()
    };
    assert_eq!(post("Before".into(), None).await.unwrap().status(), 201);

    let filler = disk.0.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0);

    // The write-ahead log may still have room for a few commits; the first refusal comes soon.
    let mut refused = None;
    for i in 0..500 {
        let resp = post(format!("Fill{i}"), None).await.unwrap();
        match resp.status().as_u16() {
            201 => continue,
            503 => {
                refused = Some(resp.json::<Value>().await.unwrap());
                break;
            }
            other => panic!("write {i} with the disk full: {other} {}", resp.text().await.unwrap_or_default()),
        }
    }
    let refused = refused.expect("a write is refused once the disk is full");
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("storage is full") && message.contains("nothing was saved"), "{message}");

    // From now on every write is refused whole: no patient, no audit event, no key.
    let patients = app.count("patients").await.unwrap();
    let events = app.count("audit_events").await.unwrap();
    let keys = app.count("idempotency_keys").await.unwrap();
    for i in 0..3 {
        let resp = post(format!("Refused{i}"), Some("disk-full-1")).await.unwrap();
        assert_eq!(resp.status(), 503, "{}", resp.text().await.unwrap_or_default());
    }
    assert_eq!(app.count("patients").await.unwrap(), patients);
    assert_eq!(app.count("audit_events").await.unwrap(), events);
    assert_eq!(app.count("idempotency_keys").await.unwrap(), keys);
    assert_eq!(app.count("patients WHERE given_name LIKE 'Refused%'").await.unwrap(), 0);

    // Reads that need no write keep working: reference content, the registry, the health check.
    for path in ["/api/v1/protocols", "/api/v1/appointment-types", "/api/v1/auth/me"] {
        let resp = app.get_bearer(&nurse, path).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}: {}", resp.text().await.unwrap_or_default());
    }
    assert_eq!(app.client().get(app.url("/healthz")).send().await.unwrap().status(), 200);
    // A read of a patient's record needs its audit event stored first; without room it is
    // refused the same way rather than answered unaudited.
    let list = app.get_bearer(&nurse, "/api/v1/patients").await.unwrap();
    assert!(matches!(list.status().as_u16(), 200 | 503), "{}", list.status());

    // Space comes back: writes resume in the same server process, and the key refused while the
    // disk was full was never used up.
    std::fs::remove_file(&filler).unwrap();
    let resp = post("Refused0".into(), Some("disk-full-1")).await.unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap_or_default());
    assert!(resp.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.count("patients WHERE given_name = 'Refused0'").await.unwrap(), 1);
    assert_eq!(app.get_bearer(&nurse, "/api/v1/patients").await.unwrap().status(), 200);

    let Some(check) = (match &app.db {
        kapstone_store::Db::Sqlite { read, .. } => Some(
            sqlx::query_scalar::<_, String>("PRAGMA integrity_check")
                .fetch_one(&mut *read.acquire().await.unwrap())
                .await
                .unwrap(),
        ),
        kapstone_store::Db::Postgres { .. } => None,
    }) else {
        unreachable!("a SQLite database")
    };
    assert_eq!(check, "ok");
    kapstone_store::audit::verify(&app.db).await.unwrap().unwrap();
    kapstone_store::ledger::verify(&app.db).await.unwrap().map_err(|(l, e)| format!("{l}: {e}")).unwrap();
    app.stop().await.unwrap();
    drop(disk);
}
