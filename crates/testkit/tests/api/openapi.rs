//! The OpenAPI document matches what the server sends (issue 8). Every `TestApp` checks every
//! `/api/v1` response against the document (`kapstone_testkit::openapi_check`); these tests call
//! the operations the other suites reach only with a refusal, and show that a mismatch fails.

use kapstone_testkit::{TestApp, both_backends};
use serde_json::{Value, json};

async fn call(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let c = app.client();
    let req = match method {
        "GET" => c.get(app.url(path)),
        "PUT" => c.put(app.url(path)),
        "DELETE" => c.delete(app.url(path)),
        _ => c.post(app.url(path)),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.bearer_auth(token).send().await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

both_backends! {
    async fn the_ledger_reads_and_writes_answer_as_documented(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let (s, registry) = call(&app, &nurse, "GET", "/api/v1/cs/registry", None).await?;
        anyhow::ensure!(s == 200, "{registry}");
        let location = registry["locations"]
            .as_array()
            .and_then(|l| l.iter().find(|l| !l["registration"].is_null()))
            .and_then(|l| l["location_id"].as_str())
            .unwrap_or_default()
            .to_owned();
        let (s, balance) = call(&app, &nurse, "GET", &format!("/api/v1/cs/balance?location={location}"), None).await?;
        anyhow::ensure!(s == 200, "{balance}");
        let line = &balance["items"][0];
        let (product, lot) = (line["product"].as_str().unwrap_or_default(), line["lot"].as_str().unwrap_or_default());
        let (s, body) =
            call(&app, &nurse, "GET", &format!("/api/v1/cs/lot?location={location}&product={product}&lot={lot}"), None)
                .await?;
        anyhow::ensure!(s == 200, "lot: {body}");

        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let (s, opened) = call(&app, &prescriber, "POST", "/api/v1/cs/discrepancies",
            Some(json!({"location": location, "description": "A container is missing from the safe"}))).await?;
        anyhow::ensure!(s == 201, "incident: {opened}");
        let id = opened["id"].as_str().unwrap_or_default();
        let (s, body) = call(&app, &nurse, "GET", &format!("/api/v1/cs/discrepancies/{id}"), None).await?;
        anyhow::ensure!(s == 200, "discrepancy: {body}");

        let (s, made) = call(&app, &admin, "POST", "/api/v1/webhooks",
            Some(json!({"url": "https://example.invalid/hook", "events": ["appointment.booked"]}))).await?;
        anyhow::ensure!(s == 201, "webhook: {made}");
        let (s, body) = call(&app, &admin, "GET", "/api/v1/webhooks", None).await?;
        anyhow::ensure!(s == 200 && body["items"].as_array().is_some_and(|i| !i.is_empty()), "webhooks: {body}");

        let (s, patients) = call(&app, &nurse, "GET", "/api/v1/patients", None).await?;
        anyhow::ensure!(s == 200, "{patients}");
        let patient = patients["items"][0]["id"].as_str().unwrap_or_default().to_owned();
        let (s, req) = call(&app, &nurse, "POST", &format!("/api/v1/patients/{patient}/record-requests"),
            Some(json!({"kind": "access"}))).await?;
        anyhow::ensure!(s == 201, "{req}");
        let rid = req["id"].as_str().unwrap_or_default();
        let (s, body) = call(&app, &nurse, "GET", &format!("/api/v1/patients/{patient}/record-requests"), None).await?;
        anyhow::ensure!(s == 200, "patient's requests: {body}");
        let (s, body) = call(&app, &nurse, "GET", &format!("/api/v1/record-requests/{rid}"), None).await?;
        anyhow::ensure!(s == 200, "request: {body}");
        // A request received two months ago is overdue; answered now, it is answered late.
        let received = (jiff::Zoned::now().date() - jiff::Span::new().days(60)).to_string();
        let (s, late) = call(&app, &nurse, "POST", &format!("/api/v1/patients/{patient}/record-requests"),
            Some(json!({"kind": "access", "received_on": received}))).await?;
        anyhow::ensure!(s == 201 && late["status"] == "overdue" && late.get("extended").is_none(), "overdue: {late}");
        let lid = late["id"].as_str().unwrap_or_default();
        let (s, body) = call(&app, &nurse, "GET", "/api/v1/record-requests", None).await?;
        anyhow::ensure!(s == 200 && body.to_string().contains("\"overdue\""), "requests: {body}");
        let (s, body) = call(&app, &nurse, "POST", &format!("/api/v1/record-requests/{lid}/steps"),
            Some(json!({"step": "provide"}))).await?;
        anyhow::ensure!(s == 200 && body["status"] == "answered" && body["late"] == true, "provided late: {body}");
        // The record set of a patient whose dosing session has events carries each event as logged.
        let (s, board) = call(&app, &nurse, "GET", "/api/v1/floor", None).await?;
        anyhow::ensure!(s == 200, "floor: {board}");
        let mut dosed = None;
        for id in board["chairs"].as_array().into_iter().flatten().flat_map(|c| c["sessions"].as_array().into_iter().flatten())
            .filter_map(|l| l["session_id"].as_str())
        {
            let (_, session) = call(&app, &nurse, "GET", &format!("/api/v1/sessions/{id}"), None).await?;
            if session["session"]["events"].as_i64().unwrap_or(0) > 0 {
                dosed = session["patient_id"].as_str().map(str::to_owned);
                break;
            }
        }
        let dosed = dosed.ok_or_else(|| anyhow::anyhow!("the demo floor has a session with events: {board}"))?;
        let (s, req) = call(&app, &nurse, "POST", &format!("/api/v1/patients/{dosed}/record-requests"),
            Some(json!({"kind": "access"}))).await?;
        anyhow::ensure!(s == 201, "{req}");
        let (s, set) = call(&app, &nurse, "GET", &format!("/api/v1/record-requests/{}/export", req["id"].as_str().unwrap_or_default()), None).await?;
        let logged = set["sections"].as_array().into_iter().flatten().filter(|s| s["key"] == "sessions")
            .flat_map(|s| s["items"].as_array().into_iter().flatten())
            .flat_map(|i| i["events"].as_array().into_iter().flatten())
            .count();
        anyhow::ensure!(s == 200 && logged > 0, "the export shows the session's events: {set}");
        app.stop().await
    }

    async fn walking_every_page_of_patients_returns_each_exactly_once(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        // Namesakes: the same family and given name, told apart only by the id tie-breaker.
        for _ in 0..3 {
            let body = json!({"given_name": "Robin", "family_name": "Ashdown", "birth_date": "1980-01-02", "sex_at_birth": "female"});
            let (s, p) = call(&app, &nurse, "POST", "/api/v1/patients", Some(body)).await?;
            anyhow::ensure!(s == 201, "{p}");
        }
        let total = app.count("patients").await?;
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/patients?limit=4&cursor={c}"),
                None => "/api/v1/patients?limit=4".to_owned(),
            };
            let (s, page) = call(&app, &nurse, "GET", &path, None).await?;
            anyhow::ensure!(s == 200, "{page}");
            let items = page["items"].as_array().cloned().unwrap_or_default();
            anyhow::ensure!(items.len() <= 4, "a page holds at most the limit");
            seen.extend(items.iter().filter_map(|p| p["id"].as_str().map(str::to_owned)));
            pages += 1;
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
            anyhow::ensure!(pages < 100, "the walk does not end");
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        anyhow::ensure!(unique.len() == seen.len(), "a patient came twice: {seen:?}");
        anyhow::ensure!(i64::try_from(seen.len())? == total, "{} of {total} patients seen", seen.len());
        // A search pages the same way.
        let (s, found) = call(&app, &nurse, "GET", "/api/v1/patients?q=Ashdown&limit=2", None).await?;
        anyhow::ensure!(s == 200 && found["items"].as_array().map(Vec::len) == Some(2), "{found}");
        let next = found["next_cursor"].as_str().unwrap_or_default().to_owned();
        let (s, rest) = call(&app, &nurse, "GET", &format!("/api/v1/patients?q=Ashdown&limit=2&cursor={next}"), None).await?;
        anyhow::ensure!(s == 200 && rest["items"].as_array().map(Vec::len) == Some(1) && rest["next_cursor"].is_null(), "{rest}");

        for (query, field) in [("limit=0", "limit"), ("limit=501", "limit"), ("limit=lots", "limit"), ("cursor=zz", "cursor"), ("cursor=7b7d", "cursor")] {
            let (s, e) = call(&app, &nurse, "GET", &format!("/api/v1/patients?{query}"), None).await?;
            anyhow::ensure!(s == 422 && e["error"]["field"] == field, "{query}: {s} {e}");
        }
        app.stop().await
    }

    async fn walking_every_page_of_the_audit_log_returns_each_event_exactly_once(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let (_, me) = call(&app, &admin, "GET", "/api/v1/auth/me", None).await?;
        let clinic = me["clinic_id"].as_str().unwrap_or_default().to_owned();
        let mut seqs: Vec<i64> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/audit?limit=37&cursor={c}"),
                None => "/api/v1/audit?limit=37".to_owned(),
            };
            let (s, page) = call(&app, &admin, "GET", &path, None).await?;
            anyhow::ensure!(s == 200, "{page}");
            seqs.extend(page["items"].as_array().into_iter().flatten().filter_map(|e| e["seq"].as_i64()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
            anyhow::ensure!(seqs.len() < 100_000, "the walk does not end");
        }
        // Newest first, no repeats, and every event of the clinic up to the first page's newest.
        anyhow::ensure!(seqs.windows(2).all(|w| w[0] > w[1]), "not strictly newest first");
        let newest = seqs.first().copied().unwrap_or_default();
        let expected = app.count(&format!("audit_events WHERE clinic_id = '{clinic}' AND seq <= {newest}")).await?;
        anyhow::ensure!(i64::try_from(seqs.len())? == expected, "{} of {expected} events", seqs.len());
        for (query, field) in [("limit=0", "limit"), ("limit=501", "limit"), ("cursor=not-hex", "cursor")] {
            let (s, e) = call(&app, &admin, "GET", &format!("/api/v1/audit?{query}"), None).await?;
            anyhow::ensure!(s == 422 && e["error"]["field"] == field, "{query}: {s} {e}");
        }
        app.stop().await
    }

    async fn an_unknown_path_or_method_under_the_api_answers_in_the_error_shape(b) {
        let app = TestApp::spawn(b).await?;
        let c = app.client();
        let doc: Value = c.get(app.url("/api/v1/openapi.json")).send().await?.json().await?;
        let error = &doc["components"]["schemas"]["Error"];
        anyhow::ensure!(error["required"] == json!(["error"]), "the error shape is documented: {error}");
        for path in ["/api/v1/nowhere", "/api/v1/patients/x/y/z", "/api/v1"] {
            let r = c.get(app.url(path)).send().await?;
            let (status, ct) = (r.status().as_u16(), r.headers().get("content-type").cloned());
            let body: Value = r.json().await?;
            anyhow::ensure!(status == 404 && body["error"]["code"] == "not_found", "{path}: {status} {body}");
            anyhow::ensure!(ct.as_ref().is_some_and(|v| v == "application/json"), "{path}: {ct:?}");
        }
        // A known path with a method it does not take: 405, the error shape, and Allow.
        let r = c.delete(app.url("/api/v1/openapi.json")).send().await?;
        let (status, allow) = (r.status().as_u16(), r.headers().get("allow").cloned());
        let body: Value = r.json().await?;
        anyhow::ensure!(status == 405 && body["error"]["code"] == "method_not_allowed", "{status} {body}");
        anyhow::ensure!(allow.is_some_and(|a| a.to_str().is_ok_and(|a| a.contains("GET"))), "Allow is kept");
        let r = c.put(app.url("/api/v1/auth/login")).json(&json!({})).send().await?;
        anyhow::ensure!(r.status() == 405, "{}", r.status());
        // Elsewhere the pages keep their HTML 404.
        let r = c.get(app.url("/nowhere")).send().await?;
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        anyhow::ensure!(r.status() == 404 && ct.starts_with("text/html"), "{ct}");
        // The harness checked each of these against the document's error shape.
        app.stop().await
    }

    async fn a_response_the_document_does_not_describe_fails_the_test(b) {
        let app = TestApp::spawn(b).await?;
        // The server answers a sign-in without a body with the error shape: no violation.
        let r = app.client().post(app.url("/api/v1/auth/login")).json(&json!({})).send().await?;
        anyhow::ensure!(r.status().is_client_error());
        anyhow::ensure!(app.take_violations().is_empty());
        // A violation, as the middleware records it, makes `stop()` fail with its text.
        app.violations.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push("GET /api/v1/x -> 200: wrong".into());
        let err = app.stop().await.err().map(|e| e.to_string()).unwrap_or_default();
        anyhow::ensure!(err.contains("did not match the OpenAPI document") && err.contains("GET /api/v1/x -> 200"), "{err}");
        Ok(())
    }
}
