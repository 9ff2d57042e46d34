//! The hard stops and holds of the pre-dose gate (KAP-SPEC 2.3 GATE-01..GATE-06, 5.3 MON-01,
//! MON-02, MON-09, MON-10) and what stops each next step, with who can lift it.
//!
//! Which stops can be lifted, and by whom:
//! - GATE-01..GATE-04 and the eligibility decision are never overridden in a session. The spec's
//!   action for each is "do not dose" or "MUST NOT administer" (GATE-03: the REMS); what lifts
//!   them lies outside the session (a new screener, the escort confirmed, REMS enrolment, a
//!   signed consent, a signed decision), and `decide` refuses every dosing step until then.
//! - GATE-05 and GATE-06 say "Hold; prescriber decision": they place a hold, and only a
//!   prescriber releases it, with a reason.
//! - MON-01 says "prescriber must confirm dosing; record reason": a prescriber's confirmation.
//! - An alert whose action stops dosing (MON-04 emergency care, MON-05 pause the infusion, MON-06
//!   and MON-07 support breathing, MON-09 stop further dosing, MON-10 emergency response) stops it
//!   for the rest of the session, whoever asks and whether or not it is acknowledged: the spec
//!   says "stop any further dosing". Raised before the dose, such an alert means no dose today:
//!   abort and rebook. (MON-06's "recheck" for a short dip does not stop anything.)

use jiff::civil::Date;
use serde::Serialize;

use super::event::MeasuredWeight;
use super::state::{RaisedAlert, Session, SessionState};
use super::{Context, Refusal};
use crate::decision::{Route, SpravatoIndication};
use crate::identity::Role;
use crate::instruments::cssrs::Risk;
use crate::monitoring::{AlertAction, MeasureKind, PreDoseBp, pre_dose_bp};
use crate::patient::SexAtBirth;
use crate::permissions::{Action, roles_allowed};

/// What the rest of the record says, filled by the web layer for each request.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct GateFacts {
    /// GATE-04: the latest consent is signed, not expired and not revoked
    /// ([`crate::consent::ConsentStatus::is_valid`]).
    pub consent_valid: bool,
    /// A signed eligibility decision allows this session's route (KAP-SPEC 2.1 stage 3).
    pub decision_allows_route: bool,
    /// GATE-03 (Spravato): the patient's REMS enrolment is confirmed.
    pub rems_enrolled: bool,
    /// GATE-03 (Spravato): this healthcare setting is REMS-certified.
    pub setting_rems_certified: bool,
    /// GATE-01: the latest C-SSRS screener risk since the last visit; `None`: none taken.
    pub cssrs_risk: Option<Risk>,
    /// From the signed decision: the Spravato dose rules depend on it (KAP-SPEC 4.2).
    pub spravato_indication: Option<SpravatoIndication>,
    /// Doses of the patient's previous Spravato sessions, mg (TV-SPR-2: empty is day 1).
    pub previous_spravato_doses_mg: Vec<u16>,
    pub age_years: Option<u8>,
    /// The latest weight on the record before this session (check-in may weigh again).
    pub recorded_weight: Option<MeasuredWeight>,
    /// For an ideal-body-weight protocol (KAP-SPEC 4.3, Devine).
    pub height_cm: Option<f64>,
    pub sex_at_birth: Option<SexAtBirth>,
    /// Today on the clinic's calendar (its time zone): a product's expiry is checked against it.
    pub clinic_date: Date,
}

impl GateFacts {
    /// Facts for a decision that does not read them ([`super::reads_gate_facts`] is false for each
    /// of its events), so the caller need not look them up. Each says "not established": were one
    /// read after all, the gate it feeds would stop, never let through.
    pub fn unread() -> Self {
        Self {
            consent_valid: false,
            decision_allows_route: false,
            rems_enrolled: false,
            setting_rems_certified: false,
            cssrs_risk: None,
            spravato_indication: None,
            previous_spravato_doses_mg: Vec::new(),
            age_years: None,
            recorded_weight: None,
            height_cm: None,
            sex_at_birth: None,
            // Every product has expired by then.
            clinic_date: Date::MAX,
        }
    }
}

/// What stops the next step, and the roles that can lift it (empty: nobody in this session —
/// time must pass, or the fix lies elsewhere in the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Blocker {
    /// The spec's rule id (`GATE-04`, `MON-01`, `DC-08`) or a workflow code (`dose_order`).
    pub code: &'static str,
    pub message: String,
    pub unblocked_by: Vec<Role>,
}

impl Blocker {
    pub(super) fn new(code: &'static str, message: impl Into<String>, unblocked_by: &[Role]) -> Self {
        Self { code, message: message.into(), unblocked_by: unblocked_by.to_vec() }
    }

    pub(super) fn refusal(&self) -> Refusal {
        Refusal::new(self.code, None, self.message.clone())
    }
}

const PRESCRIBER: &[Role] = &[Role::Prescriber];
const DOSING_CLINICIANS: &[Role] = &[Role::Prescriber, Role::Nurse];
const CLINICIANS: &[Role] = &[Role::Prescriber, Role::Nurse, Role::Therapist];

/// The highest C-SSRS risk the session knows of: the record's latest and any screener linked to
/// the session. The higher one counts, so a later "low" never hides a "high" (GATE-01).
pub(super) fn cssrs_risk(session: &Session, ctx: &Context) -> Option<Risk> {
    ctx.gates.cssrs_risk.max(session.linked_cssrs_risk())
}

/// The stops that refuse any dosing step, ordering included (KAP-SPEC 2.3).
pub(super) fn hard_stops(session: &Session, ctx: &Context) -> Vec<Blocker> {
    let g = &ctx.gates;
    let mut out = Vec::new();
    match cssrs_risk(session, ctx) {
        Some(Risk::High) => out.push(Blocker::new(
            "GATE-01",
            "C-SSRS risk is HIGH (GATE-01): do not dose as a routine outpatient session; follow the crisis and \
             safety workflow with the prescriber. Spravato is not a substitute for hospitalisation.",
            &[],
        )),
        Some(_) => {}
        None => out.push(Blocker::new(
            "GATE-01",
            "No C-SSRS screener since the last visit is recorded (GATE-01, KAP-SPEC 2.2 arrival check): take or \
             link it before dosing.",
            CLINICIANS,
        )),
    }
    let escort_confirmed = session.check_in().is_some_and(|c| c.details.escort_confirmed_in_person)
        || session.escort_confirmation().is_some();
    if !escort_confirmed {
        out.push(Blocker::new(
            "GATE-02",
            "No escort or ride home is confirmed (GATE-02): do not dose. The patient must not drive.",
            &[Role::Frontdesk, Role::Nurse, Role::Prescriber, Role::Therapist],
        ));
    }
    if ctx.protocol.route == Route::SpravatoIntranasal {
        if !g.rems_enrolled {
            out.push(Blocker::new(
                "GATE-03",
                "The patient's Spravato REMS enrolment is not confirmed (GATE-03): Spravato must not be given.",
                PRESCRIBER,
            ));
        }
        if !g.setting_rems_certified {
            out.push(Blocker::new(
                "GATE-03",
                "This setting is not REMS-certified (GATE-03): Spravato must not be given here.",
                &[Role::Admin],
            ));
        }
    }
    if !g.consent_valid {
        out.push(Blocker::new(
            "GATE-04",
            "Consent is missing, expired or revoked (GATE-04): do not dose.",
            &roles_allowed(Action::RecordConsent),
        ));
    }
    if !g.decision_allows_route {
        out.push(Blocker::new(
            "decision",
            format!(
                "No signed eligibility decision allows {} (KAP-SPEC 2.1 stage 3): do not dose.",
                ctx.protocol.route.label()
            ),
            &roles_allowed(Action::SignEligibilityDecision),
        ));
    }
    if session.check_in().is_some_and(|c| c.details.pregnancy == super::event::Pregnancy::Positive) {
        out.push(Blocker::new(
            "ELIG-011",
            "Pregnancy is reported at check-in (ELIG-011, exclude): do not dose; the eligibility decision must be \
             revisited.",
            &[],
        ));
    }
    out.extend(holds(session));
    out.extend(dosing_stopped(session));
    out
}

/// A held session's holds: only a prescriber releases them, with a reason (GATE-05, GATE-06).
pub(super) fn holds(session: &Session) -> Vec<Blocker> {
    if session.state() != SessionState::Held {
        return Vec::new();
    }
    session
        .active_holds()
        .map(|h| {
            Blocker::new(
                h.rule.code(),
                format!("Dosing is held: {} A prescriber decides and releases the hold with a reason.", h.reason),
                PRESCRIBER,
            )
        })
        .collect()
}

/// Alerts that stop further dosing for the rest of the session (MON-04, MON-06, MON-07, MON-09,
/// MON-10), one per rule. MON-05 pauses an infusion until the prescriber evaluates: once they
/// resume it, the alerts raised before stand decided.
pub(super) fn dosing_stopped(session: &Session) -> Vec<Blocker> {
    let mut out: Vec<Blocker> = Vec::new();
    let resumed = session.last_resumed_at();
    let decided =
        |a: &RaisedAlert| a.alert.action == AlertAction::PauseInfusion && resumed.is_some_and(|r| a.raised_at <= r);
    for a in session.alerts().iter().filter(|a| a.stops_dosing() && !decided(a)) {
        if !out.iter().any(|b| b.code == a.alert.rule) {
            out.push(Blocker::new(a.alert.rule, format!("{} No further dose in this session.", a.alert.message), &[]));
        }
    }
    out
}

/// MON-05 on a running IV infusion: pause it now; once paused, only the prescriber resumes it
/// (with a reason), or it is stopped.
pub(super) fn infusion_pause(session: &Session) -> Vec<Blocker> {
    if session.infusion_paused() {
        return vec![Blocker::new(
            "MON-05",
            "The infusion is paused (MON-05): the prescriber evaluates and resumes it with a reason, or it is stopped.",
            PRESCRIBER,
        )];
    }
    let resumed = session.last_resumed_at();
    let due = session.state() == SessionState::Dosing
        && session
            .alerts()
            .iter()
            .any(|a| a.alert.action == AlertAction::PauseInfusion && resumed.is_none_or(|r| a.raised_at > r));
    if due {
        return vec![Blocker::new(
            "MON-05",
            "Pause the infusion now (MON-05): the prescriber evaluates before it goes on.",
            DOSING_CLINICIANS,
        )];
    }
    Vec::new()
}

/// Alerts waiting for a clinician: each must be seen before the next dose or the discharge.
pub(super) fn waiting_alerts(session: &Session) -> Vec<Blocker> {
    session
        .unacknowledged_alerts()
        .into_iter()
        .map(|a| {
            Blocker::new(
                a.alert.rule,
                format!("Alert {} is not acknowledged: {}", a.id, a.alert.message),
                DOSING_CLINICIANS,
            )
        })
        .collect()
}

/// MON-01: the latest pre-dose BP is above the confirm limit and no prescriber has confirmed
/// dosing since it was taken. A released GATE-05 hold counts as the confirmation: the prescriber
/// decided on that reading with a reason (MON-02 supersedes MON-01).
pub(super) fn mon01(session: &Session, ctx: &Context) -> Option<Blocker> {
    let reading = session.latest_pre_dose_bp()?;
    let crate::monitoring::Measurement::BloodPressure { bp, .. } = reading.measurement else { return None };
    if pre_dose_bp(&ctx.protocol.monitoring.thresholds, bp) == PreDoseBp::Pass {
        return None;
    }
    let confirmed = session.bp_confirmations().iter().any(|c| c.stamp.at >= reading.taken_at)
        || session.holds().iter().any(|h| {
            h.rule == super::event::HoldRule::PreDoseBloodPressure
                && h.released.as_ref().is_some_and(|r| r.at >= reading.taken_at)
        });
    if confirmed {
        return None;
    }
    let limit = ctx.protocol.monitoring.thresholds.pre_dose_confirm.describe();
    Some(Blocker::new(
        "MON-01",
        format!(
            "Pre-dose BP {bp} is {limit} (MON-01): the prescriber must confirm dosing (benefit outweighs the risk) \
             and record the reason."
        ),
        PRESCRIBER,
    ))
}

/// The pre-dose baselines the route's plan asks for (KAP-SPEC 5.2, 2.2 arrival vitals).
fn missing_baselines(session: &Session, ctx: &Context) -> Option<Blocker> {
    let missing: Vec<&str> = ctx
        .protocol
        .monitoring
        .plan
        .measures
        .iter()
        .filter(|(_, m)| m.baseline)
        .map(|(kind, _)| *kind)
        .filter(|kind| {
            !session
                .readings()
                .iter()
                .any(|r| r.measurement.kind() == *kind && !r.measurement.is_empty() && r.taken_at <= ctx.now)
        })
        .map(MeasureKind::label)
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(Blocker::new(
        "pre_dose_checks",
        format!("Take the pre-dose baseline (KAP-SPEC 5.2): {}.", missing.join("; ")),
        DOSING_CLINICIANS,
    ))
}

/// IV and IM doses are drawn up from a vial by weight: a second clinician checks them (KAP-SPEC
/// 2.2 pre-dose gate, "dose computed and double-checked").
pub(super) fn needs_second_check(route: Route) -> bool {
    matches!(route, Route::IntravenousRacemic | Route::IntramuscularRacemic)
}

/// Everything the pre-dose gate asks before clearing and again before administration.
pub(super) fn pre_dose_gate(session: &Session, ctx: &Context) -> Vec<Blocker> {
    let mut out = hard_stops(session, ctx);
    out.extend(mon01(session, ctx));
    out.extend(waiting_alerts(session));
    out.extend(missing_baselines(session, ctx));
    match session.ordered() {
        None => out.push(Blocker::new("dose_order", "No dose is ordered: the prescriber orders it.", PRESCRIBER)),
        Some(_) if needs_second_check(ctx.protocol.route) && session.verified().is_none() => out.push(Blocker::new(
            "dose_verification",
            format!(
                "{} doses need a second clinician's check before administration (not the prescriber who ordered it).",
                ctx.protocol.route.label()
            ),
            DOSING_CLINICIANS,
        )),
        Some(_) => {}
    }
    out
}
