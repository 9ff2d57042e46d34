use proptest::prelude::*;
use time::macros::datetime;

use super::fixtures;
use super::*;
use crate::decision::Route;
use crate::vitals::{DiastolicBp, HeartRate, RespRate, Spo2, SystolicBp};

/// 2025-03-07 at hh:mm UTC (the TV-SPR-1 session day).
fn at(h: u8, m: u8) -> UtcTs {
    at_s(h, m, 0)
}

fn at_s(h: u8, m: u8, s: u8) -> UtcTs {
    UtcTs::from_datetime(datetime!(2025-03-07 00:00 UTC).replace_time(time::Time::from_hms(h, m, s).unwrap()))
}

fn bp(sys: u16, dia: u16) -> BloodPressure {
    BloodPressure::new(SystolicBp::new(sys).unwrap(), DiastolicBp::new(dia).unwrap()).unwrap()
}

fn bp_reading(t: UtcTs, sys: u16, dia: u16) -> Reading {
    Reading { taken_at: t, measurement: Measurement::BloodPressure { bp: bp(sys, dia), heart_rate: None, spo2: None } }
}

fn hr_reading(t: UtcTs, hr: u16) -> Reading {
    Reading {
        taken_at: t,
        measurement: Measurement::BloodPressure {
            bp: bp(120, 80),
            heart_rate: Some(HeartRate::new(hr).unwrap()),
            spo2: None,
        },
    }
}

fn spo2_reading(t: UtcTs, spo2: u8) -> Reading {
    Reading { taken_at: t, measurement: Measurement::Spo2Rr { spo2: Some(Spo2::new(spo2).unwrap()), resp_rate: None } }
}

fn rr_reading(t: UtcTs, rr: u8) -> Reading {
    Reading {
        taken_at: t,
        measurement: Measurement::Spo2Rr { spo2: None, resp_rate: Some(RespRate::new(rr).unwrap()) },
    }
}

fn moaas_reading(t: UtcTs, score: u8) -> Reading {
    Reading { taken_at: t, measurement: Measurement::Moaas { score: Moaas::new(score).unwrap() } }
}

fn cadss23(total: u8) -> Cadss {
    Cadss::Cadss23(Cadss23::new(total).unwrap())
}

fn cadss_reading(t: UtcTs, total: u8) -> Reading {
    Reading { taken_at: t, measurement: Measurement::Cadss { score: cadss23(total) } }
}

fn spravato_dose() -> DoseTimes {
    // TV-SPR-1: 84 mg, devices at 10:00, 10:05, 10:10.
    DoseTimes { started_at: at(10, 0), ended_at: Some(at(10, 10)), last_device_at: Some(at(10, 10)) }
}

fn rules(alerts: &[Alert]) -> Vec<&'static str> {
    alerts.iter().map(|a| a.rule).collect()
}

// --- 12.7 vital-sign gates -------------------------------------------------------------------

#[test]
fn tv_bp_1_pre_dose_132_84_passes() {
    assert_eq!(pre_dose_bp(&fixtures::thresholds(Route::SpravatoIntranasal), bp(132, 84)), PreDoseBp::Pass);
}

#[test]
fn tv_bp_2_pre_dose_150_95_needs_the_prescribers_confirmation() {
    let PreDoseBp::ConfirmWithReason(alert) =
        pre_dose_bp(&fixtures::thresholds(Route::SpravatoIntranasal), bp(150, 95))
    else {
        panic!("MON-01 expected");
    };
    assert_eq!(alert.rule, "MON-01");
    assert_eq!(alert.action, AlertAction::ConfirmBeforeDosing);
    assert!(alert.needs_ack);
    assert!(alert.message.contains("above 140/90"), "{}", alert.message);
}

#[test]
fn tv_bp_3_pre_dose_182_96_holds_the_dose() {
    let PreDoseBp::Hold(alert) = pre_dose_bp(&fixtures::thresholds(Route::IntravenousRacemic), bp(182, 96)) else {
        panic!("MON-02 expected");
    };
    assert_eq!(alert.rule, "MON-02");
    assert!(alert.stops_dosing());
    assert!(alert.message.contains("GATE-05"));
}

#[test]
fn tv_bp_4_a_rise_of_42_systolic_at_40_minutes_alerts_the_prescriber() {
    let t = fixtures::thresholds(Route::SpravatoIntranasal);
    let history = [bp_reading(at(9, 55), 130, 80)];
    let alerts = reading_alerts(&t, &spravato_dose(), &history, &bp_reading(at(10, 40), 172, 92));
    assert_eq!(rules(&alerts), ["MON-03"]);
    assert_eq!(alerts[0].severity, AlertSeverity::Warning);
    assert!(alerts[0].message.contains("+42/+12"), "{}", alerts[0].message);
}

#[test]
fn tv_bp_5_a_rise_of_26_diastolic_alerts_the_prescriber() {
    let t = fixtures::thresholds(Route::SpravatoIntranasal);
    let history = [bp_reading(at(9, 55), 120, 78)];
    let alerts = reading_alerts(&t, &spravato_dose(), &history, &bp_reading(at(10, 40), 150, 104));
    assert_eq!(rules(&alerts), ["MON-03"]);
    assert!(alerts[0].message.contains("+30/+26"), "{}", alerts[0].message);
}

#[test]
fn tv_bp_6_pre_dose_140_90_passes_and_a_clinic_may_choose_at_or_above() {
    let mut t = fixtures::thresholds(Route::SpravatoIntranasal);
    assert_eq!(pre_dose_bp(&t, bp(140, 90)), PreDoseBp::Pass);
    t.pre_dose_confirm.comparison = Comparison::AtOrAbove;
    assert!(matches!(pre_dose_bp(&t, bp(140, 90)), PreDoseBp::ConfirmWithReason(_)));
    assert_eq!(t.check(Route::SpravatoIntranasal), Ok(()));
}

#[test]
fn a_rise_just_under_both_limits_does_not_alert() {
    let t = fixtures::thresholds(Route::IntramuscularRacemic);
    let dose = DoseTimes { started_at: at(10, 0), ended_at: Some(at(10, 0)), last_device_at: None };
    let alerts = reading_alerts(&t, &dose, &[bp_reading(at(9, 50), 130, 80)], &bp_reading(at(10, 30), 169, 104));
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn without_a_pre_dose_bp_the_rise_cannot_be_checked() {
    let t = fixtures::thresholds(Route::SpravatoIntranasal);
    let alerts = reading_alerts(&t, &spravato_dose(), &[], &bp_reading(at(10, 40), 150, 90));
    assert_eq!(rules(&alerts), ["MON-03"]);
    assert_eq!(alerts[0].severity, AlertSeverity::Info);
    assert!(!alerts[0].needs_ack);
}

#[test]
fn a_pre_dose_reading_goes_through_the_gate_not_the_rise_rule() {
    let t = fixtures::thresholds(Route::SpravatoIntranasal);
    let alerts = reading_alerts(&t, &spravato_dose(), &[], &bp_reading(at(9, 58), 150, 95));
    assert_eq!(rules(&alerts), ["MON-01"]);
}

#[test]
fn mon_05_pauses_an_iv_infusion_only_while_it_runs() {
    let t = fixtures::thresholds(Route::IntravenousRacemic);
    let history = [bp_reading(at(9, 50), 130, 80)];
    let running = DoseTimes { started_at: at(10, 0), ended_at: None, last_device_at: None };
    let alerts = reading_alerts(&t, &running, &history, &bp_reading(at(10, 30), 176, 110));
    assert_eq!(rules(&alerts), ["MON-03", "MON-05"]);
    assert!(alerts[1].stops_dosing());
    let ended = DoseTimes { ended_at: Some(at(10, 20)), ..running };
    assert_eq!(rules(&reading_alerts(&t, &ended, &history, &bp_reading(at(10, 30), 176, 110))), ["MON-03"]);
    let im = fixtures::thresholds(Route::IntramuscularRacemic);
    assert_eq!(rules(&reading_alerts(&im, &running, &history, &bp_reading(at(10, 30), 176, 110))), ["MON-03"]);
}

#[test]
fn mon_06_a_low_spo2_is_an_emergency_once_it_has_lasted_over_a_minute() {
    let t = fixtures::thresholds(Route::SpravatoIntranasal);
    let dose = spravato_dose();
    let first = spo2_reading(at(10, 20), 91);
    let alerts = reading_alerts(&t, &dose, &[], &first);
    assert_eq!((alerts[0].rule, alerts[0].severity), ("MON-06", AlertSeverity::Info));
    let exactly_a_minute = spo2_reading(at_s(10, 21, 0), 90);
    assert_eq!(reading_alerts(&t, &dose, &[first], &exactly_a_minute)[0].severity, AlertSeverity::Info);
    let later = spo2_reading(at_s(10, 21, 1), 90);
    let alerts = reading_alerts(&t, &dose, &[first, exactly_a_minute], &later);
    assert_eq!((alerts[0].rule, alerts[0].severity), ("MON-06", AlertSeverity::Emergency));
    assert!(alerts[0].stops_dosing());
    // A normal reading in between starts the run again.
    let normal = spo2_reading(at(10, 21), 95);
    let again = spo2_reading(at(10, 22), 91);
    assert_eq!(reading_alerts(&t, &dose, &[first, normal], &again)[0].severity, AlertSeverity::Info);
}

#[test]
fn mon_06_a_fall_of_4_from_baseline_is_an_emergency_at_once() {
    let t = fixtures::thresholds(Route::IntravenousRacemic);
    let dose = DoseTimes { started_at: at(10, 0), ended_at: None, last_device_at: None };
    let history = [spo2_reading(at(9, 55), 99)];
    let alerts = reading_alerts(&t, &dose, &history, &spo2_reading(at(10, 15), 95));
    assert_eq!((alerts[0].rule, alerts[0].severity), ("MON-06", AlertSeverity::Emergency));
    assert!(reading_alerts(&t, &dose, &history, &spo2_reading(at(10, 15), 96)).is_empty());
}

#[test]
fn mon_07_a_respiratory_rate_below_10_is_an_emergency() {
    let t = fixtures::thresholds(Route::SublingualLozenge);
    let alerts = reading_alerts(&t, &spravato_dose(), &[], &rr_reading(at(10, 30), 9));
    assert_eq!((alerts[0].rule, alerts[0].action), ("MON-07", AlertAction::SupportBreathing));
    assert!(reading_alerts(&t, &spravato_dose(), &[], &rr_reading(at(10, 30), 10)).is_empty());
}

#[test]
fn mon_08_heart_rate_above_120_or_below_50_alerts_the_prescriber() {
    let t = fixtures::thresholds(Route::IntramuscularRacemic);
    let base = [bp_reading(at(9, 50), 120, 80)];
    for (hr, fires) in [(121, true), (120, false), (50, false), (49, true)] {
        let alerts = reading_alerts(&t, &spravato_dose(), &base, &hr_reading(at(10, 30), hr));
        assert_eq!(rules(&alerts) == ["MON-08"], fires, "HR {hr}: {alerts:?}");
    }
}

#[test]
fn tv_sed_1_moaas_5_4_3_5_never_stops_dosing() {
    let t = fixtures::thresholds(Route::SpravatoIntranasal);
    let readings = [
        moaas_reading(at(9, 55), 5),
        moaas_reading(at(10, 15), 4),
        moaas_reading(at(10, 30), 3),
        moaas_reading(at(10, 45), 5),
    ];
    for (i, r) in readings.iter().enumerate() {
        assert!(reading_alerts(&t, &spravato_dose(), &readings[..i], r).is_empty(), "{r:?}");
    }
}

#[test]
fn tv_sed_1_discharge_waits_for_the_return_to_moaas_5() {
    use crate::discharge::{CriterionStatus, evaluate};
    let readings = [moaas_reading(at(9, 55), 5), moaas_reading(at(10, 15), 4), moaas_reading(at(10, 30), 3)];
    let mut facts = crate::discharge::tests::all_met_facts(at(12, 5));
    facts.readings.latest_moaas = summarize(&readings, at(10, 0)).latest_moaas;
    let settings = fixtures::discharge(Route::SpravatoIntranasal);
    let dc04 = |f: &crate::discharge::DischargeFacts| {
        evaluate(&settings, f).criteria.into_iter().find(|c| c.id == "DC-04").unwrap()
    };
    assert_eq!(dc04(&facts).status, CriterionStatus::Unmet);
    facts.readings.latest_moaas = summarize(&[readings[0], moaas_reading(at(10, 45), 5)], at(10, 0)).latest_moaas;
    assert_eq!(dc04(&facts).status, CriterionStatus::Met);
}

#[test]
fn tv_sed_2_moaas_2_stops_further_dosing_and_calls_the_prescriber() {
    let t = fixtures::thresholds(Route::IntravenousRacemic);
    let alerts = reading_alerts(&t, &spravato_dose(), &[], &moaas_reading(at(10, 30), 2));
    assert_eq!(rules(&alerts), ["MON-09"]);
    assert_eq!(alerts[0].action, AlertAction::StopFurtherDosing);
    assert!(alerts[0].stops_dosing() && alerts[0].needs_ack);
}

#[test]
fn mon_10_moaas_0_is_loss_of_consciousness() {
    let t = fixtures::thresholds(Route::SpravatoIntranasal);
    let alerts = reading_alerts(&t, &spravato_dose(), &[], &moaas_reading(at(10, 30), 0));
    assert_eq!(rules(&alerts), ["MON-10"]);
    assert_eq!(alerts[0].severity, AlertSeverity::Emergency);
}

#[test]
fn mon_04_and_mon_11_are_raised_by_what_staff_observe() {
    for o in ClinicianObservation::ALL {
        let a = observation_alert(o);
        if o == ClinicianObservation::SevereEmergenceReaction {
            assert_eq!((a.rule, a.severity), ("MON-11", AlertSeverity::Warning));
        } else {
            assert_eq!(
                (a.rule, a.severity, a.action),
                ("MON-04", AlertSeverity::Emergency, AlertAction::EmergencyCare)
            );
        }
        assert!(a.needs_ack);
    }
}

#[test]
fn summaries_take_the_last_pre_dose_reading_as_baseline_and_the_last_after_as_latest() {
    let readings = [
        cadss_reading(at(10, 40), 18),
        bp_reading(at(9, 40), 130, 85),
        bp_reading(at(9, 55), 128, 82),
        cadss_reading(at(9, 56), 1),
        Reading {
            taken_at: at(10, 20),
            measurement: Measurement::BloodPressure {
                bp: bp(140, 88),
                heart_rate: None,
                spo2: Some(Spo2::new(96).unwrap()),
            },
        },
        spo2_reading(at(9, 58), 99),
        rr_reading(at(10, 25), 12),
        cadss_reading(at(11, 50), 3),
    ];
    let s = summarize(&readings, at(10, 0));
    assert_eq!(s.baseline_bp, Some(bp(128, 82)));
    assert_eq!(s.latest_bp.map(|t| (t.value, t.taken_at)), Some((bp(140, 88), at(10, 20))));
    assert_eq!(s.baseline_spo2.map(Spo2::value), Some(99));
    assert_eq!(s.latest_spo2.map(|t| t.value.value()), Some(96));
    assert_eq!(s.latest_resp_rate.map(|t| t.value.value()), Some(12));
    assert_eq!(s.baseline_cadss, Some(cadss23(1)));
    assert_eq!(s.latest_cadss.map(|t| t.value), Some(cadss23(3)));
    assert_eq!(s.baseline_moaas, None);
}

// --- 7.7 CADSS ---------------------------------------------------------------------------------

#[test]
fn tv_dis_1_dissociation_present_at_40_minutes_and_resolved_by_110() {
    let pre = Some(cadss23(0));
    assert_eq!(cadss23(18).dissociation(pre), Dissociation::Present);
    assert_eq!(cadss23(3).dissociation(pre), Dissociation::Absent);
    assert_eq!(cadss23(18).resolved(pre, Some(4), true), Some(false));
    assert_eq!(cadss23(3).resolved(pre, Some(4), true), Some(true));
}

#[test]
fn dissociation_needs_both_a_total_above_4_and_a_rise() {
    assert_eq!(cadss23(4).dissociation(Some(cadss23(0))), Dissociation::Absent);
    assert_eq!(cadss23(5).dissociation(Some(cadss23(0))), Dissociation::Present);
    assert_eq!(cadss23(8).dissociation(Some(cadss23(8))), Dissociation::Absent);
    assert_eq!(cadss23(8).dissociation(None), Dissociation::NoComparableBaseline);
    let six = Cadss::Cadss6(Cadss6::new(3).unwrap());
    assert_eq!(six.dissociation(Some(cadss23(0))), Dissociation::NoComparableBaseline);
    assert_eq!(six.dissociation(Some(Cadss::Cadss6(Cadss6::new(1).unwrap()))), Dissociation::Present);
}

#[test]
fn resolved_back_at_baseline_counts_even_above_the_cut_off() {
    assert_eq!(cadss23(6).resolved(Some(cadss23(6)), Some(4), true), Some(true));
    assert_eq!(cadss23(6).resolved(Some(cadss23(6)), Some(4), false), Some(false));
    let six = Cadss::Cadss6(Cadss6::new(2).unwrap());
    assert_eq!(six.resolved(None, None, true), None);
}

#[test]
fn tv_cadss6_1_six_item_and_full_totals_from_the_items() {
    let mut items = [Some(0i64); 23];
    for (item, v) in [(1, 2), (2, 1), (6, 0), (7, 1), (15, 3), (22, 2)] {
        items[item - 1] = Some(v);
    }
    let s = score_cadss_items(&items).unwrap();
    assert_eq!((s.cadss6.value(), s.cadss23.value()), (9, 9));
    let mut bad = items;
    bad[4] = Some(5);
    assert_eq!(score_cadss_items(&bad).unwrap_err().item, "5");
    assert!(score_cadss_items(&items[..22]).is_err());
}

#[test]
fn scores_outside_their_scales_are_refused() {
    assert!(Moaas::new(6).is_err());
    assert!(Cadss23::new(93).is_err());
    assert!(Cadss6::new(25).is_err());
    assert_eq!(Moaas::new(2).unwrap().description(), "Responds only after mild prodding or shaking");
}

// --- 5.2 schedules -------------------------------------------------------------------------

fn due(checks: &[PlannedCheck], kind: MeasureKind) -> Vec<(UtcTs, Reason)> {
    checks.iter().filter(|c| c.kind == kind).map(|c| (c.due_at, c.reason)).collect()
}

#[test]
fn tv_spr_1_the_40_minute_bp_is_due_at_10_40_from_the_first_device() {
    let plan = fixtures::plan(Route::SpravatoIntranasal);
    let checks = planned_checks(&plan, &spravato_dose(), at(12, 0));
    let bp = due(&checks, MeasureKind::BloodPressure);
    assert_eq!(
        bp,
        [
            (at(10, 0), Reason::Baseline),
            (at(10, 40), Reason::AtOffset { after_minutes: 40, from: Anchor::DoseStart }),
            (at(12, 0), Reason::BeforeDischarge),
        ]
    );
    assert_eq!(bp[1].1.describe(), "40 min after the start of dosing (first device)");
}

#[test]
fn tv_spr_1_with_the_last_device_option_the_40_minute_bp_is_due_at_10_50() {
    let mut plan = fixtures::plan(Route::SpravatoIntranasal);
    if let Some(bp) = plan.measures.get_mut(&MeasureKind::BloodPressure) {
        bp.at[0].from = Anchor::LastDevice;
    }
    let checks = planned_checks(&plan, &spravato_dose(), at(12, 10));
    assert_eq!(due(&checks, MeasureKind::BloodPressure)[1].0, at(10, 50));
    // Before the last device is recorded the check cannot be placed yet.
    let dose = DoseTimes { ended_at: None, last_device_at: None, ..spravato_dose() };
    assert_eq!(due(&planned_checks(&plan, &dose, at(12, 10)), MeasureKind::BloodPressure).len(), 2);
}

#[test]
fn iv_bp_every_10_minutes_during_the_infusion_and_every_15_after() {
    let plan = fixtures::plan(Route::IntravenousRacemic);
    let dose = DoseTimes { started_at: at(10, 0), ended_at: Some(at(10, 40)), last_device_at: None };
    let times: Vec<UtcTs> =
        due(&planned_checks(&plan, &dose, at(11, 40)), MeasureKind::BloodPressure).into_iter().map(|d| d.0).collect();
    let expected =
        [at(10, 0), at(10, 10), at(10, 20), at(10, 30), at(10, 40), at(10, 55), at(11, 10), at(11, 25), at(11, 40)];
    assert_eq!(times, expected);
    // While the infusion runs, the during-infusion series goes on and the after series waits.
    let running = DoseTimes { ended_at: None, ..dose };
    let times = due(&planned_checks(&plan, &running, at(10, 50)), MeasureKind::BloodPressure);
    assert_eq!(times.last().map(|d| d.0), Some(at(10, 50)));
    assert!(times.iter().all(|d| !matches!(d.1, Reason::Series { from: Anchor::DoseEnd, .. })));
}

#[test]
fn im_sl_in_bp_every_15_minutes_for_an_hour_then_every_30_until_discharge() {
    for route in [Route::IntramuscularRacemic, Route::SublingualLozenge, Route::IntranasalRacemic] {
        let plan = fixtures::plan(route);
        let dose = DoseTimes { started_at: at(10, 0), ended_at: Some(at(10, 0)), last_device_at: None };
        let times: Vec<UtcTs> = due(&planned_checks(&plan, &dose, at(12, 0)), MeasureKind::BloodPressure)
            .into_iter()
            .map(|d| d.0)
            .collect();
        assert_eq!(
            times,
            [at(10, 0), at(10, 15), at(10, 30), at(10, 45), at(11, 0), at(11, 30), at(12, 0)],
            "{route:?}"
        );
    }
}

#[test]
fn moaas_every_15_minutes_and_cadss_at_40_and_before_discharge() {
    let checks = planned_checks(&fixtures::plan(Route::SpravatoIntranasal), &spravato_dose(), at(12, 0));
    let moaas: Vec<UtcTs> = due(&checks, MeasureKind::Moaas).into_iter().map(|d| d.0).collect();
    assert_eq!(moaas.len(), 9, "baseline, 8 x 15 min up to 12:00 (the last one is the discharge check)");
    assert_eq!(due(&checks, MeasureKind::Moaas).last().map(|d| d.1), Some(Reason::BeforeDischarge));
    let cadss: Vec<UtcTs> = due(&checks, MeasureKind::Cadss).into_iter().map(|d| d.0).collect();
    assert_eq!(cadss, [at(10, 0), at(10, 40), at(12, 0)]);
}

#[test]
fn a_check_is_upcoming_due_overdue_then_missed_when_the_next_one_opens() {
    let plan = fixtures::plan(Route::IntravenousRacemic);
    let dose = DoseTimes { started_at: at(10, 0), ended_at: None, last_device_at: None };
    let checks: Vec<PlannedCheck> =
        planned_checks(&plan, &dose, at(11, 0)).into_iter().filter(|c| c.kind == MeasureKind::BloodPressure).collect();
    let readings = [bp_reading(at(9, 55), 120, 80)];
    let status_of_1010 = |now| {
        check_status(&checks, &readings, dose.started_at, now, &plan.due_window)
            .into_iter()
            .find(|s| s.check.due_at == at(10, 10))
            .unwrap()
            .status
    };
    assert_eq!(status_of_1010(at(10, 7)), CheckStatus::Upcoming);
    assert_eq!(status_of_1010(at(10, 8)), CheckStatus::Due);
    assert_eq!(status_of_1010(at(10, 15)), CheckStatus::Due);
    assert_eq!(status_of_1010(at_s(10, 15, 1)), CheckStatus::Overdue);
    assert_eq!(status_of_1010(at(10, 18)), CheckStatus::Missed);
    let states = check_status(&checks, &readings, dose.started_at, at(10, 5), &plan.due_window);
    assert_eq!(states[0].status, CheckStatus::Done, "the 09:55 reading is the baseline");
}

#[test]
fn a_late_reading_counts_for_the_check_it_was_late_for() {
    let plan = fixtures::plan(Route::IntravenousRacemic);
    let dose = DoseTimes { started_at: at(10, 0), ended_at: None, last_device_at: None };
    let checks = planned_checks(&plan, &dose, at(11, 0));
    let readings = [bp_reading(at(9, 55), 120, 80), bp_reading(at(10, 17), 125, 82)];
    let states = check_status(&checks, &readings, dose.started_at, at(10, 19), &plan.due_window);
    let bp: Vec<(UtcTs, CheckStatus)> = states
        .iter()
        .filter(|s| s.check.kind == MeasureKind::BloodPressure)
        .take(3)
        .map(|s| (s.check.due_at, s.status))
        .collect();
    assert_eq!(bp, [(at(10, 0), CheckStatus::Done), (at(10, 10), CheckStatus::Done), (at(10, 20), CheckStatus::Due)]);
}

#[test]
fn an_empty_respiratory_reading_completes_no_check() {
    let plan = fixtures::plan(Route::SpravatoIntranasal);
    let checks = planned_checks(&plan, &spravato_dose(), at(12, 0));
    let empty = Reading { taken_at: at(9, 55), measurement: Measurement::Spo2Rr { spo2: None, resp_rate: None } };
    let states = check_status(&checks, &[empty], at(10, 0), at(9, 58), &plan.due_window);
    let baseline = states.iter().find(|s| s.check.kind == MeasureKind::Spo2Rr).unwrap();
    assert_eq!(baseline.status, CheckStatus::Due);
    let states = check_status(&checks, &[spo2_reading(at(9, 55), 98)], at(10, 0), at(9, 58), &plan.due_window);
    assert_eq!(states.iter().find(|s| s.check.kind == MeasureKind::Spo2Rr).unwrap().status, CheckStatus::Done);
}

#[test]
fn a_baseline_not_taken_before_dosing_is_missed() {
    let plan = fixtures::plan(Route::SpravatoIntranasal);
    let checks = planned_checks(&plan, &spravato_dose(), at(12, 0));
    let states = check_status(&checks, &[], at(10, 0), at(9, 50), &plan.due_window);
    assert!(states.iter().filter(|s| s.check.reason == Reason::Baseline).all(|s| s.status == CheckStatus::Due));
    let late = [bp_reading(at(10, 1), 120, 80)];
    let states = check_status(&checks, &late, at(10, 0), at(10, 2), &plan.due_window);
    let baseline_bp = states.iter().find(|s| s.check.kind == MeasureKind::BloodPressure).unwrap();
    assert_eq!(baseline_bp.status, CheckStatus::Missed);
}

#[test]
fn moaas_checks_stop_once_back_to_baseline_after_sedation() {
    let plan = fixtures::plan(Route::SpravatoIntranasal);
    let checks = planned_checks(&plan, &spravato_dose(), at(12, 0));
    // TV-SED-1: 5 -> 4 -> 3 -> 5.
    let readings = [
        moaas_reading(at(9, 55), 5),
        moaas_reading(at(10, 15), 4),
        moaas_reading(at(10, 30), 3),
        moaas_reading(at(10, 45), 5),
    ];
    let states = check_status(&checks, &readings, at(10, 0), at(10, 50), &plan.due_window);
    let moaas: Vec<(UtcTs, CheckStatus)> =
        states.iter().filter(|s| s.check.kind == MeasureKind::Moaas).map(|s| (s.check.due_at, s.status)).collect();
    assert_eq!(
        moaas,
        [
            (at(10, 0), CheckStatus::Done),
            (at(10, 15), CheckStatus::Done),
            (at(10, 30), CheckStatus::Done),
            (at(10, 45), CheckStatus::Done),
            (at(12, 0), CheckStatus::Upcoming),
        ],
        "the 11:00..11:45 checks stop; the discharge check stays"
    );
}

#[test]
fn moaas_checks_go_on_while_the_patient_has_not_yet_left_baseline() {
    let plan = fixtures::plan(Route::SpravatoIntranasal);
    let checks = planned_checks(&plan, &spravato_dose(), at(12, 0));
    let readings = [moaas_reading(at(9, 55), 5), moaas_reading(at(10, 15), 5)];
    let states = check_status(&checks, &readings, at(10, 0), at(10, 20), &plan.due_window);
    assert_eq!(states.iter().filter(|s| s.check.kind == MeasureKind::Moaas).count(), 9);
}

// --- configuration ---------------------------------------------------------------------------

#[test]
fn every_route_protocol_passes_its_checks() {
    for route in Route::ALL {
        assert_eq!(fixtures::protocol(route).check(route), Ok(()), "{route:?}");
    }
}

#[test]
fn a_spravato_protocol_may_not_confirm_bp_later_than_the_label() {
    let mut p = fixtures::protocol(Route::SpravatoIntranasal);
    p.thresholds.pre_dose_confirm.systolic = 150;
    assert_eq!(p.check(Route::SpravatoIntranasal).unwrap_err().path, "thresholds.pre_dose_confirm");
    // The same value is the clinic's choice for racemic ketamine.
    let mut racemic = fixtures::protocol(Route::SublingualLozenge);
    racemic.thresholds.pre_dose_confirm.systolic = 150;
    assert_eq!(racemic.check(Route::SublingualLozenge), Ok(()));
    // Stricter is allowed.
    p.thresholds.pre_dose_confirm.systolic = 130;
    assert_eq!(p.check(Route::SpravatoIntranasal), Ok(()));
}

#[test]
fn a_spravato_protocol_may_not_shorten_the_two_hour_observation() {
    let mut p = fixtures::protocol(Route::SpravatoIntranasal);
    p.discharge.minimum_observation.minutes = 90;
    assert_eq!(p.check(Route::SpravatoIntranasal).unwrap_err().path, "discharge.minimum_observation.minutes");
    p.discharge.minimum_observation.minutes = 120;
    p.discharge.minimum_observation.from = Anchor::LastDevice;
    assert_eq!(p.check(Route::SpravatoIntranasal), Ok(()));
}

#[test]
fn the_infusion_pause_belongs_to_iv_only() {
    let mut p = fixtures::protocol(Route::IntramuscularRacemic);
    p.thresholds.infusion_pause = fixtures::thresholds(Route::IntravenousRacemic).infusion_pause;
    assert_eq!(p.check(Route::IntramuscularRacemic).unwrap_err().path, "thresholds.infusion_pause");
}

#[test]
fn a_series_until_baseline_needs_a_baseline() {
    let mut p = fixtures::protocol(Route::SpravatoIntranasal);
    if let Some(m) = p.plan.measures.get_mut(&MeasureKind::Moaas) {
        m.baseline = false;
    }
    assert_eq!(p.check(Route::SpravatoIntranasal).unwrap_err().path, "plan.measures.moaas");
}

#[test]
fn unknown_keys_and_a_zero_interval_are_refused_when_the_file_loads() {
    let mut json = serde_json::to_value(fixtures::protocol(Route::IntravenousRacemic)).unwrap();
    json["thresholds"]["spo2"]["below_percent"] = 90.into();
    assert!(serde_json::from_value::<MonitoringProtocol>(json).is_err());
    let mut json = serde_json::to_value(fixtures::protocol(Route::IntravenousRacemic)).unwrap();
    json["plan"]["measures"]["blood_pressure"]["every"][0]["every_minutes"] = 0.into();
    assert!(serde_json::from_value::<MonitoringProtocol>(json).is_err());
}

/// The `monitoring` object of each bundled protocol file, by route.
fn bundled_sections() -> Vec<(String, MonitoringProtocol)> {
    crate::protocol::ProtocolSet::bundled()
        .unwrap()
        .iter()
        .map(|p| (p.route.as_str().to_owned(), p.monitoring.clone()))
        .collect()
}

#[test]
fn the_protocol_files_hold_the_spec_defaults_for_all_five_routes() {
    let sections = bundled_sections();
    let mut routes: Vec<&str> = sections.iter().map(|(r, _)| r.as_str()).collect();
    routes.sort_unstable();
    let mut all = Route::ALL.map(Route::as_str);
    all.sort_unstable();
    assert_eq!(routes, all);
    for (name, parsed) in sections {
        let route = Route::parse(&name).unwrap();
        assert_eq!(parsed, fixtures::protocol(route), "{name}");
    }
}

// --- properties ------------------------------------------------------------------------------

fn any_route() -> impl Strategy<Value = Route> {
    prop::sample::select(Route::ALL.to_vec())
}

/// A reading of any kind at one of a few minutes after 10:00 (so that many share an instant).
fn any_reading() -> impl Strategy<Value = Reading> {
    (0u8..6, 0u8..10, 0u8..40).prop_map(|(kind, m, v)| {
        let t = at(10, m);
        match kind {
            0 => bp_reading(t, 100 + u16::from(v), 60 + u16::from(v)),
            1 => hr_reading(t, 50 + u16::from(v)),
            2 => spo2_reading(t, 60 + v),
            3 => rr_reading(t, 5 + v),
            4 => moaas_reading(t, v % 6),
            _ => cadss_reading(t, v),
        }
    })
}

/// The summary as first written: the readings sorted by time (stably), the last of each kind
/// before and after the dose kept.
fn summarize_by_sorting(readings: &[Reading], dose_started_at: UtcTs) -> ReadingSummary {
    let mut sorted: Vec<&Reading> = readings.iter().collect();
    sorted.sort_by_key(|r| r.taken_at);
    let mut s = ReadingSummary::default();
    for r in sorted {
        let pre = r.taken_at <= dose_started_at;
        if let Some(spo2) = r.measurement.spo2() {
            if pre { s.baseline_spo2 = Some(spo2) } else { s.latest_spo2 = Some(r.timed(spo2)) }
        }
        match r.measurement {
            Measurement::BloodPressure { bp, .. } => {
                if pre {
                    s.baseline_bp = Some(bp)
                } else {
                    s.latest_bp = Some(r.timed(bp))
                }
            }
            Measurement::Spo2Rr { resp_rate: Some(rr), .. } if !pre => s.latest_resp_rate = Some(r.timed(rr)),
            Measurement::Spo2Rr { .. } => {}
            Measurement::Moaas { score } => {
                if pre {
                    s.baseline_moaas = Some(score)
                } else {
                    s.latest_moaas = Some(r.timed(score))
                }
            }
            Measurement::Cadss { score } => {
                if pre {
                    s.baseline_cadss = Some(score)
                } else {
                    s.latest_cadss = Some(r.timed(score))
                }
            }
        }
    }
    s
}

proptest! {
    #[test]
    fn the_one_pass_summary_is_the_summary_of_the_readings_in_time_order(
        readings in prop::collection::vec(any_reading(), 0..40),
        dose_minute in 0u8..11,
    ) {
        let dose = at(10, dose_minute);
        prop_assert_eq!(summarize(&readings, dose), summarize_by_sorting(&readings, dose));
    }

    /// A session judges each reading against the summary it keeps, which holds the reading
    /// itself: the alerts are those judged against the other readings afresh.
    #[test]
    fn alerts_against_a_kept_summary_are_the_alerts_judged_afresh(
        route in any_route(),
        mut history in prop::collection::vec(any_reading(), 0..30),
        reading in any_reading(),
        dose_minute in 0u8..11,
    ) {
        let thresholds = fixtures::protocol(route).thresholds;
        let dose = DoseTimes { started_at: at(10, dose_minute), ended_at: None, last_device_at: None };
        history.push(reading);
        let kept = summarize(&history, dose.started_at);
        prop_assert_eq!(
            reading_alerts_given(&thresholds, &dose, &kept, &history, &reading),
            reading_alerts(&thresholds, &dose, &history, &reading)
        );
    }

    #[test]
    fn planned_checks_are_sorted_unique_and_inside_the_session(
        route in any_route(),
        infusion in prop::option::of(0u16..90),
        observation in 0u16..300,
    ) {
        let start = at(10, 0);
        let end = infusion.map(|m| start.plus(time::Duration::minutes(m.into())));
        let dose = DoseTimes { started_at: start, ended_at: end, last_device_at: end };
        let obs_end = end.unwrap_or(start).plus(time::Duration::minutes(observation.into()));
        let checks = planned_checks(&fixtures::plan(route), &dose, obs_end);
        for w in checks.windows(2) {
            prop_assert!(w[0].due_at <= w[1].due_at);
            prop_assert!((w[0].due_at, w[0].kind) != (w[1].due_at, w[1].kind));
        }
        prop_assert!(checks.iter().all(|c| c.due_at >= start && c.due_at <= obs_end.max(start)));
    }

    #[test]
    fn a_reading_at_the_due_time_completes_the_check(route in any_route(), pick in 0usize..50) {
        let plan = fixtures::plan(route);
        let dose = DoseTimes { started_at: at(10, 0), ended_at: Some(at(10, 40)), last_device_at: Some(at(10, 10)) };
        let checks: Vec<PlannedCheck> = planned_checks(&plan, &dose, at(12, 0))
            .into_iter()
            .filter(|c| c.kind == MeasureKind::BloodPressure)
            .collect();
        let target = checks[pick % checks.len()];
        let reading = bp_reading(target.due_at, 120, 80);
        let states = check_status(&checks, &[reading], dose.started_at, at(13, 0), &plan.due_window);
        let state = states.iter().find(|s| s.check == target).unwrap();
        prop_assert_eq!(state.status, CheckStatus::Done);
    }

    #[test]
    fn the_rise_rule_fires_exactly_at_40_systolic_or_25_diastolic(d_sys in 0u16..80, d_dia in 0u16..50) {
        let t = fixtures::thresholds(Route::SpravatoIntranasal);
        let alerts = reading_alerts(&t, &spravato_dose(), &[bp_reading(at(9, 55), 110, 60)], &bp_reading(at(10, 40), 110 + d_sys, 60 + d_dia));
        let mon03 = alerts.iter().any(|a| a.rule == "MON-03");
        prop_assert_eq!(mon03, d_sys >= 40 || d_dia >= 25);
    }

    #[test]
    fn moaas_parses_exactly_0_to_5(n in any::<u8>()) {
        prop_assert_eq!(Moaas::new(n).is_ok(), n <= 5);
        prop_assert_eq!(Cadss23::new(n).is_ok(), n <= 92);
        prop_assert_eq!(Cadss6::new(n).is_ok(), n <= 24);
    }
}
