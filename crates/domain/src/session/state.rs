//! The session folded from its events, and what it shows staff: the state, the checks due, the
//! alerts raised, the discharge criteria.

use serde::{Deserialize, Serialize};
use time::Duration;

use super::Context;
use super::event::{
    Administration, CheckIn, DischargeAssessment, EscortConfirmation, HoldRule, Recorded, Screening, SessionEvent,
};
use crate::adverse_event::{AdverseEvent, unresolved_serious};
use crate::decision::Route;
use crate::discharge::{DischargeFacts, DischargeReadiness, ReadinessJudgement, evaluate};
use crate::dose::{DoseCalculation, DoseRequest};
use crate::instruments::cssrs::Risk;
use crate::monitoring::{
    Alert, AlertAction, CheckState, ClinicianObservation, DoseTimes, Measurement, PreDoseBp, Reading, ReadingSummary,
    Reason, SummaryFold, check_status, observation_alert, planned_checks, pre_dose_bp, reading_alerts_given, summarize,
};
use crate::protocol::{DoseRule, Protocol};
use crate::{UserId, UtcTs};

use super::event::Actor;

/// Where a session stands (KAP-SPEC 2.2 sub-states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Booked; the patient has not arrived.
    Scheduled,
    /// Arrived: escort, state of mind and vitals are being taken (2.2 arrival check-in).
    CheckedIn,
    /// The pre-dose gate passed (2.2, 2.3).
    ClearedForDosing,
    /// The dose is being given: the infusion runs, or devices are being taken.
    Dosing,
    /// Administration has ended; the patient is observed (2.2 monitoring / experience).
    Monitoring,
    /// The clinician has marked the acute experience over (2.2 recovery / grounding).
    Recovery,
    /// Every discharge criterion (DC-01..DC-09) is met and no alert is waiting: derived, never
    /// recorded.
    ReadyForDischarge,
    Discharged,
    /// Dosing is held (GATE-05, GATE-06, a clinician's hold); a prescriber's release returns to
    /// [`Session::held_from`].
    Held,
    /// Ended without (further) dosing; final.
    Aborted,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Scheduled => "scheduled",
            SessionState::CheckedIn => "checked_in",
            SessionState::ClearedForDosing => "cleared_for_dosing",
            SessionState::Dosing => "dosing",
            SessionState::Monitoring => "monitoring",
            SessionState::Recovery => "recovery",
            SessionState::ReadyForDischarge => "ready_for_discharge",
            SessionState::Discharged => "discharged",
            SessionState::Held => "held",
            SessionState::Aborted => "aborted",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SessionState::Scheduled => "Scheduled",
            SessionState::CheckedIn => "Checked in",
            SessionState::ClearedForDosing => "Cleared for dosing",
            SessionState::Dosing => "Dosing",
            SessionState::Monitoring => "Monitoring",
            SessionState::Recovery => "Recovery",
            SessionState::ReadyForDischarge => "Ready for discharge",
            SessionState::Discharged => "Discharged",
            SessionState::Held => "Held",
            SessionState::Aborted => "Aborted",
        }
    }

    /// No further step: only documentation (notes, adverse events, late acknowledgements).
    pub fn is_final(self) -> bool {
        matches!(self, SessionState::Discharged | SessionState::Aborted)
    }
}

/// Who did something, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Stamp {
    pub by: Actor,
    pub at: UtcTs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Release {
    pub reason: String,
    pub by: Actor,
    pub at: UtcTs,
}

/// MON-05: a pause of the IV infusion and, once the prescriber has evaluated, its resumption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct InfusionPause {
    pub paused: Stamp,
    pub reason: Option<String>,
    pub resumed: Option<Release>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Hold {
    pub rule: HoldRule,
    pub reason: String,
    /// Placed by the domain for GATE-05 and GATE-06 findings (stamped with the event that found
    /// them), or by a clinician.
    pub placed: Stamp,
    pub released: Option<Release>,
}

impl Hold {
    pub fn is_active(&self) -> bool {
        self.released.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CheckInRecord {
    pub details: CheckIn,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct EscortConfirmationRecord {
    pub how: EscortConfirmation,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LinkedScreening {
    pub screening: Screening,
    pub stamp: Stamp,
}

/// MON-01: the prescriber's confirmation, covering the pre-dose BP readings taken up to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BpConfirmation {
    pub reason: String,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct OrderedDose {
    pub request: DoseRequest,
    pub calculation: DoseCalculation,
    pub override_reason: Option<String>,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AdministrationRecord {
    pub details: Administration,
    pub by: Actor,
    pub started_at: UtcTs,
    pub ended_at: Option<UtcTs>,
    pub end_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Acknowledgement {
    pub by: Actor,
    pub at: UtcTs,
    pub note: Option<String>,
}

/// An alert raised in this session, numbered from 1 in the order raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RaisedAlert {
    pub id: u32,
    pub alert: Alert,
    pub raised_at: UtcTs,
    pub acknowledged: Option<Acknowledgement>,
}

impl RaisedAlert {
    /// Needs a clinician's acknowledgement and has none yet.
    pub fn is_waiting(&self) -> bool {
        self.alert.needs_ack && self.acknowledged.is_none()
    }

    /// Stops further dosing for the rest of the session (MON-04, MON-05, MON-06, MON-07, MON-09,
    /// MON-10). MON-02's hold is not here: it is a hold the prescriber may release (GATE-05).
    pub fn stops_dosing(&self) -> bool {
        self.alert.stops_dosing() && self.alert.action != AlertAction::HoldDose
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FlaggedObservation {
    pub observation: ClinicianObservation,
    pub note: Option<String>,
    pub stamp: Stamp,
    pub alert_id: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AssessmentRecord {
    pub details: DischargeAssessment,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct NoteRecord {
    pub text: String,
    pub stamp: Stamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Abort {
    pub reason: String,
    pub stamp: Stamp,
    /// Where the session was when it was aborted.
    pub from: SessionState,
}

/// A dosing session: the fold of its events ([`super::apply`], [`super::replay`]). Only the fold
/// builds one, so every value in it went through [`super::decide`] when it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Session {
    pub(super) state: SessionState,
    pub(super) held_from: Option<SessionState>,
    pub(super) holds: Vec<Hold>,
    pub(super) check_in: Option<CheckInRecord>,
    pub(super) escort_confirmation: Option<EscortConfirmationRecord>,
    pub(super) screenings: Vec<LinkedScreening>,
    pub(super) readings: Vec<Reading>,
    pub(super) bp_confirmations: Vec<BpConfirmation>,
    pub(super) ordered: Option<OrderedDose>,
    pub(super) verified: Option<Stamp>,
    pub(super) cleared: Option<Stamp>,
    pub(super) administration: Option<AdministrationRecord>,
    pub(super) devices: Vec<UtcTs>,
    pub(super) alerts: Vec<RaisedAlert>,
    pub(super) observations: Vec<FlaggedObservation>,
    pub(super) adverse_events: Vec<AdverseEvent>,
    pub(super) experience_ended: Option<Stamp>,
    pub(super) discharge_assessment: Option<AssessmentRecord>,
    pub(super) discharged: Option<Stamp>,
    pub(super) aborted: Option<Abort>,
    pub(super) notes: Vec<NoteRecord>,
    pub(super) pauses: Vec<InfusionPause>,
    pub(super) last_event_at: Option<UtcTs>,
    pub(super) events: usize,
    /// The readings summarised at the start of dosing, kept as readings are folded (derived from
    /// `readings` and the dose times; `None` before dosing).
    #[serde(skip)]
    #[schemars(skip)]
    pub(super) summary: Option<SummaryFold>,
}

impl Default for Session {
    fn default() -> Self {
        Self::scheduled()
    }
}

/// Whether a route's dose is given as timed devices (Spravato) or applications (compounded nasal
/// spray), each recorded with [`SessionEvent::DeviceGiven`].
pub(super) fn timed_by_device(protocol: &Protocol) -> bool {
    matches!(protocol.dose, DoseRule::Devices(_) | DoseRule::Applications(_))
}

/// An intramuscular injection is given in one moment: it starts and ends at once (the monitoring
/// module's `DoseTimes` says the same).
fn given_at_once(protocol: &Protocol) -> bool {
    protocol.route == Route::IntramuscularRacemic
}

impl Session {
    /// A booked session with nothing recorded yet.
    pub fn scheduled() -> Self {
        Self {
            state: SessionState::Scheduled,
            held_from: None,
            holds: Vec::new(),
            check_in: None,
            escort_confirmation: None,
            screenings: Vec::new(),
            readings: Vec::new(),
            bp_confirmations: Vec::new(),
            ordered: None,
            verified: None,
            cleared: None,
            administration: None,
            devices: Vec::new(),
            alerts: Vec::new(),
            observations: Vec::new(),
            adverse_events: Vec::new(),
            experience_ended: None,
            discharge_assessment: None,
            discharged: None,
            aborted: None,
            notes: Vec::new(),
            pauses: Vec::new(),
            last_event_at: None,
            events: 0,
            summary: None,
        }
    }

    /// The state as of the last event. [`Session::state_now`] re-derives recovery versus ready for
    /// discharge at the current time.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The state a held session returns to when the hold is released.
    pub fn held_from(&self) -> Option<SessionState> {
        self.held_from
    }

    pub fn holds(&self) -> &[Hold] {
        &self.holds
    }

    pub fn active_holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.iter().filter(|h| h.is_active())
    }

    pub fn check_in(&self) -> Option<&CheckInRecord> {
        self.check_in.as_ref()
    }

    pub fn escort_confirmation(&self) -> Option<&EscortConfirmationRecord> {
        self.escort_confirmation.as_ref()
    }

    pub fn screenings(&self) -> &[LinkedScreening] {
        &self.screenings
    }

    pub fn readings(&self) -> &[Reading] {
        &self.readings
    }

    pub fn bp_confirmations(&self) -> &[BpConfirmation] {
        &self.bp_confirmations
    }

    pub fn ordered(&self) -> Option<&OrderedDose> {
        self.ordered.as_ref()
    }

    pub fn verified(&self) -> Option<&Stamp> {
        self.verified.as_ref()
    }

    pub fn cleared(&self) -> Option<&Stamp> {
        self.cleared.as_ref()
    }

    pub fn administration(&self) -> Option<&AdministrationRecord> {
        self.administration.as_ref()
    }

    /// The time of each device (or application) given.
    pub fn devices(&self) -> &[UtcTs] {
        &self.devices
    }

    pub fn alerts(&self) -> &[RaisedAlert] {
        &self.alerts
    }

    /// Alerts a clinician must still acknowledge.
    pub fn unacknowledged_alerts(&self) -> Vec<&RaisedAlert> {
        self.alerts.iter().filter(|a| a.is_waiting()).collect()
    }

    pub fn observations(&self) -> &[FlaggedObservation] {
        &self.observations
    }

    pub fn adverse_events(&self) -> &[AdverseEvent] {
        &self.adverse_events
    }

    pub fn experience_ended(&self) -> Option<&Stamp> {
        self.experience_ended.as_ref()
    }

    pub fn discharge_assessment(&self) -> Option<&AssessmentRecord> {
        self.discharge_assessment.as_ref()
    }

    pub fn discharged(&self) -> Option<&Stamp> {
        self.discharged.as_ref()
    }

    pub fn aborted(&self) -> Option<&Abort> {
        self.aborted.as_ref()
    }

    pub fn notes(&self) -> &[NoteRecord] {
        &self.notes
    }

    /// The time of the latest event: a new one may not be earlier.
    pub fn last_event_at(&self) -> Option<UtcTs> {
        self.last_event_at
    }

    /// How many events were folded.
    pub fn event_count(&self) -> usize {
        self.events
    }

    /// When the dose was given; `None` before administration starts. For Spravato the dose starts
    /// at the first device (KAP-SPEC 5.2 t0, the REMS form's "1st device administration"); until
    /// a device is given the start of administration stands in for it.
    pub fn dose_times(&self) -> Option<DoseTimes> {
        let a = self.administration.as_ref()?;
        Some(DoseTimes {
            started_at: self.devices.first().copied().unwrap_or(a.started_at),
            ended_at: a.ended_at,
            last_device_at: self.devices.last().copied(),
        })
    }

    /// Time since the dose started (first device, start of infusion, injection, lozenge).
    pub fn time_since_dose(&self, now: UtcTs) -> Option<Duration> {
        self.dose_times().map(|d| Duration::microseconds(now.unix_micros().saturating_sub(d.started_at.unix_micros())))
    }

    /// The infusion's pauses (MON-05), in order.
    pub fn infusion_pauses(&self) -> &[InfusionPause] {
        &self.pauses
    }

    /// The infusion is running but paused, waiting for the prescriber (MON-05).
    pub fn infusion_paused(&self) -> bool {
        self.state == SessionState::Dosing && self.pauses.last().is_some_and(|p| p.resumed.is_none())
    }

    /// When the prescriber last resumed the infusion: MON-05 alerts raised before it are decided.
    pub(super) fn last_resumed_at(&self) -> Option<UtcTs> {
        self.pauses.iter().filter_map(|p| p.resumed.as_ref().map(|r| r.at)).max()
    }

    /// The latest pre-dose blood pressure reading: what GATE-05 and MON-01 judge.
    pub(super) fn latest_pre_dose_bp(&self) -> Option<&Reading> {
        let start = self.dose_times().map(|d| d.started_at);
        self.readings
            .iter()
            .filter(|r| matches!(r.measurement, Measurement::BloodPressure { .. }))
            .filter(|r| start.is_none_or(|s| r.taken_at <= s))
            .max_by_key(|r| r.taken_at)
    }

    /// The highest C-SSRS risk linked to this session (the pre-session screener).
    pub(super) fn linked_cssrs_risk(&self) -> Option<Risk> {
        self.screenings.iter().filter_map(|s| s.screening.cssrs_risk).max()
    }

    /// The discharge criteria (DC-01..DC-09) at `now`; `None` before administration starts.
    pub fn discharge(&self, ctx: &Context) -> Option<DischargeReadiness> {
        self.discharge_at(ctx.protocol, ctx.now)
    }

    pub(super) fn discharge_at(&self, protocol: &Protocol, now: UtcTs) -> Option<DischargeReadiness> {
        let dose = self.dose_times()?;
        let assessment = self.discharge_assessment.as_ref();
        let facts = DischargeFacts {
            dose,
            now,
            readings: self.readings_at(dose.started_at),
            on_room_air: assessment.map(|a| a.details.on_room_air),
            readiness: assessment
                .map(|a| ReadinessJudgement { ready: a.details.ready_to_leave, assessed_at: a.stamp.at }),
            recovery: assessment.map(|a| a.details.recovery),
            escort_present: assessment.map(|a| a.details.escort_present),
            unresolved_serious_adverse_events: unresolved_serious(&self.adverse_events),
            cssrs_at_discharge: assessment.and_then(|a| a.details.cssrs_at_discharge),
        };
        Some(evaluate(&protocol.monitoring.discharge, &facts))
    }

    /// The readings summarised at `dose_started_at`: the summary kept with the session when it is
    /// for that time, else summarised afresh.
    fn readings_at(&self, dose_started_at: UtcTs) -> ReadingSummary {
        match &self.summary {
            Some(kept) if kept.dose_started_at() == dose_started_at => kept.summary(),
            _ => summarize(&self.readings, dose_started_at),
        }
    }

    /// Keeps the summary for the current start of dosing: summarised afresh when dosing starts
    /// (the first device for Spravato), which readings taken before it may precede.
    fn keep_summary(&mut self) {
        match self.dose_times().map(|d| d.started_at) {
            None => self.summary = None,
            Some(start) if self.summary.is_some_and(|s| s.dose_started_at() == start) => {}
            Some(start) => {
                let mut fold = SummaryFold::new(start);
                self.readings.iter().for_each(|r| fold.add(r));
                self.summary = Some(fold);
            }
        }
    }

    /// Ready for discharge: the experience is over, every criterion is met and no alert waits for
    /// an acknowledgement.
    fn ready_at(&self, protocol: &Protocol, now: UtcTs) -> bool {
        self.unacknowledged_alerts().is_empty() && self.discharge_at(protocol, now).is_some_and(|d| d.ready)
    }

    /// The state at `ctx.now`: in recovery, readiness for discharge is re-judged now (a reading
    /// may have grown too old for DC-03..DC-06).
    pub fn state_now(&self, ctx: &Context) -> SessionState {
        match self.state {
            SessionState::Recovery | SessionState::ReadyForDischarge => {
                if self.ready_at(ctx.protocol, ctx.now) {
                    SessionState::ReadyForDischarge
                } else {
                    SessionState::Recovery
                }
            }
            s => s,
        }
    }

    /// When observation is expected to end: the discharge once recorded, else the earliest
    /// discharge (DC-01; for a running infusion, as if it ends on time), and never before now, so
    /// a patient kept longer stays on the schedule.
    fn observation_end(&self, protocol: &Protocol, dose: &DoseTimes, now: UtcTs) -> UtcTs {
        if let Some(d) = &self.discharged {
            return d.at;
        }
        let settings = &protocol.monitoring.discharge;
        let expected = settings.earliest_discharge(dose).or_else(|| {
            let minutes = self.ordered.as_ref()?.calculation.infusion_minutes?;
            let planned_end = dose.started_at.plus(Duration::checked_seconds_f64(minutes * 60.0)?);
            settings.earliest_discharge(&DoseTimes { ended_at: Some(planned_end), ..*dose })
        });
        expected.map_or(now, |e| e.max(now))
    }

    /// The monitoring checks and their status at `ctx.now` (KAP-SPEC 5.2). Before administration
    /// only the pre-dose baselines are planned; from the start of dosing, the route's whole plan.
    pub fn checks(&self, ctx: &Context) -> Vec<CheckState> {
        let plan = &ctx.protocol.monitoring.plan;
        let now = ctx.now;
        match self.dose_times() {
            // Aborted before any dose: nothing is planned any more.
            None if self.state.is_final() => Vec::new(),
            None => {
                let here = DoseTimes { started_at: now, ended_at: None, last_device_at: None };
                let baselines: Vec<_> =
                    planned_checks(plan, &here, now).into_iter().filter(|c| c.reason == Reason::Baseline).collect();
                check_status(&baselines, &self.readings, now, now, &plan.due_window)
            }
            Some(dose) => {
                let end = self.observation_end(ctx.protocol, &dose, now);
                let planned = planned_checks(plan, &dose, end);
                check_status(&planned, &self.readings, dose.started_at, now, &plan.due_window)
            }
        }
    }

    /// The dose times a new reading is judged against: before the dose has started (for Spravato,
    /// before the first device) every reading is a pre-dose reading.
    fn dose_times_for(&self, protocol: &Protocol, reading: &Reading) -> DoseTimes {
        let started = self.administration.is_some() && (!timed_by_device(protocol) || !self.devices.is_empty());
        match self.dose_times() {
            Some(d) if started => d,
            _ => DoseTimes { started_at: reading.taken_at, ended_at: None, last_device_at: None },
        }
    }

    fn raise(&mut self, alert: Alert, at: UtcTs) -> u32 {
        let id = u32::try_from(self.alerts.len()).unwrap_or(u32::MAX - 1).saturating_add(1);
        self.alerts.push(RaisedAlert { id, alert, raised_at: at, acknowledged: None });
        id
    }

    /// Acknowledges the waiting alerts of `rule`: a prescriber's decision on them (MON-01
    /// confirmation, GATE-05 release) is their acknowledgement.
    fn acknowledge_rule(&mut self, rule: &str, by: Actor, at: UtcTs, note: &str) {
        for a in self.alerts.iter_mut().filter(|a| a.alert.rule == rule && a.acknowledged.is_none()) {
            a.acknowledged = Some(Acknowledgement { by, at, note: Some(note.to_owned()) });
        }
    }

    /// Holds dosing. The first hold remembers where the session was.
    fn place_hold(&mut self, rule: HoldRule, reason: String, stamp: Stamp) {
        self.holds.push(Hold { rule, reason, placed: stamp, released: None });
        if self.state != SessionState::Held {
            self.held_from = Some(self.state);
            self.state = SessionState::Held;
        }
    }

    fn is_pre_dose(&self) -> bool {
        matches!(self.state, SessionState::CheckedIn | SessionState::ClearedForDosing | SessionState::Held)
            && self.administration.is_none()
    }

    /// The fold of one event. It assumes [`super::decide`] accepted the event and never fails: an
    /// event that does not fit (which `decide` would have refused) changes nothing but the count.
    pub(super) fn fold(mut self, ctx: &Context, recorded: &Recorded) -> Self {
        let (at, by) = (recorded.at, recorded.by);
        let stamp = Stamp { by, at };
        let protocol = ctx.protocol;
        match &recorded.event {
            SessionEvent::CheckedIn(details) => {
                if self.state == SessionState::Scheduled {
                    self.state = SessionState::CheckedIn;
                    self.check_in = Some(CheckInRecord { details: details.clone(), stamp });
                    // GATE-06: the hold is placed by the finding itself; only a prescriber lifts it.
                    if let Some(finding) = details.gate06_finding() {
                        let reason = format!("At check-in: {finding} (GATE-06). The prescriber decides.");
                        self.place_hold(HoldRule::IntoxicationOrRecentAlcohol, reason, stamp);
                    }
                }
            }
            SessionEvent::EscortConfirmed { how } => {
                self.escort_confirmation = Some(EscortConfirmationRecord { how: *how, stamp });
            }
            SessionEvent::ScreeningLinked(s) => {
                self.screenings.push(LinkedScreening { screening: s.clone(), stamp });
            }
            SessionEvent::Reading(reading) => self.fold_reading(protocol, reading, stamp),
            SessionEvent::PreDoseBpConfirmed { reason } => {
                self.bp_confirmations.push(BpConfirmation { reason: reason.trim().to_owned(), stamp });
                self.acknowledge_rule("MON-01", by, at, reason.trim());
            }
            SessionEvent::HoldPlaced { rule, reason } => self.place_hold(*rule, reason.trim().to_owned(), stamp),
            SessionEvent::HoldReleased { reason } => {
                if self.state == SessionState::Held {
                    let reason = reason.trim().to_owned();
                    for h in self.holds.iter_mut().filter(|h| h.is_active()) {
                        h.released = Some(Release { reason: reason.clone(), by, at });
                    }
                    self.acknowledge_rule("MON-02", by, at, &reason);
                    self.state = self.held_from.take().unwrap_or(SessionState::CheckedIn);
                }
            }
            SessionEvent::DoseOrdered(order) => {
                self.ordered = Some(OrderedDose {
                    request: order.request.clone(),
                    calculation: order.calculation.clone(),
                    override_reason: order.override_reason.as_deref().map(str::trim).map(str::to_owned),
                    stamp,
                });
                // A new order needs a new check and a new clearance: the pre-dose gate covered the
                // dose (KAP-SPEC 2.2 "dose computed and double-checked").
                self.verified = None;
                self.cleared = None;
                if self.state == SessionState::ClearedForDosing {
                    self.state = SessionState::CheckedIn;
                }
                if self.held_from == Some(SessionState::ClearedForDosing) {
                    self.held_from = Some(SessionState::CheckedIn);
                }
            }
            SessionEvent::DoseVerified => self.verified = Some(stamp),
            SessionEvent::ClearedForDosing => {
                if self.state == SessionState::CheckedIn {
                    self.cleared = Some(stamp);
                    self.state = SessionState::ClearedForDosing;
                }
            }
            SessionEvent::AdministrationStarted(details) => {
                if self.state == SessionState::ClearedForDosing {
                    let at_once = given_at_once(protocol);
                    self.administration = Some(AdministrationRecord {
                        details: details.clone(),
                        by,
                        started_at: at,
                        ended_at: at_once.then_some(at),
                        end_reason: None,
                    });
                    self.state = if at_once { SessionState::Monitoring } else { SessionState::Dosing };
                }
            }
            SessionEvent::DeviceGiven => {
                let planned = self.ordered.as_ref().and_then(|o| planned_devices(&o.calculation));
                if let (SessionState::Dosing, Some(planned), Some(a)) =
                    (self.state, planned, self.administration.as_mut())
                {
                    self.devices.push(at);
                    // The last device ends the administration (KAP-SPEC 5.4 "last device").
                    if self.devices.len() >= planned as usize {
                        a.ended_at = Some(at);
                        self.state = SessionState::Monitoring;
                    }
                }
            }
            SessionEvent::InfusionPaused { reason } => {
                if self.state == SessionState::Dosing && !self.infusion_paused() {
                    let reason = reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned);
                    self.pauses.push(InfusionPause { paused: stamp, reason, resumed: None });
                }
            }
            SessionEvent::InfusionResumed { reason } => {
                if self.infusion_paused()
                    && let Some(p) = self.pauses.last_mut()
                {
                    let reason = reason.trim().to_owned();
                    p.resumed = Some(Release { reason: reason.clone(), by, at });
                    // The prescriber's evaluation is the acknowledgement of the MON-05 alert.
                    self.acknowledge_rule("MON-05", by, at, &reason);
                }
            }
            SessionEvent::AdministrationEnded { reason } => {
                if let (SessionState::Dosing, Some(a)) = (self.state, self.administration.as_mut()) {
                    a.ended_at = Some(at);
                    a.end_reason = reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned);
                    self.state = SessionState::Monitoring;
                }
            }
            SessionEvent::AlertAcknowledged { alert_id, note } => {
                if let Some(a) = self.alerts.iter_mut().find(|a| a.id == *alert_id && a.acknowledged.is_none()) {
                    let note = note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
                    a.acknowledged = Some(Acknowledgement { by, at, note });
                }
            }
            SessionEvent::ObservationFlagged { observation, note } => {
                let alert_id = self.raise(observation_alert(*observation), at);
                let note = note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
                self.observations.push(FlaggedObservation { observation: *observation, note, stamp, alert_id });
            }
            SessionEvent::AdverseEventRecorded(ae) => self.adverse_events.push(ae.clone()),
            SessionEvent::AdverseEventUpdated { number, outcome, resolved_at } => {
                if let Some(slot) = number.checked_sub(1).and_then(|i| self.adverse_events.get_mut(i))
                    && let Ok(updated) = slot.with_outcome(*outcome, *resolved_at)
                {
                    *slot = updated;
                }
            }
            SessionEvent::ExperienceEnded => {
                if self.state == SessionState::Monitoring {
                    self.experience_ended = Some(stamp);
                    self.state = SessionState::Recovery;
                }
            }
            SessionEvent::DischargeAssessment(details) => {
                self.discharge_assessment = Some(AssessmentRecord { details: *details, stamp });
            }
            SessionEvent::Discharged { .. } => {
                if matches!(self.state, SessionState::Recovery | SessionState::ReadyForDischarge) {
                    self.discharged = Some(stamp);
                    self.state = SessionState::Discharged;
                }
            }
            SessionEvent::Aborted { reason } => {
                if !self.state.is_final() {
                    self.aborted = Some(Abort { reason: reason.trim().to_owned(), stamp, from: self.state });
                    self.state = SessionState::Aborted;
                    self.held_from = None;
                }
            }
            SessionEvent::ProgressNote { text } => {
                self.notes.push(NoteRecord { text: text.trim().to_owned(), stamp });
            }
        }
        self.keep_summary();
        // Ready for discharge is derived: re-judged after every event of the recovery phase.
        if matches!(self.state, SessionState::Recovery | SessionState::ReadyForDischarge) {
            self.state =
                if self.ready_at(protocol, at) { SessionState::ReadyForDischarge } else { SessionState::Recovery };
        }
        self.last_event_at = Some(self.last_event_at.map_or(at, |last| last.max(at)));
        self.events += 1;
        self
    }

    /// A reading raises its alerts (MON-01..MON-10 via `reading_alerts`); a pre-dose BP at or
    /// above the hold threshold also holds dosing (MON-02, GATE-05) when it is the latest.
    fn fold_reading(&mut self, protocol: &Protocol, reading: &Reading, stamp: Stamp) {
        let dose = self.dose_times_for(protocol, reading);
        self.readings.push(*reading);
        if let Some(kept) = &mut self.summary {
            kept.add(reading);
        }
        let thresholds = &protocol.monitoring.thresholds;
        // A pre-dose reading is judged without baselines.
        let baseline = if reading.taken_at <= dose.started_at {
            ReadingSummary::default()
        } else {
            self.readings_at(dose.started_at)
        };
        // A paused infusion is already what MON-05 asks for: no second "pause the infusion".
        let paused = self.infusion_paused();
        for alert in reading_alerts_given(thresholds, &dose, &baseline, &self.readings, reading)
            .into_iter()
            .filter(|a| !(paused && a.action == AlertAction::PauseInfusion))
        {
            self.raise(alert, stamp.at);
        }
        if let Measurement::BloodPressure { bp, .. } = reading.measurement
            && self.is_pre_dose()
            && self.latest_pre_dose_bp().is_some_and(|latest| latest.taken_at == reading.taken_at)
            && let PreDoseBp::Hold(alert) = pre_dose_bp(thresholds, bp)
        {
            self.place_hold(HoldRule::PreDoseBloodPressure, alert.message, stamp);
        }
    }

    /// The user who ordered the current dose.
    pub(super) fn ordered_by(&self) -> Option<UserId> {
        self.ordered.as_ref().map(|o| o.stamp.by.user)
    }
}

/// Devices (Spravato: dose / 28 mg) or applications of an ordered dose.
pub(super) fn planned_devices(calc: &DoseCalculation) -> Option<u32> {
    calc.devices.or(calc.applications)
}
