use kapstone_testkit::{TestApp, both_backends};
use serde_json::{Value, json};

async fn first_patient_id(app: &TestApp, token: &str) -> anyhow::Result<String> {
    let list: Value = app.get_bearer(token, "/api/v1/patients?limit=1").await?.json().await?;
    Ok(list["items"][0]["id"].as_str().unwrap().to_owned())
}

async fn submit(app: &TestApp, token: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let resp = app.client().post(app.url(path)).bearer_auth(token).json(&body).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

both_backends! {
    async fn staff_enter_questionnaires_and_get_exact_scores(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let id = first_patient_id(&app, &nurse).await?;
        let path = format!("/api/v1/patients/{id}/questionnaires");
        let (alerts_before, submits_before) =
            (app.count("safety_alerts").await?, app.count("audit_events WHERE action = 'questionnaire.submit'").await?);

        let (s, r) = submit(&app, &nurse, &path, json!({"instrument": "gad7", "answers": [2,3,2,1,0,2,1]})).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!((r["total"].as_u64(), r["severity"].as_str()), (Some(11), Some("moderate")), "TV-GAD-1");
        assert!(r["id"].is_string());

        let pcl = [3,2,1,2,3,2,1,0,1,2,1,3,1,0,1,2,1,3,0,1];
        let (s, r) = submit(&app, &nurse, &path, json!({"instrument": "pcl5", "answers": pcl})).await?;
        assert_eq!(s, 201);
        assert_eq!(r["total"], 30);
        assert_eq!(r["clusters"], json!({"B": 11, "C": 3, "D": 8, "E": 8}));
        assert_eq!((r["provisional_dsm5"].as_bool(), r["provisional_cutoff"].as_bool()), (Some(true), Some(false)));
        assert!(r["severity"].is_null(), "no severity bands for the PCL-5");

        let (s, r) = submit(&app, &nurse, &path, json!({"instrument": "phq9", "answers": [1,1,1,1,0,0,0,0,0]})).await?;
        assert_eq!((s, r["severity"].as_str(), r["flags"].as_array().map(Vec::len)), (201, Some("minimal"), Some(0)));
        assert_eq!(app.count("safety_alerts").await?, alerts_before);
        assert_eq!(app.count("audit_events WHERE action = 'questionnaire.submit'").await?, submits_before + 3);
        app.stop().await
    }

    async fn invalid_answers_are_refused_naming_the_item_and_nothing_is_stored(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let id = first_patient_id(&app, &nurse).await?;
        let path = format!("/api/v1/patients/{id}/questionnaires");
        let stored_before = app.count("questionnaire_responses").await?;
        let cases = [
            (json!({"instrument": "phq9", "answers": [1,4,0,0,0,0,0,0,0]}), "answers[1]"),
            (json!({"instrument": "phq9", "answers": [1,1,1,1,1,1,1,1,null]}), "answers[8]"),
            (json!({"instrument": "phq9", "answers": [1,1,1,1,1,1,1,1]}), "answers[8]"),
            (json!({"instrument": "gad7", "answers": [0,0,"two",0,0,0,0]}), "answers[2]"),
            (json!({"instrument": "cssrs_screener", "answers": [true,false,true,null,null,false,null]}), "answers[2]"),
            (json!({"instrument": "cssrs_screener", "answers": [false,false,null,null,null,true,null]}), "answers[6]"),
            (json!({"instrument": "madrs", "answers": []}), "instrument"),
        ];
        for (body, field) in cases {
            let (s, r) = submit(&app, &nurse, &path, body.clone()).await?;
            assert_eq!(s, 422, "{body} -> {r}");
            assert_eq!(r["error"]["field"], field, "{body} -> {r}");
        }
        let (s, _) = submit(&app, &nurse, "/api/v1/patients/01a21565-0000-7000-8000-000000000000/questionnaires",
            json!({"instrument": "gad7", "answers": [0,0,0,0,0,0,0]})).await?;
        assert_eq!(s, 404);
        assert_eq!(app.count("questionnaire_responses").await?, stored_before);
        app.stop().await
    }

    async fn suicide_risk_raises_an_alert_until_a_prescriber_acknowledges_it(b) {
        let app = TestApp::demo(b).await?;
        let patient = app.token("patient2@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let open_before = app.get_bearer(&therapist, "/api/v1/safety-alerts").await?.json::<Value>().await?["items"]
            .as_array()
            .map_or(0, Vec::len);
        let raised_before = app.count("audit_events WHERE action = 'safety_alert.raise'").await?;
        let (s, r) = submit(&app, &patient, "/api/v1/portal/questionnaires",
            json!({"instrument": "phq9", "answers": [2,2,1,3,1,2,1,0,1]})).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!((r["total"].as_u64(), r["severity"].as_str()), (Some(13), Some("moderate")), "TV-PHQ-1");
        assert_eq!(r["flags"], json!(["suicide_risk"]));
        assert!(r["crisis_resources"].as_str().unwrap().contains("988"));

        let (s, r) = submit(&app, &patient, "/api/v1/portal/questionnaires",
            json!({"instrument": "cssrs_screener", "answers": [true,true,true,true,false,false,null]})).await?;
        assert_eq!((s, r["risk"].as_str()), (201, Some("high")), "TV-CS-5");

        let alerts: Value = app.get_bearer(&therapist, "/api/v1/safety-alerts").await?.json().await?;
        let items = alerts["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), open_before + 2);
        let (nurse_page, _) = app.browser_login("nurse@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let home = nurse_page.get(app.url("/")).send().await?.text().await?;
        let heading = format!("Safety alerts need a clinician now ({})", open_before + 2);
        assert!(home.contains(&heading), "every clinician sees open alerts");
        assert!(home.contains("Crisis workflow"), "high risk shows the crisis workflow");
        assert!(home.contains("A prescriber or therapist acknowledges"), "a nurse cannot acknowledge");

        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let ack = |token: String, id: String, note: &'static str| {
            let c = app.client();
            let url = app.url(&format!("/api/v1/safety-alerts/{id}/acknowledge"));
            async move { c.post(url).bearer_auth(token).json(&json!({"action_taken": note})).send().await }
        };
        let first = items.last().and_then(|a| a["id"].as_str()).unwrap().to_owned();
        assert_eq!(ack(nurse.clone(), first.clone(), "Called the patient, safe").await?.status(), 403);
        assert_eq!(ack(therapist.clone(), first.clone(), "ok").await?.status(), 422, "a real note is required");
        assert_eq!(ack(therapist.clone(), first.clone(), "Called the patient; safety plan reviewed").await?.status(), 204);
        assert_eq!(ack(therapist.clone(), first.clone(), "Called the patient again").await?.status(), 404, "only once");
        let alerts: Value = app.get_bearer(&therapist, "/api/v1/safety-alerts").await?.json().await?;
        assert_eq!(alerts["items"].as_array().unwrap().len(), open_before + 1);
        assert_eq!(app.count("audit_events WHERE action = 'safety_alert.raise'").await?, raised_before + 2);
        assert_eq!(app.count("audit_events WHERE action = 'safety_alert.acknowledge' AND actor_role = 'therapist'").await?, 1);
        app.stop().await
    }

    async fn a_patient_submits_only_for_themselves(b) {
        let app = TestApp::demo(b).await?;
        let p1 = app.token("patient1@demo.kapstone.test").await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let other = first_patient_id(&app, &nurse).await?;
        let stored_before = app.count("questionnaire_responses").await?;
        let (s, _) = submit(&app, &p1, &format!("/api/v1/patients/{other}/questionnaires"),
            json!({"instrument": "gad7", "answers": [0,0,0,0,0,0,0]})).await?;
        assert_eq!(s, 403);
        let (s, _) = submit(&app, &p1, "/api/v1/portal/questionnaires", json!({"instrument": "gad7", "answers": [0,0,0,0,0,0,0], "patient_id": other})).await?;
        assert_eq!(s, 400, "no way to name another patient");
        assert_eq!(app.count("questionnaire_responses").await?, stored_before);
        app.stop().await
    }
}

both_backends! {
    async fn a_clinician_sends_a_questionnaire_and_the_patient_fills_it_in_the_portal(b) {
        let app = TestApp::demo(b).await?;
        let p3 = app.token("patient3@demo.kapstone.test").await?;
        let me: Value = app.get_bearer(&p3, "/api/v1/portal/me").await?.json().await?;
        let patient_id = me["id"].as_str().unwrap().to_owned();

        let (nurse, _) = app.browser_login("nurse@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let csrf = app.csrf_of(&nurse).await?;
        let url = app.url(&format!("/patients/{patient_id}/assign"));
        let refused = nurse.post(&url).form(&[("csrf_token", csrf.as_str()), ("instrument", "madrs")]).send().await?;
        assert_eq!(refused.status(), 422, "only shipped instruments");
        let sent = nurse.post(&url).form(&[("csrf_token", csrf.as_str()), ("instrument", "phq9")]).send().await?;
        assert_eq!(sent.status(), 200);
        assert!(sent.text().await?.contains("Waiting for the patient:"));

        let (portal, _) = app.browser_login("patient3@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let home = portal.get(app.url("/portal")).send().await?.text().await?;
        let link = home.split("href=\"/portal/questionnaires/").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
        let form_url = app.url(&format!("/portal/questionnaires/{link}"));
        let form = portal.get(&form_url).send().await?.text().await?;
        assert!(form.contains("Little interest or pleasure in doing things"), "full PHQ-9 wording");
        let csrf = kapstone_testkit::hidden_csrf(&form).unwrap();

        // Item 9 left out: shown again with the message next to it, nothing stored.
        let mut fields: Vec<(String, String)> = (1..=8).map(|n| (format!("item{n}"), "1".to_owned())).collect();
        fields.push(("csrf_token".into(), csrf.clone()));
        let before = app.count("questionnaire_responses").await?;
        let missing = portal.post(&form_url).form(&fields).send().await?;
        assert_eq!(missing.status(), 422);
        let html = missing.text().await?;
        assert!(html.contains("item9-error") && html.contains("Please choose an answer"));
        assert_eq!(app.count("questionnaire_responses").await?, before);

        fields.push(("item9".into(), "2".into()));
        let done = portal.post(&form_url).form(&fields).send().await?;
        assert_eq!(done.status(), 200);
        let thanks = done.text().await?;
        assert!(thanks.contains("988"), "crisis resources after an item-9 answer");
        assert_eq!(app.count("questionnaire_responses").await?, before + 1);
        // The assignment is done: the form is gone and the portal no longer links to it (the
        // demo's pre-session questionnaires for patient 3's dosing sessions may still wait there).
        assert_eq!(portal.get(&form_url).send().await?.status(), 404);
        let path = form_url.trim_start_matches(&app.url(""));
        assert!(!portal.get(app.url("/portal")).send().await?.text().await?.contains(path));

        // Another patient cannot open it.
        let (other, _) = app.browser_login("patient1@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        assert_eq!(other.get(&form_url).send().await?.status(), 404);
        app.stop().await
    }
}

both_backends! {
    async fn the_pcl5_cut_point_is_a_clinic_setting_recorded_with_each_result(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let id = first_patient_id(&app, &nurse).await?;
        let path = format!("/api/v1/patients/{id}/questionnaires");
        // TV-PCL-4: total 32 — negative at 33, positive at the lenient 31.
        let mut items = vec![2; 16];
        items.extend([0, 0, 0, 0]);
        let (_, r) = submit(&app, &nurse, &path, json!({"instrument": "pcl5", "answers": items.clone()})).await?;
        assert_eq!((r["total"].as_u64(), r["provisional_cutoff"].as_bool(), r["cutoff"].as_u64()), (Some(32), Some(false), Some(33)));
        let v1 = r["settings_version"].as_i64().unwrap();

        let (admin, _) = app.browser_login("admin@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let csrf = app.csrf_of(&admin).await?;
        let bad = admin.post(app.url("/admin/settings")).form(&[("csrf_token", csrf.as_str()), ("pcl5_cutoff", "12")]).send().await?;
        assert_eq!(bad.status(), 422);
        let ok = admin.post(app.url("/admin/settings")).form(&[("csrf_token", csrf.as_str()), ("pcl5_cutoff", "31")]).send().await?;
        assert_eq!(ok.status(), 303);

        let (_, r) = submit(&app, &nurse, &path, json!({"instrument": "pcl5", "answers": items})).await?;
        assert_eq!((r["provisional_cutoff"].as_bool(), r["cutoff"].as_u64()), (Some(true), Some(31)));
        assert_eq!(r["provisional_dsm5"], true, "both methods are always reported");
        assert_eq!(r["settings_version"].as_i64(), Some(v1 + 1));
        app.stop().await
    }
}

both_backends! {
    async fn the_cssrs_screener_in_the_portal_follows_its_skip_logic(b) {
        let app = TestApp::demo(b).await?;
        let p2 = app.token("patient2@demo.kapstone.test").await?;
        let me: Value = app.get_bearer(&p2, "/api/v1/portal/me").await?.json().await?;
        let patient_id = me["id"].as_str().unwrap().to_owned();
        let (nurse, _) = app.browser_login("nurse@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let csrf = app.csrf_of(&nurse).await?;
        let url = app.url(&format!("/patients/{patient_id}/assign"));
        for _ in 0..2 {
            let sent = nurse.post(&url).form(&[("csrf_token", csrf.as_str()), ("instrument", "cssrs_screener")]).send().await?;
            assert_eq!(sent.status(), 200);
        }
        let (portal, _) = app.browser_login("patient2@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let home = portal.get(app.url("/portal")).send().await?.text().await?;
        let links: Vec<String> = home
            .split("href=\"/portal/questionnaires/")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(|s| app.url(&format!("/portal/questionnaires/{s}")))
            .collect();
        assert_eq!(links.len(), 2);
        let step1 = portal.get(&links[0]).send().await?.text().await?;
        assert!(step1.contains("name=\"q1\"") && step1.contains("name=\"q6\"") && !step1.contains("name=\"q3\""));
        let csrf = kapstone_testkit::hidden_csrf(&step1).unwrap();

        // Yes to 2 leads to questions 3–5; answering them (4 = yes) gives high risk (TV-CS-5).
        let step2 = portal
            .post(&links[0])
            .form(&[("csrf_token", csrf.as_str()), ("q1", "yes"), ("q2", "yes"), ("q6", "no")])
            .send()
            .await?;
        assert_eq!(step2.status(), 200);
        let html = step2.text().await?;
        assert!(html.contains("name=\"q3\"") && html.contains("name=\"q5\"") && !html.contains("name=\"q6a\""));
        let alerts_before = app.count("safety_alerts").await?;
        let done = portal
            .post(&links[0])
            .form(&[
                ("csrf_token", csrf.as_str()), ("q1", "yes"), ("q2", "yes"), ("q6", "no"),
                ("q3", "yes"), ("q4", "yes"), ("q5", "no"),
            ])
            .send()
            .await?;
        assert_eq!(done.status(), 200);
        assert!(done.text().await?.contains("988"));
        assert_eq!(app.count("safety_alerts").await?, alerts_before + 1);

        // No to 2 and 6: nothing more is asked and the risk is low (TV-CS-2).
        let page = portal.get(&links[1]).send().await?.text().await?;
        let csrf = kapstone_testkit::hidden_csrf(&page).unwrap();
        let low = portal
            .post(&links[1])
            .form(&[("csrf_token", csrf.as_str()), ("q1", "yes"), ("q2", "no"), ("q6", "no")])
            .send()
            .await?;
        assert_eq!(low.status(), 200);
        let stored = app.count("questionnaire_responses WHERE instrument = 'cssrs_screener' AND result LIKE '%\"risk\":\"low\"%'").await?;
        assert_eq!(stored, 1);
        app.stop().await
    }
}
