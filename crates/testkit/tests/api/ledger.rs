//! The Schedule III ledger over the API (KAP-SPEC 9, issue 6): the demo's stocked location, the
//! contracts (`/api/v1/cs/balance`, `/api/v1/cs/ledger`, `/api/v1/cs/counts`), receipts and
//! counts (TV-DEA-5), destruction with two witnesses (TV-DEA-7), waste witnessed on the spot,
//! reversals, the draw a dosing session makes, bad input refused with the ledger unchanged,
//! permissions, audited reads, and the hash chain that `kapstone ledger verify` checks.

use jiff::{SignedDuration, Timestamp};
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

/// (status, code, field) of a refusal.
fn refusal(r: &(u16, Value)) -> (u16, String, String) {
    let e = &r.1["error"];
    (r.0, e["code"].as_str().unwrap_or("").to_owned(), e["field"].as_str().unwrap_or("").to_owned())
}

fn ago(t0: Timestamp, minutes: i64) -> String {
    (t0 - SignedDuration::from_mins(minutes)).to_string()
}

struct Fx {
    app: TestApp,
    nurse: String,
    prescriber: String,
    admin: String,
    therapist: String,
    front: String,
    location: String,
    registry: Value,
}

impl Fx {
    async fn new(b: TestBackend) -> anyhow::Result<Self> {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let (s, registry) = get(&app, &nurse, "/api/v1/cs/registry").await?;
        anyhow::ensure!(s == 200, "{registry}");
        let location = registry["locations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| !l["registration"].is_null())
            .and_then(|l| l["location_id"].as_str())
            .expect("the demo's registered location")
            .to_owned();
        Ok(Self {
            prescriber: app.token("prescriber@demo.kapstone.test").await?,
            admin: app.token("admin@demo.kapstone.test").await?,
            therapist: app.token("therapist@demo.kapstone.test").await?,
            front: app.token("frontdesk@demo.kapstone.test").await?,
            app,
            nurse,
            location,
            registry,
        })
    }

    /// The product id with this NDC.
    fn product(&self, ndc: &str) -> String {
        self.registry["products"].as_array().unwrap().iter().find(|p| p["ndc"] == ndc).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn balance(&self) -> anyhow::Result<Vec<Value>> {
        let (s, v) = get(&self.app, &self.nurse, &format!("/api/v1/cs/balance?location={}", self.location)).await?;
        anyhow::ensure!(s == 200, "{v}");
        Ok(v["items"].as_array().unwrap().clone())
    }

    async fn on_hand(&self, lot: &str) -> anyhow::Result<f64> {
        Ok(self.balance().await?.iter().find(|b| b["lot"] == lot).and_then(|b| b["on_hand_mg"].as_f64()).unwrap_or(0.0))
    }

    async fn entries(&self) -> anyhow::Result<i64> {
        self.app.count("cs_ledger_entries").await
    }

    fn witness(&self, who: &str) -> Value {
        json!({"email": format!("{who}@demo.kapstone.test"), "password": PASSWORD})
    }
}

const VIAL_50: &str = "0409-2051-05";

both_backends! {
    async fn the_demo_location_is_stocked_and_its_chain_verifies(b) {
        let fx = Fx::new(b).await?;
        // The contract: per product and lot, {product, lot, on_hand_mg}.
        let balance = fx.balance().await?;
        assert!(balance.len() >= 4, "{balance:?}");
        for line in &balance {
            assert!(line["product"].is_string() && line["lot"].is_string() && line["on_hand_mg"].is_number(), "{line}");
        }
        // The count two days ago found 10 mg less than the ledger: one open discrepancy.
        let (_, d) = get(&fx.app, &fx.prescriber, "/api/v1/cs/discrepancies?open=true").await?;
        let open = d["items"].as_array().unwrap();
        assert_eq!(open.len(), 1, "{d}");
        assert_eq!(open[0]["difference_mg"], -10.0);
        // The biennial inventory is due soon (the initial one was almost two years ago).
        let (_, o) = get(&fx.app, &fx.nurse, &format!("/api/v1/cs/overview?location={}", fx.location)).await?;
        assert_eq!(o["inventory_status"]["status"], "due_soon", "{o}");
        // A month of administrations and waste, by date range.
        let from = (Timestamp::now() - SignedDuration::from_hours(24 * 40)).to_string();
        let (s, l) = get(&fx.app, &fx.nurse, &format!("/api/v1/cs/ledger?limit=500&location={}&from={from}&to={}", fx.location, Timestamp::now())).await?;
        assert_eq!(s, 200, "{l}");
        let kinds: Vec<&str> = l["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        for k in ["receipt", "draw", "administration", "waste", "inventory_count"] {
            assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
        }
        let admin_line = l["items"].as_array().unwrap().iter().find(|e| e["kind"] == "administration").unwrap();
        assert!(admin_line["line"]["patient_name"].is_string() && admin_line["line"]["patient_address"].is_string(), "{admin_line}");
        // A range with nothing in it, and a range given as dates.
        let (_, none) = get(&fx.app, &fx.nurse, &format!("/api/v1/cs/ledger?limit=500&location={}&from=2001-01-01&to=2001-12-31", fx.location)).await?;
        assert_eq!(none["items"].as_array().unwrap().len(), 0);
        // The chain is intact, and the balances it derives are the API's.
        let verified = kapstone_store::ledger::verify(&fx.app.db).await?;
        let chains = verified.map_err(|(l, e)| anyhow::anyhow!("{l}: {e}"))?;
        assert_eq!(chains.len(), 1);
        assert_eq!(chains[0].1, fx.entries().await?);
        Ok(())
    }

    async fn a_receipt_then_a_count_that_differs_opens_a_discrepancy(b) {
        let fx = Fx::new(b).await?;
        let product = fx.product(VIAL_50);
        let receipt = json!({"location": fx.location, "product": product, "lot": "LOT77A", "expiry": "2031-03-31",
            "supplier": {"name": "Synthetic Pharma Supply", "address": "1 Warehouse Way", "dea_number": "RS1234563"},
            "containers": 2, "invoice": "INV-1"});
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/receipts", &receipt).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(fx.on_hand("LOT77A").await?, 1000.0);
        // TV-DEA-5: expected 1000 mg, counted 990 mg (one full vial and 9.8 mL) → −10 mg.
        let count = |opened_ul: i64| json!({"location": fx.location, "kind": "count", "taken_at": "close_of_business",
            "lines": [{"product": product, "lot": "LOT77A", "full_containers": 1,
                "opened": [{"measure": {"volume_ul": opened_ul}, "estimated": false}]}]});
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/counts", &count(9800)).await?;
        assert_eq!(s, 201, "{r}");
        let d = &r["discrepancies"].as_array().unwrap()[0];
        assert_eq!((d["expected_mg"].as_f64(), d["counted_mg"].as_f64(), d["difference_mg"].as_f64()), (Some(1000.0), Some(990.0), Some(-10.0)), "{r}");
        // From the count on, the balance is what was counted.
        assert_eq!(fx.on_hand("LOT77A").await?, 990.0);
        // A count that agrees opens nothing.
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/counts", &count(9800)).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(r["discrepancies"].as_array().unwrap().len(), 0, "{r}");
        // An adjustment recorded by mistake is reversed; one from before the last count is
        // reversed as included in that count, leaving the counted balance as it is.
        let adjust = json!({"location": fx.location, "product": product, "lot": "LOT77A", "direction": "decrease",
            "amount_mg": "5", "reason": "Recorded in error"});
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/adjustments", &adjust).await?;
        assert_eq!(s, 201, "{r}");
        let mistaken = r["entries"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(fx.on_hand("LOT77A").await?, 985.0);
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/counts", &count(9700)).await?;
        assert_eq!(s, 201, "{r}");
        let (s, r) = post(&fx.app, &fx.nurse, &format!("/api/v1/cs/entries/{mistaken}/reversal"), &json!({"reason": "Nothing was lost"})).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(fx.on_hand("LOT77A").await?, 985.0, "the count stands");
        // The investigation: only the prescriber judges; a theft starts the timers (TV-DEA-1/2).
        let id = d["id"].as_str().unwrap();
        let events = format!("/api/v1/cs/discrepancies/{id}/events");
        let (s, _) = post(&fx.app, &fx.nurse, &events, &json!({"kind": "note_added", "text": "Checked the sharps bin and the fridge"})).await?;
        assert_eq!(s, 201);
        let judge = json!({"kind": "judged_theft_or_loss", "what": "significant_loss", "discovered_on": Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date().yesterday()?.to_string(),
            "reason": "Unexplained after review", "factors": ["specific_drug"]});
        let r = post(&fx.app, &fx.nurse, &events, &judge).await?;
        assert_eq!(refusal(&r), (422, "role".into(), "by".into()), "{}", r.1);
        let (s, v) = post(&fx.app, &fx.prescriber, &events, &judge).await?;
        assert_eq!(s, 201, "{v}");
        assert_eq!((v["notice"]["status"].as_str(), v["form_106"]["status"].as_str()), (Some("due"), Some("due")), "{v}");
        // Closing before the notice and Form 106 are recorded is refused naming what is missing.
        let r = post(&fx.app, &fx.prescriber, &events, &json!({"kind": "closed", "summary": "done"})).await?;
        assert_eq!(refusal(&r).2, "notice", "{}", r.1);
        Ok(())
    }

    async fn witnessed_and_signed_steps_need_a_recent_password_entry(b) {
        let fx = Fx::new(b).await?;
        let product = fx.product(VIAL_50);
        let n = fx.entries().await?;
        fx.app.age_authentication().await?;
        let reauth = |r: &(u16, Value)| (r.0, r.1["error"]["code"].as_str().unwrap_or("").to_owned());
        let destroy = json!({"location": fx.location, "product": product, "lot": "KET2291", "reason": "damaged",
            "full_containers": 1, "method": "Rendered non-retrievable with a denaturing kit",
            "witnesses": [fx.witness("nurse"), fx.witness("prescriber")]});
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/destructions", &destroy).await?;
        assert_eq!(reauth(&r), (422, "reauth_required".into()), "destruction: {}", r.1);
        let count = json!({"location": fx.location, "lines": [{"product": product, "lot": "KET2291", "full_containers": 1}]});
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/counts", &count).await?;
        assert_eq!(reauth(&r), (422, "reauth_required".into()), "count: {}", r.1);
        let waste = json!({"method": "Poured into a denaturing container", "witness": fx.witness("prescriber")});
        let r = post(&fx.app, &fx.nurse, &format!("/api/v1/cs/draws/{}/waste", uuid::Uuid::now_v7()), &waste).await?;
        assert_eq!(reauth(&r), (422, "reauth_required".into()), "waste: {}", r.1);
        assert_eq!(fx.entries().await?, n, "nothing written");
        // The password typed again opens the window; the destruction goes through.
        let r = post(&fx.app, &fx.nurse, "/api/v1/auth/reauth", &json!({"password": PASSWORD})).await?;
        assert_eq!(r.0, 200, "{}", r.1);
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/destructions", &destroy).await?;
        assert_eq!(s, 201, "{r}");
        Ok(())
    }

    async fn destruction_needs_two_witnesses_who_sign_in(b) {
        let fx = Fx::new(b).await?;
        let product = fx.product(VIAL_50);
        let before = fx.on_hand("KET2291").await?;
        let n = fx.entries().await?;
        let destroy = |witnesses: Value| json!({"location": fx.location, "product": product, "lot": "KET2291",
            "reason": "damaged", "full_containers": 1, "method": "Rendered non-retrievable with a denaturing kit",
            "witnesses": witnesses});
        // TV-DEA-7: one witness is refused; a wrong password is refused; the ledger is unchanged.
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/destructions", &destroy(json!([fx.witness("prescriber")]))).await?;
        assert_eq!(refusal(&r), (422, "form_41".into(), "witnesses".into()), "{}", r.1);
        let wrong = json!([fx.witness("nurse"), {"email": "prescriber@demo.kapstone.test", "password": "not the password"}]);
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/destructions", &destroy(wrong)).await?;
        assert_eq!(refusal(&r), (422, "witness".into(), "witnesses[1]".into()), "{}", r.1);
        // The same person twice is two signatures of one witness.
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/destructions", &destroy(json!([fx.witness("prescriber"), fx.witness("prescriber")]))).await?;
        assert_eq!(refusal(&r), (422, "form_41".into(), "witnesses[1]".into()), "{}", r.1);
        // The front desk may not witness.
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/destructions", &destroy(json!([fx.witness("nurse"), fx.witness("frontdesk")]))).await?;
        assert_eq!(refusal(&r), (422, "witness".into(), "witnesses[1]".into()), "{}", r.1);
        assert_eq!(fx.entries().await?, n, "refusals leave the ledger unchanged");
        assert_eq!(fx.on_hand("KET2291").await?, before);
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/destructions", &destroy(json!([fx.witness("nurse"), fx.witness("prescriber")]))).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(fx.on_hand("KET2291").await?, before - 500.0);
        let entry = r["entries"][0]["id"].as_str().unwrap();
        let (s, form) = get(&fx.app, &fx.nurse, &format!("/api/v1/cs/entries/{entry}/form-41")).await?;
        assert_eq!(s, 200, "{form}");
        assert_eq!(form["ndc"], VIAL_50);
        assert_eq!(form["witnesses"].as_array().unwrap().len(), 2);
        assert_eq!(form["dea_number"], "BA1234563");
        Ok(())
    }

    async fn bad_input_is_refused_naming_the_field_and_changes_nothing(b) {
        let fx = Fx::new(b).await?;
        let product = fx.product(VIAL_50);
        let n = fx.entries().await?;
        let receipt = |containers: Value, expiry: &str| json!({"location": fx.location, "product": product, "lot": "KET2291",
            "expiry": expiry, "supplier": {"name": "S", "address": "A", "dea_number": "RS1234563"}, "containers": containers});
        // Zero, negative: refused naming the field.
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/receipts", &receipt(json!(0), "2031-01-01")).await?;
        assert_eq!(refusal(&r).2, "containers", "{}", r.1);
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/receipts", &receipt(json!(-2), "2031-01-01")).await?;
        assert_eq!(r.0, 400, "{}", r.1);
        // A known lot with another expiry than its label.
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/receipts", &receipt(json!(1), "2031-01-01")).await?;
        assert_eq!(refusal(&r).2, "expiry", "{}", r.1);
        // More out than on hand.
        let adjust = |amount: &str| json!({"location": fx.location, "product": product, "lot": "KET2291",
            "direction": "decrease", "amount_mg": amount, "reason": "Spilled"});
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/adjustments", &adjust("999999")).await?;
        assert_eq!(refusal(&r).0, 422, "{}", r.1);
        assert_eq!(refusal(&r).1, "insufficient_stock", "{}", r.1);
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/adjustments", &adjust("-5")).await?;
        assert_eq!(refusal(&r).2, "amount_mg", "{}", r.1);
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/adjustments", &adjust("0")).await?;
        assert_eq!(refusal(&r).2, "amount_mg", "{}", r.1);
        // An unknown location or lot.
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/counts", &json!({"location": uuid::Uuid::nil(), "lines": []})).await?;
        assert_eq!(refusal(&r).2, "location", "{}", r.1);
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/counts", &json!({"location": fx.location,
            "lines": [{"product": product, "lot": "NOSUCHLOT", "full_containers": 1}]})).await?;
        assert_eq!(refusal(&r).2, "lot", "{}", r.1);
        assert_eq!(fx.entries().await?, n, "nothing was appended");
        // A reversal undoes, and a second reversal of the same entry is refused.
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/adjustments", &adjust("5")).await?;
        assert_eq!(s, 201, "{r}");
        let before = fx.on_hand("KET2291").await?;
        let entry = r["entries"][0]["id"].as_str().unwrap().to_owned();
        let (s, r) = post(&fx.app, &fx.nurse, &format!("/api/v1/cs/entries/{entry}/reversal"), &json!({"reason": "Recorded against the wrong lot"})).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(fx.on_hand("KET2291").await?, before + 5.0);
        let r = post(&fx.app, &fx.nurse, &format!("/api/v1/cs/entries/{entry}/reversal"), &json!({"reason": "again"})).await?;
        assert_eq!(r.0, 422, "{}", r.1);
        Ok(())
    }

    async fn only_the_controlled_substance_roles_reach_the_ledger_and_reads_are_audited(b) {
        let fx = Fx::new(b).await?;
        let balance = format!("/api/v1/cs/balance?location={}", fx.location);
        for token in [&fx.therapist, &fx.front] {
            assert_eq!(get(&fx.app, token, &balance).await?.0, 403);
        }
        let p = fx.app.token("patient1@demo.kapstone.test").await?;
        assert_eq!(get(&fx.app, &p, &balance).await?.0, 403);
        // Admins read reports but do not handle stock.
        assert_eq!(get(&fx.app, &fx.admin, &balance).await?.0, 200);
        let product = fx.product(VIAL_50);
        let adjust = json!({"location": fx.location, "product": product, "lot": "KET2291", "direction": "increase",
            "amount_mg": "1", "reason": "x"});
        assert_eq!(post(&fx.app, &fx.admin, "/api/v1/cs/adjustments", &adjust).await?.0, 403);
        // Every read is audited (the batch lands within a moment).
        let mut found = false;
        for _ in 0..50 {
            let (_, a) = get(&fx.app, &fx.admin, "/api/v1/audit?action=cs_ledger.read").await?;
            if a["items"].as_array().is_some_and(|i| !i.is_empty()) {
                found = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(found, "the reads of the ledger are in the audit log");
        Ok(())
    }

    async fn a_spravato_session_draws_from_its_lot_and_the_rest_is_wasted_with_a_witness(b) {
        let fx = Fx::new(b).await?;
        let before = fx.on_hand("24KX117").await?;
        // Demo patient 3's Spravato session, through to its two devices.
        let p3 = fx.app.token("patient3@demo.kapstone.test").await?;
        let (_, me) = get(&fx.app, &p3, "/api/v1/portal/me").await?;
        let now = Timestamp::now();
        let to = now + SignedDuration::from_hours(24 * 30);
        let (_, list) = get(&fx.app, &fx.front, &format!("/api/v1/appointments?limit=500&from={now}&to={to}")).await?;
        let a = list["items"].as_array().unwrap().iter()
            .find(|a| a["patient_id"] == me["id"] && a["kind"] == "dosing" && a["status"] == "booked").cloned().unwrap();
        let (s, session) = post(&fx.app, &fx.nurse, &format!("/api/v1/appointments/{}/session", a["id"].as_str().unwrap()), &json!({})).await?;
        assert_eq!(s, 201, "{session}");
        let id = session["id"].as_str().unwrap().to_owned();
        let t0 = Timestamp::now();
        let ev = |token: &str, body: Value| {
            let (app, path, token) = (&fx.app, format!("/api/v1/sessions/{id}/events"), token.to_owned());
            async move { post(app, &token, &path, &body).await }
        };
        let (s, r) = ev(&fx.nurse, json!({"kind": "checked_in", "at": ago(t0, 160),
            "escort": {"name": "Sam Rivers", "phone": "+1 555 010 0199"}, "escort_confirmed_in_person": true,
            "state_of_mind": {"mood": 6, "alcohol_or_substances_last_12h": false, "intoxication_signs": false},
            "pregnancy": "not_applicable"})).await?;
        assert_eq!(s, 201, "{r}");
        let (s, r) = post(&fx.app, &fx.nurse, &format!("/api/v1/sessions/{id}/vitals"),
            &json!({"systolic": 130, "diastolic": 80, "heart_rate": 72, "spo2": 98, "resp_rate": 14, "recorded_at": ago(t0, 155), "at": ago(t0, 155)})).await?;
        assert_eq!(s, 201, "{r}");
        let (s, r) = post(&fx.app, &fx.therapist, &format!("/api/v1/sessions/{id}/scores"),
            &json!({"moaas": 5, "cadss23": 0, "recorded_at": ago(t0, 155), "at": ago(t0, 155)})).await?;
        assert_eq!(s, 201, "{r}");
        let (s, r) = post(&fx.app, &fx.prescriber, &format!("/api/v1/sessions/{id}/dose-order"),
            &json!({"request": {"protocol": "spravato-intranasal", "dose_mg": 56}, "at": ago(t0, 152)})).await?;
        assert_eq!(s, 201, "{r}");
        let (s, r) = ev(&fx.nurse, json!({"kind": "cleared_for_dosing", "at": ago(t0, 150)})).await?;
        assert_eq!(s, 201, "{r}");
        let admin = format!("/api/v1/sessions/{id}/administrations");
        let kit = |lot: &str, drawn: Value| json!({"product": "SPRAVATO 28 mg nasal spray, kit of 2 devices (56 mg)", "ndc": "50458-028-02",
            "lot": lot, "expiry": "2030-01-31", "dose_mg": 56, "route_snomed": "46713006", "at": ago(t0, 148), "drawn": drawn});
        // A lot that is not in stock is refused naming the lot, and nothing is recorded.
        let n = fx.entries().await?;
        let r = post(&fx.app, &fx.nurse, &admin, &kit("NOTINSTOCK", Value::Null)).await?;
        assert_eq!(refusal(&r), (422, "lot".into(), "lot".into()), "{}", r.1);
        // Drawing more than is on hand is refused.
        let r = post(&fx.app, &fx.nurse, &admin, &kit("24KX117", json!({"containers": 500}))).await?;
        assert_eq!(refusal(&r).1, "insufficient_stock", "{}", r.1);
        assert_eq!(fx.entries().await?, n);
        // Two kits are drawn (4 devices) for a 56 mg dose.
        let (s, r) = post(&fx.app, &fx.nurse, &admin, &kit("24KX117", json!({"containers": 2}))).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(fx.on_hand("24KX117").await?, before - 112.0);
        // While the dose is being given, nothing of the draw can be wasted yet.
        let (_, l) = get(&fx.app, &fx.nurse, &format!("/api/v1/cs/ledger?limit=500&location={}&kind=draw", fx.location)).await?;
        let open = l["items"].as_array().unwrap().iter()
            .find(|e| e["entry"]["detail"]["session"] == id.as_str()).cloned().expect("the session's draw");
        let early = json!({"method": "x", "witness": fx.witness("prescriber")});
        let r = post(&fx.app, &fx.nurse, &format!("/api/v1/cs/draws/{}/waste", open["id"].as_str().unwrap()), &early).await?;
        assert_eq!(refusal(&r), (422, "draw".into(), "draw".into()), "{}", r.1);
        for m in [145, 140] {
            let (s, r) = ev(&fx.nurse, json!({"kind": "device_given", "at": ago(t0, m)})).await?;
            assert_eq!(s, 201, "{r}");
        }
        // The last device ends the administration: 56 mg given, 56 mg of the draw left to waste.
        let (_, l) = get(&fx.app, &fx.nurse, &format!("/api/v1/cs/ledger?limit=500&location={}&kind=administration", fx.location)).await?;
        let given = l["items"].as_array().unwrap().iter()
            .find(|e| e["entry"]["detail"]["session"] == id.as_str()).cloned().expect("the administration entry of the session");
        assert_eq!(given["line"]["amount_mg"], "56", "{given}");
        assert!(given["line"]["patient_address"].is_string(), "{given}");
        let draw = given["entry"]["detail"]["draw"].as_str().unwrap().to_owned();
        // The session page says what was drawn and what is still to waste.
        let (browser, _) = fx.app.browser_login("nurse@demo.kapstone.test", PASSWORD).await?;
        let page = browser.get(fx.app.url(&format!("/sessions/{id}"))).send().await?.text().await?;
        assert!(page.contains("Drew 2 containers of SPRAVATO") && page.contains("56 mg still to waste"), "{page}");
        let waste = |witness: Value| json!({"method": "Unused devices destroyed in the drug-waste container", "witness": witness});
        let path = format!("/api/v1/cs/draws/{draw}/waste");
        // The witness cannot be the person recording; a wrong password and a front-desk witness
        // are refused; so is waste without a witness (the demo location requires one).
        let r = post(&fx.app, &fx.nurse, &path, &waste(fx.witness("nurse"))).await?;
        assert_eq!(refusal(&r), (422, "witness".into(), "witness".into()), "{}", r.1);
        let r = post(&fx.app, &fx.nurse, &path, &waste(json!({"email": "prescriber@demo.kapstone.test", "password": "wrong"}))).await?;
        assert_eq!(refusal(&r).1, "witness", "{}", r.1);
        let r = post(&fx.app, &fx.nurse, &path, &waste(fx.witness("frontdesk"))).await?;
        assert_eq!(refusal(&r).1, "witness", "{}", r.1);
        let r = post(&fx.app, &fx.nurse, &path, &json!({"method": "x"})).await?;
        assert_eq!(refusal(&r).1, "witness", "{}", r.1);
        let (s, r) = post(&fx.app, &fx.nurse, &path, &waste(fx.witness("prescriber"))).await?;
        assert_eq!(s, 201, "{r}");
        assert_eq!(r["entries"][0]["kind"], "waste");
        let page = browser.get(fx.app.url(&format!("/sessions/{id}"))).send().await?.text().await?;
        assert!(page.contains("wasted 56 mg") && !page.contains("still to waste"), "{page}");
        // Fully accounted for: a second waste is refused, and so is recording the dose again.
        let r = post(&fx.app, &fx.nurse, &path, &waste(fx.witness("prescriber"))).await?;
        assert_eq!(refusal(&r).1, "draw", "{}", r.1);
        let r = post(&fx.app, &fx.nurse, &format!("/api/v1/cs/draws/{draw}/administration"), &json!({"amount_mg": "56"})).await?;
        assert_eq!(refusal(&r), (422, "draw".into(), "draw".into()), "{}", r.1);
        // The dispensing log by patient lists the administration.
        let (s, log) = get(&fx.app, &fx.nurse, &format!("/api/v1/patients/{}/dispensing", me["id"].as_str().unwrap())).await?;
        assert_eq!(s, 200, "{log}");
        assert!(log["items"].as_array().unwrap().iter().any(|e| e["entry"]["detail"]["session"] == id.as_str()), "{log}");
        assert!(kapstone_store::ledger::verify(&fx.app.db).await?.is_ok());
        Ok(())
    }

    async fn an_edited_or_deleted_entry_breaks_the_chain(b) {
        let fx = Fx::new(b).await?;
        assert!(kapstone_store::ledger::verify(&fx.app.db).await?.is_ok());
        // Someone with database access lifts the append-only guard and edits an amount.
        let lift = match fx.app.backend {
            kapstone_store::Backend::Sqlite => "DROP TRIGGER cs_ledger_entries_no_update",
            kapstone_store::Backend::Postgres => "ALTER TABLE cs_ledger_entries DISABLE TRIGGER cs_ledger_entries_append_only",
        };
        fx.app.raw_sql(lift).await?;
        fx.app.raw_sql("UPDATE cs_ledger_entries SET change_ug = change_ug + 1000 WHERE seq = 3").await?;
        let broken = kapstone_store::ledger::verify(&fx.app.db).await?;
        let (_, brk) = broken.expect_err("an edited entry is found");
        assert!(brk.to_string().contains("entry 3"), "{brk}");
        Ok(())
    }

    async fn the_pages_show_what_is_due_and_record_a_receipt(b) {
        let fx = Fx::new(b).await?;
        let (nurse, _) = fx.app.browser_login("nurse@demo.kapstone.test", PASSWORD).await?;
        let page = nurse.get(fx.app.url("/cs")).send().await?.text().await?;
        assert!(page.contains("Controlled substances") && page.contains("What is due"), "{page}");
        assert!(page.contains("Biennial inventory due soon"), "the inventory due soon is shown");
        assert!(page.contains("/cs/discrepancies/") && page.contains("KET2291"), "the open discrepancy and the lots");
        assert!(page.contains("<label for=\"receipt-lot\">Lot</label>"), "labelled forms");
        // The receipt form: a refusal names the field and changes nothing; then it is recorded.
        let csrf = fx.app.csrf_of(&nurse).await?;
        let product = fx.product(VIAL_50);
        let n = fx.entries().await?;
        let form = |containers: &str| vec![("csrf_token", csrf.clone()), ("location", fx.location.clone()), ("product", product.clone()),
            ("lot", "PAGE01".into()), ("expiry", "2031-05-31".into()), ("containers", containers.into()),
            ("supplier_name", "Synthetic Pharma Supply".into()), ("supplier_address", "1 Warehouse Way".into()),
            ("supplier_dea_number", "RS1234563".into()), ("invoice", "INV-9".into())];
        let r = nurse.post(fx.app.url("/cs/receipts")).form(&form("0")).send().await?;
        assert_eq!(r.status(), 422);
        let shown = r.text().await?;
        assert!(shown.contains("role=\"alert\"") && shown.contains("(containers)"), "{shown}");
        assert_eq!(fx.entries().await?, n);
        let r = nurse.post(fx.app.url("/cs/receipts")).form(&form("3")).send().await?;
        assert_eq!(r.status(), 303);
        assert_eq!(fx.on_hand("PAGE01").await?, 1500.0);
        // A return to a reverse distributor, with its document.
        let transfer = |full: &str| vec![("csrf_token", csrf.clone()), ("location", fx.location.clone()), ("product", product.clone()),
            ("lot", "PAGE01".into()), ("purpose", "reverse_distributor".into()), ("full_containers", full.into()),
            ("recipient_name", "Synthetic Returns Co".into()), ("recipient_address", "9 Return Rd".into()),
            ("recipient_dea_number", "RR1234563".into()), ("document", "RD-0042".into())];
        let r = nurse.post(fx.app.url("/cs/transfers")).form(&transfer("9")).send().await?;
        assert_eq!(r.status(), 422, "more than on hand");
        let r = nurse.post(fx.app.url("/cs/transfers")).form(&transfer("1")).send().await?;
        assert_eq!(r.status(), 303);
        assert_eq!(fx.on_hand("PAGE01").await?, 1000.0);
        // The count form lists every lot; a count of the new lot that agrees opens nothing.
        let page = nurse.get(fx.app.url("/cs?saved=receipt")).send().await?.text().await?;
        assert!(page.contains("The receipt is recorded") && page.contains("PAGE01"), "{page}");
        // The report: on screen, and as CSV with the patients' names and addresses.
        let report = nurse.get(fx.app.url(&format!("/cs/report?location={}", fx.location))).send().await?.text().await?;
        assert!(report.contains("Schedule III transactions") && report.contains("administration"), "{report}");
        let csv = nurse.get(fx.app.url(&format!("/cs/report.csv?location={}", fx.location))).send().await?;
        assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
        let csv = csv.text().await?;
        assert!(csv.starts_with("seq,occurred_at,kind,product"), "{csv}");
        assert!(csv.lines().any(|l| l.contains(",administration,") && l.contains("Street")), "{csv}");
        let bad = nurse.get(fx.app.url(&format!("/cs/report?location={}&from=yesterday", fx.location))).send().await?;
        assert_eq!(bad.status(), 422);
        assert!(bad.text().await?.contains("(from)"));
        // The discrepancy's page; the nurse adds a note, and is not offered the judgement.
        let (_, d) = get(&fx.app, &fx.nurse, "/api/v1/cs/discrepancies?open=true").await?;
        let id = d["items"][0]["id"].as_str().unwrap().to_owned();
        let page = nurse.get(fx.app.url(&format!("/cs/discrepancies/{id}"))).send().await?.text().await?;
        assert!(page.contains("Investigation") && !page.contains("It is a theft or significant loss"), "{page}");
        let r = nurse.post(fx.app.url(&format!("/cs/discrepancies/{id}")))
            .form(&[("csrf_token", csrf.as_str()), ("step", "note"), ("text", "Recounted with the prescriber")]).send().await?;
        assert_eq!(r.status(), 303);
        let page = nurse.get(fx.app.url(&format!("/cs/discrepancies/{id}"))).send().await?.text().await?;
        assert!(page.contains("Recounted with the prescriber"), "{page}");
        // The therapist has no controlled-substance pages and no link to them.
        let (therapist, _) = fx.app.browser_login("therapist@demo.kapstone.test", PASSWORD).await?;
        assert_eq!(therapist.get(fx.app.url("/cs")).send().await?.status(), 403);
        let home = therapist.get(fx.app.url("/")).send().await?.text().await?;
        assert!(!home.contains("href=\"/cs\""), "no link for a therapist");
        // The registry is the admin's and the prescriber's.
        let (admin, _) = fx.app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        let page = admin.get(fx.app.url("/cs/registry")).send().await?.text().await?;
        assert!(page.contains("BA1234563") && page.contains("Add a product"), "{page}");
        // The admin's home lists the open discrepancy and the inventory due until they are done.
        let home = admin.get(fx.app.url("/")).send().await?.text().await?;
        assert!(home.contains("Controlled-substance discrepancy found") && home.contains("biennial inventory due by"), "{home}");
        assert_eq!(nurse.get(fx.app.url("/cs/registry")).send().await?.status(), 403);
        Ok(())
    }

    async fn a_new_location_takes_its_initial_inventory_before_anything_else(b) {
        let fx = Fx::new(b).await?;
        let (s, loc) = post(&fx.app, &fx.admin, "/api/v1/locations", &json!({"name": "Second site", "time_zone": "America/Chicago"})).await?;
        assert_eq!(s, 201, "{loc}");
        let location = loc["id"].as_str().unwrap().to_owned();
        let registration = json!({"dea_number": "BB1234563", "registrant": "Dr. Riley Prescriber", "address": "2 Second St",
            "phone": "+1 555 010 0101", "contact": "Dr. Riley Prescriber", "storage_note": "Locked cabinet, room 1",
            "holidays": ["2026-12-25"]});
        let r = fx.app.client().put(fx.app.url(&format!("/api/v1/cs/locations/{location}/registration"))).bearer_auth(&fx.admin).json(&registration).send().await?;
        assert_eq!(r.status(), 200);
        // Saving again without the holidays keeps them (only what is sent changes).
        let mut again = registration.clone();
        again.as_object_mut().unwrap().remove("holidays");
        let r = fx.app.client().put(fx.app.url(&format!("/api/v1/cs/locations/{location}/registration"))).bearer_auth(&fx.prescriber).json(&again).send().await?;
        let v: Value = r.json().await?;
        assert_eq!(v["settings"]["holidays"], json!(["2026-12-25"]), "{v}");
        assert_eq!(v["settings_version"], 2);
        let product = fx.product(VIAL_50);
        let receipt = json!({"location": location, "product": product, "lot": "SHELF1", "expiry": "2031-01-31",
            "supplier": {"name": "S", "address": "A", "dea_number": "RS1234563"}, "containers": 1});
        // Nothing before the initial inventory.
        let r = post(&fx.app, &fx.nurse, "/api/v1/cs/receipts", &receipt).await?;
        assert_eq!(refusal(&r), (422, "inventory".into(), "location".into()), "{}", r.1);
        // Stock on the shelf: its lot is registered, then the initial inventory counts it.
        let (s, r) = post(&fx.app, &fx.admin, "/api/v1/cs/lots", &json!({"product": product, "lot": "SHELF1", "expiry": "2031-01-31"})).await?;
        assert_eq!(s, 201, "{r}");
        let status = async || -> anyhow::Result<Value> {
            let (s, o) = get(&fx.app, &fx.nurse, &format!("/api/v1/cs/overview?location={location}")).await?;
            anyhow::ensure!(s == 200, "{o}");
            Ok(o["inventory_status"].clone())
        };
        assert_eq!(status().await?["status"], "initial_needed");
        let initial = json!({"location": location, "kind": "initial", "taken_at": "opening_of_business",
            "lines": [{"product": product, "lot": "SHELF1", "full_containers": 2}]});
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/counts", &initial).await?;
        assert_eq!(s, 201, "{r}");
        let after = status().await?;
        assert!(after["status"] == "current" && after["remind_from"].is_string(), "{after}");
        assert_eq!(r["discrepancies"].as_array().unwrap().len(), 0, "the initial inventory has nothing to differ from");
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/counts", &initial).await?;
        assert_eq!(refusal(&(s, r.clone())).2, "kind", "one initial inventory: {r}");
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/receipts", &receipt).await?;
        assert_eq!(s, 201, "{r}");
        let (_, b) = get(&fx.app, &fx.nurse, &format!("/api/v1/cs/balance?location={location}")).await?;
        assert_eq!(b["items"][0]["on_hand_mg"], 1500.0, "{b}");
        Ok(())
    }

    async fn every_kind_of_entry_and_discrepancy_step_reads_back_as_documented(b) {
        // Issue 8: the document describes each kind of entry and each step of a discrepancy;
        // these produce the ones the other tests only write, so their answers are checked too.
        let fx = Fx::new(b).await?;
        let product = fx.product(VIAL_50);
        let stock = |extra: Value| {
            let mut v = json!({"location": fx.location, "product": product, "lot": "LOT88B"});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            v
        };
        let supplier = json!({"name": "Synthetic Pharma Supply", "address": "1 Warehouse Way", "dea_number": "RS1234563"});
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/receipts",
            &stock(json!({"expiry": "2031-03-31", "supplier": supplier, "containers": 4}))).await?;
        assert_eq!(s, 201, "{r}");
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/transfers", &stock(json!({"purpose": "return_to_supplier",
            "recipient": supplier, "measure": {"containers": 1}, "document": "RMA-7"}))).await?;
        assert_eq!(s, 201, "transfer: {r}");
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/destructions", &stock(json!({"reason": {"other": "Recalled by the maker"},
            "full_containers": 1, "partial": {"volume_ul": 2000}, "method": "Rendered non-retrievable with a denaturing kit",
            "witnesses": [fx.witness("nurse"), fx.witness("prescriber")]}))).await?;
        assert_eq!(s, 201, "destruction: {r}");
        let destroyed = r["entries"][0]["id"].as_str().unwrap().to_owned();
        let (s, form) = get(&fx.app, &fx.nurse, &format!("/api/v1/cs/entries/{destroyed}/form-41")).await?;
        assert_eq!((s, form["reason"].as_str(), form["partial"].is_string()), (200, Some("Recalled by the maker"), true), "{form}");
        let (s, r) = post(&fx.app, &fx.nurse, "/api/v1/cs/adjustments",
            &stock(json!({"direction": "increase", "amount_mg": "5", "reason": "Recorded in error"}))).await?;
        assert_eq!(s, 201, "{r}");
        let adjusted = r["entries"][0]["id"].as_str().unwrap().to_owned();
        let (s, r) = post(&fx.app, &fx.nurse, &format!("/api/v1/cs/entries/{adjusted}/reversal"), &json!({"reason": "Nothing was found"})).await?;
        assert_eq!(s, 201, "{r}");
        let (s, l) = get(&fx.app, &fx.nurse, &format!("/api/v1/cs/ledger?location={}&product={product}&lot=LOT88B", fx.location)).await?;
        assert_eq!(s, 200, "{l}");
        let kinds: Vec<&str> = l["items"].as_array().unwrap().iter().map(|e| e["entry"]["detail"]["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["receipt", "transfer_out", "destruction", "adjustment", "reversal"], "{l}");
        let (s, lot) = get(&fx.app, &fx.nurse, &format!("/api/v1/cs/lot?location={}&product={product}&lot=LOT88B", fx.location)).await?;
        assert_eq!((s, lot["on_hand_mg"].as_f64()), (200, Some(900.0)), "{lot}");

        // Discrepancies: one judged not significant and closed; one judged a loss a month ago,
        // whose notice is overdue until it is sent (late), then reported and closed.
        let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
        let month_ago = today.checked_sub(jiff::Span::new().days(30))?.to_string();
        let two_days_ago = today.checked_sub(jiff::Span::new().days(2))?.to_string();
        let incident = |found_on: &str| json!({"location": fx.location, "description": "A container is missing", "found_on": found_on});
        let (s, small) = post(&fx.app, &fx.prescriber, "/api/v1/cs/discrepancies", &incident(&two_days_ago)).await?;
        assert_eq!(s, 201, "{small}");
        let events = format!("/api/v1/cs/discrepancies/{}/events", small["id"].as_str().unwrap());
        let (s, v) = post(&fx.app, &fx.prescriber, &events, &json!({"kind": "judged_not_significant",
            "reason": "Found in the wrong cabinet", "factors": ["quantity_relative_to_business"]})).await?;
        assert_eq!((s, v["discrepancy"]["judgement"]["judgement"].as_str()), (201, Some("not_significant")), "{v}");
        let (s, v) = post(&fx.app, &fx.prescriber, &events, &json!({"kind": "closed", "summary": "Returned to stock"})).await?;
        assert_eq!((s, v["open"].as_bool(), v["discrepancy"]["closed"][1].as_str()), (201, Some(false), Some("Returned to stock")), "{v}");
        let (s, loss) = post(&fx.app, &fx.prescriber, "/api/v1/cs/discrepancies", &incident(&month_ago)).await?;
        assert_eq!(s, 201, "{loss}");
        let events = format!("/api/v1/cs/discrepancies/{}/events", loss["id"].as_str().unwrap());
        let (s, v) = post(&fx.app, &fx.prescriber, &events, &json!({"kind": "judged_theft_or_loss", "what": "theft",
            "discovered_on": month_ago, "reason": "Break-in", "factors": ["likely_diversion"]})).await?;
        assert_eq!((s, v["notice"]["status"].as_str(), v["form_106"]["status"].as_str()), (201, Some("overdue"), Some("due")), "{v}");
        let (s, v) = post(&fx.app, &fx.prescriber, &events, &json!({"kind": "notice_sent", "on": two_days_ago, "to": "DEA field office"})).await?;
        assert_eq!((s, v["notice"]["status"].as_str(), v["notice"]["late"].as_bool()), (201, Some("done"), Some(true)), "{v}");
        let (s, v) = post(&fx.app, &fx.prescriber, &events, &json!({"kind": "form106_submitted", "on": two_days_ago, "reference": "F106-1"})).await?;
        assert_eq!((s, v["form_106"]["late"].as_bool(), v["discrepancy"]["form_106"][1].as_str()), (201, Some(false), Some("F106-1")), "{v}");
        let (s, v) = post(&fx.app, &fx.prescriber, &events, &json!({"kind": "closed", "summary": "Reported"})).await?;
        assert_eq!((s, v["open"].as_bool()), (201, Some(false)), "{v}");
        let (s, d) = get(&fx.app, &fx.prescriber, "/api/v1/cs/discrepancies").await?;
        assert_eq!(s, 200, "{d}");
        Ok(())
    }
}
