//! Scheduling: appointment types and their length, working hours in a location's time zone,
//! the slot grid that lets the database refuse double bookings, free-slot search, and the
//! clinical gates on booking a dosing session (KAP-SPEC 2.1 stages 3–5, 4.4).
//!
//! Time is kept as instants (`jiff::Timestamp`); working hours are civil times in the location's
//! IANA zone, converted per date, so a 09:00 start is 09:00 on both sides of a daylight-saving
//! change. The zone itself is looked up by the shell and passed in: this module does no I/O.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::Role;
use crate::decision::Route;

/// Bookings start and end on this grid. The database stores one claim per resource per slot,
/// so two bookings of one person, chair or patient cannot overlap even when they race.
pub const SLOT_MINUTES: i64 = 5;

/// A scheduling input that breaks a rule; `field` names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> ScheduleError {
    ScheduleError { field, message: message.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentKind {
    Consultation,
    Preparation,
    Dosing,
    Integration,
    FollowUp,
    CourseReview,
}

impl AppointmentKind {
    pub const ALL: [AppointmentKind; 6] = [
        AppointmentKind::Consultation,
        AppointmentKind::Preparation,
        AppointmentKind::Dosing,
        AppointmentKind::Integration,
        AppointmentKind::FollowUp,
        AppointmentKind::CourseReview,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentKind::Consultation => "consultation",
            AppointmentKind::Preparation => "preparation",
            AppointmentKind::Dosing => "dosing",
            AppointmentKind::Integration => "integration",
            AppointmentKind::FollowUp => "follow_up",
            AppointmentKind::CourseReview => "course_review",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How long an appointment of a type lasts. A dosing session is check-in + the protocol's
/// minimum observation + a recovery buffer (each configurable per clinic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum Length {
    Fixed { minutes: u16 },
    Dosing { check_in_minutes: u16, observation_minutes: u16, recovery_minutes: u16 },
}

impl Length {
    pub fn minutes(self) -> i64 {
        match self {
            Length::Fixed { minutes } => i64::from(minutes),
            Length::Dosing { check_in_minutes, observation_minutes, recovery_minutes } => {
                i64::from(check_in_minutes) + i64::from(observation_minutes) + i64::from(recovery_minutes)
            }
        }
    }

    /// On the slot grid, at least one slot, at most 8 hours.
    pub fn check(self) -> Result<Self, ScheduleError> {
        let m = self.minutes();
        if m <= 0 || m > 8 * 60 || m % SLOT_MINUTES != 0 {
            return Err(err("length", format!("a length is 5 to 480 minutes in steps of {SLOT_MINUTES}")));
        }
        Ok(self)
    }
}

/// One staff member whose role is any of these (a dosing session needs "a prescriber or nurse").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StaffNeed(pub Vec<Role>);

/// An appointment type as the clinic configured it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AppointmentType {
    pub code: String,
    pub name: String,
    pub kind: AppointmentKind,
    /// For a dosing type: the route it gives (its gate reads the eligibility decision).
    pub route: Option<Route>,
    pub length: Length,
    pub staff: Vec<StaffNeed>,
    pub needs_room: bool,
    pub telehealth: bool,
}

impl AppointmentType {
    pub fn check(&self) -> Result<(), ScheduleError> {
        self.length.check()?;
        if (self.kind == AppointmentKind::Dosing) != self.route.is_some() {
            return Err(err("route", "a dosing type names its route; other types name none"));
        }
        if self.kind == AppointmentKind::Dosing && (self.telehealth || !self.needs_room) {
            return Err(err("needs_room", "a dosing session is in person, in a chair"));
        }
        if self.staff.iter().any(|n| n.0.is_empty() || n.0.contains(&Role::Patient) || n.0.contains(&Role::Admin)) {
            return Err(err("staff", "each staff need names one or more clinical roles"));
        }
        Ok(())
    }

    /// Assigns the booked staff to the type's needs (each person fills at most one need).
    /// Returns the need that no one on the booking can fill.
    pub fn check_staff(&self, booked: &[Role]) -> Result<(), ScheduleError> {
        fn fill(needs: &[StaffNeed], free: &mut Vec<bool>, booked: &[Role]) -> bool {
            let Some((first, rest)) = needs.split_first() else { return true };
            for i in 0..booked.len() {
                if free[i] && first.0.contains(&booked[i]) {
                    free[i] = false;
                    if fill(rest, free, booked) {
                        return true;
                    }
                    free[i] = true;
                }
            }
            false
        }
        if fill(&self.staff, &mut vec![true; booked.len()], booked) {
            return Ok(());
        }
        let missing = self
            .staff
            .iter()
            .find(|n| !booked.iter().any(|r| n.0.contains(r)))
            .or(self.staff.first())
            .map(|n| n.0.iter().map(|r| r.label()).collect::<Vec<_>>().join(" or "))
            .unwrap_or_default();
        Err(err("staff_ids", format!("this appointment needs a {missing}")))
    }
}

/// A booked interval `[start, end)` on the slot grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Block {
    pub fn new(start: Timestamp, minutes: i64) -> Result<Self, ScheduleError> {
        if start.as_second() % (SLOT_MINUTES * 60) != 0 || start.subsec_nanosecond() != 0 {
            return Err(err("start", format!("start on a {SLOT_MINUTES}-minute boundary (like 09:00 or 09:05)")));
        }
        let end = start.checked_add(minutes.minutes()).map_err(|_| err("start", "the time is out of range"))?;
        if end <= start {
            return Err(err("end", "the end must be after the start"));
        }
        Ok(Self { start, end })
    }

    /// The slot numbers this block covers (slot n starts at n × 5 minutes after the epoch).
    pub fn slots(self) -> Vec<i64> {
        let size = SLOT_MINUTES * 60;
        (self.start.as_second() / size..self.end.as_second().div_euclid(size)).collect()
    }

    pub fn overlaps(self, other: Block) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// A weekly working window in civil time, e.g. Monday 08:00–17:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyHours {
    pub weekday: Weekday,
    pub start: Time,
    pub end: Time,
}

/// A one-off change on a date: leave (not working in the window) or extra hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoursException {
    pub date: Date,
    pub leave: bool,
    pub start: Time,
    pub end: Time,
}

/// A civil date and time in `tz` as an instant. In a gap (spring forward) the later instant is
/// used, in a fold (fall back) the earlier: jiff's "compatible" rule, as calendars do.
pub fn instant(tz: &TimeZone, date: Date, time: Time) -> Result<Timestamp, ScheduleError> {
    tz.to_timestamp(date.to_datetime(time))
        .map_err(|_| err("start", "the time does not exist in the clinic's time zone"))
}

/// The end of a window: `Time::MAX` stands for 24:00, the next day's midnight, so a session may
/// end exactly when the working day does.
fn window_end(tz: &TimeZone, date: Date, end: Time) -> Result<Timestamp, ScheduleError> {
    if end == Time::MAX {
        let next = date.tomorrow().map_err(|_| err("start", "the date is out of range"))?;
        return instant(tz, next, Time::midnight());
    }
    instant(tz, date, end)
}

/// The working intervals of one person on `date` in `tz`: weekly hours, plus extra hours, minus
/// leave.
pub fn working_intervals(
    tz: &TimeZone,
    date: Date,
    weekly: &[WeeklyHours],
    exceptions: &[HoursException],
) -> Result<Vec<Block>, ScheduleError> {
    let mut windows: Vec<(Time, Time)> =
        weekly.iter().filter(|w| w.weekday == date.weekday()).map(|w| (w.start, w.end)).collect();
    windows.extend(exceptions.iter().filter(|e| e.date == date && !e.leave).map(|e| (e.start, e.end)));
    let mut out = Vec::new();
    for (s, e) in windows {
        let (start, end) = (instant(tz, date, s)?, window_end(tz, date, e)?);
        if start < end {
            out.push(Block { start, end });
        }
    }
    // Leave cuts the windows.
    for leave in exceptions.iter().filter(|e| e.date == date && e.leave) {
        let cut = Block { start: instant(tz, date, leave.start)?, end: window_end(tz, date, leave.end)? };
        out = out
            .into_iter()
            .flat_map(|b| {
                if !b.overlaps(cut) {
                    return vec![b];
                }
                let mut parts = Vec::new();
                if b.start < cut.start {
                    parts.push(Block { start: b.start, end: cut.start });
                }
                if cut.end < b.end {
                    parts.push(Block { start: cut.end, end: b.end });
                }
                parts
            })
            .collect();
    }
    Ok(out)
}

/// Whether `block` lies inside one working interval of the person on its start date.
pub fn is_working(
    tz: &TimeZone,
    block: Block,
    weekly: &[WeeklyHours],
    exceptions: &[HoursException],
) -> Result<bool, ScheduleError> {
    let date = block.start.to_zoned(tz.clone()).date();
    Ok(working_intervals(tz, date, weekly, exceptions)?.iter().any(|w| w.start <= block.start && block.end <= w.end))
}

/// What the dosing gate reads about the patient (KAP-SPEC 2.1 stages 3–4, GATE-03, GATE-04).
#[derive(Debug, Clone, Default)]
pub struct DosingReadiness {
    /// `None`: no signed decision; `Some(routes)`: the eligible decision's routes (empty if
    /// the decision is "not eligible").
    pub allowed_routes: Option<Vec<Route>>,
    /// When the general consent stops being valid (`None`: not valid now).
    pub consent_valid_until: Option<Timestamp>,
    /// When the Spravato REMS acknowledgement stops being valid.
    pub rems_acknowledgement_valid_until: Option<Timestamp>,
    /// Spravato REMS patient enrolment recorded (GATE-03).
    pub rems_enrolled: bool,
    /// The eligible decision no longer holds on the current record (it needs an amendment).
    pub decision_outdated: bool,
    /// The patient's pathway is on hold, withdrawn or completed.
    pub pathway_blocked: Option<&'static str>,
}

/// The gate a dosing booking failed, named for the person booking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DosingGate {
    #[error("no signed eligibility decision")]
    NoDecision,
    #[error("the patient's pathway is {0}: resume or reopen it first")]
    PathwayBlocked(&'static str),
    #[error(
        "the signed eligibility decision no longer holds on the current record: a prescriber must review and amend it"
    )]
    DecisionOutdated,
    #[error("the signed eligibility decision does not allow {0}")]
    RouteNotAllowed(&'static str),
    #[error("no valid informed consent (GATE-04)")]
    NoConsent,
    #[error("no valid Spravato REMS acknowledgement")]
    NoRemsAcknowledgement,
    #[error("Spravato REMS enrolment is not recorded (GATE-03)")]
    NotRemsEnrolled,
}

impl DosingGate {
    pub fn code(&self) -> &'static str {
        match self {
            DosingGate::NoDecision | DosingGate::DecisionOutdated => "eligibility_decision",
            DosingGate::PathwayBlocked(_) => "pathway",
            DosingGate::RouteNotAllowed(_) => "route_not_allowed",
            DosingGate::NoConsent => "consent",
            DosingGate::NoRemsAcknowledgement => "rems_acknowledgement",
            DosingGate::NotRemsEnrolled => "rems_enrollment",
        }
    }
}

/// Checks a dosing booking for `route` at `block`; on success, returns warnings (a consent that
/// expires before the session).
pub fn dosing_gate(r: &DosingReadiness, route: Route, block: Block) -> Result<Vec<String>, DosingGate> {
    if let Some(state) = r.pathway_blocked {
        return Err(DosingGate::PathwayBlocked(state));
    }
    let routes = r.allowed_routes.as_ref().ok_or(DosingGate::NoDecision)?;
    if r.decision_outdated {
        return Err(DosingGate::DecisionOutdated);
    }
    if !routes.contains(&route) {
        return Err(DosingGate::RouteNotAllowed(route.label()));
    }
    let consent = r.consent_valid_until.ok_or(DosingGate::NoConsent)?;
    let mut warnings = Vec::new();
    if consent <= block.start {
        warnings.push("the informed consent expires before this session: renew it first".to_owned());
    }
    if route == Route::SpravatoIntranasal {
        let ack = r.rems_acknowledgement_valid_until.ok_or(DosingGate::NoRemsAcknowledgement)?;
        if ack <= block.start {
            warnings.push("the Spravato REMS acknowledgement expires before this session".to_owned());
        }
        if !r.rems_enrolled {
            return Err(DosingGate::NotRemsEnrolled);
        }
    }
    Ok(warnings)
}

/// A person who could staff an appointment, with when they work.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The key of their booking claims (`user:<id>`).
    pub key: String,
    pub role: Role,
    pub weekly: Vec<WeeklyHours>,
    pub exceptions: Vec<HoursException>,
}

/// What the slot search reads: the type, who could staff it, the rooms of the location, the
/// patient, and every claim already held in the searched range.
#[derive(Debug, Clone)]
pub struct SlotSearch<'a> {
    pub tz: &'a TimeZone,
    pub kind: &'a AppointmentType,
    pub candidates: &'a [Candidate],
    /// Claim keys of the location's active rooms (`room:<id>`).
    pub rooms: &'a [String],
    pub patient: &'a str,
    pub busy: &'a std::collections::HashSet<(String, i64)>,
    pub from: Date,
    pub to: Date,
    /// Starts are tried every `step_minutes` (a multiple of the slot size).
    pub step_minutes: i64,
    /// Nothing before this instant (now).
    pub not_before: Timestamp,
    pub limit: usize,
}

/// A free slot with the people (candidate indexes) and room that would take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub block: Block,
    pub staff: Vec<usize>,
    pub room: Option<usize>,
}

fn free(busy: &std::collections::HashSet<(String, i64)>, key: &str, slots: &[i64]) -> bool {
    slots.iter().all(|s| !busy.contains(&(key.to_owned(), *s)))
}

/// Every start in `[from, to]` (local dates) where each staff need has a distinct free, working
/// person, a room is free if the type needs one, and the patient is free; earliest first.
pub fn find_slots(q: &SlotSearch<'_>) -> Result<Vec<Proposal>, ScheduleError> {
    if q.to < q.from {
        return Err(err("to", "the end of the range is before its start"));
    }
    if q.to.since(q.from).map_err(|_| err("to", "range out of bounds"))?.get_days() > 62 {
        return Err(err("to", "search at most 62 days at a time"));
    }
    let step = q.step_minutes.max(SLOT_MINUTES) / SLOT_MINUTES * SLOT_MINUTES;
    let minutes = q.kind.length.minutes();
    let mut out = Vec::new();
    let mut day = q.from;
    while day <= q.to && out.len() < q.limit {
        // Each person's working intervals that day.
        let hours: Vec<Vec<Block>> = q
            .candidates
            .iter()
            .map(|c| working_intervals(q.tz, day, &c.weekly, &c.exceptions))
            .collect::<Result<_, _>>()?;
        let day_start = instant(q.tz, day, Time::midnight())?;
        let next = day.tomorrow().map_err(|_| err("to", "date out of range"))?;
        let day_end = instant(q.tz, next, Time::midnight())?;
        let mut start = day_start;
        while start < day_end && out.len() < q.limit {
            let block = Block::new(start, minutes)?;
            start = start.checked_add(step.minutes()).map_err(|_| err("to", "date out of range"))?;
            if block.start < q.not_before {
                continue;
            }
            let slots = block.slots();
            if !free(q.busy, q.patient, &slots) {
                continue;
            }
            let available: Vec<usize> = (0..q.candidates.len())
                .filter(|&i| hours[i].iter().any(|w| w.start <= block.start && block.end <= w.end))
                .filter(|&i| free(q.busy, &q.candidates[i].key, &slots))
                .collect();
            let Some(staff) = assign(&q.kind.staff, q.candidates, &available) else { continue };
            let room = if q.kind.needs_room {
                match q.rooms.iter().position(|r| free(q.busy, r, &slots)) {
                    Some(r) => Some(r),
                    None => continue,
                }
            } else {
                None
            };
            out.push(Proposal { block, staff, room });
        }
        day = next;
    }
    Ok(out)
}

/// Picks distinct candidates for each need (first fit with backtracking).
fn assign(needs: &[StaffNeed], candidates: &[Candidate], available: &[usize]) -> Option<Vec<usize>> {
    fn go(needs: &[StaffNeed], c: &[Candidate], avail: &[usize], taken: &mut Vec<usize>) -> bool {
        let Some((first, rest)) = needs.split_first() else { return true };
        for &i in avail {
            if !taken.contains(&i) && first.0.contains(&c[i].role) {
                taken.push(i);
                if go(rest, c, avail, taken) {
                    return true;
                }
                taken.pop();
            }
        }
        false
    }
    let mut taken = Vec::new();
    go(needs, candidates, available, &mut taken).then_some(taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn la() -> TimeZone {
        TimeZone::get("America/Los_Angeles").unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn dosing_length_is_check_in_plus_observation_plus_recovery() {
        let l = Length::Dosing { check_in_minutes: 15, observation_minutes: 120, recovery_minutes: 30 };
        assert_eq!(l.check().unwrap().minutes(), 165);
        assert!(Length::Fixed { minutes: 7 }.check().is_err());
        assert!(Length::Fixed { minutes: 0 }.check().is_err());
    }

    #[test]
    fn blocks_sit_on_the_slot_grid() {
        let b = Block::new(ts("2026-12-01T17:00:00Z"), 30).unwrap();
        assert_eq!(b.slots().len(), 6);
        assert!(Block::new(ts("2026-12-01T17:02:00Z"), 30).is_err());
        let later = Block::new(ts("2026-12-01T17:30:00Z"), 30).unwrap();
        assert!(!b.overlaps(later), "back to back is not a clash");
        assert!(b.slots().iter().all(|s| !later.slots().contains(s)));
        assert!(b.overlaps(Block::new(ts("2026-12-01T17:25:00Z"), 30).unwrap()));
    }

    #[test]
    fn working_hours_follow_the_local_clock_across_daylight_saving() {
        let weekly = [WeeklyHours { weekday: Weekday::Monday, start: time(9, 0, 0, 0), end: time(17, 0, 0, 0) }];
        // 2026-03-09 (Monday after the spring change) 09:00 PDT = 16:00Z; 2026-03-02 09:00 PST = 17:00Z.
        let before = working_intervals(&la(), date(2026, 3, 2), &weekly, &[]).unwrap();
        let after = working_intervals(&la(), date(2026, 3, 9), &weekly, &[]).unwrap();
        assert_eq!(before[0].start, ts("2026-03-02T17:00:00Z"));
        assert_eq!(after[0].start, ts("2026-03-09T16:00:00Z"));
        let at_nine = Block::new(ts("2026-03-09T16:00:00Z"), 60).unwrap();
        assert!(is_working(&la(), at_nine, &weekly, &[]).unwrap());
        let at_eight = Block::new(ts("2026-03-09T15:00:00Z"), 60).unwrap();
        assert!(!is_working(&la(), at_eight, &weekly, &[]).unwrap());
    }

    #[test]
    fn a_session_across_the_spring_change_lasts_its_real_length() {
        // 01:30 PST on 2026-03-08 plus 120 minutes is 04:30 PDT: two real hours.
        let start = instant(&la(), date(2026, 3, 8), time(1, 30, 0, 0)).unwrap();
        let b = Block::new(start, 120).unwrap();
        let end = b.end.to_zoned(la());
        assert_eq!((end.hour(), end.minute()), (4, 30));
        assert_eq!(b.slots().len(), 24);
        // 02:30 does not exist that day: it is read as 03:30 PDT.
        let gap = instant(&la(), date(2026, 3, 8), time(2, 30, 0, 0)).unwrap();
        assert_eq!(gap, ts("2026-03-08T10:30:00Z"));
    }

    #[test]
    fn a_day_that_ends_at_24_00_holds_a_session_ending_at_midnight() {
        let weekly = [WeeklyHours { weekday: Weekday::Sunday, start: time(0, 0, 0, 0), end: Time::MAX }];
        let day = date(2027, 3, 14);
        let last = Block::new(instant(&la(), day, time(22, 0, 0, 0)).unwrap(), 120).unwrap();
        assert!(is_working(&la(), last, &weekly, &[]).unwrap());
        let over = Block::new(instant(&la(), day, time(22, 5, 0, 0)).unwrap(), 120).unwrap();
        assert!(!is_working(&la(), over, &weekly, &[]).unwrap());
    }

    #[test]
    fn leave_and_extra_hours_change_a_day() {
        let weekly = [WeeklyHours { weekday: Weekday::Tuesday, start: time(9, 0, 0, 0), end: time(17, 0, 0, 0) }];
        let day = date(2026, 12, 1);
        let leave = HoursException { date: day, leave: true, start: time(12, 0, 0, 0), end: time(14, 0, 0, 0) };
        let extra = HoursException { date: day, leave: false, start: time(18, 0, 0, 0), end: time(20, 0, 0, 0) };
        let w = working_intervals(&la(), day, &weekly, &[leave, extra]).unwrap();
        assert_eq!(w.len(), 3);
        let lunch = Block::new(instant(&la(), day, time(12, 30, 0, 0)).unwrap(), 30).unwrap();
        assert!(!is_working(&la(), lunch, &weekly, &[leave]).unwrap());
        let evening = Block::new(instant(&la(), day, time(18, 0, 0, 0)).unwrap(), 60).unwrap();
        assert!(is_working(&la(), evening, &weekly, &[extra]).unwrap());
        assert!(!is_working(&la(), evening, &weekly, &[]).unwrap());
    }

    fn dosing_type() -> AppointmentType {
        AppointmentType {
            code: "dosing-sl".into(),
            name: "Dosing: lozenge".into(),
            kind: AppointmentKind::Dosing,
            route: Some(Route::SublingualLozenge),
            length: Length::Dosing { check_in_minutes: 15, observation_minutes: 120, recovery_minutes: 30 },
            staff: vec![StaffNeed(vec![Role::Prescriber, Role::Nurse]), StaffNeed(vec![Role::Therapist])],
            needs_room: true,
            telehealth: false,
        }
    }

    #[test]
    fn staff_needs_are_filled_by_distinct_people() {
        let t = dosing_type();
        t.check().unwrap();
        assert!(t.check_staff(&[Role::Nurse, Role::Therapist]).is_ok());
        assert!(t.check_staff(&[Role::Therapist, Role::Prescriber]).is_ok());
        let e = t.check_staff(&[Role::Nurse]).unwrap_err();
        assert_eq!(e.field, "staff_ids");
        assert!(e.message.contains("Therapist"), "{}", e.message);
        assert!(t.check_staff(&[Role::Therapist, Role::Therapist]).is_err());
        let mut bad = dosing_type();
        bad.telehealth = true;
        assert!(bad.check().is_err());
    }

    #[test]
    fn free_slots_need_every_role_a_chair_and_the_patient() {
        let t = dosing_type();
        let monday = |role| Candidate {
            key: format!("user:{role:?}"),
            role,
            weekly: vec![WeeklyHours { weekday: Weekday::Monday, start: time(9, 0, 0, 0), end: time(13, 0, 0, 0) }],
            exceptions: vec![],
        };
        let candidates = [monday(Role::Nurse), monday(Role::Therapist)];
        let rooms = ["room:1".to_owned()];
        let mut busy = std::collections::HashSet::new();
        let search = |busy: &std::collections::HashSet<(String, i64)>| {
            find_slots(&SlotSearch {
                tz: &la(),
                kind: &t,
                candidates: &candidates,
                rooms: &rooms,
                patient: "patient:1",
                busy,
                from: date(2026, 12, 7),
                to: date(2026, 12, 8),
                step_minutes: 15,
                not_before: ts("2026-01-01T00:00:00Z"),
                limit: 100,
            })
            .unwrap()
        };
        // 09:00–13:00 holds a 165-minute session starting 09:00 .. 10:15 (every 15 min): 6 starts.
        let all = search(&busy);
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].block.start, ts("2026-12-07T17:00:00Z"));
        assert_eq!(all[0].staff, vec![0, 1]);
        // The chair busy at 11:00 local leaves no start at all.
        let chair_busy = Block::new(ts("2026-12-07T19:00:00Z"), 5).unwrap().slots()[0];
        busy.insert(("room:1".to_owned(), chair_busy));
        assert!(search(&busy).is_empty());
        busy.clear();
        // The therapist busy at 12:30 local leaves only the starts that end by then.
        busy.insert(("user:Therapist".to_owned(), Block::new(ts("2026-12-07T20:30:00Z"), 5).unwrap().slots()[0]));
        assert_eq!(search(&busy).len(), 4, "09:00, 09:15, 09:30 and 09:45 end by 12:30");
    }

    #[test]
    fn the_dosing_gate_names_what_is_missing() {
        let block = Block::new(ts("2026-12-10T17:00:00Z"), 165).unwrap();
        let mut r = DosingReadiness { pathway_blocked: Some("on hold"), ..DosingReadiness::default() };
        assert_eq!(dosing_gate(&r, Route::SublingualLozenge, block), Err(DosingGate::PathwayBlocked("on hold")));
        r.pathway_blocked = None;
        assert_eq!(dosing_gate(&r, Route::SublingualLozenge, block), Err(DosingGate::NoDecision));
        r.allowed_routes = Some(vec![Route::SublingualLozenge]);
        assert_eq!(dosing_gate(&r, Route::SublingualLozenge, block), Err(DosingGate::NoConsent));
        r.decision_outdated = true;
        assert_eq!(dosing_gate(&r, Route::SublingualLozenge, block), Err(DosingGate::DecisionOutdated));
        r.decision_outdated = false;
        assert!(matches!(dosing_gate(&r, Route::IntravenousRacemic, block), Err(DosingGate::RouteNotAllowed(_))));
        r.consent_valid_until = Some(ts("2027-01-01T00:00:00Z"));
        assert_eq!(dosing_gate(&r, Route::SublingualLozenge, block), Ok(vec![]));
        r.consent_valid_until = Some(ts("2026-12-05T00:00:00Z"));
        assert_eq!(dosing_gate(&r, Route::SublingualLozenge, block).map(|w| w.len()), Ok(1), "expiring consent warns");
        r.allowed_routes = Some(vec![Route::SpravatoIntranasal]);
        r.consent_valid_until = Some(ts("2027-01-01T00:00:00Z"));
        assert_eq!(dosing_gate(&r, Route::SpravatoIntranasal, block), Err(DosingGate::NoRemsAcknowledgement));
        r.rems_acknowledgement_valid_until = Some(ts("2027-01-01T00:00:00Z"));
        assert_eq!(dosing_gate(&r, Route::SpravatoIntranasal, block), Err(DosingGate::NotRemsEnrolled));
        r.rems_enrolled = true;
        assert_eq!(dosing_gate(&r, Route::SpravatoIntranasal, block), Ok(vec![]));
    }
}
