//! Treatment courses over the API: started only for an allowed route, planned from the template,
//! booked in one go with refusals reported per date.

use kapstone_testkit::{TestApp, both_backends};
use serde_json::{Value, json};

async fn demo_patient(app: &TestApp, n: u8) -> anyhow::Result<String> {
    let me: Value = app
        .get_bearer(&app.token(&format!("patient{n}@demo.kapstone.test")).await?, "/api/v1/portal/me")
        .await?
        .json()
        .await?;
    Ok(me["id"].as_str().unwrap().to_owned())
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let r = app.client().post(app.url(path)).bearer_auth(token).json(&body).send().await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

both_backends! {
    async fn the_demo_course_follows_the_spravato_schedule(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let p3 = demo_patient(&app, 3).await?;
        let list: Value = app.get_bearer(&nurse, &format!("/api/v1/patients/{p3}/courses")).await?.json().await?;
        let c = &list["items"][0];
        assert_eq!(c["template"], "SPRAVATO-TRD");
        assert_eq!(c["dosing_planned"], 14, "8 induction + 4 weekly + 2 from week 9");
        assert!(c["dosing_booked"].as_i64().unwrap() >= 8, "{c}");
        assert_eq!(c["phase"], "induction");
        let first = c["plan"].as_array().unwrap().iter().find(|p| p["kind"] == "dosing").unwrap();
        assert_eq!(first["note"], "day 1: 56 mg (label)");
        // Twice a week in weeks 1-4: the second dosing date is three days after the first.
        let dates: Vec<String> = c["plan"].as_array().unwrap().iter().filter(|p| p["kind"] == "dosing")
            .map(|p| p["date"].as_str().unwrap().to_owned()).collect();
        let d0: jiff::civil::Date = dates[0].parse()?;
        let d1: jiff::civil::Date = dates[1].parse()?;
        assert_eq!((d1 - d0).get_days(), 3);
        app.stop().await
    }

    async fn a_course_needs_an_allowed_route_and_books_what_it_can(b) {
        let app = TestApp::demo(b).await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let p2 = demo_patient(&app, 2).await?;
        let path = format!("/api/v1/patients/{p2}/courses");
        let (s, r) = post(&app, &prescriber, &path, json!({"template": "IV-6", "first_date": "2030-01-07"})).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("template")), "patient 2 is eligible for lozenges only");
        let (s, _) = post(&app, &nurse, &path, json!({"template": "KAP-SL", "first_date": "2030-01-07"})).await?;
        assert_eq!(s, 403, "a prescriber starts a course");
        let (s, r) = post(&app, &prescriber, &path,
            json!({"template": "KAP-SL", "first_date": "2030-01-07", "options": {"kap_sessions": 2}})).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("kap_sessions")), "KAP-SL has at least 3 sessions");
        let (s, c) = post(&app, &prescriber, &path, json!({"template": "KAP-SL", "first_date": "2030-01-07"})).await?;
        assert_eq!(s, 201, "{c}");
        assert_eq!(c["dosing_planned"], 3);
        // Patient 2 has not signed the consent yet: every date is refused, naming the gate.
        let staff: Value = app.get_bearer(&nurse, "/api/v1/staff").await?.json().await?;
        let ids: Vec<&str> = staff["items"].as_array().unwrap().iter()
            .filter(|u| u["role"] == "nurse" || u["name"] == "Alex Therapist, LMFT").map(|u| u["id"].as_str().unwrap()).collect();
        let rooms: Value = app.get_bearer(&nurse, "/api/v1/rooms").await?.json().await?;
        let room = rooms["items"][1]["id"].as_str().unwrap();
        let before = app.count("appointments").await?;
        let (s, r) = post(&app, &nurse, &format!("/api/v1/courses/{}/book", c["id"].as_str().unwrap()),
            json!({"time": "09:00", "staff_ids": ids, "room_id": room})).await?;
        assert_eq!(s, 200, "{r}");
        let items = r["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(|i| i["refused"].as_str().is_some_and(|m| m.contains("consent"))), "{r}");
        assert_eq!(app.count("appointments").await?, before);
        app.stop().await
    }
}

both_backends! {
    async fn a_patient_asks_to_move_an_appointment_and_the_front_desk_sees_it(b) {
        let app = TestApp::demo(b).await?;
        let (portal, _) = app.browser_login("patient3@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let page = portal.get(app.url("/portal")).send().await?.text().await?;
        let csrf = kapstone_testkit::hidden_csrf(&page).unwrap();
        let appt = page.split("/portal/appointments/").nth(1).and_then(|s| s.split('/').next()).unwrap().to_owned();
        // Another patient cannot ask about it.
        let (other, _) = app.browser_login("patient1@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let other_csrf = kapstone_testkit::hidden_csrf(&other.get(app.url("/portal")).send().await?.text().await?).unwrap();
        let url = app.url(&format!("/portal/appointments/{appt}/request"));
        let r = other.post(&url).form(&[("csrf_token", other_csrf.as_str()), ("kind", "cancel")]).send().await?;
        assert_eq!(r.status(), 404);
        assert_eq!(app.count("appointment_requests").await?, 0);
        let r = portal.post(&url).form(&[("csrf_token", csrf.as_str()), ("kind", "sideways")]).send().await?;
        assert_eq!(r.status(), 422);
        let r = portal.post(&url).form(&[("csrf_token", csrf.as_str()), ("kind", "reschedule"), ("note", "Work trip")]).send().await?;
        assert_eq!(r.status(), 303);
        assert_eq!(app.count("appointment_requests").await?, 1);
        let (desk, _) = app.browser_login("frontdesk@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let home = desk.get(app.url("/")).send().await?.text().await?;
        assert!(home.contains("A patient asks to reschedule an appointment"), "the front desk sees the request");
        assert!(home.contains(&format!("/schedule/appointments/{appt}")));
        app.stop().await
    }
}

both_backends! {
    async fn an_admin_sets_up_the_schedule_from_the_page(b) {
        let app = TestApp::demo(b).await?;
        let (admin, _) = app.browser_login("admin@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let page = admin.get(app.url("/admin/scheduling")).send().await?.text().await?;
        assert!(page.contains("Chair 1") && page.contains("dosing-spravato"));
        let csrf = kapstone_testkit::hidden_csrf(&page).unwrap();
        let r = admin.post(app.url("/admin/scheduling/locations"))
            .form(&[("csrf_token", csrf.as_str()), ("name", "Annex"), ("time_zone", "Mars/Olympus")]).send().await?;
        assert_eq!(r.status(), 422, "an unknown time zone is refused");
        assert!(r.text().await?.contains("time_zone"));
        let r = admin.post(app.url("/admin/scheduling/locations"))
            .form(&[("csrf_token", csrf.as_str()), ("name", "Annex"), ("time_zone", "America/Denver")]).send().await?;
        assert_eq!(r.status(), 303);
        // A type from the form: 15 + 120 + 30 minutes, a prescriber or nurse and a therapist, a chair.
        let form = [("csrf_token", csrf.as_str()), ("code", "dosing-in"), ("name", "Dosing: intranasal racemic"),
            ("kind", "dosing"), ("route", "intranasal_racemic"), ("check_in_minutes", "15"), ("observation_minutes", "120"),
            ("recovery_minutes", "30"), ("need1", "prescriber"), ("need1", "nurse"), ("need2", "therapist"), ("needs_room", "yes")];
        assert_eq!(admin.post(app.url("/admin/scheduling/types")).form(&form).send().await?.status(), 303);
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let types: Value = app.get_bearer(&nurse, "/api/v1/appointment-types").await?.json().await?;
        let t = types["items"].as_array().unwrap().iter().find(|t| t["code"] == "dosing-in").unwrap();
        assert_eq!((t["minutes"].as_i64(), t["needs_room"].as_bool()), (Some(165), Some(true)));
        assert_eq!(t["staff"], json!([["prescriber", "nurse"], ["therapist"]]));
        // The front desk cannot open the set-up.
        let (desk, _) = app.browser_login("frontdesk@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        assert_eq!(desk.get(app.url("/admin/scheduling")).send().await?.status(), 403);
        app.stop().await
    }
}

both_backends! {
    async fn a_moved_session_keeps_its_course_and_preparation_and_a_hold_blocks_dosing(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let p3 = demo_patient(&app, 3).await?;
        let courses: Value = app.get_bearer(&nurse, &format!("/api/v1/patients/{p3}/courses")).await?.json().await?;
        let booked_before = courses["items"][0]["dosing_booked"].as_i64().unwrap();
        // The demo's first course session has a complete preparation; move it a week later.
        let ready: Vec<(String, String)> = {
            let from = jiff::Timestamp::now().to_string();
            let to = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(24 * 60))?.to_string();
            let list: Value = app.get_bearer(&nurse, &format!("/api/v1/appointments?limit=500&from={from}&to={to}")).await?.json().await?;
            list["items"].as_array().unwrap().iter()
                .filter(|a| a["patient_id"] == p3.as_str() && a["type"] == "dosing-spravato" && a["status"] == "booked")
                .map(|a| (a["id"].as_str().unwrap().to_owned(), a["start"].as_str().unwrap().to_owned())).collect()
        };
        let (first, start) = &ready[0];
        let prep_before = app.count("appointment_preparation WHERE escort_confirmed_at IS NOT NULL").await?;
        // Find a free start for the move: the slot search's first offer for this patient a month on.
        let day = (jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(24 * 45))?)
            .to_zoned(jiff::tz::TimeZone::get("America/Los_Angeles")?).date();
        let slots: Value = app.get_bearer(&nurse, &format!(
            "/api/v1/appointments/slots?type=dosing-spravato&from={day}&to={}&patient_id={p3}", day.checked_add(jiff::Span::new().days(7))?)).await?.json().await?;
        let offer = &slots["items"][0];
        let r = app.client().post(app.url(&format!("/api/v1/appointments/{first}/reschedule"))).bearer_auth(&nurse)
            .json(&json!({"start": offer["start"], "reason": "Patient travelling", "staff_ids": offer["staff_ids"], "room_id": offer["room_id"]}))
            .send().await?;
        assert_eq!(r.status(), 201, "{start}");
        let moved: Value = r.json().await?;
        let courses: Value = app.get_bearer(&nurse, &format!("/api/v1/patients/{p3}/courses")).await?.json().await?;
        assert_eq!(courses["items"][0]["dosing_booked"].as_i64().unwrap(), booked_before, "still in the course");
        assert_eq!(app.count("appointment_preparation WHERE escort_confirmed_at IS NOT NULL").await?, prep_before + 1, "the ride came along");
        assert!(moved["id"].is_string());
        // On hold, no dosing session can be booked.
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let r = app.client().post(app.url(&format!("/api/v1/patients/{p3}/pathway/events"))).bearer_auth(&prescriber)
            .json(&json!({"event": "hold", "reason": "Unwell this week"})).send().await?;
        assert_eq!(r.status(), 201);
        let later = (jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(24 * 80))?)
            .to_zoned(jiff::tz::TimeZone::get("America/Los_Angeles")?).date();
        let slots: Value = app.get_bearer(&nurse, &format!(
            "/api/v1/appointments/slots?type=dosing-spravato&from={later}&to={}&patient_id={p3}", later.checked_add(jiff::Span::new().days(7))?)).await?.json().await?;
        let offer = &slots["items"][0];
        let r = app.client().post(app.url("/api/v1/appointments")).bearer_auth(&nurse)
            .json(&json!({"patient_id": p3, "type": "dosing-spravato", "start": offer["start"], "staff_ids": offer["staff_ids"], "room_id": offer["room_id"]}))
            .send().await?;
        assert_eq!(r.status(), 422);
        let body: Value = r.json().await?;
        assert_eq!(body["error"]["field"], "pathway", "{body}");
        app.stop().await
    }
}

both_backends! {
    async fn the_front_desk_moves_an_appointment_from_its_page(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let p3 = demo_patient(&app, 3).await?;
        let from = jiff::Timestamp::now().to_string();
        let to = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(24 * 30))?.to_string();
        let list: Value = app.get_bearer(&nurse, &format!("/api/v1/appointments?limit=500&from={from}&to={to}")).await?.json().await?;
        let appt = list["items"].as_array().unwrap().iter()
            .find(|a| a["patient_id"] == p3.as_str() && a["type"] == "integration" && a["status"] == "booked").unwrap();
        let id = appt["id"].as_str().unwrap();
        let (desk, _) = app.browser_login("frontdesk@demo.kapstone.test", kapstone_testkit::PASSWORD).await?;
        let day = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(24 * 40))?
            .to_zoned(jiff::tz::TimeZone::get("America/Los_Angeles")?).date();
        let page = desk.get(app.url(&format!("/schedule/appointments/{id}?move_from={day}&move_to={}", day.checked_add(jiff::Span::new().days(7))?)))
            .send().await?.text().await?;
        let choice = page.split("name=\"choice\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
        let csrf = kapstone_testkit::hidden_csrf(&page).unwrap();
        let url = app.url(&format!("/schedule/appointments/{id}/reschedule"));
        let r = desk.post(&url).form(&[("csrf_token", csrf.as_str()), ("choice", choice.as_str()), ("reason", "")]).send().await?;
        assert_eq!(r.status(), 422, "a reason is needed");
        let r = desk.post(&url).form(&[("csrf_token", csrf.as_str()), ("choice", choice.as_str()), ("reason", "Patient asked")]).send().await?;
        assert_eq!(r.status(), 303);
        let moved_to = r.headers()["location"].to_str()?.to_owned();
        assert!(moved_to.starts_with("/schedule/appointments/") && !moved_to.ends_with(id));
        assert_eq!(app.count("appointments WHERE status = 'rescheduled'").await?, 1);
        app.stop().await
    }
}
