//! `Idempotency-Key` on the JSON API's writes (issue 9): a retry returns the original answer and
//! creates nothing twice, on both engines, even when the retries race each other, and (on the
//! routes that store their answer with their change) when the server stopped right after the
//! change committed.

use kapstone_testkit::{TestApp, both_backends};
use serde_json::{Value, json};

fn patient(given: &str) -> Value {
    json!({"given_name": given, "family_name": "Idempotent", "birth_date": "1984-05-06", "sex_at_birth": "female"})
}

async fn post_with_key(
    app: &TestApp,
    url: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> anyhow::Result<reqwest::Response> {
    Ok(app.client().post(url).bearer_auth(token).header("Idempotency-Key", key).json(body).send().await?)
}

/// A second router on the same database with its own in-process key locks: it stands for another
/// server process, so only the database can keep two requests with one key from both committing.
async fn second_process(app: &TestApp) -> anyhow::Result<String> {
    let mut state = app.state.clone();
    state.idempotency_locks = kapstone_web::api::idempotency::KeyLocks::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = kapstone_web::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });
    Ok(format!("http://{addr}"))
}

both_backends! {
    async fn a_retried_registration_returns_the_original_answer_and_stores_one_patient(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let before = app.count("patients").await?;
        let url = app.url("/api/v1/patients");
        let first = post_with_key(&app, &url, &nurse, "reg-0001", &patient("Retry")).await?;
        assert_eq!(first.status(), 201);
        assert!(first.headers().get("idempotent-replayed").is_none());
        let first: Value = first.json().await?;
        let again = post_with_key(&app, &url, &nurse, "reg-0001", &patient("Retry")).await?;
        assert_eq!(again.status(), 201);
        assert_eq!(again.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
        assert_eq!(again.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
        let again: Value = again.json().await?;
        assert_eq!(first, again, "the original body, not a second patient");
        assert_eq!(app.count("patients").await?, before + 1);
        let id = first["id"].as_str().unwrap();
        assert_eq!(app.count(&format!("audit_events WHERE action = 'patient.create' AND patient_id = '{id}'")).await?, 1);
        // Without a key, the same body is a new request (and a new patient).
        let plain = app.client().post(&url).bearer_auth(&nurse).json(&patient("Retry")).send().await?;
        assert_eq!(plain.status(), 201);
        assert_eq!(app.count("patients").await?, before + 2);
        app.stop().await
    }

    async fn the_same_key_with_another_request_is_refused_naming_the_header(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let url = app.url("/api/v1/patients");
        assert_eq!(post_with_key(&app, &url, &nurse, "reg-0002", &patient("First")).await?.status(), 201);
        let before = app.count("patients").await?;
        let other = post_with_key(&app, &url, &nurse, "reg-0002", &patient("Second")).await?;
        assert_eq!(other.status(), 422);
        let err: Value = other.json().await?;
        assert_eq!(err["error"]["field"], "Idempotency-Key", "{err}");
        // Another path (a query string counts) with the key is another request too.
        let query = post_with_key(&app, &app.url("/api/v1/patients?again=1"), &nurse, "reg-0002", &patient("First")).await?;
        assert_eq!(query.status(), 422);
        assert_eq!(app.count("patients").await?, before);
        // A malformed key names the header and writes nothing.
        for bad in ["", "has space", &"k".repeat(256)] {
            let resp = post_with_key(&app, &url, &nurse, bad, &patient("Bad")).await?;
            assert_eq!(resp.status(), 422, "{bad:?}");
            assert_eq!(resp.json::<Value>().await?["error"]["field"], "Idempotency-Key");
        }
        assert_eq!(app.count("patients").await?, before);
        app.stop().await
    }

    async fn a_refused_request_does_not_use_up_its_key_and_keys_are_per_account(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let url = app.url("/api/v1/patients");
        let before = app.count("patients").await?;
        let mut wrong = patient("Fixed");
        wrong["birth_date"] = json!("2999-01-01");
        let refused = post_with_key(&app, &url, &nurse, "reg-0003", &wrong).await?;
        assert_eq!(refused.status(), 422);
        assert_eq!(refused.json::<Value>().await?["error"]["field"], "birth_date");
        // Corrected and sent again with the same key: it runs.
        assert_eq!(post_with_key(&app, &url, &nurse, "reg-0003", &patient("Fixed")).await?.status(), 201);
        // Another account's key space is its own.
        let fd = app.token("frontdesk@demo.kapstone.test").await?;
        let theirs = post_with_key(&app, &url, &fd, "reg-0003", &patient("Fixed")).await?;
        assert_eq!(theirs.status(), 201);
        assert!(theirs.headers().get("idempotent-replayed").is_none());
        assert_eq!(app.count("patients").await?, before + 2);
        assert_eq!(app.count("idempotency_keys").await?, 2);
        app.stop().await
    }

    async fn requests_racing_with_one_key_create_one_patient(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let before = app.count("patients").await?;
        let other = second_process(&app).await?;
        let bases = [app.url(""), other];
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..12 {
            let url = format!("{}/api/v1/patients", bases[i % 2].trim_end_matches('/'));
            let client = app.client();
            let nurse = nurse.clone();
            sends.spawn(async move {
                let resp = client.post(url).bearer_auth(nurse).header("Idempotency-Key", "race-1").json(&patient("Race")).send().await?;
                let replayed = resp.headers().contains_key("idempotent-replayed");
                let status = resp.status().as_u16();
                let body: Value = resp.json().await?;
                anyhow::Ok((status, replayed, body))
            });
        }
        let mut answers = Vec::new();
        while let Some(done) = sends.join_next().await {
            answers.push(done??);
        }
        assert_eq!(app.count("patients").await?, before + 1, "{answers:?}");
        assert_eq!(answers.iter().filter(|(s, r, _)| *s == 201 && !r).count(), 1, "one request ran: {answers:?}");
        let created = &answers.iter().find(|(s, r, _)| *s == 201 && !r).unwrap().2;
        for (status, _, body) in &answers {
            // A replay of the one answer, or (from the other process, between its commit and its
            // recording the answer) "applied, answer not recorded".
            match status {
                201 => assert_eq!(body, created),
                409 => assert_eq!(body["error"]["field"], "Idempotency-Key", "{body}"),
                _ => panic!("unexpected answer {status}: {body}"),
            }
        }
        app.stop().await
    }

    async fn expired_keys_are_pruned_and_then_run_again(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let url = app.url("/api/v1/patients");
        let before = app.count("patients").await?;
        assert_eq!(post_with_key(&app, &url, &nurse, "reg-0004", &patient("Expiring")).await?.status(), 201);
        let now = kapstone_domain::UtcTs::now();
        assert_eq!(kapstone_store::idempotency::prune(&app.db, now).await?, 0, "a fresh key stays");
        let later = now.plus(time::Duration::hours(25));
        assert_eq!(kapstone_store::idempotency::prune(&app.db, later).await?, 1, "the 24-hour default");
        let again = post_with_key(&app, &url, &nurse, "reg-0004", &patient("Expiring")).await?;
        assert_eq!(again.status(), 201);
        assert!(again.headers().get("idempotent-replayed").is_none());
        assert_eq!(app.count("patients").await?, before + 2);
        app.stop().await
    }

    async fn after_a_crash_past_the_commit_a_retry_gets_the_original_answer(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let fx = crash_fixture(&app, &nurse).await?;
        // From here on the server records nothing after a change commits, as one killed in that
        // moment would not: a retry gets only what the change's own commit stored.
        app.state.idempotency_locks.crash_after_commit(true);
        let receipt = json!({"location": fx.location, "product": fx.product, "lot": "CRASH-LOT-1", "expiry": "2031-03-31",
            "supplier": {"name": "Synthetic Pharma Supply", "address": "1 Warehouse Way", "dea_number": "RS1234563"},
            "containers": 1, "invoice": "INV-CRASH-1"});
        let vitals = json!({"systolic": 118, "diastolic": 76, "heart_rate": 71});
        let writes = [
            ("/api/v1/patients".to_owned(), patient("Crashed"), "patients WHERE given_name = 'Crashed'".to_owned()),
            ("/api/v1/cs/receipts".to_owned(), receipt, "cs_ledger_entries WHERE kind = 'receipt' AND lot = 'CRASH-LOT-1'".to_owned()),
            (
                format!("/api/v1/sessions/{}/vitals", fx.session),
                vitals,
                // (Ids are stored as blobs on SQLite: all the readings, this test writes alone.)
                "session_events WHERE kind = 'reading'".to_owned(),
            ),
        ];
        for (i, (path, body, rows)) in writes.iter().enumerate() {
            let key = format!("crash-window-{i}");
            let before = app.count(rows).await?;
            let first = post_with_key(&app, &app.url(path), &nurse, &key, body).await?;
            assert_eq!(first.status(), 201, "{path}");
            let first_body = first.bytes().await?;
            assert_eq!(app.count(rows).await?, before + 1, "{path}");
            // The answer is in the key's row: its change's commit stored it.
            let stored = app
                .count(&format!("idempotency_keys WHERE idempotency_key = '{key}' AND response_status = 201 AND response_body IS NOT NULL"))
                .await?;
            assert_eq!(stored, 1, "{path}: the answer went with the change");
            let again = post_with_key(&app, &app.url(path), &nurse, &key, body).await?;
            assert_eq!(again.status(), 201, "{path}");
            assert_eq!(again.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"), "{path}");
            assert_eq!(again.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
            assert_eq!(again.bytes().await?, first_body, "{path}: the original body, byte for byte");
            assert_eq!(app.count(rows).await?, before + 1, "{path}: nothing stored twice");
        }
        // An id (the common answer of a create) and a bare 204, the same way.
        let admin = app.token("admin@demo.kapstone.test").await?;
        let locations: Value = app.get_bearer(&admin, "/api/v1/locations").await?.json().await?;
        let location = locations["items"][0]["id"].as_str().unwrap_or_default().to_owned();
        let rooms_before = app.count("rooms").await?;
        let room = json!({"location_id": location, "name": "Crash room"});
        let first = post_with_key(&app, &app.url("/api/v1/rooms"), &admin, "crash-window-room", &room).await?;
        assert_eq!(first.status(), 201);
        let first: Value = first.json().await?;
        let again = post_with_key(&app, &app.url("/api/v1/rooms"), &admin, "crash-window-room", &room).await?;
        assert_eq!((again.status().as_u16(), again.headers().contains_key("idempotent-replayed")), (201, true));
        assert_eq!(again.json::<Value>().await?, first);
        assert_eq!(app.count("rooms").await?, rooms_before + 1);
        let token = app
            .client()
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&admin)
            .json(&json!({"name": "Crash sync", "scopes": ["clinical:read"], "expires_in_days": 30}))
            .send()
            .await?
            .json::<Value>()
            .await?;
        let revoke = app.url(&format!("/api/v1/tokens/{}/revoke", token["id"].as_str().unwrap_or_default()));
        let first = post_with_key(&app, &revoke, &admin, "crash-window-revoke", &json!({})).await?;
        assert_eq!(first.status(), 204);
        let again = post_with_key(&app, &revoke, &admin, "crash-window-revoke", &json!({})).await?;
        assert_eq!((again.status().as_u16(), again.headers().contains_key("idempotent-replayed")), (204, true));
        assert!(again.bytes().await?.is_empty());

        // A route that reads its change back to answer (kapstone_web::api::idempotency::
        // ANSWERED_AFTER_THE_CHANGE) records its answer after the commit: in this window its retry
        // learns the change was applied once, and nothing is applied twice.
        let setting = app.url(&format!("/api/v1/locations/{location}/rems-setting"));
        let body = json!({"rems_certified": true, "address_line1": "1 Crash Road", "city": "Salem", "state": "OR", "zip": "97301"});
        let audits = app.count("audit_events WHERE action = 'scheduling.configure'").await?;
        let put_with_key = |key: &'static str| {
            app.client().put(setting.clone()).bearer_auth(admin.clone()).header("Idempotency-Key", key).json(&body).send()
        };
        assert_eq!(put_with_key("crash-window-setting").await?.status(), 200);
        let again = put_with_key("crash-window-setting").await?;
        assert_eq!(again.status(), 409);
        assert_eq!(again.json::<Value>().await?["error"]["field"], "Idempotency-Key");
        assert_eq!(app.count("audit_events WHERE action = 'scheduling.configure'").await?, audits + 1);
        app.state.idempotency_locks.crash_after_commit(false);
        app.stop().await
    }
}

struct CrashFixture {
    location: String,
    product: String,
    session: String,
}

/// The demo's registered location, a product, and a session on the floor that takes readings.
async fn crash_fixture(app: &TestApp, token: &str) -> anyhow::Result<CrashFixture> {
    let get = |path: &'static str| async move {
        anyhow::Ok(app.client().get(app.url(path)).bearer_auth(token).send().await?.json::<Value>().await?)
    };
    let registry = get("/api/v1/cs/registry").await?;
    let location = registry["locations"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| !l["registration"].is_null()))
        .and_then(|l| l["location_id"].as_str())
        .ok_or_else(|| anyhow::anyhow!("no registered location: {registry}"))?
        .to_owned();
    let product = registry["products"][0]["id"].as_str().ok_or_else(|| anyhow::anyhow!("no product"))?.to_owned();
    let board = get("/api/v1/floor").await?;
    let sessions: Vec<String> = board["chairs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["sessions"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["session_id"].as_str().map(str::to_owned))
        .collect();
    for id in sessions {
        let r = app
            .client()
            .post(app.url(&format!("/api/v1/sessions/{id}/vitals")))
            .bearer_auth(token)
            .json(&json!({"systolic": 120, "diastolic": 78, "heart_rate": 72}))
            .send()
            .await?;
        if r.status() == 201 {
            return Ok(CrashFixture { location, product, session: id });
        }
    }
    anyhow::bail!("no demo session on the floor takes a reading")
}
