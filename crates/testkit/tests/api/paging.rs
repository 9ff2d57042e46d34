//! Cursor paging of every list that grows with the clinic (issue 8): walking the pages with a
//! small `?limit=` returns each row exactly once and ends on `next_cursor: null`; a bad `limit`
//! or a cursor the list did not make is a 422 naming it; the shared filters (`patient`, `from`,
//! `to`) narrow the walk, and a list refuses a filter it does not take.

use jiff::{SignedDuration, Timestamp};
use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use serde_json::json;

/// Walks `path` with `limit` and checks it returns the `expected` rows, each once.
async fn walks(app: &TestApp, token: &str, path: &str, limit: usize, expected: i64) -> anyhow::Result<Vec<String>> {
    let ids = app.walk_ids(token, path, limit, "id").await?;
    anyhow::ensure!(i64::try_from(ids.len())? == expected, "{path}: {} of {expected} rows", ids.len());
    anyhow::ensure!(ids.len() > limit, "{path}: {} rows do not need a second page of {limit}", ids.len());
    app.refuses_bad_paging(token, path).await?;
    Ok(ids)
}

/// The 422 a query gets, with the field it names.
async fn refused(app: &TestApp, token: &str, path: &str) -> anyhow::Result<String> {
    let (s, e) = app.get_json(token, path).await?;
    anyhow::ensure!(s == 422, "{path}: {s} {e}");
    Ok(e["error"]["field"].as_str().unwrap_or_default().to_owned())
}

both_backends! {
    async fn every_clinical_list_pages_without_missing_or_repeating_a_row(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let patient2 = app.token("patient2@demo.kapstone.test").await?;
        let p2 = app.portal_patient_id(&patient2).await?;

        // Appointments: all of them by start, then one patient's, then a window.
        let all = walks(&app, &nurse, "/api/v1/appointments", 7, app.count("appointments").await?).await?;
        let mine = app.walk_ids(&nurse, &format!("/api/v1/appointments?patient={p2}"), 2, "id").await?;
        let expected = app.count(&format!("appointments WHERE patient_id = {}", sql_id(&app, &p2))).await?;
        anyhow::ensure!(i64::try_from(mine.len())? == expected && mine.iter().all(|i| all.contains(i)), "{mine:?}");
        let now = Timestamp::now();
        let week = now + SignedDuration::from_hours(24 * 7);
        let window = app.walk_pages(&nurse, &format!("/api/v1/appointments?from={now}&to={week}"), 3).await?;
        anyhow::ensure!(window.len() < all.len(), "the window narrows the list");
        for a in &window {
            let (start, end) = (a["start"].as_str().unwrap_or_default(), a["end"].as_str().unwrap_or_default());
            anyhow::ensure!(start.parse::<Timestamp>()? < week && end.parse::<Timestamp>()? > now, "{a}");
        }
        let starts: Vec<Timestamp> = app.walk_pages(&nurse, "/api/v1/appointments", 50).await?.iter()
            .filter_map(|a| a["start"].as_str().and_then(|s| s.parse().ok())).collect();
        anyhow::ensure!(starts.windows(2).all(|w| w[0] <= w[1]), "by start");

        // Safety alerts: three more for patient 2, then all open ones, then patient 2's.
        for _ in 0..3 {
            let (s, r) = app.post_json(&patient2, "/api/v1/portal/questionnaires",
                json!({"instrument": "cssrs_screener", "answers": [true,true,true,true,false,false,null]})).await?;
            anyhow::ensure!(s == 201, "{r}");
        }
        walks(&app, &therapist, "/api/v1/safety-alerts", 2, app.count("safety_alerts WHERE acknowledged_at IS NULL").await?).await?;
        let theirs = app.walk_pages(&therapist, &format!("/api/v1/safety-alerts?patient={p2}"), 2).await?;
        anyhow::ensure!(theirs.len() >= 3 && theirs.iter().all(|a| a["patient_id"] == p2.as_str()), "{theirs:?}");
        let (_, none) = app.get_json(&therapist, &format!("/api/v1/safety-alerts?from={week}")).await?;
        anyhow::ensure!(none["items"] == json!([]) && none["next_cursor"].is_null(), "{none}");

        // Measures due: the walk holds what one big page holds, in the same order.
        let due = app.walk_pages(&nurse, "/api/v1/measures/due", 1).await?;
        let (_, whole) = app.get_json(&nurse, "/api/v1/measures/due?limit=500").await?;
        anyhow::ensure!(due.len() > 1 && json!(due) == whole["items"] && whole["next_cursor"].is_null(), "{whole}");
        app.refuses_bad_paging(&nurse, "/api/v1/measures/due").await?;

        // Record requests: three more open ones.
        for _ in 0..3 {
            let (s, r) = app.post_json(&nurse, &format!("/api/v1/patients/{p2}/record-requests"), json!({"kind": "access"})).await?;
            anyhow::ensure!(s == 201, "{r}");
        }
        let open = "record_requests WHERE answered_on IS NULL OR (disagreement IS NOT NULL AND rebuttal IS NULL)";
        walks(&app, &nurse, "/api/v1/record-requests", 2, app.count(open).await?).await?;
        let theirs = app.walk_pages(&nurse, &format!("/api/v1/record-requests?patient={p2}"), 2).await?;
        anyhow::ensure!(theirs.len() >= 3 && theirs.iter().all(|r| r["patient_id"] == p2.as_str()), "{theirs:?}");

        // The controlled-substance ledger of a location: the cursor, and after_seq kept as a filter.
        let (_, registry) = app.get_json(&nurse, "/api/v1/cs/registry").await?;
        let location = registry["locations"].as_array().into_iter().flatten()
            .find(|l| !l["registration"].is_null()).and_then(|l| l["location_id"].as_str()).unwrap_or_default().to_owned();
        let entries = app.count(&format!("cs_ledger_entries WHERE location_id = {}", sql_id(&app, &location))).await?;
        let path = format!("/api/v1/cs/ledger?location={location}");
        let seqs: Vec<i64> = app.walk_pages(&nurse, &path, 3).await?.iter().filter_map(|e| e["seq"].as_i64()).collect();
        anyhow::ensure!(i64::try_from(seqs.len())? == entries && entries > 3, "{} of {entries} entries", seqs.len());
        anyhow::ensure!(seqs.windows(2).all(|w| w[0] < w[1]), "chain order, each once: {seqs:?}");
        app.refuses_bad_paging(&nurse, &path).await?;
        let after = seqs[1];
        let rest: Vec<i64> = app.walk_pages(&nurse, &format!("{path}&after_seq={after}"), 3).await?.iter()
            .filter_map(|e| e["seq"].as_i64()).collect();
        anyhow::ensure!(rest == seqs[2..], "after_seq keeps the entries after it: {rest:?}");

        // Bad filters name themselves.
        anyhow::ensure!(refused(&app, &nurse, "/api/v1/appointments?patient=nobody").await? == "patient");
        anyhow::ensure!(refused(&app, &nurse, "/api/v1/safety-alerts?from=March").await? == "from");
        anyhow::ensure!(refused(&app, &nurse, "/api/v1/record-requests?from=2026-03-02&to=2026-03-01").await? == "to");
        anyhow::ensure!(refused(&app, &nurse, "/api/v1/measures/due?to=2026-02-30").await? == "to");
        app.stop().await
    }

    async fn the_patients_page_pages_by_keyset_without_script(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        // More than one page of 50 Ashdowns, three of them namesakes told apart only by their id.
        let missing = 53;
        for n in 0..missing {
            let given = if n < 3 { "Robin".to_owned() } else { format!("Filler{n}") };
            let body = json!({"given_name": given, "family_name": "Ashdown", "birth_date": "1980-01-02", "sex_at_birth": "female"});
            let (s, p) = app.post_json(&nurse, "/api/v1/patients", body).await?;
            anyhow::ensure!(s == 201, "{p}");
        }
        let total = usize::try_from(app.count("patients").await?)?;
        let (c, _) = app.browser_login("nurse@demo.kapstone.test", PASSWORD).await?;
        let mut seen: Vec<String> = Vec::new();
        let mut url = "/patients".to_owned();
        for page in 0.. {
            let r = c.get(app.url(&url)).send().await?;
            anyhow::ensure!(r.status() == 200, "{url}: {}", r.status());
            let html = r.text().await?;
            anyhow::ensure!(html.contains("First page") == (page > 0), "{url}: a way back to the first page after it");
            let (ids, next) = patients_on(&html);
            anyhow::ensure!(ids.len() <= 50, "{url}: {} rows", ids.len());
            seen.extend(ids);
            match next {
                Some(n) => url = n,
                None => break,
            }
            anyhow::ensure!(page < 20, "the pages do not end");
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        anyhow::ensure!(unique.len() == seen.len() && seen.len() == total, "{} seen, {} unique, {total} patients", seen.len(), unique.len());
        // A search pages the same way, keeping its words.
        let (first, next) = patients_on(&c.get(app.url("/patients?q=Ashdown")).send().await?.text().await?);
        anyhow::ensure!(first.len() == 50, "{}", first.len());
        let next = next.ok_or_else(|| anyhow::anyhow!("no next page of the search"))?;
        anyhow::ensure!(next.contains("q=Ashdown") && next.contains("cursor="), "{next}");
        let (rest, last) = patients_on(&c.get(app.url(&next)).send().await?.text().await?);
        anyhow::ensure!(rest.len() + 50 == missing && last.is_none() && rest.iter().all(|r| !first.contains(r)), "{next}: {} more, {last:?}", rest.len());
        // A cursor the page did not make is refused, not a silent first page.
        anyhow::ensure!(c.get(app.url("/patients?cursor=zz")).send().await?.status() == 422);
        app.stop().await
    }

    async fn every_admin_list_pages_without_missing_or_repeating_a_row(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let patient2 = app.token("patient2@demo.kapstone.test").await?;
        let p2 = app.portal_patient_id(&patient2).await?;

        let users = walks(&app, &admin, "/api/v1/users", 3, app.count("users").await?).await?;
        let (_, account) = app.get_json(&admin, &format!("/api/v1/users?patient={p2}")).await?;
        let items = account["items"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(items.len() == 1 && items[0]["patient_id"] == p2.as_str(), "{account}");
        anyhow::ensure!(users.contains(&items[0]["id"].to_string()));

        for n in 0..3 {
            let (s, t) = app.post_json(&admin, "/api/v1/tokens",
                json!({"name": format!("Integration {n}"), "scopes": ["clinical:read"], "expires_in_days": 30})).await?;
            anyhow::ensure!(s == 201, "{t}");
        }
        walks(&app, &admin, "/api/v1/tokens", 2, app.count("api_tokens").await?).await?;
        anyhow::ensure!(refused(&app, &admin, &format!("/api/v1/tokens?patient={p2}")).await? == "patient", "not a token filter");

        let (s, hook) = app.post_json(&admin, "/api/v1/webhooks",
            json!({"url": "https://example.invalid/hook", "events": ["questionnaire.submitted"]})).await?;
        anyhow::ensure!(s == 201, "{hook}");
        for _ in 0..3 {
            let (s, r) = app.post_json(&patient2, "/api/v1/portal/questionnaires",
                json!({"instrument": "gad7", "answers": [0,1,0,1,0,1,0]})).await?;
            anyhow::ensure!(s == 201, "{r}");
        }
        let ids = walks(&app, &admin, "/api/v1/webhooks/deliveries", 2, app.count("webhook_deliveries").await?).await?;
        let newest_first: Vec<String> = app.walk_pages(&admin, "/api/v1/webhooks/deliveries", 50).await?.iter()
            .filter_map(|d| d["created_at"].as_str().map(str::to_owned)).collect();
        anyhow::ensure!(newest_first.windows(2).all(|w| w[0] >= w[1]), "newest first: {newest_first:?}");
        let tomorrow = Timestamp::now() + SignedDuration::from_hours(24);
        let (_, none) = app.get_json(&admin, &format!("/api/v1/webhooks/deliveries?from={tomorrow}")).await?;
        anyhow::ensure!(none["items"] == json!([]) && ids.len() >= 3, "{none}");
        anyhow::ensure!(refused(&app, &admin, &format!("/api/v1/webhooks/deliveries?patient={p2}")).await? == "patient");
        app.stop().await
    }
}

/// The patients a `/patients` page links to, and its "Next page" link.
fn patients_on(page: &str) -> (Vec<String>, Option<String>) {
    let ids = page
        .split("href=\"/patients/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .map(str::to_owned)
        .collect();
    let next = page
        .split("rel=\"next\"")
        .next()
        .filter(|before| before.len() < page.len())
        .and_then(|before| before.rsplit("href=\"").next())
        .and_then(|rest| rest.split('"').next())
        .map(|h| h.replace("&amp;", "&").replace("&#38;", "&"));
    (ids, next)
}

/// An id as a SQL literal on this backend (a blob on SQLite, a uuid on PostgreSQL).
fn sql_id(app: &TestApp, id: &str) -> String {
    match app.backend {
        kapstone_testkit::TestBackend::Sqlite => format!("X'{}'", id.replace('-', "")),
        kapstone_testkit::TestBackend::Postgres => format!("'{id}'"),
    }
}
