use kapstone_domain::audit::ChainBreak;
use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use serde_json::Value;

async fn first_patient(app: &TestApp, token: &str) -> anyhow::Result<Value> {
    let list: Value = app.get_bearer(token, "/api/v1/patients?limit=5").await?.json().await?;
    Ok(list["items"][0].clone())
}

both_backends! {
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
