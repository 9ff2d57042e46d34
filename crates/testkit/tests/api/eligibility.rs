//! Consultation, eligibility findings, signed decisions and the pathway over the JSON API
//! (KAP-SPEC 2.1 stages 1–3, section 3). Every test registers its own patients.

use kapstone_domain::Role;
use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use kapstone_web::app::accounts::{NewAccountInput, Operator, create_account};
use kapstone_web::app::demo::create_clinic;
use reqwest::Method;
use serde_json::{Value, json};

const PRESCRIBER: &str = "prescriber@demo.kapstone.test";
const NURSE: &str = "nurse@demo.kapstone.test";

/// Sends a JSON request with a bearer token; returns the status and the body (Null if none).
async fn send(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
    if_match: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = app.client().request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    if let Some(v) = if_match {
        req = req.header("If-Match", v);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn get(app: &TestApp, token: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    send(app, token, Method::GET, path, None, None).await
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    send(app, token, Method::POST, path, Some(body), None).await
}

/// Registers a new adult patient (born 1986); returns (id, mrn).
async fn register(app: &TestApp, token: &str, family: &str, sex: &str) -> anyhow::Result<(String, String)> {
    register_born(app, token, family, sex, "1986-03-14").await
}

async fn register_born(
    app: &TestApp,
    token: &str,
    family: &str,
    sex: &str,
    born: &str,
) -> anyhow::Result<(String, String)> {
    let body = json!({"given_name": "Eli", "family_name": family, "birth_date": born, "sex_at_birth": sex});
    let (s, r) = post(app, token, "/api/v1/patients", &body).await?;
    anyhow::ensure!(s == 201, "registering {family}: {s} {r}");
    Ok((r["id"].as_str().unwrap().to_owned(), r["mrn"].as_str().unwrap().to_owned()))
}

/// Rows of `table` for the patient with this MRN; `extra` adds conditions (`event = 'hold'`).
/// Counts are per patient because the demo clinic has records of its own.
async fn rows_of(app: &TestApp, table: &str, mrn: &str, extra: &str) -> anyhow::Result<i64> {
    let and = if extra.is_empty() { String::new() } else { format!(" AND {extra}") };
    app.count(&format!("{table} WHERE patient_id = (SELECT id FROM patients WHERE mrn = '{mrn}'){and}")).await
}

/// Audit events about the patient with this id; `extra` adds conditions.
async fn audit_of(app: &TestApp, id: &str, extra: &str) -> anyhow::Result<i64> {
    app.count(&format!("audit_events WHERE patient_id = '{id}' AND {extra}")).await
}

/// A complete consultation with every eligibility data element recorded and nothing found.
pub(crate) fn clear_consultation() -> Value {
    let trial = |drug: &str, outcome: &str, weeks: u16| {
        json!({
            "drug": drug, "max_daily_dose_mg": 150.0, "reached_minimum_labelled_dose": true,
            "weeks_at_or_above_min_dose": weeks, "adherence": "good", "outcome": outcome, "current_episode": true,
        })
    };
    json!({
        "mental_health_history": "Recurrent major depression since 2015; two hospital admissions.",
        "current_symptoms": "Low mood, anhedonia and early waking for five months.",
        "treatment_goals": "Return to work; fewer days in bed.",
        "medical_history_notes": "No significant medical history.",
        "diagnoses": [{"code": "F33.2"}],
        "conditions": {
            "aneurysmal_vascular_disease": false,
            "arteriovenous_malformation": false,
            "intracerebral_hemorrhage_history": false,
            "ketamine_hypersensitivity": false,
            "pressure_risk_condition": "none",
            "uncontrolled_hypertension": false,
            "hypertensive_encephalopathy_history": false,
            "raised_intracranial_pressure": false,
            "intraocular_risk": "none",
            "preeclampsia_or_eclampsia": false,
            "psychotic_disorder": "none",
            "current_mania": false,
            "bipolar_currently_depressed": false,
            "substance_use_disorder": "none",
            "alcohol_use": false,
            "hepatic": "none",
            "uncontrolled_hyperthyroidism": false,
            "cystitis_or_urinary_symptoms": false,
            "serious_reaction_to_ketamine": false,
            "seizure_disorder": false,
            "unable_to_consent": false,
        },
        "medications_reconciled": true,
        "medications": [],
        "allergies": [{"substance": "penicillin", "reaction": "rash", "severity": "mild"}],
        "antidepressant_trials": [trial("sertraline", "non_response", 8), trial("venlafaxine", "partial", 10)],
        "pregnancy_status": "not_pregnant",
        "breastfeeding": false,
        "vitals": {
            "systolic_mmhg": 120, "diastolic_mmhg": 80, "heart_rate_bpm": 72,
            "spo2_percent": 98, "weight_kg": 70.5, "height_cm": 172,
        },
    })
}

/// `body` with the value at `pointer` (e.g. `/vitals/systolic_mmhg`) set: replaced, or added
/// to its object when absent.
pub(crate) fn with(mut body: Value, pointer: &str, value: Value) -> Value {
    if let Some(slot) = body.pointer_mut(pointer) {
        *slot = value;
        return body;
    }
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let object = body.pointer_mut(parent).and_then(Value::as_object_mut);
    object.unwrap_or_else(|| panic!("no {parent} in the body")).insert(key.to_owned(), value);
    body
}

async fn save(app: &TestApp, token: &str, id: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    send(app, token, Method::PUT, &format!("/api/v1/patients/{id}/consultation"), Some(body), None).await
}

/// Baseline PHQ-9 and GAD-7 (all 0) and a C-SSRS screener with no ideation (the consultation
/// exit gate's instruments).
pub(crate) async fn baseline_instruments(app: &TestApp, token: &str, id: &str) -> anyhow::Result<()> {
    let path = format!("/api/v1/patients/{id}/questionnaires");
    for body in [
        json!({"instrument": "phq9", "answers": [0, 0, 0, 0, 0, 0, 0, 0, 0]}),
        json!({"instrument": "gad7", "answers": [0, 0, 0, 0, 0, 0, 0]}),
        json!({"instrument": "cssrs_screener", "answers": [false, false, null, null, null, false, null]}),
    ] {
        let (s, r) = post(app, token, &path, &body).await?;
        anyhow::ensure!(s == 201, "{body} -> {s} {r}");
    }
    Ok(())
}

async fn evaluation(app: &TestApp, token: &str, id: &str) -> anyhow::Result<Value> {
    let (s, e) = get(app, token, &format!("/api/v1/patients/{id}/eligibility")).await?;
    anyhow::ensure!(s == 200, "eligibility: {s} {e}");
    Ok(e)
}

fn finding<'a>(e: &'a Value, rule: &str) -> Option<&'a Value> {
    e["findings"].as_array()?.iter().find(|f| f["rule_id"] == rule)
}

fn rule_ids(e: &Value) -> Vec<String> {
    e["findings"]
        .as_array()
        .map_or_else(Vec::new, |a| a.iter().map(|f| f["rule_id"].as_str().unwrap_or_default().to_owned()).collect())
}

fn iv_course() -> Value {
    json!([{"route": "intravenous_racemic", "course_template": "IV-6"}])
}

/// The stage the chart page shows (it reads the consultation and the decision in force with the
/// patient, apart from the pathway endpoint's reads).
async fn chart_stage(app: &TestApp, web: &reqwest::Client, id: &str) -> anyhow::Result<String> {
    let page = web.get(app.url(&format!("/patients/{id}"))).send().await?.text().await?;
    let at = page.find("<span class=\"stage\">").ok_or_else(|| anyhow::anyhow!("no stage in the chart: {page}"))?;
    let rest = &page[at + "<span class=\"stage\">".len()..];
    Ok(rest[..rest.find('<').unwrap_or(0)].to_owned())
}

async fn stage(app: &TestApp, token: &str, id: &str) -> anyhow::Result<String> {
    let (s, p) = get(app, token, &format!("/api/v1/patients/{id}/pathway")).await?;
    anyhow::ensure!(s == 200, "pathway: {s} {p}");
    Ok(p["stage"].as_str().unwrap_or_default().to_owned())
}

/// Sends the same request `n` times at once; returns the statuses, sorted.
async fn at_once(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: &Value,
    n: usize,
) -> anyhow::Result<Vec<u16>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let req = app.client().request(method.clone(), app.url(path)).bearer_auth(token).json(body);
        set.spawn(async move { req.send().await.map(|r| r.status().as_u16()) });
    }
    let mut statuses = Vec::new();
    while let Some(done) = set.join_next().await {
        statuses.push(done??);
    }
    statuses.sort_unstable();
    Ok(statuses)
}

both_backends! {
    async fn the_rule_set_lists_every_rule_with_severity_and_reads_to_staff_only(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let (s, set) = get(&app, &nurse, "/api/v1/eligibility/rules").await?;
        assert_eq!(s, 200, "{set}");
        assert!(set["version"].as_str().is_some_and(|v| !v.is_empty()));
        let rules = set["rules"].as_array().unwrap();
        let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
        let mut expected: Vec<String> = (1..=29).map(|n| format!("ELIG-{n:03}")).collect();
        expected.extend((1..=12).map(|n| format!("DDI-{n:03}")));
        assert_eq!(ids, expected, "ELIG-001..029 then DDI-001..012, nothing else");
        let by_id = |id: &str| rules.iter().find(|r| r["id"] == id).unwrap();
        for (id, severity, scope) in [
            ("ELIG-011", "exclude", "all"),
            ("ELIG-007", "physician_review", "all"),
            ("ELIG-005", "exclude", "all"),
            ("ELIG-020", "precaution", "esketamine"),
            ("ELIG-026", "exclude", "racemic"),
            ("DDI-001", "physician_review", "all"),
            ("DDI-008", "exclude", "racemic"),
            ("DDI-012", "info", "all"),
        ] {
            let r = by_id(id);
            assert_eq!((r["severity"].as_str(), r["scope"].as_str()), (Some(severity), Some(scope)), "{id}: {r}");
        }
        assert_eq!(by_id("ELIG-005")["cases"], json!({"recent": "exclude", "remote": "physician_review"}));
        assert_eq!(by_id("ELIG-007")["params"], json!({"systolic_above": 140.0, "diastolic_above": 90.0}));
        assert!(by_id("ELIG-011")["reads"].as_array().unwrap().contains(&json!("pregnancy_status")));
        assert!(by_id("ELIG-007")["reads"].as_array().unwrap().contains(&json!("vitals.systolic_mmhg")));
        for r in rules {
            assert!(r["reads"].as_array().is_some_and(|a| !a.is_empty()), "every rule names what it reads: {r}");
            assert!(r["rationale"].as_str().is_some_and(|t| !t.is_empty()) && r["source"].is_string(), "{r}");
        }
        let (s, codes) = get(&app, &nurse, "/api/v1/codes/icd10cm").await?;
        assert_eq!(s, 200);
        assert!(codes["codes"].as_array().unwrap().iter().any(|c| c["code"] == "F33.2"), "{codes}");

        // A patient account (for a patient registered here) is refused; so is no token.
        let (id, mrn) = register(&app, &nurse, "Rulesreader", "female").await?;
        let admin = app.token("admin@demo.kapstone.test").await?;
        let account = json!({"email": "rules.reader@example.test", "name": "Eli Rulesreader", "role": "patient",
            "password": "a long enough secret 2026", "patient_mrn": mrn});
        let (s, r) = post(&app, &admin, "/api/v1/users", &account).await?;
        assert_eq!(s, 201, "{r}");
        let login = app.api_login("rules.reader@example.test", "a long enough secret 2026").await?;
        assert_eq!(login.status(), 200);
        let patient = login.json::<Value>().await?["token"].as_str().unwrap().to_owned();
        assert_eq!(get(&app, &patient, "/api/v1/eligibility/rules").await?.0, 403);
        assert_eq!(get(&app, &patient, "/api/v1/codes/icd10cm").await?.0, 403);
        assert_eq!(get(&app, &patient, &format!("/api/v1/patients/{id}/eligibility")).await?.0, 403, "not even their own");
        assert_eq!(app.client().get(app.url("/api/v1/eligibility/rules")).send().await?.status(), 401);
        // Front desk reads reference content but not the clinical record.
        let frontdesk = app.token("frontdesk@demo.kapstone.test").await?;
        assert_eq!(get(&app, &frontdesk, "/api/v1/eligibility/rules").await?.0, 200);
        assert_eq!(get(&app, &frontdesk, &format!("/api/v1/patients/{id}/eligibility")).await?.0, 403);
        assert_eq!(get(&app, &frontdesk, &format!("/api/v1/patients/{id}/consultation")).await?.0, 403);
        app.stop().await
    }

    async fn a_clear_complete_consultation_is_eligible_and_missing_data_is_never_a_pass(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let (id, _) = register(&app, &nurse, "Clearcase", "female").await?;

        // Before any consultation: every rule that reads the consultation reports missing data.
        let (s, r) = get(&app, &nurse, &format!("/api/v1/patients/{id}/consultation")).await?;
        assert_eq!(s, 404, "{r}");
        let e = evaluation(&app, &nurse, &id).await?;
        assert_eq!(e["outcome"], "needs_review", "{e}");
        assert!(e["consultation_version"].is_null() && e["decision"].is_null());
        let preg = finding(&e, "ELIG-011").expect("ELIG-011 before a consultation");
        assert_eq!((preg["severity"].as_str(), preg["missing"].clone()), (Some("missing_data"), json!(["pregnancy_status"])));
        assert!(preg["detail"].as_str().unwrap().contains("pregnancy_status"), "{preg}");
        let cssrs = finding(&e, "ELIG-024").unwrap();
        assert_eq!((cssrs["severity"].as_str(), cssrs["missing"].clone()),
            (Some("missing_data"), json!(["questionnaires.cssrs_screener"])));
        let bp = finding(&e, "ELIG-007").unwrap();
        assert_eq!((bp["severity"].as_str(), bp["missing"].clone()), (Some("missing_data"), json!(["vitals.systolic_mmhg"])));
        assert_eq!(finding(&e, "DDI-003").unwrap()["missing"], json!(["medications_reconciled"]));
        assert!(finding(&e, "ELIG-014").is_none() && finding(&e, "ELIG-028").is_none(), "age is known: an adult under 65");
        let missing = e["findings"].as_array().unwrap().iter().filter(|f| f["severity"] == "missing_data").count();
        assert!(missing >= 30, "{missing} missing-data findings");

        // A complete, clear consultation and a C-SSRS screener with no ideation.
        let (s, r) = save(&app, &nurse, &id, &clear_consultation()).await?;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["version"], 1);
        assert_eq!(r["data"]["vitals"]["systolic_mmhg"], 120.0);
        assert_eq!(r["diagnoses"][0]["code"], "F33.2");
        let e = evaluation(&app, &nurse, &id).await?;
        assert_eq!(rule_ids(&e), vec!["ELIG-024"], "only the screener is missing: {e}");
        assert_eq!(e["outcome"], "needs_review");
        let (s, r) = post(&app, &nurse, &format!("/api/v1/patients/{id}/questionnaires"),
            &json!({"instrument": "cssrs_screener", "answers": [false, false, null, null, null, false, null]})).await?;
        assert_eq!(s, 201, "{r}");
        let e = evaluation(&app, &nurse, &id).await?;
        assert_eq!(e["outcome"], "eligible", "{e}");
        assert_eq!(e["outcome_by_product"], json!({"esketamine": "eligible", "racemic": "eligible"}));
        assert_eq!(e["findings"], json!([]));
        assert_eq!(e["consultation_version"], 1);
        let sha = e["input_sha256"].as_str().unwrap();
        assert!(sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()), "{sha}");
        assert_eq!(evaluation(&app, &nurse, &id).await?["input_sha256"], sha, "the same record hashes the same");

        // An antidepressant on the list is informational only (DDI-012): still eligible.
        let mut body = clear_consultation();
        body["medications"] = json!([{"name": "sertraline", "drug_class": "antidepressant", "daily_dose_mg": 150}]);
        assert_eq!(save(&app, &nurse, &id, &body).await?.0, 200);
        let e = evaluation(&app, &nurse, &id).await?;
        assert_eq!(rule_ids(&e), vec!["DDI-012"]);
        assert_eq!((finding(&e, "DDI-012").unwrap()["severity"].as_str(), e["outcome"].as_str()), (Some("info"), Some("eligible")));
        assert_ne!(e["input_sha256"], sha, "a changed record changes the hash");

        // The chart's one statement finds the same newest version (2) as the consultation's own read.
        let patient: kapstone_domain::PatientId = id.parse()?;
        let (s, me) = get(&app, &nurse, "/api/v1/auth/me").await?;
        assert_eq!(s, 200, "{me}");
        let clinic: kapstone_domain::ClinicId = me["clinic_id"].as_str().unwrap_or_default().parse()?;
        let parts = kapstone_store::patients::ChartParts { safety_alerts: true, dosing_sessions: true, appointments: true };
        let head = kapstone_store::patients::chart_head(&app.db, clinic, patient, parts)
            .await?
            .expect("the patient's chart");
        let on_chart = head.consultation().expect("a consultation on the chart");
        let newest = kapstone_store::eligibility::latest_consultation(&app.db, patient).await?.expect("a consultation");
        assert_eq!((on_chart.version, on_chart.id, &on_chart.body), (2, newest.id, &newest.body));
        assert!(on_chart.body.contains("\"drug_class\":\"antidepressant\""), "the second version's medication list");
        app.stop().await
    }

    async fn impossible_values_are_refused_naming_the_field_and_nothing_is_stored(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let (id, mrn) = register(&app, &nurse, "Rangecheck", "female").await?;
        assert_eq!(save(&app, &nurse, &id, &clear_consultation()).await?.0, 200);
        let stored = rows_of(&app, "consultations", &mrn, "").await?;
        let c = clear_consultation;
        let cases = [
            (with(c(), "/vitals/systolic_mmhg", json!(20)), 422, "vitals.systolic_mmhg"),
            (with(c(), "/vitals/systolic_mmhg", json!(400)), 422, "vitals.systolic_mmhg"),
            (with(c(), "/vitals/diastolic_mmhg", json!(null)), 422, "vitals.diastolic_mmhg"),
            (with(c(), "/vitals/heart_rate_bpm", json!(72.5)), 422, "vitals.heart_rate_bpm"),
            (with(c(), "/vitals/weight_kg", json!(0)), 422, "vitals.weight_kg"),
            (with(c(), "/diagnoses", json!([{"code": "Q99.999"}])), 422, "diagnoses[0].code"),
            (with(c(), "/diagnoses", json!([{"code": "F33.2"}, {"code": "f33.2"}])), 422, "diagnoses[1].code"),
            (with(c(), "/medications", json!([{"name": "sertraline", "drug_class": "antidepressant", "daily_dose_mg": -50}])),
                422, "medications[0].daily_dose_mg"),
            (with(c(), "/medications", json!([{"name": "sertraline", "drug_class": "antidepressant", "diazepam_equivalent_mg": 5}])),
                422, "medications[0].diazepam_equivalent_mg"),
            (with(c(), "/antidepressant_trials/1/drug", json!("  ")), 422, "antidepressant_trials[1].drug"),
            (with(c(), "/conditions/preeclampsia_or_eclampsia", json!(true)), 422, "conditions.preeclampsia_or_eclampsia"),
            (with(c(), "/pregnancy_status", json!("maybe")), 400, "pregnancy_status"),
            (with(c(), "/conditions/psychotic_disorder", json!("sometimes")), 400, "conditions.psychotic_disorder"),
            (with(c(), "/vitals/systolic_mmhg", json!("120")), 400, "vitals.systolic_mmhg"),
            (with(c(), "/medications", json!([{"name": "x", "drug_class": "herbal"}])), 400, "medications[0].drug_class"),
            (with(c(), "/favourite_colour", json!("blue")), 400, "favourite_colour"),
            (with(c(), "/conditions/made_up_condition", json!(true)), 400, "conditions.made_up_condition"),
        ];
        for (body, status, field) in cases {
            let (s, r) = save(&app, &nurse, &id, &body).await?;
            assert_eq!((s, r["error"]["field"].as_str()), (status, Some(field)), "{field}: {r}");
            assert_eq!(rows_of(&app, "consultations", &mrn, "").await?, stored, "{field}: nothing stored");
        }
        let (s, r) = get(&app, &nurse, &format!("/api/v1/patients/{id}/consultation")).await?;
        assert_eq!((s, r["version"].as_i64(), r["data"]["vitals"]["weight_kg"].as_f64()), (200, Some(1), Some(70.5)));
        // An unknown patient is a 404, not a new record.
        let (s, _) = save(&app, &nurse, "01a21565-0000-7000-8000-000000000000", &clear_consultation()).await?;
        assert_eq!(s, 404);
        assert_eq!(rows_of(&app, "consultations", &mrn, "").await?, stored);
        app.stop().await
    }

    async fn saves_are_versions_and_a_stale_if_match_is_a_conflict(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let therapist = app.token("therapist@demo.kapstone.test").await?;
        let (id, mrn) = register(&app, &nurse, "Versioned", "male").await?;
        let path = format!("/api/v1/patients/{id}/consultation");
        let put = |token: &str, body: Value, tag: Option<&'static str>| {
            let (token, path) = (token.to_owned(), path.clone());
            let app = &app;
            async move { send(app, &token, Method::PUT, &path, Some(&body), tag).await }
        };
        // Nothing saved yet: a client claiming to have edited version 1 is stale.
        assert_eq!(put(&nurse, clear_consultation(), Some("\"1\"")).await?.0, 409);
        assert_eq!(rows_of(&app, "consultations", &mrn, "").await?, 0);
        let (s, r) = put(&nurse, clear_consultation(), Some("\"0\"")).await?;
        assert_eq!((s, r["version"].as_i64()), (200, Some(1)), "{r}");
        let (s, r) = put(&therapist, with(clear_consultation(), "/vitals/heart_rate_bpm", json!(80)), Some("\"1\"")).await?;
        assert_eq!((s, r["version"].as_i64()), (200, Some(2)), "{r}");
        // The nurse still holds version 1: refused, and nothing is stored.
        let (s, r) = put(&nurse, with(clear_consultation(), "/vitals/heart_rate_bpm", json!(64)), Some("\"1\"")).await?;
        assert_eq!(s, 409, "{r}");
        assert_eq!(r["error"]["code"], "conflict");
        assert_eq!(rows_of(&app, "consultations", &mrn, "").await?, 2);
        let (_, current) = get(&app, &nurse, &path).await?;
        assert_eq!((current["version"].as_i64(), current["data"]["vitals"]["heart_rate_bpm"].as_f64()), (Some(2), Some(80.0)));
        // A weak tag and no tag at all are accepted; a tag that is not a version is refused.
        assert_eq!(put(&nurse, clear_consultation(), Some("W/\"2\"")).await?.1["version"], 3);
        assert_eq!(put(&nurse, clear_consultation(), None).await?.1["version"], 4);
        let (s, r) = put(&nurse, clear_consultation(), Some("\"latest\"")).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("If-Match")), "{r}");
        assert_eq!(rows_of(&app, "consultations", &mrn, "").await?, 4);
        // Every version is kept; recorded_by names who saved the one in force.
        let rows = rows_of(&app, "consultations", &mrn, "version IN (1, 2, 3, 4)").await?;
        assert_eq!(rows, 4);
        let (_, current) = get(&app, &nurse, &path).await?;
        let me: Value = app.get_bearer(&nurse, "/api/v1/auth/me").await?.json().await?;
        assert_eq!(current["recorded_by"], me["id"], "the nurse saved version 4");
        app.stop().await
    }

    async fn a_pregnancy_excludes_and_only_a_not_eligible_decision_can_be_signed(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let prescriber = app.token(PRESCRIBER).await?;
        let (id, mrn) = register(&app, &nurse, "Expecting", "female").await?;
        baseline_instruments(&app, &nurse, &id).await?;
        let body = with(clear_consultation(), "/pregnancy_status", json!("pregnant"));
        assert_eq!(save(&app, &nurse, &id, &body).await?.0, 200);
        assert_eq!(stage(&app, &nurse, &id).await?, "eligibility");

        let e = evaluation(&app, &prescriber, &id).await?;
        assert_eq!(e["outcome"], "excluded", "{e}");
        assert_eq!(e["outcome_by_product"], json!({"esketamine": "excluded", "racemic": "excluded"}));
        assert_eq!(rule_ids(&e), vec!["ELIG-011"]);
        let f = finding(&e, "ELIG-011").unwrap();
        assert_eq!((f["severity"].as_str(), f["scope"].as_str(), f["detail"].as_str()), (Some("exclude"), Some("all"), Some("pregnant")));
        assert!(f["rationale"].as_str().is_some_and(|t| !t.is_empty()) && f["source"].as_str().is_some_and(|t| !t.is_empty()));
        let sha = e["input_sha256"].as_str().unwrap().to_owned();

        let decisions = format!("/api/v1/patients/{id}/eligibility/decisions");
        let eligible = json!({"input_sha256": sha, "password": PASSWORD, "verdict": "eligible", "routes": [{"route": "sublingual_lozenge", "course_template": "KAP-SL"}],
            "summary": "Patient wishes to proceed."});
        let (s, r) = post(&app, &prescriber, &decisions, &eligible).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("routes")), "{r}");
        assert!(r["error"]["message"].as_str().unwrap().contains("ELIG-011"), "{r}");
        // Not even with a disposition: an exclusion takes none.
        let mut disposed = eligible.clone();
        disposed["dispositions"] = json!([{"rule_id": "ELIG-011", "acceptable": true, "reason": "Patient insists."}]);
        let (s, r) = post(&app, &prescriber, &decisions, &disposed).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("dispositions[0].rule_id")), "{r}");
        assert_eq!(rows_of(&app, "eligibility_decisions", &mrn, "").await?, 0);
        // A not-eligible decision names no route.
        let no_with_route = json!({"input_sha256": sha, "password": PASSWORD, "verdict": "not_eligible", "routes": iv_course(), "summary": "Pregnant."});
        assert_eq!(post(&app, &prescriber, &decisions, &no_with_route).await?.1["error"]["field"], "routes");

        let no = json!({"input_sha256": sha, "password": PASSWORD, "verdict": "not_eligible", "summary": "  Pregnant: ketamine is not recommended. Revisit after delivery.  "});
        let (s, d) = post(&app, &prescriber, &decisions, &no).await?;
        assert_eq!(s, 201, "{d}");
        assert_eq!((d["verdict"].as_str(), d["outcome"].as_str()), (Some("not_eligible"), Some("excluded")));
        assert_eq!(d["summary"], "Pregnant: ketamine is not recommended. Revisit after delivery.", "trimmed");
        assert_eq!((d["routes"].clone(), d["amends"].clone()), (json!([]), Value::Null));
        assert_eq!(d["findings"][0]["rule_id"], "ELIG-011", "the findings signed are kept with the decision");
        assert_eq!(d["input_sha256"], sha);
        assert_eq!(rows_of(&app, "eligibility_decisions", &mrn, "").await?, 1);
        assert_eq!(stage(&app, &nurse, &id).await?, "ineligible");
        assert_eq!(evaluation(&app, &nurse, &id).await?["decision"]["id"], d["id"]);
        app.stop().await
    }

    async fn a_review_finding_needs_a_signed_disposition_and_amendments_keep_the_chain(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let prescriber = app.token(PRESCRIBER).await?;
        let (id, mrn) = register(&app, &nurse, "Pressure", "male").await?;
        baseline_instruments(&app, &nurse, &id).await?;
        let body = with(with(clear_consultation(), "/vitals/systolic_mmhg", json!(150)), "/vitals/diastolic_mmhg", json!(85));
        assert_eq!(save(&app, &nurse, &id, &body).await?.0, 200);
        let e = evaluation(&app, &prescriber, &id).await?;
        assert_eq!(e["outcome"], "needs_review", "{e}");
        assert_eq!(rule_ids(&e), vec!["ELIG-007"]);
        let f = finding(&e, "ELIG-007").unwrap();
        assert_eq!(f["severity"], "physician_review");
        assert!(f["detail"].as_str().unwrap().contains("150/85"), "{f}");
        let sha = e["input_sha256"].as_str().unwrap().to_owned();
        let rules_version = get(&app, &nurse, "/api/v1/eligibility/rules").await?.1["version"].clone();
        assert_eq!(e["ruleset_version"], rules_version);

        let path = format!("/api/v1/patients/{id}/eligibility/decisions");
        let mut sign = json!({"input_sha256": sha, "password": PASSWORD, "verdict": "eligible", "routes": iv_course(),
            "summary": "TRD after two adequate trials; BP to be rechecked before each infusion."});
        let (s, r) = post(&app, &prescriber, &path, &sign).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("dispositions")), "{r}");
        // A disposition for a rule that found nothing is refused; so is one without a reason.
        sign["dispositions"] = json!([{"rule_id": "ELIG-013", "acceptable": true, "reason": "Not breastfeeding."}]);
        assert_eq!(post(&app, &prescriber, &path, &sign).await?.1["error"]["field"], "dispositions[0].rule_id");
        sign["dispositions"] = json!([{"rule_id": "ELIG-007", "acceptable": true, "reason": " "}]);
        assert_eq!(post(&app, &prescriber, &path, &sign).await?.1["error"]["field"], "dispositions[0].reason");
        // Judged not acceptable: the route cannot be allowed.
        sign["dispositions"] = json!([{"rule_id": "ELIG-007", "acceptable": false, "reason": "BP too high today."}]);
        assert_eq!(post(&app, &prescriber, &path, &sign).await?.1["error"]["field"], "routes");
        // The wrong course for the route is named.
        let mut wrong_course = sign.clone();
        wrong_course["routes"] = json!([{"route": "intravenous_racemic", "course_template": "KAP-SL"}]);
        wrong_course["dispositions"] = json!([{"rule_id": "ELIG-007", "acceptable": true, "reason": "Repeat BP 134/82."}]);
        assert_eq!(post(&app, &prescriber, &path, &wrong_course).await?.1["error"]["field"], "routes[0].course_template");
        assert_eq!(rows_of(&app, "eligibility_decisions", &mrn, "").await?, 0);

        sign["dispositions"] = json!([{"rule_id": "ELIG-007", "acceptable": true, "reason": "Repeat BP 134/82 after rest; home readings normal."}]);
        let nurse_try = post(&app, &nurse, &path, &sign).await?;
        assert_eq!(nurse_try.0, 403, "only prescribers sign: {}", nurse_try.1);
        assert_eq!(rows_of(&app, "eligibility_decisions", &mrn, "").await?, 0);
        let signs_before = audit_of(&app, &id, "action = 'eligibility.sign'").await?;
        let (s, first) = post(&app, &prescriber, &path, &sign).await?;
        assert_eq!(s, 201, "{first}");
        assert_eq!((first["verdict"].as_str(), first["outcome"].as_str()), (Some("eligible"), Some("needs_review")));
        assert_eq!(first["ruleset_version"], rules_version);
        assert_eq!(first["settings_version"], e["settings_version"]);
        assert!(first["settings_version"].as_i64().is_some_and(|v| v >= 1), "{first}");
        assert_eq!(first["routes"], iv_course());
        assert_eq!(first["dispositions"][0]["reason"], "Repeat BP 134/82 after rest; home readings normal.");
        assert_eq!(first["findings"][0]["rule_id"], "ELIG-007");
        assert!(first["amends"].is_null() && first["amendment_reason"].is_null());
        let first_id = first["id"].as_str().unwrap().to_owned();
        assert_eq!(audit_of(&app, &id, "action = 'eligibility.sign'").await?, signs_before + 1);
        assert_eq!(evaluation(&app, &nurse, &id).await?["decision"]["id"], first_id.as_str());
        assert_eq!(stage(&app, &nurse, &id).await?, "consent", "eligible: consent is next");

        // A second first-time signature is a conflict: amend instead.
        let (s, r) = post(&app, &prescriber, &path, &sign).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (409, Some("amends")), "{r}");
        assert_eq!(rows_of(&app, "eligibility_decisions", &mrn, "").await?, 1);

        // An amendment names the decision in force and why.
        let mut amend = sign.clone();
        amend["routes"] = json!([{"route": "intravenous_racemic", "course_template": "IV-6"},
            {"route": "intramuscular_racemic", "course_template": "KAP-IM"}]);
        amend["amends"] = json!(first_id);
        let (s, r) = post(&app, &prescriber, &path, &amend).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("amendment_reason")), "no reason: {r}");
        amend["amendment_reason"] = json!("   ");
        let (s, r) = post(&app, &prescriber, &path, &amend).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("amendment_reason")), "a blank reason: {r}");
        let mut reason_only = sign.clone();
        reason_only["amendment_reason"] = json!("IM added.");
        assert_eq!(post(&app, &prescriber, &path, &reason_only).await?.1["error"]["field"], "amends");
        assert_eq!(rows_of(&app, "eligibility_decisions", &mrn, "").await?, 1);

        amend["amendment_reason"] = json!("IM added: poor venous access at the first attempt.");
        let (s, second) = post(&app, &prescriber, &path, &amend).await?;
        assert_eq!(s, 201, "{second}");
        assert_eq!(second["amends"], first_id.as_str());
        assert_eq!(second["amendment_reason"], "IM added: poor venous access at the first attempt.");
        assert_eq!(second["routes"].as_array().map(Vec::len), Some(2));
        let second_id = second["id"].as_str().unwrap().to_owned();
        assert_eq!(audit_of(&app, &id, "action = 'eligibility.amend'").await?, 1);

        // Both are listed, the one in force first; the original is unchanged.
        let (s, list) = get(&app, &nurse, &path).await?;
        assert_eq!(s, 200);
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{list}");
        assert_eq!((items[0]["id"].as_str(), items[0]["amends"].as_str()), (Some(second_id.as_str()), Some(first_id.as_str())));
        assert_eq!(items[1]["id"], first_id.as_str());
        assert_eq!(items[1]["routes"], iv_course(), "the original decision is kept as signed");
        assert!(items[1]["amends"].is_null());
        assert_eq!(evaluation(&app, &nurse, &id).await?["decision"]["id"], second_id.as_str());

        // The first decision is no longer in force: amending it again is a conflict.
        amend["amendment_reason"] = json!("Another change on the old decision.");
        let (s, r) = post(&app, &prescriber, &path, &amend).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (409, Some("amends")), "{r}");
        // So is amending a decision that does not exist.
        amend["amends"] = json!("01a21565-0000-7000-8000-000000000000");
        assert_eq!(post(&app, &prescriber, &path, &amend).await?.0, 409);
        assert_eq!(rows_of(&app, "eligibility_decisions", &mrn, "").await?, 2);
        assert_eq!(audit_of(&app, &id, "action = 'eligibility.amend'").await?, 1);
        app.stop().await
    }

    async fn signing_against_a_record_that_changed_is_a_conflict(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let prescriber = app.token(PRESCRIBER).await?;
        let (id, mrn) = register(&app, &nurse, "Moving", "female").await?;
        baseline_instruments(&app, &nurse, &id).await?;
        assert_eq!(save(&app, &nurse, &id, &clear_consultation()).await?.0, 200);
        let seen = evaluation(&app, &prescriber, &id).await?;
        assert_eq!(seen["outcome"], "eligible", "{seen}");

        // The nurse records a pregnancy while the prescriber reads the (clear) findings.
        let changed = with(clear_consultation(), "/pregnancy_status", json!("pregnant"));
        assert_eq!(save(&app, &nurse, &id, &changed).await?.0, 200);
        let path = format!("/api/v1/patients/{id}/eligibility/decisions");
        let sign = json!({"input_sha256": seen["input_sha256"], "password": PASSWORD, "verdict": "eligible", "routes": iv_course(),
            "summary": "No findings."});
        let (s, r) = post(&app, &prescriber, &path, &sign).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (409, Some("input_sha256")), "{r}");
        // A made-up hash is refused the same way.
        let forged = json!({"input_sha256": "0".repeat(64), "password": PASSWORD, "verdict": "not_eligible", "summary": "x"});
        assert_eq!(post(&app, &prescriber, &path, &forged).await?.0, 409);
        // A new questionnaire changes the inputs too.
        let now = evaluation(&app, &prescriber, &id).await?;
        assert_eq!(now["outcome"], "excluded");
        baseline_instruments(&app, &nurse, &id).await?;
        let stale = json!({"input_sha256": now["input_sha256"], "password": PASSWORD, "verdict": "not_eligible", "summary": "Pregnant."});
        assert_eq!(post(&app, &prescriber, &path, &stale).await?.0, 409);
        assert_eq!(rows_of(&app, "eligibility_decisions", &mrn, "").await?, 0);
        assert_eq!(audit_of(&app, &id, "action = 'eligibility.sign'").await?, 0);
        let (_, list) = get(&app, &prescriber, &path).await?;
        assert_eq!(list["items"], json!([]));
        app.stop().await
    }

    async fn decisions_consultations_and_pathway_events_are_append_only_in_the_database(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let prescriber = app.token(PRESCRIBER).await?;
        let (id, mrn) = register(&app, &nurse, "Immutable", "female").await?;
        baseline_instruments(&app, &nurse, &id).await?;
        assert_eq!(save(&app, &nurse, &id, &with(clear_consultation(), "/pregnancy_status", json!("pregnant"))).await?.0, 200);
        let e = evaluation(&app, &prescriber, &id).await?;
        let path = format!("/api/v1/patients/{id}/eligibility/decisions");
        let no = json!({"input_sha256": e["input_sha256"], "password": PASSWORD, "verdict": "not_eligible", "summary": "Pregnant."});
        assert_eq!(post(&app, &prescriber, &path, &no).await?.0, 201);
        let hold = json!({"event": "hold", "reason": "Awaiting obstetric advice."});
        assert_eq!(post(&app, &nurse, &format!("/api/v1/patients/{id}/pathway/events"), &hold).await?.0, 201);

        for sql in [
            "UPDATE eligibility_decisions SET verdict = 'eligible'",
            "UPDATE eligibility_decisions SET summary = 'rewritten'",
            "DELETE FROM eligibility_decisions",
            "UPDATE consultations SET body = '{}'",
            "DELETE FROM consultations",
            "UPDATE pathway_events SET event = 'resume'",
            "DELETE FROM pathway_events",
        ] {
            assert!(app.raw_sql(sql).await.is_err(), "{sql} must be refused");
        }
        assert_eq!(rows_of(&app, "eligibility_decisions", &mrn, "verdict = 'not_eligible' AND summary = 'Pregnant.'").await?, 1);
        assert_eq!(rows_of(&app, "consultations", &mrn, "").await?, 1);
        assert_eq!(rows_of(&app, "pathway_events", &mrn, "event = 'hold'").await?, 1);
        let (_, list) = get(&app, &prescriber, &path).await?;
        assert_eq!(list["items"][0]["verdict"], "not_eligible");
        app.stop().await
    }

    async fn the_pathway_follows_the_record_and_holds_are_audited(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let prescriber = app.token(PRESCRIBER).await?;
        let (id, mrn) = register(&app, &nurse, "Pathway", "female").await?;
        let audited = |action: &'static str| {
            let (app, id) = (&app, id.clone());
            async move { audit_of(app, &id, &format!("action = '{action}'")).await }
        };
        let actions = ["consultation.record", "eligibility.sign", "eligibility.amend", "pathway.change"];
        for action in actions {
            assert_eq!(audited(action).await?, 0, "{action}");
        }

        let (s, p) = get(&app, &nurse, &format!("/api/v1/patients/{id}/pathway")).await?;
        assert_eq!(s, 200, "{p}");
        assert_eq!((p["stage"].as_str(), p["next"][0]["what"].as_str()), (Some("referral"), Some("Record the consultation")));
        assert_eq!(p["events"], json!([]));

        let events = format!("/api/v1/patients/{id}/pathway/events");
        let hold = json!({"event": "hold", "reason": "Patient travelling for three weeks."});
        let (s, r) = post(&app, &nurse, &events, &hold).await?;
        assert_eq!((s, r["stage"].as_str()), (201, Some("on_hold")), "{r}");
        assert_eq!(stage(&app, &nurse, &id).await?, "on_hold");
        let (s, r) = post(&app, &nurse, &events, &hold).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("event")), "already on hold: {r}");
        let (s, r) = post(&app, &nurse, &events, &json!({"event": "pause", "reason": "x"})).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("event")), "{r}");
        let (s, r) = post(&app, &nurse, &events, &json!({"event": "resume", "reason": "  "})).await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("reason")), "{r}");
        let frontdesk = app.token("frontdesk@demo.kapstone.test").await?;
        assert_eq!(post(&app, &frontdesk, &events, &json!({"event": "resume", "reason": "Back."})).await?.0, 403);
        let (s, r) = post(&app, &nurse, &events, &json!({"event": "resume", "reason": "Back from travel."})).await?;
        assert_eq!((s, r["stage"].as_str()), (201, Some("referral")), "{r}");
        let (_, p) = get(&app, &nurse, &format!("/api/v1/patients/{id}/pathway")).await?;
        let recorded: Vec<&str> = p["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(recorded, vec!["hold", "resume"]);
        assert_eq!(p["events"][0]["reason"], "Patient travelling for three weeks.");
        assert_eq!(rows_of(&app, "pathway_events", &mrn, "").await?, 2);

        // Consultation recorded but instruments missing: consultation, with what is missing.
        assert_eq!(save(&app, &nurse, &id, &clear_consultation()).await?.0, 200);
        let (_, p) = get(&app, &nurse, &format!("/api/v1/patients/{id}/pathway")).await?;
        assert_eq!(p["stage"], "consultation", "{p}");
        let next: Vec<&str> = p["next"].as_array().unwrap().iter().map(|n| n["what"].as_str().unwrap()).collect();
        assert_eq!(next, vec!["Record baseline PHQ-9", "Record baseline GAD-7", "Record C-SSRS screener"]);
        baseline_instruments(&app, &nurse, &id).await?;
        assert_eq!(stage(&app, &nurse, &id).await?, "eligibility");
        let (web, _) = app.browser_login(NURSE, PASSWORD).await?;
        assert_eq!(chart_stage(&app, &web, &id).await?, "Eligibility");

        let e = evaluation(&app, &prescriber, &id).await?;
        let path = format!("/api/v1/patients/{id}/eligibility/decisions");
        let sign = json!({"input_sha256": e["input_sha256"], "password": PASSWORD, "verdict": "eligible", "routes": iv_course(), "summary": "No findings."});
        let (s, d) = post(&app, &prescriber, &path, &sign).await?;
        assert_eq!(s, 201, "{d}");
        assert_eq!(stage(&app, &nurse, &id).await?, "consent");
        assert_eq!(chart_stage(&app, &web, &id).await?, "Consent");
        let amend = json!({"input_sha256": e["input_sha256"], "password": PASSWORD, "verdict": "not_eligible", "summary": "Patient declined treatment.",
            "amends": d["id"], "amendment_reason": "Patient changed their mind."});
        assert_eq!(post(&app, &prescriber, &path, &amend).await?.0, 201);
        assert_eq!(stage(&app, &nurse, &id).await?, "ineligible", "the amendment is the decision in force");
        assert_eq!(chart_stage(&app, &web, &id).await?, "Not eligible", "the chart reads the decision in force too");
        // A second amendment back to eligible: the chain's end is still the one in force.
        let (s, list) = get(&app, &prescriber, &path).await?;
        assert_eq!((s, list["items"][0]["verdict"].as_str()), (200, Some("not_eligible")), "newest first: {list}");
        let again = json!({"input_sha256": e["input_sha256"], "password": PASSWORD, "verdict": "eligible", "routes": iv_course(),
            "summary": "Wishes to go ahead after all.", "amends": list["items"][0]["id"], "amendment_reason": "Patient reconsidered."});
        let (s, r) = post(&app, &prescriber, &path, &again).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(stage(&app, &nurse, &id).await?, "consent");
        assert_eq!(chart_stage(&app, &web, &id).await?, "Consent", "the second amendment is in force");

        let mut counts = Vec::new();
        for action in actions {
            counts.push(audited(action).await?);
        }
        assert_eq!(counts, vec![1, 1, 2, 2], "{actions:?}: only accepted changes are audited");
        assert_eq!(audit_of(&app, &id, "action = 'pathway.change' AND reason = 'hold'").await?, 1);
        app.stop().await
    }

    async fn the_openapi_document_is_public_and_describes_the_consultation(b) {
        let app = TestApp::spawn(b).await?;
        let resp = app.client().get(app.url("/api/v1/openapi.json")).send().await?;
        assert_eq!(resp.status(), 200);
        let doc: Value = resp.json().await?;
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
        let put = &doc["paths"]["/api/v1/patients/{id}/consultation"]["put"];
        assert!(put.is_object(), "PUT consultation is documented");
        // The request body is the schema of the handler's input type (derived, inline).
        let body = &put["requestBody"]["content"]["application/json"]["schema"];
        assert!(body["properties"]["vitals"].is_object(), "{put}");
        assert!(body["properties"]["medications"].is_object(), "{put}");
        assert!(put["summary"].as_str().unwrap_or_default().contains("If-Match"), "{put}");
        for (path, method) in [
            ("/api/v1/patients/{id}/consultation", "get"),
            ("/api/v1/patients/{id}/eligibility", "get"),
            ("/api/v1/patients/{id}/eligibility/decisions", "post"),
            ("/api/v1/patients/{id}/pathway/events", "post"),
            ("/api/v1/eligibility/rules", "get"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
        // The same document as a page people read, without signing in: every operation is on it.
        let page = app.client().get(app.url("/api/docs")).send().await?;
        assert_eq!(page.status(), 200);
        let html = page.text().await?;
        assert!(html.contains("href=\"/api/v1/openapi.json\""));
        let operations: usize = doc["paths"].as_object().map_or(0, |p| p.values().map(|m| m.as_object().map_or(0, |m| m.len())).sum());
        assert!(html.contains(&format!("{operations} operations")), "the page counts {operations} operations");
        assert_eq!(html.matches("class=\"card api-op\"").count(), operations);
        assert!(html.contains("<code>/api/v1/patients/{id}/consultation</code>"));
        assert!(html.contains("id=\"schema-ConsultationVersion\""), "named schemas have their own section");
        app.stop().await
    }

    async fn simultaneous_writers_cannot_both_win(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let prescriber = app.token(PRESCRIBER).await?;
        let (id, mrn) = register(&app, &nurse, "Racing", "female").await?;
        baseline_instruments(&app, &nurse, &id).await?;
        let path = format!("/api/v1/patients/{id}/consultation");
        assert_eq!(save(&app, &nurse, &id, &clear_consultation()).await?.0, 200);

        // Four clinicians save on top of version 1 at once: one wins, the others are told.
        let mut set = tokio::task::JoinSet::new();
        for hr in [60, 64, 68, 76] {
            let body = with(clear_consultation(), "/vitals/heart_rate_bpm", json!(hr));
            let req = app.client().put(app.url(&path)).bearer_auth(&nurse).header("If-Match", "\"1\"").json(&body);
            set.spawn(async move { req.send().await.map(|r| r.status().as_u16()) });
        }
        let mut statuses = Vec::new();
        while let Some(done) = set.join_next().await {
            statuses.push(done??);
        }
        statuses.sort_unstable();
        assert_eq!(statuses, vec![200, 409, 409, 409]);
        assert_eq!(rows_of(&app, "consultations", &mrn, "").await?, 2);
        // Without If-Match every save is a new version, numbered without gaps or duplicates.
        let statuses = at_once(&app, &nurse, Method::PUT, &path, &clear_consultation(), 4).await?;
        assert_eq!(statuses, vec![200; 4]);
        assert_eq!(rows_of(&app, "consultations", &mrn, "").await?, 6);
        assert_eq!(get(&app, &nurse, &path).await?.1["version"], 6);

        // Four first signatures at once: exactly one decision.
        let e = evaluation(&app, &prescriber, &id).await?;
        assert_eq!(e["outcome"], "eligible", "{e}");
        let sign = json!({"input_sha256": e["input_sha256"], "password": PASSWORD, "verdict": "eligible", "routes": iv_course(), "summary": "No findings."});
        let decisions = format!("/api/v1/patients/{id}/eligibility/decisions");
        let statuses = at_once(&app, &prescriber, Method::POST, &decisions, &sign, 4).await?;
        assert_eq!(statuses, vec![201, 409, 409, 409]);
        let (_, list) = get(&app, &prescriber, &decisions).await?;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        // Two amendments of the same decision at once: one wins.
        let mut amend = sign.clone();
        amend["amends"] = list["items"][0]["id"].clone();
        amend["amendment_reason"] = json!("Course reviewed.");
        let statuses = at_once(&app, &prescriber, Method::POST, &decisions, &amend, 3).await?;
        assert_eq!(statuses, vec![201, 409, 409]);
        assert_eq!(rows_of(&app, "eligibility_decisions", &mrn, "").await?, 2);

        // Three holds at once: one hold; the others are refused as already on hold.
        let hold = json!({"event": "hold", "reason": "Awaiting cardiology letter."});
        let statuses = at_once(&app, &nurse, Method::POST, &format!("/api/v1/patients/{id}/pathway/events"), &hold, 3).await?;
        assert_eq!(statuses, vec![201, 422, 422]);
        assert_eq!(rows_of(&app, "pathway_events", &mrn, "").await?, 1);
        app.stop().await
    }

    async fn the_documented_vital_ranges_are_the_ones_enforced(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let (id, mrn) = register(&app, &nurse, "Boundary", "female").await?;
        let doc: Value = app.client().get(app.url("/api/v1/openapi.json")).send().await?.json().await?;
        let put = &doc["paths"]["/api/v1/patients/{id}/consultation"]["put"];
        let vitals = put["requestBody"]["content"]["application/json"]["schema"]["properties"]["vitals"]["properties"].clone();
        let names = ["systolic_mmhg", "diastolic_mmhg", "heart_rate_bpm", "spo2_percent", "weight_kg", "height_cm"];
        assert_eq!(vitals.as_object().map(|o| o.len()), Some(names.len()), "{vitals}");
        let mut stored = 0;
        for name in names {
            let (min, max) = (vitals[name]["minimum"].as_f64().unwrap(), vitals[name]["maximum"].as_f64().unwrap());
            // Keep the blood pressure consistent (systolic above diastolic) while one part moves.
            let base = |v: f64| {
                let body = with(clear_consultation(), &format!("/vitals/{name}"), json!(v));
                match name {
                    "systolic_mmhg" => with(body, "/vitals/diastolic_mmhg", json!(if v <= 80.0 { 30 } else { 80 })),
                    "diastolic_mmhg" => with(body, "/vitals/systolic_mmhg", json!(if v >= 120.0 { 250 } else { 120 })),
                    _ => body,
                }
            };
            for ok in [min, max] {
                let (s, r) = save(&app, &nurse, &id, &base(ok)).await?;
                assert_eq!(s, 200, "{name} = {ok} is documented as accepted: {r}");
                stored += 1;
            }
            for bad in [min - 1.0, max + 1.0] {
                let (s, r) = save(&app, &nurse, &id, &base(bad)).await?;
                let field = format!("vitals.{name}");
                assert_eq!((s, r["error"]["field"].as_str()), (422, Some(field.as_str())), "{name} = {bad}: {r}");
            }
        }
        assert_eq!(rows_of(&app, "consultations", &mrn, "").await?, stored);
        // Systolic not above diastolic is refused, naming the systolic reading.
        let inverted = with(with(clear_consultation(), "/vitals/systolic_mmhg", json!(80)), "/vitals/diastolic_mmhg", json!(120));
        assert_eq!(save(&app, &nurse, &id, &inverted).await?.1["error"]["field"], "vitals.systolic_mmhg");
        app.stop().await
    }

    async fn findings_follow_the_patient_and_apply_per_product(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let cssrs = json!({"instrument": "cssrs_screener", "answers": [false, false, null, null, null, false, null]});
        let ready = |family: &'static str, sex: &'static str, born: &'static str, body: Value| {
            let (app, nurse, cssrs) = (&app, nurse.clone(), cssrs.clone());
            async move {
                let (id, _) = register_born(app, &nurse, family, sex, born).await?;
                let (s, r) = post(app, &nurse, &format!("/api/v1/patients/{id}/questionnaires"), &cssrs).await?;
                anyhow::ensure!(s == 201, "{r}");
                let (s, r) = save(app, &nurse, &id, &body).await?;
                anyhow::ensure!(s == 200, "{r}");
                evaluation(app, &nurse, &id).await
            }
        };

        // 65 or older: a precaution for Spravato only (ELIG-028); racemic ketamine is unaffected.
        let e = ready("Senior", "female", "1950-01-01", clear_consultation()).await?;
        assert_eq!(rule_ids(&e), vec!["ELIG-028"], "{e}");
        assert_eq!(e["outcome_by_product"], json!({"esketamine": "eligible_with_precautions", "racemic": "eligible"}));
        assert_eq!(e["outcome"], "eligible", "the better product decides the overall outcome");
        // Under 18: excluded for both (ELIG-014).
        let e = ready("Minor", "female", "2015-06-01", clear_consultation()).await?;
        assert_eq!(rule_ids(&e), vec!["ELIG-014"], "{e}");
        assert_eq!((e["outcome"].as_str(), finding(&e, "ELIG-014").unwrap()["severity"].as_str()), (Some("excluded"), Some("exclude")));
        // Moderate hepatic impairment is an esketamine precaution; a benzodiazepine above 8 mg
        // diazepam-equivalent needs review for both.
        let mut body = with(clear_consultation(), "/conditions/hepatic", json!("child_pugh_b"));
        body["medications"] = json!([{"name": "lorazepam", "drug_class": "benzodiazepine", "daily_dose_mg": 4, "diazepam_equivalent_mg": 40}]);
        let e = ready("Hepatic", "female", "1986-03-14", body).await?;
        assert_eq!(rule_ids(&e), vec!["ELIG-020", "ELIG-021", "DDI-001"], "{e}");
        assert_eq!(finding(&e, "DDI-001").unwrap()["severity"], "physician_review");
        assert_eq!(e["outcome_by_product"], json!({"esketamine": "needs_review", "racemic": "needs_review"}));

        // Pregnancy and breastfeeding are not asked of a patient recorded male at birth ...
        let mut body = clear_consultation();
        body.as_object_mut().unwrap().remove("pregnancy_status");
        body.as_object_mut().unwrap().remove("breastfeeding");
        let e = ready("Notasked", "male", "1986-03-14", body).await?;
        assert_eq!((e["outcome"].as_str(), e["findings"].clone()), (Some("eligible"), json!([])), "{e}");
        // ... but a pregnancy or breastfeeding the clinician recorded is never ignored.
        let body = with(clear_consultation(), "/pregnancy_status", json!("pregnant"));
        let e = ready("Recorded", "male", "1986-03-14", body).await?;
        assert_eq!(finding(&e, "ELIG-011").map(|f| f["severity"].clone()), Some(json!("exclude")), "{e}");
        assert_eq!(e["outcome"], "excluded");
        let body = with(clear_consultation(), "/breastfeeding", json!(true));
        let e = ready("Nursing", "male", "1986-03-14", body).await?;
        assert_eq!(finding(&e, "ELIG-013").map(|f| f["severity"].clone()), Some(json!("physician_review")), "{e}");
        app.stop().await
    }

    async fn staff_of_another_clinic_can_neither_read_nor_write_the_record(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let prescriber = app.token(PRESCRIBER).await?;
        let (id, mrn) = register(&app, &nurse, "Private", "female").await?;
        baseline_instruments(&app, &nurse, &id).await?;
        assert_eq!(save(&app, &nurse, &id, &clear_consultation()).await?.0, 200);
        let e = evaluation(&app, &prescriber, &id).await?;

        let other = create_clinic(&app.db, "Another clinic", "America/Chicago").await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let input = NewAccountInput {
            email: "prescriber@other.test".into(),
            name: "Other Prescriber".into(),
            role: Role::Prescriber.as_str().into(),
            password: PASSWORD.into(),
            patient_mrn: None,
        };
        create_account(&app.state, Operator::CommandLine { clinic: other }, input).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let theirs = app.token("prescriber@other.test").await?;
        for path in ["consultation", "eligibility", "eligibility/decisions", "pathway"] {
            let (s, r) = get(&app, &theirs, &format!("/api/v1/patients/{id}/{path}")).await?;
            assert_eq!(s, 404, "{path}: {r}");
        }
        let (s, _) = save(&app, &theirs, &id, &clear_consultation()).await?;
        assert_eq!(s, 404);
        let sign = json!({"input_sha256": e["input_sha256"], "password": PASSWORD, "verdict": "eligible", "routes": iv_course(), "summary": "No findings."});
        assert_eq!(post(&app, &theirs, &format!("/api/v1/patients/{id}/eligibility/decisions"), &sign).await?.0, 404);
        let hold = json!({"event": "hold", "reason": "Testing another clinic."});
        assert_eq!(post(&app, &theirs, &format!("/api/v1/patients/{id}/pathway/events"), &hold).await?.0, 404);
        assert_eq!(rows_of(&app, "consultations", &mrn, "").await?, 1);
        assert_eq!(rows_of(&app, "eligibility_decisions", &mrn, "").await?, 0);
        assert_eq!(rows_of(&app, "pathway_events", &mrn, "").await?, 0);
        // A malformed id names the field.
        let (s, r) = get(&app, &prescriber, "/api/v1/patients/not-an-id/eligibility").await?;
        assert_eq!((s, r["error"]["field"].as_str()), (422, Some("id")), "{r}");
        // Our own prescriber still signs what the other clinic could not.
        assert_eq!(post(&app, &prescriber, &format!("/api/v1/patients/{id}/eligibility/decisions"), &sign).await?.0, 201);
        app.stop().await
    }

    async fn a_save_that_lands_while_a_decision_is_being_signed_is_never_signed_over(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token(NURSE).await?;
        let prescriber = app.token(PRESCRIBER).await?;
        let (mut signed, mut refused) = (0, 0);
        for round in 0..12 {
            let (id, mrn) = register(&app, &nurse, &format!("Overlap{round}"), "female").await?;
            assert_eq!(save(&app, &nurse, &id, &clear_consultation()).await?.0, 200);
            let seen = evaluation(&app, &prescriber, &id).await?;
            // The prescriber signs what they saw (version 1) just as the nurse saves version 2.
            let sign = json!({"input_sha256": seen["input_sha256"], "password": PASSWORD, "verdict": "not_eligible", "summary": "Declined."});
            let changed = with(clear_consultation(), "/pregnancy_status", json!("pregnant"));
            let put = app.client().put(app.url(&format!("/api/v1/patients/{id}/consultation"))).bearer_auth(&nurse).json(&changed);
            let post = app.client().post(app.url(&format!("/api/v1/patients/{id}/eligibility/decisions"))).bearer_auth(&prescriber).json(&sign);
            let (saved, decided) = tokio::join!(put.send(), post.send());
            assert_eq!(saved?.status(), 200);
            match decided?.status().as_u16() {
                201 => signed += 1,
                409 => refused += 1,
                other => anyhow::bail!("signing answered {other}"),
            }
            // A decision on version 1 may exist only if version 2 was saved after it.
            let overtaken = rows_of(&app, "eligibility_decisions d", &mrn,
                "EXISTS (SELECT 1 FROM consultations c WHERE c.patient_id = d.patient_id AND c.version = 2 AND c.recorded_at < d.signed_at)").await?;
            assert_eq!(overtaken, 0, "round {round}: a decision was stored on a record already replaced");
        }
        assert_eq!(signed + refused, 12);
        app.stop().await
    }
}
