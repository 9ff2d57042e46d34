//! Whether an event may be recorded now: roles, states, content, and the gates of KAP-SPEC 2.3,
//! 5.3 and 6.1. The same rules say what stops the next step ([`Session::blocked_by`]), so a page
//! and the API refuse exactly what `decide` refuses.

use time::Duration;

use super::event::{self, Recorded, SessionEvent};
use super::gates::{self, Blocker, dosing_stopped, hard_stops, pre_dose_gate, waiting_alerts};
use super::state::{Session, SessionState, planned_devices, timed_by_device};
use super::{Context, Refusal};
use crate::decision::Route;
use crate::discharge::{CriterionStatus, DischargeReadiness};
use crate::dose::{DeviceLog, DoseRequest, SpravatoContext, Zone, calculate};
use crate::identity::Role;
use crate::monitoring::MeasureKind;
use crate::protocol::{DoseRule, WeightBasis};
use crate::{FieldError, UtcTs};

use Role::{Frontdesk, Nurse, Prescriber, Therapist};

/// Who may record each event (KAP-SPEC 2.2; the roles of [`crate::identity::Role`]). Admins and
/// patients record nothing in a session.
fn allowed_roles(event: &SessionEvent) -> &'static [Role] {
    match event {
        // The arrival check includes the intoxication screen and pregnancy: clinical staff.
        SessionEvent::CheckedIn(_) | SessionEvent::ScreeningLinked(_) => &[Nurse, Prescriber, Therapist],
        // Anyone at the desk can call the escort.
        SessionEvent::EscortConfirmed { .. } => &[Frontdesk, Nurse, Prescriber, Therapist],
        // Sedation and dissociation are scored by whoever sits with the patient; vitals by the
        // monitoring clinicians.
        SessionEvent::Reading(r) => match r.measurement.kind() {
            MeasureKind::Moaas | MeasureKind::Cadss => &[Nurse, Prescriber, Therapist],
            MeasureKind::BloodPressure | MeasureKind::Spo2Rr => &[Nurse, Prescriber],
        },
        // MON-01 "prescriber must confirm"; GATE-05/06 "prescriber decision"; the order is the
        // prescriber's.
        // MON-05 "prescriber evaluation" before a paused infusion goes on.
        SessionEvent::PreDoseBpConfirmed { .. }
        | SessionEvent::HoldReleased { .. }
        | SessionEvent::DoseOrdered(_)
        | SessionEvent::InfusionResumed { .. } => &[Prescriber],
        // Anyone looking after the patient may stop; only a prescriber goes on.
        SessionEvent::HoldPlaced { .. }
        | SessionEvent::ObservationFlagged { .. }
        | SessionEvent::AdverseEventRecorded(_)
        | SessionEvent::ExperienceEnded
        | SessionEvent::ProgressNote { .. } => &[Nurse, Prescriber, Therapist],
        SessionEvent::DoseVerified
        | SessionEvent::ClearedForDosing
        | SessionEvent::AdministrationStarted(_)
        | SessionEvent::DeviceGiven
        | SessionEvent::InfusionPaused { .. }
        | SessionEvent::AdministrationEnded { .. }
        | SessionEvent::AlertAcknowledged { .. }
        | SessionEvent::AdverseEventUpdated { .. }
        | SessionEvent::DischargeAssessment(_)
        | SessionEvent::Discharged { .. }
        | SessionEvent::Aborted { .. } => &[Prescriber, Nurse],
    }
}

fn role_names(roles: &[Role]) -> String {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    names.join(", ")
}

fn invalid(e: FieldError) -> Refusal {
    Refusal::new("invalid", Some(e.field), e.message)
}

fn state_refusal(message: impl Into<String>) -> Refusal {
    Refusal::new("state", None, message)
}

fn first(blockers: Vec<Blocker>) -> Result<(), Refusal> {
    blockers.first().map_or(Ok(()), |b| Err(b.refusal()))
}

/// Whether [`decide`] reads the facts from the rest of the record (`ctx.gates`) for `event`: the
/// dose order and the pre-dose gate (clearing for dosing, starting the administration). Every other
/// event is decided on the session, the protocol and the clock alone, so a caller may pass
/// [`GateFacts::unread`](super::GateFacts::unread) instead of looking the facts up (a reading on the
/// floor then costs no lookups in the rest of the record). [`order_dose`] always reads them.
pub fn reads_gate_facts(event: &SessionEvent) -> bool {
    matches!(
        event,
        SessionEvent::DoseOrdered(_) | SessionEvent::ClearedForDosing | SessionEvent::AdministrationStarted(_)
    )
}

/// Refuses an event the record already holds: a reading entered twice. No other event can lift
/// this refusal (the log only grows), so a write that brings several events asks it of each of
/// them against the session before folding any: a request refused for it then leaves the session
/// as it was, and the server keeps its folded copy instead of replaying the log. [`decide`] asks
/// it too.
pub fn already_recorded(session: &Session, event: &SessionEvent) -> Result<(), Refusal> {
    match event {
        SessionEvent::Reading(r) if session.readings().iter().any(|o| o == r) => {
            Err(Refusal::new("duplicate", None, "this reading is already recorded"))
        }
        _ => Ok(()),
    }
}

/// Decides whether `recorded` may be appended to the session's log now. Pure: the caller appends
/// the event and folds it with [`super::apply`] only when this returns `Ok`.
pub fn decide(session: &Session, ctx: &Context, recorded: &Recorded) -> Result<(), Refusal> {
    let (at, by, event) = (recorded.at, recorded.by, &recorded.event);
    if at > ctx.now {
        return Err(Refusal::new("time", Some("at"), "an event cannot be recorded ahead of the clock"));
    }
    if let Some(last) = session.last_event_at()
        && at < last
    {
        return Err(Refusal::new(
            "time",
            Some("at"),
            format!("the session's log is in time order: this event is timed before the last one ({last})"),
        ));
    }
    let roles = allowed_roles(event);
    if !roles.contains(&by.role) {
        return Err(Refusal::new(
            "role",
            None,
            format!("A {} may not {}: {} only.", by.role.label().to_lowercase(), event.what(), role_names(roles)),
        ));
    }
    event::check_texts(event).map_err(invalid)?;
    let state = session.state();
    // Documentation stays open after the end: notes, adverse events and their follow-up, and late
    // acknowledgements. Nothing else changes a discharged or aborted session.
    let documentation = matches!(
        event,
        SessionEvent::ProgressNote { .. }
            | SessionEvent::AdverseEventRecorded(_)
            | SessionEvent::AdverseEventUpdated { .. }
            | SessionEvent::AlertAcknowledged { .. }
    );
    if state.is_final() && !documentation {
        return Err(state_refusal(format!("The session is {}: nothing more can happen in it.", state.as_str())));
    }
    match event {
        SessionEvent::CheckedIn(check_in) => {
            if state != SessionState::Scheduled {
                return Err(state_refusal("The patient is already checked in."));
            }
            check_in.check(at).map_err(invalid)
        }
        SessionEvent::EscortConfirmed { .. } => {
            require_pre_dose(session, "confirm the escort")?;
            Ok(())
        }
        SessionEvent::ScreeningLinked(s) => {
            if session.administration().is_some() {
                return Err(state_refusal(
                    "Pre-session screeners are linked before dosing; the discharge C-SSRS goes in the discharge \
                     assessment.",
                ));
            }
            s.check().map_err(invalid)
        }
        SessionEvent::Reading(r) => {
            if state == SessionState::Scheduled {
                return Err(state_refusal("Check the patient in before recording readings."));
            }
            if r.taken_at > at {
                return Err(Refusal::new(
                    "invalid",
                    Some("taken_at"),
                    "a reading cannot be taken after it is recorded",
                ));
            }
            already_recorded(session, event)?;
            // A reading may be timed before the check-in was entered (vitals are often taken while
            // the arrival form is filled in), but not before a dose that has already started.
            // A pre-dose reading entered once the dose has started would silently become the
            // baseline MON-03 and DC-03 compare against, after the gate judged another one.
            if let Some(dose) = session.dose_times()
                && r.taken_at < dose.started_at
            {
                return Err(Refusal::new(
                    "invalid",
                    Some("taken_at"),
                    "the dose has started: a reading taken before it can no longer be entered (write a progress \
                     note instead)",
                ));
            }
            Ok(())
        }
        SessionEvent::PreDoseBpConfirmed { .. } => {
            require_pre_dose(session, "confirm the pre-dose BP")?;
            if gates::mon01(session, ctx).is_none() {
                return Err(Refusal::new(
                    "MON-01",
                    None,
                    "No pre-dose BP waits for a prescriber's confirmation (MON-01 applies above the confirm limit).",
                ));
            }
            Ok(())
        }
        SessionEvent::HoldPlaced { .. } => {
            require_pre_dose(session, "place a hold")?;
            Ok(())
        }
        SessionEvent::HoldReleased { .. } => {
            if state != SessionState::Held {
                return Err(state_refusal("No hold to release: the session is not held."));
            }
            Ok(())
        }
        SessionEvent::DoseOrdered(order) => {
            dosing_step(session, &[SessionState::CheckedIn, SessionState::ClearedForDosing], "order a dose")?;
            first(hard_stops(session, ctx))?;
            check_order(session, ctx, at, &order.request, &order.calculation, order.override_reason.as_deref())
        }
        SessionEvent::DoseVerified => {
            require_pre_dose(session, "verify the dose")?;
            let Some(ordered_by) = session.ordered_by() else {
                return Err(Refusal::new("dose_order", None, "No dose is ordered yet."));
            };
            if ordered_by == by.user {
                return Err(Refusal::new(
                    "dose_verification",
                    None,
                    "The dose is verified by a second clinician, not the prescriber who ordered it.",
                ));
            }
            if session.verified().is_some() {
                return Err(state_refusal("The dose is already verified."));
            }
            Ok(())
        }
        SessionEvent::ClearedForDosing => {
            dosing_step(session, &[SessionState::CheckedIn], "clear for dosing")?;
            first(pre_dose_gate(session, ctx))
        }
        SessionEvent::AdministrationStarted(a) => {
            dosing_step(session, &[SessionState::ClearedForDosing], "start the administration")?;
            first(pre_dose_gate(session, ctx))?;
            a.check(ctx.gates.clinic_date).map_err(invalid)?;
            let ordered = session.ordered().map_or(0.0, |o| o.calculation.dose_mg);
            if (a.dose_mg - ordered).abs() > 1e-9 {
                return Err(Refusal::new(
                    "dose_mismatch",
                    Some("dose_mg"),
                    format!("{} mg is not the ordered dose of {ordered} mg", a.dose_mg),
                ));
            }
            let code = &ctx.protocol.route_code;
            if a.route_snomed.trim() != code.code {
                return Err(Refusal::new(
                    "invalid",
                    Some("route_snomed"),
                    format!("this protocol's route is SNOMED CT {} ({})", code.code, code.display),
                ));
            }
            Ok(())
        }
        SessionEvent::DeviceGiven => {
            if state != SessionState::Dosing || !timed_by_device(ctx.protocol) {
                return Err(state_refusal("Devices are recorded while a Spravato or nasal dose is being given."));
            }
            first(dosing_stopped(session))?;
            first(waiting_alerts(session))?;
            device_log(session, ctx)?.record(at).map_err(|e| Refusal::new("device_log", Some(e.field), e.message))
        }
        SessionEvent::InfusionPaused { .. } => {
            if state != SessionState::Dosing || ctx.protocol.route != Route::IntravenousRacemic {
                return Err(state_refusal("Only a running IV infusion can be paused."));
            }
            if session.infusion_paused() {
                return Err(state_refusal("The infusion is already paused."));
            }
            Ok(())
        }
        SessionEvent::InfusionResumed { .. } => {
            if !session.infusion_paused() {
                return Err(state_refusal("The infusion is not paused."));
            }
            // Other stopping alerts (SpO2, RR, sedation, an emergency) end dosing: stop the infusion.
            first(dosing_stopped(session).into_iter().filter(|b| b.code != "MON-05").collect())?;
            first(waiting_alerts(session).into_iter().filter(|b| b.code != "MON-05").collect())
        }
        SessionEvent::AdministrationEnded { reason } => {
            if state != SessionState::Dosing {
                return Err(state_refusal("No administration is running."));
            }
            if timed_by_device(ctx.protocol) {
                let log = device_log(session, ctx)?;
                if log.times().is_empty() {
                    return Err(Refusal::new(
                        "device_log",
                        Some("device_times"),
                        "No device is recorded: nothing was given, so abort the session instead.",
                    ));
                }
                let no_reason = reason.as_deref().is_none_or(|r| r.trim().is_empty());
                if !log.is_complete() && no_reason {
                    return Err(Refusal::new(
                        "invalid",
                        Some("reason"),
                        format!("{} of the ordered devices are given: say why the dose ends early", log.times().len()),
                    ));
                }
            }
            Ok(())
        }
        SessionEvent::AlertAcknowledged { alert_id, .. } => match session.alerts().iter().find(|a| a.id == *alert_id) {
            None => Err(Refusal::new("invalid", Some("alert_id"), format!("no alert {alert_id} in this session"))),
            Some(a) if a.acknowledged.is_some() => {
                Err(state_refusal(format!("Alert {alert_id} is already acknowledged.")))
            }
            Some(_) => Ok(()),
        },
        SessionEvent::ObservationFlagged { .. } => {
            if state == SessionState::Scheduled {
                return Err(state_refusal("Check the patient in first."));
            }
            Ok(())
        }
        SessionEvent::AdverseEventRecorded(ae) => {
            if state == SessionState::Scheduled {
                return Err(state_refusal("Check the patient in first."));
            }
            if ae.onset_at() > at {
                return Err(Refusal::new("invalid", Some("onset_at"), "the onset cannot be after it is recorded"));
            }
            if ae.resolved_at().is_some_and(|r| r > at) {
                return Err(Refusal::new("invalid", Some("resolved_at"), "cannot resolve later than now"));
            }
            Ok(())
        }
        SessionEvent::AdverseEventUpdated { number, outcome, resolved_at } => {
            let ae = number
                .checked_sub(1)
                .and_then(|i| session.adverse_events().get(i))
                .ok_or_else(|| Refusal::new("invalid", Some("number"), format!("no adverse event {number}")))?;
            if resolved_at.is_some_and(|r| r > at) {
                return Err(Refusal::new("invalid", Some("resolved_at"), "cannot resolve later than now"));
            }
            ae.with_outcome(*outcome, *resolved_at).map(drop).map_err(invalid)
        }
        SessionEvent::ExperienceEnded => {
            if state != SessionState::Monitoring {
                return Err(state_refusal("The experience can be marked over once administration has ended."));
            }
            Ok(())
        }
        SessionEvent::DischargeAssessment(_) => {
            if !matches!(state, SessionState::Recovery | SessionState::ReadyForDischarge) {
                return Err(state_refusal("Mark the experience over (recovery) before the discharge assessment."));
            }
            Ok(())
        }
        SessionEvent::Discharged { instructions_given } => {
            if !matches!(state, SessionState::Recovery | SessionState::ReadyForDischarge) {
                return Err(state_refusal("Only a patient in recovery can be discharged."));
            }
            if !instructions_given {
                return Err(Refusal::new(
                    "instructions",
                    Some("instructions_given"),
                    "Give the post-session instructions before the patient leaves (KAP-SPEC 2.2, 6.2).",
                ));
            }
            first(waiting_alerts(session))?;
            discharge_refusal(session.discharge_at(ctx.protocol, at))
        }
        SessionEvent::Aborted { .. } => {
            // After administration the patient still needs observation or transfer: ending the
            // session then is the prescriber's decision.
            if session.administration().is_some() && by.role != Prescriber {
                return Err(Refusal::new(
                    "role",
                    None,
                    "Once administration has started, only a prescriber may abort the session.",
                ));
            }
            Ok(())
        }
        SessionEvent::ProgressNote { .. } => Ok(()),
    }
}

/// Confirming the escort, verifying, holding and confirming BP happen before administration.
fn require_pre_dose(session: &Session, what: &str) -> Result<(), Refusal> {
    let ok = matches!(session.state(), SessionState::CheckedIn | SessionState::ClearedForDosing | SessionState::Held);
    if ok && session.administration().is_none() {
        Ok(())
    } else {
        Err(state_refusal(format!("You can {what} after check-in and before administration.")))
    }
}

/// A dosing step is refused in a held session with the hold's own code (GATE-05, GATE-06).
fn dosing_step(session: &Session, allowed: &[SessionState], what: &str) -> Result<(), Refusal> {
    let state = session.state();
    if state == SessionState::Held {
        return first(gates::holds(session));
    }
    if allowed.contains(&state) {
        Ok(())
    } else {
        Err(state_refusal(format!("You cannot {what} when the session is {}.", state.as_str())))
    }
}

fn device_log(session: &Session, ctx: &Context) -> Result<DeviceLog, Refusal> {
    let planned = session
        .ordered()
        .and_then(|o| planned_devices(&o.calculation))
        .ok_or_else(|| state_refusal("The order has no device count."))?;
    DeviceLog::with_times(ctx.protocol, planned, session.devices())
        .map_err(|e| Refusal::new("device_log", Some(e.field), e.message))
}

/// The most recent weight: check-in's or the record's.
fn best_weight(session: &Session, ctx: &Context) -> Option<event::MeasuredWeight> {
    let at_check_in = session.check_in().and_then(|c| c.details.weight);
    [at_check_in, ctx.gates.recorded_weight].into_iter().flatten().max_by_key(|w| w.measured_at)
}

/// Whole days from `from` to `to`.
fn days_between(from: UtcTs, to: UtcTs) -> u32 {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let days = to.unix_micros().saturating_sub(from.unix_micros()).div_euclid(MICROS_PER_DAY);
    u32::try_from(days.max(0)).unwrap_or(u32::MAX)
}

/// The request as the record says it must be: the measured weight and its age, the height and
/// sex for an ideal-weight protocol, and the Spravato indication, age and previous doses. A
/// client's values for these are replaced, never trusted (TV-SPR-2 depends on the history).
fn authoritative_request(session: &Session, ctx: &Context, at: UtcTs, request: &DoseRequest) -> DoseRequest {
    let mut r = request.clone();
    if r.protocol.is_empty() {
        r.protocol = ctx.protocol.id.clone();
    }
    match &ctx.protocol.dose {
        DoseRule::MgPerKg(rule) => match rule.weight_basis {
            WeightBasis::Actual => {
                let w = best_weight(session, ctx);
                r.weight_kg = w.map(|w| w.kg);
                r.weight_measured_days_ago = w.map(|w| days_between(w.measured_at, at));
            }
            WeightBasis::Ideal => {
                if let Some(h) = ctx.gates.height_cm {
                    r.height_cm = Some(h);
                }
                if let Some(s) = ctx.gates.sex_at_birth {
                    r.sex_at_birth = Some(s.as_str().to_owned());
                }
            }
        },
        DoseRule::Devices(_) => {
            r.spravato = Some(SpravatoContext {
                indication: ctx.gates.spravato_indication,
                previous_doses_mg: ctx.gates.previous_spravato_doses_mg.clone(),
                age_years: ctx.gates.age_years,
            });
        }
        DoseRule::FixedMgRange(_) | DoseRule::Applications(_) => {}
    }
    r
}

/// Builds the [`SessionEvent::DoseOrdered`] for a prescriber's request: the record's weight and
/// history filled in, the dose computed with the session's protocol. [`decide`] still judges it.
pub fn order_dose(
    session: &Session,
    ctx: &Context,
    at: UtcTs,
    request: DoseRequest,
    override_reason: Option<String>,
) -> Result<SessionEvent, Refusal> {
    let request = authoritative_request(session, ctx, at, &request);
    let calculation =
        calculate(ctx.protocol, &request).map_err(|e| Refusal::new("dose_request", Some(e.field), e.message))?;
    let override_reason = override_reason.filter(|r| !r.trim().is_empty());
    Ok(SessionEvent::DoseOrdered(Box::new(event::DoseOrder { request, calculation, override_reason })))
}

/// The dose rules of an order (KAP-SPEC 4.2, 4.3; TV-IV-4, TV-IV-5, TV-SPR-2).
fn check_order(
    session: &Session,
    ctx: &Context,
    at: UtcTs,
    request: &DoseRequest,
    calculation: &crate::dose::DoseCalculation,
    override_reason: Option<&str>,
) -> Result<(), Refusal> {
    // Weight-based dosing needs a weight measured within the protocol's limit (KAP-SPEC 4.3).
    if let DoseRule::MgPerKg(rule) = &ctx.protocol.dose
        && rule.weight_basis == WeightBasis::Actual
    {
        let max = rule.weight_max_age_days;
        match best_weight(session, ctx) {
            None => {
                return Err(Refusal::new(
                    "weight",
                    Some("weight_kg"),
                    format!("A weight-based dose needs the patient's weight, measured within {max} days: weigh them."),
                ));
            }
            Some(w) if days_between(w.measured_at, at) > max => {
                return Err(Refusal::new(
                    "weight",
                    Some("weight_kg"),
                    format!(
                        "The weight was measured {} days ago; weigh the patient again (within {max} days, KAP-SPEC 4.3).",
                        days_between(w.measured_at, at)
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let expected = authoritative_request(session, ctx, at, request);
    if *request != expected {
        return Err(Refusal::new(
            "dose_request",
            Some("request"),
            "The order must use the weight and history on the record; build it with order_dose.",
        ));
    }
    let computed =
        calculate(ctx.protocol, &expected).map_err(|e| Refusal::new("dose_request", Some(e.field), e.message))?;
    if computed != *calculation {
        return Err(Refusal::new(
            "dose_request",
            Some("calculation"),
            "The calculation is computed by Kapstone from the protocol, not taken from the client.",
        ));
    }
    let reasons: Vec<&str> = computed.reasons.iter().map(|r| r.message.as_str()).collect();
    let has_reason = override_reason.is_some_and(|r| !r.trim().is_empty());
    match computed.zone {
        Zone::Block => Err(Refusal::new(
            "dose_block",
            None,
            format!("This dose cannot be given (no override): {}.", reasons.join("; ")),
        )),
        Zone::Override if !has_reason => Err(Refusal::new(
            "dose_override",
            Some("override_reason"),
            format!("A prescriber override needs a reason: {}.", reasons.join("; ")),
        )),
        Zone::Normal if has_reason => Err(Refusal::new(
            "dose_override",
            Some("override_reason"),
            "This dose is within the protocol: no override (and no override reason) is needed.",
        )),
        _ => Ok(()),
    }
}

/// A discharge is refused while any criterion is not met, naming each unmet DC id (KAP-SPEC 6.1).
fn discharge_refusal(readiness: Option<DischargeReadiness>) -> Result<(), Refusal> {
    let Some(readiness) = readiness else {
        return Err(state_refusal("No dose is recorded."));
    };
    let unmet: Vec<_> = readiness.criteria.iter().filter(|c| c.status != CriterionStatus::Met).collect();
    match unmet.first() {
        None => Ok(()),
        Some(c) => {
            let list: Vec<String> = unmet.iter().map(|c| format!("{} ({})", c.id, c.reason)).collect();
            Err(Refusal::new(c.id, None, format!("Not ready to leave: {}.", list.join("; "))))
        }
    }
}

impl Session {
    /// What stops the next step at `ctx.now`, with who can lift it. Empty exactly when the next
    /// step may be taken; a final session returns one `state` blocker.
    ///
    /// The next step: check-in, then clearing and administering the dose (the pre-dose gate),
    /// the next device, the end of the experience, and the discharge.
    pub fn blocked_by(&self, ctx: &Context) -> Vec<Blocker> {
        match self.state_now(ctx) {
            SessionState::Scheduled | SessionState::Monitoring | SessionState::ReadyForDischarge => Vec::new(),
            SessionState::CheckedIn | SessionState::ClearedForDosing => pre_dose_gate(self, ctx),
            SessionState::Held => gates::holds(self),
            SessionState::Dosing => {
                if !timed_by_device(ctx.protocol) {
                    return gates::infusion_pause(self);
                }
                let mut out = dosing_stopped(self);
                out.extend(waiting_alerts(self));
                if let Ok(log) = device_log(self, ctx)
                    && let Some(last) = log.last()
                    && !log.is_complete()
                {
                    let gap = min_gap_minutes(ctx);
                    let next = last.plus(Duration::minutes(gap.into()));
                    if ctx.now < next {
                        out.push(Blocker::new(
                            "device_wait",
                            format!(
                                "Device {} from {next}: wait {gap} min after each device (KAP-SPEC 4.2).",
                                log.times().len() + 1
                            ),
                            &[],
                        ));
                    }
                }
                out
            }
            SessionState::Recovery => {
                let mut out = waiting_alerts(self);
                if let Some(readiness) = self.discharge(ctx) {
                    out.extend(readiness.criteria.into_iter().filter(|c| c.status != CriterionStatus::Met).map(|c| {
                        Blocker {
                            code: c.id,
                            message: format!("{}: {}", c.title, c.reason),
                            unblocked_by: c.resolved_by,
                        }
                    }));
                }
                out
            }
            s @ (SessionState::Discharged | SessionState::Aborted) => {
                vec![Blocker::new("state", format!("The session is {}.", s.as_str()), &[])]
            }
        }
    }
}

/// The protocol's wait after each device or application (Spravato label: 5 min, KAP-SPEC 4.2).
fn min_gap_minutes(ctx: &Context) -> u32 {
    match &ctx.protocol.dose {
        DoseRule::Devices(r) => r.min_minutes_between_devices,
        DoseRule::Applications(r) => r.min_minutes_between_applications,
        DoseRule::MgPerKg(_) | DoseRule::FixedMgRange(_) => 0,
    }
}
