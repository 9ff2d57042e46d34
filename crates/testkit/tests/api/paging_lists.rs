//! Cursor paging of the lists that used to answer everything at once (issue 8): the clinic's REMS
//! forms, a patient's dispensing log, the patient's own journal, and a patient's record requests
//! (staff and portal, once `{requests}` and now `{items, next_cursor}`). Walking each with a small
//! `?limit=` returns every row once, in the list's order, ending on `next_cursor: null`; a bad
//! `limit` or cursor is a 422 naming it.

use kapstone_testkit::{TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

/// Walks `path` with each of `limits` and checks every walk returns what one page of 500 holds,
/// in the same order, each row once; then the refusals of a bad `limit` and cursor.
async fn walks_alike(
    app: &TestApp,
    token: &str,
    path: &str,
    field: &str,
    limits: &[usize],
) -> anyhow::Result<Vec<Value>> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (s, whole) = app.get_json(token, &format!("{path}{sep}limit=500")).await?;
    anyhow::ensure!(s == 200 && whole["next_cursor"].is_null(), "{path}: {s} {whole}");
    let all = whole["items"].as_array().cloned().unwrap_or_default();
    let keys: Vec<String> = all.iter().map(|i| i[field].to_string()).collect();
    for &limit in limits {
        anyhow::ensure!(all.len() > limit, "{path}: {} rows do not need a second page of {limit}", all.len());
        let walked = app.walk_ids(token, path, limit, field).await?;
        anyhow::ensure!(walked == keys, "{path} by {limit}: {walked:?} is not {keys:?}");
    }
    app.refuses_bad_paging(token, path).await?;
    Ok(all)
}

/// An id as a SQL literal on this backend (a blob on SQLite, a uuid on PostgreSQL).
fn sql_id(app: &TestApp, id: &str) -> String {
    match app.backend {
        TestBackend::Sqlite => format!("X'{}'", id.replace('-', "")),
        TestBackend::Postgres => format!("'{id}'"),
    }
}

fn strs(items: &[Value], field: &str) -> Vec<String> {
    items.iter().map(|i| i[field].as_str().unwrap_or_default().to_owned()).collect()
}

both_backends! {
    async fn a_patients_record_requests_journal_and_dispensing_log_page_newest_or_oldest_first(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let patient2 = app.token("patient2@demo.kapstone.test").await?;
        let p2 = app.portal_patient_id(&patient2).await?;

        // Record requests: the staff list of a patient and the patient's own list, newest first.
        for n in 0..3 {
            let (s, r) = app.post_json(&nurse, &format!("/api/v1/patients/{p2}/record-requests"), json!({"kind": "access"})).await?;
            anyhow::ensure!(s == 201, "{r}");
            let (s, r) = app.post_json(&patient2, "/api/v1/portal/record-requests",
                json!({"kind": "amendment", "requested": format!("Correct line {n}")})).await?;
            anyhow::ensure!(s == 201, "{r}");
        }
        let theirs = app.count(&format!("record_requests WHERE patient_id = {}", sql_id(&app, &p2))).await?;
        let staff = walks_alike(&app, &nurse, &format!("/api/v1/patients/{p2}/record-requests"), "id", &[1, 2, 4]).await?;
        anyhow::ensure!(i64::try_from(staff.len())? == theirs && staff.iter().all(|r| r["patient_id"] == p2.as_str()), "{staff:?}");
        let own = walks_alike(&app, &patient2, "/api/v1/portal/record-requests", "id", &[2, 5]).await?;
        anyhow::ensure!(strs(&own, "id") == strs(&staff, "id"), "the portal lists what staff see");
        // Newest first: the last amendment asked for comes first.
        anyhow::ensure!(own[0]["requested"] == "Correct line 2", "{}", own[0]);
        let (s, none) = app.get_json(&nurse, &format!("/api/v1/patients/{p2}/record-requests?to=2001-01-01")).await?;
        anyhow::ensure!(s == 200 && none["items"] == json!([]) && none["next_cursor"].is_null(), "{none}");
        let (s, e) = app.get_json(&nurse, &format!("/api/v1/patients/{p2}/record-requests?patient={p2}")).await?;
        anyhow::ensure!(s == 422 && e["error"]["field"] == "patient", "the path names the patient: {e}");
        let (s, _) = app.get_json(&nurse, &format!("/api/v1/patients/{}/record-requests", uuid::Uuid::new_v4())).await?;
        anyhow::ensure!(s == 404, "an unknown patient: {s}");

        // The journal: five more entries, newest first, the prompt and crisis text on every page.
        for n in 0..5 {
            let (s, e) = app.post_json(&patient2, "/api/v1/portal/journal", json!({"text": format!("Entry {n}")})).await?;
            anyhow::ensure!(s == 201, "{e}");
        }
        let entries = app.count(&format!("journal_entries WHERE patient_id = {}", sql_id(&app, &p2))).await?;
        let journal = walks_alike(&app, &patient2, "/api/v1/portal/journal", "id", &[1, 2]).await?;
        anyhow::ensure!(i64::try_from(journal.len())? == entries && journal[0]["text"] == "Entry 4", "{journal:?}");
        let written: Vec<String> = strs(&journal, "written_at");
        anyhow::ensure!(written.windows(2).all(|w| w[0] >= w[1]), "newest first: {written:?}");
        let (_, first) = app.get_json(&patient2, "/api/v1/portal/journal?limit=1").await?;
        anyhow::ensure!(first["crisis"].is_string() && first["prompts"].is_array() && first["next_cursor"].is_string(), "{first}");

        // The dispensing log of a patient with more than one ledger entry, oldest first.
        let (_, patients) = app.get_json(&nurse, "/api/v1/patients?limit=500").await?;
        let mut dispensed = None;
        for p in patients["items"].as_array().into_iter().flatten().filter_map(|p| p["id"].as_str()) {
            let n = app.count(&format!("cs_ledger_entries WHERE patient_id = {}", sql_id(&app, p))).await?;
            if n > 1 {
                dispensed = Some((p.to_owned(), n));
                break;
            }
        }
        let (patient, n) = dispensed.ok_or_else(|| anyhow::anyhow!("the demo ledger names a patient twice"))?;
        let path = format!("/api/v1/patients/{patient}/dispensing");
        let log = walks_alike(&app, &nurse, &path, "id", &[1]).await?;
        anyhow::ensure!(i64::try_from(log.len())? == n, "{} of {n} entries", log.len());
        let at: Vec<jiff::Timestamp> = log.iter().filter_map(|e| e["occurred_at"].as_str()?.parse().ok()).collect();
        anyhow::ensure!(at.len() == log.len() && at.windows(2).all(|w| w[0] <= w[1]), "oldest first: {at:?}");
        let (s, none) = app.get_json(&nurse, &format!("{path}?from=2999-01-01")).await?;
        anyhow::ensure!(s == 200 && none["items"] == json!([]), "{none}");
        app.stop().await
    }

    async fn the_rems_forms_page_by_urgency_in_one_query(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        // One Spravato session run to discharge and its form submitted today.
        let real = super::rems_forms::discharged_spravato_session(&app, &nurse, &prescriber, &therapist).await?;
        let (s, form) = app.get_json(&nurse, &format!("/api/v1/sessions/{real}/rems-form")).await?;
        anyhow::ensure!(s == 200, "{form}");
        let today: jiff::civil::Date = form["session_date"].as_str().unwrap_or_default().parse()?;
        let (s, r) = app.post_json(&nurse, &format!("/api/v1/sessions/{real}/rems-form/submissions"),
            json!({"submitted_on": today.to_string()})).await?;
        anyhow::ensure!(s == 201, "{r}");
        // The demo's other sessions made finished Spravato sessions three days before they were
        // opened (the list only needs rows), the first of them with a form submitted the day before.
        let (sql, ago) = match app.backend {
            TestBackend::Sqlite => ("UPDATE dosing_sessions SET protocol_id = 'spravato-intranasal', state = 'discharged', \
                dose_started_at = created_at - 259200000000 WHERE protocol_id <> 'spravato-intranasal'", "randomblob(16)"),
            TestBackend::Postgres => ("UPDATE dosing_sessions SET protocol_id = 'spravato-intranasal', state = 'discharged', \
                dose_started_at = created_at - interval '3 days' WHERE protocol_id <> 'spravato-intranasal'", "gen_random_uuid()"),
        };
        let faked = usize::try_from(app.raw_sql(sql).await?)?;
        anyhow::ensure!(faked >= 3, "the demo floor has three sessions");
        let earlier = today.yesterday()?;
        let copied = app.raw_sql(&format!(
            "INSERT INTO rems_form_submissions (id, session_id, form_version, submitted_on, confirmation, submitted_by, recorded_at) \
             SELECT {ago}, (SELECT id FROM dosing_sessions WHERE id <> {real_id} ORDER BY created_at, id LIMIT 1), form_version, \
             '{earlier}', 'COPY-1', submitted_by, recorded_at FROM rems_form_submissions",
            real_id = sql_id(&app, &real))).await?;
        anyhow::ensure!(copied == 1);

        let forms = walks_alike(&app, &nurse, "/api/v1/rems-forms", "session_id", &[1, 2, 3]).await?;
        anyhow::ensure!(forms.len() == faked + 1, "{forms:?}");
        let statuses: Vec<&str> = forms.iter().map(|f| f["status"]["status"].as_str().unwrap_or_default()).collect();
        let open = faked - 1;
        anyhow::ensure!(statuses[..open].iter().all(|s| *s != "submitted") && statuses[open..] == ["submitted", "submitted"],
            "not yet submitted first: {statuses:?}");
        let dates = strs(&forms[..open], "session_date");
        anyhow::ensure!(dates.windows(2).all(|w| w[0] <= w[1]), "oldest session first: {dates:?}");
        let [real_line, copied_line] = &forms[open..] else { anyhow::bail!("{forms:?}") };
        anyhow::ensure!(real_line["session_id"] == real.as_str() && real_line["status"]["on"] == today.to_string(), "latest submission first");
        anyhow::ensure!(copied_line["status"]["on"] == earlier.to_string() && copied_line["confirmation"] == "COPY-1", "{copied_line}");
        anyhow::ensure!(forms.iter().all(|f| f["patient"].as_str().is_some_and(|p| p.contains(' '))), "named: {forms:?}");
        let (s, e) = app.get_json(&nurse, "/api/v1/rems-forms?from=2026-01-01").await?;
        anyhow::ensure!(s == 422 && e["error"]["field"] == "from", "the list takes no window: {e}");

        // The page lists them all, as before.
        let (c, _) = app.browser_login("nurse@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let html = c.get(app.url("/rems-forms")).send().await?.text().await?;
        for f in &forms {
            let id = f["session_id"].as_str().unwrap_or_default();
            anyhow::ensure!(html.contains(&format!("/sessions/{id}/rems-form")), "{id} on the page");
        }
        app.stop().await
    }
}
