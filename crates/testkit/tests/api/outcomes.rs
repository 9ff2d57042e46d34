//! Measured outcomes (issue 7): a patient's outcomes computed by the domain (TV-PHQ-R1..R5) and
//! audited; the patient's own in the portal and never another's; the clinic dashboard with its
//! field-naming refusals and CSV; the course review (prescribers, a reason, append-only, the
//! course moving on); the clinic's versioned outcome definitions.

use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use serde_json::{Value, json};

async fn demo_patient(app: &TestApp, n: u8) -> anyhow::Result<String> {
    let me: Value = app
        .get_bearer(&app.token(&format!("patient{n}@demo.kapstone.test")).await?, "/api/v1/portal/me")
        .await?
        .json()
        .await?;
    Ok(me["id"].as_str().unwrap().to_owned())
}

/// The demo patients with an outcome history (six dosing sessions), by their PHQ-9 baseline.
async fn with_history(app: &TestApp, token: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let list: Value = app.get_bearer(token, "/api/v1/patients?limit=50").await?.json().await?;
    let mut out = Vec::new();
    for p in list["items"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap().to_owned();
        let o: Value = app.get_bearer(token, &format!("/api/v1/patients/{id}/outcomes")).await?.json().await?;
        if o["doses"].as_array().is_some_and(|s| s.len() == 6) {
            out.push((id, o));
        }
    }
    out.sort_by_key(|(_, o)| o["instruments"]["phq9"]["baseline"].as_u64());
    Ok(out)
}

fn period(days_back: i64) -> (String, String) {
    let today = jiff::Zoned::now().date();
    let from = today.checked_sub(jiff::Span::new().days(days_back)).unwrap();
    (from.to_string(), today.checked_add(jiff::Span::new().days(1)).unwrap().to_string())
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let r = app.client().post(app.url(path)).bearer_auth(token).json(&body).send().await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

both_backends! {
    async fn outcomes_per_patient_follow_the_domain_and_are_audited(b) {
        let app = TestApp::demo(b).await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let stories = with_history(&app, &prescriber).await?;
        assert_eq!(stories.len(), 3, "the demo has a responder, a non-responder and a remission");
        // Baselines 16 (remission), 19 (responder), 23 (non-responder).
        let (remission, responder, non_responder) = (&stories[0].1, &stories[1].1, &stories[2].1);
        let phq = |o: &Value| o["instruments"]["phq9"].clone();
        let r = phq(responder);
        assert_eq!((r["baseline"].as_u64(), r["latest"].as_u64()), (Some(19), Some(8)), "{r}");
        assert_eq!(r["change_pct"].as_f64(), Some(-57.9), "(8 - 19) / 19 = -57.9 %");
        assert_eq!((r["response"].as_bool(), r["remission"].as_bool()), (Some(true), Some(false)));
        assert!(r["series"].as_array().unwrap().iter().all(|p| p["at"].is_string() && p["total"].is_u64()));
        let n = phq(non_responder);
        assert_eq!((n["baseline"].as_u64(), n["response"].as_bool()), (Some(23), Some(false)), "{n}");
        let m = phq(remission);
        assert_eq!((m["response"].as_bool(), m["remission"].as_bool()), (Some(true), Some(true)), "16 -> 2");
        let pcl = &responder["instruments"]["pcl5"];
        assert!(pcl["response"].is_null() && pcl["response_not_computed"] == "no_definition", "{pcl}");
        assert_eq!(responder["doses"].as_array().unwrap().len(), 6);
        assert!(responder["settings_version"].is_i64());
        // An audited read naming the patient.
        let before = app.count("audit_events WHERE action = 'outcomes.read'").await?;
        let id = &stories[1].0;
        let s = app.get_bearer(&prescriber, &format!("/api/v1/patients/{id}/outcomes")).await?.status();
        assert_eq!(s, 200);
        assert_eq!(app.count("audit_events WHERE action = 'outcomes.read'").await?, before + 1);
        // The front desk does not read the clinical record; an unknown patient is a 404.
        let front = app.token("frontdesk@demo.kapstone.test").await?;
        assert_eq!(app.get_bearer(&front, &format!("/api/v1/patients/{id}/outcomes")).await?.status(), 403);
        let none = "/api/v1/patients/00000000-0000-7000-8000-000000000000/outcomes";
        assert_eq!(app.get_bearer(&prescriber, none).await?.status(), 404);
        // The chart page draws the three charts with the six dosing sessions marked.
        let (web, _) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        let page = web.get(app.url(&format!("/patients/{id}"))).send().await?.text().await?;
        assert_eq!(page.matches("<svg").count(), 2, "PHQ-9 and GAD-7 (no PCL-5 score, said in words)");
        assert!(page.contains("No PCL-5 score recorded"));
        assert_eq!(page.matches(r#"class="dosing-marker""#).count(), 12, "6 sessions on each drawn chart");
        assert!(page.contains("Baseline 19, latest 8 (-57.9 %): response; no remission."), "the summary in words");
        app.stop().await
    }

    async fn a_patient_sees_only_their_own_outcomes(b) {
        let app = TestApp::demo(b).await?;
        let (p1, p2) = (demo_patient(&app, 1).await?, demo_patient(&app, 2).await?);
        let t1 = app.token("patient1@demo.kapstone.test").await?;
        let t2 = app.token("patient2@demo.kapstone.test").await?;
        let mine: Value = app.get_bearer(&t1, "/api/v1/portal/outcomes").await?.json().await?;
        assert_eq!(mine["patient_id"], p1.as_str());
        let phq = &mine["instruments"]["phq9"];
        assert!(!phq["series"].as_array().unwrap().is_empty(), "{mine}");
        assert!(phq["response"].is_null() && phq["response_not_computed"] == "no_follow_up", "no dose yet: {phq}");
        let theirs: Value = app.get_bearer(&t2, "/api/v1/portal/outcomes").await?.json().await?;
        assert_eq!(theirs["patient_id"], p2.as_str());
        assert_ne!(theirs["instruments"]["phq9"]["series"], phq["series"]);
        // The staff route is closed to patients, for their own id and another's.
        for id in [&p1, &p2] {
            assert_eq!(app.get_bearer(&t1, &format!("/api/v1/patients/{id}/outcomes")).await?.status(), 403);
        }
        // Staff have no portal.
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        assert_eq!(app.get_bearer(&nurse, "/api/v1/portal/outcomes").await?.status(), 403);
        // The portal page draws the patient's own chart.
        let (web, _) = app.browser_login("patient1@demo.kapstone.test", PASSWORD).await?;
        let r = web.get(app.url("/portal/outcomes")).send().await?;
        assert_eq!(r.status(), 200);
        let page = r.text().await?;
        assert!(page.contains("<svg") && page.contains("My progress") && page.contains("988"));
        app.stop().await
    }

    async fn the_dashboard_reports_end_of_induction_outcomes_and_names_bad_fields(b) {
        let app = TestApp::demo(b).await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let (from, to) = period(200);
        let d: Value = app
            .get_bearer(&prescriber, &format!("/api/v1/reports/outcomes?from={from}&to={to}"))
            .await?
            .json()
            .await?;
        let all = d["end_of_induction"].as_array().unwrap().iter()
            .find(|g| g["instrument"] == "phq9" && g["route"] == "all").unwrap().clone();
        assert_eq!(all["n"], 3, "{d}");
        assert_eq!((all["response"]["count"].as_u64(), all["response"]["of"].as_u64()), (Some(2), Some(3)));
        assert_eq!((all["remission"]["count"].as_u64(), all["remission"]["of"].as_u64()), (Some(1), Some(3)));
        // Changes -14, -11 and -9 (or -11): the median is -11.
        assert_eq!(all["median_change_points"].as_f64(), Some(-11.0));
        let by_protocol = d["end_of_induction"].as_array().unwrap().iter()
            .find(|g| g["instrument"] == "phq9" && g["protocol"] == "sublingual-lozenge").unwrap();
        assert_eq!(by_protocol["n"], 3);
        assert!(d["sessions_held"].as_i64().unwrap() >= 18, "{d}");
        assert!(d["overdue_measures"].is_i64() && d["overdue_measures_note"].as_str().unwrap().contains("cadence"));
        assert!(d["open_safety_alerts"].as_i64().unwrap() >= 1, "the demo's patient 1 has an open alert");
        assert!(d["rems_forms_due"]["owed"].is_i64());
        let stages = d["patients_by_stage"].as_array().unwrap();
        assert_eq!(stages.iter().map(|s| s["patients"].as_i64().unwrap()).sum::<i64>(), 12, "every demo patient");
        let withdrawn = stages.iter().find(|s| s["stage"] == "withdrawn").unwrap();
        assert_eq!((withdrawn["active"].as_bool(), withdrawn["patients"].as_i64()), (Some(false), Some(1)));
        assert_eq!(d["active_patients"], 11, "{d}");
        // The default period is the last 90 days: these inductions started earlier.
        let recent: Value = app.get_bearer(&prescriber, "/api/v1/reports/outcomes").await?.json().await?;
        let n = recent["end_of_induction"].as_array().unwrap().iter()
            .find(|g| g["instrument"] == "phq9" && g["route"] == "all").unwrap()["n"].clone();
        assert_eq!(n, 0);
        // Bad input names its field.
        for (q, field) in [
            ("from=yesterday", "from"),
            ("to=2026-13-01", "to"),
            (&format!("from={to}&to={from}") as &str, "from"),
            ("location=nowhere", "location"),
            ("location=00000000-0000-7000-8000-000000000000", "location"),
        ] {
            let r = app.get_bearer(&prescriber, &format!("/api/v1/reports/outcomes?{q}")).await?;
            assert_eq!(r.status(), 422, "{q}");
            let body: Value = r.json().await?;
            assert_eq!(body["error"]["field"], field, "{q}: {body}");
        }
        // A location filter of the clinic's one location gives the same inductions.
        let locations: Value = app.get_bearer(&prescriber, "/api/v1/locations").await?.json().await?;
        let loc = locations["items"][0]["id"].as_str().unwrap();
        let at: Value = app
            .get_bearer(&prescriber, &format!("/api/v1/reports/outcomes?from={from}&to={to}&location={loc}"))
            .await?
            .json()
            .await?;
        assert_eq!(at["end_of_induction"][0]["n"], 3, "{at}");
        // Prescribers and admins; not nurses.
        let admin = app.token("admin@demo.kapstone.test").await?;
        assert_eq!(app.get_bearer(&admin, "/api/v1/reports/outcomes").await?.status(), 200);
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        assert_eq!(app.get_bearer(&nurse, "/api/v1/reports/outcomes").await?.status(), 403);
        // The page and its CSV.
        let (web, _) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        let page = web.get(app.url(&format!("/reports/outcomes?from={from}&to={to}"))).send().await?.text().await?;
        assert!(page.contains("Response and remission at the end of induction") && page.contains("2 of 3 (66.7 %)"));
        let bad = web.get(app.url("/reports/outcomes?from=nope")).send().await?;
        assert_eq!(bad.status(), 422);
        assert!(bad.text().await?.contains(r#"id="from-error""#));
        let csv = web.get(app.url(&format!("/reports/outcomes.csv?from={from}&to={to}"))).send().await?;
        assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
        let text = csv.text().await?;
        assert!(text.starts_with("section,instrument,route,protocol,n,measure,value"));
        assert!(text.contains(r#""end_of_induction","phq9","all","all","3","response","2 of 3 (66.7 %)""#), "{text}");
        app.stop().await
    }

    async fn a_prescriber_reviews_a_course_with_a_reason_and_stop_ends_it(b) {
        let app = TestApp::demo(b).await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let p3 = demo_patient(&app, 3).await?;
        let courses: Value = app.get_bearer(&nurse, &format!("/api/v1/patients/{p3}/courses")).await?.json().await?;
        let course = courses["items"][0]["id"].as_str().unwrap().to_owned();
        let same = courses["items"][0]["options"].clone();
        let path = format!("/api/v1/courses/{course}/reviews");
        let (s, _) = post(&app, &nurse, &path, json!({"decision": "continue", "reason": "doing well"})).await?;
        assert_eq!(s, 403, "a nurse does not decide the course review");
        let (s, r) = post(&app, &prescriber, &path, json!({"decision": "continue"})).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("reason")), "{r}");
        let (s, r) = post(&app, &prescriber, &path, json!({"decision": "pause", "reason": "x"})).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("decision")), "{r}");
        let (s, r) = post(&app, &prescriber, &path, json!({"decision": "modify", "reason": "x", "options": same})).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("options")), "nothing changed: {r}");
        assert_eq!(app.count("course_reviews").await?, 0);
        // Continue: recorded with the outcome summary, the next review three months on.
        let (s, r) = post(&app, &prescriber, &path, json!({"decision": "continue", "reason": "PHQ-9 improving"})).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!((r["decision"].as_str(), r["course_status"].as_str()), (Some("continue"), Some("active")));
        assert!(r["next_review_due"].is_string() && r["outcome_summary"]["instruments"].is_array(), "{r}");
        // Stop: the course ends and its future bookings are cancelled.
        let booked = "appointments WHERE status = 'booked' AND course_id IN \
                      (SELECT id FROM treatment_courses WHERE template = 'SPRAVATO-TRD')";
        let future = app.count(booked).await?;
        assert!(future > 0);
        let (s, r) = post(&app, &prescriber, &path, json!({"decision": "stop", "reason": "patient's choice"})).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(r["course_status"], "stopped");
        assert!(r["cancelled_bookings"].as_i64().unwrap() >= 1, "{r}");
        assert!(app.count(booked).await? < future);
        let list: Value = app.get_bearer(&nurse, &format!("/api/v1/patients/{p3}/courses")).await?.json().await?;
        assert_eq!(list["items"][0]["status"], "stopped");
        // A stopped course is not reviewed again; reviews are append-only and audited.
        let (s, _) = post(&app, &prescriber, &path, json!({"decision": "continue", "reason": "again"})).await?;
        assert_eq!(s, 409);
        let reviews: Value = app.get_bearer(&nurse, &path).await?.json().await?;
        assert_eq!(reviews["items"].as_array().unwrap().len(), 2);
        assert!(app.raw_sql("UPDATE course_reviews SET reason = 'changed'").await.is_err());
        assert!(app.raw_sql("DELETE FROM course_reviews").await.is_err());
        assert_eq!(app.count("audit_events WHERE action = 'course.review'").await?, 2);
        app.stop().await
    }

    async fn the_course_page_shows_outcomes_and_takes_the_review_form(b) {
        let app = TestApp::demo(b).await?;
        let p3 = demo_patient(&app, 3).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let courses: Value = app.get_bearer(&nurse, &format!("/api/v1/patients/{p3}/courses")).await?.json().await?;
        let course = courses["items"][0]["id"].as_str().unwrap().to_owned();
        let (web, _) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        let page = web.get(app.url(&format!("/patients/{p3}/courses"))).send().await?.text().await?;
        assert!(page.contains("Outcome summary") && page.contains("<svg") && page.contains("Record the review"));
        let csrf = app.csrf_of(&web).await?;
        let action = format!("/patients/{p3}/courses/{course}/review");
        let r = web.post(app.url(&action)).form(&[("csrf_token", csrf.as_str()), ("decision", "continue"), ("reason", "")]).send().await?;
        assert_eq!(r.status(), 422);
        let body = r.text().await?;
        assert!(body.contains(r#"role="alert""#) && body.contains("(reason)"), "the error names the reason");
        let r = web.post(app.url(&action))
            .form(&[("csrf_token", csrf.as_str()), ("decision", "continue"), ("reason", "Good early response")])
            .send().await?;
        assert_eq!(r.status(), 200);
        let body = r.text().await?;
        assert!(body.contains("Course review recorded: continue.") && body.contains("Good early response"));
        // A nurse sees no review form and is refused if she posts one.
        let (nweb, _) = app.browser_login("nurse@demo.kapstone.test", PASSWORD).await?;
        let page = nweb.get(app.url(&format!("/patients/{p3}/courses"))).send().await?.text().await?;
        assert!(!page.contains("Record the review"));
        let ncsrf = app.csrf_of(&nweb).await?;
        let r = nweb.post(app.url(&action)).form(&[("csrf_token", ncsrf.as_str()), ("decision", "stop"), ("reason", "x")]).send().await?;
        assert_eq!(r.status(), 403);
        app.stop().await
    }

    async fn outcome_definitions_are_versioned_clinic_settings(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let put = |token: String, body: Value| {
            let app = &app;
            async move {
                let r = app.client().put(app.url("/api/v1/settings/outcomes")).bearer_auth(token).json(&body).send().await?;
                Ok::<_, anyhow::Error>((r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null)))
            }
        };
        let (s, r) = put(admin.clone(), json!({"outcomes": {"phq9_response_percent": 0}})).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("phq9_response_percent")), "{r}");
        let (s, _) = put(prescriber.clone(), json!({"outcomes": {}})).await?;
        assert_eq!(s, 403);
        let (s, r) = put(admin.clone(), json!({"outcomes": {"response_needs_moderate_baseline": true}})).await?;
        assert_eq!(s, 200, "{r}");
        let version = r["version"].as_i64().unwrap();
        let p1 = demo_patient(&app, 1).await?;
        let o: Value = app.get_bearer(&prescriber, &format!("/api/v1/patients/{p1}/outcomes")).await?.json().await?;
        assert_eq!(o["settings_version"].as_i64(), Some(version));
        assert_eq!(o["settings"]["response_needs_moderate_baseline"], true);

        // The same definitions on the settings page, without script: a bad value names its field
        // and changes nothing; a good one is a new version, other settings kept.
        let (web, _) = app.browser_login("admin@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let csrf = app.csrf_of(&web).await?;
        let page = web.get(app.url("/admin/settings")).send().await?.text().await?;
        assert!(page.contains("name=\"phq9_remission_below\"") && page.contains("Outcome definitions"), "{page}");
        let bad = web
            .post(app.url("/admin/settings"))
            .form(&[("csrf_token", csrf.as_str()), ("outcome_fields", "1"), ("phq9_remission_below", "40")])
            .send()
            .await?;
        assert_eq!(bad.status(), 422);
        let text = bad.text().await?;
        assert!(text.contains("PHQ-9 score of 1 to 27"), "{text}");
        let unchanged: Value = app.get_bearer(&admin, "/api/v1/settings/outcomes").await?.json().await?;
        assert_eq!(unchanged["version"].as_i64(), Some(version));
        let ok = web
            .post(app.url("/admin/settings"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("outcome_fields", "1"),
                ("outcome_baseline", "last_before_first_dose"),
                ("phq9_response_percent", "40"),
                ("re_review_every_months", "6"),
            ])
            .send()
            .await?;
        assert_eq!(ok.status(), 303);
        let now: Value = app.get_bearer(&admin, "/api/v1/settings/outcomes").await?.json().await?;
        assert_eq!(now["version"].as_i64(), Some(version + 1));
        assert_eq!(now["outcomes"]["baseline"], "last_before_first_dose");
        assert_eq!(now["outcomes"]["phq9_response_percent"], 40);
        assert_eq!(now["outcomes"]["phq9_remission_below"], 5, "untouched fields keep their value");
        assert_eq!(now["outcomes"]["response_needs_moderate_baseline"], false, "an unticked box on the form is off");
        assert_eq!(now["course_review"]["re_review_every_months"], 6);
        app.stop().await
    }
}
