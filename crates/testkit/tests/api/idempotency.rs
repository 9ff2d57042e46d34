//! `Idempotency-Key` on the JSON API's writes (issue 9): a retry returns the original answer and
//! creates nothing twice, on both engines, even when the retries race each other.

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
}
