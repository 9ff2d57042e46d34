//! An IV infusion session over the API (KAP-SPEC 2.2, 4.3, 5.3): the order with its pump rate,
//! the second clinician's verification, and MON-05: a BP of 180/110 or more during the infusion
//! pauses it until the prescriber resumes it with a reason. Times are written in the past.

use jiff::{SignedDuration, Timestamp, ToSpan};
use kapstone_testkit::{PASSWORD, TestApp, both_backends};
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

fn code_and_field(r: &(u16, Value)) -> (u16, String, String) {
    let e = &r.1["error"];
    (r.0, e["code"].as_str().unwrap_or("").to_owned(), e["field"].as_str().unwrap_or("").to_owned())
}

/// The demo patient checked in on chair 2 today, made eligible for IV ketamine by a new signed
/// decision, with an IV session opened on a booked IV appointment.
async fn iv_session(app: &TestApp, nurse: &str, prescriber: &str, front: &str) -> anyhow::Result<String> {
    let (_, board) = get(app, front, "/api/v1/floor").await?;
    let chair2 = board["chairs"].as_array().unwrap().iter().find(|c| c["name"] == "Chair 2").expect("chair 2");
    let session = chair2["sessions"][0]["session_id"].as_str().expect("a session on chair 2").to_owned();
    let (_, s) = get(app, nurse, &format!("/api/v1/sessions/{session}")).await?;
    let patient = s["patient_id"].as_str().unwrap().to_owned();
    let (st, e) = get(app, prescriber, &format!("/api/v1/patients/{patient}/eligibility")).await?;
    anyhow::ensure!(st == 200, "{e}");
    let decision = json!({"input_sha256": e["input_sha256"], "password": PASSWORD, "verdict": "eligible",
        "routes": [{"route": "sublingual_lozenge", "course_template": "KAP-SL"},
                   {"route": "intravenous_racemic", "course_template": "IV-6"}],
        "summary": "IV ketamine as an alternative to lozenges.",
        "amends": e["decision"]["id"], "amendment_reason": "IV added as an alternative to lozenges."});
    let (st, d) =
        post(app, prescriber, &format!("/api/v1/patients/{patient}/eligibility/decisions"), &decision).await?;
    anyhow::ensure!(st == 201, "decision: {d}");
    let from = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date().checked_add(2.days())?;
    let to = from.checked_add(10.days())?;
    let path = format!("/api/v1/appointments/slots?type=dosing-iv&from={from}&to={to}&patient_id={patient}");
    let (st, slots) = get(app, front, &path).await?;
    anyhow::ensure!(st == 200, "{slots}");
    let slot = slots["items"].as_array().and_then(|a| a.first()).cloned().expect("a free IV slot");
    let booking = json!({"patient_id": patient, "type": "dosing-iv", "start": slot["start"], "staff_ids": slot["staff_ids"],
        "room_id": slot["room_id"], "location_id": slot["location_id"]});
    let (st, a) = post(app, front, "/api/v1/appointments", &booking).await?;
    anyhow::ensure!(st == 201, "booking: {a}");
    let (st, s) =
        post(app, nurse, &format!("/api/v1/appointments/{}/session", a["id"].as_str().unwrap()), &json!({})).await?;
    anyhow::ensure!(st == 201, "open: {s}");
    assert_eq!(s["protocol"]["route"], "intravenous_racemic");
    Ok(s["id"].as_str().unwrap().to_owned())
}

both_backends! {
    async fn an_iv_infusion_pauses_at_mon_05_and_only_a_prescriber_resumes_it(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let front = app.token("frontdesk@demo.kapstone.test").await?;
        let id = iv_session(&app, &nurse, &prescriber, &front).await?;
        let t0 = Timestamp::now();
        let ev = |token: &str, body: Value| {
            let (app, token, path) = (&app, token.to_owned(), format!("/api/v1/sessions/{id}/events"));
            async move { post(app, &token, &path, &body).await }
        };
        let ok = |r: (u16, Value)| -> anyhow::Result<()> {
            anyhow::ensure!(r.0 == 201, "{}", r.1);
            Ok(())
        };
        ok(ev(&nurse, json!({"kind": "checked_in", "at": ago(t0, 90),
            "escort": {"name": "Sam Rivers", "phone": "+1 555 010 0199"}, "escort_confirmed_in_person": true,
            "state_of_mind": {"mood": 6, "alcohol_or_substances_last_12h": false, "intoxication_signs": false},
            "pregnancy": "not_applicable"})).await?)?;
        let vitals = format!("/api/v1/sessions/{id}/vitals");
        ok(post(&app, &nurse, &vitals, &json!({"systolic": 128, "diastolic": 82, "heart_rate": 72, "spo2": 98, "resp_rate": 14,
            "recorded_at": ago(t0, 88), "at": ago(t0, 88)})).await?)?;
        ok(post(&app, &therapist, &format!("/api/v1/sessions/{id}/scores"),
            &json!({"moaas": 5, "cadss23": 0, "recorded_at": ago(t0, 88), "at": ago(t0, 88)})).await?)?;

        // The order: 0.5 mg/kg of the record's weight over the protocol's infusion time; the
        // server computes the rate and the pump rate.
        let order = json!({"request": {"protocol": "intravenous-racemic", "dose_mg_per_kg": 0.5, "stock_mg_per_ml": 50, "bag_ml": 100}, "at": ago(t0, 85)});
        let (s, r) = post(&app, &prescriber, &format!("/api/v1/sessions/{id}/dose-order"), &order).await?;
        assert_eq!(s, 201, "{r}");
        let (_, v) = get(&app, &nurse, &format!("/api/v1/sessions/{id}")).await?;
        let calc = &v["session"]["ordered"]["calculation"];
        assert!(calc["rate_mg_per_min"].as_f64().is_some() && calc["pump_ml_per_h"].as_f64().is_some(), "{calc}");
        let dose_mg = calc["dose_mg"].as_f64().unwrap();
        // The prescriber who ordered does not verify their own order; the nurse does.
        let r = ev(&prescriber, json!({"kind": "dose_verified", "at": ago(t0, 84)})).await?;
        assert_eq!(code_and_field(&r).1, "dose_verification", "{}", r.1);
        ok(ev(&nurse, json!({"kind": "dose_verified", "at": ago(t0, 84)})).await?)?;
        ok(ev(&nurse, json!({"kind": "cleared_for_dosing", "at": ago(t0, 83)})).await?)?;
        let expiry = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date().checked_add(1.years())?;
        let (s, r) = post(&app, &nurse, &format!("/api/v1/sessions/{id}/administrations"), &json!({
            "product": "Ketamine HCl injection 50 mg/mL vial", "lot": "KET2291", "expiry": expiry.to_string(),
            "dose_mg": dose_mg, "route_snomed": "47625008", "at": ago(t0, 80)})).await?;
        assert_eq!(s, 201, "{r}");

        // 184/96 ten minutes in: MON-03 and MON-05; the session says to pause the infusion.
        let (s, r) = post(&app, &nurse, &vitals, &json!({"systolic": 184, "diastolic": 96, "heart_rate": 80,
            "recorded_at": ago(t0, 70), "at": ago(t0, 70)})).await?;
        assert_eq!(s, 201, "{r}");
        let rules: Vec<&str> = r["alerts"].as_array().unwrap().iter().map(|a| a["alert"]["rule"].as_str().unwrap()).collect();
        assert_eq!(rules, ["MON-03", "MON-05"], "{r}");
        let (_, v) = get(&app, &nurse, &format!("/api/v1/sessions/{id}")).await?;
        assert_eq!(v["blocked_by"][0]["code"], "MON-05", "{}", v["blocked_by"]);
        ok(ev(&nurse, json!({"kind": "infusion_paused", "reason": "BP 184/96", "at": ago(t0, 69)})).await?)?;
        let (_, v) = get(&app, &nurse, &format!("/api/v1/sessions/{id}")).await?;
        assert_eq!((v["infusion_paused"].as_bool(), v["state"].as_str()), (Some(true), Some("dosing")));
        assert_eq!(v["blocked_by"][0]["unblocked_by"], json!(["prescriber"]));

        // Only the prescriber resumes, with a reason, once the other alert is seen.
        let resume = |reason: &str, m: i64| json!({"kind": "infusion_resumed", "reason": reason, "at": ago(t0, m)});
        assert_eq!(code_and_field(&ev(&nurse, resume("BP settling", 65)).await?).1, "role");
        assert_eq!(code_and_field(&ev(&prescriber, resume("BP settling", 65)).await?).1, "MON-03");
        assert_eq!(code_and_field(&ev(&prescriber, resume(" ", 65)).await?), (422, "invalid".into(), "reason".into()));
        let events_before = v["session"]["events"].as_u64();
        let (_, v) = get(&app, &nurse, &format!("/api/v1/sessions/{id}")).await?;
        assert_eq!(v["session"]["events"].as_u64(), events_before, "refusals store nothing");
        ok(ev(&prescriber, json!({"kind": "alert_acknowledged", "alert_id": 1, "at": ago(t0, 64)})).await?)?;
        ok(ev(&prescriber, resume("Transient rise; 150/88 on recheck", 63)).await?)?;
        let (_, v) = get(&app, &nurse, &format!("/api/v1/sessions/{id}")).await?;
        assert_eq!(v["infusion_paused"], false);
        assert!(v["blocked_by"].as_array().unwrap().is_empty(), "{}", v["blocked_by"]);
        assert!(v["unacknowledged_alerts"].as_array().unwrap().is_empty(), "the decision acknowledges MON-05");
        // The resumption is audited with the prescriber as actor.
        let audited = app.count("audit_events WHERE action = 'session.record' AND reason LIKE 'infusion_resumed%'").await?;
        assert_eq!(audited, 1);
        ok(ev(&nurse, json!({"kind": "administration_ended", "at": ago(t0, 40)})).await?)?;
        let (_, v) = get(&app, &nurse, &format!("/api/v1/sessions/{id}")).await?;
        assert_eq!(v["state"], "monitoring");
        app.stop().await
    }
}
