//! Each test is a scenario on the floor: who records what, when, and what the session allows.

use proptest::prelude::*;
use serde_json::json;
use time::macros::datetime;
use uuid::Uuid;

use super::*;
use crate::adverse_event::{
    AdverseEvent, AeAction, AeCode, AeOutcome, AeSeverity, BuiltinAe, NewAdverseEvent, SaeCriterion,
};
use crate::decision::{Route, SpravatoIndication};
use crate::discharge::{CriterionStatus, RecoveryAssessment};
use crate::dose::{DoseRequest, Zone};
use crate::identity::Role;
use crate::instruments::cssrs::Risk;
use crate::monitoring::{
    AlertAction, Cadss, Cadss23, CheckStatus, ClinicianObservation, MeasureKind, Measurement, Moaas, Reading, Reason,
    summarize,
};
use crate::protocol::{Protocol, ProtocolSet};
use crate::vitals::{BloodPressure, DiastolicBp, HeartRate, RespRate, Spo2, SystolicBp};
use crate::{UserId, UtcTs};

/// 2025-03-07 (the TV-SPR-1 session day) at hh:mm UTC.
fn at(h: u8, m: u8) -> UtcTs {
    UtcTs::from_datetime(datetime!(2025-03-07 00:00 UTC).replace_time(time::Time::from_hms(h, m, 0).unwrap()))
}

fn actor(n: u128, role: Role) -> Actor {
    Actor { user: UserId::from_uuid(Uuid::from_u128(n)), role }
}

const DR_ADEYEMI: u128 = 1;
const DR_BRENNAN: u128 = 2;
const NURSE_CHO: u128 = 3;
const NURSE_DIAZ: u128 = 4;
const THERAPIST_EVANS: u128 = 5;
const DESK_FARAH: u128 = 6;

fn prescriber() -> Actor {
    actor(DR_ADEYEMI, Role::Prescriber)
}
fn second_prescriber() -> Actor {
    actor(DR_BRENNAN, Role::Prescriber)
}
fn nurse() -> Actor {
    actor(NURSE_CHO, Role::Nurse)
}
fn second_nurse() -> Actor {
    actor(NURSE_DIAZ, Role::Nurse)
}
fn therapist() -> Actor {
    actor(THERAPIST_EVANS, Role::Therapist)
}
fn front_desk() -> Actor {
    actor(DESK_FARAH, Role::Frontdesk)
}

fn gates() -> GateFacts {
    GateFacts {
        consent_valid: true,
        decision_allows_route: true,
        rems_enrolled: true,
        setting_rems_certified: true,
        cssrs_risk: Some(Risk::Low),
        spravato_indication: Some(SpravatoIndication::Trd),
        previous_spravato_doses_mg: vec![56],
        age_years: Some(45),
        recorded_weight: Some(MeasuredWeight { kg: 80.0, measured_at: at(9, 0).plus(time::Duration::days(-6)) }),
        height_cm: None,
        sex_at_birth: None,
        clinic_date: jiff::civil::date(2025, 3, 7),
    }
}

/// A session being run: its protocol, the record's facts, the fold so far and the accepted log.
struct Run {
    protocol: Protocol,
    gates: GateFacts,
    session: Session,
    log: Vec<Recorded>,
}

impl Run {
    fn new(route: Route) -> Self {
        let protocol = ProtocolSet::bundled().unwrap().get(route).clone();
        Self { protocol, gates: gates(), session: Session::scheduled(), log: Vec::new() }
    }

    fn ctx(&self, now: UtcTs) -> Context<'_> {
        Context { protocol: &self.protocol, gates: self.gates.clone(), now }
    }

    /// Decides at `t` (the clock reads `t`) and, if accepted, appends and folds.
    fn attempt(&mut self, t: UtcTs, by: Actor, event: SessionEvent) -> Result<(), Refusal> {
        let recorded = Recorded { at: t, by, event };
        let session = std::mem::take(&mut self.session);
        let ctx = Context { protocol: &self.protocol, gates: self.gates.clone(), now: t };
        let outcome = decide(&session, &ctx, &recorded);
        // What the server relies on to skip the record's lookups: an event that reads no gate facts
        // is decided the same with none established.
        if !reads_gate_facts(&recorded.event) {
            let unread = Context { protocol: &self.protocol, gates: GateFacts::unread(), now: t };
            assert_eq!(
                decide(&session, &unread, &recorded),
                outcome,
                "{} read the record's facts",
                recorded.event.kind()
            );
        }
        self.session = if outcome.is_ok() { apply(session, &ctx, &recorded) } else { session };
        if outcome.is_ok() {
            self.log.push(recorded);
        }
        outcome
    }

    #[track_caller]
    fn ok(&mut self, t: UtcTs, by: Actor, event: SessionEvent) {
        let kind = event.kind();
        if let Err(r) = self.attempt(t, by, event) {
            panic!("{kind} at {t} was refused: {r:?}");
        }
    }

    #[track_caller]
    fn refused(&mut self, t: UtcTs, by: Actor, event: SessionEvent) -> Refusal {
        let kind = event.kind();
        match self.attempt(t, by, event) {
            Ok(()) => panic!("{kind} at {t} was accepted"),
            Err(r) => r,
        }
    }

    fn order(&self, t: UtcTs, request: DoseRequest, override_reason: Option<&str>) -> SessionEvent {
        order_dose(&self.session, &self.ctx(t), t, request, override_reason.map(str::to_owned)).unwrap()
    }

    fn state(&self) -> SessionState {
        self.session.state()
    }

    fn codes(&self, now: UtcTs) -> Vec<&'static str> {
        self.session.blocked_by(&self.ctx(now)).iter().map(|b| b.code).collect()
    }
}

fn check_in() -> CheckIn {
    CheckIn {
        escort: Escort {
            name: "Sam Rivers".into(),
            phone: "+1 555 010 0199".into(),
            relationship: Some("partner".into()),
        },
        escort_confirmed_in_person: true,
        state_of_mind: StateOfMind {
            mood: Mood::Rating(6),
            acute_stressors: None,
            sleep_hours: Some(7.5),
            last_food_at: Some(at(7, 0)),
            last_fluid_at: Some(at(8, 30)),
            last_nasal_spray_at: None,
            alcohol_or_substances_last_12h: false,
            intoxication_signs: false,
            medication_changes: None,
        },
        pregnancy: Pregnancy::NotApplicable,
        weight: None,
    }
}

fn blood_pressure(sys: u16, dia: u16) -> BloodPressure {
    BloodPressure::new(SystolicBp::new(sys).unwrap(), DiastolicBp::new(dia).unwrap()).unwrap()
}

fn bp(t: UtcTs, sys: u16, dia: u16) -> SessionEvent {
    SessionEvent::Reading(Reading {
        taken_at: t,
        measurement: Measurement::BloodPressure {
            bp: blood_pressure(sys, dia),
            heart_rate: Some(HeartRate::new(72).unwrap()),
            spo2: Some(Spo2::new(98).unwrap()),
        },
    })
}

fn respiration(t: UtcTs, spo2: u8, rr: u8) -> SessionEvent {
    SessionEvent::Reading(Reading {
        taken_at: t,
        measurement: Measurement::Spo2Rr {
            spo2: Some(Spo2::new(spo2).unwrap()),
            resp_rate: Some(RespRate::new(rr).unwrap()),
        },
    })
}

fn moaas(t: UtcTs, score: u8) -> SessionEvent {
    SessionEvent::Reading(Reading {
        taken_at: t,
        measurement: Measurement::Moaas { score: Moaas::new(score).unwrap() },
    })
}

fn cadss(t: UtcTs, total: u8) -> SessionEvent {
    SessionEvent::Reading(Reading {
        taken_at: t,
        measurement: Measurement::Cadss { score: Cadss::Cadss23(Cadss23::new(total).unwrap()) },
    })
}

/// Checks the patient in at 09:30 and takes the pre-dose baselines at 09:35 with this BP.
fn arrive(run: &mut Run, sys: u16, dia: u16) {
    run.ok(at(9, 30), nurse(), SessionEvent::CheckedIn(check_in()));
    run.ok(at(9, 35), nurse(), bp(at(9, 35), sys, dia));
    run.ok(at(9, 35), nurse(), respiration(at(9, 35), 98, 14));
    run.ok(at(9, 35), therapist(), moaas(at(9, 35), 5));
    run.ok(at(9, 35), therapist(), cadss(at(9, 35), 0));
}

fn spravato(mg: f64) -> DoseRequest {
    DoseRequest { dose_mg: Some(mg), ..Default::default() }
}

fn spravato_kit(mg: f64) -> Administration {
    Administration {
        product: "SPRAVATO 28 mg/0.2 mL nasal spray, kit of 3 devices (84 mg)".into(),
        ndc: Some("50458-028-03".into()),
        lot: "24KX117".into(),
        expiry: jiff::civil::date(2026, 1, 31),
        dose_mg: mg,
        route_snomed: "46713006".into(),
    }
}

/// Sedation peaks and resolves (TV-SED-1): MOAA/S 4 at 10:15, back to 5 at 10:30.
fn sedation_course(run: &mut Run) {
    run.ok(at(10, 15), therapist(), moaas(at(10, 15), 4));
    run.ok(at(10, 30), therapist(), moaas(at(10, 30), 5));
}

/// TV-SPR-1 up to 10:30: 84 mg, devices at 10:00, 10:05 and 10:10, then the sedation course.
fn spravato_to_monitoring(run: &mut Run, sys: u16, dia: u16) {
    arrive(run, sys, dia);
    let order = run.order(at(9, 40), spravato(84.0), None);
    run.ok(at(9, 40), prescriber(), order);
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
    run.ok(at(9, 55), nurse(), SessionEvent::AdministrationStarted(spravato_kit(84.0)));
    for m in [0, 5, 10] {
        run.ok(at(10, m), nurse(), SessionEvent::DeviceGiven);
    }
    sedation_course(run);
}

fn recovered() -> RecoveryAssessment {
    RecoveryAssessment {
        oriented: true,
        can_talk: true,
        sits_up_and_walks_steadily_unaided: true,
        nausea_controlled: true,
        adequately_hydrated: true,
    }
}

fn assessment(escort_present: bool) -> SessionEvent {
    SessionEvent::DischargeAssessment(DischargeAssessment {
        ready_to_leave: true,
        recovery: recovered(),
        on_room_air: true,
        escort_present,
        cssrs_at_discharge: Some(Risk::Low),
    })
}

/// The rest of TV-SPR-1's monitoring (after the 40-min BP): dissociation at 40 min, recovery at
/// 11:00 and settled readings at 11:45.
fn spravato_to_recovery(run: &mut Run) {
    run.ok(at(10, 43), nurse(), cadss(at(10, 40), 10));
    run.ok(at(11, 0), therapist(), SessionEvent::ExperienceEnded);
    run.ok(at(11, 46), nurse(), bp(at(11, 45), 125, 80));
    run.ok(at(11, 46), nurse(), respiration(at(11, 45), 98, 14));
    run.ok(at(11, 46), therapist(), moaas(at(11, 45), 5));
    run.ok(at(11, 46), therapist(), cadss(at(11, 45), 2));
}

const DISCHARGE: SessionEvent = SessionEvent::Discharged { instructions_given: true };

#[test]
fn tv_spr_1_spravato_session_from_arrival_to_discharge_at_12_00() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    assert!(run.codes(at(9, 0)).is_empty(), "check-in is the next step");
    arrive(&mut run, 130, 80);
    assert_eq!(run.codes(at(9, 36)), ["dose_order"]);
    let order = run.order(at(9, 40), spravato(84.0), None);
    run.ok(at(9, 40), prescriber(), order);
    let ordered = &run.session.ordered().unwrap().calculation;
    assert_eq!((ordered.dose_mg, ordered.devices, ordered.zone), (84.0, Some(3), Zone::Normal));
    assert!(run.codes(at(9, 41)).is_empty());
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
    run.ok(at(9, 55), nurse(), SessionEvent::AdministrationStarted(spravato_kit(84.0)));
    assert_eq!(run.state(), SessionState::Dosing);

    run.ok(at(10, 0), nurse(), SessionEvent::DeviceGiven);
    assert_eq!(run.codes(at(10, 2)), ["device_wait"], "device 2 not before 10:05");
    let early = run.refused(at(10, 4), nurse(), SessionEvent::DeviceGiven);
    assert_eq!((early.code, early.field), ("device_log", Some("device_times")));
    run.ok(at(10, 5), nurse(), SessionEvent::DeviceGiven);
    run.ok(at(10, 10), nurse(), SessionEvent::DeviceGiven);
    assert_eq!(run.state(), SessionState::Monitoring, "the last device ends the administration");
    assert_eq!(run.session.devices(), [at(10, 0), at(10, 5), at(10, 10)]);
    let dose = run.session.dose_times().unwrap();
    assert_eq!((dose.started_at, dose.ended_at, dose.last_device_at), (at(10, 0), Some(at(10, 10)), Some(at(10, 10))));
    assert_eq!(run.session.time_since_dose(at(10, 30)), Some(time::Duration::minutes(30)));
    sedation_course(&mut run);

    // The 40-min BP counts from the first device (REMS form): due at 10:40.
    let checks = run.session.checks(&run.ctx(at(10, 30)));
    let bp40 = checks
        .iter()
        .find(|c| c.check.kind == MeasureKind::BloodPressure && matches!(c.check.reason, Reason::AtOffset { .. }))
        .unwrap();
    assert_eq!((bp40.check.due_at, bp40.status), (at(10, 40), CheckStatus::Upcoming));
    run.ok(at(10, 41), nurse(), bp(at(10, 40), 135, 85));
    assert!(run.session.unacknowledged_alerts().is_empty(), "+5/+5 is no MON-03 rise");

    spravato_to_recovery(&mut run);
    assert_eq!(run.state(), SessionState::Recovery);

    // 11:55 is 115 min after the first device: DC-01 refuses.
    run.ok(at(11, 55), nurse(), assessment(true));
    let early = run.refused(at(11, 55), nurse(), DISCHARGE);
    assert_eq!(early.code, "DC-01");
    assert!(early.message.contains("DC-01 (115 of 120 min"), "{}", early.message);
    assert!(run.codes(at(11, 55)).contains(&"DC-01"));

    run.ok(at(12, 0), nurse(), assessment(true));
    assert_eq!(run.state(), SessionState::ReadyForDischarge);
    let readiness = run.session.discharge(&run.ctx(at(12, 0))).unwrap();
    assert!(readiness.ready);
    assert_eq!(readiness.earliest_at, Some(at(12, 0)));
    assert_eq!(readiness.criteria.len(), 9);
    assert!(readiness.criteria.iter().all(|c| c.status == CriterionStatus::Met), "{:#?}", readiness.criteria);
    assert!(run.codes(at(12, 0)).is_empty());
    run.ok(at(12, 0), nurse(), DISCHARGE);
    assert_eq!(run.state(), SessionState::Discharged);
    assert_eq!(run.codes(at(12, 5)), ["state"]);
}

#[test]
fn tv_iv_1_iv_order_needs_a_second_clinician_who_did_not_order_it() {
    let mut run = Run::new(Route::IntravenousRacemic);
    // GATE-03 is a Spravato gate: it does not stop racemic ketamine.
    run.gates.rems_enrolled = false;
    run.gates.setting_rems_certified = false;
    arrive(&mut run, 128, 82);
    // The client's weight is replaced by the record's 80 kg.
    let request = DoseRequest {
        weight_kg: Some(60.0),
        dose_mg_per_kg: Some(0.5),
        stock_mg_per_ml: Some(50.0),
        bag_ml: Some(100.0),
        ..Default::default()
    };
    let order = run.order(at(9, 40), request, None);
    run.ok(at(9, 40), prescriber(), order);
    let calc = &run.session.ordered().unwrap().calculation;
    assert_eq!(calc.dose_mg, 40.0);
    assert_eq!(calc.rate_mg_per_min, Some(1.0));
    assert_eq!(calc.pump_ml_per_h, Some(150.0));
    assert_eq!(calc.volume_ml, Some(0.8));

    assert_eq!(run.codes(at(9, 41)), ["dose_verification"]);
    let unchecked = run.refused(at(9, 41), nurse(), SessionEvent::ClearedForDosing);
    assert_eq!(unchecked.code, "dose_verification");
    let same = run.refused(at(9, 42), prescriber(), SessionEvent::DoseVerified);
    assert_eq!(same.code, "dose_verification", "the verifier must not be the prescriber who ordered");
    let desk = run.refused(at(9, 42), therapist(), SessionEvent::DoseVerified);
    assert_eq!(desk.code, "role");
    run.ok(at(9, 43), second_nurse(), SessionEvent::DoseVerified);
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);

    let vial = vial(40.0, "47625008");
    let wrong_dose = run.refused(
        at(10, 0),
        nurse(),
        SessionEvent::AdministrationStarted(Administration { dose_mg: 45.0, ..vial.clone() }),
    );
    assert_eq!((wrong_dose.code, wrong_dose.field), ("dose_mismatch", Some("dose_mg")));
    let expired = run.refused(
        at(10, 0),
        nurse(),
        SessionEvent::AdministrationStarted(Administration { expiry: jiff::civil::date(2025, 3, 6), ..vial.clone() }),
    );
    assert_eq!(expired.field, Some("expiry"));
    run.ok(at(10, 0), nurse(), SessionEvent::AdministrationStarted(vial));
    assert_eq!(run.state(), SessionState::Dosing);
    assert!(run.codes(at(10, 20)).is_empty(), "the infusion may be stopped at any time");
    let device = run.refused(at(10, 20), nurse(), SessionEvent::DeviceGiven);
    assert_eq!(device.code, "state");
    run.ok(at(10, 40), nurse(), SessionEvent::AdministrationEnded { reason: None });
    assert_eq!(run.state(), SessionState::Monitoring);
    let dose = run.session.dose_times().unwrap();
    assert_eq!((dose.started_at, dose.ended_at), (at(10, 0), Some(at(10, 40))));
    // DC-01 for IV counts 60 min from the end of the infusion.
    assert_eq!(run.session.discharge(&run.ctx(at(11, 0))).unwrap().earliest_at, Some(at(11, 40)));
}

/// An IV infusion of 40 mg (0.5 mg/kg of the record's 80 kg) started at 10:00 after a pre-dose
/// BP of 128/82.
fn iv_infusion_running(run: &mut Run) {
    run.gates.rems_enrolled = false;
    run.gates.setting_rems_certified = false;
    arrive(run, 128, 82);
    let request = DoseRequest {
        dose_mg_per_kg: Some(0.5),
        stock_mg_per_ml: Some(50.0),
        bag_ml: Some(100.0),
        ..Default::default()
    };
    let order = run.order(at(9, 40), request, None);
    run.ok(at(9, 40), prescriber(), order);
    run.ok(at(9, 43), second_nurse(), SessionEvent::DoseVerified);
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
    let vial = vial(40.0, "47625008");
    run.ok(at(10, 0), nurse(), SessionEvent::AdministrationStarted(vial));
    assert_eq!(run.state(), SessionState::Dosing);
}

/// A 50 mg/mL ketamine vial for `dose_mg` by the SNOMED CT `route`.
fn vial(dose_mg: f64, route: &str) -> Administration {
    Administration {
        product: "Ketamine HCl injection 50 mg/mL vial".into(),
        ndc: None,
        lot: "KET2291".into(),
        expiry: jiff::civil::date(2025, 9, 30),
        dose_mg,
        route_snomed: route.into(),
    }
}

fn resume(reason: &str) -> SessionEvent {
    SessionEvent::InfusionResumed { reason: reason.into() }
}

#[test]
fn mon_05_a_bp_of_184_96_pauses_the_infusion_until_the_prescriber_resumes_it_with_a_reason() {
    let mut run = Run::new(Route::IntravenousRacemic);
    iv_infusion_running(&mut run);
    run.ok(at(10, 10), nurse(), bp(at(10, 10), 184, 96));
    let rules: Vec<&str> = run.session.unacknowledged_alerts().iter().map(|a| a.alert.rule).collect();
    assert_eq!(rules, ["MON-03", "MON-05"]);
    let blockers = run.session.blocked_by(&run.ctx(at(10, 11)));
    let pause = blockers.iter().find(|b| b.code == "MON-05").unwrap();
    assert!(pause.message.starts_with("Pause the infusion now"), "{}", pause.message);
    assert_eq!(run.refused(at(10, 11), prescriber(), resume("fine")).code, "state", "nothing is paused yet");

    run.ok(at(10, 11), nurse(), SessionEvent::InfusionPaused { reason: Some("BP 184/96".into()) });
    assert!(run.session.infusion_paused());
    let blockers = run.session.blocked_by(&run.ctx(at(10, 12)));
    assert_eq!((blockers[0].code, blockers[0].unblocked_by.as_slice()), ("MON-05", [Role::Prescriber].as_slice()));
    assert_eq!(run.refused(at(10, 12), nurse(), SessionEvent::InfusionPaused { reason: None }).code, "state");
    // Paused already: a second high reading raises no second "pause the infusion".
    run.ok(at(10, 15), nurse(), bp(at(10, 15), 182, 98));
    let mon05 = run.session.alerts().iter().filter(|a| a.alert.rule == "MON-05").count();
    assert_eq!(mon05, 1);

    assert_eq!(run.refused(at(10, 16), nurse(), resume("BP settling")).code, "role");
    assert_eq!(run.refused(at(10, 16), prescriber(), resume("BP settling")).code, "MON-03", "MON-03 waits");
    let blank = run.refused(at(10, 16), prescriber(), resume("  "));
    assert_eq!((blank.code, blank.field), ("invalid", Some("reason")));
    for id in run
        .session
        .unacknowledged_alerts()
        .iter()
        .filter(|a| a.alert.rule == "MON-03")
        .map(|a| a.id)
        .collect::<Vec<_>>()
    {
        run.ok(at(10, 17), prescriber(), SessionEvent::AlertAcknowledged { alert_id: id, note: None });
    }
    run.ok(at(10, 20), prescriber(), resume("Transient rise; 150/88 on recheck at 10:19"));
    assert!(!run.session.infusion_paused());
    assert!(run.codes(at(10, 21)).is_empty(), "the prescriber's decision settles MON-05");
    assert!(run.session.unacknowledged_alerts().is_empty(), "resuming acknowledges the MON-05 alert");
    let pause = &run.session.infusion_pauses()[0];
    assert_eq!(pause.resumed.as_ref().map(|r| (r.by, r.at)), Some((prescriber(), at(10, 20))));

    // A new MON-05 after the resume asks for a new pause.
    run.ok(at(10, 30), nurse(), bp(at(10, 30), 186, 100));
    assert!(run.codes(at(10, 31)).contains(&"MON-05"));
    run.ok(at(10, 31), nurse(), SessionEvent::AdministrationEnded { reason: Some("Stopped for BP".into()) });
    assert_eq!(run.state(), SessionState::Monitoring);
}

#[test]
fn a_reading_is_not_timed_before_a_dose_already_started() {
    let mut run = Run::new(Route::IntravenousRacemic);
    iv_infusion_running(&mut run);
    // A pre-dose BP (09:58) typed in after the infusion started at 10:00 would move the baseline.
    let late = run.refused(at(10, 5), nurse(), bp(at(9, 58), 150, 95));
    assert_eq!((late.code, late.field), ("invalid", Some("taken_at")));
    assert!(late.message.contains("the dose has started"), "{}", late.message);
    run.ok(at(10, 5), nurse(), bp(at(10, 4), 130, 84));
}

#[test]
fn an_adverse_event_cannot_be_recorded_as_resolved_later_than_now() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    spravato_to_monitoring(&mut run, 130, 80);
    let ae = |resolved| {
        AdverseEvent::new(NewAdverseEvent {
            code: AeCode::Builtin(BuiltinAe::Nausea),
            onset_at: at(10, 30),
            severity: AeSeverity::Mild,
            seriousness: Default::default(),
            actions: Default::default(),
            action_details: None,
            outcome: AeOutcome::Resolved,
            resolved_at: Some(resolved),
        })
        .unwrap()
    };
    let r = run.refused(at(10, 40), nurse(), SessionEvent::AdverseEventRecorded(ae(at(10, 50))));
    assert_eq!((r.code, r.field), ("invalid", Some("resolved_at")));
    run.ok(at(10, 40), nurse(), SessionEvent::AdverseEventRecorded(ae(at(10, 38))));
}

#[test]
fn only_a_running_iv_infusion_can_be_paused() {
    let mut im = Run::new(Route::IntramuscularRacemic);
    im.gates.rems_enrolled = false;
    arrive(&mut im, 128, 82);
    assert_eq!(im.refused(at(9, 40), nurse(), SessionEvent::InfusionPaused { reason: None }).code, "state");
    let mut spravato = Run::new(Route::SpravatoIntranasal);
    spravato_to_monitoring(&mut spravato, 130, 80);
    assert_eq!(spravato.refused(at(10, 50), nurse(), SessionEvent::InfusionPaused { reason: None }).code, "state");
}

#[test]
fn a_paused_infusion_with_falling_spo2_is_stopped_not_resumed() {
    let mut run = Run::new(Route::IntravenousRacemic);
    iv_infusion_running(&mut run);
    run.ok(at(10, 10), nurse(), bp(at(10, 10), 180, 90));
    run.ok(at(10, 11), nurse(), SessionEvent::InfusionPaused { reason: None });
    run.ok(at(10, 14), nurse(), respiration(at(10, 14), 88, 14));
    assert_eq!(run.refused(at(10, 16), prescriber(), resume("BP is fine now")).code, "MON-06");
    run.ok(at(10, 16), prescriber(), SessionEvent::AdministrationEnded { reason: Some("SpO2 88 %".into()) });
    assert_eq!(run.state(), SessionState::Monitoring);
}

#[test]
fn an_im_injection_starts_and_ends_at_once_and_monitoring_begins() {
    let mut run = Run::new(Route::IntramuscularRacemic);
    run.gates.recorded_weight = Some(MeasuredWeight { kg: 70.0, measured_at: at(9, 0) });
    arrive(&mut run, 124, 78);
    let order = run.order(
        at(9, 40),
        DoseRequest { dose_mg_per_kg: Some(0.5), stock_mg_per_ml: Some(50.0), ..Default::default() },
        None,
    );
    run.ok(at(9, 40), prescriber(), order);
    assert_eq!(run.session.ordered().unwrap().calculation.volume_ml, Some(0.7), "TV-IM-1");
    assert_eq!(run.refused(at(9, 41), nurse(), SessionEvent::ClearedForDosing).code, "dose_verification");
    run.ok(at(9, 42), nurse(), SessionEvent::DoseVerified);
    run.ok(at(9, 45), second_nurse(), SessionEvent::ClearedForDosing);
    let vial = vial(35.0, "78421000");
    run.ok(at(10, 0), nurse(), SessionEvent::AdministrationStarted(vial));
    assert_eq!(run.state(), SessionState::Monitoring);
    let dose = run.session.dose_times().unwrap();
    assert_eq!((dose.started_at, dose.ended_at), (at(10, 0), Some(at(10, 0))));
    // Every 15 min for the first hour: the 10:15 check is due at 10:14.
    let checks = run.session.checks(&run.ctx(at(10, 14)));
    let first = checks.iter().find(|c| c.check.kind == MeasureKind::BloodPressure && c.check.due_at == at(10, 15));
    assert_eq!(first.map(|c| c.status), Some(CheckStatus::Due));
}

#[test]
fn a_lozenge_is_given_until_it_is_finished_and_observation_counts_from_then() {
    let mut run = Run::new(Route::SublingualLozenge);
    arrive(&mut run, 124, 78);
    let order = run.order(at(9, 40), DoseRequest { dose_mg: Some(300.0), ..Default::default() }, None);
    run.ok(at(9, 40), prescriber(), order);
    assert_eq!(run.session.ordered().unwrap().calculation.tablets.map(|t| t.count), Some(3), "TV-SL-1");
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
    let troches = Administration {
        product: "Ketamine rapid-dissolve tablet 100 mg (compounded)".into(),
        ndc: None,
        lot: "RDT-0425".into(),
        expiry: jiff::civil::date(2025, 4, 30),
        dose_mg: 300.0,
        route_snomed: "37839007".into(),
    };
    run.ok(at(10, 0), nurse(), SessionEvent::AdministrationStarted(troches));
    assert_eq!(run.state(), SessionState::Dosing);
    assert_eq!(run.refused(at(10, 5), therapist(), SessionEvent::ExperienceEnded).code, "state");
    run.ok(at(10, 15), nurse(), SessionEvent::AdministrationEnded { reason: None });
    assert_eq!(run.state(), SessionState::Monitoring);
    assert_eq!(run.session.discharge(&run.ctx(at(10, 20))).unwrap().earliest_at, Some(at(12, 15)));
}

#[test]
fn the_view_of_a_session_serializes_for_the_api() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    spravato_to_monitoring(&mut run, 130, 80);
    let ctx = run.ctx(at(10, 31));
    let view = serde_json::to_value(run.session.view(&ctx)).unwrap();
    assert_eq!(view["state"], "monitoring");
    assert_eq!(view["minutes_since_dose"], 31);
    assert_eq!(view["dose_times"]["started_at"], "2025-03-07T10:00:00.000000Z");
    assert_eq!(view["session"]["devices"].as_array().map(Vec::len), Some(3));
    assert_eq!(view["discharge"]["earliest_at"], "2025-03-07T12:00:00.000000Z");
    assert!(view["checks"].as_array().is_some_and(|c| !c.is_empty()));
}

#[test]
fn a_second_prescriber_may_verify_an_iv_dose() {
    let mut run = Run::new(Route::IntravenousRacemic);
    arrive(&mut run, 128, 82);
    let order = run.order(
        at(9, 40),
        DoseRequest { dose_mg_per_kg: Some(0.5), stock_mg_per_ml: Some(50.0), ..Default::default() },
        None,
    );
    run.ok(at(9, 40), prescriber(), order);
    run.ok(at(9, 41), second_prescriber(), SessionEvent::DoseVerified);
    run.ok(at(9, 42), nurse(), SessionEvent::ClearedForDosing);
    // A new order withdraws the verification and the clearance.
    let reorder = run.order(
        at(9, 44),
        DoseRequest { dose_mg_per_kg: Some(0.4), stock_mg_per_ml: Some(50.0), ..Default::default() },
        None,
    );
    run.ok(at(9, 44), prescriber(), reorder);
    assert_eq!(run.state(), SessionState::CheckedIn);
    assert_eq!(run.codes(at(9, 45)), ["dose_verification"]);
}

#[test]
fn a_dose_calculation_from_the_client_is_never_taken() {
    let mut run = Run::new(Route::IntravenousRacemic);
    arrive(&mut run, 128, 82);
    let SessionEvent::DoseOrdered(mut order) = run.order(
        at(9, 40),
        DoseRequest { dose_mg_per_kg: Some(0.5), stock_mg_per_ml: Some(50.0), ..Default::default() },
        None,
    ) else {
        panic!("not an order")
    };
    let honest = order.clone();
    order.calculation.dose_mg = 4.0;
    let forged = run.refused(at(9, 40), prescriber(), SessionEvent::DoseOrdered(order.clone()));
    assert_eq!((forged.code, forged.field), ("dose_request", Some("calculation")));
    let mut lighter = honest.clone();
    lighter.request.weight_kg = Some(60.0);
    let weight = run.refused(at(9, 40), prescriber(), SessionEvent::DoseOrdered(lighter));
    assert_eq!((weight.code, weight.field), ("dose_request", Some("request")));
    run.ok(at(9, 40), prescriber(), SessionEvent::DoseOrdered(honest));
}

#[test]
fn weight_based_dosing_needs_a_weight_measured_within_the_protocols_limit() {
    let mut run = Run::new(Route::IntravenousRacemic);
    run.gates.recorded_weight =
        Some(MeasuredWeight { kg: 80.0, measured_at: at(9, 0).plus(time::Duration::days(-40)) });
    arrive(&mut run, 128, 82);
    let request = DoseRequest { dose_mg_per_kg: Some(0.5), stock_mg_per_ml: Some(50.0), ..Default::default() };
    let stale = order_dose(&run.session, &run.ctx(at(9, 40)), at(9, 40), request.clone(), None).unwrap();
    let refused = run.refused(at(9, 40), prescriber(), stale);
    assert_eq!((refused.code, refused.field), ("weight", Some("weight_kg")));
    assert!(refused.message.contains("40 days ago"), "{}", refused.message);
    run.gates.recorded_weight = None;
    let none = order_dose(&run.session, &run.ctx(at(9, 41)), at(9, 41), request.clone(), None);
    assert_eq!(none.err().map(|r| (r.code, r.field)), Some(("dose_request", Some("weight_kg"))));

    // Weighed at check-in: that weight counts.
    let mut weighed = Run::new(Route::IntravenousRacemic);
    weighed.gates.recorded_weight = None;
    let mut details = check_in();
    details.weight = Some(MeasuredWeight { kg: 70.0, measured_at: at(9, 25) });
    weighed.ok(at(9, 30), nurse(), SessionEvent::CheckedIn(details));
    let order = weighed.order(at(9, 40), request, None);
    weighed.ok(at(9, 40), prescriber(), order);
    assert_eq!(weighed.session.ordered().unwrap().calculation.dose_mg, 35.0);
}

#[test]
fn tv_iv_5_a_blocked_dose_is_refused_with_no_override() {
    let mut run = Run::new(Route::IntravenousRacemic);
    run.gates.recorded_weight = Some(MeasuredWeight { kg: 70.0, measured_at: at(9, 0) });
    arrive(&mut run, 128, 82);
    let request = DoseRequest { dose_mg_per_kg: Some(2.0), stock_mg_per_ml: Some(50.0), ..Default::default() };
    let order = run.order(at(9, 40), request, Some("patient asked for more"));
    let refused = run.refused(at(9, 40), prescriber(), order);
    assert_eq!(refused.code, "dose_block");
    assert!(refused.message.contains("cannot be given"), "{}", refused.message);
    assert!(run.session.ordered().is_none());
}

#[test]
fn tv_iv_4_an_override_dose_needs_the_prescribers_reason() {
    let mut run = Run::new(Route::IntravenousRacemic);
    arrive(&mut run, 128, 82);
    let request = DoseRequest { dose_mg_per_kg: Some(0.8), stock_mg_per_ml: Some(50.0), ..Default::default() };
    let bare = run.order(at(9, 40), request.clone(), None);
    let refused = run.refused(at(9, 40), prescriber(), bare);
    assert_eq!((refused.code, refused.field), ("dose_override", Some("override_reason")));
    let reasoned = run.order(at(9, 41), request, Some("partial response at 0.75 mg/kg over three sessions"));
    run.ok(at(9, 41), prescriber(), reasoned);
    let ordered = run.session.ordered().unwrap();
    assert_eq!((ordered.calculation.dose_mg, ordered.calculation.zone), (64.0, Zone::Override));
    assert!(ordered.override_reason.is_some());

    let normal = DoseRequest { dose_mg_per_kg: Some(0.5), stock_mg_per_ml: Some(50.0), ..Default::default() };
    let needless = run.order(at(9, 42), normal, Some("just in case"));
    assert_eq!(run.refused(at(9, 42), prescriber(), needless).field, Some("override_reason"));
}

#[test]
fn tv_spr_2_84_mg_on_day_1_is_refused() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    run.gates.previous_spravato_doses_mg = vec![];
    arrive(&mut run, 130, 80);
    // The client claims a previous 56 mg session; the record says day 1.
    let claimed = DoseRequest {
        dose_mg: Some(84.0),
        spravato: Some(crate::dose::SpravatoContext {
            indication: Some(SpravatoIndication::Trd),
            previous_doses_mg: vec![56],
            age_years: Some(45),
        }),
        ..Default::default()
    };
    let order = run.order(at(9, 40), claimed, None);
    let refused = run.refused(at(9, 40), prescriber(), order);
    assert_eq!(refused.code, "dose_block");
    assert!(refused.message.contains("day 1"), "{}", refused.message);
    let start = run.order(at(9, 41), spravato(56.0), None);
    run.ok(at(9, 41), prescriber(), start);
    assert_eq!(run.session.ordered().unwrap().calculation.devices, Some(2));
}

#[test]
fn gate_01_high_suicide_risk_refuses_every_dosing_step() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    arrive(&mut run, 130, 80);
    let order = run.order(at(9, 40), spravato(84.0), None);
    run.ok(at(9, 40), prescriber(), order);
    run.gates.cssrs_risk = Some(Risk::High);
    assert_eq!(run.refused(at(9, 45), nurse(), SessionEvent::ClearedForDosing).code, "GATE-01");
    let reorder = run.order(at(9, 46), spravato(56.0), None);
    assert_eq!(run.refused(at(9, 46), prescriber(), reorder).code, "GATE-01");
    let blocker = run.session.blocked_by(&run.ctx(at(9, 47))).into_iter().find(|b| b.code == "GATE-01").unwrap();
    assert!(blocker.unblocked_by.is_empty(), "not overridable in the session");

    // A later "low" on the record does not hide a "high" linked to this session.
    run.gates.cssrs_risk = Some(Risk::Low);
    let screener = Screening {
        instrument: ScreeningInstrument::CssrsScreener,
        response_id: "qr-7781".into(),
        total: None,
        cssrs_risk: Some(Risk::High),
    };
    run.ok(at(9, 48), nurse(), SessionEvent::ScreeningLinked(screener));
    assert_eq!(run.refused(at(9, 49), nurse(), SessionEvent::ClearedForDosing).code, "GATE-01");
}

#[test]
fn gate_01_no_screener_since_the_last_visit_is_a_blocker_too() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    run.gates.cssrs_risk = None;
    arrive(&mut run, 130, 80);
    let order = run.order(at(9, 40), spravato(84.0), None);
    assert_eq!(run.refused(at(9, 40), prescriber(), order).code, "GATE-01");
    let phq9 = Screening {
        instrument: ScreeningInstrument::Phq9,
        response_id: "qr-1".into(),
        total: Some(14),
        cssrs_risk: None,
    };
    run.ok(at(9, 41), nurse(), SessionEvent::ScreeningLinked(phq9));
    let cssrs = Screening {
        instrument: ScreeningInstrument::CssrsScreener,
        response_id: "qr-2".into(),
        total: None,
        cssrs_risk: Some(Risk::Low),
    };
    run.ok(at(9, 42), nurse(), SessionEvent::ScreeningLinked(cssrs));
    let order = run.order(at(9, 43), spravato(84.0), None);
    run.ok(at(9, 43), prescriber(), order);
}

#[test]
fn gate_02_no_escort_confirmed_no_dose_until_the_desk_confirms_one() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    let mut details = check_in();
    details.escort_confirmed_in_person = false;
    run.ok(at(9, 30), nurse(), SessionEvent::CheckedIn(details));
    for e in [bp(at(9, 35), 130, 80), respiration(at(9, 35), 98, 14), moaas(at(9, 35), 5), cadss(at(9, 35), 0)] {
        run.ok(at(9, 35), nurse(), e);
    }
    let order = run.order(at(9, 40), spravato(84.0), None);
    assert_eq!(run.refused(at(9, 40), prescriber(), order.clone()).code, "GATE-02");
    let blocker = run.session.blocked_by(&run.ctx(at(9, 40))).into_iter().find(|b| b.code == "GATE-02").unwrap();
    assert!(blocker.unblocked_by.contains(&Role::Frontdesk));
    run.ok(at(9, 41), front_desk(), SessionEvent::EscortConfirmed { how: EscortConfirmation::ByPhone });
    run.ok(at(9, 42), prescriber(), order);
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
}

#[test]
fn gate_03_spravato_needs_rems_enrolment_and_a_certified_setting() {
    for (enrolled, certified) in [(false, true), (true, false)] {
        let mut run = Run::new(Route::SpravatoIntranasal);
        run.gates.rems_enrolled = enrolled;
        run.gates.setting_rems_certified = certified;
        arrive(&mut run, 130, 80);
        let order = run.order(at(9, 40), spravato(84.0), None);
        assert_eq!(run.refused(at(9, 40), prescriber(), order).code, "GATE-03");
        assert_eq!(run.refused(at(9, 41), nurse(), SessionEvent::ClearedForDosing).code, "GATE-03");
    }
}

#[test]
fn gate_04_no_valid_consent_no_dose() {
    let mut run = Run::new(Route::SublingualLozenge);
    run.gates.consent_valid = false;
    arrive(&mut run, 130, 80);
    let order = run.order(at(9, 40), DoseRequest { dose_mg: Some(300.0), ..Default::default() }, None);
    let refused = run.refused(at(9, 40), prescriber(), order);
    assert_eq!(refused.code, "GATE-04");
    let blocker = run.session.blocked_by(&run.ctx(at(9, 40))).into_iter().find(|b| b.code == "GATE-04").unwrap();
    assert!(blocker.unblocked_by.contains(&Role::Frontdesk), "{:?}", blocker.unblocked_by);
}

#[test]
fn no_signed_decision_for_the_route_no_dose() {
    let mut run = Run::new(Route::SublingualLozenge);
    run.gates.decision_allows_route = false;
    arrive(&mut run, 130, 80);
    let order = run.order(at(9, 40), DoseRequest { dose_mg: Some(300.0), ..Default::default() }, None);
    assert_eq!(run.refused(at(9, 40), prescriber(), order).code, "decision");
}

#[test]
fn a_positive_pregnancy_test_at_check_in_refuses_dosing() {
    let mut run = Run::new(Route::SublingualLozenge);
    let mut details = check_in();
    details.pregnancy = Pregnancy::Positive;
    run.ok(at(9, 30), nurse(), SessionEvent::CheckedIn(details));
    let order = run.order(at(9, 40), DoseRequest { dose_mg: Some(300.0), ..Default::default() }, None);
    assert_eq!(run.refused(at(9, 40), prescriber(), order).code, "ELIG-011");
}

#[test]
fn gate_05_tv_bp_3_a_pre_dose_bp_of_182_96_holds_until_a_prescriber_releases_it_with_a_reason() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    arrive(&mut run, 182, 96);
    assert_eq!(run.state(), SessionState::Held);
    assert_eq!(run.session.held_from(), Some(SessionState::CheckedIn));
    assert_eq!(run.codes(at(9, 36)), ["GATE-05"]);
    let order = run.order(at(9, 40), spravato(84.0), None);
    assert_eq!(run.refused(at(9, 40), prescriber(), order.clone()).code, "GATE-05");
    assert_eq!(run.refused(at(9, 40), nurse(), SessionEvent::ClearedForDosing).code, "GATE-05");
    assert_eq!(run.session.unacknowledged_alerts()[0].alert.rule, "MON-02");

    let by_nurse = run.refused(at(9, 41), nurse(), SessionEvent::HoldReleased { reason: "rested".into() });
    assert_eq!(by_nurse.code, "role");
    let no_reason = run.refused(at(9, 41), prescriber(), SessionEvent::HoldReleased { reason: "  ".into() });
    assert_eq!((no_reason.code, no_reason.field), ("invalid", Some("reason")));
    run.ok(
        at(9, 42),
        prescriber(),
        SessionEvent::HoldReleased { reason: "White-coat pattern documented; benefit outweighs risk".into() },
    );
    assert_eq!(run.state(), SessionState::CheckedIn);
    assert!(run.session.unacknowledged_alerts().is_empty(), "the release decides on the MON-02 alert");
    run.ok(at(9, 43), prescriber(), order);
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);

    // A new reading at the hold threshold after the release holds again.
    run.ok(at(9, 50), nurse(), bp(at(9, 50), 186, 98));
    assert_eq!(run.state(), SessionState::Held);
    assert_eq!(run.session.held_from(), Some(SessionState::ClearedForDosing));
}

#[test]
fn gate_06_alcohol_in_the_last_12_hours_holds_dosing_for_the_prescriber() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    let mut details = check_in();
    details.state_of_mind.alcohol_or_substances_last_12h = true;
    run.ok(at(9, 30), nurse(), SessionEvent::CheckedIn(details));
    assert_eq!(run.state(), SessionState::Held);
    for e in [bp(at(9, 35), 130, 80), respiration(at(9, 35), 98, 14), moaas(at(9, 35), 5), cadss(at(9, 35), 0)] {
        run.ok(at(9, 35), nurse(), e);
    }
    let order = run.order(at(9, 40), spravato(84.0), None);
    assert_eq!(run.refused(at(9, 40), prescriber(), order.clone()).code, "GATE-06");
    let blockers = run.session.blocked_by(&run.ctx(at(9, 40)));
    assert_eq!(blockers.len(), 1);
    assert_eq!((blockers[0].code, blockers[0].unblocked_by.as_slice()), ("GATE-06", [Role::Prescriber].as_slice()));
    run.ok(
        at(9, 41),
        prescriber(),
        SessionEvent::HoldReleased { reason: "One glass of wine last night, 14 h ago; breath test negative".into() },
    );
    run.ok(at(9, 42), prescriber(), order);
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
}

#[test]
fn mon_01_tv_bp_2_a_pre_dose_bp_of_150_95_needs_a_prescribers_confirmation_not_a_nurses() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    arrive(&mut run, 150, 95);
    assert_eq!(run.state(), SessionState::CheckedIn, "MON-01 is not a hold");
    let order = run.order(at(9, 40), spravato(84.0), None);
    run.ok(at(9, 40), prescriber(), order);
    assert_eq!(run.refused(at(9, 41), nurse(), SessionEvent::ClearedForDosing).code, "MON-01");
    let by_nurse = run.refused(at(9, 42), nurse(), SessionEvent::PreDoseBpConfirmed { reason: "looks fine".into() });
    assert_eq!(by_nurse.code, "role");
    run.ok(
        at(9, 43),
        prescriber(),
        SessionEvent::PreDoseBpConfirmed { reason: "Usual BP 145/92 at home; benefit outweighs risk".into() },
    );
    assert!(run.session.unacknowledged_alerts().is_empty(), "the confirmation answers the MON-01 alert");
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
}

#[test]
fn tv_bp_6_a_pre_dose_bp_of_exactly_140_90_passes() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    arrive(&mut run, 140, 90);
    let order = run.order(at(9, 40), spravato(84.0), None);
    run.ok(at(9, 40), prescriber(), order);
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
    let nothing = run.refused(at(9, 46), prescriber(), SessionEvent::PreDoseBpConfirmed { reason: "x".into() });
    assert_eq!(nothing.code, "MON-01");
}

#[test]
fn clearing_needs_the_pre_dose_baselines_of_the_protocol() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    run.ok(at(9, 30), nurse(), SessionEvent::CheckedIn(check_in()));
    run.ok(at(9, 35), nurse(), bp(at(9, 35), 130, 80));
    let order = run.order(at(9, 40), spravato(84.0), None);
    run.ok(at(9, 40), prescriber(), order);
    let refused = run.refused(at(9, 41), nurse(), SessionEvent::ClearedForDosing);
    assert_eq!(refused.code, "pre_dose_checks");
    assert!(refused.message.contains("Sedation (MOAA/S)"), "{}", refused.message);
    let checks = run.session.checks(&run.ctx(at(9, 41)));
    assert!(checks.iter().all(|c| c.check.reason == Reason::Baseline));
    let bp_check = checks.iter().find(|c| c.check.kind == MeasureKind::BloodPressure).unwrap();
    assert_eq!(bp_check.status, CheckStatus::Done);
    let moaas_check = checks.iter().find(|c| c.check.kind == MeasureKind::Moaas).unwrap();
    assert_eq!(moaas_check.status, CheckStatus::Due);
}

#[test]
fn tv_bp_4_a_post_dose_rise_must_be_acknowledged_before_discharge() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    spravato_to_monitoring(&mut run, 130, 80);
    run.ok(at(10, 41), nurse(), bp(at(10, 40), 172, 92));
    let waiting = run.session.unacknowledged_alerts();
    assert_eq!(waiting.len(), 1);
    let alert_id = waiting[0].id;
    assert_eq!((waiting[0].alert.rule, waiting[0].alert.action), ("MON-03", AlertAction::AlertPrescriber));
    spravato_to_recovery(&mut run);
    run.ok(at(12, 0), nurse(), assessment(true));
    assert_eq!(run.state(), SessionState::Recovery, "an alert waits");
    assert_eq!(run.codes(at(12, 0)), ["MON-03"]);
    assert_eq!(run.refused(at(12, 0), nurse(), DISCHARGE).code, "MON-03");
    let unknown = run.refused(at(12, 1), prescriber(), SessionEvent::AlertAcknowledged { alert_id: 99, note: None });
    assert_eq!(unknown.field, Some("alert_id"));
    run.ok(
        at(12, 1),
        prescriber(),
        SessionEvent::AlertAcknowledged { alert_id, note: Some("Rechecked at 11:45: 125/80".into()) },
    );
    assert_eq!(run.state(), SessionState::ReadyForDischarge);
    let again = run.refused(at(12, 2), nurse(), SessionEvent::AlertAcknowledged { alert_id, note: None });
    assert_eq!(again.code, "state");
    run.ok(at(12, 2), nurse(), DISCHARGE);
}

#[test]
fn tv_sed_2_moaas_2_refuses_a_further_device_and_the_dose_ends_early_with_a_reason() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    arrive(&mut run, 130, 80);
    let order = run.order(at(9, 40), spravato(84.0), None);
    run.ok(at(9, 40), prescriber(), order);
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
    run.ok(at(9, 55), nurse(), SessionEvent::AdministrationStarted(spravato_kit(84.0)));
    run.ok(at(10, 0), nurse(), SessionEvent::DeviceGiven);
    run.ok(at(10, 4), therapist(), moaas(at(10, 4), 2));
    let alert = run.session.unacknowledged_alerts()[0].clone();
    assert_eq!(alert.alert.rule, "MON-09");
    let refused = run.refused(at(10, 5), nurse(), SessionEvent::DeviceGiven);
    assert_eq!(refused.code, "MON-09");
    assert!(run.codes(at(10, 5)).contains(&"MON-09"));
    // Acknowledging the alert does not lift the stop.
    run.ok(
        at(10, 6),
        prescriber(),
        SessionEvent::AlertAcknowledged { alert_id: alert.id, note: Some("at bedside".into()) },
    );
    assert_eq!(run.refused(at(10, 7), nurse(), SessionEvent::DeviceGiven).code, "MON-09");
    let no_reason = run.refused(at(10, 8), nurse(), SessionEvent::AdministrationEnded { reason: None });
    assert_eq!(no_reason.field, Some("reason"));
    run.ok(
        at(10, 8),
        nurse(),
        SessionEvent::AdministrationEnded { reason: Some("MON-09: MOAA/S 2 after device 1".into()) },
    );
    assert_eq!(run.state(), SessionState::Monitoring);
    assert_eq!(run.session.devices(), [at(10, 0)]);
}

#[test]
fn mon_10_moaas_0_is_an_emergency_and_stops_dosing() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    arrive(&mut run, 130, 80);
    let order = run.order(at(9, 40), spravato(84.0), None);
    run.ok(at(9, 40), prescriber(), order);
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
    run.ok(at(9, 55), nurse(), SessionEvent::AdministrationStarted(spravato_kit(84.0)));
    run.ok(at(10, 0), nurse(), SessionEvent::DeviceGiven);
    run.ok(at(10, 4), nurse(), moaas(at(10, 4), 0));
    assert_eq!(run.refused(at(10, 5), nurse(), SessionEvent::DeviceGiven).code, "MON-10");
}

#[test]
fn mon_04_chest_pain_flagged_by_the_therapist_raises_an_emergency() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    spravato_to_monitoring(&mut run, 130, 80);
    run.ok(
        at(10, 35),
        therapist(),
        SessionEvent::ObservationFlagged { observation: ClinicianObservation::ChestPain, note: None },
    );
    let waiting = run.session.unacknowledged_alerts();
    assert_eq!((waiting[0].alert.rule, waiting[0].alert.action), ("MON-04", AlertAction::EmergencyCare));
    assert_eq!(run.session.observations()[0].alert_id, waiting[0].id);
}

#[test]
fn a_therapist_may_not_administer() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    arrive(&mut run, 130, 80);
    let order = run.order(at(9, 40), spravato(84.0), None);
    run.ok(at(9, 40), prescriber(), order);
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
    let refused = run.refused(at(9, 55), therapist(), SessionEvent::AdministrationStarted(spravato_kit(84.0)));
    assert_eq!(refused.code, "role");
    assert!(refused.message.contains("prescriber, nurse"), "{}", refused.message);
    let by_nurse_order = run.order(at(9, 56), spravato(84.0), None);
    assert_eq!(run.refused(at(9, 56), nurse(), by_nurse_order).code, "role", "only a prescriber orders");
    assert_eq!(run.refused(at(9, 56), actor(9, Role::Admin), SessionEvent::ClearedForDosing).code, "role");
}

#[test]
fn dc_08_no_escort_present_no_discharge() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    spravato_to_monitoring(&mut run, 130, 80);
    run.ok(at(10, 41), nurse(), bp(at(10, 40), 135, 85));
    spravato_to_recovery(&mut run);
    run.ok(at(12, 0), nurse(), assessment(false));
    let refused = run.refused(at(12, 0), nurse(), DISCHARGE);
    assert_eq!(refused.code, "DC-08");
    assert!(refused.message.contains("DC-08"), "{}", refused.message);
    let blocker = run.session.blocked_by(&run.ctx(at(12, 0))).into_iter().find(|b| b.code == "DC-08").unwrap();
    assert!(blocker.unblocked_by.contains(&Role::Frontdesk));
    run.ok(at(12, 10), nurse(), assessment(true));
    run.ok(at(12, 10), nurse(), DISCHARGE);
}

#[test]
fn an_unresolved_serious_adverse_event_keeps_the_patient_until_it_resolves() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    spravato_to_monitoring(&mut run, 130, 80);
    let sae = AdverseEvent::new(NewAdverseEvent {
        code: AeCode::Builtin(BuiltinAe::Vomiting),
        onset_at: at(10, 30),
        severity: AeSeverity::Severe,
        seriousness: [SaeCriterion::OtherMedicallyImportant].into(),
        actions: [AeAction::MedicationGiven].into(),
        action_details: None,
        outcome: AeOutcome::NotResolved,
        resolved_at: None,
    })
    .unwrap();
    run.ok(at(10, 32), nurse(), SessionEvent::AdverseEventRecorded(sae));
    spravato_to_recovery(&mut run);
    run.ok(at(12, 0), nurse(), assessment(true));
    assert_eq!(run.refused(at(12, 0), nurse(), DISCHARGE).code, "DC-09");
    let update =
        SessionEvent::AdverseEventUpdated { number: 1, outcome: AeOutcome::Resolved, resolved_at: Some(at(11, 50)) };
    assert_eq!(run.refused(at(12, 1), therapist(), update.clone()).code, "role");
    run.ok(at(12, 1), nurse(), update);
    run.ok(at(12, 1), nurse(), DISCHARGE);
}

#[test]
fn a_held_session_returns_to_where_it_was_when_released() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    arrive(&mut run, 130, 80);
    let order = run.order(at(9, 40), spravato(84.0), None);
    run.ok(at(9, 40), prescriber(), order);
    run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
    run.ok(
        at(9, 47),
        nurse(),
        SessionEvent::HoldPlaced {
            rule: HoldRule::ClinicalJudgement,
            reason: "New medication since last visit: prescriber to review".into(),
        },
    );
    assert_eq!((run.state(), run.session.held_from()), (SessionState::Held, Some(SessionState::ClearedForDosing)));
    let refused = run.refused(at(9, 50), nurse(), SessionEvent::AdministrationStarted(spravato_kit(84.0)));
    assert_eq!(refused.code, "hold");
    run.ok(
        at(9, 52),
        prescriber(),
        SessionEvent::HoldReleased { reason: "Reviewed: sertraline, no interaction".into() },
    );
    assert_eq!((run.state(), run.session.held_from()), (SessionState::ClearedForDosing, None));
    assert!(run.session.holds()[0].released.is_some());
    run.ok(at(9, 55), nurse(), SessionEvent::AdministrationStarted(spravato_kit(84.0)));
}

#[test]
fn aborted_is_final_but_documentation_stays_open() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    arrive(&mut run, 130, 80);
    run.ok(at(9, 40), nurse(), SessionEvent::Aborted { reason: "Patient chose not to proceed today".into() });
    assert_eq!(run.state(), SessionState::Aborted);
    assert_eq!(run.session.aborted().unwrap().from, SessionState::CheckedIn);
    for event in [bp(at(9, 41), 120, 80), SessionEvent::ClearedForDosing, DISCHARGE, SessionEvent::ExperienceEnded] {
        assert_eq!(run.refused(at(9, 41), prescriber(), event).code, "state");
    }
    let again = run.refused(at(9, 41), prescriber(), SessionEvent::Aborted { reason: "again".into() });
    assert_eq!(again.code, "state");
    assert_eq!(run.codes(at(9, 42)), ["state"]);
    run.ok(at(9, 45), therapist(), SessionEvent::ProgressNote { text: "Discussed ambivalence; will rebook.".into() });
    assert_eq!(run.state(), SessionState::Aborted);
}

#[test]
fn after_administration_only_a_prescriber_may_abort() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    spravato_to_monitoring(&mut run, 130, 80);
    let reason = || SessionEvent::Aborted { reason: "Transferred to the emergency department".into() };
    assert_eq!(run.refused(at(10, 35), nurse(), reason()).code, "role");
    run.ok(at(10, 35), prescriber(), reason());
}

#[test]
fn events_are_recorded_in_time_order_and_never_ahead_of_the_clock() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    arrive(&mut run, 130, 80);
    let earlier = run.refused(at(9, 20), nurse(), SessionEvent::ProgressNote { text: "late".into() });
    assert_eq!((earlier.code, earlier.field), ("time", Some("at")));
    let recorded = Recorded { at: at(9, 50), by: nurse(), event: SessionEvent::ProgressNote { text: "x".into() } };
    let ahead = decide(&run.session, &run.ctx(at(9, 40)), &recorded).unwrap_err();
    assert_eq!(ahead.code, "time");
    // A reading entered late keeps the time it was taken.
    run.ok(at(9, 50), nurse(), bp(at(9, 38), 128, 80));
    let future_reading = run.refused(at(9, 51), nurse(), bp(at(9, 55), 128, 80));
    assert_eq!(future_reading.field, Some("taken_at"));
}

#[test]
fn check_in_names_the_field_at_fault() {
    type Spoil = fn(&mut CheckIn);
    let cases: [(Spoil, &str); 5] = [
        (|c| c.escort.name = " ".into(), "escort.name"),
        (|c| c.escort.phone = "12".into(), "escort.phone"),
        (|c| c.state_of_mind.mood = Mood::Rating(11), "state_of_mind.mood"),
        (|c| c.weight = Some(MeasuredWeight { kg: 4.0, measured_at: at(9, 0) }), "weight.kg"),
        (|c| c.state_of_mind.sleep_hours = Some(30.0), "state_of_mind.sleep_hours"),
    ];
    for (spoil, field) in cases {
        let mut run = Run::new(Route::SpravatoIntranasal);
        let mut details = check_in();
        spoil(&mut details);
        let refused = run.refused(at(9, 30), nurse(), SessionEvent::CheckedIn(details));
        assert_eq!((refused.code, refused.field), ("invalid", Some(field)));
    }
    let mut run = Run::new(Route::SpravatoIntranasal);
    let mut details = check_in();
    details.state_of_mind.mood = Mood::Words("anxious but hopeful".into());
    run.ok(at(9, 30), actor(7, Role::Nurse), SessionEvent::CheckedIn(details));
    assert_eq!(run.refused(at(9, 31), nurse(), SessionEvent::CheckedIn(check_in())).code, "state");
}

/// The happy-path log of TV-SPR-1, for the replay tests.
fn tv_spr_1_log() -> (Run, Vec<Recorded>) {
    let mut run = Run::new(Route::SpravatoIntranasal);
    spravato_to_monitoring(&mut run, 130, 80);
    run.ok(at(10, 41), nurse(), bp(at(10, 40), 172, 92));
    let id = run.session.unacknowledged_alerts()[0].id;
    run.ok(at(10, 42), prescriber(), SessionEvent::AlertAcknowledged { alert_id: id, note: Some("seen".into()) });
    spravato_to_recovery(&mut run);
    run.ok(at(12, 0), nurse(), assessment(true));
    run.ok(at(12, 0), nurse(), DISCHARGE);
    run.ok(at(12, 30), therapist(), SessionEvent::ProgressNote { text: "Integration booked for Monday.".into() });
    let log = run.log.clone();
    (run, log)
}

#[test]
fn replaying_the_log_gives_the_same_session_as_applying_it_event_by_event() {
    let (run, log) = tv_spr_1_log();
    let ctx = run.ctx(at(13, 0));
    assert_eq!(replay(&ctx, &log), run.session);
    assert_eq!(run.session.event_count(), log.len());
    // ... and so does the log after a round trip through its stored JSON.
    let stored = serde_json::to_string(&log).unwrap();
    let read: Vec<Recorded> = serde_json::from_str(&stored).unwrap();
    assert_eq!(read, log);
    assert_eq!(replay(&ctx, &read), run.session);
}

#[test]
fn events_are_stored_as_json_tagged_by_kind() {
    let nurse_id = Uuid::from_u128(NURSE_CHO).to_string();
    let recorded = Recorded { at: at(10, 5), by: nurse(), event: SessionEvent::DeviceGiven };
    assert_eq!(
        serde_json::to_value(&recorded).unwrap(),
        json!({"at": "2025-03-07T10:05:00.000000Z", "by": {"user": nurse_id, "role": "nurse"}, "event": {"kind": "device_given"}})
    );
    assert_eq!(
        serde_json::to_value(bp(at(9, 35), 130, 80)).unwrap(),
        json!({"kind": "reading", "taken_at": "2025-03-07T09:35:00.000000Z", "measurement": {
            "kind": "blood_pressure", "bp": {"systolic": 130, "diastolic": 80}, "heart_rate": 72, "spo2": 98}})
    );
    assert_eq!(
        serde_json::to_value(SessionEvent::HoldPlaced { rule: HoldRule::PreDoseBloodPressure, reason: "r".into() })
            .unwrap(),
        json!({"kind": "hold_placed", "rule": "GATE-05", "reason": "r"})
    );
    let check_in_json = serde_json::to_value(SessionEvent::CheckedIn(check_in())).unwrap();
    assert_eq!(check_in_json["kind"], "checked_in");
    assert_eq!(check_in_json["state_of_mind"]["mood"], 6);
    assert_eq!(check_in_json["pregnancy"], "not_applicable");
    // A stored reading out of range is refused when read, not trusted.
    let bad = r#"{"kind":"reading","taken_at":"2025-03-07T09:35:00Z","measurement":{"kind":"moaas","score":9}}"#;
    assert!(serde_json::from_str::<SessionEvent>(bad).is_err());
    let words: SessionEvent = serde_json::from_value(json!({"kind": "checked_in",
        "escort": {"name": "Sam Rivers", "phone": "+1 555 010 0199"}, "escort_confirmed_in_person": true,
        "state_of_mind": {"mood": "calm", "alcohol_or_substances_last_12h": false, "intoxication_signs": false},
        "pregnancy": "declined"}))
    .unwrap();
    assert!(matches!(
        words,
        SessionEvent::CheckedIn(CheckIn { state_of_mind: StateOfMind { mood: Mood::Words(_), .. }, .. })
    ));
}

#[test]
fn every_event_kind_round_trips_through_json() {
    let (_, log) = tv_spr_1_log();
    let ae = AdverseEvent::new(NewAdverseEvent {
        code: AeCode::Builtin(BuiltinAe::Nausea),
        onset_at: at(10, 30),
        severity: AeSeverity::Mild,
        seriousness: Default::default(),
        actions: [AeAction::NoneRequired].into(),
        action_details: None,
        outcome: AeOutcome::Resolving,
        resolved_at: None,
    })
    .unwrap();
    let mut events: Vec<SessionEvent> = log.into_iter().map(|r| r.event).collect();
    events.extend([
        SessionEvent::EscortConfirmed { how: EscortConfirmation::InPerson },
        SessionEvent::ScreeningLinked(Screening {
            instrument: ScreeningInstrument::Phq9,
            response_id: "qr-1".into(),
            total: Some(12),
            cssrs_risk: None,
        }),
        SessionEvent::PreDoseBpConfirmed { reason: "r".into() },
        SessionEvent::HoldPlaced { rule: HoldRule::IntoxicationOrRecentAlcohol, reason: "r".into() },
        SessionEvent::HoldReleased { reason: "r".into() },
        SessionEvent::DoseVerified,
        SessionEvent::AdministrationEnded { reason: Some("r".into()) },
        SessionEvent::ObservationFlagged { observation: ClinicianObservation::Seizure, note: None },
        SessionEvent::AdverseEventRecorded(ae),
        SessionEvent::AdverseEventUpdated { number: 1, outcome: AeOutcome::Resolved, resolved_at: Some(at(11, 0)) },
        SessionEvent::Aborted { reason: "r".into() },
    ]);
    let mut kinds = std::collections::BTreeSet::new();
    for e in events {
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], e.kind());
        assert_eq!(serde_json::from_value::<SessionEvent>(json).unwrap(), e);
        kinds.insert(e.kind());
    }
    assert_eq!(kinds.len(), 22, "{kinds:?}");
}

/// Any event staff might try, picked by `choice`.
fn any_event(choice: u8, t: UtcTs, run: &Run) -> (Actor, SessionEvent) {
    match choice % 18 {
        0 => (nurse(), SessionEvent::CheckedIn(check_in())),
        1 => (nurse(), bp(t, 120 + u16::from(choice % 70), 80)),
        2 => (therapist(), moaas(t, choice % 6)),
        3 => (nurse(), respiration(t, 90 + choice % 10, 8 + choice % 10)),
        4 => (therapist(), cadss(t, choice % 20)),
        5 => (prescriber(), order_dose(&run.session, &run.ctx(t), t, spravato(84.0), None).unwrap()),
        6 => (nurse(), SessionEvent::ClearedForDosing),
        7 => (nurse(), SessionEvent::AdministrationStarted(spravato_kit(84.0))),
        8 => (nurse(), SessionEvent::DeviceGiven),
        9 => (prescriber(), SessionEvent::HoldReleased { reason: "decided".into() }),
        10 => (prescriber(), SessionEvent::PreDoseBpConfirmed { reason: "decided".into() }),
        11 => {
            let waiting = run.session.unacknowledged_alerts().first().map(|a| a.id);
            let alert_id = waiting.unwrap_or(u32::from(choice % 6) + 1);
            (prescriber(), SessionEvent::AlertAcknowledged { alert_id, note: None })
        }
        12 => (therapist(), SessionEvent::ExperienceEnded),
        13 => (nurse(), assessment(!choice.is_multiple_of(3))),
        14 => (nurse(), DISCHARGE),
        15 => (nurse(), SessionEvent::HoldPlaced { rule: HoldRule::ClinicalJudgement, reason: "review".into() }),
        16 => (nurse(), SessionEvent::Aborted { reason: "stopped".into() }),
        _ => (nurse(), SessionEvent::AdministrationEnded { reason: Some("stopped".into()) }),
    }
}

/// What staff would most likely do next in the session's state, with a wrong or random step now
/// and then, so that runs reach monitoring and discharge as well as the refusals on the way.
fn candidate(choice: u8, t: UtcTs, run: &Run) -> (Actor, SessionEvent) {
    if choice.is_multiple_of(11) {
        return any_event(choice / 11, t, run);
    }
    let likely: &[u8] = match run.session.state() {
        SessionState::Scheduled => &[0],
        SessionState::CheckedIn => &[1, 2, 3, 4, 5, 6, 10, 11],
        SessionState::Held => &[9, 1, 11],
        SessionState::ClearedForDosing => &[7],
        SessionState::Dosing => &[8, 8, 2],
        SessionState::Monitoring => &[1, 2, 3, 4, 11, 12],
        SessionState::Recovery | SessionState::ReadyForDischarge => &[1, 2, 3, 4, 11, 13, 14],
        SessionState::Discharged | SessionState::Aborted => &[11, 1],
    };
    match likely[usize::from(choice) % likely.len()] {
        // Readings mostly normal, now and then a raised BP or some sedation.
        1 => (nurse(), bp(t, 120 + u16::from(choice % 30), 80)),
        2 => (therapist(), moaas(t, if choice.is_multiple_of(5) { 3 } else { 5 })),
        3 => (nurse(), respiration(t, 98, 14)),
        4 => (therapist(), cadss(t, choice % 4)),
        pick => any_event(pick, t, run),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever staff try, the accepted events replay to the same session, and folding a refused
    /// event never panics.
    #[test]
    fn accepted_events_replay_to_the_same_session(steps in prop::collection::vec((any::<u8>(), 0u8..4), 1..80)) {
        let mut run = Run::new(Route::SpravatoIntranasal);
        let mut t = at(9, 30);
        for (choice, wait) in steps {
            t = t.plus(time::Duration::minutes(i64::from(wait) * 5));
            let (by, event) = candidate(choice, t, &run);
            let recorded = Recorded { at: t, by, event: event.clone() };
            if run.attempt(t, by, event).is_err() {
                let _ = apply(run.session.clone(), &run.ctx(t), &recorded);
            }
            // Blockers and decisions agree: nothing blocks exactly when the next step is allowed.
            let ctx = run.ctx(t);
            let blocked = !run.session.blocked_by(&ctx).is_empty();
            let next = match run.session.state_now(&ctx) {
                SessionState::CheckedIn => Some(SessionEvent::ClearedForDosing),
                SessionState::Recovery | SessionState::ReadyForDischarge => Some(DISCHARGE),
                SessionState::Discharged | SessionState::Aborted => {
                    prop_assert!(blocked);
                    None
                }
                _ => None,
            };
            if let Some(event) = next {
                let allowed = decide(&run.session, &ctx, &Recorded { at: t, by: nurse(), event }).is_ok();
                prop_assert_eq!(allowed, !blocked, "{:?}", run.session.blocked_by(&ctx));
            }
        }
        // The summary kept event by event is the readings summarised afresh.
        let afresh = run.session.dose_times().map(|d| summarize(run.session.readings(), d.started_at));
        prop_assert_eq!(run.session.summary.map(|kept| kept.summary()), afresh);
        let replayed = replay(&run.ctx(t), &run.log);
        prop_assert_eq!(replayed, run.session.clone());
    }
}

#[test]
fn tv_spr_1_the_rems_form_takes_its_session_answers_from_the_log() {
    use crate::rems_form::{RemsAeAnswers, SessionAnswers};
    let (run, _) = tv_spr_1_log();
    let a = SessionAnswers::from_session(&run.session, &run.ctx(at(13, 0)));
    assert_eq!((a.dose_mg, a.lot_number.as_deref()), (Some(84), Some("24KX117")));
    assert_eq!((a.first_device_at, a.monitoring_completed_at), (Some(at(10, 0)), Some(at(12, 0))));
    assert_eq!(a.bp_before_administration, Some(blood_pressure(130, 80)));
    assert_eq!(a.bp_40_min, Some(blood_pressure(172, 92)), "the reading at 10:40, 40 min after the first device");
    assert_eq!(a.bp_before_completion, Some(blood_pressure(125, 80)));
    assert_eq!(a.vitals_acceptable_before_administration, Some(true));
    assert_eq!(a.vitals_acceptable_before_completion, Some(true), "DC-03 was met at the discharge");
    assert_eq!(
        a.adverse_events,
        RemsAeAnswers {
            sedation: Some(false),
            dissociation: Some(false),
            respiratory_depression: Some(false),
            serious: Some(false),
            serious_details: None
        },
        "no record after the discharge answers no"
    );
    // Before the discharge the session cannot answer for completion, nor "no" to adverse events.
    let mut early = Run::new(Route::SpravatoIntranasal);
    spravato_to_monitoring(&mut early, 130, 80);
    let a = SessionAnswers::from_session(&early.session, &early.ctx(at(10, 30)));
    assert_eq!((a.bp_40_min, a.bp_before_completion, a.monitoring_completed_at), (None, None, None));
    assert_eq!((a.vitals_acceptable_before_completion, a.adverse_events.sedation), (None, None));
}

mod ledger_link {
    //! What the controlled-substance ledger reads from a session: the amount actually given.

    use super::*;
    use crate::ledger::dispensing::{Given, WasteAtAdministration, administered_amount, settle_draw};
    use crate::ledger::{CsProduct, Draw, Measure, Micrograms, Ndc, PatientOnRecord, Person, ProductForm, Substance};

    fn amount(run: &Run) -> Option<Micrograms> {
        administered_amount(&run.session, &run.protocol).unwrap()
    }

    #[test]
    fn spravato_gives_the_devices_given_once_the_last_one_is_in() {
        let mut run = Run::new(Route::SpravatoIntranasal);
        arrive(&mut run, 130, 80);
        let order = run.order(at(9, 40), spravato(84.0), None);
        run.ok(at(9, 40), prescriber(), order);
        run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
        run.ok(at(9, 55), nurse(), SessionEvent::AdministrationStarted(spravato_kit(84.0)));
        assert_eq!(amount(&run), None, "nothing is settled while devices are being given");
        for m in [0, 5, 10] {
            run.ok(at(10, m), nurse(), SessionEvent::DeviceGiven);
        }
        assert_eq!(amount(&run), Some(Micrograms::from_mg(84)));
    }

    #[test]
    fn a_spravato_dose_ended_early_gives_only_its_devices_and_the_rest_of_the_kit_is_waste() {
        let mut run = Run::new(Route::SpravatoIntranasal);
        arrive(&mut run, 130, 80);
        let order = run.order(at(9, 40), spravato(84.0), None);
        run.ok(at(9, 40), prescriber(), order);
        run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
        run.ok(at(9, 55), nurse(), SessionEvent::AdministrationStarted(spravato_kit(84.0)));
        run.ok(at(10, 0), nurse(), SessionEvent::DeviceGiven);
        run.ok(at(10, 8), nurse(), SessionEvent::AdministrationEnded { reason: Some("patient declined".into()) });
        let given = amount(&run).unwrap();
        assert_eq!(given, Micrograms::from_mg(28));

        let kit = CsProduct {
            id: crate::ids::CsProductId::new(),
            name: "SPRAVATO 28 mg/0.2 mL nasal spray, kit of 3 devices (84 mg)".into(),
            substance: Substance::Esketamine,
            ndc: Ndc::parse("ndc", "50458-028-03").unwrap(),
            form: ProductForm::DeviceKit { devices_per_container: 3, ug_per_device: Micrograms::from_mg(28) },
        };
        let session = crate::ids::DosingSessionId::new();
        let draw = Draw { session, measure: Measure::Containers(1), amount: Micrograms::from_mg(84) };
        let settled = settle_draw(
            crate::ids::LedgerEntryId::new(),
            &draw,
            &kit,
            Given {
                session,
                patient: PatientOnRecord::new(crate::PatientId::new(), "Sam Synthetic", Some("1 Test Street")).unwrap(),
                administered_by: Person { user: nurse().user, role: Role::Nurse, name: "Nurse Cho".into() },
                amount: given,
                route_snomed: "46713006".into(),
            },
            Some(WasteAtAdministration { method: "unused devices into the drug-waste bin".into(), witness: None }),
        )
        .unwrap();
        assert_eq!(settled.administration.amount, Micrograms::from_mg(28));
        let waste = settled.waste.unwrap();
        assert_eq!((waste.measure, waste.amount), (Measure::Devices(2), Micrograms::from_mg(56)));
    }

    #[test]
    fn an_im_injection_is_settled_at_once_and_a_lozenge_when_finished() {
        let mut run = Run::new(Route::SublingualLozenge);
        arrive(&mut run, 124, 78);
        let order = run.order(at(9, 40), DoseRequest { dose_mg: Some(300.0), ..Default::default() }, None);
        run.ok(at(9, 40), prescriber(), order);
        run.ok(at(9, 45), nurse(), SessionEvent::ClearedForDosing);
        let troches = Administration {
            product: "Ketamine rapid-dissolve tablet 100 mg (compounded)".into(),
            ndc: None,
            lot: "RDT-0425".into(),
            expiry: jiff::civil::date(2025, 4, 30),
            dose_mg: 300.0,
            route_snomed: "37839007".into(),
        };
        run.ok(at(10, 0), nurse(), SessionEvent::AdministrationStarted(troches));
        assert_eq!(amount(&run), None);
        run.ok(at(10, 15), nurse(), SessionEvent::AdministrationEnded { reason: None });
        assert_eq!(amount(&run), Some(Micrograms::from_mg(300)));
    }
}

#[test]
fn a_reading_already_recorded_is_refused_before_anything_is_folded() {
    let mut run = Run::new(Route::SpravatoIntranasal);
    arrive(&mut run, 128, 82);
    run.ok(at(9, 36), nurse(), respiration(at(9, 36), 98, 14));
    // The same readings again: refused by the check a write asks of every event first ...
    for event in [bp(at(9, 35), 128, 82), respiration(at(9, 36), 98, 14)] {
        let refusal = already_recorded(&run.session, &event).unwrap_err();
        assert_eq!(refusal.code, "duplicate");
        // ... and by `decide`, which asks it too.
        assert_eq!(run.refused(at(9, 37), nurse(), event).code, "duplicate");
    }
    // Another value, or the same values taken at another moment, is a new reading.
    assert!(already_recorded(&run.session, &bp(at(9, 35), 130, 82)).is_ok());
    assert!(already_recorded(&run.session, &respiration(at(9, 37), 98, 14)).is_ok());
    // Only readings can be already recorded this way.
    assert!(already_recorded(&run.session, &SessionEvent::CheckedIn(check_in())).is_ok());
}
