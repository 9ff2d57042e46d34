//! The dose calculator and the clinic's protocols over the API (KAP-SPEC 4.3, 12.5): test vectors
//! end to end, the zones, bad input named, and protocol changes as audited new versions that a
//! medical director alone may save and that never go past the label or the absolute limits.

use kapstone_testkit::{PASSWORD, TestApp, both_backends};
use serde_json::{Value, json};

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let r = app.client().post(app.url(path)).bearer_auth(token).json(body).send().await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

fn iv(mg_per_kg: f64) -> Value {
    json!({"protocol": "intravenous-racemic", "weight_kg": 80, "weight_measured_days_ago": 3,
        "dose_mg_per_kg": mg_per_kg, "stock_mg_per_ml": 50, "infusion_minutes": 40, "bag_ml": 100})
}

fn field(r: &(u16, Value)) -> (u16, &str) {
    (r.0, r.1["error"]["field"].as_str().unwrap_or(""))
}

both_backends! {
    async fn the_calculator_gives_the_test_vectors_and_the_zones(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        // TV-IV-1: 80 kg, 0.5 mg/kg over 40 min, 100 mL bag, 50 mg/mL.
        let (s, c) = post(&app, &nurse, "/api/v1/dose/calculate", &iv(0.5)).await?;
        assert_eq!(s, 200, "{c}");
        assert_eq!((c["dose_mg"].as_f64(), c["volume_ml"].as_f64()), (Some(40.0), Some(0.8)));
        assert_eq!((c["rate_mg_per_min"].as_f64(), c["pump_ml_per_h"].as_f64()), (Some(1.0), Some(150.0)));
        assert_eq!((c["zone"].as_str(), c["protocol_version"].as_str()), (Some("normal"), Some("2026.1")));
        // TV-IV-4: override; TV-IV-5 and TV-IV-7: block (at the limit is a block).
        let (_, c) = post(&app, &nurse, "/api/v1/dose/calculate", &iv(0.8)).await?;
        assert_eq!(c["zone"], "override", "{c}");
        for mg_per_kg in [2.0, 1.0] {
            let (_, c) = post(&app, &nurse, "/api/v1/dose/calculate", &iv(mg_per_kg)).await?;
            assert_eq!(c["zone"], "block", "{mg_per_kg}: {c}");
            assert_eq!(c["reasons"][0]["limit"], "block_at_or_above_mg_per_kg");
        }
        // TV-IM-2 and TV-SL-1.
        let im = json!({"protocol": "intramuscular-racemic", "weight_kg": 70, "weight_measured_days_ago": 1,
            "dose_mg_per_kg": 0.25, "stock_mg_per_ml": 100});
        let (_, c) = post(&app, &nurse, "/api/v1/dose/calculate", &im).await?;
        assert_eq!((c["dose_mg"].as_f64(), c["volume_ml"].as_f64()), (Some(17.5), Some(0.175)), "{c}");
        let sl = json!({"protocol": "sublingual-lozenge", "dose_mg": 300, "tablet_mg": 100});
        let (_, c) = post(&app, &nurse, "/api/v1/dose/calculate", &sl).await?;
        assert_eq!((c["tablets"]["count"].as_u64(), c["zone"].as_str()), (Some(3), Some("normal")), "{c}");
        app.stop().await
    }

    async fn bad_dose_input_is_named_and_the_calculator_is_for_clinicians(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let mut bad = iv(0.5);
        bad["weight_kg"] = json!(-80);
        assert_eq!(field(&post(&app, &nurse, "/api/v1/dose/calculate", &bad).await?), (422, "weight_kg"));
        let mut bad = iv(0.5);
        bad["protocol"] = json!("oral-magic");
        assert_eq!(field(&post(&app, &nurse, "/api/v1/dose/calculate", &bad).await?), (422, "protocol"));
        let mut bad = iv(0.5);
        bad["dose_mg"] = json!(40);
        let r = post(&app, &nurse, "/api/v1/dose/calculate", &bad).await?;
        assert_eq!(r.0, 422, "mg/kg or mg, not both: {}", r.1);
        let mut bad = iv(0.5);
        bad["colour"] = json!("blue");
        let r = post(&app, &nurse, "/api/v1/dose/calculate", &bad).await?;
        assert!((400..500).contains(&r.0), "unknown field: {}", r.1);
        for who in ["frontdesk", "therapist", "admin"] {
            let token = app.token(&format!("{who}@demo.kapstone.test")).await?;
            let r = post(&app, &token, "/api/v1/dose/calculate", &iv(0.5)).await?;
            assert_eq!(r.0, 403, "{who}");
        }
        app.stop().await
    }

    async fn a_medical_director_saves_a_new_protocol_version_within_the_limits(b) {
        let app = TestApp::demo(b).await?;
        let prescriber = app.token("prescriber@demo.kapstone.test").await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let list: Value = app.get_bearer(&nurse, "/api/v1/protocols").await?.json().await?;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(5), "{list}");
        let shown: Value = app.get_bearer(&nurse, "/api/v1/protocols/intravenous-racemic").await?.json().await?;
        let mut next = shown["protocol"].clone();
        assert_eq!(next["version"], "2026.1");
        next["version"] = json!("2026.2");
        next["dose"]["mg_per_kg"]["block_at_or_above_mg_per_kg"] = json!(0.9);
        let path = "/api/v1/protocols/intravenous-racemic/versions";
        let body = json!({"definition": next, "reason": "Lower block agreed at the governance meeting"});
        let r = post(&app, &nurse, path, &body).await?;
        assert_eq!(r.0, 403, "a nurse cannot change protocols");
        let r = post(&app, &prescriber, path, &json!({"definition": next, "reason": " "})).await?;
        assert_eq!(field(&r), (422, "reason"));
        // Never above the absolute IV limit of 1.0 mg/kg [S12]; the refusal names the JSON path.
        let mut too_high = next.clone();
        too_high["dose"]["mg_per_kg"]["block_at_or_above_mg_per_kg"] = json!(1.5);
        let r = post(&app, &prescriber, path, &json!({"definition": too_high, "reason": "Try"})).await?;
        assert_eq!(field(&r), (422, "definition"));
        assert!(r.1["error"]["message"].as_str().unwrap().contains("dose.mg_per_kg.block_at_or_above_mg_per_kg"), "{}", r.1);
        let (s, saved) = post(&app, &prescriber, path, &body).await?;
        assert_eq!((s, saved["version"].as_str()), (201, Some("2026.2")), "{saved}");
        // The same version again, or an older one, is refused.
        let r = post(&app, &prescriber, path, &body).await?;
        assert_eq!(field(&r), (422, "definition"));
        // The calculator now uses it: 0.95 mg/kg is blocked, and the result names the version.
        let (_, c) = post(&app, &nurse, "/api/v1/dose/calculate", &iv(0.95)).await?;
        assert_eq!((c["zone"].as_str(), c["protocol_version"].as_str()), (Some("block"), Some("2026.2")), "{c}");
        let shown: Value = app.get_bearer(&nurse, "/api/v1/protocols/intravenous-racemic").await?.json().await?;
        assert_eq!(shown["versions"][0]["reason"], "Lower block agreed at the governance meeting");
        // Spravato values cannot go below the label.
        let spravato: Value = app.get_bearer(&nurse, "/api/v1/protocols/spravato-intranasal").await?.json().await?;
        let mut short = spravato["protocol"].clone();
        short["version"] = json!("2026.2");
        short["observation_minutes"] = json!(90);
        short["monitoring"]["discharge"]["minimum_observation"]["minutes"] = json!(90);
        let r = post(&app, &prescriber, "/api/v1/protocols/spravato-intranasal/versions",
            &json!({"definition": short, "reason": "Shorter"})).await?;
        assert_eq!(field(&r), (422, "definition"), "{}", r.1);
        assert_eq!(app.count("protocol_versions").await?, 1);
        assert_eq!(app.count("audit_events WHERE action = 'protocol.change'").await?, 1);
        // Without the medical-director permission a prescriber cannot save a version.
        let (admin, _) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        let csrf = app.csrf_of(&admin).await?;
        let me: Value = app.get_bearer(&prescriber, "/api/v1/auth/me").await?.json().await?;
        let id = me["id"].as_str().unwrap();
        let r = admin.post(app.url(&format!("/admin/users/{id}/medical-director"))).form(&[("csrf_token", csrf.as_str())]).send().await?;
        assert!(r.status().is_success() || r.status().is_redirection(), "{}", r.status());
        let mut later = next.clone();
        later["version"] = json!("2026.3");
        let r = post(&app, &prescriber, path, &json!({"definition": later, "reason": "Again"})).await?;
        assert_eq!(r.0, 403);
        app.stop().await
    }
}

both_backends! {
    async fn the_protocol_pages_calculate_without_javascript_and_save_versions(b) {
        let app = TestApp::demo(b).await?;
        let (nurse, _) = app.browser_login("nurse@demo.kapstone.test", PASSWORD).await?;
        let csrf = app.csrf_of(&nurse).await?;
        let list = nurse.get(app.url("/protocols")).send().await?.text().await?;
        assert!(list.contains("/protocols/spravato-intranasal") && list.contains("120 min from first device"));
        let page = nurse.get(app.url("/protocols/intravenous-racemic")).send().await?.text().await?;
        assert!(page.contains("Calculate a dose") && !page.contains("Save as a new version"), "nurse: no edit form");
        let form = [("csrf_token", csrf.as_str()), ("weight_kg", "80"), ("weight_measured_days_ago", "2"),
            ("dose_mg_per_kg", "0.5"), ("stock_mg_per_ml", "50"), ("infusion_minutes", "40"), ("bag_ml", "100")];
        let r = nurse.post(app.url("/protocols/intravenous-racemic/calculate")).form(&form).send().await?;
        assert_eq!(r.status().as_u16(), 200);
        let page = r.text().await?;
        assert!(page.contains("Within the protocol") && page.contains("150 mL/h") && page.contains("0.8 mL"), "{page}");
        let form = [("csrf_token", csrf.as_str()), ("weight_kg", "heavy"), ("dose_mg_per_kg", "0.5")];
        let r = nurse.post(app.url("/protocols/intravenous-racemic/calculate")).form(&form).send().await?;
        assert_eq!(r.status().as_u16(), 422);
        let page = r.text().await?;
        assert!(page.contains("(weight_kg)") && page.contains("value=\"heavy\""), "the typed value is kept");
        // The medical director sees the whole protocol in an edit form; a refused draft is kept.
        let (md, _) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        let csrf = app.csrf_of(&md).await?;
        let page = md.get(app.url("/protocols/sublingual-lozenge")).send().await?.text().await?;
        assert!(page.contains("Save as a new version"));
        let r = md.post(app.url("/protocols/sublingual-lozenge"))
            .form(&[("csrf_token", csrf.as_str()), ("definition", "{not json"), ("reason", "Typo")]).send().await?;
        assert_eq!(r.status().as_u16(), 422);
        assert!(r.text().await?.contains("{not json"));
        assert_eq!(app.count("protocol_versions").await?, 0);
        app.stop().await
    }
}

both_backends! {
    async fn a_medical_director_changes_one_value_through_the_structured_form(b) {
        let app = TestApp::demo(b).await?;
        let nurse = app.token("nurse@demo.kapstone.test").await?;
        let (md, _) = app.browser_login("prescriber@demo.kapstone.test", PASSWORD).await?;
        let csrf = app.csrf_of(&md).await?;
        let override_key = "dose.mg_per_kg.override_above_mg_per_kg";
        let page = md.get(app.url("/protocols/intravenous-racemic")).send().await?.text().await?;
        for want in ["Change values", "override above (mg/kg)", &format!("name=\"{override_key}\""),
            "In force: 0.75", "Source: CONFIG-DEFAULT", "MON-05", "Advanced: edit the whole protocol as JSON",
            "Save the changes as version 2026.2"] {
            assert!(page.contains(want), "the structured form shows {want}");
        }
        // Without a reason nothing is saved, and the reason is marked.
        let r = md.post(app.url("/protocols/intravenous-racemic/values")).form(&[("csrf_token", csrf.as_str()),
            ("base_version", "2026.1"), (override_key, "0.6"), ("reason", " ")]).send().await?;
        assert_eq!(r.status().as_u16(), 422);
        let html = r.text().await?;
        assert!(html.contains("Say why the protocol changes") && html.contains("value=\"0.6\""), "refused, typed value kept");
        assert!(html.contains("name=\"reason\" value=\"\" required aria-invalid=\"true\""), "the reason is marked");
        assert_eq!(app.count("protocol_versions").await?, 0);
        // One value changed; another submitted as shown is not a change.
        let r = md.post(app.url("/protocols/intravenous-racemic/values")).form(&[("csrf_token", csrf.as_str()),
            ("base_version", "2026.1"), (override_key, "0.6"), ("dose.mg_per_kg.block_at_or_above_mg_per_kg", "1"),
            ("reason", "Governance meeting: earlier override")]).send().await?;
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.text().await?.contains("Saved as version 2026.2."));
        let shown: Value = app.get_bearer(&nurse, "/api/v1/protocols/intravenous-racemic").await?.json().await?;
        let rule = &shown["protocol"]["dose"]["mg_per_kg"];
        assert_eq!((shown["protocol"]["version"].as_str(), rule["override_above_mg_per_kg"].as_f64()), (Some("2026.2"), Some(0.6)), "{shown}");
        assert_eq!(rule["block_at_or_above_mg_per_kg"].as_f64(), Some(1.0));
        assert!(rule["sources"]["override_above_mg_per_kg"].as_str().unwrap().ends_with("medical director in version 2026.2"));
        assert_eq!(shown["versions"][0]["reason"], "Governance meeting: earlier override");
        assert_eq!(app.count("protocol_versions").await?, 1);
        assert_eq!(app.count("audit_events WHERE action = 'protocol.change' AND entity_id = 'intravenous-racemic@2026.2'").await?, 1);
        // The calculator uses it at once: 0.7 mg/kg now needs an override.
        let (_, c) = post(&app, &nurse, "/api/v1/dose/calculate", &iv(0.7)).await?;
        assert_eq!(c["zone"], "override", "{c}");

        // Below a Spravato label floor: refused next to the value, nothing saved.
        for (key, value, label, rule, id) in [
            ("observation_minutes", "90", "Minimum observation before discharge", "at least 120 minutes of observation", "v-observation-minutes"),
            ("dose.devices.min_minutes_between_devices", "4", "Wait after each device", "at least 5 minutes after each device",
                "v-dose-devices-min-minutes-between-devices"),
        ] {
            let r = md.post(app.url("/protocols/spravato-intranasal/values")).form(&[("csrf_token", csrf.as_str()),
                ("base_version", "2026.1"), (key, value), ("reason", "Shorter")]).send().await?;
            assert_eq!(r.status().as_u16(), 422, "{key}");
            let html = r.text().await?;
            assert!(html.contains(&format!("id=\"{id}-error\"")) && html.contains(label) && html.contains(rule), "{key} named");
            assert!(html.contains(&format!("value=\"{value}\" aria-describedby=\"{id}-source {id}-error\" aria-invalid=\"true\"")), "{key} kept as typed and marked");
        }
        assert_eq!(app.count("protocol_versions").await?, 1);
        assert_eq!(app.count("audit_events WHERE action = 'protocol.change'").await?, 1);
        // A form shown before the last save is refused rather than undoing it.
        let r = md.post(app.url("/protocols/intravenous-racemic/values")).form(&[("csrf_token", csrf.as_str()),
            ("base_version", "2026.1"), ("observation_minutes", "75"), ("reason", "Longer")]).send().await?;
        assert_eq!(r.status().as_u16(), 409);
        assert!(r.text().await?.contains("version 2026.2 is now in force"));
        assert_eq!(app.count("protocol_versions").await?, 1);

        // A nurse, or a prescriber without the medical-director permission, cannot.
        let (nc, _) = app.browser_login("nurse@demo.kapstone.test", PASSWORD).await?;
        let nurse_csrf = app.csrf_of(&nc).await?;
        let r = nc.post(app.url("/protocols/sublingual-lozenge/values")).form(&[("csrf_token", nurse_csrf.as_str()),
            ("base_version", "2026.1"), ("dose.fixed_mg_range.max_mg", "450"), ("reason", "More")]).send().await?;
        assert_eq!(r.status().as_u16(), 403);
        let (admin, _) = app.browser_login("admin@demo.kapstone.test", PASSWORD).await?;
        let admin_csrf = app.csrf_of(&admin).await?;
        let me: Value = app.get_bearer(&app.token("prescriber@demo.kapstone.test").await?, "/api/v1/auth/me").await?.json().await?;
        let r = admin.post(app.url(&format!("/admin/users/{}/medical-director", me["id"].as_str().unwrap())))
            .form(&[("csrf_token", admin_csrf.as_str())]).send().await?;
        assert!(r.status().is_redirection(), "{}", r.status());
        let page = md.get(app.url("/protocols/sublingual-lozenge")).send().await?.text().await?;
        assert!(!page.contains("Change values") && page.contains("Values and their sources"), "read-only without the permission");
        let r = md.post(app.url("/protocols/sublingual-lozenge/values")).form(&[("csrf_token", csrf.as_str()),
            ("base_version", "2026.1"), ("dose.fixed_mg_range.max_mg", "450"), ("reason", "More")]).send().await?;
        assert_eq!(r.status().as_u16(), 403);
        assert_eq!(app.count("protocol_versions").await?, 1);
        app.stop().await
    }
}
