//! The dosing session page and the floor board as pages (KAP-SPEC 2.2, 6): what is next, the
//! forms each role may use, a refused step coming back with its rule next to the form, the board
//! listing the chairs, and the board's event stream telling the page that something changed.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kapstone_testkit::{PASSWORD, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

struct Fx {
    app: TestApp,
    nurse: reqwest::Client,
    nurse_csrf: String,
    prescriber: reqwest::Client,
    front: reqwest::Client,
    therapist_token: String,
}

async fn signed_in(app: &TestApp, email: &str) -> anyhow::Result<(reqwest::Client, String)> {
    let (c, r) = app.browser_login(email, PASSWORD).await?;
    anyhow::ensure!(r.status().is_redirection(), "sign-in of {email}: {}", r.status());
    let csrf = app.csrf_of(&c).await?;
    Ok((c, csrf))
}

impl Fx {
    async fn new(b: TestBackend) -> anyhow::Result<Self> {
        let app = TestApp::demo(b).await?;
        let (nurse, nurse_csrf) = signed_in(&app, "nurse@demo.kapstone.test").await?;
        let (prescriber, _) = signed_in(&app, "prescriber@demo.kapstone.test").await?;
        let (front, _) = signed_in(&app, "frontdesk@demo.kapstone.test").await?;
        let therapist_token = app.token("therapist@demo.kapstone.test").await?;
        Ok(Self { app, nurse, nurse_csrf, prescriber, front, therapist_token })
    }

    /// Demo patient 3's first booked Spravato appointment: (appointment id, session id), the
    /// session opened through the appointment page's button.
    async fn spravato_session(&self) -> anyhow::Result<(String, String)> {
        let p3 = {
            let t = self.app.token("patient3@demo.kapstone.test").await?;
            let me: Value = self.app.get_bearer(&t, "/api/v1/portal/me").await?.json().await?;
            me["id"].as_str().unwrap().to_owned()
        };
        let front = self.app.token("frontdesk@demo.kapstone.test").await?;
        let now = Timestamp::now();
        let to = now + SignedDuration::from_hours(24 * 30);
        let list: Value = self
            .app
            .get_bearer(&front, &format!("/api/v1/appointments?limit=500&from={now}&to={to}"))
            .await?
            .json()
            .await?;
        let a = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["patient_id"] == p3.as_str() && a["kind"] == "dosing" && a["status"] == "booked")
            .cloned()
            .expect("a booked Spravato session for patient 3");
        let appointment = a["id"].as_str().unwrap().to_owned();
        let page = self.nurse.get(self.app.url(&format!("/schedule/appointments/{appointment}"))).send().await?;
        let page = page.text().await?;
        assert!(page.contains(&format!("/schedule/appointments/{appointment}/session")), "a start button");
        let r = self
            .nurse
            .post(self.app.url(&format!("/schedule/appointments/{appointment}/session")))
            .form(&[("csrf_token", self.nurse_csrf.as_str())])
            .send()
            .await?;
        assert_eq!(r.status(), 303);
        let to = r.headers()["location"].to_str()?.to_owned();
        let session = to.strip_prefix("/sessions/").expect("redirected to the session").to_owned();
        Ok((appointment, session))
    }

    /// Moves an appointment to now, so today's floor board lists it.
    async fn move_to_today(&self, appointment: &str) -> anyhow::Result<()> {
        let id = uuid::Uuid::parse_str(appointment)?;
        let start = Timestamp::now() - SignedDuration::from_mins(10);
        let end = start + SignedDuration::from_mins(120);
        let sql = match self.app.backend {
            TestBackend::Sqlite => format!(
                "UPDATE appointments SET start_at = {}, end_at = {} WHERE id = X'{}'",
                start.as_microsecond(),
                end.as_microsecond(),
                id.simple()
            ),
            TestBackend::Postgres => format!(
                "UPDATE appointments SET start_at = to_timestamp({}), end_at = to_timestamp({}) WHERE id = '{id}'",
                start.as_second(),
                end.as_second()
            ),
        };
        anyhow::ensure!(self.app.raw_sql(&sql).await? == 1);
        Ok(())
    }

    async fn page(&self, c: &reqwest::Client, id: &str) -> anyhow::Result<(u16, String)> {
        let r = c.get(self.app.url(&format!("/sessions/{id}"))).send().await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    async fn step(&self, id: &str, form: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
        let mut body = vec![("csrf_token", self.nurse_csrf.as_str())];
        body.extend_from_slice(form);
        let r = self.nurse.post(self.app.url(&format!("/sessions/{id}/record"))).form(&body).send().await?;
        let status = r.status().as_u16();
        let location = r.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
        Ok((status, location.unwrap_or(r.text().await?)))
    }
}

fn check_in(alcohol: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("step", "check_in"),
        ("escort_name", "Sam Rivers"),
        ("escort_phone", "+1 555 010 0199"),
        ("escort_relationship", "partner"),
        ("escort_confirmed_in_person", "yes"),
        ("mood", "6"),
        ("sleep_hours", "7"),
        ("alcohol", alcohol),
        ("intoxication", "no"),
        ("pregnancy", "not_applicable"),
    ]
}

/// Reads an event stream until `want` appears or `within` passes.
async fn read_until(r: &mut reqwest::Response, seen: &mut String, want: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    while !seen.contains(want) {
        let chunk = tokio::time::timeout_at(deadline, r.chunk())
            .await
            .map_err(|_| anyhow::anyhow!("no {want:?} within {within:?}; got {seen:?}"))??;
        let Some(chunk) = chunk else { anyhow::bail!("the stream ended before {want:?}: {seen:?}") };
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    Ok(())
}

both_backends! {
    async fn a_change_made_through_this_process_reaches_its_boards_once_committed(b) {
        let fx = Fx::new(b).await?;
        let (_, id) = fx.spravato_session().await?;
        let clinics = kapstone_store::clinics::list(&fx.app.db).await?;
        let clinic = kapstone_domain::ClinicId::from_uuid(clinics[0].id);
        // A watcher whose tick comes once (at the start) and then not for an hour: only what a
        // write through this process pushes can move its boards.
        let watch =
            kapstone_web::app::floor_watch::FloorWatch::spawn_every(fx.app.db.clone(), Duration::from_secs(3600));
        let mut board = watch.subscribe(clinic);
        let base = kapstone_testkit::serve_state(fx.app.state.with_floor_watch(watch.clone())).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = *board.borrow_and_update();
        let r = fx.app.client().post(format!("{base}/api/v1/sessions/{id}/events")).bearer_auth(&fx.therapist_token)
            .json(&json!({"kind": "progress_note", "text": "Settled in"})).send().await?;
        assert_eq!(r.status(), 201);
        assert!(board.has_changed()?, "the board moved by the time the write was answered (was {before:?})");
        let counter = kapstone_store::dosing::floor_counter(&fx.app.db, clinic).await?;
        assert_eq!(*board.borrow_and_update(), Some(counter));
        assert!(before.is_none_or(|b| b < counter));
        fx.app.stop().await
    }

    async fn the_session_page_shows_the_next_step_and_the_forms_of_each_role(b) {
        let fx = Fx::new(b).await?;
        let (_, id) = fx.spravato_session().await?;
        let (s, page) = fx.page(&fx.nurse, &id).await?;
        assert_eq!(s, 200, "{page}");
        assert!(page.contains("Next step") && page.contains("Scheduled"), "{page}");
        assert!(page.contains("value=\"check_in\""), "the nurse checks the patient in");
        // A mistake in the form comes back next to it, naming the field.
        let mut bad = check_in("no");
        bad[2] = ("escort_phone", "call me");
        let (s, page) = fx.step(&id, &bad).await?;
        assert_eq!(s, 422, "{page}");
        assert!(page.contains("id=\"check_in-error\"") && page.contains("aria-invalid=\"true\""), "{page}");
        assert!(page.contains("Sam Rivers"), "what was typed is kept");
        // Checked in: the nurse sees the vitals form but not the dose order; the prescriber does.
        let (s, to) = fx.step(&id, &check_in("no")).await?;
        assert_eq!((s, to.as_str()), (303, format!("/sessions/{id}?saved=check_in").as_str()));
        let (_, page) = fx.page(&fx.nurse, &id).await?;
        assert!(page.contains("Checked in") && page.contains("value=\"vitals\""), "{page}");
        assert!(!page.contains("value=\"order\""), "a nurse does not order the dose");
        let (_, page) = fx.page(&fx.prescriber, &id).await?;
        assert!(page.contains("value=\"order\"") && page.contains("Order the dose"), "{page}");
        // Vitals in a few fields; the reading is listed.
        let (s, to) = fx.step(&id, &[("step", "vitals"), ("systolic", "130"), ("diastolic", "80"), ("heart_rate", "72"), ("spo2", "98"), ("resp_rate", "14")]).await?;
        assert_eq!(s, 303, "{to}");
        let (_, page) = fx.page(&fx.nurse, &id).await?;
        assert!(page.contains("130/80 mmHg"), "{page}");
        // Clearing before the prescriber's order is refused; the page names the rule.
        let (s, page) = fx.step(&id, &[("step", "clear")]).await?;
        assert_eq!(s, 422, "{page}");
        assert!(page.contains("id=\"clear-error\""), "the refusal sits next to the form: {page}");
        fx.app.stop().await
    }

    async fn a_refused_step_names_its_rule_on_the_page(b) {
        let fx = Fx::new(b).await?;
        let (_, id) = fx.spravato_session().await?;
        // Alcohol in the last 12 h holds the session (GATE-06): clearing is refused by that rule.
        let (s, to) = fx.step(&id, &check_in("yes")).await?;
        assert_eq!(s, 303, "{to}");
        let (_, page) = fx.page(&fx.nurse, &id).await?;
        assert!(page.contains("GATE-06") && page.contains("Held"), "{page}");
        assert!(!page.contains("value=\"release\""), "only a prescriber releases a hold");
        let (s, page) = fx.step(&id, &[("step", "clear")]).await?;
        assert_eq!(s, 422, "{page}");
        assert!(page.contains("<strong>GATE-06</strong>"), "{page}");
        let (_, page) = fx.page(&fx.prescriber, &id).await?;
        assert!(page.contains("value=\"release\""), "{page}");
        // The front desk may not open the session page.
        let r = fx.front.get(fx.app.url(&format!("/sessions/{id}"))).send().await?;
        assert_eq!(r.status(), 403);
        fx.app.stop().await
    }

    async fn the_floor_board_lists_the_chairs_and_streams_each_change(b) {
        let fx = Fx::new(b).await?;
        let (appointment, id) = fx.spravato_session().await?;
        fx.move_to_today(&appointment).await?;
        let board: Value = fx.app.get_bearer(&fx.therapist_token, "/api/v1/floor").await?.json().await?;
        let r = fx.front.get(fx.app.url("/floor")).send().await?;
        assert_eq!(r.status(), 200);
        let page = r.text().await?;
        assert!(page.contains("/static/floor.js") && page.contains("http-equiv=\"refresh\""), "{page}");
        for chair in board["chairs"].as_array().unwrap() {
            assert!(page.contains(chair["name"].as_str().unwrap()), "{chair} on {page}");
        }
        assert!(page.contains("Scheduled"), "today's session is on the board: {page}");
        assert!(!page.contains(&format!("/sessions/{id}")), "the front desk does not open sessions");
        let fragment = fx.nurse.get(fx.app.url("/floor/board")).send().await?.text().await?;
        assert!(fragment.contains(&format!("/sessions/{id}")) && !fragment.contains("<html"), "{fragment}");
        let js = fx.app.client().get(fx.app.url("/static/floor.js")).send().await?;
        assert!(js.headers()["content-type"].to_str()?.starts_with("text/javascript"));

        let mut events = fx.front.get(fx.app.url("/floor/events")).send().await?;
        assert_eq!(events.status(), 200);
        assert!(events.headers()["content-type"].to_str()?.starts_with("text/event-stream"));
        let mut seen = String::new();
        read_until(&mut events, &mut seen, "event: ready", Duration::from_secs(5)).await?;
        assert!(!seen.contains("event: change"), "{seen}");
        let r = fx.app.client().post(fx.app.url(&format!("/api/v1/sessions/{id}/events"))).bearer_auth(&fx.therapist_token)
            .json(&json!({"kind": "progress_note", "text": "Arrived early"})).send().await?;
        assert_eq!(r.status(), 201);
        read_until(&mut events, &mut seen, "event: change", Duration::from_secs(5)).await?;
        drop(events);
        // A board served by another server process on the same database hears of a change made
        // through the first.
        let second = TestApp::spawn_on(fx.app.fresh.shared(), kapstone_web::ServerConfig::default()).await?;
        let mut events = fx.front.get(second.url("/floor/events")).send().await?;
        assert_eq!(events.status(), 200, "the session is valid on the second server");
        let mut seen = String::new();
        read_until(&mut events, &mut seen, "event: ready", Duration::from_secs(5)).await?;
        let r = fx.app.client().post(fx.app.url(&format!("/api/v1/sessions/{id}/events"))).bearer_auth(&fx.therapist_token)
            .json(&json!({"kind": "progress_note", "text": "Asked for a blanket"})).send().await?;
        assert_eq!(r.status(), 201);
        read_until(&mut events, &mut seen, "event: change", Duration::from_secs(5)).await?;
        drop(events);
        second.stop().await?;
        let r = fx.front.get(fx.app.url("/floor/events?location=nowhere")).send().await?;
        assert_eq!(r.status(), 422);
        fx.app.stop().await
    }
}
