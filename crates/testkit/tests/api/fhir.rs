//! FHIR R4 (issue 8): the CapabilityStatement, read and search of every type on the demo clinic,
//! keyset paging through `Bundle.link` next, OperationOutcome for bad input and refusals,
//! AuditEvent for admins only, psychotherapy notes never served, and the Bulk Data export from
//! kick-off to NDJSON download by its requester only.

use std::collections::HashSet;
use std::time::Duration;

use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use serde_json::{Value, json};

const TYPES: [&str; 13] = [
    "Patient",
    "Practitioner",
    "Location",
    "Appointment",
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "MedicationStatement",
    "MedicationAdministration",
    "Observation",
    "Questionnaire",
    "QuestionnaireResponse",
    "Consent",
];

async fn fhir(app: &TestApp, token: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let r = app.get_bearer(token, path).await?;
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(ct == "application/fhir+json", "{path}: content type {ct} ({status} {body})");
    Ok((status, body))
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().map(|e| e.iter().map(|x| x["resource"].clone()).collect()).unwrap_or_default()
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"].as_array()?.iter().find(|l| l["relation"] == "next")?["url"].as_str().map(str::to_owned)
}

/// The path of an absolute link of this server (links are built on its configured public URL).
fn path_of(url: &str) -> String {
    url.find("/fhir/R4").map_or(url, |at| &url[at..]).to_owned()
}

/// An OperationOutcome with one error issue.
fn assert_outcome(status: u16, want: u16, body: &Value, what: &str) {
    assert_eq!(status, want, "{what}: {body}");
    assert_eq!(body["resourceType"], "OperationOutcome", "{what}: {body}");
    assert_eq!(body["issue"][0]["severity"], "error", "{what}: {body}");
}

/// Every resource of a search, following the next links.
async fn all(app: &TestApp, token: &str, first: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut path = Some(first.to_owned());
    let mut pages = 0;
    while let Some(p) = path {
        let (s, b) = fhir(app, token, &p).await?;
        anyhow::ensure!(s == 200, "{p}: {s} {b}");
        out.extend(entries(&b));
        path = next_link(&b).map(|u| path_of(&u));
        pages += 1;
        anyhow::ensure!(pages < 500, "paging does not end");
    }
    Ok(out)
}

async fn second_prescriber(app: &TestApp) -> anyhow::Result<String> {
    let admin = app.token("admin@demo.kapstone.test").await?;
    let r = app
        .client()
        .post(app.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({"email": "prescriber2@demo.kapstone.test", "name": "Second prescriber", "role": "prescriber", "password": PASSWORD}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "second prescriber: {}", r.status());
    app.token("prescriber2@demo.kapstone.test").await
}

/// Polls an export's status until its manifest is ready.
async fn wait_manifest(app: &TestApp, token: &str, status_url: &str) -> anyhow::Result<Value> {
    for _ in 0..300 {
        let r = app.get_bearer(token, &path_of(status_url)).await?;
        match r.status().as_u16() {
            202 => {
                assert!(r.headers().get("x-progress").is_some(), "in progress says how far");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            200 => return Ok(r.json().await?),
            s => anyhow::bail!("export status {s}: {}", r.text().await?),
        }
    }
    anyhow::bail!("the export did not finish")
}

async fn kick_off(app: &TestApp, token: &str, path: &str) -> anyhow::Result<(u16, String, Value)> {
    let r = app
        .client()
        .post(app.url(path))
        .bearer_auth(token)
        .header("accept", "application/fhir+json")
        .header("prefer", "respond-async")
        .send()
        .await?;
    let status = r.status().as_u16();
    let location = r.headers().get("content-location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    Ok((status, location, r.json().await.unwrap_or(Value::Null)))
}

both_backends! {
    async fn metadata_lists_exactly_what_is_served(b) {
        let app = TestApp::spawn(b).await?;
        let r = app.client().get(app.url("/fhir/R4/metadata")).send().await?;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/fhir+json");
        let cs: Value = r.json().await?;
        assert_eq!(cs["resourceType"], "CapabilityStatement");
        assert_eq!(cs["fhirVersion"], "4.0.1");
        let resources = cs["rest"][0]["resource"].as_array().unwrap();
        let mut listed: Vec<&str> = resources.iter().map(|r| r["type"].as_str().unwrap()).collect();
        listed.sort_unstable();
        let mut want: Vec<&str> = TYPES.iter().copied().chain(["AuditEvent"]).collect();
        want.sort_unstable();
        assert_eq!(listed, want);
        let obs = resources.iter().find(|r| r["type"] == "Observation").unwrap();
        let names: Vec<&str> = obs["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["patient", "code", "date", "category", "_count"]);
        let ops: Vec<&str> = cs["rest"][0]["operation"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        assert_eq!(ops, ["export", "group-export"]);
        app.stop().await
    }

    async fn every_type_reads_and_searches_on_the_demo_clinic(b) {
        let app = TestApp::demo(b).await?;
        let token = app.token("prescriber@demo.kapstone.test").await?;
        for ty in TYPES {
            let (s, bundle) = fhir(&app, &token, &format!("/fhir/R4/{ty}?_count=5")).await?;
            assert_eq!(s, 200, "{ty}: {bundle}");
            assert_eq!((bundle["resourceType"].as_str(), bundle["type"].as_str()), (Some("Bundle"), Some("searchset")));
            let found = entries(&bundle);
            assert!(!found.is_empty(), "the demo clinic has {ty} resources");
            assert!(found.len() <= 5, "{ty}: _count is the page size");
            for r in &found {
                assert_eq!(r["resourceType"], ty, "{r}");
                let id = r["id"].as_str().unwrap();
                let (s, read) = fhir(&app, &token, &format!("/fhir/R4/{ty}/{id}")).await?;
                assert_eq!(s, 200, "{ty}/{id}: {read}");
                assert_eq!(&read, r, "a read returns what the search returned");
            }
        }
        // A Patient read is audited as a read of that patient's record.
        let (_, patients) = fhir(&app, &token, "/fhir/R4/Patient?_count=1").await?;
        let pid = entries(&patients)[0]["id"].as_str().unwrap().to_owned();
        let before = app.count(&format!("audit_events WHERE action = 'patient.read' AND patient_id = '{pid}'")).await?;
        fhir(&app, &token, &format!("/fhir/R4/Patient/{pid}")).await?;
        let after = app.count(&format!("audit_events WHERE action = 'patient.read' AND patient_id = '{pid}'")).await?;
        assert_eq!(after, before + 1);
        assert!(app.count("audit_events WHERE action = 'fhir.read'").await? >= 12, "searches and reads are audited");
        // Identifier and birthdate searches find the patient.
        let p = &entries(&patients)[0];
        let mrn = p["identifier"][0]["value"].as_str().unwrap();
        let dob = p["birthDate"].as_str().unwrap();
        let (_, by) = fhir(&app, &token, &format!("/fhir/R4/Patient?identifier={mrn}&birthdate={dob}")).await?;
        assert_eq!(entries(&by).iter().map(|e| e["id"].clone()).collect::<Vec<_>>(), vec![p["id"].clone()]);
        app.stop().await
    }

    async fn observations_follow_the_vital_signs_profile_and_search_by_patient_and_code(b) {
        let app = TestApp::demo(b).await?;
        let token = app.token("nurse@demo.kapstone.test").await?;
        let (_, one) = fhir(&app, &token, "/fhir/R4/Observation?code=8480-6&_count=1").await?;
        let bp = entries(&one).into_iter().next().expect("a blood pressure in the demo");
        let patient = bp["subject"]["reference"].as_str().unwrap().trim_start_matches("Patient/").to_owned();
        let (s, bundle) = fhir(&app, &token, &format!("/fhir/R4/Observation?patient={patient}&code=8480-6")).await?;
        assert_eq!(s, 200);
        let found = entries(&bundle);
        assert!(!found.is_empty());
        for o in &found {
            assert_eq!(o["subject"]["reference"], format!("Patient/{patient}"));
            assert_eq!(o["code"]["coding"][0]["code"], "85354-9", "the blood pressure panel");
            assert_eq!(o["category"][0]["coding"][0]["code"], "vital-signs");
            assert_eq!(o["meta"]["profile"][0], "http://hl7.org/fhir/StructureDefinition/bp");
            let sys = o["component"].as_array().unwrap().iter().find(|c| c["code"]["coding"][0]["code"] == "8480-6").unwrap();
            assert_eq!(sys["valueQuantity"]["code"], "mm[Hg]");
            assert_eq!(sys["valueQuantity"]["system"], "http://unitsofmeasure.org");
            assert!(o["effectiveDateTime"].is_string());
        }
        // System|code, other codes, categories and dates.
        let (_, same) = fhir(&app, &token, &format!("/fhir/R4/Observation?patient=Patient/{patient}&code=http://loinc.org|8480-6")).await?;
        assert_eq!(entries(&same).len(), found.len());
        let (_, none) = fhir(&app, &token, &format!("/fhir/R4/Observation?patient={patient}&code=http://snomed.info/sct|8480-6")).await?;
        assert!(entries(&none).is_empty(), "the system must match too");
        let (_, future) = fhir(&app, &token, &format!("/fhir/R4/Observation?patient={patient}&date=ge2100-01-01")).await?;
        assert!(entries(&future).is_empty());
        let (_, past) = fhir(&app, &token, &format!("/fhir/R4/Observation?patient={patient}&code=8480-6&date=le2100-01-01&date=ge2000-01-01")).await?;
        assert_eq!(entries(&past).len(), found.len());
        let (_, surveys) = fhir(&app, &token, "/fhir/R4/Observation?category=survey&_count=20").await?;
        let surveys = entries(&surveys);
        assert!(!surveys.is_empty(), "PHQ-9 and GAD-7 totals");
        for o in &surveys {
            let code = o["code"]["coding"][0]["code"].as_str().unwrap();
            assert!(["44261-6", "70274-6", "93374-7"].contains(&code), "{o}");
            assert!(o["derivedFrom"][0]["reference"].as_str().unwrap().starts_with("QuestionnaireResponse/"));
        }
        // Administrations carry product, lot, SNOMED route and dose in mg.
        let (_, admins) = fhir(&app, &token, "/fhir/R4/MedicationAdministration?_count=1").await?;
        let a = &entries(&admins)[0];
        assert!(a["contained"][0]["batch"]["lotNumber"].is_string(), "{a}");
        assert_eq!(a["dosage"]["route"]["coding"][0]["system"], "http://snomed.info/sct");
        assert_eq!(a["dosage"]["dose"]["code"], "mg");
        app.stop().await
    }

    async fn paging_follows_next_links_without_gaps_or_repeats(b) {
        let app = TestApp::demo(b).await?;
        let token = app.token("prescriber@demo.kapstone.test").await?;
        for ty in ["Observation", "Patient", "Condition"] {
            let whole = all(&app, &token, &format!("/fhir/R4/{ty}?_count=1000")).await?;
            let paged = all(&app, &token, &format!("/fhir/R4/{ty}?_count=3")).await?;
            let ids: Vec<String> = paged.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
            let unique: HashSet<&String> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "{ty}: no resource twice");
            assert_eq!(paged, whole, "{ty}: the pages add up to the whole, in order");
            assert!(whole.len() > 3, "{ty}: more than one page");
        }
        // The next link keeps the other parameters.
        let (_, first) = fhir(&app, &token, "/fhir/R4/Observation?category=vital-signs&_count=2").await?;
        let next = next_link(&first).unwrap();
        assert!(next.contains("category=vital-signs") && next.contains("_count=2") && next.contains("_cursor="), "{next}");
        app.stop().await
    }

    async fn bad_input_and_refusals_are_operation_outcomes(b) {
        let app = TestApp::demo(b).await?;
        let token = app.token("prescriber@demo.kapstone.test").await?;
        let (s, o) = fhir(&app, &token, "/fhir/R4/Medication").await?;
        assert_outcome(s, 404, &o, "unknown type");
        assert!(o["issue"][0]["diagnostics"].as_str().unwrap().contains("unsupported resource type"));
        let (s, o) = fhir(&app, &token, "/fhir/R4/Patient/1/_history/2").await?;
        assert_outcome(s, 404, &o, "a deeper path");
        let r = app.client().delete(app.url("/fhir/R4/Patient")).bearer_auth(&token).send().await?;
        let (status, allow) = (r.status().as_u16(), r.headers().get("allow").cloned());
        assert_eq!(r.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/fhir+json"));
        assert_outcome(status, 405, &r.json().await?, "a method the type does not take");
        assert!(allow.is_some_and(|a| a.to_str().is_ok_and(|a| a.contains("GET"))), "Allow is kept");
        let (s, o) = fhir(&app, &token, "/fhir/R4/Observation?name=x").await?;
        assert_outcome(s, 400, &o, "unsupported parameter");
        assert_eq!(o["issue"][0]["expression"][0], "name");
        for (path, param) in [
            ("/fhir/R4/Observation?date=2026-13-01", "date"),
            ("/fhir/R4/Observation?date=sa2026-01-01", "date"),
            ("/fhir/R4/Observation?patient=not-an-id", "patient"),
            ("/fhir/R4/Patient?_count=0", "_count"),
            ("/fhir/R4/Patient?_cursor=zz", "_cursor"),
            ("/fhir/R4/Patient?birthdate=1990-02-30", "birthdate"),
            ("/fhir/R4/Patient/not-a-patient-id", "id"),
            ("/fhir/R4/Observation/x.y.z.w", "id"),
            // A NUL would reach the MRN query as text: PostgreSQL refuses it (was a 500 there).
            ("/fhir/R4/Patient?identifier=a%00b", "identifier"),
            ("/fhir/R4/Observation?code=http://loinc.org|%00", "code"),
        ] {
            let (s, o) = fhir(&app, &token, path).await?;
            assert_outcome(s, 400, &o, path);
            assert_eq!(o["issue"][0]["expression"][0], param, "{path}");
        }
        let (s, o) = fhir(&app, &token, "/fhir/R4/Patient/01a21565-0000-7000-8000-000000000000").await?;
        assert_outcome(s, 404, &o, "unknown patient");
        // Not signed in: 401; without the permission: 403; both as OperationOutcome.
        let r = app.client().get(app.url("/fhir/R4/Patient")).send().await?;
        assert_eq!(r.headers()["content-type"], "application/fhir+json");
        let (s, o) = (r.status().as_u16(), r.json::<Value>().await?);
        assert_outcome(s, 401, &o, "anonymous");
        let front = app.token("frontdesk@demo.kapstone.test").await?;
        let (s, o) = fhir(&app, &front, "/fhir/R4/Observation").await?;
        assert_outcome(s, 403, &o, "front desk reads no clinical record");
        let (s, _) = fhir(&app, &front, "/fhir/R4/Appointment?_count=1").await?;
        assert_eq!(s, 200, "the front desk reads the schedule");
        let patient = app.token("patient1@demo.kapstone.test").await?;
        let (s, o) = fhir(&app, &patient, "/fhir/R4/Patient").await?;
        assert_outcome(s, 403, &o, "the portal is not a FHIR client");
        app.stop().await
    }

    async fn audit_events_are_for_admins_only(b) {
        let app = TestApp::demo(b).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let (_, patients) = fhir(&app, &prescriber, "/fhir/R4/Patient?_count=1").await?;
        let pid = entries(&patients)[0]["id"].as_str().unwrap().to_owned();
        fhir(&app, &prescriber, &format!("/fhir/R4/Patient/{pid}")).await?;
        let (s, o) = fhir(&app, &prescriber, "/fhir/R4/AuditEvent").await?;
        assert_outcome(s, 403, &o, "prescribers do not read the audit log");
        let events = all(&app, &admin, &format!("/fhir/R4/AuditEvent?patient={pid}&_count=50")).await?;
        assert!(events.iter().any(|e| e["type"]["code"] == "patient.read"), "the FHIR read is in the log");
        for e in &events {
            assert_eq!(e["resourceType"], "AuditEvent");
            assert!(e["entity"].as_array().unwrap().iter().any(|x| x["what"]["reference"] == format!("Patient/{pid}")));
        }
        let id = events[0]["id"].as_str().unwrap();
        let (s, one) = fhir(&app, &admin, &format!("/fhir/R4/AuditEvent/{id}")).await?;
        assert_eq!((s, &one), (200, &events[0]));
        app.stop().await
    }

    async fn psychotherapy_notes_are_never_served(b) {
        const SECRET: &str = "PSYNOTE-7f3a: the patient spoke about the lake house";
        let app = TestApp::demo(b).await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let (_, enc) = fhir(&app, &prescriber, "/fhir/R4/Encounter?_count=1").await?;
        let session = entries(&enc)[0]["id"].as_str().unwrap().to_owned();
        let r = app
            .client()
            .post(app.url(&format!("/api/v1/sessions/{session}/psychotherapy-notes")))
            .bearer_auth(&prescriber)
            .json(&json!({ "text": SECRET }))
            .send()
            .await?;
        assert_eq!(r.status(), 201, "{}", r.text().await?);
        for ty in TYPES {
            let body = app.get_bearer(&prescriber, &format!("/fhir/R4/{ty}?_count=1000")).await?.text().await?;
            assert!(!body.contains("PSYNOTE-7f3a"), "{ty} serves no psychotherapy note");
        }
        let (s, status_url, _) = kick_off(&app, &prescriber, "/fhir/R4/$export").await?;
        assert_eq!(s, 202);
        let manifest = wait_manifest(&app, &prescriber, &status_url).await?;
        for f in manifest["output"].as_array().unwrap() {
            let body = app.get_bearer(&prescriber, &path_of(f["url"].as_str().unwrap())).await?.text().await?;
            assert!(!body.contains("PSYNOTE-7f3a"), "{} exports no psychotherapy note", f["type"]);
        }
        app.stop().await
    }

    async fn bulk_export_runs_once_and_serves_ndjson_to_its_requester_only(b) {
        let app = TestApp::demo(b).await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let other = second_prescriber(&app).await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        // Refusals: a role without the permission, GET without Prefer, a type not exportable.
        let (s, _, o) = kick_off(&app, &admin, "/fhir/R4/$export").await?;
        assert_outcome(s, 403, &o, "admins do not export the clinical record");
        let r = app.get_bearer(&prescriber, "/fhir/R4/$export").await?;
        assert_eq!(r.status(), 400, "GET needs Prefer: respond-async");
        let (s, _, o) = kick_off(&app, &prescriber, "/fhir/R4/$export?_type=AuditEvent").await?;
        assert_outcome(s, 400, &o, "AuditEvent is not exported");
        let (s, _, o) = kick_off(&app, &prescriber, "/fhir/R4/Patient/$export?_type=Practitioner").await?;
        assert_outcome(s, 400, &o, "Practitioner is outside the patient compartment");
        let (s, _, o) = kick_off(&app, &prescriber, "/fhir/R4/$export?_since=2020-01-01").await?;
        assert_outcome(s, 400, &o, "_since is not supported");

        // The system export: 202 with Content-Location, then the manifest.
        let before = app.count("fhir_export_jobs").await?;
        let (s, status_url, _) = kick_off(&app, &prescriber, "/fhir/R4/$export").await?;
        assert_eq!(s, 202);
        assert!(status_url.starts_with("http://") && status_url.contains("/fhir/R4/$export-status/"), "{status_url}");
        assert_eq!(app.count("fhir_export_jobs").await?, before + 1);
        // A second runner racing the first claims nothing twice.
        kapstone_web::fhir::export::run_pending(&app.state).await;
        let manifest = wait_manifest(&app, &prescriber, &status_url).await?;
        assert_eq!(manifest["requiresAccessToken"], true);
        assert!(manifest["request"].as_str().unwrap().ends_with("/fhir/R4/$export"));
        let job = status_url.rsplit('/').next().unwrap();
        assert_eq!(app.count(&format!("audit_events WHERE action = 'fhir.export_complete' AND entity_id = '{job}'")).await?, 1);
        let output = manifest["output"].as_array().unwrap();
        let types: Vec<&str> = output.iter().map(|o| o["type"].as_str().unwrap()).collect();
        for ty in TYPES {
            assert!(types.contains(&ty), "{ty} exported: {types:?}");
        }
        let mut patients = 0;
        for f in output {
            let url = path_of(f["url"].as_str().unwrap());
            let r = app.get_bearer(&prescriber, &url).await?;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/fhir+ndjson");
            let text = r.text().await?;
            let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert_eq!(lines.len() as u64, f["count"].as_u64().unwrap(), "{}", f["type"]);
            assert!(lines.iter().all(|r| r["resourceType"] == f["type"]), "{}", f["type"]);
            if f["type"] == "Patient" {
                patients = lines.len();
            }
            // Nobody else: not another prescriber, not anonymous.
            assert_eq!(app.get_bearer(&other, &url).await?.status(), 404);
            assert_eq!(app.client().get(app.url(&url)).send().await?.status(), 401);
        }
        let (_, all_patients) = fhir(&app, &prescriber, "/fhir/R4/Patient?_count=1000").await?;
        assert_eq!(patients, entries(&all_patients).len(), "every patient exported");
        assert_eq!(app.get_bearer(&other, &path_of(&status_url)).await?.status(), 404);
        assert!(app.count("audit_events WHERE action = 'fhir.export_download'").await? >= 13);

        // Patient level and Group (a location) level.
        let (s, url, _) = kick_off(&app, &prescriber, "/fhir/R4/Patient/$export?_type=Patient,Observation").await?;
        assert_eq!(s, 202);
        let m = wait_manifest(&app, &prescriber, &url).await?;
        let types: Vec<&str> = m["output"].as_array().unwrap().iter().map(|o| o["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["Patient", "Observation"]);
        let (_, locations) = fhir(&app, &prescriber, "/fhir/R4/Location").await?;
        let location = entries(&locations)[0]["id"].as_str().unwrap().to_owned();
        let (s, url, _) = kick_off(&app, &prescriber, &format!("/fhir/R4/Group/{location}/$export")).await?;
        assert_eq!(s, 202);
        let m = wait_manifest(&app, &prescriber, &url).await?;
        let group_patients = m["output"].as_array().unwrap().iter().find(|o| o["type"] == "Patient").map_or(0, |o| o["count"].as_u64().unwrap());
        assert!(group_patients > 0 && group_patients as usize <= patients, "{m}");
        let (s, _, o) = kick_off(&app, &prescriber, "/fhir/R4/Group/01a21565-0000-7000-8000-000000000000/$export").await?;
        assert_outcome(s, 404, &o, "an unknown group");
        app.stop().await
    }
}
