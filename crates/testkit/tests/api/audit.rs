use kapstone_domain::audit::ChainBreak;
use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use serde_json::Value;

async fn first_patient(app: &TestApp, token: &str) -> anyhow::Result<Value> {
    let list: Value = app.get_bearer(token, "/api/v1/patients?limit=5").await?.json().await?;
    Ok(list["items"][0].clone())
}

/// Removes the database's own guards against changing the log, as someone with database access
/// could.
async fn drop_audit_guards(app: &TestApp) -> anyhow::Result<()> {
    match app.backend {
        kapstone_store::Backend::Sqlite => {
            app.raw_sql("DROP TRIGGER audit_events_no_update").await?;
            app.raw_sql("DROP TRIGGER audit_events_no_delete").await?;
        }
        kapstone_store::Backend::Postgres => {
            app.raw_sql("DROP TRIGGER audit_events_no_update ON audit_events").await?;
        }
    }
    Ok(())
}

/// Changes event `seq` and stores the hash recomputed for the changed content.
async fn rewrite_with_recomputed_hash(app: &TestApp, seq: i64) -> anyhow::Result<()> {
    let f = kapstone_store::audit::AuditFilter::default();
    let mut e = kapstone_store::audit::search_oldest_first(&app.db, &f, seq - 1, 1).await?.remove(0);
    assert_eq!(e.seq, seq);
    e.reason = Some("rewritten".into());
    let prev = kapstone_domain::audit::Hash::from_hex(&e.prev_hash).unwrap();
    let hash = e.compute_hash(prev).to_hex();
    app.raw_sql(&format!("UPDATE audit_events SET reason = 'rewritten', hash = '{hash}' WHERE seq = {seq}")).await?;
    Ok(())
}

fn read_events(n: usize, entity: &str) -> Vec<kapstone_domain::audit::NewAuditEvent> {
    use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
    (0..n)
        .map(|i| {
            let mut e = NewAuditEvent::new(AuditAction::PatientRead, "patient", Outcome::Success);
            e.entity_id = Some(format!("{entity}-{i}"));
            e
        })
        .collect()
}

both_backends! {
    async fn the_writer_chains_on_the_head_it_knows_and_on_the_stored_one_when_that_moved(b) {
        use kapstone_store::audit::{append_all, append_all_hinted, head, verify};
        let app = TestApp::spawn(b).await?;
        let db = &app.db;
        let mut hint = None;
        // No hint: the head is locked and read; the hint is left at the new head.
        let mut tx = db.begin().await?;
        let last = append_all_hinted(&mut tx, &read_events(3, "a"), &mut hint).await?;
        tx.commit().await?;
        assert!(hint == Some(head(db).await?) && hint.map(|h| h.0) == Some(last));
        // On the hint: more events than one insert holds.
        let mut tx = db.begin().await?;
        let last = append_all_hinted(&mut tx, &read_events(250, "b"), &mut hint).await?;
        tx.commit().await?;
        assert!(hint == Some(head(db).await?) && hint.map(|h| h.0) == Some(last));
        // Another appender moved the head: the stale hint moves nothing, the events follow the
        // stored head.
        let mut tx = db.begin().await?;
        append_all(&mut tx, &read_events(2, "other")).await?;
        tx.commit().await?;
        let mut tx = db.begin().await?;
        append_all_hinted(&mut tx, &read_events(1, "c"), &mut hint).await?;
        tx.commit().await?;
        assert!(hint == Some(head(db).await?));
        // A hint with the stored head's seq but another hash (its batch rolled back, and another
        // appender added as many events): the hash decides, the chain does not fork.
        let mut tx = db.begin().await?;
        append_all_hinted(&mut tx, &read_events(2, "rolled-back"), &mut hint).await?;
        drop(tx);
        let mut tx = db.begin().await?;
        append_all(&mut tx, &read_events(2, "other-again")).await?;
        tx.commit().await?;
        assert!(hint.map(|h| h.0) == Some(head(db).await?.0) && hint != Some(head(db).await?));
        let mut tx = db.begin().await?;
        let last = append_all_hinted(&mut tx, &read_events(4, "d"), &mut hint).await?;
        tx.commit().await?;
        assert!(hint == Some(head(db).await?));
        assert_eq!(verify(db).await?.map_err(|e| anyhow::anyhow!("{e}"))?, last);
        assert_eq!(app.count("audit_events WHERE entity_id LIKE 'rolled-back%'").await?, 0);
        app.stop().await
    }

    async fn reading_a_patient_is_audited_with_actor_patient_and_source(b) {
        let app = TestApp::demo(b).await?;
        let token = app.token("nurse@demo.kapstone.test").await?;
        let p = first_patient(&app, &token).await?;
        let id = p["id"].as_str().unwrap();
        let resp = app.get_bearer(&token, &format!("/api/v1/patients/{id}")).await?;
        assert_eq!(resp.status(), 200);
        let sql = format!(
            "audit_events WHERE action = 'patient.read' AND patient_id = '{id}' AND actor_role = 'nurse' \
             AND source_ip = '127.0.0.1' AND outcome = 'success'"
        );
        assert_eq!(app.count(&sql).await?, 1);
        assert_eq!(app.count("audit_events WHERE action = 'patient.list'").await?, 1);
        app.stop().await
    }

    async fn the_chain_verifies_and_finds_an_altered_or_deleted_event(b) {
        let app = TestApp::demo(b).await?;
        let token = app.token("nurse@demo.kapstone.test").await?;
        first_patient(&app, &token).await?;
        let n = kapstone_store::audit::verify(&app.db).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(n, app.count("audit_events").await?);

        // The database itself refuses edits.
        assert!(app.raw_sql("UPDATE audit_events SET reason = 'x' WHERE seq = 3").await.is_err());
        assert!(app.raw_sql("DELETE FROM audit_events WHERE seq = 3").await.is_err());

        // Someone with database access removes the guard and edits an event.
        match app.backend {
            kapstone_store::Backend::Sqlite => {
                app.raw_sql("DROP TRIGGER audit_events_no_update").await?;
                app.raw_sql("DROP TRIGGER audit_events_no_delete").await?;
            }
            kapstone_store::Backend::Postgres => {
                app.raw_sql("DROP TRIGGER audit_events_no_update ON audit_events").await?;
            }
        }
        app.raw_sql("UPDATE audit_events SET actor_role = 'admin' WHERE seq = 3").await?;
        let broken = kapstone_store::audit::verify(&app.db).await?;
        assert_eq!(broken, Err(ChainBreak::Altered { seq: 3 }));
        app.stop().await
    }

    async fn a_deleted_event_is_reported_missing(b) {
        let app = TestApp::demo(b).await?;
        match app.backend {
            kapstone_store::Backend::Sqlite => app.raw_sql("DROP TRIGGER audit_events_no_delete").await?,
            kapstone_store::Backend::Postgres => app.raw_sql("DROP TRIGGER audit_events_no_update ON audit_events").await?,
        };
        app.raw_sql("DELETE FROM audit_events WHERE seq = 4").await?;
        let broken = kapstone_store::audit::verify(&app.db).await?;
        assert_eq!(broken, Err(ChainBreak::Missing { expected: 4, found: 5 }));
        app.stop().await
    }

    async fn the_chain_is_verified_in_stretches_and_a_tamper_anywhere_is_found(b) {
        // Stretches of 10 events: 1-10, 11-20, 21-30, ... (the demo writes hundreds of events).
        let app = TestApp::demo(b).await?;
        let n = app.count("audit_events").await?;
        assert!(n > 60, "{n} events");
        let stretched = |app: &TestApp| {
            let db = app.db.clone();
            async move { kapstone_store::audit::verify_in_stretches(&db, 10, 3).await }
        };
        assert_eq!(stretched(&app).await?, Ok(n));
        drop_audit_guards(&app).await?;

        // A changed field in the middle of a stretch.
        app.raw_sql("UPDATE audit_events SET reason = 'edited' WHERE seq = 25").await?;
        assert_eq!(stretched(&app).await?, Err(ChainBreak::Altered { seq: 25 }));
        assert_eq!(kapstone_store::audit::verify(&app.db).await?, Err(ChainBreak::Altered { seq: 25 }));
        app.stop().await
    }

    async fn a_rewritten_event_at_a_stretch_boundary_breaks_the_next_stretch(b) {
        let app = TestApp::demo(b).await?;
        drop_audit_guards(&app).await?;
        // The last event of the stretch 11-20 is changed and its hash recomputed, so the stretch
        // checks out on its own: only the link to the first event of the next stretch tells.
        rewrite_with_recomputed_hash(&app, 20).await?;
        let broken = kapstone_store::audit::verify_in_stretches(&app.db, 10, 3).await?;
        assert_eq!(broken, Err(ChainBreak::Broken { seq: 21 }));
        for stretch in [1, 7, 20, 21, 10_000] {
            let found = kapstone_store::audit::verify_in_stretches(&app.db, stretch, 2).await?;
            assert_eq!(found, Err(ChainBreak::Broken { seq: 21 }), "stretches of {stretch}");
        }
        app.stop().await
    }

    async fn a_deleted_or_reordered_event_at_a_stretch_boundary_is_found(b) {
        let app = TestApp::demo(b).await?;
        drop_audit_guards(&app).await?;
        // The first event of a stretch deleted.
        app.raw_sql("DELETE FROM audit_events WHERE seq = 31").await?;
        let broken = kapstone_store::audit::verify_in_stretches(&app.db, 10, 3).await?;
        assert_eq!(broken, Err(ChainBreak::Missing { expected: 31, found: 32 }));
        // The last event of an earlier stretch deleted: that one is reported first.
        app.raw_sql("DELETE FROM audit_events WHERE seq = 20").await?;
        let broken = kapstone_store::audit::verify_in_stretches(&app.db, 10, 3).await?;
        assert_eq!(broken, Err(ChainBreak::Missing { expected: 20, found: 21 }));
        app.stop().await
    }

    async fn events_swapped_across_a_stretch_boundary_are_found(b) {
        let app = TestApp::demo(b).await?;
        drop_audit_guards(&app).await?;
        // Events 10 and 11 trade places (each takes the other's number).
        app.raw_sql("UPDATE audit_events SET seq = -1 WHERE seq = 10").await?;
        app.raw_sql("UPDATE audit_events SET seq = 10 WHERE seq = 11").await?;
        app.raw_sql("UPDATE audit_events SET seq = 11 WHERE seq = -1").await?;
        let broken = kapstone_store::audit::verify_in_stretches(&app.db, 10, 3).await?;
        assert_eq!(broken, Err(ChainBreak::Broken { seq: 10 }));
        assert_eq!(kapstone_store::audit::verify(&app.db).await?, Err(ChainBreak::Broken { seq: 10 }));
        app.stop().await
    }

    async fn events_deleted_from_the_end_are_found_against_the_head(b) {
        let app = TestApp::demo(b).await?;
        drop_audit_guards(&app).await?;
        let n = app.count("audit_events").await?;
        app.raw_sql(&format!("DELETE FROM audit_events WHERE seq > {}", n - 3)).await?;
        let broken = kapstone_store::audit::verify_in_stretches(&app.db, 10, 3).await?;
        assert_eq!(broken, Err(ChainBreak::Truncated { last: n - 3, head: n }));
        app.stop().await
    }

    async fn a_long_chain_with_text_to_escape_verifies_and_a_tamper_past_the_first_thousand_is_found(b) {
        // SQLite reads the chain a thousand-odd events per fetched row, concatenated with their
        // lengths: a reason with separators, quotes, escapes and a NUL hashes the same, and chunk
        // boundaries lose and repeat nothing. The NUL is stored as U+FFFD on both engines
        // (PostgreSQL cannot hold one in text), so the append succeeds on either.
        use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
        let app = TestApp::demo(b).await?;
        let nul = "\u{0}";
        let mut tx = app.db.begin().await?;
        let events: Vec<NewAuditEvent> = (0..2_600)
            .map(|i| {
                let mut e = NewAuditEvent::new(AuditAction::PatientRead, "patient", Outcome::Denied);
                e.reason = Some(format!("line \"{i}\"\nback\\slash\ttab é ✓ \u{1F600} \u{7} 12:ab, {nul} 3:x"));
                e.source_ip = (i % 3 == 0).then(|| "::1".to_owned());
                e
            })
            .collect();
        kapstone_store::audit::append_all(&mut tx, &events).await?;
        tx.commit().await?;
        let n = app.count("audit_events").await?;
        assert!(n > 2_600, "{n} events");
        assert_eq!(app.count("audit_events WHERE reason LIKE '%\u{FFFD} 3:x'").await?, 2_600);
        assert_eq!(kapstone_store::audit::verify(&app.db).await?, Ok(n));
        assert_eq!(kapstone_store::audit::verify_in_stretches(&app.db, 1_500, 2).await?, Ok(n));
        drop_audit_guards(&app).await?;
        rewrite_with_recomputed_hash(&app, 2_049).await?;
        assert_eq!(kapstone_store::audit::verify(&app.db).await?, Err(ChainBreak::Broken { seq: 2_050 }));
        app.raw_sql("DELETE FROM audit_events WHERE seq = 1025").await?;
        assert_eq!(kapstone_store::audit::verify(&app.db).await?, Err(ChainBreak::Missing { expected: 1025, found: 1026 }));
        assert_eq!(
            kapstone_store::audit::verify_in_stretches(&app.db, 1_024, 2).await?,
            Err(ChainBreak::Missing { expected: 1025, found: 1026 })
        );
        app.stop().await
    }

    async fn concurrent_writers_never_fork_the_chain(b) {
        let app = TestApp::demo(b).await?;
        let token = app.token("nurse@demo.kapstone.test").await?;
        let p = first_patient(&app, &token).await?;
        let path = format!("/api/v1/patients/{}", p["id"].as_str().unwrap());
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (c, url, t) = (app.client(), app.url(&path), token.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    let r = c.get(&url).bearer_auth(&t).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let n = kapstone_store::audit::verify(&app.db).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
        assert!(n >= 160);
        app.stop().await
    }

    async fn admins_filter_and_export_the_log(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        first_patient(&app, &nurse).await?;
        let (admin, _) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;

        let page = admin.get(app.url("/admin/audit?action=patient.list")).send().await?;
        assert_eq!(page.status(), 200);
        let html = page.text().await?;
        assert!(html.contains("patient.list"));

        let bad = admin.get(app.url("/admin/audit?from=26-11-2026")).send().await?;
        assert_eq!(bad.status(), 422);
        assert!(bad.text().await?.contains("f-from-error"));

        let csv = admin.get(app.url("/admin/audit.csv?action=auth.sign_in")).send().await?;
        assert_eq!(csv.status(), 200);
        assert!(csv.headers()["content-disposition"].to_str()?.starts_with("attachment"));
        let text = csv.text().await?;
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("seq,at,actor_user_id"));
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 2, "the nurse's and the admin's sign-ins: {text}");
        assert!(rows.iter().all(|r| r.contains(",auth.sign_in,")));
        assert_eq!(app.count("audit_events WHERE action = 'audit.export'").await?, 1);
        assert_eq!(app.count("audit_events WHERE action = 'audit.view'").await?, 1, "the refused filter was not a view");

        let token = app.token("admin@demo.kapstone.test").await?;
        let api: Value = app.get_bearer(&token, "/api/v1/audit?action=patient.list").await?.json().await?;
        assert_eq!(api["items"].as_array().unwrap().len(), 1);
        app.stop().await
    }
}

/// Migration 0030 (SQLite) stores the log again with `seq` as the table's key: a log written
/// before it moves over byte for byte, still verifies, keeps its guards and is read by range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_before_seq_became_the_key_moves_over_intact() -> anyhow::Result<()> {
    use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
    use kapstone_store::{Db, DbUrl, audit};
    let dir = kapstone_testkit::TempDir::new();
    let url = DbUrl::Sqlite(dir.0.join("kapstone.db"));
    let db = Db::connect(&url).await?;
    let Db::Sqlite { write, .. } = &db else { anyhow::bail!("SQLite expected") };
    // The migrations before 0030, as a database of the last release has them.
    let all = sqlx::migrate!("../store/migrations/sqlite");
    let before = sqlx::migrate::Migrator {
        migrations: all.migrations.iter().filter(|m| m.version < 30).cloned().collect::<Vec<_>>().into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(write).await?;
    let old_key: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'sqlite_autoindex_audit_events_1'")
            .fetch_one(write)
            .await?;
    assert_eq!(old_key, 1, "before 0030 seq has an index of its own");

    // More than two of verify's chunks, with every optional field both present and absent.
    let events: Vec<NewAuditEvent> = (0..2_500)
        .map(|i| {
            let mut e = NewAuditEvent::new(AuditAction::PatientRead, "patient", Outcome::Success);
            e.entity_id = (i % 2 == 0).then(|| format!("p-{i}"));
            e.reason = (i % 3 == 0).then(|| format!("12:ab, \"{i}\" é\n3:x"));
            e.source_ip = (i % 5 == 0).then(|| "::1".to_owned());
            e
        })
        .collect();
    let mut tx = db.begin().await?;
    audit::append_all(&mut tx, &events).await?;
    tx.commit().await?;
    let everything = audit::AuditFilter::default();
    let stored = audit::search_oldest_first(&db, &everything, 0, 10_000).await?;
    assert_eq!(stored.len(), 2_500);
    assert_eq!(audit::verify(&db).await?, Ok(2_500));

    db.migrate().await?;
    let new_key: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'sqlite_autoindex_audit_events_1'")
            .fetch_one(write)
            .await?;
    assert_eq!(new_key, 0, "seq is the table's key");
    assert_eq!(audit::search_oldest_first(&db, &everything, 0, 10_000).await?, stored);
    assert_eq!(audit::verify(&db).await?, Ok(2_500));
    assert_eq!(audit::verify_in_stretches(&db, 1_000, 2).await?, Ok(2_500));
    // The guards came back with the table.
    assert!(sqlx::query("UPDATE audit_events SET reason = 'x' WHERE seq = 3").execute(write).await.is_err());
    assert!(sqlx::query("DELETE FROM audit_events WHERE seq = 3").execute(write).await.is_err());
    // Appends go on from the head.
    let mut tx = db.begin().await?;
    audit::append_all(&mut tx, &events[..10]).await?;
    tx.commit().await?;
    assert_eq!(audit::verify(&db).await?, Ok(2_510));
    db.close().await;
    Ok(())
}
