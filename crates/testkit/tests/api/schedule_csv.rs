//! The schedule as CSV (issue 8): from the API and the schedule page, audited, bounded, and open
//! to a token with the scheduling scope only.

use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use serde_json::{Value, json};

both_backends! {
    async fn the_schedule_downloads_as_csv_for_a_range_of_days(b) {
        let app = TestApp::demo(b).await?;
        let front = app.token("frontdesk@demo.kapstone.test").await?;
        // Days are the clinic's (the demo is in Los Angeles), not this machine's.
        let today = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::get("America/Los_Angeles")?).date();
        let last = today.checked_add(jiff::Span::new().days(30))?;
        // The appointments the JSON list has in the same weeks (one day of margin for zones).
        let from = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(24))?;
        let to = from.checked_add(jiff::SignedDuration::from_hours(24 * 27))?;
        let list: Value = app.get_bearer(&front, &format!("/api/v1/appointments?limit=500&from={from}&to={to}")).await?.json().await?;
        let first = list["items"][0].clone();
        anyhow::ensure!(first.is_object(), "the demo has appointments ahead: {list}");
        let patient: Value =
            app.get_bearer(&front, &format!("/api/v1/patients/{}", first["patient_id"].as_str().unwrap_or(""))).await?.json().await?;
        let mrn = patient["mrn"].as_str().unwrap_or_default().to_owned();

        let audited = app.count("audit_events WHERE reason LIKE 'schedule CSV%'").await?;
        let resp = app.get_bearer(&front, &format!("/api/v1/appointments.csv?from={today}&to={last}")).await?;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str()?.starts_with("text/csv"));
        assert!(resp.headers()["content-disposition"].to_str()?.contains(&format!("schedule-{today}-to-{last}.csv")));
        let csv = resp.text().await?;
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("date,start,end,time_zone,location,room,type,status,mrn,patient,staff"));
        let rows: Vec<&str> = lines.collect();
        assert!(rows.len() >= list["items"].as_array().map_or(0, Vec::len), "{} rows", rows.len());
        assert!(rows.iter().any(|r| r.contains(&mrn)), "the CSV lists {mrn}");
        assert!(rows.iter().all(|r| r.matches(',').count() >= 10), "eleven fields a row");
        // Every appointment in the file starts on a day asked for (one running into the first day
        // from the evening before is not listed).
        for r in &rows {
            assert!(r[..10].parse::<jiff::civil::Date>().is_ok_and(|d| d >= today && d <= last), "{today}..{last}: {r}");
        }
        assert_eq!(app.count("audit_events WHERE reason LIKE 'schedule CSV%'").await?, audited + 1);

        // Bad ranges name their field.
        for (q, field) in [("from=2026-13-01", "from"), ("from=2026-03-10&to=2026-03-01", "to"), ("from=2026-01-01&to=2026-03-01", "to")] {
            let resp = app.get_bearer(&front, &format!("/api/v1/appointments.csv?{q}")).await?;
            assert_eq!(resp.status(), 422, "{q}");
            let err: Value = resp.json().await?;
            assert_eq!(err["error"]["field"], field, "{q}: {err}");
        }
        // A patient never; a token only with the scheduling scope.
        let patient = app.token("patient1@demo.kapstone.test").await?;
        assert_eq!(app.get_bearer(&patient, &format!("/api/v1/appointments.csv?from={today}")).await?.status(), 403);
        let admin = app.token("admin@demo.kapstone.test").await?;
        for (scope, expected) in [("scheduling", 200), ("clinical:read", 403)] {
            let t: Value = app.client().post(app.url("/api/v1/tokens")).bearer_auth(&admin)
                .json(&json!({"name": scope, "scopes": [scope], "expires_in_days": 1})).send().await?.json().await?;
            let token = t["token"].as_str().unwrap_or_default();
            let status = app.get_bearer(token, &format!("/api/v1/appointments.csv?from={today}")).await?.status();
            assert_eq!(status, expected, "{scope}");
        }

        // The schedule page links the day's CSV, and the link works in the browser.
        let (c, _) = app.browser_login("frontdesk@demo.kapstone.test", PASSWORD).await?;
        let page = c.get(app.url(&format!("/schedule?date={today}"))).send().await?.text().await?;
        assert!(page.contains(&format!("/schedule.csv?from={today}")));
        let resp = c.get(app.url(&format!("/schedule.csv?from={today}"))).send().await?;
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await?.starts_with("date,start,end"));
        app.stop().await
    }
}
