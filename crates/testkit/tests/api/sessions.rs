//! Dosing sessions over the API (KAP-SPEC 2.2, 2.3, 5, 6): a Spravato session from check-in to
//! discharge with its timed checks and alerts, every refusal naming its rule, and the floor board.
//! Event times are written in the past (`at`, `recorded_at`): a session is recorded as it
//! happens, and the server refuses times ahead of its clock.

use jiff::{SignedDuration, Timestamp};
use kapstone_testkit::{TestApp, both_backends};
use serde_json::{Value, json};

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let r = app.client().post(app.url(path)).bearer_auth(token).json(body).send().await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

async fn get(app: &TestApp, token: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let r = app.get_bearer(token, path).await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

/// (status, error code, field) of a refusal.
fn refusal(r: &(u16, Value)) -> (u16, String, String) {
    let e = &r.1["error"];
    (r.0, e["code"].as_str().unwrap_or("").to_owned(), e["field"].as_str().unwrap_or("").to_owned())
}

/// `minutes` before the test's start, as RFC 3339.
fn ago(t0: Timestamp, minutes: i64) -> String {
    (t0 - SignedDuration::from_mins(minutes)).to_string()
}

struct Fx {
    app: TestApp,
    nurse: String,
    prescriber: String,
    therapist: String,
    front: String,
}

impl Fx {
    async fn new(b: kapstone_testkit::TestBackend) -> anyhow::Result<Self> {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let front = app.token("frontdesk@demo.kapstone.test").await?;
        Ok(Self { app, nurse, prescriber, therapist, front })
    }

    /// The session of demo patient 3's first booked Spravato appointment.
    async fn spravato_session(&self) -> anyhow::Result<String> {
        let p3 = {
            let t = self.app.token("patient3@demo.kapstone.test").await?;
            let (_, me) = get(&self.app, &t, "/api/v1/portal/me").await?;
            me["id"].as_str().unwrap().to_owned()
        };
        let now = Timestamp::now();
        let to = now + SignedDuration::from_hours(24 * 30);
        let (_, list) =
            get(&self.app, &self.front, &format!("/api/v1/appointments?limit=500&from={now}&to={to}")).await?;
        let a = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["patient_id"] == p3.as_str() && a["kind"] == "dosing" && a["status"] == "booked")
            .cloned()
            .expect("a booked Spravato session for patient 3");
        let (s, session) = post(
            &self.app,
            &self.nurse,
            &format!("/api/v1/appointments/{}/session", a["id"].as_str().unwrap()),
            &json!({}),
        )
        .await?;
        assert_eq!(s, 201, "{session}");
        // Opening it again returns the same session (200, documented as such).
        let path = format!("/api/v1/appointments/{}/session", a["id"].as_str().unwrap());
        let (s, again) = post(&self.app, &self.nurse, &path, &json!({})).await?;
        assert_eq!((s, &again["id"]), (200, &session["id"]), "{again}");
        Ok(session["id"].as_str().unwrap().to_owned())
    }

    async fn event(&self, token: &str, id: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        post(&self.app, token, &format!("/api/v1/sessions/{id}/events"), &body).await
    }

    async fn ok(&self, token: &str, id: &str, body: Value) -> anyhow::Result<Value> {
        let (s, r) = self.event(token, id, body.clone()).await?;
        anyhow::ensure!(s == 201, "{body} -> {s} {r}");
        Ok(r)
    }

    /// The session in Chair 1 of the demo floor (checked in: it takes readings).
    async fn chair1_session(&self) -> anyhow::Result<String> {
        let (_, board) = get(&self.app, &self.nurse, "/api/v1/floor").await?;
        let chair1 = board["chairs"].as_array().unwrap().iter().find(|c| c["name"] == "Chair 1").unwrap();
        Ok(chair1["sessions"][0]["session_id"].as_str().unwrap().to_owned())
    }

    async fn show(&self, id: &str) -> anyhow::Result<Value> {
        let (s, v) = get(&self.app, &self.nurse, &format!("/api/v1/sessions/{id}")).await?;
        anyhow::ensure!(s == 200, "{s} {v}");
        Ok(v)
    }
}

fn check_in(t0: Timestamp, minutes: i64, alcohol: bool) -> Value {
    json!({"kind": "checked_in", "at": ago(t0, minutes),
        "escort": {"name": "Sam Rivers", "phone": "+1 555 010 0199", "relationship": "partner"},
        "escort_confirmed_in_person": true,
        "state_of_mind": {"mood": 6, "sleep_hours": 7, "alcohol_or_substances_last_12h": alcohol, "intoxication_signs": false},
        "pregnancy": "not_applicable"})
}

fn blockers(v: &Value) -> Vec<String> {
    v["blocked_by"].as_array().unwrap().iter().map(|b| b["code"].as_str().unwrap().to_owned()).collect()
}

both_backends! {
    async fn a_spravato_session_runs_from_check_in_to_discharge(b) {
        let fx = Fx::new(b).await?;
        let id = fx.spravato_session().await?;
        let t0 = Timestamp::now();
        let v = fx.show(&id).await?;
        assert_eq!(v["state"], "scheduled");
        assert_eq!(v["protocol"]["id"], "spravato-intranasal");
        // Arrival 160 minutes ago, pre-dose vitals and scores.
        fx.ok(&fx.nurse, &id, check_in(t0, 160, false)).await?;
        let vitals = format!("/api/v1/sessions/{id}/vitals");
        let (s, r) = post(&fx.app, &fx.nurse, &vitals, &json!({"systolic": 400, "diastolic": 80, "recorded_at": ago(t0, 155), "at": ago(t0, 155)})).await?;
        assert_eq!(refusal(&(s, r)), (422, "invalid".into(), "systolic".into()));
        let (s, r) = post(&fx.app, &fx.nurse, &vitals,
            &json!({"systolic": 130, "diastolic": 80, "heart_rate": 72, "spo2": 98, "resp_rate": 14, "recorded_at": ago(t0, 155), "at": ago(t0, 155)})).await?;
        assert_eq!(s, 201, "{r}");
        let scores = format!("/api/v1/sessions/{id}/scores");
        let (s, r) = post(&fx.app, &fx.therapist, &scores, &json!({"moaas": 5, "cadss23": 0, "recorded_at": ago(t0, 155), "at": ago(t0, 155)})).await?;
        assert_eq!(s, 201, "{r}");
        let v = fx.show(&id).await?;
        assert_eq!(v["state"], "checked_in");
        // Day 1 of Spravato for TRD is 56 mg: 84 mg is refused (TV-SPR-2); a nurse cannot order.
        let order = format!("/api/v1/sessions/{id}/dose-order");
        let r = post(&fx.app, &fx.prescriber, &order, &json!({"request": {"protocol": "spravato-intranasal", "dose_mg": 84}, "at": ago(t0, 152)})).await?;
        assert_eq!(r.0, 422, "{}", r.1);
        let r = post(&fx.app, &fx.nurse, &order, &json!({"request": {"protocol": "spravato-intranasal", "dose_mg": 56}, "at": ago(t0, 152)})).await?;
        assert_eq!(refusal(&r).1, "role", "{}", r.1);
        let r = post(&fx.app, &fx.prescriber, &order, &json!({"request": {"protocol": "spravato-intranasal", "dose_mg": 56}, "at": ago(t0, 152)})).await?;
        assert_eq!(r.0, 201, "{}", r.1);
        fx.ok(&fx.nurse, &id, json!({"kind": "cleared_for_dosing", "at": ago(t0, 150)})).await?;
        // A therapist cannot administer; the nurse records the kit.
        let admin = format!("/api/v1/sessions/{id}/administrations");
        let kit = json!({"product": "SPRAVATO 28 mg nasal spray, kit of 2 devices (56 mg)", "ndc": "50458-028-02",
            "lot": "24KX117", "expiry": "2030-01-31", "dose_mg": 56, "route_snomed": "46713006", "at": ago(t0, 148)});
        let r = post(&fx.app, &fx.therapist, &admin, &kit).await?;
        assert_eq!(refusal(&r).1, "role", "{}", r.1);
        let r = post(&fx.app, &fx.nurse, &admin, &kit).await?;
        assert_eq!(r.0, 201, "{}", r.1);
        fx.ok(&fx.nurse, &id, json!({"kind": "device_given", "at": ago(t0, 145)})).await?;
        let r = fx.event(&fx.nurse, &id, json!({"kind": "device_given", "at": ago(t0, 143)})).await?;
        assert_eq!((r.0, refusal(&r).2.as_str()), (422, "device_times"), "5 minutes between devices: {}", r.1);
        fx.ok(&fx.nurse, &id, json!({"kind": "device_given", "at": ago(t0, 140)})).await?;
        let v = fx.show(&id).await?;
        assert_eq!(v["state"], "monitoring", "{v}");
        assert_eq!(v["minutes_since_dose"], 145);
        // The 40-minute BP was due at t0-105 and is overdue: the checks say so.
        let checks = v["checks"].as_array().unwrap();
        let bp40 = checks.iter().find(|c| c["kind"] == "blood_pressure" && c["status"] != "done").unwrap();
        assert!(bp40["status"] == "overdue" || bp40["status"] == "missed", "{bp40}");
        let (s, r) = post(&fx.app, &fx.therapist, &scores, &json!({"moaas": 4, "recorded_at": ago(t0, 130), "at": ago(t0, 130)})).await?;
        assert_eq!(s, 201, "{r}");
        // A rise of +42 systolic at 40 minutes raises MON-03, which must be acknowledged.
        let (s, r) = post(&fx.app, &fx.nurse, &vitals, &json!({"systolic": 172, "diastolic": 92, "recorded_at": ago(t0, 105), "at": ago(t0, 105)})).await?;
        assert_eq!(s, 201, "{r}");
        let alert = r["alerts"].as_array().unwrap().iter().find(|a| a["alert"]["rule"] == "MON-03").cloned().expect("MON-03");
        let v = fx.show(&id).await?;
        assert_eq!(v["unacknowledged_alerts"].as_array().unwrap().len(), 1);
        fx.ok(&fx.prescriber, &id, json!({"kind": "alert_acknowledged", "alert_id": alert["id"], "note": "Rechecking", "at": ago(t0, 104)})).await?;
        // Recovery: scores back to baseline, BP settled, the discharge check.
        fx.ok(&fx.therapist, &id, json!({"kind": "experience_ended", "at": ago(t0, 60)})).await?;
        let (s, r) = post(&fx.app, &fx.nurse, &vitals,
            &json!({"systolic": 125, "diastolic": 80, "heart_rate": 70, "spo2": 98, "resp_rate": 14, "recorded_at": ago(t0, 10), "at": ago(t0, 10)})).await?;
        assert_eq!(s, 201, "{r}");
        let (s, r) = post(&fx.app, &fx.therapist, &scores, &json!({"moaas": 5, "cadss23": 2, "recorded_at": ago(t0, 10), "at": ago(t0, 10)})).await?;
        assert_eq!(s, 201, "{r}");
        // Without the escort at handoff, discharge is refused naming DC-08.
        let assessment = |escort: bool, minutes: i64| json!({"kind": "discharge_assessment", "at": ago(t0, minutes),
            "ready_to_leave": true, "on_room_air": true, "escort_present": escort, "cssrs_at_discharge": "low",
            "recovery": {"oriented": true, "can_talk": true, "sits_up_and_walks_steadily_unaided": true,
                "nausea_controlled": true, "adequately_hydrated": true}});
        fx.ok(&fx.nurse, &id, assessment(false, 5)).await?;
        let r = fx.event(&fx.nurse, &id, json!({"kind": "discharged", "instructions_given": true, "at": ago(t0, 4)})).await?;
        assert_eq!((r.0, refusal(&r).1.as_str()), (422, "DC-08"), "{}", r.1);
        fx.ok(&fx.nurse, &id, assessment(true, 3)).await?;
        let r = fx.event(&fx.therapist, &id, json!({"kind": "discharged", "instructions_given": true, "at": ago(t0, 2)})).await?;
        assert_eq!(refusal(&r).1, "role", "a therapist does not sign the discharge: {}", r.1);
        // The discharge is the nurse's signature: not without a password entry in the last minutes.
        fx.app.age_authentication().await?;
        let r = fx.event(&fx.nurse, &id, json!({"kind": "discharged", "instructions_given": true, "at": ago(t0, 2)})).await?;
        assert_eq!((r.0, refusal(&r).1.as_str()), (422, "reauth_required"), "{}", r.1);
        assert_ne!(fx.show(&id).await?["state"], "discharged");
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/auth/reauth", &json!({"password": kapstone_testkit::PASSWORD})).await?;
        assert_eq!(s, 200, "{r}");
        fx.ok(&fx.nurse, &id, json!({"kind": "discharged", "instructions_given": true, "at": ago(t0, 2)})).await?;
        let v = fx.show(&id).await?;
        assert_eq!(v["state"], "discharged", "{v}");
        // The discharge completed the appointment: the course counts the session as done.
        let (_, courses) = get(&fx.app, &fx.nurse, &format!("/api/v1/patients/{}/courses", v["patient_id"].as_str().unwrap())).await?;
        assert_eq!(courses["items"][0]["dosing_done"], 1, "{courses}");
        // Every step is in the append-only log and the audit trail; the log cannot be changed.
        let n = fx.app.count("session_events").await?;
        assert!(n >= 20, "{n}");
        assert!(fx.app.count("audit_events WHERE action = 'session.record'").await? >= n);
        assert!(fx.app.raw_sql("DELETE FROM session_events").await.is_err(), "append-only");
        assert!(fx.app.raw_sql("UPDATE session_events SET kind = 'x'").await.is_err(), "append-only");
        fx.app.stop().await
    }

    async fn the_hard_stops_refuse_dosing_and_name_their_rule(b) {
        let fx = Fx::new(b).await?;
        let id = fx.spravato_session().await?;
        let t0 = Timestamp::now();
        // GATE-06: alcohol in the last 12 h holds the session; only a prescriber releases it.
        fx.ok(&fx.nurse, &id, check_in(t0, 60, true)).await?;
        let v = fx.show(&id).await?;
        assert!(blockers(&v).contains(&"GATE-06".to_owned()), "{v}");
        let vitals = format!("/api/v1/sessions/{id}/vitals");
        // Pre-dose 182/96: MON-02 / GATE-05 hold as well.
        let (s, r) = post(&fx.app, &fx.nurse, &vitals,
            &json!({"systolic": 182, "diastolic": 96, "heart_rate": 80, "spo2": 97, "recorded_at": ago(t0, 55), "at": ago(t0, 55)})).await?;
        assert_eq!(s, 201, "{r}");
        let v = fx.show(&id).await?;
        assert!(blockers(&v).contains(&"GATE-05".to_owned()) || v["state"] == "held", "{v}");
        let r = fx.event(&fx.nurse, &id, json!({"kind": "cleared_for_dosing", "at": ago(t0, 50)})).await?;
        assert_eq!(r.0, 422, "{}", r.1);
        let r = fx.event(&fx.nurse, &id, json!({"kind": "hold_released", "reason": "Seen", "at": ago(t0, 49)})).await?;
        assert_eq!(refusal(&r).1, "role", "{}", r.1);
        // Bad event JSON names the field.
        let r = fx.event(&fx.nurse, &id, json!({"kind": "checked_in", "escort": {"name": "X"}})).await?;
        assert!((400..500).contains(&r.0) && !refusal(&r).2.is_empty(), "{}", r.1);
        let r = fx.event(&fx.nurse, &id, json!({"kind": "teleported"})).await?;
        assert_eq!(r.0, 400);
        // A time ahead of the clock is refused.
        let later = (Timestamp::now() + SignedDuration::from_mins(30)).to_string();
        let r = fx.event(&fx.therapist, &id, json!({"kind": "progress_note", "text": "Calm", "at": later})).await?;
        assert_eq!(r.0, 422, "{}", r.1);
        // The front desk sees the floor, not the session's clinical record.
        let (s, _) = get(&fx.app, &fx.front, &format!("/api/v1/sessions/{id}")).await?;
        assert_eq!(s, 403);
        let (s, _) = get(&fx.app, &fx.app.token("admin@demo.kapstone.test").await?, &format!("/api/v1/sessions/{id}")).await?;
        assert_eq!(s, 403);
        fx.app.stop().await
    }

    async fn the_benchmark_can_make_the_demo_floor_busy(b) {
        let fx = Fx::new(b).await?;
        let sessions = |board: &Value| board["chairs"].as_array().unwrap().iter().map(|c| c["sessions"].as_array().unwrap().len()).sum::<usize>();
        let (_, board) = get(&fx.app, &fx.front, "/api/v1/floor").await?;
        let before = sessions(&board);
        let state = kapstone_web::AppState::new(fx.app.db.clone(), kapstone_web::ServerConfig::default());
        let added = kapstone_web::app::demo_floor::seed_busy_floor(&state, 2, kapstone_testkit::PASSWORD).await?;
        assert_eq!(added, 2);
        let (_, board) = get(&fx.app, &fx.front, "/api/v1/floor").await?;
        assert_eq!(sessions(&board), before + 2, "{board}");
        let chair = board["chairs"].as_array().unwrap().iter().find(|c| c["name"] == "Floor chair 2").expect("its own chair");
        assert_eq!(chair["sessions"][0]["state"], "checked_in", "{chair}");
        // Each has its own clinicians, who can sign in and record.
        let nurse = fx.app.token("floor-nurse-2@demo.kapstone.test").await?;
        let id = chair["sessions"][0]["session_id"].as_str().unwrap();
        let (s, r) = post(&fx.app, &nurse, &format!("/api/v1/sessions/{id}/vitals"),
            &json!({"systolic": 121, "diastolic": 79, "heart_rate": 71, "spo2": 98, "resp_rate": 14})).await?;
        assert_eq!(s, 201, "{r}");
        assert!(kapstone_web::app::demo_floor::seed_busy_floor(&state, 2, kapstone_testkit::PASSWORD).await.is_err(), "once");
        fx.app.stop().await
    }

    async fn the_floor_board_shows_each_chair_with_its_session(b) {
        let fx = Fx::new(b).await?;
        let id = fx.spravato_session().await?;
        let t0 = Timestamp::now();
        fx.ok(&fx.nurse, &id, check_in(t0, 30, false)).await?;
        let (s, board) = get(&fx.app, &fx.front, "/api/v1/floor").await?;
        assert_eq!(s, 200, "{board}");
        assert_eq!(board["location"], "Harbour Light — Main clinic");
        let chairs = board["chairs"].as_array().unwrap();
        assert!(chairs.len() >= 3, "{board}");
        // The demo's day in progress: a lozenge session in monitoring with its alert acknowledged and
        // a check overdue, an IM session checked in, a lozenge session in recovery.
        let on_floor: Vec<&Value> = chairs.iter().flat_map(|c| c["sessions"].as_array().unwrap()).collect();
        let state_of = |chair: &str| {
            chairs.iter().find(|c| c["name"] == chair).and_then(|c| c["sessions"][0]["state"].as_str()).unwrap_or("").to_owned()
        };
        assert_eq!((state_of("Chair 1"), state_of("Chair 2"), state_of("Chair 3")),
            ("monitoring".into(), "checked_in".into(), "recovery".into()), "{board}");
        let chair1 = &chairs.iter().find(|c| c["name"] == "Chair 1").unwrap()["sessions"][0];
        assert!(chair1["overdue_checks"].as_u64().unwrap() >= 1, "{chair1}");
        assert_eq!(chair1["alerts"].as_array().map(Vec::len), Some(0), "the MON-03 alert was acknowledged");
        assert!(chair1["minutes_since_dose"].as_i64().unwrap() >= 68);
        assert!(on_floor.iter().all(|s| s["patient"].as_str().unwrap().len() <= 6), "initials only");
        let counter = board["counter"].as_i64().unwrap();
        // The session shows up only on its day; this one is booked ahead, so today's board lists
        // what is booked today (the demo's day) and the counter moves with every change.
        fx.ok(&fx.therapist, &id, json!({"kind": "progress_note", "text": "Arrived early", "at": ago(t0, 1)})).await?;
        let (_, board) = get(&fx.app, &fx.front, "/api/v1/floor").await?;
        assert!(board["counter"].as_i64().unwrap() > counter);
        let (s, r) = get(&fx.app, &fx.front, "/api/v1/floor?location=nowhere").await?;
        assert_eq!(refusal(&(s, r)), (422, "invalid".into(), "location".into()));
        let (s, _) = get(&fx.app, &fx.app.token("patient3@demo.kapstone.test").await?, "/api/v1/floor").await?;
        assert_eq!(s, 403);
        fx.app.stop().await
    }

    async fn the_screeners_answered_in_the_portal_are_linked_at_check_in_with_their_stored_scores(b) {
        let fx = Fx::new(b).await?;
        let id = fx.spravato_session().await?;
        let t0 = Timestamp::now();
        let patient = fx.app.token("patient3@demo.kapstone.test").await?;
        let portal = "/api/v1/portal/questionnaires";
        let (s, phq9) = post(&fx.app, &patient, portal, &json!({"instrument": "phq9", "answers": [1,1,1,1,1,1,1,0,0]})).await?;
        assert_eq!((s, phq9["total"].as_u64()), (201, Some(7)), "{phq9}");
        let (s, cssrs) = post(&fx.app, &patient, portal,
            &json!({"instrument": "cssrs_screener", "answers": [false, false, null, null, null, false, null]})).await?;
        assert_eq!(s, 201, "{cssrs}");
        let (phq9_id, cssrs_id) = (phq9["id"].as_str().unwrap().to_owned(), cssrs["id"].as_str().unwrap().to_owned());

        // Before check-in the session lists them, not yet linked.
        let path = format!("/api/v1/sessions/{id}/screenings");
        let (s, list) = get(&fx.app, &fx.nurse, &path).await?;
        assert_eq!(s, 200, "{list}");
        let items = list["screenings"].as_array().unwrap();
        let mine = items.iter().find(|i| i["response_id"] == phq9_id.as_str()).expect("the portal PHQ-9 is offered");
        assert_eq!((mine["total"].as_u64(), mine["via_portal"].as_bool(), mine["linked"].as_bool()), (Some(7), Some(true), Some(false)));

        // A client cannot write a screener's score into the session.
        let forged = json!({"kind": "screening_linked", "instrument": "phq9", "response_id": phq9_id, "total": 0});
        assert_eq!(refusal(&fx.event(&fx.nurse, &id, forged).await?), (422, "invalid".into(), "kind".into()));

        // Check-in links the newest PHQ-9 and C-SSRS screener, with the scores on record.
        fx.ok(&fx.nurse, &id, check_in(t0, 20, false)).await?;
        let v = fx.show(&id).await?;
        let linked: Vec<(String, Value, Value)> = v["session"]["screenings"].as_array().unwrap().iter()
            .map(|l| (l["screening"]["response_id"].as_str().unwrap().to_owned(), l["screening"]["total"].clone(), l["screening"]["cssrs_risk"].clone()))
            .collect();
        assert_eq!(linked.len(), 2, "{linked:?}");
        assert!(linked.contains(&(phq9_id.clone(), json!(7), Value::Null)), "{linked:?}");
        assert!(linked.iter().any(|(r, t, risk)| *r == cssrs_id && t.is_null() && !risk.is_null()), "{linked:?}");
        let events = v["session"]["events"].as_u64();

        // Linking the same response again records nothing; a stranger's response, or none, names the field.
        let (s, r) = post(&fx.app, &fx.nurse, &path, &json!({"response_id": phq9_id})).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(fx.show(&id).await?["session"]["events"].as_u64(), events);
        let other = fx.app.token("patient2@demo.kapstone.test").await?;
        let (_, theirs) = post(&fx.app, &other, portal, &json!({"instrument": "phq9", "answers": [0,0,0,0,0,0,0,0,0]})).await?;
        let r = post(&fx.app, &fx.nurse, &path, &json!({"response_id": theirs["id"]})).await?;
        assert_eq!(refusal(&r), (422, "invalid".into(), "response_id".into()), "{}", r.1);
        let r = post(&fx.app, &fx.nurse, &path, &json!({"response_id": "not-an-id"})).await?;
        assert_eq!(refusal(&r), (422, "invalid".into(), "response_id".into()), "{}", r.1);
        assert_eq!(fx.show(&id).await?["session"]["events"].as_u64(), events, "nothing stored");
        fx.app.stop().await
    }

    async fn vitals_posted_to_one_session_at_the_same_instant_are_all_recorded(b) {
        // Each reading is entered "now" (no `at`): the server reads its clock once the session is
        // locked, so requests that wait for each other are timed in the order they are written.
        // Read before the lock, a request overtaken by a later one was refused (422, "the session's
        // log is in time order").
        let fx = Fx::new(b).await?;
        let id = fx.chair1_session().await?;
        let vitals = format!("/api/v1/sessions/{id}/vitals");
        let before = fx.show(&id).await?["session"]["events"].as_u64().unwrap();
        let mut posted = 0;
        for round in 0..3u64 {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..24u64 {
                let body = json!({"systolic": 112 + i % 8, "diastolic": 72 + i % 5, "heart_rate": 60 + i + round, "spo2": 97});
                let request = fx.app.client().post(fx.app.url(&vitals)).bearer_auth(&fx.nurse).json(&body);
                set.spawn(async move {
                    let r = request.send().await?;
                    anyhow::Ok((r.status().as_u16(), r.text().await?))
                });
            }
            while let Some(done) = set.join_next().await {
                let (s, r) = done??;
                assert_eq!(s, 201, "round {round}: {r}");
                posted += 1;
            }
        }
        assert_eq!(fx.show(&id).await?["session"]["events"].as_u64().unwrap(), before + posted, "every reading is stored");
        fx.app.stop().await
    }

    async fn a_vitals_entry_whose_second_reading_is_already_recorded_is_refused_whole_and_the_session_stays_folded(b) {
        // A vitals entry makes two readings (blood pressure, then SpO2 and respiration). When only
        // the second is one already recorded, nothing of the entry is stored, and the server keeps
        // the session it had folded: the next entry is decided without replaying the log (a
        // replay costs as much as the session is long; under load every refused entry caused one).
        let fx = Fx::new(b).await?;
        let id = fx.chair1_session().await?;
        let vitals = format!("/api/v1/sessions/{id}/vitals");
        let t0 = Timestamp::now();
        let entry = |systolic: u32, taken: i64| {
            json!({"systolic": systolic, "diastolic": 78, "heart_rate": 72, "spo2": 97, "resp_rate": 14,
                "recorded_at": ago(t0, taken)})
        };
        let (s, r) = post(&fx.app, &fx.nurse, &vitals, &entry(121, 2)).await?;
        assert_eq!(s, 201, "{r}");
        let events = fx.show(&id).await?["session"]["events"].as_u64().unwrap();
        let replays = fx.app.state.sessions.replays();
        // Another blood pressure, taken at the same moment as the respiratory reading stored.
        let r = post(&fx.app, &fx.nurse, &vitals, &entry(125, 2)).await?;
        assert_eq!(refusal(&r).0, 422, "{}", r.1);
        assert_eq!(refusal(&r).1, "duplicate", "{}", r.1);
        assert_eq!(fx.show(&id).await?["session"]["events"].as_u64().unwrap(), events, "nothing of the entry is stored");
        let (s, r) = post(&fx.app, &fx.nurse, &vitals, &entry(125, 1)).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(fx.show(&id).await?["session"]["events"].as_u64().unwrap(), events + 2);
        assert_eq!(fx.app.state.sessions.replays(), replays, "the refused entry left the session folded");
        fx.app.stop().await
    }

    async fn a_session_kept_by_the_server_is_still_refused_to_another_clinic(b) {
        // The server keeps a session's row after its first write (what never changes in it); the
        // clinic it belongs to is checked on every write all the same.
        use kapstone_web::app::accounts::{NewAccountInput, Operator, create_account};
        let fx = Fx::new(b).await?;
        let id = fx.chair1_session().await?;
        let vitals = format!("/api/v1/sessions/{id}/vitals");
        let t0 = Timestamp::now();
        let entry = |taken: i64| {
            json!({"systolic": 122, "diastolic": 78, "heart_rate": 72, "spo2": 97, "resp_rate": 14, "recorded_at": ago(t0, taken)})
        };
        let (s, r) = post(&fx.app, &fx.nurse, &vitals, &entry(3)).await?;
        assert_eq!(s, 201, "{r}");
        let events = fx.show(&id).await?["session"]["events"].as_u64().unwrap();

        let other = kapstone_web::app::demo::create_clinic(&fx.app.db, "Another clinic", "America/Chicago")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let input = NewAccountInput {
            email: "nurse@other.test".into(),
            name: "Other Nurse".into(),
            role: kapstone_domain::Role::Nurse.as_str().into(),
            password: kapstone_testkit::PASSWORD.into(),
            patient_mrn: None,
        };
        create_account(&fx.app.state, Operator::CommandLine { clinic: other }, input).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let theirs = fx.app.token("nurse@other.test").await?;
        let (s, r) = post(&fx.app, &theirs, &vitals, &entry(2)).await?;
        assert_eq!(s, 404, "{r}");
        let (s, r) = post(&fx.app, &theirs, &format!("/api/v1/sessions/{id}/events"), &json!({"kind": "progress_note", "text": "x"})).await?;
        assert_eq!(s, 404, "{r}");
        assert_eq!(fx.show(&id).await?["session"]["events"].as_u64().unwrap(), events, "nothing written");
        // Ours still writes.
        let (s, r) = post(&fx.app, &fx.nurse, &vitals, &entry(1)).await?;
        assert_eq!(s, 201, "{r}");
        fx.app.stop().await
    }

    async fn vitals_posted_to_many_sessions_at_once_each_land_on_their_own_session(b) {
        // The writer writes the events of all the sessions in a batch with one insert, after the
        // batch's jobs ran (store::writer, "deferred"); a refused reading in the same batch must not
        // take the others' with it, nor be written. Two rounds: the second appends after the first's
        // events, so each session's stored event count (the next event's number) must be right.
        let fx = Fx::new(b).await?;
        let state = kapstone_web::AppState::new(fx.app.db.clone(), kapstone_web::ServerConfig::default());
        let floor = 6usize;
        kapstone_web::app::demo_floor::seed_busy_floor(&state, floor, kapstone_testkit::PASSWORD).await?;
        let (_, board) = get(&fx.app, &fx.front, "/api/v1/floor").await?;
        let mut sessions = Vec::new();
        for k in 1..=floor {
            let chair = board["chairs"].as_array().unwrap().iter().find(|c| c["name"] == format!("Floor chair {k}").as_str()).expect("a floor chair");
            let id = chair["sessions"][0]["session_id"].as_str().unwrap().to_owned();
            let nurse = fx.app.token(&format!("floor-nurse-{k}@demo.kapstone.test")).await?;
            let before = get(&fx.app, &nurse, &format!("/api/v1/sessions/{id}")).await?.1["session"]["events"].as_u64().unwrap();
            sessions.push((id, nurse, before));
        }
        // Refused inside the writer's job, under the session's lock: a note timed ahead of the clock.
        let ahead = (Timestamp::now() + SignedDuration::from_hours(1)).to_string();
        let mut stored = vec![0u64; floor];
        for round in 0..2u64 {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..48u64 {
                let k = (i as usize) % floor;
                let (id, nurse, _) = &sessions[k];
                // Every fifth request is a note timed ahead of the clock: refused (422).
                let refused = i % 5 == 4;
                let (path, body) = if refused {
                    (format!("/api/v1/sessions/{id}/events"), json!({"kind": "progress_note", "text": "Resting", "at": ahead}))
                } else {
                    (format!("/api/v1/sessions/{id}/vitals"),
                        json!({"systolic": 110 + i % 9, "diastolic": 70 + i % 7, "heart_rate": 60 + i % 11 + round, "spo2": 97}))
                };
                let request = fx.app.client().post(fx.app.url(&path)).bearer_auth(nurse).json(&body);
                set.spawn(async move {
                    let r = request.send().await?;
                    anyhow::Ok((k, refused, r.status().as_u16(), r.text().await?))
                });
            }
            while let Some(done) = set.join_next().await {
                let (k, refused, s, r) = done??;
                assert_eq!(s, if refused { 422 } else { 201 }, "round {round}, session {k}: {r}");
                stored[k] += u64::from(!refused);
            }
        }
        for (k, (id, nurse, before)) in sessions.iter().enumerate() {
            let (_, shown) = get(&fx.app, nurse, &format!("/api/v1/sessions/{id}")).await?;
            assert_eq!(shown["session"]["events"].as_u64().unwrap(), before + stored[k], "session {k}: {shown}");
            assert_eq!(shown["session"]["state"], "checked_in", "{shown}");
        }
        // The count each session stores is right: one more reading on each is numbered after them.
        for (id, nurse, _) in &sessions {
            let (s, r) = post(&fx.app, nurse, &format!("/api/v1/sessions/{id}/vitals"), &json!({"systolic": 118, "diastolic": 76})).await?;
            assert_eq!(s, 201, "{r}");
        }
        fx.app.stop().await
    }

    async fn a_board_that_already_shows_a_session_shows_its_new_events_on_every_server(b) {
        // A server keeps the sessions of its boards folded and reads only their new events
        // (app::floor_sessions); a board on a second server process folds the events the first wrote.
        let fx = Fx::new(b).await?;
        let second = TestApp::spawn_on(fx.app.fresh.shared(), kapstone_web::ServerConfig::default()).await?;
        let line = |board: &Value, id: &str| -> Value {
            board["chairs"].as_array().unwrap().iter()
                .flat_map(|c| c["sessions"].as_array().unwrap())
                .find(|s| s["session_id"] == id)
                .cloned()
                .unwrap_or(Value::Null)
        };
        let (_, board) = get(&fx.app, &fx.nurse, "/api/v1/floor").await?;
        let id = fx.chair1_session().await?;
        let (s, on_second) = get(&second, &fx.nurse, "/api/v1/floor").await?;
        assert_eq!(s, 200, "{on_second}");
        let alerts_before = line(&on_second, &id)["alerts"].as_array().map(Vec::len).unwrap();
        assert_eq!(line(&board, &id)["alerts"], line(&on_second, &id)["alerts"]);

        // A reading high enough to raise an alert, through the first server.
        let (s, r) = post(&fx.app, &fx.nurse, &format!("/api/v1/sessions/{id}/vitals"),
            &json!({"systolic": 186, "diastolic": 97, "heart_rate": 82, "spo2": 97})).await?;
        assert_eq!(s, 201, "{r}");
        let raised: Vec<u64> = r["alerts"].as_array().unwrap().iter().map(|a| a["id"].as_u64().unwrap()).collect();
        assert!(!raised.is_empty(), "{r}");
        let (_, session) = get(&fx.app, &fx.nurse, &format!("/api/v1/sessions/{id}")).await?;
        let open: Vec<u64> =
            session["unacknowledged_alerts"].as_array().unwrap().iter().map(|a| a["id"].as_u64().unwrap()).collect();
        for app in [&fx.app, &second] {
            let (_, board) = get(app, &fx.nurse, "/api/v1/floor").await?;
            let shown = line(&board, &id);
            let ids: Vec<u64> = shown["alerts"].as_array().unwrap().iter().map(|a| a["id"].as_u64().unwrap()).collect();
            assert_eq!(ids, open, "the board shows the session's open alerts: {shown}");
            assert!(ids.len() > alerts_before && raised.iter().all(|a| ids.contains(a)), "{shown}");
            assert_eq!(shown["state"], session["state"]);
        }
        second.stop().await?;
        fx.app.stop().await
    }
}
