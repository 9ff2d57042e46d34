//! A dosing session run from its page alone (KAP-SPEC 2.2, 4, 5, 6): every step is a form post to
//! `/sessions/{id}/record`, as a nurse, a prescriber and a therapist do it without JavaScript. An IM
//! session (a blocked dose, an override with its reason, the second clinician's check) and a
//! Spravato session (devices 5 minutes apart) go from check-in to discharge, with the warning-sign
//! flag (MON-04, MON-11), adverse events and their follow-up, and readings entered after they were
//! taken. After each step the test reads what the page shows; after each refused post it checks the
//! refusal is shown next to its form, naming the rule or the field, with what was typed kept, and
//! that nothing was stored (the event count of `GET /api/v1/sessions/{id}`).
//!
//! Time: DC-01 keeps a patient 2 hours and Spravato devices are 5 minutes apart, while the page
//! records every step at the server's clock. Rather than wait, the test moves the session's history
//! back (`Fx::age`): it rewrites the stored times of the session's events, as someone with database
//! access could, lifting the append-only trigger for that moment. The server then sees a session
//! that began that much earlier, which is what the clock moving on looks like to it.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use kapstone_store::Db;
use kapstone_testkit::{PASSWORD, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

/// A signed-in browser (cookies) with its CSRF token.
struct User {
    c: reqwest::Client,
    csrf: String,
}

struct Fx {
    app: TestApp,
    nurse: User,
    prescriber: User,
    therapist: User,
    /// The nurse's API token, to count the stored events.
    token: String,
}

/// What a post to the record route gave: the status, and the redirect or the page.
struct Posted {
    status: u16,
    body: String,
}

impl Fx {
    async fn new(b: TestBackend) -> anyhow::Result<Self> {
        let app = TestApp::demo(b).await?;
        let nurse = Self::user(&app, "nurse").await?;
        let prescriber = Self::user(&app, "prescriber").await?;
        let therapist = Self::user(&app, "therapist").await?;
        let token = app.token("nurse@demo.kapstone.test").await?;
        Ok(Self { app, nurse, prescriber, therapist, token })
    }

    async fn user(app: &TestApp, who: &str) -> anyhow::Result<User> {
        let (c, r) = app.browser_login(&format!("{who}@demo.kapstone.test"), PASSWORD).await?;
        anyhow::ensure!(r.status().is_redirection(), "sign-in of {who}: {}", r.status());
        let csrf = app.csrf_of(&c).await?;
        Ok(User { c, csrf })
    }

    async fn patient3(&self) -> anyhow::Result<String> {
        let t = self.app.token("patient3@demo.kapstone.test").await?;
        let me: Value = self.app.get_bearer(&t, "/api/v1/portal/me").await?.json().await?;
        Ok(me["id"].as_str().unwrap().to_owned())
    }

    /// Opens an appointment's session with the appointment page's button; returns its id.
    async fn open(&self, appointment: &str) -> anyhow::Result<String> {
        let page = self.nurse.c.get(self.app.url(&format!("/schedule/appointments/{appointment}"))).send().await?;
        let page = page.text().await?;
        assert!(page.contains(&format!("/schedule/appointments/{appointment}/session")), "a start button: {page}");
        let r = self
            .nurse
            .c
            .post(self.app.url(&format!("/schedule/appointments/{appointment}/session")))
            .form(&[("csrf_token", self.nurse.csrf.as_str())])
            .send()
            .await?;
        assert_eq!(r.status(), 303);
        let to = r.headers()["location"].to_str()?.to_owned();
        Ok(to.strip_prefix("/sessions/").expect("redirected to the session").to_owned())
    }

    /// Demo patient 3's first booked Spravato appointment, opened.
    async fn spravato_session(&self) -> anyhow::Result<String> {
        let p3 = self.patient3().await?;
        let now = Timestamp::now();
        let to = now + SignedDuration::from_hours(24 * 30);
        let list: Value = self
            .app
            .get_bearer(&self.token, &format!("/api/v1/appointments?limit=500&from={now}&to={to}"))
            .await?
            .json()
            .await?;
        let a = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["patient_id"] == p3.as_str() && a["type"] == "dosing-spravato" && a["status"] == "booked")
            .cloned()
            .expect("a booked Spravato session for patient 3");
        self.open(a["id"].as_str().unwrap()).await
    }

    /// Books an IM dosing session for demo patient 3 (eligible for IM, consent signed) at the
    /// first free time a few weeks on, and opens it.
    async fn im_session(&self) -> anyhow::Result<String> {
        let p3 = self.patient3().await?;
        let day = (Timestamp::now() + SignedDuration::from_hours(24 * 20)).to_zoned(TimeZone::get(TZ)?).date();
        let to = day.checked_add(jiff::Span::new().days(7))?;
        let slots: Value = self
            .app
            .get_bearer(
                &self.token,
                &format!("/api/v1/appointments/slots?type=dosing-im&from={day}&to={to}&patient_id={p3}"),
            )
            .await?
            .json()
            .await?;
        let offer = &slots["items"][0];
        assert!(offer["start"].is_string(), "a free time for IM: {slots}");
        let r = self
            .app
            .client()
            .post(self.app.url("/api/v1/appointments"))
            .bearer_auth(&self.token)
            .json(&json!({"patient_id": p3, "type": "dosing-im", "start": offer["start"],
                "staff_ids": offer["staff_ids"], "room_id": offer["room_id"]}))
            .send()
            .await?;
        assert_eq!(r.status(), 201);
        let booked: Value = r.json().await?;
        self.open(booked["id"].as_str().unwrap()).await
    }

    async fn page(&self, u: &User, id: &str) -> anyhow::Result<String> {
        let r = u.c.get(self.app.url(&format!("/sessions/{id}"))).send().await?;
        anyhow::ensure!(r.status() == 200, "GET the session page: {}", r.status());
        Ok(r.text().await?)
    }

    async fn post(&self, u: &User, id: &str, form: &[(&str, &str)]) -> anyhow::Result<Posted> {
        let mut body = vec![("csrf_token", u.csrf.as_str())];
        body.extend_from_slice(form);
        let r = u.c.post(self.app.url(&format!("/sessions/{id}/record"))).form(&body).send().await?;
        let status = r.status().as_u16();
        let location = r.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
        Ok(Posted { status, body: location.unwrap_or(r.text().await?) })
    }

    /// The number of events stored for the session.
    async fn events(&self, id: &str) -> anyhow::Result<u64> {
        let v: Value = self.app.get_bearer(&self.token, &format!("/api/v1/sessions/{id}")).await?.json().await?;
        v["session"]["events"].as_u64().ok_or_else(|| anyhow::anyhow!("no event count in {v}"))
    }

    /// Posts a step that must be accepted (303 back to the page, `events` more stored); returns the
    /// page as the same user then sees it.
    async fn ok(&self, u: &User, id: &str, form: &[(&str, &str)], events: u64) -> anyhow::Result<String> {
        let before = self.events(id).await?;
        let p = self.post(u, id, form).await?;
        let step = form.iter().find(|(k, _)| *k == "step").map(|(_, v)| *v).unwrap_or_default();
        anyhow::ensure!(p.status == 303, "{step} was refused ({}): {}", p.status, refusal_text(&p.body, step));
        assert_eq!(p.body, format!("/sessions/{id}?saved={step}"));
        assert_eq!(self.events(id).await?, before + events, "{step} stores {events} event(s)");
        // Where the browser goes: the page, saying what was saved.
        let r = u.c.get(self.app.url(&p.body)).send().await?;
        anyhow::ensure!(r.status() == 200, "GET {}: {}", p.body, r.status());
        let page = r.text().await?;
        assert!(page.contains("<div class=\"notice\" role=\"status\">Saved: "), "{step}: a notice says it is saved");
        Ok(page)
    }

    /// Posts a step that must be refused: 422 with the page, and nothing stored.
    async fn refused(&self, u: &User, id: &str, form: &[(&str, &str)]) -> anyhow::Result<String> {
        let before = self.events(id).await?;
        let p = self.post(u, id, form).await?;
        anyhow::ensure!(p.status == 422, "expected a refusal, got {}: {}", p.status, p.body);
        assert_eq!(self.events(id).await?, before, "a refused step stores nothing");
        Ok(p.body)
    }

    /// Moves the session's history `minutes` back, as if the clock had moved on that long.
    async fn age(&self, id: &str, minutes: i64) -> anyhow::Result<()> {
        let uuid = uuid::Uuid::parse_str(id)?;
        let (where_id, lift, restore, shift) = match self.app.backend {
            TestBackend::Sqlite => (
                format!("session_id = X'{}'", uuid.simple()),
                vec!["DROP TRIGGER session_events_no_update".to_owned()],
                vec![
                    "CREATE TRIGGER session_events_no_update BEFORE UPDATE ON session_events \
                     BEGIN SELECT RAISE(ABORT, 'session_events is append-only'); END"
                        .to_owned(),
                ],
                format!("recorded_at - {}", minutes * 60_000_000),
            ),
            TestBackend::Postgres => (
                format!("session_id = '{uuid}'"),
                vec!["ALTER TABLE session_events DISABLE TRIGGER session_events_append_only".to_owned()],
                vec!["ALTER TABLE session_events ENABLE TRIGGER session_events_append_only".to_owned()],
                format!("recorded_at - interval '{minutes} minutes'"),
            ),
        };
        let select = sqlx::AssertSqlSafe(format!(
            "SELECT CAST(seq AS BIGINT), payload FROM session_events WHERE {where_id} ORDER BY seq"
        ));
        let rows: Vec<(i64, String)> = match &self.app.db {
            Db::Sqlite { write, .. } => sqlx::query_as(select).fetch_all(write).await?,
            Db::Postgres { pool: p, .. } => sqlx::query_as(select).fetch_all(p).await?,
        };
        for sql in &lift {
            self.app.raw_sql(sql).await?;
        }
        let by = SignedDuration::from_mins(minutes);
        for (seq, payload) in rows {
            let mut v: Value = serde_json::from_str(&payload)?;
            shift_times(&mut v, by);
            let update = sqlx::AssertSqlSafe(format!(
                "UPDATE session_events SET payload = $1, recorded_at = {shift} WHERE {where_id} AND seq = {seq}"
            ));
            let n = match &self.app.db {
                Db::Sqlite { write, .. } => {
                    sqlx::query(update).bind(v.to_string()).execute(write).await?.rows_affected()
                }
                Db::Postgres { pool: p, .. } => {
                    sqlx::query(update).bind(v.to_string()).execute(p).await?.rows_affected()
                }
            };
            anyhow::ensure!(n == 1, "event {seq} moved");
        }
        for sql in &restore {
            self.app.raw_sql(sql).await?;
        }
        // The server keeps sessions folded as of their last event (the log is append-only); this
        // rewrite went behind its back.
        self.app.state.sessions.clear();
        self.app.state.floor_sessions.clear();
        assert!(
            self.app.raw_sql(&format!("UPDATE session_events SET kind = kind WHERE {where_id}")).await.is_err(),
            "the log is append-only again"
        );
        Ok(())
    }
}

const TZ: &str = "America/Los_Angeles";

/// Every RFC 3339 instant in an event, `by` earlier. Dates (a product's expiry) are not instants.
fn shift_times(v: &mut Value, by: SignedDuration) {
    match v {
        Value::String(s) => {
            if let Ok(t) = s.parse::<Timestamp>() {
                *s = (t - by).to_string();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| shift_times(x, by)),
        Value::Object(o) => o.values_mut().for_each(|x| shift_times(x, by)),
        _ => {}
    }
}

/// The text between `start` and the next `end`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

/// The session's phase as the page shows it (`checked_in`, `monitoring`, ...).
fn phase(page: &str) -> &str {
    between(page, "class=\"pill phase-", "\"").unwrap_or("?")
}

/// The codes of what blocks the next step.
fn blockers(page: &str) -> Vec<&str> {
    let Some(list) = between(page, "<ul class=\"plain blockers\">", "</ul>") else { return Vec::new() };
    list.split("<span class=\"pill warn\">").skip(1).filter_map(|x| x.split('<').next()).collect()
}

/// The alerts waiting for an acknowledgement: (id, rule).
fn alerts(page: &str) -> Vec<(String, String)> {
    page.split("name=\"alert_id\" value=\"")
        .skip(1)
        .map(|x| {
            let id = x.split('"').next().unwrap_or_default().to_owned();
            let rule = between(x, "Acknowledge ", "<").unwrap_or_default().to_owned();
            (id, rule)
        })
        .collect()
}

/// The refusal shown next to a step's form.
fn refusal_text<'a>(page: &'a str, step: &str) -> &'a str {
    between(page, &format!("id=\"{step}-error\">"), "</p>").unwrap_or("(no refusal next to the form)")
}

/// "Since dose: 12 min", in minutes.
fn since_dose(page: &str) -> i64 {
    between(page, "Since dose: <strong>", " min").and_then(|m| m.parse().ok()).unwrap_or(-1)
}

fn has_form(page: &str, step: &str) -> bool {
    page.contains(&format!("name=\"step\" value=\"{step}\""))
}

/// The page's time zone ("times in America/Los_Angeles").
fn zone(page: &str) -> anyhow::Result<TimeZone> {
    let name = between(page, "times in ", "<").ok_or_else(|| anyhow::anyhow!("no time zone on the page"))?;
    Ok(TimeZone::get(name)?)
}

fn hm(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    format!("{:02}:{:02}", z.hour(), z.minute())
}

/// A clinic time of today a few minutes ago (midnight at the latest), for a back-dated reading.
fn earlier_today(tz: &TimeZone, minutes: i64) -> String {
    let now = Timestamp::now().to_zoned(tz.clone());
    let t = (now.timestamp() - SignedDuration::from_mins(minutes)).to_zoned(tz.clone());
    if t.date() == now.date() { hm(t.timestamp(), tz) } else { "00:00".to_owned() }
}

/// A clinic time of today still to come, if there is one.
fn later_today(tz: &TimeZone) -> Option<String> {
    let now = Timestamp::now().to_zoned(tz.clone());
    let t = (now.timestamp() + SignedDuration::from_mins(3)).to_zoned(tz.clone());
    (t.date() == now.date()).then(|| hm(t.timestamp(), tz))
}

/// Each input is labelled: a `<label for>` names the element with that id.
fn labelled(page: &str, ids: &[&str]) {
    for id in ids {
        assert!(page.contains(&format!("for=\"{id}\"")) && page.contains(&format!("id=\"{id}\"")), "a label for {id}");
    }
}

fn check_in<'a>(mood: &'a str, weight: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("step", "check_in"),
        ("escort_name", "Sam Rivers"),
        ("escort_phone", "+1 555 010 0199"),
        ("escort_relationship", "partner"),
        ("escort_confirmed_in_person", "yes"),
        ("mood", mood),
        ("sleep_hours", "7"),
        ("alcohol", "no"),
        ("intoxication", "no"),
        ("pregnancy", "not_applicable"),
        ("weight_kg", weight),
    ]
}

const VITALS: [(&str, &str); 6] = [
    ("step", "vitals"),
    ("systolic", "130"),
    ("diastolic", "80"),
    ("heart_rate", "72"),
    ("spo2", "98"),
    ("resp_rate", "14"),
];

fn assessment(escort: &str) -> Vec<(&str, &str)> {
    vec![
        ("step", "assessment"),
        ("ready_to_leave", "yes"),
        ("oriented", "yes"),
        ("can_talk", "yes"),
        ("walks", "yes"),
        ("nausea_controlled", "yes"),
        ("hydrated", "yes"),
        ("on_room_air", "yes"),
        ("escort_present", escort),
        ("cssrs_at_discharge", "none"),
    ]
}

/// Acknowledges every waiting alert of `rule` from the page, as `u`; returns the page after.
async fn acknowledge(fx: &Fx, u: &User, id: &str, page: &str, rule: &str) -> anyhow::Result<String> {
    let waiting: Vec<String> = alerts(page).into_iter().filter(|(_, r)| r == rule).map(|(i, _)| i).collect();
    assert!(!waiting.is_empty(), "a {rule} alert to acknowledge: {:?}", alerts(page));
    let mut page = page.to_owned();
    for a in waiting {
        page = fx.ok(u, id, &[("step", "acknowledge"), ("alert_id", &a), ("note", "Seen; rechecking")], 1).await?;
    }
    assert!(alerts(&page).iter().all(|(_, r)| r != rule), "{rule} acknowledged: {:?}", alerts(&page));
    Ok(page)
}

both_backends! {
    async fn an_im_session_runs_from_check_in_to_discharge_on_its_page(b) {
        let fx = Fx::new(b).await?;
        let id = fx.im_session().await?;
        let page = fx.page(&fx.nurse, &id).await?;
        assert_eq!(phase(&page), "scheduled", "{page}");
        assert!(page.contains("Intramuscular") || page.contains("IM"), "the IM protocol: {page}");

        // Check-in with the weight the dose is computed from.
        let page = fx.ok(&fx.nurse, &id, &check_in("6", "80"), 1).await?;
        assert_eq!(phase(&page), "checked_in");
        assert!(page.contains("Sam Rivers (partner)") && page.contains("80 kg"), "{page}");
        assert!(blockers(&page).contains(&"pre_dose_checks") && blockers(&page).contains(&"dose_order"), "{:?}", blockers(&page));

        // Pre-dose baselines: vitals by the nurse, sedation and dissociation by the therapist.
        let page = fx.ok(&fx.nurse, &id, &VITALS, 2).await?;
        assert!(page.contains("130/80 mmHg"), "{page}");
        let page = fx.ok(&fx.therapist, &id, &[("step", "scores"), ("moaas", "5"), ("cadss23", "0")], 2).await?;
        assert!(!blockers(&page).contains(&"pre_dose_checks"), "{:?}", blockers(&page));
        assert!(!has_form(&page, "order") && !has_form(&page, "clear"), "a therapist neither orders nor clears");

        // The prescriber orders. A dose in the block zone cannot be given: refused with its code.
        let page = fx.page(&fx.prescriber, &id).await?;
        assert!(has_form(&page, "order"), "{page}");
        labelled(&page, &["order-dose-mg-per-kg", "order-stock-mg-per-ml", "order-override-reason"]);
        assert!(!page.contains("name=\"infusion_minutes\"") && !page.contains("name=\"diluted\""), "an IM order asks nothing of an infusion");
        let order = |per_kg: &'static str, reason: &'static str| {
            vec![("step", "order"), ("dose_mg_per_kg", per_kg), ("stock_mg_per_ml", "100"), ("override_reason", reason)]
        };
        let page = fx.refused(&fx.prescriber, &id, &order("7", "")).await?;
        let shown = refusal_text(&page, "order");
        assert!(shown.contains("<strong>dose_block</strong>") && shown.contains("cannot be given"), "{shown}");
        assert!(page.contains("id=\"order-dose-mg-per-kg\" name=\"dose_mg_per_kg\" type=\"text\" inputmode=\"decimal\" value=\"7\""),
            "the dose typed is kept: {page}");
        // Above the override limit the prescriber must give a reason; the error names the field.
        let page = fx.refused(&fx.prescriber, &id, &order("1.5", "")).await?;
        let shown = refusal_text(&page, "order");
        assert!(shown.contains("<strong>dose_override</strong>") && shown.contains("href=\"#order-override-reason\""), "{shown}");
        assert!(page.contains("id=\"order-override-reason\" name=\"override_reason\" type=\"text\" value=\"\" aria-invalid=\"true\""), "{page}");
        let page = fx.ok(&fx.prescriber, &id, &order("1.5", "Partial response at 1 mg/kg over three sessions"), 1).await?;
        assert!(page.contains("120 mg (1.5 mg/kg × 80 kg)") && page.contains("override: Partial response"), "{page}");
        assert!(blockers(&page).contains(&"dose_verification"), "{:?}", blockers(&page));
        // The prescriber who ordered is not offered the second check, and is refused it.
        assert!(!has_form(&page, "verify"), "the orderer does not check their own dose");
        let page = fx.refused(&fx.prescriber, &id, &[("step", "verify")]).await?;
        let top = between(&page, "id=\"step-error\">", "</div>").unwrap_or_default();
        assert!(top.contains("<strong>dose_verification</strong>") && top.contains("second clinician"), "{top}");
        // The nurse checks it and clears the patient.
        let page = fx.page(&fx.nurse, &id).await?;
        assert!(has_form(&page, "verify"), "{page}");
        let page = fx.ok(&fx.nurse, &id, &[("step", "verify")], 1).await?;
        assert!(page.contains("Dose checked"), "{page}");
        assert!(blockers(&page).is_empty(), "nothing blocks clearing: {:?}", blockers(&page));
        let page = fx.ok(&fx.nurse, &id, &[("step", "clear")], 1).await?;
        assert_eq!(phase(&page), "cleared_for_dosing");

        // The administration record: an expired vial is refused naming the expiry.
        assert!(has_form(&page, "administer"), "{page}");
        labelled(&page, &["administer-product", "administer-ndc", "administer-lot", "administer-expiry", "administer-dose-mg", "administer-route-snomed"]);
        assert!(page.contains("id=\"administer-dose-mg\" name=\"dose_mg\" type=\"text\" inputmode=\"decimal\" value=\"120\""), "the ordered dose: {page}");
        let give = |expiry: &'static str| vec![("step", "administer"), ("product", "Ketamine HCl injection 100 mg/mL vial"),
            ("ndc", "12345-678-90"), ("lot", "KX2207"), ("expiry", expiry), ("dose_mg", "120"), ("route_snomed", "78421000")];
        let page = fx.refused(&fx.nurse, &id, &give("2020-01-31")).await?;
        let shown = refusal_text(&page, "administer");
        assert!(shown.contains("href=\"#administer-expiry\">Expiry</a>") && shown.contains("expired on 2020-01-31"), "{shown}");
        assert!(page.contains("value=\"KX2207\""), "the lot typed is kept");
        // An IM injection is given at once: the session goes straight to monitoring.
        let page = fx.ok(&fx.nurse, &id, &give("2031-06-30"), 1).await?;
        assert_eq!(phase(&page), "monitoring", "{page}");
        assert!(page.contains("lot KX2207") && page.contains("expiry 2031-06-30") && page.contains("NDC 12345-678-90"), "{page}");

        // MON-04: the nurse flags chest pain; the emergency alert waits for an acknowledgement.
        assert!(has_form(&page, "observation"), "{page}");
        labelled(&page, &["observation-observation-1", "observation-note"]);
        let page = fx.refused(&fx.nurse, &id, &[("step", "observation"), ("note", "Pressing pain")]).await?;
        let shown = refusal_text(&page, "observation");
        assert!(shown.contains("href=\"#observation-observation\"") && shown.contains("Choose the sign"), "{shown}");
        assert!(page.contains("value=\"Pressing pain\""), "the note typed is kept");
        let page = fx.ok(&fx.nurse, &id, &[("step", "observation"), ("observation", "chest_pain"), ("note", "Pressing pain, left side")], 1).await?;
        assert!(page.contains("Saved: the warning sign; its alert is waiting below."), "{page}");
        assert!(page.contains("Get emergency care now") && page.contains("1 alert waiting"), "{page}");
        assert!(page.contains("Chest pain (") && page.contains("Pressing pain, left side"), "on the record: {page}");
        let page = acknowledge(&fx, &fx.prescriber, &id, &page, "MON-04").await?;
        assert!(!page.contains("alert waiting"), "{page}");

        // Monitoring readings; the experience ends; recovery.
        fx.ok(&fx.therapist, &id, &[("step", "scores"), ("moaas", "4"), ("cadss23", "12")], 2).await?;
        fx.ok(&fx.nurse, &id, &VITALS, 2).await?;
        let page = fx.ok(&fx.nurse, &id, &[("step", "end_experience")], 1).await?;
        assert_eq!(phase(&page), "recovery");
        // Discharge now is refused: the observation time (DC-01) has not passed.
        let page = fx.ok(&fx.nurse, &id, &assessment("yes"), 1).await?;
        assert!(page.contains("Earliest discharge"), "{page}");
        assert!(blockers(&page).contains(&"DC-01"), "{:?}", blockers(&page));
        let page = fx.refused(&fx.nurse, &id, &[("step", "discharge"), ("instructions_given", "yes")]).await?;
        assert!(refusal_text(&page, "discharge").contains("<strong>DC-01</strong>"), "{}", refusal_text(&page, "discharge"));

        // Two hours later: fresh readings back to baseline, and the patient leaves.
        fx.age(&id, 125).await?;
        let page = fx.page(&fx.nurse, &id).await?;
        assert!(since_dose(&page) >= 125, "the clock has moved on: {page}");
        fx.ok(&fx.nurse, &id, &VITALS, 2).await?;
        fx.ok(&fx.therapist, &id, &[("step", "scores"), ("moaas", "5"), ("cadss23", "0")], 2).await?;
        let page = fx.ok(&fx.nurse, &id, &assessment("yes"), 1).await?;
        assert_eq!(phase(&page), "ready_for_discharge", "{:?}", blockers(&page));
        assert!(page.contains("<span class=\"pill ok\">all met</span>"), "{page}");
        assert!(!has_form(&fx.page(&fx.therapist, &id).await?, "discharge"), "a therapist does not discharge");
        let page = fx.refused(&fx.nurse, &id, &[("step", "discharge"), ("instructions_given", "no")]).await?;
        assert!(refusal_text(&page, "discharge").contains("<strong>instructions</strong>"), "{}", refusal_text(&page, "discharge"));
        let page = fx.ok(&fx.nurse, &id, &[("step", "discharge"), ("instructions_given", "yes")], 1).await?;
        assert_eq!(phase(&page), "discharged");
        assert!(page.contains("The session has ended") && page.contains("integration session"), "{page}");
        assert!(!has_form(&page, "vitals") && !has_form(&page, "observation"), "nothing more happens in it");
        fx.app.stop().await
    }

    async fn a_spravato_session_runs_from_check_in_to_discharge_on_its_page(b) {
        let fx = Fx::new(b).await?;
        let id = fx.spravato_session().await?;
        let page = fx.page(&fx.nurse, &id).await?;
        assert_eq!(phase(&page), "scheduled");
        let tz = zone(&page)?;

        // A mood of 11 is refused naming the field; what was typed stays.
        let page = fx.refused(&fx.nurse, &id, &check_in("11", "")).await?;
        let shown = refusal_text(&page, "check_in");
        assert!(shown.contains("href=\"#check_in-mood\"") && shown.contains("0 to 10"), "{shown}");
        assert!(page.contains("value=\"Sam Rivers\"") && page.contains("value=\"+1 555 010 0199\""), "kept: {page}");
        let page = fx.ok(&fx.nurse, &id, &check_in("6", ""), 1).await?;
        assert_eq!(phase(&page), "checked_in");

        // Pre-dose vitals taken a few minutes ago, entered now: the table says both.
        labelled(&page, &["vitals-taken-at", "scores-taken-at", "scores-cadss6"]);
        let taken = earlier_today(&tz, 4);
        let before = hm(Timestamp::now(), &tz);
        let mut vitals = VITALS.to_vec();
        vitals.push(("taken_at", &taken));
        let page = fx.ok(&fx.nurse, &id, &vitals, 2).await?;
        assert!(page.contains(&format!("<td>{taken}")) && page.contains("130/80 mmHg"), "{page}");
        if taken != before {
            assert!(page.contains(&format!("<td>{taken} (entered ")), "a back-dated reading says when it was entered: {page}");
        }
        // A time still to come today is refused with the clock, naming the field; the values stay.
        if let Some(later) = later_today(&tz) {
            let mut ahead = vec![("step", "vitals"), ("systolic", "128"), ("diastolic", "82")];
            ahead.push(("taken_at", &later));
            let page = fx.refused(&fx.nurse, &id, &ahead).await?;
            let shown = refusal_text(&page, "vitals");
            assert!(shown.contains("href=\"#vitals-taken-at\"") && shown.contains(&format!("taken at {later} today")) && shown.contains("it is now"), "{shown}");
            assert!(page.contains(&format!("id=\"vitals-taken-at\" name=\"taken_at\" type=\"time\" value=\"{later}\" aria-invalid=\"true\"")), "{page}");
            assert!(page.contains("value=\"128\""), "the reading typed is kept");
        }
        let page = fx.refused(&fx.nurse, &id, &[("step", "scores"), ("moaas", "5"), ("taken_at", "7pm")]).await?;
        assert!(refusal_text(&page, "scores").contains("href=\"#scores-taken-at\""), "{}", refusal_text(&page, "scores"));
        let page = fx.refused(&fx.therapist, &id, &[("step", "scores"), ("moaas", "5"), ("cadss23", "0"), ("cadss6", "0")]).await?;
        assert!(refusal_text(&page, "scores").contains("href=\"#scores-cadss6\""), "{}", refusal_text(&page, "scores"));
        let page = fx.ok(&fx.therapist, &id, &[("step", "scores"), ("moaas", "5"), ("cadss6", "0"), ("taken_at", &taken)], 2).await?;
        assert!(page.contains("CADSS-6") || page.contains("/24"), "the CADSS-6 total is listed: {page}");

        // Day 1 of Spravato is 56 mg: 84 mg is refused (TV-SPR-2); 56 mg is ordered. No second
        // check is asked for a Spravato kit.
        let page = fx.page(&fx.prescriber, &id).await?;
        assert!(has_form(&page, "order"), "{page}");
        let page = fx.refused(&fx.prescriber, &id, &[("step", "order"), ("dose_mg", "84")]).await?;
        assert!(refusal_text(&page, "order").contains("56"), "{}", refusal_text(&page, "order"));
        let page = fx.ok(&fx.prescriber, &id, &[("step", "order"), ("dose_mg", "56")], 1).await?;
        assert!(page.contains("Dose ordered") && page.contains("56 mg"), "{page}");
        let page = fx.page(&fx.nurse, &id).await?;
        assert!(!has_form(&page, "verify") && !blockers(&page).contains(&"dose_verification"), "{:?}", blockers(&page));
        let page = fx.ok(&fx.nurse, &id, &[("step", "clear")], 1).await?;
        assert_eq!(phase(&page), "cleared_for_dosing");

        // The kit: expired is refused naming the expiry; then the administration starts.
        let kit = |expiry: &'static str| vec![("step", "administer"), ("product", "SPRAVATO 28 mg/0.2 mL nasal spray, kit of 2 devices (56 mg)"),
            ("ndc", "50458-028-02"), ("lot", "24KX117"), ("expiry", expiry), ("dose_mg", "56"), ("route_snomed", "46713006")];
        let page = fx.refused(&fx.nurse, &id, &kit("2021-12-31")).await?;
        assert!(refusal_text(&page, "administer").contains("href=\"#administer-expiry\""), "{}", refusal_text(&page, "administer"));
        let page = fx.ok(&fx.nurse, &id, &kit("2030-01-31"), 1).await?;
        assert_eq!(phase(&page), "dosing");
        assert!(has_form(&page, "device"), "{page}");

        // Devices: the second within 5 minutes is refused; ending with one device needs a reason.
        let page = fx.ok(&fx.nurse, &id, &[("step", "device")], 1).await?;
        assert!(page.contains("1 given so far") && blockers(&page).contains(&"device_wait"), "{:?}", blockers(&page));
        let page = fx.refused(&fx.nurse, &id, &[("step", "device")]).await?;
        assert!(refusal_text(&page, "device").contains("<strong>device_log</strong>"), "{}", refusal_text(&page, "device"));
        let page = fx.refused(&fx.nurse, &id, &[("step", "end_administration"), ("reason", "")]).await?;
        assert!(refusal_text(&page, "end_administration").contains("href=\"#end_administration-reason\""), "{}", refusal_text(&page, "end_administration"));
        fx.age(&id, 6).await?;
        let page = fx.page(&fx.nurse, &id).await?;
        assert!(!blockers(&page).contains(&"device_wait"), "{:?}", blockers(&page));
        let page = fx.ok(&fx.nurse, &id, &[("step", "device")], 1).await?;
        assert_eq!(phase(&page), "monitoring", "the last device ends the administration");
        assert!((6..120).contains(&since_dose(&page)), "counted from the first device: {page}");

        // A rise of more than 40 systolic raises MON-03; the nurse acknowledges it.
        let page = fx.ok(&fx.nurse, &id, &[("step", "vitals"), ("systolic", "172"), ("diastolic", "92"), ("heart_rate", "88")], 1).await?;
        assert!(alerts(&page).iter().any(|(_, r)| r == "MON-03"), "{:?}", alerts(&page));
        acknowledge(&fx, &fx.nurse, &id, &page, "MON-03").await?;
        // MON-11: the therapist flags a severe emergence reaction; a therapist sees the alert but
        // a nurse acknowledges it.
        let page2 = fx.ok(&fx.therapist, &id, &[("step", "observation"), ("observation", "severe_emergence_reaction"), ("note", "Agitated, pulling at the blanket")], 1).await?;
        assert!(page2.contains("MON-11") && page2.contains("1 alert waiting") && !page2.contains("name=\"alert_id\""), "{page2}");
        let page = acknowledge(&fx, &fx.nurse, &id, &fx.page(&fx.nurse, &id).await?, "MON-11").await?;
        assert!(page.contains("Severe emergence reaction or agitation (") && page.contains("Agitated, pulling"), "{page}");

        // An adverse event: "resolved" needs its time (named); recorded as resolving, then
        // followed up with the outcome.
        let clock = Timestamp::now().to_zoned(tz.clone());
        let now = hm(clock.timestamp(), &tz);
        // The resolved time as a browser's date-and-time input sends it.
        let resolved = format!("{}T{now}", clock.date());
        let ae = |outcome: &'static str| -> Vec<(&str, &str)> {
            vec![("step", "adverse_event"), ("code", "nausea"), ("onset", &now), ("severity", "mild"),
                 ("actions", "increased_monitoring"), ("outcome", outcome), ("resolved_at", "")]
        };
        let page = fx.refused(&fx.nurse, &id, &ae("resolved")).await?;
        let shown = refusal_text(&page, "adverse_event");
        assert!(shown.contains("href=\"#adverse_event-resolved-at\"") && shown.contains("time the event resolved"), "{shown}");
        let page = fx.ok(&fx.nurse, &id, &ae("resolving"), 1).await?;
        assert!(page.contains("Adverse event 1") && page.contains("Nausea, mild") && page.contains("resolving"), "{page}");
        assert!(has_form(&page, "ae_update"), "{page}");
        labelled(&page, &["ae_update-number", "ae_update-outcome", "ae_update-resolved-at"]);
        let page = fx.refused(&fx.nurse, &id, &[("step", "ae_update"), ("number", "1"), ("outcome", "resolved"), ("resolved_at", "")]).await?;
        assert!(refusal_text(&page, "ae_update").contains("href=\"#ae_update-resolved-at\""), "{}", refusal_text(&page, "ae_update"));
        let page = fx.refused(&fx.nurse, &id, &[("step", "ae_update"), ("number", "2"), ("outcome", "resolving")]).await?;
        assert!(refusal_text(&page, "ae_update").contains("No adverse event 2"), "{}", refusal_text(&page, "ae_update"));
        let page = fx.ok(&fx.nurse, &id, &[("step", "ae_update"), ("number", "1"), ("outcome", "resolved"), ("resolved_at", &resolved)], 1).await?;
        assert!(page.contains(&format!("Nausea, mild, onset {now}, resolved at {now}")), "{page}");

        // Recovery; the discharge waits for the escort (DC-08) and for 2 hours from the first
        // device (DC-01).
        fx.ok(&fx.therapist, &id, &[("step", "scores"), ("moaas", "5"), ("cadss23", "2")], 2).await?;
        let page = fx.ok(&fx.therapist, &id, &[("step", "end_experience")], 1).await?;
        assert_eq!(phase(&page), "recovery");
        fx.age(&id, 120).await?;
        fx.ok(&fx.nurse, &id, &VITALS, 2).await?;
        let page = fx.ok(&fx.nurse, &id, &assessment("no"), 1).await?;
        assert_eq!(blockers(&page), vec!["DC-08"], "only the escort is missing");
        let page = fx.refused(&fx.nurse, &id, &[("step", "discharge"), ("instructions_given", "yes")]).await?;
        assert!(refusal_text(&page, "discharge").contains("<strong>DC-08</strong>"), "{}", refusal_text(&page, "discharge"));
        let page = fx.ok(&fx.nurse, &id, &assessment("yes"), 1).await?;
        assert_eq!(phase(&page), "ready_for_discharge", "{:?}", blockers(&page));
        let page = fx.ok(&fx.nurse, &id, &[("step", "discharge"), ("instructions_given", "yes")], 1).await?;
        assert_eq!(phase(&page), "discharged");
        assert!(page.contains("The session has ended") && blockers(&page).is_empty(), "{page}");
        // The follow-up of an adverse event stays open after the session.
        assert!(has_form(&page, "ae_update") && !has_form(&page, "vitals"), "{page}");
        fx.app.stop().await
    }
}

both_backends! {
    async fn an_adverse_event_that_does_not_hold_together_names_its_field_on_the_page_and_over_the_api(b) {
        let fx = Fx::new(b).await?;
        let id = fx.spravato_session().await?;
        fx.ok(&fx.nurse, &id, &check_in("6", ""), 1).await?;
        // On the page: a serious event needs the action taken; the boxes ticked stay ticked.
        let page = fx.refused(&fx.nurse, &id, &[("step", "adverse_event"), ("code", "anxiety"), ("onset", ""),
            ("severity", "severe"), ("seriousness", "other_medically_important"), ("outcome", "resolving")]).await?;
        let shown = refusal_text(&page, "adverse_event");
        assert!(shown.contains("href=\"#adverse_event-actions\">Action taken</a>") && shown.contains("action taken"), "{shown}");
        assert!(page.contains("value=\"other_medically_important\" checked"), "{page}");
        assert!(page.contains("id=\"adverse_event-actions\" aria-describedby=\"adverse_event-error\""), "{page}");
        // Over the API the same rule is a 422 naming the field, not a parse error.
        let r = fx.app.client().post(fx.app.url(&format!("/api/v1/sessions/{id}/events"))).bearer_auth(&fx.token)
            .json(&json!({"kind": "adverse_event_recorded", "code": "nausea", "onset_at": Timestamp::now().to_string(),
                "severity": "mild", "outcome": "resolved"})).send().await?;
        assert_eq!(r.status(), 422);
        let body: Value = r.json().await?;
        assert_eq!((body["error"]["code"].as_str(), body["error"]["field"].as_str()), (Some("invalid"), Some("resolved_at")), "{body}");
        let r = fx.app.client().post(fx.app.url(&format!("/api/v1/sessions/{id}/events"))).bearer_auth(&fx.token)
            .json(&json!({"kind": "adverse_event_recorded", "code": "nausea", "onset_at": "soon",
                "severity": "mild", "outcome": "resolving"})).send().await?;
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await?;
        assert_eq!(body["error"]["field"], "onset_at", "{body}");
        assert_eq!(fx.events(&id).await?, 1, "only the check-in is stored");
        let r = fx.app.client().post(fx.app.url(&format!("/api/v1/sessions/{id}/events"))).bearer_auth(&fx.token)
            .json(&json!({"kind": "adverse_event_recorded", "code": "nausea", "onset_at": Timestamp::now().to_string(),
                "severity": "mild", "outcome": "resolving"})).send().await?;
        assert_eq!(r.status(), 201);
        let page = fx.page(&fx.nurse, &id).await?;
        assert!(page.contains("Adverse event 1") && page.contains("Nausea, mild"), "{page}");
        fx.app.stop().await
    }

    async fn screeners_are_linked_from_the_page_and_a_spravato_check_in_notes_the_nasal_spray(b) {
        let fx = Fx::new(b).await?;
        let id = fx.spravato_session().await?;
        let patient = fx.app.token("patient3@demo.kapstone.test").await?;
        let portal = |answers: Value, instrument: &str| {
            let body = json!({"instrument": instrument, "answers": answers});
            let (app, patient) = (&fx.app, patient.clone());
            async move {
                let r = app.client().post(app.url("/api/v1/portal/questionnaires")).bearer_auth(&patient).json(&body).send().await?;
                anyhow::ensure!(r.status() == 201, "portal questionnaire: {}", r.status());
                Ok::<Value, anyhow::Error>(r.json().await?)
            }
        };
        // Answered in the portal before arriving: the check-in links both (three events).
        portal(json!([1,1,1,1,1,1,1,0,0]), "phq9").await?;
        portal(json!([false, false, null, null, null, false, null]), "cssrs_screener").await?;
        let page = fx.page(&fx.nurse, &id).await?;
        labelled(&page, &["check_in-last-nasal-spray-at"]);
        let tz = zone(&page)?;
        let spray = earlier_today(&tz, 30);
        let mut form = check_in("6", "");
        form.push(("last_nasal_spray_at", &spray));
        let page = fx.ok(&fx.nurse, &id, &form, 3).await?;
        assert!(page.contains("PHQ-9 total 7 · answered in the portal"), "{page}");
        assert!(page.contains("C-SSRS screener: no risk identified · answered in the portal"), "{page}");
        assert!(page.contains("data-code=\"spravato_nasal_spray\"") && page.contains("DDI-011"), "the advice shows: {page}");
        assert!(!page.contains("Link a pre-session screener"), "nothing left to link");

        // A PHQ-9 answered in the waiting room after check-in is linked from the page.
        let later = portal(json!([0,1,0,1,0,1,0,0,0]), "phq9").await?;
        let later_id = later["id"].as_str().unwrap().to_owned();
        let page = fx.page(&fx.therapist, &id).await?;
        assert!(page.contains("Link a pre-session screener") && page.contains("PHQ-9 total 3"), "{page}");
        let forged = fx.refused(&fx.therapist, &id, &[("step", "link_screening"), ("response_id", "not-a-response")]).await?;
        assert!(refusal_text(&forged, "link_screening").contains("screener"), "{forged}");
        let page = fx.ok(&fx.therapist, &id, &[("step", "link_screening"), ("response_id", &later_id)], 1).await?;
        assert!(page.contains("PHQ-9 total 3 · answered in the portal"), "{page}");
        assert!(!page.contains("Link a pre-session screener"), "linked now");
        fx.app.stop().await
    }
}
