//! The test vectors of KAP-SPEC 12.5 and 12.6, one test each, then the refusals and properties.

use proptest::prelude::*;
use time::macros::datetime;

use super::*;

fn set() -> ProtocolSet {
    ProtocolSet::bundled().unwrap()
}

fn protocol(route: Route) -> Protocol {
    set().get(route).clone()
}

fn iv(weight_kg: f64, mg_per_kg: f64, stock: f64) -> DoseRequest {
    DoseRequest {
        protocol: "intravenous-racemic".into(),
        weight_kg: Some(weight_kg),
        weight_measured_days_ago: Some(0),
        dose_mg_per_kg: Some(mg_per_kg),
        stock_mg_per_ml: Some(stock),
        ..DoseRequest::default()
    }
}

fn im(weight_kg: f64, mg_per_kg: f64, stock: f64) -> DoseRequest {
    DoseRequest { protocol: "intramuscular-racemic".into(), ..iv(weight_kg, mg_per_kg, stock) }
}

fn sl(dose_mg: f64) -> DoseRequest {
    DoseRequest { protocol: "sublingual-lozenge".into(), dose_mg: Some(dose_mg), ..DoseRequest::default() }
}

fn spravato(dose_mg: f64, previous: &[u16]) -> DoseRequest {
    DoseRequest {
        protocol: "spravato-intranasal".into(),
        dose_mg: Some(dose_mg),
        spravato: Some(SpravatoContext {
            indication: Some(SpravatoIndication::Trd),
            previous_doses_mg: previous.to_vec(),
            age_years: None,
        }),
        ..DoseRequest::default()
    }
}

fn limits_of(c: &DoseCalculation) -> Vec<Limit> {
    c.reasons.iter().map(|r| r.limit).collect()
}

fn at(hh: u8, mm: u8) -> UtcTs {
    let base = UtcTs::from_datetime(datetime!(2025-03-03 00:00 UTC));
    base.plus(time::Duration::minutes(i64::from(hh) * 60 + i64::from(mm)))
}

// --- KAP-SPEC 12.5 ---------------------------------------------------------------------------

#[test]
fn tv_iv_1_80_kg_at_half_a_mg_per_kg_over_40_minutes() {
    let req = DoseRequest { infusion_minutes: Some(40.0), bag_ml: Some(100.0), ..iv(80.0, 0.5, 50.0) };
    let c = set().calculate(&req).unwrap();
    assert_eq!(c.dose_mg, 40.0);
    assert_eq!(c.rate_mg_per_min, Some(1.0));
    assert_eq!(c.rate_mg_per_h, Some(60.0));
    assert_eq!(c.pump_ml_per_h, Some(150.0));
    assert_eq!(c.volume_ml, Some(0.8));
    assert_eq!(c.zone, Zone::Normal);
    assert!(c.reasons.is_empty());
}

#[test]
fn tv_iv_2_67_kg_rounds_to_33_5_mg() {
    let c = set().calculate(&iv(67.0, 0.5, 50.0)).unwrap();
    assert_eq!(c.dose_mg, 33.5);
    // The protocol's default infusion time (40 min) applies when none is given.
    assert_eq!(c.infusion_minutes, Some(40.0));
    assert_eq!(c.rate_mg_per_min, Some(0.8375));
    assert_eq!(c.rate_mg_per_h, Some(50.25));
    assert_eq!(c.pump_ml_per_h, None);
}

#[test]
fn tv_iv_3_ideal_body_weight_of_a_180_cm_man() {
    let mut p = protocol(Route::IntravenousRacemic);
    let DoseRule::MgPerKg(rule) = &mut p.dose else { panic!("IV is mg/kg") };
    rule.weight_basis = WeightBasis::Ideal;
    p.validate().unwrap();
    let req = DoseRequest {
        protocol: p.id.clone(),
        height_cm: Some(180.0),
        sex_at_birth: Some("male".into()),
        dose_mg_per_kg: Some(0.5),
        stock_mg_per_ml: Some(50.0),
        ..DoseRequest::default()
    };
    let c = calculate(&p, &req).unwrap();
    assert_eq!(c.dosing_weight_kg, Some(74.99));
    assert_eq!(c.weight_basis, Some(WeightBasis::Ideal));
    assert_eq!(c.dose_mg, 37.5);
    let ibw = devine_ideal_body_weight_kg(HeightCm::new(180.0).unwrap(), SexAtBirth::Male).unwrap();
    assert!((ibw - 74.992).abs() < 0.001, "{ibw}");
    // Devine needs male or female.
    let other = DoseRequest { sex_at_birth: Some("other".into()), ..req.clone() };
    assert_eq!(calculate(&p, &other).unwrap_err().field, "sex_at_birth");
    let no_height = DoseRequest { height_cm: None, ..req };
    assert_eq!(calculate(&p, &no_height).unwrap_err().field, "height_cm");
}

#[test]
fn tv_iv_4_0_8_mg_per_kg_needs_a_prescriber_override() {
    let c = set().calculate(&iv(80.0, 0.8, 50.0)).unwrap();
    assert_eq!(c.dose_mg, 64.0);
    assert_eq!(c.zone, Zone::Override);
    assert_eq!(limits_of(&c), [Limit::OverrideAboveMgPerKg]);
    assert!(c.reasons[0].source.contains("S19"));
}

#[test]
fn tv_iv_5_2_mg_per_kg_is_blocked() {
    let c = set().calculate(&iv(70.0, 2.0, 50.0)).unwrap();
    assert_eq!(c.dose_mg, 140.0);
    assert_eq!(c.zone, Zone::Block);
    assert_eq!(limits_of(&c), [Limit::BlockAtOrAboveMgPerKg]);
    assert!(c.reasons[0].source.contains("S12"));
}

#[test]
fn tv_iv_7_exactly_1_mg_per_kg_is_blocked() {
    let c = set().calculate(&iv(70.0, 1.0, 50.0)).unwrap();
    assert_eq!(c.dose_mg, 70.0);
    assert_eq!(c.zone, Zone::Block);
    assert_eq!(limits_of(&c), [Limit::BlockAtOrAboveMgPerKg]);
}

#[test]
fn tv_iv_6_100_mg_per_ml_iv_is_blocked_until_diluted_with_an_equal_volume() {
    let c = set().calculate(&iv(80.0, 0.5, 100.0)).unwrap();
    assert_eq!(c.zone, Zone::Block);
    assert_eq!(limits_of(&c), [Limit::UndilutedIvConcentrate]);
    assert_eq!(c.diluent_ml, None);
    let diluted = DoseRequest { diluted_with_equal_volume: true, ..iv(80.0, 0.5, 100.0) };
    let c = set().calculate(&diluted).unwrap();
    assert_eq!(c.zone, Zone::Normal);
    assert_eq!((c.volume_ml, c.diluent_ml), (Some(0.4), Some(0.4)));
}

#[test]
fn tv_im_1_70_kg_at_half_a_mg_per_kg_from_50_mg_per_ml() {
    let c = set().calculate(&im(70.0, 0.5, 50.0)).unwrap();
    assert_eq!((c.dose_mg, c.volume_ml, c.zone), (35.0, Some(0.7), Zone::Normal));
    assert_eq!(c.rate_mg_per_min, None);
}

#[test]
fn tv_im_2_70_kg_at_a_quarter_mg_per_kg_from_100_mg_per_ml() {
    let c = set().calculate(&im(70.0, 0.25, 100.0)).unwrap();
    // 100 mg/mL is not refused IM: the dilution rule is for IV.
    assert_eq!((c.dose_mg, c.volume_ml, c.zone), (17.5, Some(0.175), Zone::Normal));
}

#[test]
fn tv_sl_1_300_mg_is_three_100_mg_tablets() {
    let c = set().calculate(&sl(300.0)).unwrap();
    assert_eq!(c.tablets, Some(Tablets { count: 3, tablet_mg: 100.0 }));
    assert_eq!(c.zone, Zone::Normal);
    let fifties = DoseRequest { tablet_mg: Some(50.0), ..sl(300.0) };
    assert_eq!(set().calculate(&fifties).unwrap().tablets, Some(Tablets { count: 6, tablet_mg: 50.0 }));
    assert_eq!(set().calculate(&sl(150.0)).unwrap().tablets, Some(Tablets { count: 3, tablet_mg: 50.0 }));
}

#[test]
fn tv_sl_2_500_mg_is_outside_the_range_and_needs_an_override() {
    let c = set().calculate(&sl(500.0)).unwrap();
    assert_eq!(c.zone, Zone::Override);
    assert_eq!(limits_of(&c), [Limit::OutsideMgRange]);
    assert!(c.reasons[0].source.contains("S18"));
    assert_eq!(set().calculate(&sl(50.0)).unwrap().zone, Zone::Override);
    assert_eq!(set().calculate(&sl(400.0)).unwrap().zone, Zone::Normal);
    assert_eq!(set().calculate(&sl(100.0)).unwrap().zone, Zone::Normal);
}

#[test]
fn a_lozenge_dose_that_is_not_whole_tablets_is_refused() {
    let e = set().calculate(&sl(175.0)).unwrap_err();
    assert_eq!(e.field, "dose_mg");
    assert!(e.message.contains("100 mg, 50 mg"), "{e}");
    let e = set().calculate(&DoseRequest { tablet_mg: Some(100.0), ..sl(150.0) }).unwrap_err();
    assert_eq!(e.field, "dose_mg");
    let e = set().calculate(&DoseRequest { tablet_mg: Some(25.0), ..sl(150.0) }).unwrap_err();
    assert_eq!(e.field, "tablet_mg");
}

// --- KAP-SPEC 12.6 ---------------------------------------------------------------------------

#[test]
fn tv_spr_1_devices_five_minutes_apart_and_the_earliest_discharge() {
    let p = protocol(Route::SpravatoIntranasal);
    let c = set().calculate(&spravato(84.0, &[56])).unwrap();
    assert_eq!((c.devices, c.kit_ndc.as_deref(), c.zone), (Some(3), Some("50458-028-03"), Zone::Normal));
    assert_eq!(c.min_minutes_between, Some(5));

    let log = DeviceLog::with_times(&p, 3, &[at(10, 0), at(10, 5), at(10, 10)]).unwrap();
    assert!(log.is_complete());
    let e = DeviceLog::with_times(&p, 3, &[at(10, 0), at(10, 3)]).unwrap_err();
    assert_eq!(e.field, "device_times");
    assert!(e.message.contains("device 2 was given 3 min after device 1"), "{e}");

    // From the first device (REMS form definition, the default): 12:00; 11:55 is 115 min.
    assert_eq!(log.earliest_discharge(&p), Some(at(12, 0)));
    let e = log.check_discharge(&p, at(11, 55)).unwrap_err();
    assert_eq!(e.field, "discharge_at");
    assert!(e.message.starts_with("115 min since the first device"), "{e}");
    assert!(log.check_discharge(&p, at(12, 0)).is_ok());
    assert_eq!(log.rems_treatment_minutes(at(12, 20)), Some(140));

    // The conservative option counts from the last device: 12:10.
    let mut last = p.clone();
    last.observation_from = ObservationFrom::LastDevice;
    last.monitoring.discharge.minimum_observation.from = crate::monitoring::Anchor::LastDevice;
    last.validate().unwrap();
    assert_eq!(log.earliest_discharge(&last), Some(at(12, 10)));
    assert!(log.check_discharge(&last, at(12, 5)).is_err());
    // The REMS duration still counts from the first device.
    assert_eq!(log.rems_treatment_minutes(at(12, 20)), Some(140));
}

#[test]
fn tv_spr_2_84_mg_on_day_1_for_trd_is_rejected() {
    let c = set().calculate(&spravato(84.0, &[])).unwrap();
    assert_eq!(c.zone, Zone::Block);
    assert_eq!(limits_of(&c), [Limit::SpravatoDay1Dose]);
    let c = set().calculate(&spravato(56.0, &[])).unwrap();
    assert_eq!((c.zone, c.devices, c.kit_ndc.as_deref()), (Zone::Normal, Some(2), Some("50458-028-02")));
}

#[test]
fn spravato_84_mg_needs_a_previous_56_mg_session() {
    let c = set().calculate(&spravato(84.0, &[28])).unwrap();
    assert_eq!(limits_of(&c), [Limit::Spravato84MgBeforeA56MgSession]);
    assert_eq!(set().calculate(&spravato(84.0, &[56, 84])).unwrap().zone, Zone::Normal);
}

#[test]
fn spravato_for_mdd_with_suicidal_ideation_starts_at_84_mg() {
    let mut req = spravato(84.0, &[]);
    req.spravato.as_mut().unwrap().indication = Some(SpravatoIndication::MddWithAcuteSuicidalIdeation);
    assert_eq!(set().calculate(&req).unwrap().zone, Zone::Normal);
}

#[test]
fn spravato_doses_are_whole_devices_at_the_allowed_doses() {
    let e = set().calculate(&spravato(60.0, &[56])).unwrap_err();
    assert_eq!(e.field, "dose_mg");
    let c = set().calculate(&spravato(112.0, &[56])).unwrap();
    assert_eq!(limits_of(&c), [Limit::SpravatoDoseNotAllowed]);
    // 28 mg is not a US dose.
    assert_eq!(limits_of(&set().calculate(&spravato(28.0, &[])).unwrap()), [Limit::SpravatoDoseNotAllowed]);
    let mut no_context = spravato(56.0, &[]);
    no_context.spravato = None;
    assert_eq!(set().calculate(&no_context).unwrap_err().field, "spravato");
    no_context.spravato = Some(SpravatoContext::default());
    assert_eq!(set().calculate(&no_context).unwrap_err().field, "spravato.indication");
}

#[test]
fn the_older_adult_option_starts_at_28_mg_from_65() {
    let mut p = protocol(Route::SpravatoIntranasal);
    let DoseRule::Devices(rule) = &mut p.dose else { panic!("Spravato is devices") };
    rule.older_adult_start = Some(crate::protocol::OlderAdultStart { age_at_or_above: 65, day1_dose_mg: 28 });
    rule.sources.insert("older_adult_start".into(), "ex-US label, KAP-SPEC 4.2".into());
    p.validate().unwrap();
    let mut req = spravato(28.0, &[]);
    req.spravato.as_mut().unwrap().age_years = Some(70);
    let c = calculate(&p, &req).unwrap();
    assert_eq!((c.zone, c.devices, c.kit_ndc), (Zone::Normal, Some(1), None));
    req.spravato.as_mut().unwrap().age_years = Some(64);
    assert_eq!(calculate(&p, &req).unwrap().zone, Zone::Block);
    req.spravato.as_mut().unwrap().age_years = None;
    assert_eq!(calculate(&p, &req).unwrap_err().field, "spravato.age_years");
    // After day 1 the older-adult start no longer applies.
    req.spravato.as_mut().unwrap().previous_doses_mg = vec![28];
    assert_eq!(limits_of(&calculate(&p, &req).unwrap()), [Limit::SpravatoDoseNotAllowed]);
}

// --- Compounded nasal racemic (KAP-SPEC 4.1) -------------------------------------------------

#[test]
fn compounded_nasal_50_mg_is_five_10_mg_applications() {
    let req = DoseRequest { protocol: "intranasal-racemic".into(), dose_mg: Some(50.0), ..DoseRequest::default() };
    let c = set().calculate(&req).unwrap();
    assert_eq!(c.applications, Some(5));
    assert_eq!((c.stock_mg_per_ml, c.volume_ml, c.volume_per_application_ml), (Some(100.0), Some(0.5), Some(0.1)));
    assert_eq!((c.min_minutes_between, c.zone), (Some(5), Zone::Normal));
    let more = DoseRequest { dose_mg: Some(60.0), ..req.clone() };
    assert_eq!(limits_of(&set().calculate(&more).unwrap()), [Limit::OverrideAboveMg]);
    let odd = DoseRequest { dose_mg: Some(45.0), ..req };
    assert_eq!(set().calculate(&odd).unwrap_err().field, "dose_mg");
    let p = protocol(Route::IntranasalRacemic);
    let times: Vec<UtcTs> = (0..5).map(|i| at(9, i * 5)).collect();
    let log = DeviceLog::with_times(&p, 5, &times).unwrap();
    assert_eq!(log.earliest_discharge(&p), Some(at(11, 20)));
    assert_eq!(DeviceLog::with_times(&p, 5, &[at(9, 0), at(9, 4)]).unwrap_err().field, "application_times");
}

// --- Refusals naming the field ---------------------------------------------------------------

#[test]
fn bad_numbers_are_refused_naming_the_field() {
    for (req, field) in [
        (iv(f64::NAN, 0.5, 50.0), "weight_kg"),
        (iv(0.0, 0.5, 50.0), "weight_kg"),
        (iv(80.0, -0.5, 50.0), "dose_mg_per_kg"),
        (iv(80.0, 0.0, 50.0), "dose_mg_per_kg"),
        (iv(80.0, 0.5, 0.0), "stock_mg_per_ml"),
        (iv(80.0, 0.5, 25.0), "stock_mg_per_ml"),
        (DoseRequest { infusion_minutes: Some(0.0), ..iv(80.0, 0.5, 50.0) }, "infusion_minutes"),
        (DoseRequest { bag_ml: Some(-100.0), ..iv(80.0, 0.5, 50.0) }, "bag_ml"),
        (DoseRequest { dose_mg: Some(40.0), ..iv(80.0, 0.5, 50.0) }, "dose_mg_per_kg"),
        (DoseRequest { weight_measured_days_ago: None, ..iv(80.0, 0.5, 50.0) }, "weight_measured_days_ago"),
        (DoseRequest { stock_mg_per_ml: None, ..iv(80.0, 0.5, 50.0) }, "stock_mg_per_ml"),
        (DoseRequest { infusion_minutes: Some(10.0), ..im(80.0, 0.5, 50.0) }, "infusion_minutes"),
        (DoseRequest { dose_mg_per_kg: Some(4.0), ..sl(300.0) }, "dose_mg_per_kg"),
        (DoseRequest { stock_mg_per_ml: Some(50.0), ..sl(300.0) }, "stock_mg_per_ml"),
        (DoseRequest { protocol: "oral".into(), ..sl(300.0) }, "protocol"),
    ] {
        let e = set().calculate(&req).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
    assert_eq!(DoseMg::new(f64::INFINITY).unwrap_err().to_string(), "dose_mg: the dose must be a number above 0 mg");
}

#[test]
fn a_weight_older_than_the_protocol_allows_blocks_the_dose() {
    let req = DoseRequest { weight_measured_days_ago: Some(31), ..iv(80.0, 0.5, 50.0) };
    let c = set().calculate(&req).unwrap();
    assert_eq!((c.zone, limits_of(&c)), (Zone::Block, vec![Limit::WeightTooOld]));
    let req = DoseRequest { weight_measured_days_ago: Some(30), ..iv(80.0, 0.5, 50.0) };
    assert_eq!(set().calculate(&req).unwrap().zone, Zone::Normal);
}

#[test]
fn a_dose_in_mg_is_placed_by_its_mg_per_kg() {
    let req = DoseRequest { dose_mg_per_kg: None, dose_mg: Some(64.0), ..iv(80.0, 0.5, 50.0) };
    let c = set().calculate(&req).unwrap();
    assert_eq!((c.dose_mg_per_kg, c.zone), (Some(0.8), Zone::Override));
}

#[test]
fn rounding_never_carries_a_dose_to_the_block() {
    let c = set().calculate(&iv(70.0, 0.9999, 50.0)).unwrap();
    assert_eq!(c.dose_mg, 70.0);
    assert_eq!(c.zone, Zone::Block);
}

#[test]
fn decimal_halves_round_up() {
    assert_eq!(round_to_increment(31.95, 0.1), 32.0);
    assert_eq!(round_to_increment(37.496, 0.1), 37.5);
    assert_eq!(round_to_increment(33.44, 0.5), 33.5);
}

#[test]
fn the_result_serializes_for_the_api() {
    let c = set().calculate(&iv(80.0, 0.8, 50.0)).unwrap();
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["zone"], "override");
    assert_eq!(json["dose_mg"], 64.0);
    assert_eq!(json["volume_ml"], 1.28);
    assert_eq!(json["protocol_version"], "2026.1");
    assert_eq!(json["reasons"][0]["limit"], "override_above_mg_per_kg");
    assert!(json.get("tablets").is_none());
    let body = r#"{"protocol": "intravenous-racemic", "weight_kg": 80, "weight_measured_days_ago": 2,
        "dose_mg_per_kg": 0.5, "stock_mg_per_ml": 50, "infusion_minutes": 40, "bag_ml": 100}"#;
    let req: DoseRequest = serde_json::from_str(body).unwrap();
    assert_eq!(set().calculate(&req).unwrap().pump_ml_per_h, Some(150.0));
    assert!(serde_json::from_str::<DoseRequest>(r#"{"protocol": "x", "wieght_kg": 80}"#).is_err());
}

// --- Properties ------------------------------------------------------------------------------

fn iv_rule() -> MgPerKgRule {
    match protocol(Route::IntravenousRacemic).dose {
        DoseRule::MgPerKg(r) => r,
        _ => unreachable!("IV is mg/kg"),
    }
}

proptest! {
    #[test]
    fn volume_times_stock_is_the_dose(dose in 0.1f64..2000.0, stock in prop::sample::select(vec![10.0, 50.0, 100.0])) {
        let v = draw_volume_ml(DoseMg::new(dose).unwrap(), StockMgPerMl::new(stock).unwrap());
        prop_assert!((v * stock - dose).abs() < 1e-6);
    }

    #[test]
    fn the_zone_never_falls_as_the_mg_per_kg_rises(a in 0.01f64..3.0, b in 0.01f64..3.0) {
        let rule = iv_rule();
        let zone = |x: f64| mg_per_kg_zone(&rule, x).map_or(Zone::Normal, |r| r.zone);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(zone(lo) <= zone(hi));
    }

    #[test]
    fn a_rounded_dose_is_within_half_an_increment(weight in 20.0f64..400.0, mg_per_kg in 0.05f64..2.0) {
        let exact = weight * mg_per_kg;
        let d = weight_based_dose(weight, MgPerKg::new(mg_per_kg).unwrap(), 0.1).unwrap().value();
        prop_assert!((d - exact).abs() <= 0.05 + 1e-9);
        prop_assert!(((d * 10.0).round() - d * 10.0).abs() < 1e-6);
    }

    #[test]
    fn no_iv_dose_at_or_above_the_block_is_normal(weight in 20.0f64..400.0, mg_per_kg in 0.05f64..2.0) {
        let c = set().calculate(&iv(weight, mg_per_kg, 50.0)).unwrap();
        if c.dose_mg >= weight * 1.0 - 1e-9 || mg_per_kg >= 1.0 {
            prop_assert_eq!(c.zone, Zone::Block);
        }
        if mg_per_kg <= 0.75 && c.dose_mg < weight {
            prop_assert_eq!(c.zone, Zone::Normal);
        }
    }

    #[test]
    fn quantities_refuse_what_is_not_a_positive_number(
        x in prop_oneof![Just(f64::NAN), Just(f64::NEG_INFINITY), -1e6f64..=0.0]
    ) {
        prop_assert!(DoseMg::new(x).is_err());
        prop_assert!(MgPerKg::new(x).is_err());
        prop_assert!(StockMgPerMl::new(x).is_err());
        prop_assert!(InfusionMinutes::new(x).is_err());
        prop_assert!(BagMl::new(x).is_err());
    }
}
