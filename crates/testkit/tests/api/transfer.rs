//! `kapstone export` / `kapstone import` (issue 8): every table covered, the demo clinic moved
//! SQLite -> PostgreSQL -> SQLite with identical exports and intact audit and ledger chains, and
//! refusals (non-empty target, truncated or malformed or altered files) that change nothing.

use std::path::{Path, PathBuf};

use kapstone_store::transfer::{self, MANIFEST, Manifest, TABLES};
use kapstone_store::{Backend, Db};
use kapstone_testkit::{TempDir, TestApp, TestBackend, backends, both_backends, fresh_db};

async fn migrated(backend: Backend) -> anyhow::Result<(kapstone_testkit::FreshDb, Db)> {
    let fresh = fresh_db(backend).await?;
    let db = Db::connect(&fresh.url).await?;
    db.migrate().await?;
    Ok((fresh, db))
}

async fn export_to(db: &Db, dir: &Path) -> anyhow::Result<Manifest> {
    Ok(transfer::export(db, dir, &mut |_| {}).await?)
}

async fn import_from(db: &Db, dir: &Path) -> Result<transfer::Imported, kapstone_store::StoreError> {
    transfer::import(db, dir, &mut |_, _| {}).await
}

async fn count(db: &Db, table: &str) -> anyhow::Result<i64> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
    Ok(kapstone_store::on_read!(db, |c| sqlx::query_scalar(sql).fetch_one(c).await?))
}

async fn counts(db: &Db) -> anyhow::Result<Vec<i64>> {
    let mut out = Vec::new();
    for t in TABLES {
        out.push(count(db, t.name).await?);
    }
    Ok(out)
}

async fn chains_verify(db: &Db) -> anyhow::Result<(i64, i64)> {
    let events = kapstone_store::audit::verify(db).await?.map_err(|b| anyhow::anyhow!("audit chain broken: {b}"))?;
    let locations =
        kapstone_store::ledger::verify(db).await?.map_err(|(l, b)| anyhow::anyhow!("ledger of {l} broken: {b}"))?;
    Ok((events, locations.iter().map(|l| l.1).sum()))
}

/// Every NDJSON file of `a` and `b` is byte for byte the same, and so are the manifests' tables.
fn assert_same_export(a: &Path, b: &Path) -> anyhow::Result<()> {
    let ma = transfer::read_manifest(a)?;
    let mb = transfer::read_manifest(b)?;
    assert_eq!(ma.tables, mb.tables, "manifest tables differ between {} and {}", a.display(), b.display());
    assert_eq!(ma.schema_version, mb.schema_version);
    for t in TABLES {
        let fa = std::fs::read(a.join(t.file()))?;
        let fb = std::fs::read(b.join(t.file()))?;
        assert!(fa == fb, "{} differs after the round trip", t.file());
    }
    Ok(())
}

both_backends! {
    async fn the_export_covers_every_table_and_column(backend) {
        let (_fresh, db) = migrated(backend).await?;
        assert_eq!(transfer::spec_problems(), Vec::<String>::new());
        assert_eq!(transfer::schema_problems(&db).await?, Vec::<String>::new());
        // Every table is either exported or excluded with a reason; nothing else exists.
        let live = transfer::database_tables(&db).await?;
        assert_eq!(live.len(), TABLES.len() + transfer::EXCLUDED.len(), "{live:?}");

        // A future migration that adds a table or a column fails the check (and the export).
        let exec = |sql: &'static str| {
            let db = db.clone();
            async move {
                match &db {
                    Db::Sqlite { write, .. } => sqlx::query(sql).execute(write).await.map(|_| ()),
                    Db::Postgres { pool: p, .. } => sqlx::query(sql).execute(p).await.map(|_| ()),
                }
            }
        };
        exec("CREATE TABLE future_feature (id BIGINT PRIMARY KEY)").await?;
        exec("ALTER TABLE patients ADD COLUMN nickname TEXT").await?;
        let problems = transfer::schema_problems(&db).await?;
        assert!(problems.iter().any(|p| p.contains("future_feature")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("columns of patients")), "{problems:?}");
        let dir = TempDir::new();
        let err = transfer::export(&db, &dir.0.join("out"), &mut |_| {}).await.unwrap_err();
        assert!(err.to_string().contains("future_feature"), "{err}");
        db.close().await;
        Ok(())
    }

    async fn import_refuses_a_non_empty_target_and_bad_files_changing_nothing(backend) {
        let source = TestApp::demo(TestBackend::Sqlite).await?;
        let dir = TempDir::new();
        let good = dir.0.join("export");
        export_to(&source.db, &good).await?;
        source.stop().await?;

        // A target that already holds a clinic is refused and keeps exactly what it had.
        let busy = TestApp::demo(backend).await?;
        let (busy_db, _busy_fresh) = busy.stop_keeping_db().await?;
        let before = counts(&busy_db).await?;
        let err = import_from(&busy_db, &good).await.unwrap_err().to_string();
        assert!(err.contains("already holds data") && err.contains("clinics"), "{err}");
        assert_eq!(before, counts(&busy_db).await?);
        chains_verify(&busy_db).await?;
        busy_db.close().await;

        let (_fresh, target) = migrated(backend).await?;
        let case = |name: &str| -> anyhow::Result<PathBuf> {
            let p = dir.0.join(name);
            std::fs::create_dir_all(&p)?;
            for e in std::fs::read_dir(&good)? {
                let e = e?;
                std::fs::copy(e.path(), p.join(e.file_name()))?;
            }
            Ok(p)
        };
        let lines = |p: &Path| -> anyhow::Result<Vec<String>> {
            Ok(std::fs::read_to_string(p)?.lines().map(str::to_owned).collect())
        };

        // Cut in the middle of a line.
        let cut = case("cut")?;
        let file = cut.join("audit_events.ndjson");
        let text = std::fs::read(&file)?;
        std::fs::write(&file, &text[..text.len() / 2])?;
        let err = import_from(&target, &cut).await.unwrap_err().to_string();
        assert!(err.contains("audit_events.ndjson line ") && err.contains("truncated"), "{err}");

        // Cut at a line boundary: the manifest's row count catches it.
        let short = case("short")?;
        let file = short.join("patients.ndjson");
        let mut l = lines(&file)?;
        l.pop();
        std::fs::write(&file, l.iter().map(|s| format!("{s}\n")).collect::<String>())?;
        let err = import_from(&target, &short).await.unwrap_err().to_string();
        assert!(err.contains("patients.ndjson") && err.contains("the manifest says"), "{err}");

        // Malformed line 2, and a value of the wrong form on line 1.
        let bad = case("bad")?;
        let file = bad.join("patients.ndjson");
        let mut l = lines(&file)?;
        l[1] = l[1].replace(':', "=");
        std::fs::write(&file, l.iter().map(|s| format!("{s}\n")).collect::<String>())?;
        let err = import_from(&target, &bad).await.unwrap_err().to_string();
        assert!(err.contains("patients.ndjson line 2: not JSON"), "{err}");
        let bad_ts = case("bad_ts")?;
        let file = bad_ts.join("users.ndjson");
        let mut l = lines(&file)?;
        let v: serde_json::Value = serde_json::from_str(&l[0])?;
        let created = v["created_at"].as_str().unwrap_or_default().to_owned();
        l[0] = l[0].replace(&created, "2026-01-02 03:04:05");
        std::fs::write(&file, l.iter().map(|s| format!("{s}\n")).collect::<String>())?;
        let err = import_from(&target, &bad_ts).await.unwrap_err().to_string();
        assert!(err.contains("users.ndjson line 1: column created_at"), "{err}");

        // A well-formed change the manifest does not vouch for.
        let edited = case("edited")?;
        let file = edited.join("cs_ledger_entries.ndjson");
        let l = lines(&file)?;
        let changed = l[0].replacen("\"change_ug\":", "\"change_ug\":1", 1);
        assert_ne!(changed, l[0]);
        let rest: String = l[1..].iter().map(|s| format!("{s}\n")).collect();
        std::fs::write(&file, format!("{changed}\n{rest}"))?;
        let err = import_from(&target, &edited).await.unwrap_err().to_string();
        assert!(err.contains("cs_ledger_entries.ndjson: SHA-256"), "{err}");

        // A file that checks out but breaks a constraint of the last table with rows: the
        // tables loaded before it are rolled back with it.
        let dup = case("dup")?;
        let last = TABLES
            .iter()
            .rev()
            .find(|t| !t.seeded && std::fs::metadata(dup.join(t.file())).map(|m| m.len() > 0).unwrap_or(false))
            .expect("a table with rows");
        let file = dup.join(last.file());
        let mut l = lines(&file)?;
        l.push(l[0].clone());
        let body: String = l.iter().map(|s| format!("{s}\n")).collect();
        std::fs::write(&file, &body)?;
        let mut manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dup.join(MANIFEST))?)?;
        for t in manifest["tables"].as_array_mut().expect("tables") {
            if t["name"] == last.name {
                t["rows"] = serde_json::json!(l.len());
                t["sha256"] = serde_json::json!(sha256_hex(body.as_bytes()));
            }
        }
        std::fs::write(dup.join(MANIFEST), serde_json::to_string_pretty(&manifest)?)?;
        let err = import_from(&target, &dup).await.unwrap_err().to_string();
        assert!(err.contains("database error"), "{} with a duplicate row: {err}", last.name);

        // Nothing of any attempt was written; the good export still loads.
        assert_eq!(transfer::non_empty_tables(&target).await?, Vec::<String>::new());
        assert_eq!(kapstone_store::audit::verify(&target).await?.map_err(|b| anyhow::anyhow!("{b}"))?, 0);
        let imported = import_from(&target, &good).await?;
        assert!(imported.rows > 0);
        chains_verify(&target).await?;
        target.close().await;
        Ok(())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The demo clinic goes SQLite -> PostgreSQL -> SQLite (PostgreSQL when the run has it, which
/// `.ci/run`'s PostgreSQL suite requires; SQLite -> SQLite -> SQLite otherwise). Each export is
/// byte for byte the first, each import's chains verify, and the moved clinic serves sign-ins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_clinic_round_trips_sqlite_postgres_sqlite() {
    let run = async {
        let middle = if backends().contains(&Backend::Postgres) { Backend::Postgres } else { Backend::Sqlite };
        let source = TestApp::demo(TestBackend::Sqlite).await?;
        // Some reads and writes after seeding, so sessions and read audits exist too.
        source.token("nurse@demo.kapstone.test").await?;
        let (source_db, _source_fresh) = source.stop_keeping_db().await?;
        let source_chains = chains_verify(&source_db).await?;
        assert!(source_chains.0 > 0 && source_chains.1 > 0, "{source_chains:?}");
        let dir = TempDir::new();
        let first = dir.0.join("1-sqlite");
        let manifest = export_to(&source_db, &first).await?;
        assert_eq!(manifest.source_backend, "sqlite");
        let source_counts = counts(&source_db).await?;
        for (t, n) in manifest.tables.iter().zip(&source_counts) {
            assert_eq!(t.rows, u64::try_from(*n)?, "{}", t.name);
        }
        let filled = manifest.tables.iter().filter(|t| t.rows > 0).count();
        assert!(filled >= 35, "the demo should fill most tables, filled {filled} of {}", manifest.tables.len());
        source_db.close().await;

        // Into PostgreSQL, then out again.
        let (mid_fresh, mid) = migrated(middle).await?;
        let imported = import_from(&mid, &first).await?;
        assert_eq!(imported.rows, manifest.tables.iter().map(|t| t.rows).sum::<u64>());
        assert_eq!(chains_verify(&mid).await?, source_chains);
        assert_eq!(counts(&mid).await?, source_counts);
        let second = dir.0.join("2-middle");
        let m2 = export_to(&mid, &second).await?;
        assert_eq!(m2.source_backend, if middle == Backend::Postgres { "postgres" } else { "sqlite" });
        assert_same_export(&first, &second)?;
        // A second import into the same database is refused.
        let err = import_from(&mid, &second).await.unwrap_err().to_string();
        assert!(err.contains("already holds data"), "{err}");
        mid.close().await;
        // The moved clinic works: the demo accounts sign in on it.
        let served = TestApp::spawn_on(mid_fresh, kapstone_web::ServerConfig::default()).await?;
        served.token("prescriber@demo.kapstone.test").await?;
        served.stop().await?;

        // Back into a fresh SQLite.
        let (_last_fresh, last) = migrated(Backend::Sqlite).await?;
        import_from(&last, &second).await?;
        assert_eq!(chains_verify(&last).await?, source_chains);
        assert_eq!(counts(&last).await?, source_counts);
        let third = dir.0.join("3-sqlite");
        export_to(&last, &third).await?;
        assert_same_export(&first, &third)?;
        last.close().await;
        anyhow::Ok(())
    };
    if let Err(e) = run.await {
        panic!("round trip: {e:#}");
    }
}
