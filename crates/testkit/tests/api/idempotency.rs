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
    kapstone_testkit::serve_state(app.state.with_idempotency_locks(kapstone_web::api::idempotency::KeyLocks::default()))
        .await
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
        let answers = race(&app, &other, "/api/v1/patients", &nurse, "race-1", &patient("Race")).await?;
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

    async fn a_booking_a_plan_and_a_reading_raced_with_one_key_across_two_processes_are_made_once(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let front = app.token("frontdesk@demo.kapstone.test").await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let locations: Value = app.get_bearer(&admin, "/api/v1/locations").await?.json().await?;
        let location = locations["items"][0]["id"].as_str().unwrap_or_default().to_owned();
        let (patient_id, booking) = free_consultation(&app, &front, &location, "Raced").await?;
        // A course's plan: its dates booked in one transaction, each date's outcome in the answer.
        let staff: Value = app.get_bearer(&front, "/api/v1/staff").await?.json().await?;
        let id_of = |role: &str| {
            staff["items"].as_array().and_then(|a| a.iter().find(|p| p["role"] == role)).map(|p| p["id"].clone()).unwrap_or_default()
        };
        let rooms: Value = app.get_bearer(&front, "/api/v1/rooms").await?.json().await?;
        let p3 = demo_patient(&app, 3).await?;
        let courses: Value = app.get_bearer(&front, &format!("/api/v1/patients/{p3}/courses")).await?.json().await?;
        let plan = format!("/api/v1/courses/{}/book", courses["items"][0]["id"].as_str().unwrap_or_default());
        let plan_body = json!({"time": "10:00", "staff_ids": [id_of("nurse"), id_of("therapist")], "room_id": rooms["items"][0]["id"], "integration": true});
        let fx = crash_fixture(&app, &nurse).await?;
        let other = second_process(&app).await?;
        // A booking (its own transaction, serialised against other bookings), a plan, and a reading
        // (a job of the group-commit writer), each sent 12 times at once with one key, half to each
        // process. What each makes: one appointment, the plan's booked dates, one reading.
        let vitals = json!({"systolic": 121, "diastolic": 79, "heart_rate": 72});
        let one = |_: &Value| 1;
        let dates = |answer: &Value| answer["items"].as_array().into_iter().flatten().filter(|i| !i["appointment_id"].is_null()).count();
        let cases: [RaceCase; 3] = [
            ("/api/v1/appointments".to_owned(), &front, booking, format!("appointments WHERE patient_id = {}", uuid_sql(&app, &patient_id)?), 201, &one),
            (plan, &front, plan_body, format!("appointments WHERE patient_id = {}", uuid_sql(&app, &p3)?), 200, &dates),
            (format!("/api/v1/sessions/{}/vitals", fx.session), &nurse, vitals, "session_events".to_owned(), 201, &one),
        ];
        for (path, token, body, made, status, made_by) in cases {
            let before = app.count(&made).await?;
            let answers = race(&app, &other, &path, token, &format!("race-{path}"), &body).await?;
            let ran: Vec<_> = answers.iter().filter(|(s, r, _)| *s == status && !r).collect();
            assert_eq!(ran.len(), 1, "{path}: one request ran: {answers:?}");
            let made_n = made_by(&ran[0].2);
            assert!(made_n > 0, "{path}: it made something: {answers:?}");
            assert_eq!(app.count(&made).await?, before + i64::try_from(made_n)?, "{path}: made once: {answers:?}");
            // The one answer, replayed to every other request (the answer is stored with the change
            // on these routes, so never "applied, answer not recorded"; and never a request's own
            // answer after the original's change left it nothing to do).
            for (got, _, answer) in &answers {
                assert_eq!((got, answer), (&status, &ran[0].2), "{path}: {answers:?}");
            }
            assert_eq!(answers.iter().filter(|(_, replayed, _)| *replayed).count(), 11, "{path}: {answers:?}");
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

        // A course's plan, booked in one transaction with each date's outcome: the retry gets
        // those outcomes and books nothing twice.
        let front = app.token("frontdesk@demo.kapstone.test").await?;
        let staff: Value = app.get_bearer(&front, "/api/v1/staff").await?.json().await?;
        let id_of = |role: &str| {
            staff["items"].as_array().and_then(|a| a.iter().find(|p| p["role"] == role)).map(|p| p["id"].clone()).unwrap_or_default()
        };
        let rooms: Value = app.get_bearer(&front, "/api/v1/rooms").await?.json().await?;
        let p3 = demo_patient(&app, 3).await?;
        let courses: Value = app.get_bearer(&front, &format!("/api/v1/patients/{p3}/courses")).await?.json().await?;
        let plan = app.url(&format!("/api/v1/courses/{}/book", courses["items"][0]["id"].as_str().unwrap_or_default()));
        let body = json!({"time": "10:00", "staff_ids": [id_of("nurse"), id_of("therapist")], "room_id": rooms["items"][0]["id"], "integration": true});
        let (appointments, bookings) = (app.count("appointments").await?, app.count("audit_events WHERE action = 'appointment.book'").await?);
        let book_with_key = || app.client().post(plan.clone()).bearer_auth(front.clone()).header("Idempotency-Key", "crash-window-plan").json(&body).send();
        let first = book_with_key().await?;
        assert_eq!(first.status(), 200);
        let first_body = first.bytes().await?;
        let first: Value = serde_json::from_slice(&first_body)?;
        let booked = i64::try_from(first["items"].as_array().into_iter().flatten().filter(|i| !i["appointment_id"].is_null()).count())?;
        assert!(booked > 0, "the plan books its integration sessions: {first}");
        assert_eq!(app.count("appointments").await?, appointments + booked);
        let stored = app
            .count("idempotency_keys WHERE idempotency_key = 'crash-window-plan' AND response_status = 200 AND response_body IS NOT NULL")
            .await?;
        assert_eq!(stored, 1, "the plan's outcomes went with its bookings");
        let again = book_with_key().await?;
        assert_eq!((again.status().as_u16(), again.headers().contains_key("idempotent-replayed")), (200, true));
        assert_eq!(again.bytes().await?, first_body, "the original outcomes, byte for byte");
        assert_eq!(app.count("appointments").await?, appointments + booked, "nothing booked twice");
        assert_eq!(app.count("audit_events WHERE action = 'appointment.book'").await?, bookings + booked);
        // A route that stores nothing (ANSWERED_WITHOUT_A_CHANGE) stores no key: a retry
        // calculates again, and is no replay.
        let dose = json!({"protocol": "intravenous-racemic", "weight_kg": 80, "weight_measured_days_ago": 3,
            "dose_mg_per_kg": 0.5, "stock_mg_per_ml": 50, "infusion_minutes": 40, "bag_ml": 100});
        for _ in 0..2 {
            let r = post_with_key(&app, &app.url("/api/v1/dose/calculate"), &nurse, "crash-window-dose", &dose).await?;
            assert_eq!(r.status(), 200);
            assert!(r.headers().get("idempotent-replayed").is_none());
        }
        assert_eq!(app.count("idempotency_keys WHERE idempotency_key = 'crash-window-dose'").await?, 0);
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

/// The id of demo patient `n` (patient1@ ...).
async fn demo_patient(app: &TestApp, n: u8) -> anyhow::Result<String> {
    let token = app.token(&format!("patient{n}@demo.kapstone.test")).await?;
    let me: Value = app.get_bearer(&token, "/api/v1/portal/me").await?.json().await?;
    me["id"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("portal me: {me}"))
}

/// The last future dosing appointment booked for demo patient `n` (no session opened yet).
async fn booked_dosing_appointment(app: &TestApp, token: &str, n: u8) -> anyhow::Result<String> {
    let patient = demo_patient(app, n).await?;
    let now = jiff::Timestamp::now();
    let list: Value = app
        .get_bearer(token, &format!("/api/v1/appointments?patient={patient}&limit=500&from={now}"))
        .await?
        .json()
        .await?;
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["kind"] == "dosing" && a["status"] == "booked")
        .filter_map(|a| a["id"].as_str())
        .next_back()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no booked dosing appointment for patient {n}: {list}"))
}

/// Sends `body` with `key`: the change is made once (its audit event `action` counted), and its
/// answer is in the key's row, stored by the change's own commit (nothing is recorded after a
/// commit in this test). Then sends it again: the same status and bytes, marked replayed, and the
/// change not made twice. Returns the answer.
#[allow(clippy::too_many_arguments)]
async fn replays(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
    action: &str,
    status: u16,
) -> anyhow::Result<Value> {
    let changes = format!("audit_events WHERE action = '{action}'");
    let before = app.count(&changes).await?;
    let send = || {
        app.client()
            .request(method.clone(), app.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let first = send().await?;
    let got = first.status().as_u16();
    let first = first.bytes().await?;
    anyhow::ensure!(got == status, "{method} {path}: {got} {}", String::from_utf8_lossy(&first));
    assert_eq!(app.count(&changes).await?, before + 1, "{method} {path}: one change");
    let stored = app
        .count(&format!("idempotency_keys WHERE idempotency_key = '{key}' AND response_status = {status} AND response_body IS NOT NULL"))
        .await?;
    assert_eq!(stored, 1, "{method} {path}: the answer went with the change");
    let again = send().await?;
    assert_eq!(again.status().as_u16(), status, "{method} {path}");
    assert_eq!(
        again.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()),
        Some("true"),
        "{method} {path}"
    );
    assert_eq!(
        again.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{method} {path}"
    );
    assert_eq!(again.bytes().await?, first, "{method} {path}: the original body, byte for byte");
    assert_eq!(app.count(&changes).await?, before + 1, "{method} {path}: nothing made twice");
    Ok(serde_json::from_slice(&first)?)
}

/// Sends `body` to `path` 12 times at once with one key, half to this server and half to `other`
/// (another process, [`second_process`]): each answer's status, whether it was marked replayed, and
/// its body.
async fn race(
    app: &TestApp,
    other: &str,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> anyhow::Result<Vec<(u16, bool, Value)>> {
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..12 {
        let base = if i % 2 == 0 { app.url("") } else { other.to_owned() };
        let request = app
            .client()
            .post(format!("{}{path}", base.trim_end_matches('/')))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body);
        sends.spawn(async move {
            let resp = request.send().await?;
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
    Ok(answers)
}

/// A raced write: its path, the token, the body, the rows it makes (an SQL `FROM` tail), the status it
/// answers, and how many rows its answer says it made.
type RaceCase<'a> = (String, &'a String, Value, String, u16, &'a dyn Fn(&Value) -> usize);

/// A uuid as an SQL literal for a uuid column (a 16-byte BLOB on SQLite).
fn uuid_sql(app: &TestApp, id: &str) -> anyhow::Result<String> {
    let id = uuid::Uuid::parse_str(id)?;
    Ok(match app.backend {
        kapstone_testkit::TestBackend::Sqlite => format!("X'{}'", id.simple()),
        kapstone_testkit::TestBackend::Postgres => format!("'{id}'"),
    })
}

/// A consultation booked for a new patient at the first free time three to five weeks ahead at
/// `location`; returns (patient id, the booking request, the appointment).
async fn free_consultation(
    app: &TestApp,
    front: &str,
    location: &str,
    family: &str,
) -> anyhow::Result<(String, Value)> {
    let p =
        post_with_key(app, &app.url("/api/v1/patients"), front, &format!("patient-{family}"), &patient(family)).await?;
    anyhow::ensure!(p.status() == 201, "registering {family}");
    let p: Value = p.json().await?;
    let id = p["id"].as_str().unwrap_or_default().to_owned();
    let offer = free_slot(app, front, location, &id).await?;
    let body = json!({"patient_id": id, "type": "consultation", "start": offer["start"], "staff_ids": offer["staff_ids"],
        "location_id": location});
    Ok((id, body))
}

/// The first free consultation time three to five weeks ahead for `patient` at `location`.
async fn free_slot(app: &TestApp, token: &str, location: &str, patient: &str) -> anyhow::Result<Value> {
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let (from, to) = (today.checked_add(jiff::Span::new().days(21))?, today.checked_add(jiff::Span::new().days(35))?);
    let path = format!(
        "/api/v1/appointments/slots?type=consultation&from={from}&to={to}&patient_id={patient}&location_id={location}&limit=5"
    );
    let offers: Value = app.get_bearer(token, &path).await?.json().await?;
    offers["items"].get(0).cloned().ok_or_else(|| anyhow::anyhow!("no free consultation: {offers}"))
}

both_backends! {
    async fn after_a_crash_past_the_commit_the_routes_that_read_their_change_back_replay_it(b) {
        use reqwest::Method;
        let app = TestApp::demo(b).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let front = app.token("frontdesk@demo.kapstone.test").await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let portal = app.token("patient1@demo.kapstone.test").await?;
        let locations: Value = app.get_bearer(&admin, "/api/v1/locations").await?.json().await?;
        let location = locations["items"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["time_zone"] == "America/Los_Angeles"))
            .and_then(|l| l["id"].as_str())
            .ok_or_else(|| anyhow::anyhow!("no location in Los Angeles: {locations}"))?
            .to_owned();
        // What the routes act on, made beforehand: appointments to change, a finished Spravato
        // session for its REMS form, a discrepancy's location, a patient to consult.
        let mut booked = Vec::new();
        for family in ["Cancelled", "Moved", "Absent", "Attended", "OnLeave"] {
            let (_, body) = free_consultation(&app, &front, &location, family).await?;
            let r = app.client().post(app.url("/api/v1/appointments")).bearer_auth(&front).json(&body).send().await?;
            anyhow::ensure!(r.status() == 201, "booking {family}");
            booked.push(r.json::<Value>().await?);
        }
        let id_of = |i: usize| booked[i]["id"].as_str().unwrap_or_default().to_owned();
        // Absent and Attended happened 60 days ago, as time passing would have it.
        let shift = match app.backend {
            kapstone_testkit::TestBackend::Sqlite => "start_at = start_at - 5184000000000, end_at = end_at - 5184000000000",
            kapstone_testkit::TestBackend::Postgres => "start_at = start_at - interval '60 days', end_at = end_at - interval '60 days'",
        };
        for i in [2, 3] {
            assert_eq!(app.raw_sql(&format!("UPDATE appointments SET {shift} WHERE id = {}", uuid_sql(&app, &id_of(i))?)).await?, 1);
        }
        let session = crate::rems_forms::discharged_spravato_session(&app, &nurse, &prescriber, &therapist).await?;
        let fx = crash_fixture(&app, &nurse).await?;
        let consulted = {
            let r = post_with_key(&app, &app.url("/api/v1/patients"), &nurse, "consulted", &patient("Consulted")).await?;
            r.json::<Value>().await?["id"].as_str().unwrap_or_default().to_owned()
        };
        crate::eligibility::baseline_instruments(&app, &nurse, &consulted).await?;
        let p2 = demo_patient(&app, 2).await?;
        let p3 = demo_patient(&app, 3).await?;
        let courses: Value = app.get_bearer(&nurse, &format!("/api/v1/patients/{p3}/courses")).await?.json().await?;
        let course = courses["items"][0]["id"].as_str().unwrap_or_default().to_owned();
        let protocol: Value = app.get_bearer(&nurse, "/api/v1/protocols/intravenous-racemic").await?.json().await?;
        let mut next = protocol["protocol"].clone();
        next["version"] = json!("2026.2");
        next["dose"]["mg_per_kg"]["block_at_or_above_mg_per_kg"] = json!(0.9);

        // From here on nothing is recorded after a change commits.
        app.state.idempotency_locks.crash_after_commit(true);
        let key = |path: &str| format!("crash-read-back-{path}");

        // Scheduling: each answers with the appointment as its transaction stored it.
        let (_, booking) = free_consultation(&app, &front, &location, "Booked").await?;
        let a = replays(&app, Method::POST, "/api/v1/appointments", &front, &key("book"), &booking, "appointment.book", 201).await?;
        assert_eq!((a["status"].as_str(), a["type"].as_str()), (Some("booked"), Some("consultation")), "{a}");
        assert!(a["warnings"].is_array(), "{a}");
        let cancel = format!("/api/v1/appointments/{}/cancel", id_of(0));
        let c = replays(&app, Method::POST, &cancel, &front, &key("cancel"), &json!({"reason": "Flu"}), "appointment.change", 200).await?;
        assert_eq!((c["status"].as_str(), c["status_reason"].as_str()), (Some("cancelled"), Some("Flu")), "{c}");
        let moved = &booked[1];
        let offer = free_slot(&app, &front, &location, moved["patient_id"].as_str().unwrap_or_default()).await?;
        let reschedule = format!("/api/v1/appointments/{}/reschedule", id_of(1));
        let body = json!({"start": offer["start"], "reason": "Clinic running late", "staff_ids": offer["staff_ids"]});
        let r = replays(&app, Method::POST, &reschedule, &front, &key("reschedule"), &body, "appointment.book", 201).await?;
        assert_eq!(r["rescheduled_from"], moved["id"], "{r}");
        for (i, route, status) in [(2, "no-show", "no_show"), (3, "attended", "completed")] {
            let path = format!("/api/v1/appointments/{}/{route}", id_of(i));
            let v = replays(&app, Method::POST, &path, &front, &key(route), &json!({}), "appointment.change", 200).await?;
            assert_eq!(v["status"], status, "{v}");
        }
        // A leave answers with the appointments it clashes with, read in its transaction.
        let on_leave = &booked[4];
        let start: jiff::Timestamp = on_leave["start"].as_str().unwrap_or_default().parse()?;
        // The clinic's date (UTC-8 or UTC-7, within its 08:00-18:00 hours).
        let day = (start - jiff::SignedDuration::from_hours(8)).to_zoned(jiff::tz::TimeZone::UTC).date();
        let staff = on_leave["staff_ids"][0].as_str().unwrap_or_default();
        let leave = json!({"date": day.to_string(), "kind": "leave", "start": "08:00", "end": "18:00", "note": "Crash test"});
        let l = replays(&app, Method::POST, &format!("/api/v1/staff/{staff}/exceptions"), &admin, &key("leave"), &leave, "scheduling.configure", 201).await?;
        assert!(l["clashes"].as_array().is_some_and(|c| c.iter().any(|c| c["appointment_id"] == on_leave["id"])), "{l}");
        let setting = json!({"rems_certified": true, "address_line1": "1 Crash Road", "city": "Salem", "state": "OR", "zip": "97301"});
        let s = replays(&app, Method::PUT, &format!("/api/v1/locations/{location}/rems-setting"), &admin, &key("setting"), &setting, "scheduling.configure", 200).await?;
        assert_eq!((s["rems_certified"].as_bool(), s["zip"].as_str()), (Some(true), Some("97301")), "{s}");

        // The record: a consultation, a signed decision (with the password in the body: the
        // re-authentication commits apart, the key goes with the signature), the pathway.
        let body = crate::eligibility::with(crate::eligibility::clear_consultation(), "/pregnancy_status", json!("pregnant"));
        let c = replays(&app, Method::PUT, &format!("/api/v1/patients/{consulted}/consultation"), &nurse, &key("consultation"), &body, "consultation.record", 200).await?;
        assert_eq!(c["version"], 1, "{c}");
        let e: Value = app.get_bearer(&prescriber, &format!("/api/v1/patients/{consulted}/eligibility")).await?.json().await?;
        let sign = json!({"input_sha256": e["input_sha256"], "password": kapstone_testkit::PASSWORD, "verdict": "not_eligible",
            "summary": "Pregnant: revisit after delivery."});
        let d = replays(&app, Method::POST, &format!("/api/v1/patients/{consulted}/eligibility/decisions"), &prescriber, &key("sign"), &sign, "eligibility.sign", 201).await?;
        assert_eq!((d["verdict"].as_str(), d["input_sha256"].clone()), (Some("not_eligible"), e["input_sha256"].clone()), "{d}");
        let hold = json!({"event": "hold", "reason": "Awaiting the obstetric letter"});
        let h = replays(&app, Method::POST, &format!("/api/v1/patients/{consulted}/pathway/events"), &nurse, &key("hold"), &hold, "pathway.change", 201).await?;
        assert!(h["stage"].is_string() && h["next"].is_array(), "{h}");
        let pathway: Value = app.get_bearer(&nurse, &format!("/api/v1/patients/{consulted}/pathway")).await?.json().await?;
        assert_eq!((&pathway["stage"], &pathway["next"]), (&h["stage"], &h["next"]), "the answer is the pathway as read after");

        // Courses and protocols.
        let start = json!({"template": "KAP-SL", "first_date": "2030-01-07"});
        let c = replays(&app, Method::POST, &format!("/api/v1/patients/{p2}/courses"), &prescriber, &key("course"), &start, "appointment.change", 201).await?;
        assert_eq!(c["dosing_planned"], 3, "{c}");
        let review = json!({"decision": "continue", "reason": "PHQ-9 improving"});
        let r = replays(&app, Method::POST, &format!("/api/v1/courses/{course}/reviews"), &prescriber, &key("review"), &review, "course.review", 201).await?;
        assert_eq!((r["decision"].as_str(), r["course_status"].as_str()), (Some("continue"), Some("active")), "{r}");
        let version = json!({"definition": next, "reason": "Lower block agreed at the governance meeting"});
        let v = replays(&app, Method::POST, "/api/v1/protocols/intravenous-racemic/versions", &prescriber, &key("protocol"), &version, "protocol.change", 201).await?;
        assert_eq!(v["version"], "2026.2", "{v}");

        // A dosing session opened: answered with the session loaded in its transaction.
        let appointment = booked_dosing_appointment(&app, &nurse, 3).await?;
        let opened = replays(&app, Method::POST, &format!("/api/v1/appointments/{appointment}/session"), &nurse, &key("open"), &json!({}), "session.open", 201).await?;
        assert_eq!(opened["appointment_id"].as_str(), Some(appointment.as_str()), "{opened}");
        let shown: Value = app.get_bearer(&nurse, &format!("/api/v1/sessions/{}", opened["id"].as_str().unwrap_or_default())).await?.json().await?;
        assert_eq!((&shown["gates"], &shown["protocol"], &shown["state"]), (&opened["gates"], &opened["protocol"], &opened["state"]), "the session as loaded after");

        // The REMS form, record requests, discrepancies.
        // Submitted on the session's day on the clinic's calendar (not UTC's: from 00:00 to 08:00
        // UTC the clinic's today is UTC's yesterday).
        let shown: Value = app.get_bearer(&nurse, &format!("/api/v1/sessions/{session}/rems-form")).await?.json().await?;
        let today = shown["session_date"].as_str().unwrap_or_default().to_owned();
        let form = format!("/api/v1/sessions/{session}/rems-form/submissions");
        let f = replays(&app, Method::POST, &form, &nurse, &key("rems-form"), &json!({"submitted_on": today, "confirmation": "REMS-1"}), "rems_form.submit", 201).await?;
        assert_eq!(f["status"]["status"], "submitted", "{f}");
        let q = replays(&app, Method::POST, &format!("/api/v1/patients/{p3}/record-requests"), &nurse, &key("request"), &json!({"kind": "access"}), "record_request.receive", 201).await?;
        assert_eq!(q["kind"], "access", "{q}");
        let q = replays(&app, Method::POST, "/api/v1/portal/record-requests", &portal, &key("own-request"), &json!({"kind": "access"}), "record_request.receive", 201).await?;
        assert_eq!(q["kind"], "access", "{q}");
        let incident = json!({"location": fx.location, "description": "A container is missing from the safe"});
        let d = replays(&app, Method::POST, "/api/v1/cs/discrepancies", &prescriber, &key("incident"), &incident, "cs_ledger.discrepancy", 201).await?;
        assert_eq!(d["open"], true, "{d}");
        let events = format!("/api/v1/cs/discrepancies/{}/events", d["id"].as_str().unwrap_or_default());
        let note = json!({"kind": "note_added", "text": "Checked the sharps bin and the fridge"});
        let n = replays(&app, Method::POST, &events, &nurse, &key("note"), &note, "cs_ledger.discrepancy", 201).await?;
        assert_eq!(n["id"], d["id"], "{n}");
        let shown: Value = app.get_bearer(&nurse, &format!("/api/v1/cs/discrepancies/{}", d["id"].as_str().unwrap_or_default())).await?.json().await?;
        assert_eq!(shown, n, "the answer is the discrepancy as shown after");
        app.state.idempotency_locks.crash_after_commit(false);
        app.stop().await
    }
}
