//! Answers whose documented variants no other test makes the server send (issue 8): each is
//! produced here through the real flow, so the harness validates it against its schema, and each
//! test checks the variant is really in the answer (a test that only asked would prove nothing).

use jiff::{SignedDuration, Timestamp};
use kapstone_testkit::{TestApp, both_backends};
use serde_json::{Value, json};

fn ago(t0: Timestamp, minutes: i64) -> String {
    (t0 - SignedDuration::from_mins(minutes)).to_string()
}

/// Every object found under a `key` anywhere in `v`.
fn under<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == key {
                    out.push(x);
                }
                under(x, key, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| under(x, key, out)),
        _ => {}
    }
}

/// The keys of the `measure` objects in `v`.
fn measure_kinds(v: &Value) -> Vec<String> {
    let mut found = Vec::new();
    under(v, "measure", &mut found);
    let mut kinds: Vec<String> = found.iter().filter_map(|m| m.as_object()).flat_map(|o| o.keys().cloned()).collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// The demo's registered location and its registry.
async fn registry(app: &TestApp, token: &str) -> anyhow::Result<(String, Value)> {
    let (s, registry) = app.get_json(token, "/api/v1/cs/registry").await?;
    anyhow::ensure!(s == 200, "{registry}");
    let location = registry["locations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| !l["registration"].is_null())
        .and_then(|l| l["location_id"].as_str())
        .ok_or_else(|| anyhow::anyhow!("the demo's registered location: {registry}"))?
        .to_owned();
    Ok((location, registry))
}

fn product_of(registry: &Value, ndc: &str) -> String {
    registry["products"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["ndc"] == ndc)
        .and_then(|p| p["id"].as_str())
        .unwrap_or_default()
        .to_owned()
}

const SPRAVATO_NDC: &str = "50458-028-02";

both_backends! {
    async fn a_new_product_and_measures_in_devices_tablets_and_micrograms_read_back_as_documented(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let (location, registry) = registry(&app, &nurse).await?;

        // POST /api/v1/cs/products: a bottle of lozenges.
        let (s, product) = app.post_json(&admin, "/api/v1/cs/products", json!({"name": "Ketamine 100 mg lozenges, bottle of 30",
            "substance": "ketamine", "ndc": "70000-123-01",
            "form": {"form": "tablets", "tablets_per_container": 30, "ug_per_tablet": 100000}})).await?;
        anyhow::ensure!(s == 201 && product["ndc"] == "70000-123-01", "{s} {product}");

        // The demo's month of draws: Spravato in devices, lozenges in tablets.
        let (s, ledger) = app.get_json(&nurse, &format!("/api/v1/cs/ledger?location={location}&limit=500&kind=draw")).await?;
        anyhow::ensure!(s == 200, "{ledger}");
        let kinds = measure_kinds(&ledger["items"]);
        anyhow::ensure!(kinds.contains(&"devices".to_owned()) && kinds.contains(&"tablets".to_owned()), "{kinds:?}");

        // A device returned to the supplier, measured in micrograms.
        let supplier = json!({"name": "Synthetic Pharma Supply", "address": "1 Warehouse Way", "dea_number": "RS1234563"});
        let (s, r) = app.post_json(&nurse, "/api/v1/cs/transfers", json!({"location": location,
            "product": product_of(&registry, SPRAVATO_NDC), "lot": "24KX117", "purpose": "return_to_supplier",
            "recipient": supplier, "measure": {"amount_ug": 28000}, "document": "RMA-9"})).await?;
        anyhow::ensure!(s == 201, "{r}");
        let (_, out) = app.get_json(&nurse, &format!("/api/v1/cs/ledger?location={location}&limit=500&kind=transfer_out")).await?;
        anyhow::ensure!(measure_kinds(&out["items"]).contains(&"amount_ug".to_owned()), "{out}");
        app.stop().await
    }

    async fn what_was_given_from_a_draw_is_recorded_when_the_session_could_not(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let front = app.token("frontdesk@demo.kapstone.test").await?;
        let (location, _) = registry(&app, &nurse).await?;
        let p3 = app.portal_patient_id(&app.token("patient3@demo.kapstone.test").await?).await?;
        let now = Timestamp::now();
        let to = now + SignedDuration::from_hours(24 * 30);
        let (_, list) = app.get_json(&front, &format!("/api/v1/appointments?limit=500&from={now}&to={to}")).await?;
        let a = list["items"].as_array().into_iter().flatten()
            .find(|a| a["patient_id"] == p3.as_str() && a["kind"] == "dosing" && a["status"] == "booked")
            .and_then(|a| a["id"].as_str()).unwrap_or_default().to_owned();
        let (s, session) = app.post_json(&nurse, &format!("/api/v1/appointments/{a}/session"), json!({})).await?;
        anyhow::ensure!(s == 201, "{session}");
        let id = session["id"].as_str().unwrap_or_default().to_owned();
        let t0 = Timestamp::now();
        let steps = [
            (&nurse, "events", json!({"kind": "checked_in", "at": ago(t0, 30),
                "escort": {"name": "Sam Rivers", "phone": "+1 555 010 0199"}, "escort_confirmed_in_person": true,
                "state_of_mind": {"mood": 6, "alcohol_or_substances_last_12h": false, "intoxication_signs": false},
                "pregnancy": "not_applicable"})),
            (&nurse, "vitals", json!({"systolic": 130, "diastolic": 80, "heart_rate": 72, "spo2": 98, "resp_rate": 14,
                "recorded_at": ago(t0, 25), "at": ago(t0, 25)})),
            (&therapist, "scores", json!({"moaas": 5, "cadss23": 0, "recorded_at": ago(t0, 25), "at": ago(t0, 25)})),
            (&prescriber, "dose-order", json!({"request": {"protocol": "spravato-intranasal", "dose_mg": 56}, "at": ago(t0, 22)})),
            (&nurse, "events", json!({"kind": "cleared_for_dosing", "at": ago(t0, 20)})),
            // Two devices drawn, counted as devices.
            (&nurse, "administrations", json!({"product": "SPRAVATO 28 mg nasal spray, kit of 2 devices (56 mg)",
                "ndc": SPRAVATO_NDC, "lot": "24KX117", "expiry": "2030-01-31", "dose_mg": 56, "route_snomed": "46713006",
                "at": ago(t0, 18), "drawn": {"devices": 2}})),
        ];
        for (token, what, body) in steps {
            let (s, r) = app.post_json(token, &format!("/api/v1/sessions/{id}/{what}"), body.clone()).await?;
            anyhow::ensure!(s == 201, "{what} {body}: {s} {r}");
        }
        let (_, draws) = app.get_json(&nurse, &format!("/api/v1/cs/ledger?location={location}&limit=500&kind=draw")).await?;
        let draw = draws["items"].as_array().into_iter().flatten()
            .find(|e| e["entry"]["detail"]["session"] == id.as_str()).cloned()
            .ok_or_else(|| anyhow::anyhow!("the session's draw: {draws}"))?;
        anyhow::ensure!(measure_kinds(&draw).contains(&"devices".to_owned()), "{draw}");
        // One device given, then the session stops: the nurse records the 28 mg given.
        let (s, r) = app.post_json(&nurse, &format!("/api/v1/sessions/{id}/events"), json!({"kind": "device_given", "at": ago(t0, 15)})).await?;
        anyhow::ensure!(s == 201, "{r}");
        let draw_id = draw["id"].as_str().unwrap_or_default();
        let (s, given) = app.post_json(&nurse, &format!("/api/v1/cs/draws/{draw_id}/administration"), json!({"amount_mg": "28"})).await?;
        anyhow::ensure!(s == 201 && given["entries"][0]["kind"] == "administration", "{s} {given}");
        let (s, again) = app.post_json(&nurse, &format!("/api/v1/cs/draws/{draw_id}/administration"), json!({"amount_mg": "28"})).await?;
        anyhow::ensure!(s == 422 && again["error"]["field"] == "draw", "once: {again}");
        app.stop().await
    }

    async fn an_accepted_amendment_names_its_records_and_a_private_entry_is_rewritten(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let patient2 = app.token("patient2@demo.kapstone.test").await?;
        // The record the amendment is appended to: a questionnaire the patient answered.
        let (s, response) = app.post_json(&patient2, "/api/v1/portal/questionnaires",
            json!({"instrument": "gad7", "answers": [0,1,0,1,0,1,0]})).await?;
        anyhow::ensure!(s == 201, "{response}");
        let record = response["id"].as_str().unwrap_or_default().to_owned();
        let (s, req) = app.post_json(&patient2, "/api/v1/portal/record-requests",
            json!({"kind": "amendment", "requested": "My GAD-7 of today: I meant 'several days' for item 2"})).await?;
        anyhow::ensure!(s == 201, "{req}");
        let rid = req["id"].as_str().unwrap_or_default();
        let (s, accepted) = app.post_json(&nurse, &format!("/api/v1/record-requests/{rid}/steps"),
            json!({"step": "accept", "records": [record]})).await?;
        anyhow::ensure!(s == 200 && accepted["records"] == json!([record]), "{s} {accepted}");
        let (s, own) = app.get_json(&patient2, "/api/v1/portal/record-requests").await?;
        anyhow::ensure!(s == 200 && own["items"].as_array().into_iter().flatten().any(|r| r["records"] == json!([record])), "{own}");

        // PUT /api/v1/portal/journal/{id}: a private entry rewritten.
        let (s, entry) = app.post_json(&patient2, "/api/v1/portal/journal", json!({"text": "First draft"})).await?;
        anyhow::ensure!(s == 201, "{entry}");
        let eid = entry["id"].as_str().unwrap_or_default();
        let (s, edited) = app.put_json(&patient2, &format!("/api/v1/portal/journal/{eid}"), json!({"text": "Second draft"})).await?;
        anyhow::ensure!(s == 200 && edited["text"] == "Second draft" && edited["id"] == eid, "{s} {edited}");
        app.stop().await
    }

    async fn a_protocol_whose_checks_run_for_a_number_of_minutes_reads_back_as_documented(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let (s, list) = app.get_json(&nurse, "/api/v1/protocols").await?;
        anyhow::ensure!(s == 200, "{list}");
        let mut found = false;
        let mut ids = Vec::new();
        under(&list, "id", &mut ids);
        let ids: Vec<String> = ids.iter().filter_map(|i| i.as_str()).filter(|i| i.contains('-')).map(str::to_owned).collect();
        for id in ids {
            let (s, p) = app.get_json(&nurse, &format!("/api/v1/protocols/{id}")).await?;
            if s != 200 {
                continue;
            }
            let mut until = Vec::new();
            under(&p, "until", &mut until);
            found |= until.iter().any(|u| u["minutes"].is_u64());
        }
        anyhow::ensure!(found, "a protocol's series ends after a number of minutes (intramuscular)");
        app.stop().await
    }

    async fn an_84_mg_spravato_session_fills_the_rems_dose_box_with_84_mg(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        // Day 1 is 56 mg (the label); 84 mg after it.
        super::rems_forms::spravato_session_of(&app, &nurse, &prescriber, &therapist, 2).await?;
        let id = super::rems_forms::spravato_session_of(&app, &nurse, &prescriber, &therapist, 3).await?;
        let (s, form) = app.get_json(&nurse, &format!("/api/v1/sessions/{id}/rems-form")).await?;
        anyhow::ensure!(s == 200, "{form}");
        let dose = form["form"]["fields"].as_array().into_iter().flatten()
            .find(|f| f["id"] == "dose_administered").map(|f| f["value"].clone()).unwrap_or_default();
        anyhow::ensure!(dose == json!({"type": "dose", "value": {"choice": "mg84"}}), "{dose}");
        app.stop().await
    }

    async fn a_28_mg_older_adult_start_fills_the_rems_dose_box_with_another_dose(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        // The fixture: demo patient 3 (whose age the demo draws at random) is 76. The API edits no
        // birth date, so this one is set in the database.
        let p3 = app.portal_patient_id(&app.token("patient3@demo.kapstone.test").await?).await?;
        let id_sql = match app.backend {
            kapstone_testkit::TestBackend::Sqlite => format!("X'{}'", p3.replace('-', "")),
            kapstone_testkit::TestBackend::Postgres => format!("'{p3}'"),
        };
        anyhow::ensure!(app.raw_sql(&format!("UPDATE patients SET birth_date = '1950-01-02' WHERE id = {id_sql}")).await? == 1);
        // The medical director enables the label's older-adult 28 mg start (outside the US label).
        let (s, current) = app.get_json(&prescriber, "/api/v1/protocols/spravato-intranasal").await?;
        anyhow::ensure!(s == 200, "{current}");
        let mut definition = current["protocol"].clone();
        definition["dose"]["devices"]["older_adult_start"] = json!({"age_at_or_above": 65, "day1_dose_mg": 28});
        definition["version"] = json!("2026.2");
        definition["dose"]["devices"]["sources"]["older_adult_start"] = json!("label outside the US: 28 mg on day 1 at 65 or more, KAP-SPEC 4.2 [S2]");
        let (s, saved) = app.post_json(&prescriber, "/api/v1/protocols/spravato-intranasal/versions",
            json!({"definition": definition, "reason": "Older-adult start for the clinic's patients of 65 or more"})).await?;
        anyhow::ensure!(s == 201, "{s} {saved}");
        let id = super::rems_forms::spravato_session_of(&app, &nurse, &prescriber, &therapist, 1).await?;
        let (s, form) = app.get_json(&nurse, &format!("/api/v1/sessions/{id}/rems-form")).await?;
        anyhow::ensure!(s == 200, "{form}");
        let dose = form["form"]["fields"].as_array().into_iter().flatten()
            .find(|f| f["id"] == "dose_administered").map(|f| f["value"].clone()).unwrap_or_default();
        anyhow::ensure!(dose == json!({"type": "dose", "value": {"choice": "other", "mg": 28}}), "{dose}");
        app.stop().await
    }

    async fn measures_owed_at_intake_the_end_of_induction_in_maintenance_and_before_integration_are_listed(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let patient3 = app.token("patient3@demo.kapstone.test").await?;
        let p3 = app.portal_patient_id(&patient3).await?;
        let (s, courses) = app.get_json(&nurse, &format!("/api/v1/patients/{p3}/courses")).await?;
        anyhow::ensure!(s == 200, "{courses}");
        let course = courses["items"][0]["id"].as_str().unwrap_or_default().to_owned();
        // The course's integration sessions booked too, with the dosing sessions' team and chair.
        let (_, appts) = app.get_json(&nurse, &format!("/api/v1/appointments?patient={p3}&limit=500")).await?;
        let dosing = appts["items"].as_array().into_iter().flatten()
            .find(|a| a["course_id"] == course.as_str()).cloned().unwrap_or_default();
        let (s, booked) = app.post_json(&nurse, &format!("/api/v1/courses/{course}/book"), json!({"time": "10:00",
            "staff_ids": dosing["staff_ids"], "room_id": dosing["room_id"], "integration": true})).await?;
        anyhow::ensure!(s == 200 && booked["items"].as_array().is_some_and(|i| !i.is_empty()), "{s} {booked}");
        // The fixture: the course five weeks on, its baseline questionnaires answered before it.
        // Its sessions start next week and the API books none in the past, so they and the
        // answers are moved back in the database: induction is over (its review still to come)
        // and maintenance has begun, none of it measured.
        let (id3, c) = match app.backend {
            kapstone_testkit::TestBackend::Sqlite => (format!("X'{}'", p3.replace('-', "")), format!("X'{}'", course.replace('-', ""))),
            kapstone_testkit::TestBackend::Postgres => (format!("'{p3}'"), format!("'{course}'")),
        };
        let back = |days: i64, table: &str, columns: &[&str], filter: &str| {
            let set: Vec<String> = columns.iter().map(|col| match app.backend {
                kapstone_testkit::TestBackend::Sqlite => format!("{col} = {col} - {}", days * 86_400_000_000),
                kapstone_testkit::TestBackend::Postgres => format!("{col} = {col} - interval '{days} days'"),
            }).collect();
            format!("UPDATE {table} SET {} WHERE {filter}", set.join(", "))
        };
        let occasions = async |app: &TestApp| -> anyhow::Result<(Vec<String>, Value)> {
            let (s, due) = app.get_json(&nurse, &format!("/api/v1/measures/due?patient={p3}&limit=500")).await?;
            anyhow::ensure!(s == 200, "{due}");
            let mut o: Vec<String> = due["items"].as_array().into_iter().flatten()
                .filter_map(|m| m["occasion"].as_str().map(str::to_owned)).collect();
            o.sort();
            o.dedup();
            Ok((o, due))
        };
        // Intake: answers given only after the course's first session are no baseline, so moved a
        // month ahead the whole intake set is owed again (then moved back where they were).
        let forward = app.raw_sql(&back(-30, "questionnaire_responses", &["submitted_at"], &format!("patient_id = {id3}"))).await?;
        anyhow::ensure!(forward > 0, "patient3's answers");
        let (found, due) = occasions(&app).await?;
        anyhow::ensure!(found.iter().any(|f| f == "intake"), "intake not among {found:?}: {due}");
        app.raw_sql(&back(30, "questionnaire_responses", &["submitted_at"], &format!("patient_id = {id3}"))).await?;
        let moved = app.raw_sql(&back(35, "appointments", &["start_at", "end_at"], &format!("course_id = {c}"))).await?;
        anyhow::ensure!(moved > 14, "the course's sessions: {courses}");
        app.raw_sql(&back(60, "questionnaire_responses", &["submitted_at"], &format!("patient_id = {id3}"))).await?;
        // The end-of-induction measures are due before the review, the first ones of maintenance
        // overdue. (Intake is not among them: every instrument was answered once, and any answer
        // before the first dose counts for intake.)
        let (found, due) = occasions(&app).await?;
        for o in ["end_of_induction", "maintenance"] {
            anyhow::ensure!(found.iter().any(|f| f == o), "{o} not among {found:?}: {due}");
        }
        // Today's PHQ-9 answers item 9 with "several days": a C-SSRS is owed before the next
        // integration session.
        let (s, r) = app.post_json(&patient3, "/api/v1/portal/questionnaires",
            json!({"instrument": "phq9", "answers": [1, 1, 1, 1, 1, 1, 1, 1, 1]})).await?;
        anyhow::ensure!(s == 201, "{r}");
        let (found, due) = occasions(&app).await?;
        let integration = due["items"].as_array().into_iter().flatten().find(|m| m["occasion"] == "integration").cloned();
        anyhow::ensure!(integration.as_ref().is_some_and(|i| i["instrument"] == "cssrs_screener" && i["phq9"] == r["id"]),
            "integration not among {found:?}: {due}");
        app.stop().await
    }
}
