//! Dosing sessions: the shell around the domain's event-sourced state machine. A request loads
//! the session's events, the protocol version it runs under and the facts from the rest of the
//! record (consent, decision, REMS, C-SSRS, weight), asks the domain whether the new event may be
//! recorded, and appends it in the same transaction as the audit event. The domain, not the page,
//! enforces every hard stop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::decision::{Route, SpravatoIndication};
use kapstone_domain::dose::DoseRequest;
use kapstone_domain::instruments::cssrs::Risk;
use kapstone_domain::patient::SexAtBirth;
use kapstone_domain::protocol::Protocol;
use kapstone_domain::scheduling::AppointmentKind;
use kapstone_domain::session::{
    self, Actor, Administration, Context, GateFacts, MeasuredWeight, RaisedAlert, Recorded, Refusal, Screening,
    ScreeningInstrument, Session, SessionEvent,
};
use kapstone_domain::webhook::Event;
use kapstone_domain::{ClinicId, PatientId, UtcTs};
use kapstone_store::dosing::{self as store, SessionRow};
use kapstone_store::writer::Batch;
use uuid::Uuid;

use super::scheduling::{from_jiff, zones};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

fn refused(r: Refusal) -> AppError {
    AppError::Refused { code: r.code, field: r.field, message: r.message }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("stored {what} is invalid: {e}"))
}

/// A session with everything needed to decide and to show it.
pub struct Loaded {
    pub row: SessionRow,
    pub protocol: Protocol,
    pub events: Vec<Recorded>,
    pub gates: GateFacts,
    pub now: UtcTs,
}

impl Loaded {
    pub fn ctx(&self) -> Context<'_> {
        Context { protocol: &self.protocol, gates: self.gates.clone(), now: self.now }
    }

    pub fn session(&self) -> Session {
        session::replay(&self.ctx(), &self.events)
    }
}

/// Opens the session of a dosing appointment (idempotent: the existing one is returned). The
/// protocol in force for the appointment type's route is pinned to the session.
pub async fn open(state: &AppState, user: &CurrentUser, appointment: Uuid) -> Result<(Uuid, bool), AppError> {
    if let Some(s) = store::session_of_appointment(&state.db, user.clinic, appointment).await? {
        return Ok((s.id, false));
    }
    let (id, _) = open_session(state, user, appointment, false).await?;
    Ok((id, true))
}

/// A session opened (or found open) and loaded as [`load`] loads it.
pub struct Opened {
    pub loaded: Loaded,
    /// `false`: the appointment's session was open already.
    pub created: bool,
}

/// [`open`], answered with the session loaded as [`load`] loads it (an audited read). A session
/// opened now is loaded inside its own transaction (its row and events read back; the gates, which
/// read the patient's record and not the new session, read before) and its read audited there:
/// the answer is committed with the session (issue 9). One open already is loaded as [`load`]
/// does.
pub async fn open_and_load(state: &AppState, user: &CurrentUser, appointment: Uuid) -> Result<Opened, AppError> {
    if let Some(s) = store::session_of_appointment(&state.db, user.clinic, appointment).await? {
        return Ok(Opened { loaded: load(state, user, s.id).await?, created: false });
    }
    open_session(state, user, appointment, true)
        .await?
        .1
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a session opened without being loaded")))
}

/// Opens the session; with `load`, also loads it in its transaction and audits that read there
/// (the API answers with it), and commits it with the change.
async fn open_session(
    state: &AppState,
    user: &CurrentUser,
    appointment: Uuid,
    load: bool,
) -> Result<(Uuid, Option<Opened>), AppError> {
    let a = kapstone_store::scheduling::appointment(&state.db, user.clinic, appointment)
        .await?
        .ok_or(AppError::NotFound)?;
    let types = super::scheduling::types(state, user).await?;
    let kind = types.iter().find(|(id, _, _)| *id == a.type_id).map(|(_, t, _)| t.clone()).ok_or(AppError::NotFound)?;
    let route = match (kind.kind, kind.route) {
        (AppointmentKind::Dosing, Some(r)) => r,
        _ => {
            return Err(AppError::Invalid(kapstone_domain::FieldError::new(
                "appointment_id",
                "only a dosing appointment has a dosing session",
            )));
        }
    };
    if a.status != "booked" && a.status != "completed" {
        return Err(AppError::Invalid(kapstone_domain::FieldError::new(
            "appointment_id",
            format!("this appointment is {}", a.status.replace('_', " ")),
        )));
    }
    let set = super::protocols::current(state, user.clinic).await?;
    let protocol = set.get(route);
    // What loading the session reads besides the session itself, read before its transaction:
    // the pinned protocol version and the gates (from the patient's record; the new session has
    // no dose to count).
    let loading = if load {
        let pinned = super::protocols::version(state, user.clinic, &protocol.id, &protocol.version).await?;
        let gates = gates_of(state, user, PatientId::from_uuid(a.patient_id), a.location_id, None, route).await?;
        Some((pinned, gates))
    } else {
        None
    };
    let mut tx = state.db.begin().await?;
    let id = store::insert_session(
        &mut tx,
        &store::NewSession {
            clinic: user.clinic,
            appointment,
            patient: PatientId::from_uuid(a.patient_id),
            location: a.location_id,
            room: a.room_id,
            protocol_id: &protocol.id,
            protocol_version: &protocol.version,
            state: "scheduled",
            by: user.id,
        },
    )
    .await?;
    let mut e = user.event(AuditAction::SessionOpened, "dosing_session", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(PatientId::from_uuid(a.patient_id));
    e.reason = Some(format!("{}@{}", protocol.id, protocol.version));
    kapstone_store::audit::append(&mut tx, &e).await?;
    let Some((pinned, gates)) = loading else {
        tx.commit().await?;
        return Ok((id, None));
    };
    let row = store::session_in(&mut tx, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    let events = parse_events(&store::events_in(&mut tx, id).await?)?;
    let mut e = user.event(AuditAction::SessionViewed, "dosing_session", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(PatientId::from_uuid(row.patient_id));
    kapstone_store::audit::append(&mut tx, &e).await?;
    let opened = Opened { loaded: Loaded { row, protocol: pinned, events, gates, now: UtcTs::now() }, created: true };
    tx.commit_answering(&opened).await?;
    Ok((id, Some(opened)))
}

fn parse_events(rows: &[store::EventRow]) -> Result<Vec<Recorded>, AppError> {
    rows.iter().map(parse_event).collect()
}

/// One stored event.
pub(super) fn parse_event(row: &store::EventRow) -> Result<Recorded, AppError> {
    serde_json::from_str(&row.payload).map_err(|e| corrupt("session event", e))
}

/// The facts from the rest of the record that the session's gates read.
pub(super) async fn gate_facts(
    state: &AppState,
    user: &CurrentUser,
    row: &SessionRow,
    route: Route,
) -> Result<GateFacts, AppError> {
    gates_of(state, user, PatientId::from_uuid(row.patient_id), row.location_id, Some(row.id), route).await
}

/// The gates of a session of `patient` at `location` (`this`: the session, whose own doses do not
/// count as earlier ones).
async fn gates_of(
    state: &AppState,
    user: &CurrentUser,
    patient: PatientId,
    location: Uuid,
    this: Option<Uuid>,
    route: Route,
) -> Result<GateFacts, AppError> {
    let p = kapstone_store::patients::get(&state.db, user.clinic, patient).await?.ok_or(AppError::NotFound)?;
    let tz = zones(state, user.clinic).await?.of(location).clone();
    let today = Timestamp::now().to_zoned(tz).date();
    let readiness = super::scheduling::readiness(state, user, patient).await?;
    let valid_now = |until: Option<Timestamp>| until.is_some_and(|u| u > Timestamp::now());
    let spravato = route == Route::SpravatoIntranasal;
    let decision = kapstone_store::eligibility::decisions(&state.db, patient).await?.into_iter().next();
    let spravato_indication = decision
        .as_ref()
        .and_then(|d| d.spravato_indication.as_deref())
        .and_then(|s| serde_json::from_value::<SpravatoIndication>(serde_json::Value::String(s.to_owned())).ok());
    // GATE-01: the latest C-SSRS screener on the record.
    let cssrs_risk = kapstone_store::questionnaires::recent_responses(&state.db, patient, 50)
        .await?
        .into_iter()
        .find(|r| r.instrument == "cssrs_screener")
        .and_then(|r| serde_json::from_str::<serde_json::Value>(&r.result).ok())
        .and_then(|v| serde_json::from_value::<Risk>(v["risk"].clone()).ok());
    // The weight and height of the latest consultation, as measured then.
    let consultation = kapstone_store::eligibility::latest_consultation(&state.db, patient).await?;
    let (recorded_weight, height_cm) = match &consultation {
        Some(c) => {
            let body: serde_json::Value = serde_json::from_str(&c.body).map_err(|e| corrupt("consultation", e))?;
            let weight =
                body["vitals"]["weight_kg"].as_f64().map(|kg| MeasuredWeight { kg, measured_at: c.recorded_at.0 });
            (weight, body["vitals"]["height_cm"].as_f64())
        }
        None => (None, None),
    };
    Ok(GateFacts {
        consent_valid: valid_now(readiness.consent_valid_until)
            && (!spravato || valid_now(readiness.rems_acknowledgement_valid_until)),
        decision_allows_route: readiness.allowed_routes.as_ref().is_some_and(|r| r.contains(&route))
            && !readiness.decision_outdated,
        rems_enrolled: readiness.rems_enrolled,
        setting_rems_certified: store::rems_certified(&state.db, location).await?,
        cssrs_risk,
        spravato_indication,
        previous_spravato_doses_mg: previous_spravato_doses(state, user.clinic, patient, this).await?,
        age_years: u8::try_from(age_on(p.birth_date, today)).ok(),
        recorded_weight,
        height_cm,
        sex_at_birth: SexAtBirth::parse(&p.sex_at_birth).ok(),
        clinic_date: today,
    })
}

fn age_on(birth: time::Date, today: jiff::civil::Date) -> i32 {
    let (y, m, d) = (i32::from(today.year()), i32::from(today.month()), i32::from(today.day()));
    let before_birthday = (m, d) < (i32::from(u8::from(birth.month())), i32::from(birth.day()));
    y - birth.year() - i32::from(before_birthday)
}

/// Doses given in the patient's earlier Spravato sessions (TV-SPR-2: none means day 1).
async fn previous_spravato_doses(
    state: &AppState,
    clinic: ClinicId,
    patient: PatientId,
    this: Option<Uuid>,
) -> Result<Vec<u16>, AppError> {
    let mut out = Vec::new();
    let mut earlier: Vec<SessionRow> = store::sessions_of_patient(&state.db, clinic, patient)
        .await?
        .into_iter()
        .filter(|s| Some(s.id) != this && s.protocol_id == "spravato-intranasal")
        .collect();
    earlier.sort_by_key(|s| s.created_at.0);
    for s in earlier {
        for e in parse_events(&store::events(&state.db, s.id).await?)? {
            if let SessionEvent::AdministrationStarted(a) = &e.event {
                out.push(a.dose_mg.round().clamp(0.0, f64::from(u16::MAX)) as u16);
            }
        }
    }
    Ok(out)
}

/// Loads a session for a clinician (audited as a read of patient data).
pub async fn load(state: &AppState, user: &CurrentUser, id: Uuid) -> Result<Loaded, AppError> {
    let row = store::session(&state.db, user.clinic, id).await?.ok_or(AppError::NotFound)?;
    let loaded = load_row(state, user, row).await?;
    let mut e = user.event(AuditAction::SessionViewed, "dosing_session", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.patient_id = Some(PatientId::from_uuid(loaded.row.patient_id));
    state.read_audit.record(e).await?;
    Ok(loaded)
}

/// Loads a session without auditing it (the caller audits the list it is part of).
pub async fn load_row(state: &AppState, user: &CurrentUser, row: SessionRow) -> Result<Loaded, AppError> {
    let protocol = super::protocols::version(state, user.clinic, &row.protocol_id, &row.protocol_version).await?;
    let gates = gate_facts(state, user, &row, protocol.route).await?;
    let events = parse_events(&store::events(&state.db, row.id).await?)?;
    Ok(Loaded { row, protocol, events, gates, now: UtcTs::now() })
}

/// The session as the API returns it.
pub fn to_json(l: &Loaded) -> Result<serde_json::Value, AppError> {
    let ctx = l.ctx();
    let s = l.session();
    let detail = SessionDetail {
        id: l.row.id,
        appointment_id: l.row.appointment_id,
        patient_id: l.row.patient_id,
        location_id: l.row.location_id,
        room_id: l.row.room_id,
        view: s.view(&ctx),
        protocol: ProtocolRef { id: &l.protocol.id, version: &l.protocol.version, route: l.protocol.route },
        gates: &l.gates,
        advisories: session::advice::advisories(&s, &ctx),
    };
    serde_json::to_value(&detail).map_err(|e| AppError::Internal(e.into()))
}

/// A dosing session as the API shows it: the domain's view at this moment (state, blockers,
/// checks, alerts, discharge criteria) with where it happens, the protocol version and the gate
/// facts it was judged on.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Session")]
pub struct SessionDetail<'a> {
    pub id: Uuid,
    pub appointment_id: Uuid,
    pub patient_id: Uuid,
    pub location_id: Uuid,
    pub room_id: Option<Uuid>,
    #[serde(flatten)]
    pub view: session::SessionView<'a>,
    pub protocol: ProtocolRef<'a>,
    pub gates: &'a GateFacts,
    /// Advice that does not block (e.g. a check coming due).
    pub advisories: Vec<session::advice::Advisory>,
}

/// The protocol version a session runs under.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct ProtocolRef<'a> {
    pub id: &'a str,
    pub version: &'a str,
    pub route: Route,
}

/// What recording an event did: the alerts it raised.
pub struct RecordedOutcome {
    pub new_alerts: Vec<RaisedAlert>,
    pub state: &'static str,
}

/// What the client asks to record: an event as sent, a dose order the domain computes, or a
/// questionnaire response to link whose score is read from the record.
pub enum Input {
    Event(SessionEvent),
    /// The administration starts; at a location that keeps its controlled-substance ledger here
    /// the dose (or `drawn`, when more is drawn than given) is drawn from the lot it names.
    Administration {
        administration: Administration,
        drawn: Option<kapstone_domain::ledger::Measure>,
    },
    DoseOrder {
        request: DoseRequest,
        override_reason: Option<String>,
    },
    LinkScreening {
        response_id: Uuid,
    },
}

/// A PHQ-9 or C-SSRS screener response that counts as this session's pre-session screen.
#[derive(Debug, Clone)]
pub struct ScreenCandidate {
    pub screening: Screening,
    pub submitted_at: UtcTs,
    pub via_portal: bool,
}

/// The screeners of KAP-SPEC 7.10 asked on each dosing day, pre-dose.
const PRE_SESSION_INSTRUMENTS: [&str; 2] = ["phq9", "cssrs_screener"];

/// The PHQ-9 and C-SSRS screener responses answered for this session, newest first. They count
/// "since last visit" (KAP-SPEC 7.10): from the later of the booking and the start of the
/// patient's previous dosing appointment, up to now. Scores are read from the stored response,
/// never taken from a client.
pub async fn pre_session_screens(
    state: &AppState,
    user: &CurrentUser,
    row: &SessionRow,
) -> Result<Vec<ScreenCandidate>, AppError> {
    let patient = PatientId::from_uuid(row.patient_id);
    let appointments = kapstone_store::scheduling::appointments_of_patient(&state.db, patient).await?;
    let Some(this) = appointments.iter().find(|a| a.id == row.appointment_id) else {
        return Ok(Vec::new());
    };
    let types = super::scheduling::types(state, user).await?;
    let is_dosing = |type_id: Uuid| types.iter().any(|(id, t, _)| *id == type_id && t.kind == AppointmentKind::Dosing);
    let previous_start = appointments
        .iter()
        .filter(|a| a.id != this.id && is_dosing(a.type_id) && matches!(a.status.as_str(), "booked" | "completed"))
        .map(|a| a.start_at.0)
        .filter(|s| *s < this.start_at.0)
        .max();
    let booked_at = kapstone_store::scheduling::created_at(&state.db, &[this.id]).await?.first().map(|(_, t)| t.0);
    let from = match (booked_at, previous_start) {
        (Some(b), Some(p)) => Some(b.max(p)),
        (b, p) => b.or(p),
    };
    let now = UtcTs::now();
    let mut out = Vec::new();
    for r in kapstone_store::questionnaires::recent_responses(&state.db, patient, 50).await? {
        let at = r.submitted_at.0;
        if !PRE_SESSION_INSTRUMENTS.contains(&r.instrument.as_str()) || from.is_some_and(|f| at < f) || at > now {
            continue;
        }
        out.push(ScreenCandidate {
            screening: screening_of(&r)?,
            submitted_at: at,
            via_portal: r.entered_via == "portal",
        });
    }
    Ok(out)
}

/// The session's view of a stored screener response: the PHQ-9 total or the C-SSRS risk.
fn screening_of(r: &kapstone_store::questionnaires::ResponseSummary) -> Result<Screening, AppError> {
    let response_id = r.id.to_string();
    Ok(if r.instrument == "phq9" {
        let total = r.total.and_then(|t| u16::try_from(t).ok()).ok_or_else(|| corrupt("PHQ-9 total", r.id))?;
        Screening { instrument: ScreeningInstrument::Phq9, response_id, total: Some(total), cssrs_risk: None }
    } else {
        let result: serde_json::Value = serde_json::from_str(&r.result).map_err(|e| corrupt("C-SSRS result", e))?;
        let risk: Risk = serde_json::from_value(result["risk"].clone()).map_err(|e| corrupt("C-SSRS risk", e))?;
        Screening { instrument: ScreeningInstrument::CssrsScreener, response_id, total: None, cssrs_risk: Some(risk) }
    })
}

/// Turns the links asked for into events, and adds to a check-in the newest pre-session PHQ-9
/// and C-SSRS screener the patient already answered (in the portal or with staff), so nobody
/// types a score twice. A response that is not this patient's, not a screener, or from before
/// the last visit is refused naming `response_id`.
async fn resolve_screenings(
    state: &AppState,
    user: &CurrentUser,
    row: &SessionRow,
    inputs: Vec<Input>,
) -> Result<Vec<Input>, AppError> {
    let checks_in = inputs.iter().any(|i| matches!(i, Input::Event(SessionEvent::CheckedIn(_))));
    let links = inputs.iter().any(|i| matches!(i, Input::LinkScreening { .. }));
    if !checks_in && !links {
        return Ok(inputs);
    }
    let candidates = pre_session_screens(state, user, row).await?;
    let mut out = Vec::with_capacity(inputs.len() + 2);
    for input in inputs {
        match input {
            Input::LinkScreening { response_id } => {
                let id = response_id.to_string();
                let c = candidates.iter().find(|c| c.screening.response_id == id).ok_or_else(|| {
                    AppError::Invalid(kapstone_domain::FieldError::new(
                        "response_id",
                        "link this patient's PHQ-9 or C-SSRS screener answered since the last visit",
                    ))
                })?;
                out.push(Input::Event(SessionEvent::ScreeningLinked(c.screening.clone())));
            }
            Input::Event(e @ SessionEvent::CheckedIn(_)) => {
                out.push(Input::Event(e));
                for instrument in [ScreeningInstrument::Phq9, ScreeningInstrument::CssrsScreener] {
                    // Newest first: the latest answer of each.
                    if let Some(c) = candidates.iter().find(|c| c.screening.instrument == instrument) {
                        out.push(Input::Event(SessionEvent::ScreeningLinked(c.screening.clone())));
                    }
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Records the events of one request (e.g. a BP and a respiratory reading entered together) in one
/// write: the domain decides each in turn, then each event, the projection and its audit event are
/// written; a refusal of any of them writes none. `at` defaults to now, read once the session is
/// locked, so two requests to one session are timed in the order they are written; the domain
/// refuses a time ahead of the clock.
///
/// What needs no lock is read first (the protocol, the record's facts for the gates, the
/// screeners). The write itself runs on the group-commit writer (`kapstone_store::writer`): the
/// requests of many sessions share one durable commit, each answered once it is committed.
pub async fn record(
    state: &AppState,
    user: &CurrentUser,
    id: Uuid,
    inputs: Vec<Input>,
    at: Option<UtcTs>,
) -> Result<RecordedOutcome, AppError> {
    let row = state.sessions.row(state, user.clinic, id).await?;
    // The discharge is the clinician's signature that the patient may leave (KAP-SPEC DC rules).
    if inputs.iter().any(|i| matches!(i, Input::Event(SessionEvent::Discharged { .. }))) {
        super::reauth::require_recent(state, user)?;
    }
    let protocol = super::protocols::version(state, user.clinic, &row.protocol_id, &row.protocol_version).await?;
    let inputs = resolve_screenings(state, user, &row, inputs).await?;
    // The record's facts are looked up only when the domain reads them (the dose order and the
    // pre-dose gate); a reading, a note or an acknowledgement is decided without them.
    let reads_gates = inputs.iter().any(|i| match i {
        Input::Event(e) => session::reads_gate_facts(e),
        Input::Administration { .. } | Input::DoseOrder { .. } => true,
        Input::LinkScreening { .. } => false,
    });
    let gates = if reads_gates { gate_facts(state, user, &row, protocol.route).await? } else { GateFacts::unread() };
    let write = Write { state: state.clone(), user: user.clone(), row, protocol, gates, inputs, at };
    state.writer().run_keyed(id, move |batch| Box::pin(write.run(batch))).await
}

/// One request's write, as the group-commit writer runs it.
struct Write {
    state: AppState,
    user: CurrentUser,
    /// Read only for what never changes in it ([`SessionCache::row`]).
    row: SessionRow,
    protocol: Protocol,
    gates: GateFacts,
    inputs: Vec<Input>,
    at: Option<UtcTs>,
}

impl Write {
    async fn run(self, batch: &mut Batch) -> Result<RecordedOutcome, AppError> {
        let Write { state, user, row, protocol, gates, inputs, at } = self;
        let (state, user, row, id) = (&state, &user, &row, row.id);
        let count = batch.session_count(id).await?.ok_or(AppError::NotFound)?;
        // The clock is read under the lock: a request that waited for another one to this session
        // is timed after it.
        let now = UtcTs::now();
        let at = at.unwrap_or(now);
        let ctx = Context { protocol: &protocol, gates, now };
        let (mut session, committed) = match state.sessions.take(id, count, batch.number()) {
            Some(taken) => taken,
            // Replayed in this batch's transaction: it may hold this batch's uncommitted events.
            None => {
                state.sessions.count_replay();
                (session::replay(&ctx, &parse_events(&store::events_in(batch.tx().await?, id).await?)?), false)
            }
        };
        let keep = Keep { id, batch: batch.number(), committed };
        // A reading entered twice is refused before anything is folded, so the session goes back
        // to the cache as it was (a refusal after an earlier event of the request was folded would
        // make the next write replay the whole log).
        for input in &inputs {
            if let Input::Event(e) = input
                && let Err(r) = session::already_recorded(&session, e)
            {
                return Err(state.sessions.refused(keep, session, true, r));
            }
        }
        let first = i32::try_from(session.event_count()).map_err(|e| AppError::Internal(e.into()))?;
        let mut new_alerts: Vec<RaisedAlert> = Vec::new();
        let mut state_now = session.state_now(&ctx).as_str();
        // Each event's place in the log: the number of events before it.
        let mut seq = first;
        // Decided but not yet written: a request's readings go in one insert.
        let mut unwritten: Vec<store::NewEvent<'static>> = Vec::new();
        for input in inputs {
            let mut drawn = None;
            // A dose order is computed by the domain from the record, whatever the client sent.
            let event = match input {
                Input::Administration { administration, drawn: d } => {
                    drawn = Some(d);
                    SessionEvent::AdministrationStarted(administration)
                }
                Input::DoseOrder { request, override_reason } => {
                    match session::order_dose(&session, &ctx, at, request, override_reason) {
                        Ok(e) => e,
                        Err(r) => return Err(state.sessions.refused(keep, session, seq == first, r)),
                    }
                }
                // Only a response already linked is skipped (a check-in adds the screeners found).
                Input::Event(SessionEvent::ScreeningLinked(s))
                    if session.screenings().iter().any(|l| l.screening.response_id == s.response_id) =>
                {
                    continue;
                }
                Input::Event(e) => e,
                Input::LinkScreening { .. } => {
                    return Err(AppError::Internal(anyhow::anyhow!("a screening link was not resolved")));
                }
            };
            let recorded = Recorded { at, by: Actor { user: user.id, role: user.role }, event };
            if let Err(r) = session::decide(&session, &ctx, &recorded) {
                return Err(state.sessions.refused(keep, session, seq == first, r));
            }
            let known = session.alerts().len();
            let administration_ended = |s: &Session| s.administration().is_some_and(|a| a.ended_at.is_some());
            let ended_before = administration_ended(&session);
            session = session::apply(session, &ctx, &recorded);
            new_alerts.extend(session.alerts().iter().skip(known).cloned());
            state_now = session.state_now(&ctx).as_str();
            let payload = serde_json::to_string(&recorded).map_err(|e| AppError::Internal(e.into()))?;
            unwritten.push(store::NewEvent {
                session: id,
                seq,
                kind: recorded.event.kind(),
                payload,
                by: user.id,
                at: recorded.at,
                state: state_now,
                dose_started_at: session.dose_times().map(|d| d.started_at),
            });
            seq += 1;
            // The live boards see the change: one bump of the floor counter per batch, after the
            // sessions' rows are locked.
            state.floor_watch.bump_in(batch, user.clinic);
            // The controlled-substance ledger: the draw with the administration, and what was
            // given once it has ended (both in this write, so a refusal writes neither).
            // Whatever is written beside the log follows the events so far (`write_events` first;
            // it writes nothing when they are already written).
            let mut stock = Vec::new();
            if let SessionEvent::AdministrationStarted(a) = &recorded.event {
                write_events(batch, &mut unwritten).await?;
                let drawn = drawn.flatten();
                stock.extend(
                    super::ledger::dosing::draw(state, batch.tx().await?, user, row, a, drawn, recorded.at).await?,
                );
            }
            // Only the event that ends the administration settles its draw: later readings do not
            // touch the ledger (nor wait for its lock).
            if !ended_before && administration_ended(&session) {
                write_events(batch, &mut unwritten).await?;
                stock.extend(
                    super::ledger::dosing::settle(state, batch.tx().await?, user, row, &session, &protocol).await?,
                );
            }
            if !stock.is_empty() {
                batch.audit(super::ledger::recorded_event(user, row.location_id, &stock));
            }
            // The discharge completes the dosing appointment (a course counts it as done).
            if matches!(recorded.event, SessionEvent::Discharged { .. }) {
                write_events(batch, &mut unwritten).await?;
                kapstone_store::scheduling::change_status(
                    batch.tx().await?,
                    user.clinic,
                    row.appointment_id,
                    "completed",
                    None,
                    user.id,
                )
                .await?;
                let discharged = Event::SessionDischarged {
                    session_id: id,
                    patient_id: row.patient_id,
                    appointment_id: row.appointment_id,
                };
                super::integrations::enqueue(batch.tx().await?, user.clinic, discharged).await?;
            }
            let mut e = user.event(AuditAction::SessionRecorded, "dosing_session", Outcome::Success);
            e.entity_id = Some(id.to_string());
            e.patient_id = Some(PatientId::from_uuid(row.patient_id));
            // Overrides are audited with the prescriber (the actor) and their reason.
            e.reason = Some(match &recorded.event {
                SessionEvent::DoseOrdered(o) => match &o.override_reason {
                    Some(r) => format!("dose_ordered (override: {r})"),
                    None => "dose_ordered".to_owned(),
                },
                SessionEvent::HoldReleased { reason } => format!("hold_released: {reason}"),
                SessionEvent::PreDoseBpConfirmed { reason } => format!("pre_dose_bp_confirmed: {reason}"),
                SessionEvent::InfusionResumed { reason } => format!("infusion_resumed: {reason}"),
                other => other.kind().to_owned(),
            });
            batch.audit(e);
        }
        // Most writes (a reading, a score, a note) are these events and nothing else: the batch
        // writes them with its other sessions' (no statement of this job's own).
        batch.defer_session_events(unwritten);
        state.sessions.stage(id, batch, session);
        Ok(RecordedOutcome { new_alerts, state: state_now })
    }
}

/// Writes the events decided so far now (one insert, one rewrite of the session's projection):
/// what the job writes next follows them. Nothing when none is waiting.
async fn write_events(batch: &mut Batch, unwritten: &mut Vec<store::NewEvent<'static>>) -> Result<(), AppError> {
    if unwritten.is_empty() {
        return Ok(());
    }
    batch.append_session_events(unwritten).await?;
    unwritten.clear();
    Ok(())
}

/// Dosing sessions folded up to their last committed event, so that a write decides its event
/// against the session's state instead of reading and replaying the whole log each time (the cost
/// of that grew with the session: every reading of a long monitoring period replayed all the
/// earlier ones).
///
/// A session is kept with the number of events folded into it. The log is append-only, so a
/// session folded from its first `n` events is the same whoever folded it; a write takes it only
/// when `n` is the count it reads under the session's lock, and otherwise replays the log (another
/// server process wrote in between, or this one restarted). A write's result is staged with its
/// batch and kept only once that batch is committed; a later write of the same batch takes the
/// staged one, since it sees the uncommitted events too.
#[derive(Clone, Default)]
pub struct SessionCache(Arc<Mutex<CacheInner>>);

/// Where a write took its session from.
#[derive(Clone, Copy)]
struct Keep {
    id: Uuid,
    batch: u64,
    /// The committed session (else staged or replayed in this batch: it may hold the batch's
    /// uncommitted events, and is kept only with the batch).
    committed: bool,
}

#[derive(Default)]
struct CacheInner {
    committed: HashMap<Uuid, Session>,
    /// Written by a batch not committed yet, with the batch's number.
    staged: HashMap<Uuid, (u64, Session)>,
    /// Writes that found no folded session and replayed the log.
    replays: u64,
    /// Sessions' rows as first read, with their clinic ([`SessionCache::row`]).
    rows: HashMap<Uuid, (ClinicId, SessionRow)>,
}

impl SessionCache {
    /// Sessions kept at most (the floor's sessions of a day are a few dozen).
    const MAX: usize = 2048;

    fn inner(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the session `id` folded from exactly `count` events, as batch `batch` sees it; `true`
    /// when it is the committed one (else staged by an earlier write of this batch).
    fn take(&self, id: Uuid, count: i32, batch: u64) -> Option<(Session, bool)> {
        let count = usize::try_from(count).ok()?;
        let mut c = self.inner();
        if let Some((b, s)) = c.staged.remove(&id)
            && b == batch
            && s.event_count() == count
        {
            return Some((s, false));
        }
        c.committed.remove(&id).filter(|s| s.event_count() == count).map(|s| (s, true))
    }

    /// Stages what a write made of the session; kept once its batch is committed.
    fn stage(&self, id: Uuid, batch: &mut Batch, session: Session) {
        let number = batch.number();
        {
            let mut c = self.inner();
            if c.staged.len() >= Self::MAX {
                c.staged.clear();
            }
            c.staged.insert(id, (number, session));
        }
        let cache = self.clone();
        batch.after_commit(move || cache.promote(id, number));
    }

    fn promote(&self, id: Uuid, batch: u64) {
        let mut c = self.inner();
        if let Some((b, s)) = c.staged.remove(&id) {
            if b != batch {
                return;
            }
            if c.committed.len() >= Self::MAX
                && let Some(old) = c.committed.keys().next().copied()
            {
                c.committed.remove(&old);
            }
            c.committed.insert(id, s);
        }
    }

    /// A refused write: the session it took is put back where it was when nothing of the write
    /// was folded into it yet, so the next write need not replay the log. Returns the refusal.
    fn refused(&self, keep: Keep, session: Session, unchanged: bool, r: Refusal) -> AppError {
        if unchanged {
            let mut c = self.inner();
            if keep.committed {
                c.committed.insert(keep.id, session);
            } else {
                c.staged.insert(keep.id, (keep.batch, session));
            }
        }
        refused(r)
    }

    /// The session `id` of `clinic`, for what never changes in its row: its patient, appointment,
    /// place and protocol version (the projection's state and counts are decided under the lock
    /// from the log, never from this row). Read once per process: a reading then costs one
    /// statement less before the writer (the bearer token's check is the only one left).
    pub async fn row(&self, state: &AppState, clinic: ClinicId, id: Uuid) -> Result<SessionRow, AppError> {
        if let Some((_, row)) = self.inner().rows.get(&id).filter(|(c, _)| *c == clinic) {
            return Ok(row.clone());
        }
        let row = store::session(&state.db, clinic, id).await?.ok_or(AppError::NotFound)?;
        let mut c = self.inner();
        if c.rows.len() >= Self::MAX {
            c.rows.clear();
        }
        c.rows.insert(id, (clinic, row.clone()));
        Ok(row)
    }

    fn count_replay(&self) {
        self.inner().replays += 1;
    }

    /// How many writes replayed a session's log (its cost grows with the session): each is a miss
    /// of this cache.
    pub fn replays(&self) -> u64 {
        self.inner().replays
    }

    /// Forgets every session (a test that rewrites a log behind the server's back).
    pub fn clear(&self) {
        let mut c = self.inner();
        c.committed.clear();
        c.staged.clear();
        c.rows.clear();
    }
}

pub fn ts(t: Timestamp) -> UtcTs {
    from_jiff(t)
}
