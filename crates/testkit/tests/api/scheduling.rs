//! Scheduling over the JSON API (KAP-SPEC 2.1 stages 3–5, 4.4): what booking needs, booking
//! and its clashes, atomic booking under parallel requests and two server processes on one
//! database, the dosing gates, bad input, cancel / no-show / reschedule kept as history, free
//! slots, time zones and daylight saving in the clinic's zone (America/Los_Angeles).
//!
//! Dates are computed from today and lie weeks ahead, so the demo's own appointments (the next
//! five weekdays) do not interfere. Local clinic times are written with the offset the US rules
//! give (second Sunday of March to first Sunday of November), worked out here independently of
//! the server's time-zone database.

use kapstone_domain::ClinicId;
use kapstone_testkit::{PASSWORD, TestApp, TestBackend, both_backends};
use reqwest::Method;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, Month, OffsetDateTime, UtcOffset, Weekday};

const ADMIN: &str = "admin@demo.kapstone.test";
const FRONTDESK: &str = "frontdesk@demo.kapstone.test";
const NURSE: &str = "nurse@demo.kapstone.test";
const PRESCRIBER: &str = "prescriber@demo.kapstone.test";
const MAIN_CLINIC: &str = "Harbour Light — Main clinic";

// ---------------------------------------------------------------------------------------------
// Time in the clinic's zone, by the US rules (independent of the server's zone database).

fn nth_sunday(year: i32, month: Month, n: i64) -> Date {
    let mut d = Date::from_calendar_date(year, month, 1).unwrap();
    while d.weekday() != Weekday::Sunday {
        d = d.next_day().unwrap();
    }
    d + Duration::weeks(n - 1)
}

/// The spring-forward Sunday (02:00 PST -> 03:00 PDT) of `year`.
fn spring_forward(year: i32) -> Date {
    nth_sunday(year, Month::March, 2)
}

/// The fall-back Sunday (02:00 PDT -> 01:00 PST) of `year`.
fn fall_back(year: i32) -> Date {
    nth_sunday(year, Month::November, 1)
}

/// America/Los_Angeles's offset in hours at local `date` `hour` (not for the skipped hour; an
/// hour repeated in the fall reads as the earlier, daylight one).
fn la_offset(date: Date, hour: u8) -> i8 {
    let (spring, fall) = (spring_forward(date.year()), fall_back(date.year()));
    let after_spring = date > spring || (date == spring && hour >= 2);
    let before_fall = date < fall || (date == fall && hour < 2);
    if after_spring && before_fall { -7 } else { -8 }
}

/// A local clinic time written with its offset, e.g. `2027-01-05T09:00:00-08:00`.
fn at(date: Date, hour: u8, minute: u8) -> String {
    format!("{date}T{hour:02}:{minute:02}:00{:+03}:00", la_offset(date, hour))
}

fn instant(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("not RFC 3339: {s}: {e}"))
}

fn instant_of(v: &Value) -> OffsetDateTime {
    instant(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
}

/// The same instant written with another UTC offset.
fn written_with(s: &str, hours: i8, minutes: i8) -> String {
    let off = UtcOffset::from_hms(hours, minutes, 0).unwrap();
    instant(s).to_offset(off).format(&Rfc3339).unwrap()
}

fn utc_text(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

/// Today in the clinic (near enough: UTC-8).
fn today() -> Date {
    (OffsetDateTime::now_utc() - Duration::hours(8)).date()
}

/// The first `weekday` at least `days` days from today.
fn weekday_after(days: i64, weekday: Weekday) -> Date {
    let mut d = today() + Duration::days(days);
    while d.weekday() != weekday {
        d = d.next_day().unwrap();
    }
    d
}

/// The first weekday (Monday to Friday) at least `days` days from today.
fn workday_after(days: i64) -> Date {
    let mut d = today() + Duration::days(days);
    while matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
        d = d.next_day().unwrap();
    }
    d
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers.

async fn send_to(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let mut req = client.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn get(app: &TestApp, token: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    send_to(&app.base, token, Method::GET, path, None).await
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    send_to(&app.base, token, Method::POST, path, Some(body)).await
}

async fn put(app: &TestApp, token: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    send_to(&app.base, token, Method::PUT, path, Some(body)).await
}

/// (status, error code, error field) of a refusal.
fn refusal(r: &(u16, Value)) -> (u16, String, String) {
    let e = &r.1["error"];
    (r.0, e["code"].as_str().unwrap_or("").to_owned(), e["field"].as_str().unwrap_or("").to_owned())
}

fn message(r: &(u16, Value)) -> String {
    r.1["error"]["message"].as_str().unwrap_or("").to_owned()
}

fn refused(status: u16, code: &str, field: &str) -> (u16, String, String) {
    (status, code.to_owned(), field.to_owned())
}

/// No staff on a booking.
const NOBODY: [&str; 0] = [];

fn booking<S: AsRef<str>>(patient: &str, kind: &str, start: &str, staff: &[S], room: Option<&str>) -> Value {
    let staff: Vec<&str> = staff.iter().map(AsRef::as_ref).collect();
    let mut v = json!({"patient_id": patient, "type": kind, "start": start, "staff_ids": staff});
    if let Some(r) = room {
        v["room_id"] = json!(r);
    }
    v
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned()
}

/// A uuid as an SQL literal for a uuid column (a 16-byte BLOB on SQLite).
fn uuid_sql(app: &TestApp, id: &str) -> String {
    let id = uuid::Uuid::parse_str(id).unwrap();
    match app.backend {
        TestBackend::Sqlite => format!("X'{}'", id.simple()),
        TestBackend::Postgres => format!("'{id}'"),
    }
}

/// Slot claims held by an appointment.
async fn claims_of(app: &TestApp, appointment: &str) -> anyhow::Result<i64> {
    app.count(&format!("booking_claims WHERE appointment_id = {}", uuid_sql(app, appointment))).await
}

/// Appointment rows (any status) of a patient.
async fn appointments_of(app: &TestApp, patient: &str) -> anyhow::Result<i64> {
    app.count(&format!("appointments WHERE patient_id = {}", uuid_sql(app, patient))).await
}

/// The demo clinic with the ids and tokens the tests use.
struct Fx {
    app: TestApp,
    clinic: ClinicId,
    admin: String,
    front: String,
    prescriber: String,
    nurse: String,
    therapist: String,
    frontdesk: String,
    location: String,
    /// Chair 1, Chair 2, Chair 3.
    chairs: Vec<String>,
}

impl Fx {
    async fn new(b: TestBackend) -> anyhow::Result<Self> {
        let app = TestApp::spawn(b).await?;
        let seed = app.seed().await?;
        let admin = app.token(ADMIN).await?;
        let front = app.token(FRONTDESK).await?;
        let (s, staff) = get(&app, &front, "/api/v1/staff").await?;
        anyhow::ensure!(s == 200, "staff: {s} {staff}");
        let id_of = |role: &str| {
            staff["items"]
                .as_array()
                .and_then(|a| a.iter().find(|p| p["role"] == role))
                .map(|p| str_of(&p["id"]))
                .unwrap_or_else(|| panic!("no {role} in {staff}"))
        };
        let (prescriber, nurse, therapist, frontdesk) =
            (id_of("prescriber"), id_of("nurse"), id_of("therapist"), id_of("frontdesk"));
        let (_, locations) = get(&app, &front, "/api/v1/locations").await?;
        let location = locations["items"]
            .as_array()
            .and_then(|a| a.iter().find(|l| l["name"] == MAIN_CLINIC))
            .map(|l| str_of(&l["id"]))
            .unwrap_or_else(|| panic!("no main clinic in {locations}"));
        let (_, rooms) = get(&app, &front, "/api/v1/rooms").await?;
        let mut named: Vec<(String, String)> =
            rooms["items"].as_array().unwrap().iter().map(|r| (str_of(&r["name"]), str_of(&r["id"]))).collect();
        named.sort();
        let chairs = named.into_iter().map(|(_, id)| id).collect();
        Ok(Self { app, clinic: seed.clinic, admin, front, prescriber, nurse, therapist, frontdesk, location, chairs })
    }

    /// Books as the front desk.
    async fn book(&self, body: &Value) -> anyhow::Result<(u16, Value)> {
        post(&self.app, &self.front, "/api/v1/appointments", body).await
    }

    /// Books as the front desk and insists on 201; returns the appointment.
    async fn booked(&self, body: &Value) -> anyhow::Result<Value> {
        let (s, r) = self.book(body).await?;
        anyhow::ensure!(s == 201, "booking {body} -> {s} {r}");
        Ok(r)
    }

    /// Registers a new adult patient; returns the id.
    async fn patient(&self, family: &str) -> anyhow::Result<String> {
        let body =
            json!({"given_name": "Eli", "family_name": family, "birth_date": "1986-03-14", "sex_at_birth": "female"});
        let (s, r) = post(&self.app, &self.front, "/api/v1/patients", &body).await?;
        anyhow::ensure!(s == 201, "registering {family}: {s} {r}");
        Ok(str_of(&r["id"]))
    }

    /// The record id of demo patient `n` (patient1@ ...).
    async fn demo_patient(&self, n: usize) -> anyhow::Result<String> {
        let token = self.app.token(&format!("patient{n}@demo.kapstone.test")).await?;
        let (s, me) = get(&self.app, &token, "/api/v1/portal/me").await?;
        anyhow::ensure!(s == 200, "portal me: {s} {me}");
        Ok(str_of(&me["id"]))
    }

    /// Saves an appointment type as the admin.
    async fn add_type(&self, def: &Value) -> anyhow::Result<()> {
        let (s, r) = post(&self.app, &self.admin, "/api/v1/appointment-types", def).await?;
        anyhow::ensure!(s == 201, "type {def}: {s} {r}");
        Ok(())
    }

    /// Appointments overlapping `[from, to)`.
    async fn list(&self, from: OffsetDateTime, to: OffsetDateTime) -> anyhow::Result<Vec<Value>> {
        let path = format!("/api/v1/appointments?limit=500&from={}&to={}", utc_text(from), utc_text(to));
        let (s, r) = get(&self.app, &self.front, &path).await?;
        anyhow::ensure!(s == 200, "list: {s} {r}");
        Ok(r["items"].as_array().cloned().unwrap_or_default())
    }

    /// The appointment `id` as listed on its day.
    async fn listed(&self, id: &Value, start: &Value) -> anyhow::Result<Value> {
        let t = instant_of(start);
        let items = self.list(t - Duration::hours(12), t + Duration::hours(12)).await?;
        items.into_iter().find(|a| a["id"] == *id).ok_or_else(|| anyhow::anyhow!("{id} is not listed"))
    }

    /// Whether the clinic has no appointment at all on the `span` local days from `day`.
    async fn is_quiet(&self, day: Date, span: i64) -> anyhow::Result<bool> {
        let (from, to) = (instant(&at(day, 0, 0)), instant(&at(day + Duration::days(span), 0, 0)));
        Ok(self.list(from, to).await?.is_empty())
    }

    /// The first `weekday` at least `days` days ahead on which (and on the `span - 1` days after
    /// which) nothing is booked yet: the demo's schedule may grow, the tests' days stay empty.
    async fn quiet(&self, days: i64, weekday: Weekday, span: i64) -> anyhow::Result<Date> {
        let mut d = weekday_after(days, weekday);
        while !self.is_quiet(d, span).await? {
            d += Duration::weeks(1);
        }
        Ok(d)
    }

    /// The first weekday at least `days` days ahead with nothing booked.
    async fn quiet_workday(&self, days: i64) -> anyhow::Result<Date> {
        let mut d = workday_after(days);
        while !self.is_quiet(d, 1).await? {
            d = workday_after((d - today()).whole_days() + 1);
        }
        Ok(d)
    }

    /// Every booked appointment in the range holds exactly one claim per resource per 5-minute
    /// slot, and no claim belongs to anything but a booked appointment.
    async fn claims_are_consistent(&self, from: OffsetDateTime, to: OffsetDateTime) -> anyhow::Result<()> {
        for a in self.list(from, to).await? {
            let minutes = (instant_of(&a["end"]) - instant_of(&a["start"])).whole_minutes();
            let resources = a["staff_ids"].as_array().map_or(0, Vec::len) + usize::from(!a["room_id"].is_null()) + 1;
            let expected = if a["status"] == "booked" { i64::try_from(resources)? * minutes / 5 } else { 0 };
            let id = str_of(&a["id"]);
            assert_eq!(claims_of(&self.app, &id).await?, expected, "claims of {a}");
        }
        let orphans = self
            .app
            .count("booking_claims WHERE appointment_id NOT IN (SELECT id FROM appointments WHERE status = 'booked')")
            .await?;
        assert_eq!(orphans, 0, "claims of appointments that are not booked");
        Ok(())
    }
}

/// A chair booked with nobody else: the chair (and the patient) are the only resources.
fn chair_only_type() -> Value {
    json!({"code": "chair-only", "name": "Chair time", "kind": "preparation", "route": null,
        "length": {"rule": "fixed", "minutes": 30}, "staff": [], "needs_room": true, "telehealth": false})
}

/// A second server on the same database (as a second process would be): its own pools, its own
/// state, sharing nothing with the first but the database.
struct Second {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Second {
    async fn start(app: &TestApp) -> anyhow::Result<Self> {
        let db = kapstone_store::Db::connect(&app.fresh.url).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = kapstone_web::AppState::new(db, kapstone_web::ServerConfig::default());
        let task = tokio::spawn(kapstone_web::launch_with_listener(state, listener, async move {
            let _ = rx.await;
        }));
        Ok(Self { base, stop: tx, task })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// Sends every (server, body) booking at the same moment; returns (status, body) in order.
async fn all_at_once(token: &str, requests: Vec<(String, Value)>) -> anyhow::Result<Vec<(u16, Value)>> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let mut tasks = Vec::new();
    for (base, body) in requests {
        let (barrier, token) = (barrier.clone(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            send_to(&base, &token, Method::POST, "/api/v1/appointments", Some(&body)).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

/// Exactly one 201; every other answer a 409 `conflict`. Returns the winner.
fn exactly_one_booked(results: &[(u16, Value)]) -> Value {
    let statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    let winners: Vec<&Value> = results.iter().filter(|r| r.0 == 201).map(|r| &r.1).collect();
    assert_eq!(winners.len(), 1, "exactly one booking wins: {statuses:?}");
    for r in results.iter().filter(|r| r.0 != 201) {
        assert_eq!((r.0, r.1["error"]["code"].as_str()), (409, Some("conflict")), "the others clash: {}", r.1);
    }
    winners[0].clone()
}

// ---------------------------------------------------------------------------------------------
// Eligibility and consent fixtures (a patient eligible for Spravato only, paper consents).

fn clear_consultation() -> Value {
    let trial = |drug: &str, outcome: &str, weeks: u16| {
        json!({
            "drug": drug, "max_daily_dose_mg": 150.0, "reached_minimum_labelled_dose": true,
            "weeks_at_or_above_min_dose": weeks, "adherence": "good", "outcome": outcome, "current_episode": true,
        })
    };
    json!({
        "mental_health_history": "Recurrent major depression since 2015.",
        "current_symptoms": "Low mood, anhedonia and early waking for five months.",
        "treatment_goals": "Return to work.",
        "diagnoses": [{"code": "F33.2"}],
        "conditions": {
            "aneurysmal_vascular_disease": false, "arteriovenous_malformation": false,
            "intracerebral_hemorrhage_history": false, "ketamine_hypersensitivity": false,
            "pressure_risk_condition": "none", "uncontrolled_hypertension": false,
            "hypertensive_encephalopathy_history": false, "raised_intracranial_pressure": false,
            "intraocular_risk": "none", "preeclampsia_or_eclampsia": false, "psychotic_disorder": "none",
            "current_mania": false, "bipolar_currently_depressed": false, "substance_use_disorder": "none",
            "alcohol_use": false, "hepatic": "none", "uncontrolled_hyperthyroidism": false,
            "cystitis_or_urinary_symptoms": false, "serious_reaction_to_ketamine": false,
            "seizure_disorder": false, "unable_to_consent": false,
        },
        "medications_reconciled": true,
        "medications": [],
        "allergies": [{"substance": "penicillin", "reaction": "rash", "severity": "mild"}],
        "antidepressant_trials": [trial("sertraline", "non_response", 8), trial("venlafaxine", "partial", 10)],
        "pregnancy_status": "not_pregnant",
        "breastfeeding": false,
        "vitals": {"systolic_mmhg": 120, "diastolic_mmhg": 80, "heart_rate_bpm": 72,
                   "spo2_percent": 98, "weight_kg": 70.5, "height_cm": 172},
    })
}

/// A new patient with a signed decision allowing Spravato (TRD) and nothing else, no consent.
async fn spravato_patient(fx: &Fx, family: &str) -> anyhow::Result<String> {
    let app = &fx.app;
    let nurse = app.token(NURSE).await?;
    let prescriber = app.token(PRESCRIBER).await?;
    let id = fx.patient(family).await?;
    for body in [
        json!({"instrument": "phq9", "answers": [0, 0, 0, 0, 0, 0, 0, 0, 0]}),
        json!({"instrument": "gad7", "answers": [0, 0, 0, 0, 0, 0, 0]}),
        json!({"instrument": "cssrs_screener", "answers": [false, false, null, null, null, false, null]}),
    ] {
        let (s, r) = post(app, &nurse, &format!("/api/v1/patients/{id}/questionnaires"), &body).await?;
        anyhow::ensure!(s == 201, "{body} -> {s} {r}");
    }
    let path = format!("/api/v1/patients/{id}/consultation");
    let (s, r) = send_to(&app.base, &nurse, Method::PUT, &path, Some(&clear_consultation())).await?;
    anyhow::ensure!(s == 200, "consultation: {s} {r}");
    let (s, e) = get(app, &prescriber, &format!("/api/v1/patients/{id}/eligibility")).await?;
    anyhow::ensure!(s == 200, "eligibility: {s} {e}");
    let sign = json!({"input_sha256": e["input_sha256"], "password": PASSWORD, "verdict": "eligible",
        "routes": [{"route": "spravato_intranasal", "course_template": "SPRAVATO-TRD"}],
        "spravato_indication": "trd", "summary": "TRD after two adequate trials in this episode."});
    let (s, r) = post(app, &prescriber, &format!("/api/v1/patients/{id}/eligibility/decisions"), &sign).await?;
    anyhow::ensure!(s == 201, "decision: {s} {r}");
    Ok(id)
}

/// The front desk records a paper consent signed on `signed_on`.
async fn paper_consent(app: &TestApp, patient: &str, document: &str, signed_on: &str) -> anyhow::Result<()> {
    let token = app.token(FRONTDESK).await?;
    let (_, p) = get(app, &token, &format!("/api/v1/patients/{patient}")).await?;
    let name = format!("{} {}", str_of(&p["given_name"]), str_of(&p["family_name"]));
    let (fd, _) = app.browser_login(FRONTDESK, PASSWORD).await?;
    let csrf = app.csrf_of(&fd).await?;
    let form =
        [("csrf_token", csrf.as_str()), ("document", document), ("signed_name", &name), ("signed_on", signed_on)];
    let resp = fd.post(app.url(&format!("/patients/{patient}/consents"))).form(&form).send().await?;
    anyhow::ensure!(resp.status() == 200, "paper consent {document}: {}", resp.status());
    Ok(())
}

/// The outcome a plan's booking gives for the dosing date of appointment `a` (Null: none).
fn dosing_outcome(items: &[Value], a: &Value) -> Value {
    let date = instant_of(&a["start"]).date().to_string();
    items.iter().find(|i| i["kind"] == "dosing" && i["date"] == date.as_str()).cloned().unwrap_or_default()
}

both_backends! {
    async fn what_booking_needs_is_listed(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let (s, types) = get(app, &fx.front, "/api/v1/appointment-types").await?;
        assert_eq!(s, 200, "{types}");
        let items = types["items"].as_array().unwrap();
        let mut codes: Vec<&str> = items.iter().map(|t| t["code"].as_str().unwrap()).collect();
        codes.sort_unstable();
        assert_eq!(codes, ["consultation", "course-review", "dosing-im", "dosing-iv", "dosing-sl", "dosing-spravato",
            "follow-up", "integration", "preparation"]);
        let ty = |code: &str| items.iter().find(|t| t["code"] == code).unwrap().clone();
        let sl = ty("dosing-sl");
        assert_eq!((sl["kind"].as_str(), sl["route"].as_str()), (Some("dosing"), Some("sublingual_lozenge")));
        assert_eq!(sl["minutes"], 150, "check-in 15 + observation 120 + recovery 15: {sl}");
        assert_eq!(sl["needs_room"], true);
        assert_eq!(sl["staff"], json!([["prescriber", "nurse"], ["therapist"]]));
        assert_eq!(ty("dosing-iv")["minutes"], 130);
        assert_eq!((ty("consultation")["minutes"].as_i64(), ty("consultation")["route"].is_null()), (Some(60), true));
        assert!(items.iter().all(|t| t["id"].as_str().is_some_and(|i| uuid::Uuid::parse_str(i).is_ok())));

        let (s, rooms) = get(app, &fx.front, "/api/v1/rooms").await?;
        assert_eq!(s, 200);
        let rooms = rooms["items"].as_array().unwrap();
        let names: Vec<&str> = rooms.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Chair 1", "Chair 2", "Chair 3"]);
        assert!(rooms.iter().all(|r| r["location_id"] == fx.location.as_str() && r["active"] == true), "{rooms:?}");

        let (s, locations) = get(app, &fx.front, "/api/v1/locations").await?;
        assert_eq!(s, 200);
        assert_eq!(locations["items"].as_array().unwrap().len(), 1);
        assert_eq!(locations["items"][0]["time_zone"], "America/Los_Angeles");

        let (s, staff) = get(app, &fx.front, "/api/v1/staff").await?;
        assert_eq!(s, 200);
        let staff = staff["items"].as_array().unwrap();
        let mut roles: Vec<&str> = staff.iter().map(|p| p["role"].as_str().unwrap()).collect();
        roles.sort_unstable();
        // The demo's second therapist covers the dosing floor.
        assert_eq!(roles, ["frontdesk", "nurse", "prescriber", "therapist", "therapist"], "no admin, no patients");
        let prescriber = staff.iter().find(|p| p["role"] == "prescriber").unwrap();
        assert_eq!(prescriber["name"], "Dr. Riley Prescriber");
        let hours = prescriber["hours"].as_array().unwrap();
        let days: Vec<i64> = hours.iter().map(|h| h["weekday"].as_i64().unwrap()).collect();
        assert_eq!(days, [1, 2, 3, 4, 5]);
        assert!(hours.iter().all(|h| h["start"] == "08:00" && h["end"] == "18:00" && h["location_id"] == fx.location.as_str()));

        // The demo's first weeks: booked, each as long as its type, dosing in a chair with two.
        let now = OffsetDateTime::now_utc();
        let week = fx.list(now, now + Duration::days(14)).await?;
        let mut kinds: Vec<&str> = week.iter().map(|a| a["type"].as_str().unwrap()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for kind in ["consultation", "dosing-spravato", "follow-up", "integration", "preparation"] {
            assert!(kinds.contains(&kind), "the demo books a {kind}: {kinds:?}");
        }
        for a in &week {
            assert_eq!(a["status"], "booked");
            let t = ty(a["type"].as_str().unwrap());
            assert_eq!(Some((instant_of(&a["end"]) - instant_of(&a["start"])).whole_minutes()), t["minutes"].as_i64(), "{a}");
            assert_eq!(a["staff_ids"].as_array().unwrap().len(), t["staff"].as_array().unwrap().len(), "{a}");
            assert_eq!(a["room_id"].is_null(), t["needs_room"] == false, "{a}");
        }
        let spravato: Vec<&Value> = week.iter().filter(|a| a["type"] == "dosing-spravato").collect();
        assert!(spravato.len() >= 2, "{spravato:?}");
        for a in spravato {
            assert_eq!((instant_of(&a["end"]) - instant_of(&a["start"])).whole_minutes(), 150);
            assert_eq!(a["room_id"], fx.chairs[0].as_str());
            let mut people: Vec<&str> = a["staff_ids"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
            people.sort_unstable();
            let mut expected = [fx.nurse.as_str(), fx.therapist.as_str()];
            expected.sort_unstable();
            assert_eq!(people, expected);
        }
        fx.claims_are_consistent(now, now + Duration::days(14)).await?;

        // A range must be a range; a long one, or none, is answered a page at a time.
        let back = format!("/api/v1/appointments?from={}&to={}", utc_text(now), utc_text(now - Duration::hours(1)));
        assert_eq!(refusal(&get(app, &fx.front, &back).await?), refused(422, "invalid", "to"));
        let long = format!("/api/v1/appointments?limit=2&from={}&to={}", utc_text(now), utc_text(now + Duration::days(70)));
        let (s, page) = get(app, &fx.front, &long).await?;
        assert_eq!((s, page["items"].as_array().map(Vec::len)), (200, Some(2)), "{page}");
        assert!(page["next_cursor"].is_string(), "{page}");
        let local = format!("/api/v1/appointments?from=2027-01-01T09:00:00&to={}", utc_text(now));
        assert_eq!(refusal(&get(app, &fx.front, &local).await?), refused(422, "invalid", "from"), "an offset or a date");
        assert_eq!(get(app, &fx.front, "/api/v1/appointments").await?.0, 200);
        fx.app.stop().await
    }

    async fn a_booking_has_its_instants_and_the_length_of_its_type(b) {
        let fx = Fx::new(b).await?;
        let patient = fx.patient("Booker").await?;
        let day = fx.quiet(21, Weekday::Tuesday, 1).await?;
        let start = at(day, 10, 0);
        let before = fx.app.count("appointments").await?;
        let (s, a) = fx.book(&booking(&patient, "consultation", &start, &[&fx.prescriber], None)).await?;
        assert_eq!(s, 201, "{a}");
        assert!(uuid::Uuid::parse_str(a["id"].as_str().unwrap()).is_ok(), "{a}");
        assert_eq!(instant_of(&a["start"]), instant(&start));
        assert_eq!(instant_of(&a["end"]), instant(&start) + Duration::minutes(60), "end = start + 60 minutes");
        assert_eq!((a["type"].as_str(), a["kind"].as_str(), a["status"].as_str()), (Some("consultation"), Some("consultation"), Some("booked")));
        assert_eq!((a["patient_id"].as_str(), a["location_id"].as_str()), (Some(patient.as_str()), Some(fx.location.as_str())));
        assert_eq!(a["staff_ids"], json!([fx.prescriber]));
        assert!(a["room_id"].is_null() && a["rescheduled_from"].is_null(), "{a}");
        assert_eq!(a["warnings"], json!([]));
        assert_eq!(fx.app.count("appointments").await?, before + 1);
        let id = str_of(&a["id"]);
        assert_eq!(claims_of(&fx.app, &id).await?, 2 * 12, "prescriber and patient, twelve 5-minute slots each");
        let listed = fx.listed(&a["id"], &a["start"]).await?;
        assert_eq!((listed["start"].clone(), listed["end"].clone()), (a["start"].clone(), a["end"].clone()));
        assert!(fx.app.count(&format!("audit_events WHERE entity_id = '{id}'")).await? >= 1, "the booking is audited");

        // A dosing session: check-in + observation + recovery, in a chair, with two staff.
        let p3 = fx.demo_patient(3).await?;
        let start = at(day, 13, 0);
        let body = booking(&p3, "dosing-spravato", &start, &[&fx.nurse, &fx.therapist], Some(&fx.chairs[1]));
        let (s, d) = fx.book(&body).await?;
        assert_eq!(s, 201, "{d}");
        assert_eq!(instant_of(&d["end"]) - instant_of(&d["start"]), Duration::minutes(150));
        assert_eq!((d["room_id"].as_str(), d["kind"].as_str()), (Some(fx.chairs[1].as_str()), Some("dosing")));
        assert_eq!(d["warnings"], json!([]), "consents signed today are valid for the session");
        assert_eq!(claims_of(&fx.app, &str_of(&d["id"])).await?, 4 * 30, "two staff, a chair and the patient");
        let t = instant(&start);
        fx.claims_are_consistent(t - Duration::days(1), t + Duration::days(1)).await?;
        fx.app.stop().await
    }

    async fn one_instant_written_with_any_offset_is_one_appointment_time(b) {
        let fx = Fx::new(b).await?;
        let (p, q) = (fx.patient("Offsetone").await?, fx.patient("Offsettwo").await?);
        let day = fx.quiet(28, Weekday::Wednesday, 1).await?;
        let local = at(day, 10, 0);
        let utc = written_with(&local, 0, 0);
        let kolkata = written_with(&local, 5, 30);
        assert!(utc.ends_with('Z') && kolkata.ends_with("+05:30"), "{utc} {kolkata}");
        let first = fx.booked(&booking(&p, "consultation", &local, &[&fx.prescriber], None)).await?;
        assert_eq!(instant_of(&first["start"]), instant(&local));
        // The same instant written in India clashes with it: it is the same time.
        let r = fx.book(&booking(&q, "consultation", &kolkata, &[&fx.prescriber], None)).await?;
        assert_eq!(refusal(&r), refused(409, "conflict", "staff_ids"), "{}", r.1);
        // The same wall-clock reading at UTC is another instant (02:00 in the clinic): not working.
        let wall_utc = format!("{day}T10:00:00Z");
        let r = fx.book(&booking(&q, "consultation", &wall_utc, &[&fx.prescriber], None)).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "start"), "{}", r.1);
        // Once the slot is free, the UTC spelling books the very same stored time.
        let (s, c) = post(&fx.app, &fx.front, &format!("/api/v1/appointments/{}/cancel", str_of(&first["id"])), &json!({"reason": "Moved to another clinician"})).await?;
        assert_eq!(s, 200, "{c}");
        let second = fx.booked(&booking(&q, "consultation", &utc, &[&fx.prescriber], None)).await?;
        assert_eq!(second["start"], first["start"], "stored as the same instant");
        assert_eq!(second["end"], first["end"]);
        let third = fx.booked(&booking(&p, "follow-up", &written_with(&local, -3, -30), &[&fx.nurse], None)).await?;
        assert_eq!(third["start"], first["start"], "-03:30 too");
        let listed = fx.listed(&second["id"], &second["start"]).await?;
        assert_eq!(listed["start"], first["start"]);
        fx.app.stop().await
    }

    async fn clashes_name_the_staff_member_the_chair_or_the_patient_and_back_to_back_is_no_clash(b) {
        let fx = Fx::new(b).await?;
        fx.add_type(&json!({"code": "chair-check", "name": "Chair check", "kind": "preparation", "route": null,
            "length": {"rule": "fixed", "minutes": 30}, "staff": [["nurse", "therapist"]],
            "needs_room": true, "telehealth": false})).await?;
        let (p, q, r3) = (fx.patient("Clashone").await?, fx.patient("Clashtwo").await?, fx.patient("Clashthree").await?);
        let day = fx.quiet(21, Weekday::Thursday, 1).await?;
        let a = fx.booked(&booking(&p, "consultation", &at(day, 10, 0), &[&fx.prescriber], None)).await?;
        let rows = fx.app.count("appointments").await?;
        let claims = fx.app.count("booking_claims").await?;

        // The prescriber is booked 10:00-11:00.
        let r = fx.book(&booking(&q, "consultation", &at(day, 10, 30), &[&fx.prescriber], None)).await?;
        assert_eq!(refusal(&r), refused(409, "conflict", "staff_ids"), "{}", r.1);
        assert!(message(&r).contains("Dr. Riley Prescriber"), "names who: {}", message(&r));
        let r = fx.book(&booking(&q, "consultation", &at(day, 9, 5), &[&fx.prescriber], None)).await?;
        assert_eq!(refusal(&r), refused(409, "conflict", "staff_ids"), "09:05-10:05 overlaps by five minutes: {}", r.1);
        // The patient is booked 10:00-11:00.
        let r = fx.book(&booking(&p, "follow-up", &at(day, 10, 55), &[&fx.nurse], None)).await?;
        assert_eq!(refusal(&r), refused(409, "conflict", "patient_id"), "{}", r.1);
        assert!(message(&r).contains("patient"), "{}", message(&r));
        // A chair.
        fx.booked(&booking(&q, "chair-check", &at(day, 14, 0), &[&fx.nurse], Some(&fx.chairs[1]))).await?;
        let r = fx.book(&booking(&r3, "chair-check", &at(day, 14, 15), &[&fx.therapist], Some(&fx.chairs[1]))).await?;
        assert_eq!(refusal(&r), refused(409, "conflict", "room_id"), "{}", r.1);
        assert!(message(&r).contains("Chair 2"), "names the chair: {}", message(&r));
        assert_eq!(fx.app.count("appointments").await?, rows + 1, "a clash writes nothing");
        assert_eq!(fx.app.count("booking_claims").await?, claims + 18, "nurse, chair and patient, six slots each");

        // Back to back is not a clash: the same prescriber, patient and chair right after.
        let next = fx.booked(&booking(&q, "consultation", &at(day, 11, 0), &[&fx.prescriber], None)).await?;
        assert_eq!(instant_of(&next["start"]), instant_of(&a["end"]));
        let before = fx.booked(&booking(&r3, "consultation", &at(day, 9, 0), &[&fx.prescriber], None)).await?;
        assert_eq!(instant_of(&before["end"]), instant_of(&a["start"]));
        fx.booked(&booking(&p, "follow-up", &at(day, 11, 0), &[&fx.nurse], None)).await?;
        fx.booked(&booking(&r3, "chair-check", &at(day, 14, 30), &[&fx.therapist], Some(&fx.chairs[1]))).await?;
        fx.booked(&booking(&p, "chair-check", &at(day, 13, 30), &[&fx.therapist], Some(&fx.chairs[1]))).await?;
        // Another chair is free at the same time.
        fx.booked(&booking(&p, "chair-check", &at(day, 14, 0), &[&fx.therapist], Some(&fx.chairs[2]))).await?;
        let t = instant(&at(day, 12, 0));
        fx.claims_are_consistent(t - Duration::days(1), t + Duration::days(1)).await?;
        fx.app.stop().await
    }

    async fn parallel_requests_for_one_chair_make_exactly_one_booking(b) {
        let fx = Fx::new(b).await?;
        fx.add_type(&chair_only_type()).await?;
        let mut patients = Vec::new();
        for i in 0..24u8 {
            patients.push(fx.patient(&format!("Racer{}", char::from(b'a' + i))).await?);
        }
        let day = fx.quiet(21, Weekday::Monday, 1).await?;
        let start = at(day, 9, 0);
        let chair = fx.chairs[2].clone();
        let requests =
            patients.iter().map(|p| (fx.app.base.clone(), booking(p, "chair-only", &start, &NOBODY, Some(&chair)))).collect();
        let results = all_at_once(&fx.front, requests).await?;
        let winner = exactly_one_booked(&results);
        for r in results.iter().filter(|r| r.0 == 409) {
            assert_eq!(r.1["error"]["field"], "room_id", "the clash names the chair: {}", r.1);
        }
        // On that day the chair holds the winner's six slots and nothing else (the demo's own
        // sessions today are other days' claims).
        let s0 = instant(&start).unix_timestamp() / 300;
        let that_day = format!("booking_claims WHERE resource = 'room:{chair}' AND slot >= {} AND slot < {}", s0 - 120, s0 + 168);
        assert_eq!(fx.app.count(&that_day).await?, 6);
        assert_eq!(claims_of(&fx.app, &str_of(&winner["id"])).await?, 12, "chair and patient, six slots each");
        let mut rows = 0;
        for p in &patients {
            rows += appointments_of(&fx.app, p).await?;
        }
        assert_eq!(rows, 1, "one appointment row in all");
        let t = instant(&start);
        fx.claims_are_consistent(t - Duration::days(1), t + Duration::days(1)).await?;

        // One patient asked into every chair at once: still one booking.
        let p = &patients[0];
        let other = at(day, 13, 0);
        let requests = (0..24).map(|i| (fx.app.base.clone(), booking(p, "chair-only", &other, &NOBODY, Some(&fx.chairs[i % 3])))).collect();
        exactly_one_booked(&all_at_once(&fx.front, requests).await?);
        fx.claims_are_consistent(t - Duration::days(1), t + Duration::days(1)).await?;
        fx.app.stop().await
    }

    async fn two_server_processes_on_one_database_book_a_chair_once(b) {
        let fx = Fx::new(b).await?;
        fx.add_type(&chair_only_type()).await?;
        let second = Second::start(&fx.app).await?;
        let (s, _) = send_to(&second.base, &fx.front, Method::GET, "/api/v1/rooms", None).await?;
        assert_eq!(s, 200, "the second server shares the sessions");
        let mut patients = Vec::new();
        for i in 0..24u8 {
            patients.push(fx.patient(&format!("Twin{}", char::from(b'a' + i))).await?);
        }
        let day = fx.quiet(21, Weekday::Friday, 1).await?;
        let start = at(day, 9, 0);
        let chair = fx.chairs[1].clone();
        let bases = [fx.app.base.clone(), second.base.clone()];
        let requests = patients
            .iter()
            .enumerate()
            .map(|(i, p)| (bases[i % 2].clone(), booking(p, "chair-only", &start, &NOBODY, Some(&chair))))
            .collect();
        let results = all_at_once(&fx.front, requests).await?;
        let winner = exactly_one_booked(&results);
        for r in results.iter().filter(|r| r.0 == 409) {
            assert_eq!(r.1["error"]["field"], "room_id", "the clash names the chair: {}", r.1);
        }
        // On that day the chair holds the winner's six slots and nothing else (the demo's own
        // sessions today are other days' claims).
        let s0 = instant(&start).unix_timestamp() / 300;
        let that_day = format!("booking_claims WHERE resource = 'room:{chair}' AND slot >= {} AND slot < {}", s0 - 120, s0 + 168);
        assert_eq!(fx.app.count(&that_day).await?, 6);
        assert_eq!(claims_of(&fx.app, &str_of(&winner["id"])).await?, 12);
        let mut rows = 0;
        for p in &patients {
            rows += appointments_of(&fx.app, p).await?;
        }
        assert_eq!(rows, 1);

        // Two staff named in either order, from both servers, for one time: one booking, and
        // never an error of the database (a deadlock) instead of a clash.
        fx.add_type(&json!({"code": "joint-review", "name": "Joint review", "kind": "follow_up", "route": null,
            "length": {"rule": "fixed", "minutes": 60}, "staff": [["prescriber", "nurse"], ["therapist"]],
            "needs_room": false, "telehealth": false})).await?;
        // Several rounds: a lock-order deadlock needs two requests to overlap just so.
        for hour in 10..=16 {
            let other = at(day, hour, 0);
            let requests = patients
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (n, t) = (fx.nurse.as_str(), fx.therapist.as_str());
                    let staff = if i % 2 == 0 { [n, t] } else { [t, n] };
                    (bases[(i / 2) % 2].clone(), booking(p, "joint-review", &other, &staff, None))
                })
                .collect();
            let winner = exactly_one_booked(&all_at_once(&fx.front, requests).await?);
            assert_eq!(instant_of(&winner["start"]), instant(&other));
        }
        let t = instant(&start);
        fx.claims_are_consistent(t - Duration::days(1), t + Duration::days(1)).await?;
        second.stop().await?;
        fx.app.stop().await
    }

    async fn the_dosing_gates_name_what_is_missing(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let (p1, p2) = (fx.demo_patient(1).await?, fx.demo_patient(2).await?);
        let day = fx.quiet(21, Weekday::Tuesday, 1).await?;
        let start = at(day, 9, 0);
        let pair = [fx.nurse.as_str(), fx.therapist.as_str()];
        let dose = |p: &str, kind: &str| booking(p, kind, &start, &pair, Some(&fx.chairs[0]));

        let r = fx.book(&dose(&p1, "dosing-sl")).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "eligibility_decision"), "{}", r.1);
        assert!(message(&r).contains("eligibility decision"), "{}", message(&r));
        let r = fx.book(&dose(&p2, "dosing-iv")).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "route_not_allowed"), "{}", r.1);
        assert!(message(&r).contains("IV ketamine infusion"), "names the route: {}", message(&r));
        let r = fx.book(&dose(&p2, "dosing-sl")).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "consent"), "eligible for lozenges, no consent: {}", r.1);
        assert!(message(&r).contains("consent"), "{}", message(&r));
        assert_eq!(appointments_of(app, &p1).await? + appointments_of(app, &p2).await?, 2, "only the demo's two");
        // The gate is for dosing only.
        fx.booked(&booking(&p1, "consultation", &at(day, 13, 0), &[&fx.prescriber], None)).await?;

        // Spravato: the decision, the consent, the REMS acknowledgement, the REMS enrolment.
        let s = spravato_patient(&fx, "Esketa").await?;
        let r = fx.book(&dose(&s, "dosing-im")).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "route_not_allowed"), "{}", r.1);
        let r = fx.book(&dose(&s, "dosing-spravato")).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "consent"), "{}", r.1);
        let signed = today().to_string();
        paper_consent(app, &s, "kap-general", &signed).await?;
        let r = fx.book(&dose(&s, "dosing-spravato")).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "rems_acknowledgement"), "{}", r.1);
        paper_consent(app, &s, "spravato-rems", &signed).await?;
        let r = fx.book(&dose(&s, "dosing-spravato")).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "rems_enrollment"), "{}", r.1);
        assert!(message(&r).contains("REMS"), "{}", message(&r));
        assert_eq!(appointments_of(app, &s).await?, 0, "a refused gate writes nothing");
        let rems = format!("/api/v1/patients/{s}/rems-enrollment");
        let tomorrow = (today() + Duration::days(2)).to_string();
        let r = post(app, &fx.front, &rems, &json!({"enrolled_on": tomorrow})).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "enrolled_on"), "not in the future: {}", r.1);
        let (st, body) = post(app, &fx.front, &rems, &json!({"enrolled_on": signed, "reference": "REMS-TEST-1"})).await?;
        assert_eq!(st, 201, "{body}");
        let booked = fx.booked(&dose(&s, "dosing-spravato")).await?;
        assert_eq!(booked["warnings"], json!([]));
        assert_eq!(appointments_of(app, &s).await?, 1);
        fx.app.stop().await
    }

    async fn a_session_after_the_consent_expires_is_booked_with_a_warning(b) {
        let fx = Fx::new(b).await?;
        let p2 = fx.demo_patient(2).await?;
        // Signed 330 days ago on paper: valid for twelve 30-day months, i.e. until 30 days from now.
        let signed = (today() - Duration::days(330)).to_string();
        paper_consent(&fx.app, &p2, "kap-general", &signed).await?;
        let pair = [fx.nurse.as_str(), fx.therapist.as_str()];
        let soon = fx.quiet_workday(14).await?;
        assert!(soon < today() + Duration::days(29), "a quiet day before the consent expires: {soon}");
        let a = fx.booked(&booking(&p2, "dosing-sl", &at(soon, 9, 0), &pair, Some(&fx.chairs[0]))).await?;
        assert_eq!(a["warnings"], json!([]), "the consent is still valid then: {a}");
        let later = fx.quiet_workday(35).await?;
        let w = fx.booked(&booking(&p2, "dosing-sl", &at(later, 9, 0), &pair, Some(&fx.chairs[0]))).await?;
        let warnings = w["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1, "{w}");
        assert!(warnings[0].as_str().unwrap().contains("consent"), "{w}");
        assert_eq!(w["status"], "booked", "a warning, not a refusal");
        fx.app.stop().await
    }

    async fn bad_input_is_refused_naming_the_field(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let p = fx.patient("Badinput").await?;
        let day = fx.quiet(21, Weekday::Wednesday, 4).await?;
        let rows = app.count("appointments").await?;
        let consult = |start: &str| booking(&p, "consultation", start, &[&fx.prescriber], None);
        let field = |r: &(u16, Value)| (r.0, r.1["error"]["field"].as_str().unwrap_or("").to_owned());
        let f = |s: u16, name: &str| (s, name.to_owned());

        // The start: on the 5-minute grid, parseable, with an offset, not past.
        assert_eq!(field(&fx.book(&consult(&at(day, 10, 2))).await?), f(422, "start"), "off the grid");
        assert_eq!(field(&fx.book(&consult(&format!("{day}T10:00:30-08:00"))).await?), f(422, "start"), "seconds");
        assert_eq!(field(&fx.book(&consult("next tuesday at ten")).await?), f(422, "start"));
        assert_eq!(field(&fx.book(&consult(&format!("{day}T10:00:00"))).await?), f(422, "start"), "no offset");
        assert_eq!(field(&fx.book(&consult("2020-01-07T10:00:00-08:00")).await?), f(422, "start"), "in the past");
        // The type, the patient, the room.
        let r = fx.book(&booking(&p, "massage", &at(day, 10, 0), &[&fx.prescriber], None)).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "type"));
        let nobody = uuid::Uuid::now_v7().to_string();
        let r = fx.book(&booking(&nobody, "consultation", &at(day, 10, 0), &[&fx.prescriber], None)).await?;
        assert_eq!(field(&r), f(422, "patient_id"));
        let r = fx.book(&booking(&p, "dosing-sl", &at(day, 10, 0), &[&fx.nurse, &fx.therapist], None)).await?;
        assert_eq!(field(&r), f(422, "room_id"), "a dosing session needs a chair");
        let r = fx.book(&booking(&p, "consultation", &at(day, 10, 0), &[&fx.prescriber], Some(&nobody))).await?;
        assert_eq!(field(&r), f(422, "room_id"));
        // A room of another location.
        let (s, annex) = post(app, &fx.admin, "/api/v1/locations", &json!({"name": "Annex", "time_zone": "America/Los_Angeles"})).await?;
        assert_eq!(s, 201, "{annex}");
        let annex = str_of(&annex["id"]);
        let (s, room) = post(app, &fx.admin, "/api/v1/rooms", &json!({"location_id": annex, "name": "Annex chair"})).await?;
        assert_eq!(s, 201, "{room}");
        let annex_room = str_of(&room["id"]);
        let mut other = booking(&p, "consultation", &at(day, 10, 0), &[&fx.prescriber], Some(&annex_room));
        other["location_id"] = json!(fx.location);
        let r = fx.book(&other).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "room_id"), "{}", r.1);
        assert!(message(&r).contains("another location"), "{}", message(&r));
        let r = fx.book(&booking(&p, "consultation", &at(day, 10, 0), &[&fx.prescriber], Some(&annex_room))).await?;
        assert_eq!(field(&r), f(422, "start"), "the prescriber does not work at the annex: {}", r.1);
        // The staff: a needed role missing, someone unknown, someone twice.
        let r = fx.book(&booking(&p, "consultation", &at(day, 10, 0), &[&fx.therapist], None)).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "staff_ids"));
        assert!(message(&r).contains("Prescriber"), "names the role: {}", message(&r));
        let p3 = fx.demo_patient(3).await?;
        let r = fx.book(&booking(&p3, "dosing-spravato", &at(day, 10, 0), &[&fx.nurse], Some(&fx.chairs[0]))).await?;
        assert_eq!(field(&r), f(422, "staff_ids"));
        assert!(message(&r).contains("Therapist"), "{}", message(&r));
        let r = fx.book(&booking(&p, "consultation", &at(day, 10, 0), &NOBODY, None)).await?;
        assert_eq!(field(&r), f(422, "staff_ids"));
        let r = fx.book(&booking(&p, "consultation", &at(day, 10, 0), &[&fx.prescriber, &fx.prescriber], None)).await?;
        assert_eq!(field(&r), f(422, "staff_ids"));
        let r = fx.book(&booking(&p, "consultation", &at(day, 10, 0), &[&nobody], None)).await?;
        assert_eq!(field(&r), f(422, "staff_ids"));
        // Working hours (Mon-Fri 08:00-18:00 in the clinic).
        let r = fx.book(&consult(&at(day, 7, 30))).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "start"), "before hours");
        assert!(message(&r).contains("Dr. Riley Prescriber"), "names who: {}", message(&r));
        assert_eq!(field(&fx.book(&consult(&at(day, 17, 30))).await?), f(422, "start"), "17:30 + 60 ends after 18:00");
        let saturday = day + Duration::days(3);
        assert_eq!(saturday.weekday(), Weekday::Saturday);
        assert_eq!(field(&fx.book(&consult(&at(saturday, 10, 0))).await?), f(422, "start"), "not on Saturdays");
        // Leave blocks a booking; extra hours allow one.
        let leave_day = day + Duration::days(1);
        let exceptions = format!("/api/v1/staff/{}/exceptions", fx.prescriber);
        let (s, e) = post(app, &fx.admin, &exceptions, &json!({"date": leave_day.to_string(), "kind": "leave", "start": "09:00", "end": "12:00", "note": "Dentist"})).await?;
        assert_eq!(s, 201, "{e}");
        let r = fx.book(&consult(&at(leave_day, 10, 0))).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "start"), "on leave: {}", r.1);
        assert_eq!(field(&fx.book(&consult(&at(leave_day, 11, 30))).await?), f(422, "start"), "ends inside the leave");
        let (s, e) = post(app, &fx.admin, &exceptions, &json!({"date": saturday.to_string(), "kind": "extra", "start": "09:00", "end": "13:00"})).await?;
        assert_eq!(s, 201, "{e}");
        assert_eq!(app.count("appointments").await?, rows, "nothing was booked");
        fx.booked(&consult(&at(leave_day, 12, 0))).await?;
        fx.booked(&consult(&at(saturday, 10, 0))).await?;
        // End before start in hours, exceptions and ranges.
        let r = put(app, &fx.admin, &format!("/api/v1/staff/{}/hours", fx.nurse), &json!([{"weekday": 1, "start": "17:00", "end": "09:00"}])).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "end"));
        let r = put(app, &fx.admin, &format!("/api/v1/staff/{}/hours", fx.nurse), &json!([{"weekday": 8, "start": "09:00", "end": "17:00"}])).await?;
        assert_eq!(field(&r), f(422, "weekday"));
        let r = post(app, &fx.admin, &exceptions, &json!({"date": leave_day.to_string(), "kind": "leave", "start": "12:00", "end": "09:00"})).await?;
        assert_eq!(field(&r), f(422, "end"));
        let r = post(app, &fx.admin, &exceptions, &json!({"date": leave_day.to_string(), "kind": "holiday", "start": "09:00", "end": "12:00"})).await?;
        assert_eq!(field(&r), f(422, "kind"));
        let r = post(app, &fx.admin, "/api/v1/locations", &json!({"name": "Mars", "time_zone": "Mars/Olympus_Mons"})).await?;
        assert_eq!(field(&r), f(422, "time_zone"));
        let r = post(app, &fx.admin, "/api/v1/appointment-types", &json!({"code": "odd", "name": "Odd", "kind": "consultation", "route": null,
            "length": {"rule": "fixed", "minutes": 7}, "staff": [["prescriber"]], "needs_room": false, "telehealth": false})).await?;
        assert_eq!(field(&r), f(422, "length"), "a length on the 5-minute grid");
        // An unknown field is refused rather than ignored.
        let mut extra = consult(&at(day, 10, 0));
        extra["end"] = json!(at(day, 9, 0));
        let r = fx.book(&extra).await?;
        assert!((400..500).contains(&r.0), "{r:?}");
        assert_eq!(app.count("appointments").await?, rows + 2);
        fx.app.stop().await
    }

    async fn a_cancel_needs_a_reason_keeps_the_row_and_frees_the_slot(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let (p, q) = (fx.patient("Cancelone").await?, fx.patient("Canceltwo").await?);
        let day = fx.quiet(21, Weekday::Monday, 1).await?;
        let a = fx.booked(&booking(&p, "consultation", &at(day, 10, 0), &[&fx.prescriber], None)).await?;
        let id = str_of(&a["id"]);
        let cancel = format!("/api/v1/appointments/{id}/cancel");
        assert_eq!(refusal(&post(app, &fx.front, &cancel, &json!({})).await?), refused(422, "invalid", "reason"));
        assert_eq!(refusal(&post(app, &fx.front, &cancel, &json!({"reason": "   "})).await?), refused(422, "invalid", "reason"));
        assert_eq!(fx.listed(&a["id"], &a["start"]).await?["status"], "booked");
        assert_eq!(claims_of(app, &id).await?, 24);
        let patient = app.token("patient1@demo.kapstone.test").await?;
        assert_eq!(post(app, &patient, &cancel, &json!({"reason": "x"})).await?.0, 403);

        let (s, c) = post(app, &fx.front, &cancel, &json!({"reason": "Patient has the flu"})).await?;
        assert_eq!(s, 200, "{c}");
        assert_eq!((c["status"].as_str(), c["status_reason"].as_str()), (Some("cancelled"), Some("Patient has the flu")));
        assert_eq!((c["start"].clone(), c["end"].clone()), (a["start"].clone(), a["end"].clone()));
        assert_eq!(claims_of(app, &id).await?, 0, "the slots are released");
        assert_eq!(app.count(&format!("appointments WHERE id = {}", uuid_sql(app, &id))).await?, 1, "never deleted");
        let listed = fx.listed(&a["id"], &a["start"]).await?;
        assert_eq!((listed["status"].as_str(), listed["status_reason"].as_str()), (Some("cancelled"), Some("Patient has the flu")));
        // The time is free again, for another patient and for the same one.
        fx.booked(&booking(&q, "consultation", &at(day, 10, 0), &[&fx.prescriber], None)).await?;
        fx.booked(&booking(&p, "follow-up", &at(day, 10, 0), &[&fx.nurse], None)).await?;
        // Once cancelled, always cancelled.
        let r = post(app, &fx.front, &cancel, &json!({"reason": "Again"})).await?;
        assert_eq!(refusal(&r), refused(409, "conflict", "status"));
        let r = post(app, &fx.front, &format!("/api/v1/appointments/{id}/reschedule"), &json!({"start": at(day, 15, 0), "reason": "Later"})).await?;
        assert_eq!(r.0, 409, "a cancelled appointment is not moved: {}", r.1);
        assert_eq!(post(app, &fx.front, &format!("/api/v1/appointments/{}/cancel", uuid::Uuid::now_v7()), &json!({"reason": "x"})).await?.0, 404);
        let t = instant(&at(day, 10, 0));
        fx.claims_are_consistent(t - Duration::days(1), t + Duration::days(1)).await?;
        fx.app.stop().await
    }

    async fn a_no_show_is_refused_before_the_start_and_kept_after_it(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let p = fx.patient("Noshow").await?;
        let day = fx.quiet(21, Weekday::Tuesday, 1).await?;
        let a = fx.booked(&booking(&p, "consultation", &at(day, 10, 0), &[&fx.prescriber], None)).await?;
        let id = str_of(&a["id"]);
        let no_show = format!("/api/v1/appointments/{id}/no-show");
        let r = post(app, &fx.front, &no_show, &json!({"reason": "Did not come"})).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "status"), "it has not started: {}", r.1);
        assert_eq!(fx.listed(&a["id"], &a["start"]).await?["status"], "booked");
        // Move the appointment into the past, as time passing would.
        let shift = match app.backend {
            TestBackend::Sqlite => "start_at = start_at - 5184000000000, end_at = end_at - 5184000000000".to_owned(),
            TestBackend::Postgres => "start_at = start_at - interval '60 days', end_at = end_at - interval '60 days'".to_owned(),
        };
        assert_eq!(app.raw_sql(&format!("UPDATE appointments SET {shift} WHERE id = {}", uuid_sql(app, &id))).await?, 1);
        let (s, n) = post(app, &fx.front, &no_show, &json!({"reason": "Did not come"})).await?;
        assert_eq!(s, 200, "{n}");
        assert_eq!((n["status"].as_str(), n["status_reason"].as_str()), (Some("no_show"), Some("Did not come")));
        assert_eq!(claims_of(app, &id).await?, 24, "a no-show keeps its time");
        assert_eq!(app.count(&format!("appointments WHERE id = {}", uuid_sql(app, &id))).await?, 1);
        let r = post(app, &fx.front, &format!("/api/v1/appointments/{id}/cancel"), &json!({"reason": "Tidy up"})).await?;
        assert_eq!(refusal(&r), refused(409, "conflict", "status"));
        fx.app.stop().await
    }

    async fn a_reschedule_keeps_the_old_row_linked_to_the_new_one(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        // A webhook endpoint hears each change (its queued deliveries are read at the end).
        let events = json!(["appointment.booked", "appointment.changed", "appointment.cancelled"]);
        let (s, hook) = post(app, &fx.admin, "/api/v1/webhooks", &json!({"url": "https://example.invalid/hook", "events": events})).await?;
        assert_eq!(s, 201, "{hook}");
        let (p, q, r3) = (fx.patient("Moveone").await?, fx.patient("Movetwo").await?, fx.patient("Movethree").await?);
        let day = fx.quiet(21, Weekday::Wednesday, 2).await?;
        let old = fx.booked(&booking(&p, "consultation", &at(day, 10, 0), &[&fx.prescriber], None)).await?;
        let old_id = str_of(&old["id"]);
        let path = format!("/api/v1/appointments/{old_id}/reschedule");
        fx.booked(&booking(&q, "consultation", &at(day, 14, 0), &[&fx.prescriber], None)).await?;
        let rows = app.count("appointments").await?;

        let r = post(app, &fx.front, &path, &json!({"start": at(day, 15, 0), "reason": " "})).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "reason"));
        // Onto a busy time: refused, and the old booking stands untouched.
        let r = post(app, &fx.front, &path, &json!({"start": at(day, 14, 30), "reason": "Clinic running late"})).await?;
        assert_eq!(refusal(&r), refused(409, "conflict", "staff_ids"), "{}", r.1);
        let r = post(app, &fx.front, &path, &json!({"start": at(day, 20, 0), "reason": "Evening"})).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "start"), "outside hours: {}", r.1);
        let r = post(app, &fx.front, &path, &json!({"start": "2020-01-08T10:00:00-08:00", "reason": "Back in time"})).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "start"), "not into the past: {}", r.1);
        assert_eq!(app.count("appointments").await?, rows);
        assert_eq!(fx.listed(&old["id"], &old["start"]).await?["status"], "booked");
        assert_eq!(claims_of(app, &old_id).await?, 24);

        // Half an hour later, overlapping its own old time: the old slots are released first.
        let (s, new) = post(app, &fx.front, &path, &json!({"start": at(day, 10, 30), "reason": "Clinic running late"})).await?;
        assert_eq!(s, 201, "{new}");
        let new_id = str_of(&new["id"]);
        assert_ne!(new_id, old_id);
        assert_eq!(new["rescheduled_from"], old["id"], "the new one links the old");
        assert_eq!(instant_of(&new["start"]), instant(&at(day, 10, 30)));
        assert_eq!(instant_of(&new["end"]) - instant_of(&new["start"]), Duration::minutes(60));
        assert_eq!((new["status"].as_str(), new["type"].as_str()), (Some("booked"), Some("consultation")));
        assert_eq!((new["staff_ids"].clone(), new["patient_id"].clone()), (json!([fx.prescriber]), old["patient_id"].clone()));
        let was = fx.listed(&old["id"], &old["start"]).await?;
        assert_eq!((was["status"].as_str(), was["status_reason"].as_str()), (Some("rescheduled"), Some("Clinic running late")));
        assert_eq!(was["start"], old["start"], "the old row keeps its time");
        assert_eq!((claims_of(app, &old_id).await?, claims_of(app, &new_id).await?), (0, 24));
        assert_eq!(app.count("appointments").await?, rows + 1);
        // The freed half hour before it can be booked back to back.
        fx.booked(&booking(&r3, "follow-up", &at(day, 10, 0), &[&fx.prescriber], None)).await?;
        // A rescheduled appointment is history: it cannot move again or be cancelled.
        let r = post(app, &fx.front, &path, &json!({"start": at(day, 16, 0), "reason": "Again"})).await?;
        assert_eq!(refusal(&r).0, 409, "{}", r.1);
        let r = post(app, &fx.front, &format!("/api/v1/appointments/{old_id}/cancel"), &json!({"reason": "x"})).await?;
        assert_eq!(refusal(&r), refused(409, "conflict", "status"));
        // Moved again, to another day and another clinician.
        let next_path = format!("/api/v1/appointments/{new_id}/reschedule");
        let next_day = day + Duration::days(1);
        let body = json!({"start": at(next_day, 9, 0), "reason": "Patient asked", "staff_ids": [fx.prescriber]});
        let (s, third) = post(app, &fx.front, &next_path, &body).await?;
        assert_eq!(s, 201, "{third}");
        assert_eq!(third["rescheduled_from"], new["id"]);
        let t = instant(&at(day, 12, 0));
        fx.claims_are_consistent(t - Duration::days(1), t + Duration::days(2)).await?;
        let (s, c) = post(app, &fx.front, &format!("/api/v1/appointments/{}/cancel", str_of(&third["id"])), &json!({"reason": "Patient is away"})).await?;
        assert_eq!(s, 200, "{c}");
        let (s, d) = get(app, &fx.admin, "/api/v1/webhooks/deliveries").await?;
        assert_eq!(s, 200, "{d}");
        let sent: Vec<Value> = d["items"].as_array().unwrap().iter().map(|i| i["payload"].clone()).collect();
        let moved = sent.iter().find(|p| p["type"] == "appointment.changed" && p["data"]["appointment_id"] == old["id"]);
        assert_eq!(moved.map(|p| p["data"]["rescheduled_to"].clone()), Some(new["id"].clone()), "{d}");
        assert!(sent.iter().any(|p| p["type"] == "appointment.cancelled" && p["data"]["status"] == "cancelled"), "{d}");
        assert!(sent.iter().any(|p| p["type"] == "appointment.booked"), "{d}");
        fx.app.stop().await
    }

    async fn a_session_across_the_spring_change_lasts_its_real_length(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        fx.add_type(&json!({"code": "long-session", "name": "Long session", "kind": "preparation", "route": null,
            "length": {"rule": "fixed", "minutes": 120}, "staff": [["therapist"]], "needs_room": false, "telehealth": false})).await?;
        let mut week: Vec<Value> = (1..=5).map(|d| json!({"weekday": d, "start": "08:00", "end": "18:00"})).collect();
        week.push(json!({"weekday": 7, "start": "00:00", "end": "24:00"}));
        let (s, r) = put(app, &fx.admin, &format!("/api/v1/staff/{}/hours", fx.therapist), &json!(week)).await?;
        assert_eq!(s, 204, "{r}");
        let (_, staff) = get(app, &fx.front, "/api/v1/staff").await?;
        let therapist = staff["items"].as_array().unwrap().iter().find(|p| p["id"] == fx.therapist.as_str()).unwrap().clone();
        assert!(therapist["hours"].as_array().unwrap().iter().any(|h| h["weekday"] == 7 && h["end"] == "24:00"), "{therapist}");

        let sunday = spring_forward(today().year() + 1);
        let p = fx.patient("Springer").await?;
        // 01:30 PST + 120 minutes = 04:30 PDT: two real hours, three on the clock.
        let start = format!("{sunday}T01:30:00-08:00");
        let a = fx.booked(&booking(&p, "long-session", &start, &[&fx.therapist], None)).await?;
        assert_eq!(instant_of(&a["start"]), instant(&format!("{sunday}T09:30:00Z")));
        assert_eq!(instant_of(&a["end"]), instant(&format!("{sunday}T04:30:00-07:00")), "ends 04:30 PDT");
        assert_eq!(instant_of(&a["end"]), instant(&format!("{sunday}T11:30:00Z")));
        assert_eq!(claims_of(app, &str_of(&a["id"])).await?, 2 * 24, "24 five-minute slots: the real length");
        // The hour that does not exist is not double counted: the next session may start at 04:30 PDT.
        let q = fx.patient("Springtwo").await?;
        let r = fx.book(&booking(&q, "long-session", &format!("{sunday}T04:25:00-07:00"), &[&fx.therapist], None)).await?;
        assert_eq!(refusal(&r), refused(409, "conflict", "staff_ids"), "{}", r.1);
        let next = fx.booked(&booking(&q, "long-session", &format!("{sunday}T04:30:00-07:00"), &[&fx.therapist], None)).await?;
        assert_eq!(instant_of(&next["start"]), instant_of(&a["end"]));
        // The working day ends at midnight, on the clock of that day (PDT).
        let late = fx.patient("Springlate").await?;
        let r = fx.book(&booking(&late, "long-session", &format!("{sunday}T22:05:00-07:00"), &[&fx.therapist], None)).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "start"), "past midnight: {}", r.1);
        fx.booked(&booking(&late, "long-session", &format!("{sunday}T22:00:00-07:00"), &[&fx.therapist], None)).await?;
        fx.app.stop().await
    }

    async fn nine_in_the_clinic_is_another_utc_hour_on_each_side_of_a_change(b) {
        let fx = Fx::new(b).await?;
        let year = today().year() + 1;
        let p = fx.patient("Clockwise").await?;
        let q = fx.patient("Clockwork").await?;
        let (spring, fall) = (spring_forward(year), fall_back(year));
        // (Friday before, Monday after, UTC hour of 09:00 before, after)
        for (sunday, before_utc, after_utc) in [(spring, 17, 16), (fall, 16, 17)] {
            let friday = sunday - Duration::days(2);
            let monday = sunday + Duration::days(1);
            let a = fx.booked(&booking(&p, "consultation", &at(friday, 9, 0), &[&fx.prescriber], None)).await?;
            let b2 = fx.booked(&booking(&p, "consultation", &at(monday, 9, 0), &[&fx.prescriber], None)).await?;
            let (ta, tb) = (instant_of(&a["start"]), instant_of(&b2["start"]));
            assert_eq!((ta.to_offset(UtcOffset::UTC).hour(), tb.to_offset(UtcOffset::UTC).hour()), (before_utc, after_utc), "{sunday}");
            // 08:00 in the clinic opens the day: its UTC hour moves with the clock.
            let open_before = format!("{friday}T{:02}:00:00Z", before_utc - 1);
            let open_after = format!("{monday}T{:02}:00:00Z", after_utc - 1);
            fx.booked(&booking(&q, "follow-up", &open_before, &[&fx.nurse], None)).await?;
            fx.booked(&booking(&q, "follow-up", &open_after, &[&fx.nurse], None)).await?;
            // An hour earlier in UTC is 07:00 in the clinic on that day: not working.
            let early = if after_utc < before_utc {
                format!("{friday}T{:02}:00:00Z", after_utc - 1)
            } else {
                format!("{monday}T{:02}:00:00Z", before_utc - 1)
            };
            let r = fx.book(&booking(&q, "follow-up", &early, &[&fx.nurse], None)).await?;
            assert_eq!(refusal(&r), refused(422, "invalid", "start"), "{early}: {}", r.1);
            // The offers start at 08:00 in the clinic, whatever the offset.
            for (day, hour) in [(friday, before_utc), (monday, after_utc)] {
                let (s, slots) = get(&fx.app, &fx.front, &format!("/api/v1/appointments/slots?type=course-review&from={day}&to={day}")).await?;
                assert_eq!(s, 200, "{slots}");
                let first = instant_of(&slots["items"][0]["start"]);
                assert_eq!(first, instant(&format!("{day}T{:02}:00:00Z", hour - 1)), "{day}: {slots}");
            }
        }
        fx.app.stop().await
    }

    async fn offered_slots_can_be_booked_as_offered(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let p3 = fx.demo_patient(3).await?;
        let day = fx.quiet(21, Weekday::Thursday, 2).await?;
        let path = format!("/api/v1/appointments/slots?type=dosing-spravato&from={day}&to={day}&patient_id={p3}");
        let (s, slots) = get(app, &fx.front, &path).await?;
        assert_eq!(s, 200, "{slots}");
        let offers = slots["items"].as_array().unwrap().clone();
        assert!(!offers.is_empty());
        let first = &offers[0];
        assert_eq!(instant_of(&first["start"]), instant(&at(day, 8, 0)), "the day opens at 08:00: {first}");
        assert_eq!(instant_of(&first["end"]) - instant_of(&first["start"]), Duration::minutes(150));
        assert_eq!(first["location_id"], fx.location.as_str());
        assert!(fx.chairs.iter().any(|c| first["room_id"] == c.as_str()), "{first}");
        let people: Vec<&str> = first["staff_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(people.len(), 2);
        assert!(people.contains(&fx.therapist.as_str()), "the therapist need: {first}");
        assert!(people.contains(&fx.prescriber.as_str()) || people.contains(&fx.nurse.as_str()));
        for o in &offers {
            assert_eq!(instant_of(&o["start"]).minute() % 5, 0);
            assert!(instant_of(&o["end"]) <= instant(&at(day, 18, 0)), "within hours: {o}");
        }
        // Booked exactly as offered.
        let mut body = booking(&p3, "dosing-spravato", first["start"].as_str().unwrap(), &people, first["room_id"].as_str());
        body["location_id"] = first["location_id"].clone();
        let a = fx.booked(&body).await?;
        assert_eq!((a["start"].clone(), a["end"].clone(), a["room_id"].clone()), (first["start"].clone(), first["end"].clone(), first["room_id"].clone()));
        // The only therapist is now busy until 10:30: no later offer overlaps it, nor the patient.
        let (_, again) = get(app, &fx.front, &path).await?;
        let again = again["items"].as_array().unwrap();
        assert!(!again.is_empty());
        for o in again {
            assert!(instant_of(&o["start"]) >= instant_of(&a["end"]) || instant_of(&o["end"]) <= instant_of(&a["start"]), "{o}");
        }
        let second = &again[0];
        let people: Vec<&str> = second["staff_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        fx.booked(&booking(&p3, "dosing-spravato", second["start"].as_str().unwrap(), &people, second["room_id"].as_str())).await?;

        // Offers name only people who can be booked: a prescriber who left keeps old hours rows.
        let update = kapstone_web::app::accounts::AccountUpdate { name: "Dr. Riley Prescriber".into(), role: "prescriber".into(), active: false };
        let operator = kapstone_web::app::accounts::Operator::CommandLine { clinic: fx.clinic };
        kapstone_web::app::accounts::update_account(&app.state, operator, fx.prescriber.parse()?, update).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let (_, staff) = get(app, &fx.front, "/api/v1/staff").await?;
        let bookable: Vec<String> = staff["items"].as_array().unwrap().iter().map(|p| str_of(&p["id"])).collect();
        assert!(!bookable.contains(&fx.prescriber));
        let q = fx.patient("Offered").await?;
        let later = day + Duration::days(1);
        let (s, slots) = get(app, &fx.front, &format!("/api/v1/appointments/slots?type=follow-up&from={later}&to={later}&patient_id={q}")).await?;
        assert_eq!(s, 200, "{slots}");
        let offers = slots["items"].as_array().unwrap();
        assert!(!offers.is_empty());
        for o in offers {
            for id in o["staff_ids"].as_array().unwrap() {
                assert!(bookable.contains(&str_of(id)), "offers name bookable staff only: {o}");
            }
        }
        let o = &offers[0];
        let people: Vec<&str> = o["staff_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        fx.booked(&booking(&q, "follow-up", o["start"].as_str().unwrap(), &people, None)).await?;

        // Bad searches name the field.
        let bad = |q: &str| format!("/api/v1/appointments/slots?{q}");
        assert_eq!(refusal(&get(app, &fx.front, &bad(&format!("type=massage&from={day}&to={day}"))).await?), refused(422, "invalid", "type"));
        assert_eq!(refusal(&get(app, &fx.front, &bad(&format!("type=follow-up&from=soon&to={day}"))).await?), refused(422, "invalid", "from"));
        assert_eq!(refusal(&get(app, &fx.front, &bad(&format!("type=follow-up&from={later}&to={day}"))).await?), refused(422, "invalid", "to"));
        fx.app.stop().await
    }

    async fn patients_may_not_see_or_book_and_the_front_desk_may_book(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let patient = app.token("patient1@demo.kapstone.test").await?;
        let p1 = fx.demo_patient(1).await?;
        let day = fx.quiet(21, Weekday::Friday, 1).await?;
        let body = booking(&p1, "consultation", &at(day, 10, 0), &[&fx.prescriber], None);
        let now = OffsetDateTime::now_utc();
        let range = format!("/api/v1/appointments?limit=500&from={}&to={}", utc_text(now), utc_text(now + Duration::days(14)));
        let slots = format!("/api/v1/appointments/slots?type=consultation&from={day}&to={day}");
        for path in ["/api/v1/appointment-types", "/api/v1/rooms", "/api/v1/staff", "/api/v1/locations", range.as_str(), slots.as_str()] {
            assert_eq!(get(app, &patient, path).await?.0, 403, "{path}");
        }
        let rows = appointments_of(app, &p1).await?;
        assert_eq!(post(app, &patient, "/api/v1/appointments", &body).await?.0, 403, "a patient does not book");
        assert_eq!(send_to(&app.base, "not-a-token", Method::POST, "/api/v1/appointments", Some(&body)).await?.0, 401);
        // The admin configures but does not book; the front desk books but does not configure.
        assert_eq!(post(app, &fx.admin, "/api/v1/appointments", &body).await?.0, 403);
        assert_eq!(appointments_of(app, &p1).await?, rows);
        let room = json!({"location_id": fx.location, "name": "Chair 4"});
        assert_eq!(post(app, &fx.front, "/api/v1/rooms", &room).await?.0, 403);
        let hours = json!([{"weekday": 1, "start": "08:00", "end": "12:00"}]);
        assert_eq!(put(app, &fx.front, &format!("/api/v1/staff/{}/hours", fx.nurse), &hours).await?.0, 403);
        assert_eq!(post(app, &fx.front, "/api/v1/appointment-types", &chair_only_type()).await?.0, 403);
        let (s, a) = post(app, &fx.front, "/api/v1/appointments", &body).await?;
        assert_eq!(s, 201, "{a}");
        assert_eq!(appointments_of(app, &p1).await?, rows + 1);
        let nurse = app.token(NURSE).await?;
        let (s, n) = post(app, &nurse, "/api/v1/appointments", &booking(&p1, "follow-up", &at(day, 11, 0), &[&fx.nurse], None)).await?;
        assert_eq!(s, 201, "clinicians book too: {n}");
        // The front desk can itself be booked (it is on the staff list), and the admin can add a chair.
        assert!(fx.frontdesk.parse::<uuid::Uuid>().is_ok());
        assert_eq!(post(app, &fx.admin, "/api/v1/rooms", &room).await?.0, 201);
        let (_, rooms) = get(app, &fx.front, "/api/v1/rooms").await?;
        assert_eq!(rooms["items"].as_array().unwrap().len(), 4);
        fx.app.stop().await
    }
}

// ---------------------------------------------------------------------------------------------
// Several locations, leave over booked sessions, attended sessions and old claims.

both_backends! {
    async fn a_second_location_in_another_zone_is_searched_and_booked_in_its_own_zone(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let (s, east) =
            post(app, &fx.admin, "/api/v1/locations", &json!({"name": "East office", "time_zone": "America/New_York"}))
                .await?;
        assert_eq!(s, 201, "{east}");
        let east = str_of(&east["id"]);
        // The therapist works Wednesdays at the East office (09:00-17:00 New York), other weekdays
        // at the main clinic.
        let mut week: Vec<Value> = (1..=5)
            .filter(|d| *d != 3)
            .map(|d| json!({"weekday": d, "start": "08:00", "end": "18:00", "location_id": fx.location}))
            .collect();
        week.push(json!({"weekday": 3, "start": "09:00", "end": "17:00", "location_id": east}));
        let (s, r) = put(app, &fx.admin, &format!("/api/v1/staff/{}/hours", fx.therapist), &json!(week)).await?;
        assert_eq!(s, 204, "{r}");
        let p = fx.patient("Eastside").await?;
        let wednesday = fx.quiet(21, Weekday::Wednesday, 1).await?;
        let slots = |location: Option<&str>| {
            let mut path = format!("/api/v1/appointments/slots?type=integration&from={wednesday}&to={wednesday}&patient_id={p}");
            if let Some(l) = location {
                path.push_str(&format!("&location_id={l}"));
            }
            path
        };
        // Without a location every location is searched: on Wednesday only the East office has
        // the therapist, and its first offer is 09:00 New York time (14:00 UTC in winter, 13:00
        // in summer), not 09:00 Los Angeles time.
        let (s, all) = get(app, &fx.front, &slots(None)).await?;
        assert_eq!(s, 200, "{all}");
        let offers = all["items"].as_array().unwrap();
        assert!(!offers.is_empty(), "no offer on {wednesday}");
        assert!(offers.iter().all(|o| o["location_id"] == east.as_str()), "{all}");
        let first = instant_of(&offers[0]["start"]);
        let new_york_offset = la_offset(wednesday, 12) + 3;
        assert_eq!(first.to_offset(UtcOffset::from_hms(new_york_offset, 0, 0)?).hour(), 9, "{}", offers[0]);
        let (s, main) = get(app, &fx.front, &slots(Some(&fx.location))).await?;
        assert_eq!((s, main["items"].as_array().map(Vec::len)), (200, Some(0)), "nobody at the main clinic: {main}");
        let (s, r) = get(app, &fx.front, &slots(Some("00000000-0000-0000-0000-000000000000"))).await?;
        assert_eq!(refusal(&(s, r)), refused(422, "invalid", "location_id"));
        // Booked at the East office, it is listed there; at the main clinic the same time is
        // refused, naming the start (the therapist is not working there then).
        let mut body = booking(&p, "integration", &str_of(&offers[0]["start"]), &[&fx.therapist], None);
        body["location_id"] = json!(east);
        let a = fx.booked(&body).await?;
        assert_eq!(a["location_id"], east.as_str());
        let mut elsewhere = booking(&p, "integration", &str_of(&offers[1]["start"]), &[&fx.therapist], None);
        elsewhere["location_id"] = json!(fx.location);
        let r = fx.book(&elsewhere).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "start"), "{}", r.1);
        // The day page shows one location at a time, in its own zone.
        let (c, _) = app.browser_login(FRONTDESK, PASSWORD).await?;
        let page = c.get(app.url(&format!("/schedule?date={wednesday}&location={east}"))).send().await?.text().await?;
        assert!(page.contains("America/New_York") && page.contains("09:00–09:50"), "East day page");
        let page =
            c.get(app.url(&format!("/schedule?date={wednesday}&location={}", fx.location))).send().await?.text().await?;
        assert!(page.contains("America/Los_Angeles") && !page.contains("09:00–09:50"), "main clinic day page");
        let r = c.get(app.url("/schedule?location=nowhere")).send().await?;
        assert_eq!(r.status().as_u16(), 422);
        fx.app.stop().await
    }

    async fn leave_over_a_booked_session_is_saved_with_the_clash_named_and_can_be_removed(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let p = fx.patient("Leaveclash").await?;
        let day = fx.quiet(21, Weekday::Thursday, 1).await?;
        let a = fx.booked(&booking(&p, "consultation", &at(day, 11, 0), &[&fx.prescriber], None)).await?;
        let path = format!("/api/v1/staff/{}/exceptions", fx.prescriber);
        // Leave in the afternoon does not touch the 11:00 consultation.
        let (s, pm) = post(app, &fx.admin, &path,
            &json!({"date": day.to_string(), "kind": "leave", "start": "13:00", "end": "18:00"})).await?;
        assert_eq!((s, pm["clashes"].as_array().map(Vec::len)), (201, Some(0)), "{pm}");
        let (s, am) = post(app, &fx.admin, &path,
            &json!({"date": day.to_string(), "kind": "leave", "start": "08:00", "end": "12:00", "note": "Course"})).await?;
        assert_eq!(s, 201, "{am}");
        let clashes = am["clashes"].as_array().unwrap();
        assert_eq!(clashes.len(), 1, "{am}");
        assert_eq!(clashes[0]["appointment_id"], a["id"]);
        assert_eq!(clashes[0]["when"], format!("{day} 11:00").as_str());
        assert_eq!(fx.listed(&a["id"], &a["start"]).await?["status"], "booked", "the front desk moves it");
        // New bookings in the leave are refused; removing the leave opens the time again.
        let q = fx.patient("Leaveafter").await?;
        let r = fx.book(&booking(&q, "consultation", &at(day, 9, 0), &[&fx.prescriber], None)).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "start"));
        let del = |id: &Value| format!("/api/v1/staff/{}/exceptions/{}", fx.prescriber, str_of(id));
        let (s, _) = send_to(&app.base, &fx.admin, Method::DELETE, &del(&am["id"]), None).await?;
        assert_eq!(s, 204);
        let (s, _) = send_to(&app.base, &fx.admin, Method::DELETE, &del(&am["id"]), None).await?;
        assert_eq!(s, 404, "already removed");
        let (s, _) = send_to(&app.base, &fx.front, Method::DELETE, &del(&pm["id"]), None).await?;
        assert_eq!(s, 403, "admins manage hours");
        fx.booked(&booking(&q, "consultation", &at(day, 9, 0), &[&fx.prescriber], None)).await?;
        // The admin page lists the leave still ahead, with a button to remove it.
        let (c, _) = app.browser_login(ADMIN, PASSWORD).await?;
        let page = c.get(app.url("/admin/scheduling")).send().await?.text().await?;
        assert!(page.contains(&format!("/admin/scheduling/exceptions/{}/remove", str_of(&pm["id"]))));
        assert!(!page.contains(&str_of(&am["id"])));
        fx.app.stop().await
    }

    async fn an_attended_session_counts_as_done_in_its_course_and_old_claims_are_pruned(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let p3 = fx.demo_patient(3).await?;
        let course_of = || async {
            let (_, list) = get(app, &fx.front, &format!("/api/v1/patients/{p3}/courses")).await?;
            anyhow::Ok(list["items"][0].clone())
        };
        let before = course_of().await?;
        assert_eq!(before["dosing_done"], 0, "{before}");
        let course_id = str_of(&before["id"]);
        let t = OffsetDateTime::now_utc();
        let mine: Vec<Value> = fx
            .list(t, t + Duration::days(40))
            .await?
            .into_iter()
            .filter(|a| a["course_id"] == course_id.as_str() && a["status"] == "booked")
            .collect();
        let id = str_of(&mine[0]["id"]);
        let attended = format!("/api/v1/appointments/{id}/attended");
        let r = post(app, &fx.front, &attended, &json!({})).await?;
        assert_eq!(refusal(&r), refused(422, "invalid", "status"), "not started yet");
        // Time passes: the session is now two days ago, its claims with it.
        let (shift, claims) = match app.backend {
            TestBackend::Sqlite => ("start_at = start_at - 3456000000000, end_at = end_at - 3456000000000", 11520),
            TestBackend::Postgres => ("start_at = start_at - interval '40 days', end_at = end_at - interval '40 days'", 11520),
        };
        assert_eq!(app.raw_sql(&format!("UPDATE appointments SET {shift} WHERE id = {}", uuid_sql(app, &id))).await?, 1);
        let held = claims_of(app, &id).await?;
        assert!(held > 0);
        app.raw_sql(&format!("UPDATE booking_claims SET slot = slot - {claims} WHERE appointment_id = {}", uuid_sql(app, &id)))
            .await?;
        let (s, a) = post(app, &fx.front, &attended, &json!({})).await?;
        assert_eq!((s, a["status"].as_str()), (200, Some("completed")), "{a}");
        let after = course_of().await?;
        assert_eq!((after["dosing_done"].as_i64(), after["dosing_left"].as_i64()), (Some(1), Some(13)), "{after}");
        let r = post(app, &fx.front, &attended, &json!({})).await?;
        assert_eq!(refusal(&r), refused(409, "conflict", "status"), "already completed");
        // The job prunes the claims of slots more than a day old, and only those.
        let total = app.count("booking_claims").await?;
        let pruned = kapstone_web::app::jobs::prune_claims(&app.state).await?;
        assert_eq!(i64::try_from(pruned)?, held);
        assert_eq!(claims_of(app, &id).await?, 0);
        assert_eq!(app.count("booking_claims").await?, total - held);
        assert_eq!(kapstone_web::app::jobs::prune_claims(&app.state).await?, 0);
        fx.app.stop().await
    }

    async fn booking_the_plan_also_books_its_integration_sessions_once(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let p3 = fx.demo_patient(3).await?;
        let (_, list) = get(app, &fx.front, &format!("/api/v1/patients/{p3}/courses")).await?;
        let course = &list["items"][0];
        let planned = course["plan"].as_array().unwrap().iter().filter(|p| p["kind"] == "integration").count();
        assert!(planned >= 8, "one after each dosing session: {course}");
        let path = format!("/api/v1/courses/{}/book", str_of(&course["id"]));
        let body = json!({"time": "10:00", "staff_ids": [fx.nurse, fx.therapist], "room_id": fx.chairs[0], "integration": true});
        let (s, r) = post(app, &fx.front, &path, &body).await?;
        assert_eq!(s, 200, "{r}");
        let items = r["items"].as_array().unwrap();
        let integration: Vec<&Value> = items.iter().filter(|i| i["kind"] == "integration").collect();
        let booked = integration.iter().filter(|i| !i["appointment_id"].is_null()).count();
        assert!(booked >= planned - 1, "{r}");
        // Each is booked on its planned (local) date, with the course, and the therapist.
        let t = OffsetDateTime::now_utc();
        let mut listed = Vec::new();
        for window in 0..4 {
            let from = t + Duration::days(60 * window);
            listed.extend(fx.list(from, from + Duration::days(60)).await?);
        }
        for i in integration.iter().filter(|i| !i["appointment_id"].is_null()) {
            let a = listed.iter().find(|a| a["id"] == i["appointment_id"]).unwrap();
            assert_eq!((a["kind"].as_str(), a["course_id"].as_str()), (Some("integration"), course["id"].as_str()));
            assert_eq!(a["staff_ids"], json!([fx.therapist]));
            let date = Date::parse(i["date"].as_str().unwrap(), &time::format_description::well_known::Iso8601::DATE)?;
            let local = instant_of(&a["start"]).to_offset(UtcOffset::from_hms(la_offset(date, 12), 0, 0)?);
            assert_eq!(local.date(), date, "{a}");
        }
        let (_, list) = get(app, &fx.front, &format!("/api/v1/patients/{p3}/courses")).await?;
        assert_eq!(list["items"][0]["integration_booked"].as_i64(), Some(i64::try_from(booked)?));
        // Booking the plan again books nothing new.
        let (s, again) = post(app, &fx.front, &path, &body).await?;
        assert_eq!(s, 200);
        assert!(again["items"].as_array().unwrap().iter().all(|i| i["appointment_id"].is_null()), "{again}");
        fx.app.stop().await
    }

    async fn a_date_of_the_plan_that_clashes_is_refused_and_the_others_are_booked(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let p3 = fx.demo_patient(3).await?;
        let (_, list) = get(app, &fx.front, &format!("/api/v1/patients/{p3}/courses")).await?;
        let course_id = str_of(&list["items"][0]["id"]);
        // The course's last two booked dosing sessions, cancelled: two dates to book again.
        let t = OffsetDateTime::now_utc();
        let mut dosing = Vec::new();
        for window in 0..4 {
            let from = t + Duration::days(60 * window);
            dosing.extend(fx.list(from, from + Duration::days(60)).await?.into_iter().filter(|a| {
                a["course_id"] == course_id.as_str() && a["status"] == "booked" && a["kind"] == "dosing"
            }));
        }
        dosing.sort_by_key(|a| instant_of(&a["start"]));
        dosing.dedup_by(|a, b| a["id"] == b["id"]);
        anyhow::ensure!(dosing.len() >= 4, "the demo books the course: {dosing:?}");
        let (taken, free) = (&dosing[dosing.len() - 2], &dosing[dosing.len() - 1]);
        for a in [taken, free] {
            let cancel = format!("/api/v1/appointments/{}/cancel", str_of(&a["id"]));
            let (s, r) = post(app, &fx.front, &cancel, &json!({"reason": "Away that week"})).await?;
            assert_eq!(s, 200, "{r}");
        }
        // Another patient takes the chair at the first one's time.
        fx.add_type(&chair_only_type()).await?;
        let other = fx.patient("Chairtaker").await?;
        let chair_taker = fx
            .booked(&json!({"patient_id": other, "type": "chair-only", "start": taken["start"], "room_id": taken["room_id"],
                "location_id": taken["location_id"]}))
            .await?;
        // What waits in the portal is cleared, to count what the plan's booking assigns.
        app.raw_sql("DELETE FROM questionnaire_assignments WHERE completed_at IS NULL").await?;
        let before = app.count("appointments").await?;
        let path = format!("/api/v1/courses/{course_id}/book");
        let body = json!({"time": "10:00", "staff_ids": [fx.nurse, fx.therapist], "room_id": taken["room_id"]});
        let (s, r) = post(app, &fx.front, &path, &body).await?;
        assert_eq!(s, 200, "{r}");
        let items = r["items"].as_array().unwrap();
        // 10:00 in Los Angeles is the same date in UTC.
        let outcome = |a: &Value| dosing_outcome(items, a);
        let refused = outcome(taken);
        assert!(refused["appointment_id"].is_null(), "{r}");
        assert!(refused["refused"].as_str().is_some_and(|m| m.contains("already booked")), "{r}");
        assert!(outcome(free)["appointment_id"].is_string(), "the clash stops no other date: {r}");
        let booked = i64::try_from(items.iter().filter(|i| !i["appointment_id"].is_null()).count())?;
        assert_eq!(app.count("appointments").await?, before + booked);
        fx.claims_are_consistent(t, t + Duration::days(240)).await?;
        // The dosing sessions it booked assigned the pre-session PHQ-9 and C-SSRS, once each.
        for instrument in ["phq9", "cssrs_screener"] {
            let open = format!(
                "questionnaire_assignments WHERE completed_at IS NULL AND instrument = '{instrument}' AND patient_id = {}",
                uuid_sql(app, &p3)
            );
            assert_eq!(app.count(&open).await?, 1, "{instrument}");
        }
        // Booking the plan again books only what is missing: nothing (the chair is still taken).
        let (s, again) = post(app, &fx.front, &path, &body).await?;
        assert_eq!(s, 200, "{again}");
        assert!(again["items"].as_array().unwrap().iter().all(|i| i["appointment_id"].is_null()), "{again}");
        assert_eq!(app.count("appointments").await?, before + booked);

        // On PostgreSQL, another server process claims the chair on a date while the plan's
        // transaction books: the plan waits for it, the claims' primary key refuses that date
        // alone, and the plan keeps the others.
        if let kapstone_store::Db::Postgres { pool, .. } = &app.db {
            let (raced, kept) = (&dosing[dosing.len() - 4], &dosing[dosing.len() - 3]);
            for a in [raced, kept] {
                let cancel = format!("/api/v1/appointments/{}/cancel", str_of(&a["id"]));
                let (s, r) = post(app, &fx.front, &cancel, &json!({"reason": "Away that week"})).await?;
                assert_eq!(s, 200, "{r}");
            }
            let mut other_process = pool.begin().await?;
            sqlx::query("INSERT INTO booking_claims (resource, slot, appointment_id) VALUES ($1, $2, $3)")
                .bind(format!("room:{}", str_of(&raced["room_id"])))
                .bind(instant_of(&raced["start"]).unix_timestamp() / 300)
                .bind(uuid::Uuid::parse_str(&str_of(&chair_taker["id"]))?)
                .execute(&mut *other_process)
                .await?;
            let (client, url, token, body) = (app.client(), app.url(&path), fx.front.clone(), body.clone());
            let plan = tokio::spawn(async move {
                let r = client.post(url).bearer_auth(token).json(&body).send().await?;
                anyhow::Ok((r.status().as_u16(), r.json::<Value>().await?))
            });
            let mut waited = 0;
            while app.count("pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").await? == 0 && waited < 100 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                waited += 1;
            }
            assert!(waited < 100, "the plan's transaction waits for the other process's claim");
            other_process.commit().await?;
            let (s, r) = plan.await??;
            assert_eq!(s, 200, "{r}");
            let items = r["items"].as_array().unwrap();
            let outcome = |a: &Value| dosing_outcome(items, a);
            let refused = outcome(raced);
            assert!(refused["refused"].as_str().is_some_and(|m| m.contains("already booked")), "{r}");
            assert!(outcome(kept)["appointment_id"].is_string(), "{r}");
            assert_eq!(app.count("appointments").await?, before + booked + 1);
            let raced_claims = format!(
                "booking_claims WHERE resource = 'room:{}' AND slot = {}",
                str_of(&raced["room_id"]),
                instant_of(&raced["start"]).unix_timestamp() / 300
            );
            assert_eq!(app.count(&raced_claims).await?, 1, "the other process's claim alone");
        }
        fx.app.stop().await
    }

    async fn the_courses_page_starts_and_shows_a_course(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let p2 = fx.demo_patient(2).await?;
        let (c, _) = app.browser_login(PRESCRIBER, PASSWORD).await?;
        let csrf = app.csrf_of(&c).await?;
        let url = app.url(&format!("/patients/{p2}/courses"));
        let page = c.get(&url).send().await?.text().await?;
        assert!(page.contains("No course yet") && page.contains("KAP-SL"), "the decision allows lozenges");
        let r = c.post(&url).form(&[("csrf_token", csrf.as_str()), ("template", "KAP-SL"), ("first_date", "2030-01-07"),
            ("kap_sessions", "many")]).send().await?;
        assert_eq!(r.status().as_u16(), 422);
        assert!(r.text().await?.contains("(kap_sessions)"));
        let r = c.post(&url).form(&[("csrf_token", csrf.as_str()), ("template", "KAP-SL"), ("first_date", "2030-01-07"),
            ("kap_sessions", "4")]).send().await?;
        assert_eq!(r.status().as_u16(), 200);
        let page = r.text().await?;
        assert!(page.contains("Course started") && page.contains("0</strong> of 4 dosing sessions done"), "{page}");
        assert!(page.contains("Dosing session 4") && page.contains("Integration session"));
        // The front desk sees the plan and the booking form, not the start form.
        let (f, _) = app.browser_login(FRONTDESK, PASSWORD).await?;
        let page = f.get(&url).send().await?.text().await?;
        assert!(page.contains("Book the plan") && !page.contains("Start the course"));
        fx.app.stop().await
    }

    async fn an_admin_sets_hours_at_two_locations_from_the_page(b) {
        let fx = Fx::new(b).await?;
        let app = &fx.app;
        let (s, east) =
            post(app, &fx.admin, "/api/v1/locations", &json!({"name": "East office", "time_zone": "America/New_York"})).await?;
        assert_eq!(s, 201);
        let east = str_of(&east["id"]);
        let (c, _) = app.browser_login(ADMIN, PASSWORD).await?;
        let csrf = app.csrf_of(&c).await?;
        let form = |mode: &str, location: &str, days: &[&str], start: &str| {
            let mut f = vec![("csrf_token", csrf.clone()), ("user_id", fx.therapist.clone()), ("start", start.to_owned()),
                ("end", "17:00".to_owned()), ("location_id", location.to_owned()), ("mode", mode.to_owned())];
            f.extend(days.iter().map(|d| ("weekday", (*d).to_owned())));
            f
        };
        let r = c.post(app.url("/admin/scheduling/hours")).form(&form("replace", &fx.location, &["1", "2"], "09:00")).send().await?;
        assert!(r.status().is_success() || r.status().is_redirection());
        let r = c.post(app.url("/admin/scheduling/hours")).form(&form("add", &east, &["3"], "10:00")).send().await?;
        assert!(r.status().is_success() || r.status().is_redirection());
        let (_, staff) = get(app, &fx.front, "/api/v1/staff").await?;
        let me = staff["items"].as_array().unwrap().iter().find(|p| p["id"] == fx.therapist.as_str()).unwrap().clone();
        let hours = me["hours"].as_array().unwrap();
        let mut got: Vec<(i64, String, String)> = hours.iter()
            .map(|h| (h["weekday"].as_i64().unwrap(), str_of(&h["start"]), str_of(&h["location_id"]))).collect();
        got.sort();
        assert_eq!(got, vec![(1, "09:00".into(), fx.location.clone()), (2, "09:00".into(), fx.location.clone()), (3, "10:00".into(), east.clone())]);
        let page = c.get(app.url("/admin/scheduling")).send().await?.text().await?;
        assert!(page.contains("Wed 10:00–17:00 at East office"), "the week names the location");
        fx.app.stop().await
    }
}
