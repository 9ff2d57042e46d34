//! Protocol loading and the refusals of `Protocol::validate`.

use super::*;

fn bundled() -> ProtocolSet {
    ProtocolSet::bundled().unwrap()
}

fn file(name: &str) -> &'static str {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, j)| *j).unwrap()
}

/// The bundled file `name` with one JSON value replaced (`pointer` as in RFC 6901).
fn edited(name: &str, pointer: &str, value: Value) -> String {
    let mut v: Value = serde_json::from_str(file(name)).unwrap();
    *v.pointer_mut(pointer).unwrap() = value;
    v.to_string()
}

/// Several edits at once (the observation time is written twice: for the dose and for DC-01).
fn edited_all(name: &str, edits: &[(&str, Value)]) -> String {
    let mut v: Value = serde_json::from_str(file(name)).unwrap();
    for (pointer, value) in edits {
        *v.pointer_mut(pointer).unwrap() = value.clone();
    }
    v.to_string()
}

fn refusal(json: &str) -> ProtocolError {
    Protocol::parse(json).unwrap_err()
}

#[test]
fn the_five_bundled_protocols_parse_one_per_route() {
    let set = bundled();
    for route in Route::ALL {
        let p = set.get(route);
        assert_eq!(p.route, route);
        assert_eq!(p.version, "2026.1");
        assert_eq!(set.find(&p.id), Some(p));
        assert_eq!(set.find(route.as_str()), Some(p));
    }
    // Each file is named after its id.
    for (name, json) in BUNDLED {
        assert_eq!(format!("{}.json", Protocol::parse(json).unwrap().id), name);
    }
}

#[test]
fn bundled_values_are_the_spec_defaults() {
    let set = bundled();
    let DoseRule::MgPerKg(iv) = &set.get(Route::IntravenousRacemic).dose else { panic!("IV is mg/kg") };
    assert_eq!(
        (
            iv.default_mg_per_kg,
            iv.override_above_mg_per_kg,
            iv.block_at_or_above_mg_per_kg,
            iv.default_infusion_minutes
        ),
        (0.5, 0.75, 1.0, Some(40.0))
    );
    assert_eq!((iv.rounding_increment_mg, iv.weight_basis, iv.weight_max_age_days), (0.1, WeightBasis::Actual, 30));
    let DoseRule::MgPerKg(im) = &set.get(Route::IntramuscularRacemic).dose else { panic!("IM is mg/kg") };
    assert_eq!((im.override_above_mg_per_kg, im.block_at_or_above_mg_per_kg), (1.0, 6.5));
    let DoseRule::FixedMgRange(sl) = &set.get(Route::SublingualLozenge).dose else { panic!("SL is a range") };
    assert_eq!((sl.min_mg, sl.max_mg), (100.0, 400.0));
    assert_eq!(set.get(Route::SublingualLozenge).stock.tablet_strengths_mg(), vec![100.0, 50.0]);
    let spravato = set.get(Route::SpravatoIntranasal);
    let DoseRule::Devices(d) = &spravato.dose else { panic!("Spravato is devices") };
    assert_eq!((d.mg_per_device, d.allowed_doses_mg.as_slice(), d.day1_dose_mg), (28, &[56, 84][..], 56));
    assert_eq!((d.older_adult_start.as_ref(), d.min_minutes_between_devices), (None, 5));
    assert_eq!((spravato.observation_minutes, spravato.observation_from), (120, ObservationFrom::FirstDevice));
    let ndcs: Vec<&str> = spravato.stock.device_kits.iter().map(|k| k.ndc.as_str()).collect();
    assert_eq!(ndcs, ["50458-028-02", "50458-028-03"]);
    let DoseRule::Applications(nasal) = &set.get(Route::IntranasalRacemic).dose else { panic!("IN is applications") };
    assert_eq!(
        (nasal.mg_per_application, nasal.default_applications, nasal.min_minutes_between_applications),
        (10.0, 5, 5)
    );
    assert_eq!(set.get(Route::IntravenousRacemic).stock.liquid_mg_per_ml(), vec![10.0, 50.0, 100.0]);
    assert_eq!(set.get(Route::IntravenousRacemic).observation_minutes, 60);
    let codes: Vec<&str> = Route::ALL.iter().map(|r| set.get(*r).route_code.code.as_str()).collect();
    assert_eq!(codes, ["46713006", "47625008", "78421000", "37839007", "46713006"]);
}

#[test]
fn an_iv_block_above_one_mg_per_kg_is_refused() {
    let e = refusal(&edited("intravenous-racemic.json", "/dose/mg_per_kg/block_at_or_above_mg_per_kg", 1.5.into()));
    assert_eq!(e.path, "dose.mg_per_kg.block_at_or_above_mg_per_kg");
    assert!(e.message.contains("never above 1 mg/kg"), "{e}");
    // A lower block is the medical director's choice.
    let lower = edited("intravenous-racemic.json", "/dose/mg_per_kg/block_at_or_above_mg_per_kg", 0.9.into());
    assert!(Protocol::parse(&lower).is_ok());
}

#[test]
fn an_im_block_above_six_and_a_half_mg_per_kg_is_refused() {
    let e = refusal(&edited("intramuscular-racemic.json", "/dose/mg_per_kg/block_at_or_above_mg_per_kg", 7.into()));
    assert_eq!(e.path, "dose.mg_per_kg.block_at_or_above_mg_per_kg");
}

#[test]
fn the_override_limit_must_be_below_the_block() {
    let e = refusal(&edited("intravenous-racemic.json", "/dose/mg_per_kg/override_above_mg_per_kg", 1.0.into()));
    assert_eq!(e.path, "dose.mg_per_kg.override_above_mg_per_kg");
    let e = refusal(&edited("intravenous-racemic.json", "/dose/mg_per_kg/default_mg_per_kg", 0.8.into()));
    assert_eq!(e.path, "dose.mg_per_kg.default_mg_per_kg");
}

#[test]
fn numbers_must_be_positive() {
    let e = refusal(&edited("intravenous-racemic.json", "/dose/mg_per_kg/rounding_increment_mg", 0.into()));
    assert_eq!(e.path, "dose.mg_per_kg.rounding_increment_mg");
    let e = refusal(&edited("intravenous-racemic.json", "/stock/vials/1/mg_per_ml", (-50).into()));
    assert_eq!(e.path, "stock.vials[1].mg_per_ml");
    let e = refusal(&edited("sublingual-lozenge.json", "/dose/fixed_mg_range/min_mg", 500.into()));
    assert_eq!(e.path, "dose.fixed_mg_range.min_mg");
}

#[test]
fn a_spravato_observation_of_90_minutes_is_refused() {
    let e = refusal(&edited("spravato-intranasal.json", "/observation_minutes", 90.into()));
    assert_eq!(e.path, "observation_minutes");
    assert!(e.message.contains("120"));
    // Longer is allowed, and so is counting from the last device, when DC-01 says the same.
    let longer =
        [("/observation_minutes", 150.into()), ("/monitoring/discharge/minimum_observation/minutes", 150.into())];
    assert!(Protocol::parse(&edited_all("spravato-intranasal.json", &longer)).is_ok());
    let e = refusal(&edited("spravato-intranasal.json", "/observation_minutes", 150.into()));
    assert_eq!(e.path, "monitoring.discharge.minimum_observation.minutes");
    let last = [
        ("/observation_from", "last_device".into()),
        ("/monitoring/discharge/minimum_observation/from", "last_device".into()),
    ];
    assert!(Protocol::parse(&edited_all("spravato-intranasal.json", &last)).is_ok());
    let e = refusal(&edited("spravato-intranasal.json", "/observation_from", "last_device".into()));
    assert_eq!(e.path, "monitoring.discharge.minimum_observation.from");
    let e = refusal(&edited("spravato-intranasal.json", "/observation_from", "end_of_infusion".into()));
    assert_eq!(e.path, "observation_from");
}

#[test]
fn a_spravato_device_gap_of_3_minutes_is_refused() {
    let e = refusal(&edited("spravato-intranasal.json", "/dose/devices/min_minutes_between_devices", 3.into()));
    assert_eq!(e.path, "dose.devices.min_minutes_between_devices");
    assert!(
        Protocol::parse(&edited("spravato-intranasal.json", "/dose/devices/min_minutes_between_devices", 10.into()))
            .is_ok()
    );
}

#[test]
fn spravato_label_values_cannot_be_changed() {
    let e = refusal(&edited("spravato-intranasal.json", "/dose/devices/mg_per_device", 14.into()));
    assert_eq!(e.path, "dose.devices.mg_per_device");
    let e = refusal(&edited("spravato-intranasal.json", "/dose/devices/day1_dose_mg", 84.into()));
    assert_eq!(e.path, "dose.devices.day1_dose_mg");
    let e =
        refusal(&edited("spravato-intranasal.json", "/dose/devices/allowed_doses_mg", serde_json::json!([56, 112])));
    assert_eq!(e.path, "dose.devices.allowed_doses_mg[1]");
    let e = refusal(&edited("spravato-intranasal.json", "/dose/devices/allowed_doses_mg", serde_json::json!([84])));
    assert_eq!(e.path, "dose.devices.allowed_doses_mg");
    // 56 mg only is stricter than the label, so allowed.
    assert!(
        Protocol::parse(&edited("spravato-intranasal.json", "/dose/devices/allowed_doses_mg", serde_json::json!([56])))
            .is_ok()
    );
    let e = refusal(&edited("spravato-intranasal.json", "/stock/device_kits/0/mg_per_device", 14.into()));
    assert_eq!(e.path, "stock.device_kits[0].mg_per_device");
}

#[test]
fn the_older_adult_start_is_28_mg_from_65() {
    let option = |age: u8, mg: u16| {
        let mut json = edited(
            "spravato-intranasal.json",
            "/dose/devices/older_adult_start",
            serde_json::json!({"age_at_or_above": age, "day1_dose_mg": mg}),
        );
        let mut v: Value = serde_json::from_str(&json).unwrap();
        v["dose"]["devices"]["sources"]["older_adult_start"] = "ex-US label, KAP-SPEC 4.2".into();
        json = v.to_string();
        Protocol::parse(&json)
    };
    assert!(option(65, 28).is_ok());
    assert_eq!(option(60, 28).unwrap_err().path, "dose.devices.older_adult_start.age_at_or_above");
    assert_eq!(option(65, 14).unwrap_err().path, "dose.devices.older_adult_start.day1_dose_mg");
}

#[test]
fn errors_name_the_json_path_of_the_field() {
    let e = refusal(&edited("intravenous-racemic.json", "/dose/mg_per_kg/block_at_or_above_mg_per_kg", "one".into()));
    assert_eq!(e.path, "dose.mg_per_kg.block_at_or_above_mg_per_kg");
    let mut v: Value = serde_json::from_str(file("intravenous-racemic.json")).unwrap();
    v["dose"]["mg_per_kg"]["block_above_mg_per_kg"] = 0.9.into();
    let e = refusal(&v.to_string());
    assert_eq!(e.path, "dose.mg_per_kg.block_above_mg_per_kg");
    assert!(e.message.contains("unknown field `block_above_mg_per_kg`"), "{e}");
    let e = refusal(&edited("intravenous-racemic.json", "/stock/vials/2/mg_per_ml", Value::Null));
    assert_eq!(e.path, "stock.vials[2].mg_per_ml");
    let e = refusal(&edited("intravenous-racemic.json", "/route", "oral".into()));
    assert_eq!(e.path, "route");
    assert!(refusal("{not json").message.starts_with("not valid JSON"));
}

#[test]
fn the_dose_kind_and_stock_must_suit_the_route() {
    let sl: Value = serde_json::from_str(file("sublingual-lozenge.json")).unwrap();
    let e = refusal(&edited("intravenous-racemic.json", "/dose", sl["dose"].clone()));
    assert_eq!(e.path, "dose.fixed_mg_range");
    let e = refusal(&edited("intravenous-racemic.json", "/stock", sl["stock"].clone()));
    assert_eq!(e.path, "stock.vials");
    let mut im: Value = serde_json::from_str(file("intramuscular-racemic.json")).unwrap();
    im["dose"]["mg_per_kg"]["default_infusion_minutes"] = 40.into();
    let e = refusal(&im.to_string());
    assert_eq!(e.path, "dose.mg_per_kg.default_infusion_minutes");
}

#[test]
fn every_value_needs_a_source() {
    let mut v: Value = serde_json::from_str(file("intravenous-racemic.json")).unwrap();
    v["dose"]["mg_per_kg"]["sources"].as_object_mut().unwrap().remove("block_at_or_above_mg_per_kg");
    let e = refusal(&v.to_string());
    assert_eq!(e.path, "dose.mg_per_kg.sources");
    assert!(e.message.contains("block_at_or_above_mg_per_kg"));
    let e = refusal(&edited("intravenous-racemic.json", "/sources/observation_minutes", "a colleague said so".into()));
    assert_eq!(e.path, "sources.observation_minutes");
    let e = refusal(&edited("intravenous-racemic.json", "/post_session_instructions/0/source", "".into()));
    assert_eq!(e.path, "post_session_instructions[0].source");
    let mut v: Value = serde_json::from_str(file("sublingual-lozenge.json")).unwrap();
    v["dose"]["fixed_mg_range"]["sources"]["weight_basis"] = "S12".into();
    assert_eq!(refusal(&v.to_string()).path, "dose.fixed_mg_range.sources.weight_basis");
}

#[test]
fn a_mistyped_snomed_code_is_refused() {
    let e = refusal(&edited("intravenous-racemic.json", "/route_code/code", "47625009".into()));
    assert_eq!(e.path, "route_code.code");
    assert!(snomed_check_digit_ok("54471007"), "buccal route");
    assert!(snomed_check_digit_ok("284009009"));
}

#[test]
fn the_hand_out_keeps_its_required_lines() {
    let mut v: Value = serde_json::from_str(file("spravato-intranasal.json")).unwrap();
    v["post_session_instructions"].as_array_mut().unwrap().remove(0);
    let e = refusal(&v.to_string());
    assert_eq!(e.path, "post_session_instructions");
    assert!(e.message.contains("no_driving"));
}

#[test]
fn other_modules_sections_are_kept_but_stray_values_are_refused() {
    let mut v: Value = serde_json::from_str(file("intravenous-racemic.json")).unwrap();
    v["floor_board"] = serde_json::json!({"colour": "amber"});
    let p = Protocol::parse(&v.to_string()).unwrap();
    assert_eq!(p.section("floor_board"), Some(&serde_json::json!({"colour": "amber"})));
    // It round-trips, other sections included.
    let again = Protocol::parse(&p.to_json().unwrap()).unwrap();
    assert_eq!(again, p);
    let serialized: Value = serde_json::from_str(&p.to_json().unwrap()).unwrap();
    let keys: Vec<&String> = serialized.as_object().unwrap().keys().collect();
    for own in OWN_FIELDS {
        assert!(keys.iter().any(|k| *k == own), "{own} is serialized");
    }
    assert_eq!(keys.len(), OWN_FIELDS.len() + 1);
    v["observaton_minutes"] = 30.into();
    assert_eq!(refusal(&v.to_string()).path, "observaton_minutes");
}

#[test]
fn a_change_is_a_new_version() {
    let set = bundled();
    let old = set.get(Route::IntravenousRacemic);
    let mut next = old.clone();
    let DoseRule::MgPerKg(r) = &mut next.dose else { panic!("IV is mg/kg") };
    r.block_at_or_above_mg_per_kg = 0.9;
    assert_eq!(old.check_revision(&next).unwrap_err().path, "version");
    next.version = "2026.2".into();
    assert!(old.check_revision(&next).is_ok());
    let mut too_high = next.clone();
    let DoseRule::MgPerKg(r) = &mut too_high.dose else { panic!("IV is mg/kg") };
    r.block_at_or_above_mg_per_kg = 1.5;
    assert_eq!(old.check_revision(&too_high).unwrap_err().path, "dose.mg_per_kg.block_at_or_above_mg_per_kg");
    let mut renamed = next.clone();
    renamed.id = "iv".into();
    assert_eq!(old.check_revision(&renamed).unwrap_err().path, "id");
    let mut set = set;
    set.revise(next).unwrap();
    assert_eq!(set.get(Route::IntravenousRacemic).version, "2026.2");
    assert_eq!(parse_version("2026.10"), Some((2026, 10)));
    assert_eq!(parse_version("26.1"), None);
}

#[test]
fn a_set_needs_one_protocol_per_route() {
    let set = bundled();
    let mut four: Vec<Protocol> = set.iter().cloned().collect();
    four.pop();
    assert!(ProtocolSet::new(four.clone()).unwrap_err().message.contains("no protocol"));
    four.push(set.get(Route::SpravatoIntranasal).clone());
    assert!(ProtocolSet::new(four).unwrap_err().message.contains("two protocols"));
    let bad = edited("spravato-intranasal.json", "/observation_minutes", 90.into());
    let mut files: Vec<(&str, &str)> = BUNDLED.to_vec();
    files[0].1 = &bad;
    let e = ProtocolSet::from_files(&files).unwrap_err();
    assert_eq!(e.file.as_deref(), Some("spravato-intranasal.json"));
    assert!(e.to_string().starts_with("spravato-intranasal.json: observation_minutes:"), "{e}");
}

#[test]
fn ndc_layouts() {
    assert!(ndc_ok("50458-028-02"));
    assert!(ndc_ok("0409-2051-05"));
    assert!(!ndc_ok("50458-028"));
    assert!(!ndc_ok("50458-02a-02"));
}
