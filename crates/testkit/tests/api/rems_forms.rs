//! After a Spravato session (KAP-SPEC 5.6, 6.2, TV-SPR-4): the REMS Patient Monitoring Form
//! filled from the session, due 7 calendar days later, its submission recorded; the clinic's
//! dashboard by urgency; the printable session summary; the hand-out in the patient's portal.

use jiff::{SignedDuration, Timestamp, ToSpan};
use kapstone_testkit::{PASSWORD, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let r = app.client().post(app.url(path)).bearer_auth(token).json(body).send().await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

async fn get(app: &TestApp, token: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let r = app.get_bearer(token, path).await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

fn ago(t0: Timestamp, minutes: i64) -> String {
    (t0 - SignedDuration::from_mins(minutes)).to_string()
}

/// (status, field) of a refusal.
fn field_of(r: &(u16, Value)) -> (u16, String) {
    (r.0, r.1["error"]["field"].as_str().unwrap_or("").to_owned())
}

/// Runs demo patient 3's first booked Spravato session from check-in to discharge, 56 mg, the
/// first device 145 minutes ago and the discharge 2 minutes ago; returns the session id.
pub(crate) async fn discharged_spravato_session(
    app: &TestApp,
    nurse: &str,
    prescriber: &str,
    therapist: &str,
) -> anyhow::Result<String> {
    spravato_session_of(app, nurse, prescriber, therapist, 2).await
}

/// [`discharged_spravato_session`] with `devices` devices of 28 mg (2 or 3), five minutes apart.
pub(crate) async fn spravato_session_of(
    app: &TestApp,
    nurse: &str,
    prescriber: &str,
    therapist: &str,
    devices: i64,
) -> anyhow::Result<String> {
    let dose = 28 * devices;
    let front = app.token("frontdesk@demo.kapstone.test").await?;
    let p3 = {
        let t = app.token("patient3@demo.kapstone.test").await?;
        let (_, me) = get(app, &t, "/api/v1/portal/me").await?;
        me["id"].as_str().unwrap().to_owned()
    };
    let now = Timestamp::now();
    let to = now + SignedDuration::from_hours(24 * 30);
    let (_, list) = get(app, &front, &format!("/api/v1/appointments?limit=500&from={now}&to={to}")).await?;
    let a = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["patient_id"] == p3.as_str() && a["kind"] == "dosing" && a["status"] == "booked")
        .cloned()
        .expect("a booked Spravato session for patient 3");
    let (s, session) =
        post(app, nurse, &format!("/api/v1/appointments/{}/session", a["id"].as_str().unwrap()), &json!({})).await?;
    anyhow::ensure!(s == 201, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    let t0 = Timestamp::now();
    let step = |token: &str, path: String, body: Value| {
        let (app, token) = (app, token.to_owned());
        async move {
            let (s, r) = post(app, &token, &path, &body).await?;
            anyhow::ensure!(s == 201, "{path} {body} -> {s} {r}");
            anyhow::Ok(r)
        }
    };
    let events = format!("/api/v1/sessions/{id}/events");
    let vitals = format!("/api/v1/sessions/{id}/vitals");
    let scores = format!("/api/v1/sessions/{id}/scores");
    step(nurse, events.clone(), json!({"kind": "checked_in", "at": ago(t0, 160),
        "escort": {"name": "Sam Rivers", "phone": "+1 555 010 0199", "relationship": "partner"},
        "escort_confirmed_in_person": true,
        "state_of_mind": {"mood": 6, "sleep_hours": 7, "alcohol_or_substances_last_12h": false, "intoxication_signs": false},
        "pregnancy": "not_applicable"})).await?;
    step(
        nurse,
        vitals.clone(),
        json!({"systolic": 130, "diastolic": 80, "heart_rate": 72, "spo2": 98, "resp_rate": 14,
        "recorded_at": ago(t0, 155), "at": ago(t0, 155)}),
    )
    .await?;
    step(therapist, scores.clone(), json!({"moaas": 5, "cadss23": 0, "recorded_at": ago(t0, 155), "at": ago(t0, 155)}))
        .await?;
    step(
        prescriber,
        format!("/api/v1/sessions/{id}/dose-order"),
        json!({"request": {"protocol": "spravato-intranasal", "dose_mg": dose}, "at": ago(t0, 152)}),
    )
    .await?;
    step(nurse, events.clone(), json!({"kind": "cleared_for_dosing", "at": ago(t0, 150)})).await?;
    step(
        nurse,
        format!("/api/v1/sessions/{id}/administrations"),
        json!({"product": "SPRAVATO 28 mg nasal spray, kit of 2 devices (56 mg)", "ndc": "50458-028-02",
            "lot": "24KX117", "expiry": "2030-01-31", "dose_mg": dose, "route_snomed": "46713006", "at": ago(t0, 148)}),
    )
    .await?;
    for n in 0..devices {
        step(nurse, events.clone(), json!({"kind": "device_given", "at": ago(t0, 145 - 5 * n)})).await?;
    }
    // The 40-minute BP rises by +42: MON-03, acknowledged by the prescriber.
    let r = step(
        nurse,
        vitals.clone(),
        json!({"systolic": 172, "diastolic": 92, "recorded_at": ago(t0, 105), "at": ago(t0, 105)}),
    )
    .await?;
    let alert =
        r["alerts"].as_array().unwrap().iter().find(|a| a["alert"]["rule"] == "MON-03").cloned().expect("MON-03");
    step(
        prescriber,
        events.clone(),
        json!({"kind": "alert_acknowledged", "alert_id": alert["id"], "note": "Rechecking", "at": ago(t0, 104)}),
    )
    .await?;
    step(therapist, events.clone(), json!({"kind": "experience_ended", "at": ago(t0, 60)})).await?;
    step(
        nurse,
        vitals.clone(),
        json!({"systolic": 125, "diastolic": 80, "heart_rate": 70, "spo2": 98, "resp_rate": 14,
        "recorded_at": ago(t0, 10), "at": ago(t0, 10)}),
    )
    .await?;
    step(therapist, scores.clone(), json!({"moaas": 5, "cadss23": 2, "recorded_at": ago(t0, 10), "at": ago(t0, 10)}))
        .await?;
    step(
        nurse,
        events.clone(),
        json!({"kind": "discharge_assessment", "at": ago(t0, 3),
        "ready_to_leave": true, "on_room_air": true, "escort_present": true, "cssrs_at_discharge": "low",
        "recovery": {"oriented": true, "can_talk": true, "sits_up_and_walks_steadily_unaided": true,
            "nausea_controlled": true, "adequately_hydrated": true}}),
    )
    .await?;
    step(nurse, events, json!({"kind": "discharged", "instructions_given": true, "at": ago(t0, 2)})).await?;
    Ok(id)
}

fn value<'a>(form: &'a Value, id: &str) -> &'a Value {
    form["form"]["fields"].as_array().unwrap().iter().find(|f| f["id"] == id).map_or(&Value::Null, |f| &f["value"])
}

fn dashboard_line<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["items"].as_array().unwrap().iter().find(|r| r["session_id"] == id).unwrap_or(&Value::Null)
}

/// Moves a session's dose back by `days` (as if it had happened then).
async fn shift_dose_back(app: &TestApp, id: &str, days: i64) -> anyhow::Result<()> {
    let sql = match app.backend {
        TestBackend::Sqlite => format!(
            "UPDATE dosing_sessions SET dose_started_at = dose_started_at - {} WHERE id = X'{}'",
            days * 86_400_000_000,
            id.replace('-', "")
        ),
        TestBackend::Postgres => format!(
            "UPDATE dosing_sessions SET dose_started_at = dose_started_at - interval '{days} days' WHERE id = '{id}'"
        ),
    };
    anyhow::ensure!(app.raw_sql(&sql).await? == 1, "session {id} not moved");
    Ok(())
}

both_backends! {
    async fn the_rems_form_is_filled_from_the_session_due_in_7_days_and_its_submission_recorded(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let id = discharged_spravato_session(&app, &nurse, &prescriber, &therapist).await?;

        let (s, form) = get(&app, &nurse, &format!("/api/v1/sessions/{id}/rems-form")).await?;
        assert_eq!(s, 200, "{form}");
        assert_eq!(form["form"]["version"], "2021-11");
        assert_eq!(value(&form, "dose_administered"), &json!({"type": "dose", "value": {"choice": "mg56"}}));
        let minutes = value(&form, "treatment_duration_minutes")["value"].as_i64().unwrap();
        assert!((143..=144).contains(&minutes) && minutes >= 120, "{minutes}");
        assert_eq!(value(&form, "lot_number")["value"], "24KX117");
        assert_eq!(value(&form, "bp_before_administration")["value"], json!({"systolic": 130, "diastolic": 80}));
        assert_eq!(value(&form, "bp_40_min_post_administration")["value"], json!({"systolic": 172, "diastolic": 92}));
        assert_eq!(value(&form, "bp_before_completion")["value"], json!({"systolic": 125, "diastolic": 80}));
        assert_eq!(value(&form, "vitals_acceptable_before_administration")["value"], true);
        assert_eq!(value(&form, "hcp_email")["value"], "nurse@demo.kapstone.test");
        // The demo clinic's admin recorded the setting's address and the nurse's work telephone.
        assert_eq!(value(&form, "hcp_telephone")["value"], "+1 503 555 0142");
        assert_eq!(value(&form, "setting_address1")["value"], "1200 Harbour Light Way");
        assert_eq!(value(&form, "setting_zip")["value"], "97201");
        let missing: Vec<&str> = form["form"]["missing_required"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        for id in ["hcp_telephone", "setting_address1", "setting_city", "setting_state", "setting_zip", "dose_administered", "treatment_duration_minutes"] {
            assert!(!missing.contains(&id), "{id}: {missing:?}");
        }
        // TV-SPR-4: due 7 calendar days after the session.
        let date: jiff::civil::Date = form["session_date"].as_str().unwrap().parse()?;
        assert_eq!(form["due"], json!(date.checked_add(7.days())?.to_string()));
        assert_eq!(form["status"]["status"], "pending");

        let (s, list) = get(&app, &nurse, "/api/v1/rems-forms").await?;
        assert_eq!(s, 200, "{list}");
        assert_eq!(dashboard_line(&list, &id)["status"]["status"], "pending", "{list}");
        // (6 when the session ran before midnight on the clinic's calendar)
        assert!(matches!(dashboard_line(&list, &id)["days_left"].as_i64(), Some(6 | 7)), "{list}");

        // A submission dated tomorrow, or before the session, is refused naming the date.
        let submissions = format!("/api/v1/sessions/{id}/rems-form/submissions");
        let tomorrow = date.checked_add(2.days())?.to_string();
        let r = post(&app, &nurse, &submissions, &json!({"submitted_on": tomorrow})).await?;
        assert_eq!(field_of(&r), (422, "submitted_on".into()), "{}", r.1);
        let r = post(&app, &nurse, &submissions, &json!({"submitted_on": date.yesterday()?.to_string()})).await?;
        assert_eq!(field_of(&r), (422, "submitted_on".into()), "{}", r.1);
        let r = post(&app, &nurse, &submissions, &json!({"submitted_on": "next week"})).await?;
        assert_eq!(field_of(&r), (422, "submitted_on".into()), "{}", r.1);
        // The front desk cannot record it.
        let front = app.token("frontdesk@demo.kapstone.test").await?;
        let r = post(&app, &front, &submissions, &json!({"submitted_on": date.to_string()})).await?;
        assert_eq!(r.0, 403);
        assert_eq!(app.count("rems_form_submissions").await?, 0);

        // Overdue: the same session 9 days ago, not submitted.
        shift_dose_back(&app, &id, 9).await?;
        let (_, list) = get(&app, &nurse, "/api/v1/rems-forms").await?;
        let line = dashboard_line(&list, &id);
        assert_eq!(line["status"]["status"], "overdue", "{list}");
        assert!(matches!(line["days_left"].as_i64(), Some(-3 | -2)), "{line}");
        assert_eq!(list["items"][0]["session_id"], id.as_str(), "overdue comes first");

        // The submission is the nurse's attestation: not without a recent password entry.
        let today = date.to_string();
        app.age_authentication().await?;
        let r = post(&app, &nurse, &submissions, &json!({"submitted_on": today})).await?;
        assert_eq!((r.0, r.1["error"]["code"].as_str()), (422, Some("reauth_required")), "{}", r.1);
        assert_eq!(app.count("rems_form_submissions").await?, 0);
        let r = post(&app, &nurse, "/api/v1/auth/reauth", &json!({"password": kapstone_testkit::PASSWORD})).await?;
        assert_eq!(r.0, 200, "{}", r.1);
        // Recorded on the (real) session day: after the shifted due date, so late.
        let (s, r) = post(&app, &nurse, &submissions, &json!({"submitted_on": today, "confirmation": "REMS-12345"})).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(r["status"], json!({"status": "submitted", "on": today, "late": true}));
        let (_, list) = get(&app, &nurse, "/api/v1/rems-forms").await?;
        assert_eq!(dashboard_line(&list, &id)["status"]["status"], "submitted");
        assert_eq!(dashboard_line(&list, &id)["confirmation"], "REMS-12345");
        assert_eq!(app.count("audit_events WHERE action = 'rems_form.submit'").await?, 1);
        app.stop().await
    }

    async fn the_summary_and_form_pages_print_the_session_and_the_portal_shows_only_the_own_hand_out(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let id = discharged_spravato_session(&app, &nurse, &prescriber, &therapist).await?;

        let (c, _) = app.browser_login("nurse@demo.kapstone.test", PASSWORD).await?;
        let reads = app.count("audit_events WHERE action = 'patient.read'").await?;
        let page = c.get(app.url(&format!("/sessions/{id}/summary"))).send().await?;
        assert_eq!(page.status(), 200);
        let html = page.text().await?;
        for want in ["Session summary", "24KX117", "50458-028-02", "130/80", "172/92", "125/80", "MON-03", "Rechecking", "DC-08", "spravato-intranasal", "Given to the patient at discharge"] {
            assert!(html.contains(want), "summary lacks {want}");
        }
        assert!(app.count("audit_events WHERE action = 'patient.read'").await? > reads, "the summary is an audited read");

        // The discharged session's page names the next integration session (the demo books one for
        // patient 3) and links the summary and the REMS form.
        let html = c.get(app.url(&format!("/sessions/{id}"))).send().await?.text().await?;
        assert!(html.contains("Next integration session:"), "the integration session that follows");
        assert!(html.contains(&format!("/sessions/{id}/summary")) && html.contains(&format!("/sessions/{id}/rems-form")));
        let html = c.get(app.url(&format!("/sessions/{id}/rems-form"))).send().await?.text().await?;
        assert!(html.contains("To complete") && html.contains("56 mg") && html.contains("Due by"), "form page");
        assert!(html.contains("1200 Harbour Light Way") && html.contains("+1 503 555 0142"), "the setting and the HCP's telephone");
        let home = c.get(app.url("/rems-forms")).send().await?.text().await?;
        assert!(home.contains(&format!("/sessions/{id}/rems-form")) && home.contains("href=\"/rems-forms\""), "dashboard and nav");
        let csrf = app.csrf_of(&c).await?;
        let r = c.post(app.url(&format!("/sessions/{id}/rems-form")))
            .form(&[("csrf_token", csrf.as_str()), ("submitted_on", "2999-01-01"), ("confirmation", "")]).send().await?;
        assert_eq!(r.status(), 422);
        assert!(r.text().await?.contains("(submitted_on)"));

        // Patient 3 sees the hand-out of the session; patient 1 has none.
        let (p3, _) = app.browser_login("patient3@demo.kapstone.test", PASSWORD).await?;
        let html = p3.get(app.url("/portal")).send().await?.text().await?;
        assert!(html.contains("After your session on"), "patient 3 sees the hand-out");
        assert!(html.to_lowercase().contains("driv"), "the no-driving line");
        let (p1, _) = app.browser_login("patient1@demo.kapstone.test", PASSWORD).await?;
        let html = p1.get(app.url("/portal")).send().await?.text().await?;
        assert!(!html.contains("After your session on"), "patient 1 had no session");
        // Patients cannot open staff pages about it.
        let r = p3.get(app.url(&format!("/sessions/{id}/summary"))).send().await?;
        assert_eq!(r.status(), 403);
        let t = app.token("patient3@demo.kapstone.test").await?;
        assert_eq!(get(&app, &t, &format!("/api/v1/sessions/{id}/rems-form")).await?.0, 403);
        app.stop().await
    }
}

async fn put(app: &TestApp, token: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let r = app.client().put(app.url(path)).bearer_auth(token).json(body).send().await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

fn missing_ids(form: &Value) -> Vec<String> {
    form["form"]["missing_required"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

both_backends! {
    async fn an_admin_records_the_rems_setting_and_the_hcps_telephone_and_the_form_shows_them(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let id = discharged_spravato_session(&app, &nurse, &prescriber, &therapist).await?;
        let form_path = format!("/api/v1/sessions/{id}/rems-form");
        let (_, locations) = get(&app, &admin, "/api/v1/locations").await?;
        let location = locations["items"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(locations["items"][0]["rems_setting"]["rems_certified"], true, "{locations}");
        let setting = format!("/api/v1/locations/{location}/rems-setting");

        // The admin records a new address over the API; the form is filled from it.
        let (s, saved) = put(&app, &admin, &setting, &json!({"rems_certified": true, "address_line1": " 77  Example Street ",
            "city": "Salem", "state": "or", "zip": "97301-1234"})).await?;
        assert_eq!(s, 200, "{saved}");
        assert_eq!(saved, json!({"rems_certified": true, "address_line1": "77 Example Street", "address_line2": null,
            "city": "Salem", "state": "OR", "zip": "97301-1234"}));
        let (_, form) = get(&app, &nurse, &form_path).await?;
        assert_eq!(value(&form, "setting_address1")["value"], "77 Example Street");
        assert_eq!(value(&form, "setting_city")["value"], "Salem");
        assert_eq!(value(&form, "setting_state")["value"], "OR");
        assert_eq!(value(&form, "setting_zip")["value"], "97301-1234");
        assert_eq!(value(&form, "setting_address2"), &Value::Null, "optional, not recorded");

        // Bad input names the field and changes nothing.
        let audits = app.count("audit_events WHERE action = 'scheduling.configure'").await?;
        let good = json!({"rems_certified": true, "address_line1": "1 Other Road", "city": "Eugene", "state": "OR", "zip": "97401"});
        for (part, bad, field) in [("zip", json!("973"), "zip"), ("state", json!("Oregon"), "state"),
            ("state", json!("ZZ"), "state"), ("city", json!(""), "city"), ("address_line1", json!(" "), "address_line1")] {
            let mut body = good.clone();
            body[part] = bad;
            let r = put(&app, &admin, &setting, &body).await?;
            assert_eq!(field_of(&r), (422, field.to_owned()), "{body} -> {}", r.1);
        }
        let (_, locations) = get(&app, &admin, "/api/v1/locations").await?;
        assert_eq!(locations["items"][0]["rems_setting"]["address_line1"], "77 Example Street", "nothing stored");
        assert_eq!(app.count("audit_events WHERE action = 'scheduling.configure'").await?, audits);
        // Only an admin may set it.
        for token in [&nurse, &prescriber] {
            assert_eq!(put(&app, token, &setting, &good).await?.0, 403);
        }
        let (_, locations) = get(&app, &admin, "/api/v1/locations").await?;
        assert_eq!(locations["items"][0]["rems_setting"]["city"], "Salem");

        // The admin's page: a refused ZIP is shown again as typed, the field marked; a blank
        // address clears it, and the printable form then says what is still to complete.
        let (c, _) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        let csrf = app.csrf_of(&c).await?;
        let page = c.get(app.url("/admin/scheduling")).send().await?.text().await?;
        assert!(page.contains("REMS healthcare setting") && page.contains("value=\"77 Example Street\""), "the setting form");
        let form_page = format!("/admin/scheduling/locations/{location}/rems-setting");
        let r = c.post(app.url(&form_page)).form(&[("csrf_token", csrf.as_str()), ("rems_certified", "yes"),
            ("address_line1", "9 Typo Lane"), ("city", "Salem"), ("state", "OR"), ("zip", "9730")]).send().await?;
        assert_eq!(r.status(), 422);
        let html = r.text().await?;
        assert!(html.contains("(zip)") && html.contains("value=\"9730\"") && html.contains("value=\"9 Typo Lane\""), "typed values kept");
        assert!(html.contains(&format!("id=\"rems-{location}-zip\" name=\"zip\" maxlength=\"10\" inputmode=\"numeric\" autocomplete=\"postal-code\" value=\"9730\" aria-invalid=\"true\"")), "the ZIP is marked");
        let (_, form) = get(&app, &nurse, &form_path).await?;
        assert_eq!(value(&form, "setting_address1")["value"], "77 Example Street", "nothing stored");
        let r = c.post(app.url(&form_page)).form(&[("csrf_token", csrf.as_str()), ("rems_certified", "yes"),
            ("address_line1", ""), ("address_line2", ""), ("city", ""), ("state", ""), ("zip", "")]).send().await?;
        assert!(r.status().is_redirection(), "{}", r.status());
        let (_, form) = get(&app, &nurse, &form_path).await?;
        let missing = missing_ids(&form);
        for id in ["setting_address1", "setting_city", "setting_state", "setting_zip"] {
            assert!(missing.iter().any(|m| m == id), "{id}: {missing:?}");
        }
        let (_, locations) = get(&app, &admin, "/api/v1/locations").await?;
        assert_eq!(locations["items"][0]["rems_setting"]["rems_certified"], true, "still certified");
        let (nc, _) = app.browser_login("nurse@demo.kapstone.test", PASSWORD).await?;
        let html = nc.get(app.url(&format!("/sessions/{id}/rems-form"))).send().await?.text().await?;
        assert!(html.contains("To complete (required)") && html.contains("Scheduling set-up"), "shown as to complete, with where to record it");

        // The monitoring HCP's telephone: a bad number is refused naming the field and stores
        // nothing; a good one fills the form; blank clears it.
        let me: Value = app.get_bearer(&nurse, "/api/v1/auth/me").await?.json().await?;
        let nurse_id = me["id"].as_str().unwrap().to_owned();
        let phone_page = format!("/admin/users/{nurse_id}/work-phone");
        let r = c.post(app.url(&phone_page)).form(&[("csrf_token", csrf.as_str()), ("work_phone", "call the desk")]).send().await?;
        assert_eq!(r.status(), 422);
        let html = r.text().await?;
        assert!(html.contains("(work_phone)") && html.contains("value=\"call the desk\""), "named, typed value kept");
        let (_, form) = get(&app, &nurse, &form_path).await?;
        assert_eq!(value(&form, "hcp_telephone")["value"], "+1 503 555 0142", "nothing stored");
        let r = c.post(app.url(&phone_page)).form(&[("csrf_token", csrf.as_str()), ("work_phone", "+1 503 555 0199")]).send().await?;
        assert!(r.status().is_redirection(), "{}", r.status());
        let (_, form) = get(&app, &nurse, &form_path).await?;
        assert_eq!(value(&form, "hcp_telephone")["value"], "+1 503 555 0199");
        // A nurse cannot set anyone's, not even her own.
        let nurse_csrf = app.csrf_of(&nc).await?;
        let r = nc.post(app.url(&phone_page)).form(&[("csrf_token", nurse_csrf.as_str()), ("work_phone", "+1 503 555 0100")]).send().await?;
        assert_eq!(r.status(), 403);
        let r = nc.post(app.url(&form_page)).form(&[("csrf_token", nurse_csrf.as_str()), ("address_line1", "1 Nurse Way"),
            ("city", "Salem"), ("state", "OR"), ("zip", "97301")]).send().await?;
        assert_eq!(r.status(), 403);
        let (_, form) = get(&app, &nurse, &form_path).await?;
        assert_eq!(value(&form, "hcp_telephone")["value"], "+1 503 555 0199");
        assert!(missing_ids(&form).iter().any(|m| m == "setting_address1"), "the nurse's address was not stored");
        let r = c.post(app.url(&phone_page)).form(&[("csrf_token", csrf.as_str()), ("work_phone", " ")]).send().await?;
        assert!(r.status().is_redirection(), "{}", r.status());
        let (_, form) = get(&app, &nurse, &form_path).await?;
        assert!(missing_ids(&form).iter().any(|m| m == "hcp_telephone"));
        assert_eq!(app.count("audit_events WHERE action = 'user.update' AND reason LIKE 'work telephone%'").await?, 2 + 2, "the demo's two and these two");
        app.stop().await
    }
}
