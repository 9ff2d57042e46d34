//! Test-only constructors of each route's monitoring protocol with the spec's defaults. A test
//! holds them equal to the `monitoring` object of each file in `content/protocols/`; production code never builds these values itself.

use std::collections::BTreeMap;
use std::num::NonZeroU16;

use super::{
    Anchor, BpLimit, BpRise, Comparison, DueWindow, FixedCheck, HeartRateLimits, MeasureKind, MeasureSchedule,
    MoaasLimit, MonitoringPlan, MonitoringProtocol, RespRateLimit, Series, SeriesEnd, Spo2Limits, Thresholds,
};
use crate::decision::Route;
use crate::discharge::{
    DischargeBp, DischargeCadss, DischargeMoaas, DischargeRespiratory, DischargeSettings, MinimumObservation,
};

fn s(text: &str) -> String {
    text.to_owned()
}

fn every(minutes: u16, from: Anchor, after_minutes: u16, until: SeriesEnd) -> Series {
    Series { every_minutes: NonZeroU16::new(minutes).unwrap(), from, after_minutes, until }
}

fn due_window() -> DueWindow {
    DueWindow {
        opens_minutes_before: 2,
        overdue_minutes_after: 5,
        source: s("Kapstone workflow default, not a KAP-SPEC value: due from 2 min before, overdue 5 min after"),
    }
}

fn moaas() -> MeasureSchedule {
    MeasureSchedule {
        baseline: true,
        continuous: false,
        at: vec![],
        every: vec![every(15, Anchor::DoseStart, 0, SeriesEnd::BackToBaseline)],
        before_discharge: true,
        source: s("KAP-SPEC 5.2 MOAA/S: pre-dose baseline; CONFIG-DEFAULT every 15 min until back to baseline; at \
                   discharge [S7]"),
    }
}

fn cadss() -> MeasureSchedule {
    MeasureSchedule {
        baseline: true,
        continuous: false,
        at: vec![FixedCheck { after_minutes: 40, from: Anchor::DoseStart }],
        every: vec![],
        before_discharge: true,
        source: s("KAP-SPEC 5.2 CADSS: pre-dose baseline; CONFIG-DEFAULT ~40 min (dissociation peak); ~90-120 min / \
                   discharge [S8]"),
    }
}

fn spo2_rr(continuous: bool, source: &str) -> MeasureSchedule {
    MeasureSchedule { baseline: true, continuous, at: vec![], every: vec![], before_discharge: true, source: s(source) }
}

pub(crate) fn plan(route: Route) -> MonitoringPlan {
    let (bp, resp) = match route {
        Route::SpravatoIntranasal => (
            MeasureSchedule {
                baseline: true,
                continuous: false,
                at: vec![FixedCheck { after_minutes: 40, from: Anchor::DoseStart }],
                every: vec![],
                before_discharge: true,
                source: s("KAP-SPEC 5.2 SPRAVATO: BP (+HR, SpO2) before administration, at about 40 min (REMS form: \
                           from the 1st device; CONFIG option last_device), before session completion [S1][S2][S4]"),
            },
            spo2_rr(
                true,
                "KAP-SPEC 5.2 SPRAVATO: respiratory status incl. pulse oximetry through the session [S2][S3]; \
                 2.2 arrival vitals; DC-06 reads SpO2 and RR at discharge",
            ),
        ),
        Route::IntravenousRacemic => (
            MeasureSchedule {
                baseline: true,
                continuous: false,
                at: vec![],
                every: vec![
                    every(10, Anchor::DoseStart, 0, SeriesEnd::DoseEnd),
                    every(15, Anchor::DoseEnd, 0, SeriesEnd::Discharge),
                ],
                before_discharge: false,
                source: s("KAP-SPEC 5.2 IV: BP, HR, SpO2 pre-dose; CONFIG-DEFAULT every 10 min during the infusion \
                           [S26][S27]; CONFIG-DEFAULT every 15 min after it until discharge (Emory series) [S26]"),
            },
            spo2_rr(
                true,
                "KAP-SPEC 5.2 IV: continuous SpO2 [S26][S27]; 2.2 arrival vitals; DC-06 reads SpO2 and RR at \
                 discharge",
            ),
        ),
        Route::IntramuscularRacemic | Route::SublingualLozenge | Route::IntranasalRacemic => (
            MeasureSchedule {
                baseline: true,
                continuous: false,
                at: vec![],
                every: vec![
                    every(15, Anchor::DoseStart, 0, SeriesEnd::Minutes(60)),
                    every(30, Anchor::DoseStart, 60, SeriesEnd::Discharge),
                ],
                before_discharge: false,
                source: s("KAP-SPEC 5.2 IM/SL/IN: BP, HR, SpO2 pre-dose; CONFIG-DEFAULT every 15 min for the first \
                           60 min (UNVERIFIED, no primary source), then every 30 min until discharge (spec: 15-30)"),
            },
            spo2_rr(false, "KAP-SPEC 2.2 arrival vitals (SpO2, RR); DC-06 reads SpO2 and RR at discharge"),
        ),
    };
    let measures = BTreeMap::from([
        (MeasureKind::BloodPressure, bp),
        (MeasureKind::Spo2Rr, resp),
        (MeasureKind::Moaas, moaas()),
        (MeasureKind::Cadss, cadss()),
    ]);
    MonitoringPlan { due_window: due_window(), measures }
}

pub(crate) fn thresholds(route: Route) -> Thresholds {
    let confirm_source = if route == Route::SpravatoIntranasal {
        "MON-01: label guide, pre-dose BP > 140/90 [S1][S10]"
    } else {
        "MON-01: CONFIG for racemic ketamine, seeded with the Spravato label guide > 140/90 [S1][S10]"
    };
    Thresholds {
        pre_dose_confirm: BpLimit {
            systolic: 140,
            diastolic: 90,
            comparison: Comparison::Above,
            source: s(confirm_source),
        },
        pre_dose_hold: BpLimit {
            systolic: 180,
            diastolic: 100,
            comparison: Comparison::AtOrAbove,
            source: s("MON-02: CONFIG-DEFAULT from the Swiss label's uncontrolled-hypertension definition [S14]"),
        },
        post_dose_rise: BpRise {
            systolic_rise: 40,
            diastolic_rise: 25,
            source: s("MON-03: the label's trial-data threshold, CONFIG as alert [S1]"),
        },
        infusion_pause: (route == Route::IntravenousRacemic).then(|| BpLimit {
            systolic: 180,
            diastolic: 110,
            comparison: Comparison::AtOrAbove,
            source: s("MON-05: CONFIG-DEFAULT, UNVERIFIED (Sanacora thresholds not retrievable) [S16][S68 Yip 2022]"),
        }),
        spo2: Spo2Limits {
            below: 92,
            sustained_seconds: 60,
            fall_from_baseline: 4,
            source: s("MON-06: CONFIG-DEFAULT, UNVERIFIED"),
        },
        resp_rate: RespRateLimit { below: 10, source: s("MON-07: CONFIG-DEFAULT, UNVERIFIED") },
        heart_rate: HeartRateLimits { above: 120, below: 50, source: s("MON-08: CONFIG-DEFAULT, UNVERIFIED") },
        moaas_stop_dosing: MoaasLimit { at_or_below: 2, source: s("MON-09: CONFIG-DEFAULT [S43]") },
    }
}

pub(crate) fn discharge(route: Route) -> DischargeSettings {
    let minimum_observation = match route {
        Route::SpravatoIntranasal => MinimumObservation {
            minutes: 120,
            from: Anchor::DoseStart,
            source: s("KAP-SPEC 5.4: at least 2 h at every session (label floor); the REMS form counts from the 1st \
                       device; CONFIG option last_device (TV-SPR-1) [S1][S3][S4]"),
        },
        Route::IntravenousRacemic => MinimumObservation {
            minutes: 60,
            from: Anchor::DoseEnd,
            source: s("KAP-SPEC 5.4: CONFIG-DEFAULT 60 min after the end of the infusion (UNVERIFIED; programs cite \
                       30-60 min) [mdinfusions.com, secondary][S31]"),
        },
        Route::IntramuscularRacemic | Route::SublingualLozenge | Route::IntranasalRacemic => MinimumObservation {
            minutes: 120,
            from: Anchor::DoseEnd,
            source: s("KAP-SPEC 5.4: CONFIG-DEFAULT 120 min after dose (UNVERIFIED; KAP sessions run 2-3 h) \
                       [S31][S12]; counted from the end of administration"),
        },
    };
    DischargeSettings {
        minimum_observation,
        blood_pressure: DischargeBp {
            systolic_below: 160,
            diastolic_below: 100,
            rise_over_baseline_at_most: 20,
            source: s("DC-03: CONFIG-DEFAULT, UNVERIFIED numbers [S2][S4]"),
        },
        moaas: DischargeMoaas {
            at_least: 5,
            or_back_to_baseline: true,
            source: s("DC-04: CONFIG-DEFAULT, MOAA/S 5 or the pre-dose score [S43]"),
        },
        cadss: DischargeCadss {
            cadss23_at_most: Some(4),
            cadss6_at_most: None,
            or_back_to_baseline: true,
            source: s("DC-05: CONFIG-DEFAULT from the trial definition (CADSS > 4 with change > 0) [S8]; the spec \
                       has no CADSS-6 cut-off"),
        },
        respiratory: DischargeRespiratory {
            spo2_below_baseline_at_most: 0,
            resp_rate_at_least: Some(10),
            resp_rate_at_most: None,
            source: s("DC-06: CONFIG-DEFAULT, SpO2 at baseline on room air, RR normal [S65]; no normal RR range in \
                       the spec, so the MON-07 floor (10/min)"),
        },
        cssrs_check: true,
        readings_max_age_minutes: None,
    }
}

pub(crate) fn protocol(route: Route) -> MonitoringProtocol {
    MonitoringProtocol { plan: plan(route), thresholds: thresholds(route), discharge: discharge(route) }
}
