//! The dosing session (KAP-SPEC 2.2) as an event-sourced state machine.
//!
//! The store keeps each session as an append-only list of [`Recorded`] events (JSON, the event
//! tagged by `"kind"`). The domain decides whether a new event may be appended ([`decide`]) and
//! folds the list into a [`Session`] ([`apply`], [`replay`]). All of it is pure: the web layer
//! passes the route's [`Protocol`], the facts from the rest of the record ([`GateFacts`]) and the
//! time in a [`Context`].
//!
//! ```text
//! scheduled -> checked_in -> cleared_for_dosing -> dosing -> monitoring -> recovery
//!           -> ready_for_discharge -> discharged
//! held (from checked_in or cleared_for_dosing; a prescriber's release returns there)
//! aborted (from any state before the end; final)
//! ```
//!
//! Choices made here, and why:
//! - **Monitoring** starts when administration ends: the infusion stopped or the lozenge
//!   finished ([`SessionEvent::AdministrationEnded`]), the last ordered Spravato device (or nasal
//!   application) given, or at once for an IM injection. A device dose may end early (MON-09)
//!   with a reason.
//! - **Recovery** starts when a clinician marks the experience over
//!   ([`SessionEvent::ExperienceEnded`]): the spec's recovery and grounding is a clinical
//!   judgement of the therapist or clinician at the bedside, not a clock; the discharge
//!   criteria then take the time into account (DC-01).
//! - **Ready for discharge** is never recorded: it is derived when `discharge::evaluate` is ready
//!   and no alert waits for an acknowledgement, after each event and again at the current time
//!   ([`Session::state_now`]), since a reading can grow too old to count.
//! - **Gates** that can never be overridden in a session: GATE-01..GATE-04 and the signed
//!   eligibility decision ("do not dose", "MUST NOT administer"). GATE-05 and GATE-06 ("Hold;
//!   prescriber decision") hold the session; only a prescriber releases the hold, with a reason.
//!   MON-01 needs a prescriber's confirmation with a reason. MON-04..MON-07, MON-09 and MON-10
//!   stop further dosing for the rest of the session. See [`gates`].
//! - **Dose orders** are computed by the domain ([`order_dose`]) from the record's weight and
//!   Spravato history, and [`decide`] computes them again: a client's figures are never trusted.
//!   A new order withdraws the verification and the clearance it replaces.
//! - **Alerts** are raised as readings and observations are folded (`reading_alerts`,
//!   `observation_alert`) and numbered from 1. An alert that needs an acknowledgement holds up the
//!   next dose, device and the discharge until a prescriber or nurse acknowledges it; the
//!   prescriber's MON-01 confirmation and GATE-05 release acknowledge the MON-01 and MON-02
//!   alerts they decide on.
//! - **Time**: events are appended in time order and never ahead of the clock; a reading carries
//!   its own `taken_at`, so a late entry keeps the right time.
//! - **After the end** (discharged, aborted) only documentation may be added: progress notes,
//!   adverse events and their follow-up, late acknowledgements.

pub mod advice;
mod decide;
mod event;
pub mod gates;
mod state;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use decide::{already_recorded, decide, order_dose, reads_gate_facts};
pub use event::{
    Actor, Administration, CheckIn, DischargeAssessment, DoseOrder, Escort, EscortConfirmation, HoldRule,
    MeasuredWeight, Mood, Pregnancy, Recorded, Screening, ScreeningInstrument, SessionEvent, StateOfMind,
};
pub use gates::{Blocker, GateFacts};
pub use state::{
    Abort, Acknowledgement, AdministrationRecord, AssessmentRecord, BpConfirmation, CheckInRecord,
    EscortConfirmationRecord, FlaggedObservation, Hold, InfusionPause, LinkedScreening, NoteRecord, OrderedDose,
    RaisedAlert, Release, Session, SessionState, Stamp,
};

use crate::UtcTs;
use crate::discharge::DischargeReadiness;
use crate::monitoring::{CheckState, DoseTimes};
use crate::protocol::Protocol;

/// What a decision reads besides the session: the route's protocol (the version the session
/// runs under), the facts from the rest of the record, and the current time.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub protocol: &'a Protocol,
    pub gates: GateFacts,
    pub now: UtcTs,
}

/// Why an event was refused: a stable `code` (a spec id such as `GATE-04`, `MON-09`, `DC-08`, or
/// `role`, `state`, `time`, `invalid`, `dose_block`, `dose_override`, ...), the input `field` at
/// fault when there is one, and a message for staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error, schemars::JsonSchema)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub code: &'static str,
    pub field: Option<&'static str>,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, field: Option<&'static str>, message: impl Into<String>) -> Self {
        Self { code, field, message: message.into() }
    }
}

/// Folds one event into the session. Pure, and total: it never fails, and it is meant for events
/// [`decide`] accepted (one that does not fit changes nothing but the event count). It reads only
/// `ctx.protocol` (the thresholds that raise alerts, the discharge settings), never the gate facts
/// or the clock, so a replay gives the same session whenever it runs — as long as it is given the
/// protocol version the session ran under (the order records it).
pub fn apply(session: Session, ctx: &Context, recorded: &Recorded) -> Session {
    session.fold(ctx, recorded)
}

/// The session from its stored events, in order.
pub fn replay(ctx: &Context, events: &[Recorded]) -> Session {
    events.iter().fold(Session::scheduled(), |s, e| apply(s, ctx, e))
}

/// Everything a page or the API shows of a session at `ctx.now`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SessionView<'a> {
    pub state: SessionState,
    pub held_from: Option<SessionState>,
    pub blocked_by: Vec<Blocker>,
    pub checks: Vec<CheckState>,
    pub unacknowledged_alerts: Vec<&'a RaisedAlert>,
    pub discharge: Option<DischargeReadiness>,
    pub dose_times: Option<DoseTimes>,
    /// Whole minutes since the dose started.
    pub minutes_since_dose: Option<i64>,
    /// The IV infusion is paused for the prescriber (MON-05).
    pub infusion_paused: bool,
    pub session: &'a Session,
}

impl Session {
    pub fn view<'a>(&'a self, ctx: &Context) -> SessionView<'a> {
        SessionView {
            state: self.state_now(ctx),
            held_from: self.held_from(),
            blocked_by: self.blocked_by(ctx),
            checks: self.checks(ctx),
            unacknowledged_alerts: self.unacknowledged_alerts(),
            discharge: self.discharge(ctx),
            dose_times: self.dose_times(),
            minutes_since_dose: self.time_since_dose(ctx.now).map(|d| d.whole_minutes()),
            infusion_paused: self.infusion_paused(),
            session: self,
        }
    }
}
