//! Measurement-based care: which questionnaires a patient on a treatment course owes, when, and
//! which are overdue (KAP-SPEC 7.10, "Administration cadence (CONFIG-DEFAULT)").
//!
//! | Instrument | Intake | Each dosing day | Integration | End of induction | Maintenance |
//! |---|---|---|---|---|---|
//! | PHQ-9 | ✓ | ✓ (pre-dose) | — | ✓ | every 2–4 weeks |
//! | GAD-7 | ✓ | optional | — | ✓ | every 4 weeks |
//! | PCL-5 (if trauma) | ✓ | — | — | ✓ | every 4 weeks |
//! | C-SSRS | lifetime/recent at intake | since-last-visit, pre-dose | if PHQ-9 item 9 ≥ 1 | ✓ | ✓ |
//!
//! [`schedule`] turns the course's sessions and the responses on record into a list of
//! [`Requirement`]s, each with its window and a [`Status`] at `now`. It is pure: the shell reads
//! the sessions and responses, and uses the list for the staff's due and overdue lists and to
//! assign due questionnaires to the portal.
//!
//! Readings of the table, and why:
//! - **Intake** is satisfied by any response before the first dose: it is the baseline the
//!   outcomes are measured from (2.1 stage 2), so one that is missing when the first dose is given
//!   is *missed* for good, and the outcome has no baseline.
//! - **Each dosing day** ("since last visit"): a response answered after the previous dosing
//!   session ended (and after this one was booked) and before this session's dose. It is due by the
//!   session's start and missed once the dose is given.
//! - **End of induction**: a response from after the dosing session before the last induction
//!   session (so the last session's pre-dose measure counts) until the course review. It stays
//!   overdue until answered: the review needs it.
//! - **Maintenance**: at most the interval after the last response of that instrument, from the
//!   first maintenance dosing session on. The C-SSRS has a ✓ but no interval in the table; it is
//!   asked with the PHQ-9, at the PHQ-9's interval.
//! - **Integration**: a C-SSRS at an integration session when the last PHQ-9 before it had item
//!   9 ≥ 1. It stays overdue until answered, being a safety check. (A PHQ-9 with item 9 ≥ 1 also
//!   raises a safety alert wherever it is answered, spec 7.1; that flow is separate.)
//! - Cancelled, no-show and rescheduled sessions owe nothing; a course that ended owes nothing
//!   due after its end, and what was open at its end is missed.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::UtcTs;
use crate::course::{Phase, SessionKind};
use crate::instruments::Instrument;

/// The clinic's cadence (KAP-SPEC 7.10, CONFIG-DEFAULT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MeasurementSettings {
    /// PHQ-9 (and the C-SSRS with it) in maintenance: "every 2–4 weeks". The default is the
    /// longest interval of that range, the one GAD-7 and PCL-5 use ("every 4 weeks"), so the three
    /// fall due together; dosing sessions, each with its pre-dose PHQ-9, usually come more often.
    pub phq9_maintenance_every_weeks: u8,
    /// GAD-7 in maintenance: "every 4 weeks".
    pub gad7_maintenance_every_weeks: u8,
    /// PCL-5 in maintenance: "every 4 weeks".
    pub pcl5_maintenance_every_weeks: u8,
    /// GAD-7 on each dosing day: "optional" in 7.10, so off unless the clinic asks for it.
    pub gad7_each_dosing_day: bool,
    /// How many days before an interval measure falls due it is sent to the portal. Kapstone's
    /// default (not from the spec): enough for a patient who opens the portal twice a week.
    pub notice_days: u8,
}

impl Default for MeasurementSettings {
    fn default() -> Self {
        Self {
            phq9_maintenance_every_weeks: 4,
            gad7_maintenance_every_weeks: 4,
            pcl5_maintenance_every_weeks: 4,
            gad7_each_dosing_day: false,
            notice_days: 3,
        }
    }
}

/// A setting out of range; `field` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    pub field: &'static str,
    pub message: &'static str,
}

impl MeasurementSettings {
    pub fn check(&self) -> Result<(), SettingsError> {
        let e = |field, message| Err(SettingsError { field, message });
        if !(2..=4).contains(&self.phq9_maintenance_every_weeks) {
            return e("phq9_maintenance_every_weeks", "every 2 to 4 weeks (KAP-SPEC 7.10)");
        }
        if !(1..=12).contains(&self.gad7_maintenance_every_weeks) {
            return e("gad7_maintenance_every_weeks", "every 1 to 12 weeks");
        }
        if !(1..=12).contains(&self.pcl5_maintenance_every_weeks) {
            return e("pcl5_maintenance_every_weeks", "every 1 to 12 weeks");
        }
        if self.notice_days > 14 {
            return e("notice_days", "0 to 14 days");
        }
        Ok(())
    }
}

/// Which instruments this patient is measured with besides the PHQ-9 and the C-SSRS. 7.10 lists
/// the GAD-7 for every patient and the PCL-5 "if trauma"; the clinician decides from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Indications {
    pub gad7: bool,
    pub pcl5: bool,
}

impl Indications {
    /// The table's defaults: GAD-7 for everyone, PCL-5 when a trauma is on record.
    pub fn from_record(trauma_on_record: bool) -> Self {
        Self { gad7: true, pcl5: trauma_on_record }
    }
}

/// Whether a session took place or is still to come. Cancelled, no-show and rescheduled
/// appointments are `Missed` and owe nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Attendance {
    Booked,
    Completed,
    Missed,
}

/// A session of the course, as booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CourseSession {
    pub id: Uuid,
    /// Dosing or integration (a course review owes no questionnaire of its own).
    pub kind: SessionKind,
    pub phase: Phase,
    pub start: UtcTs,
    pub end: UtcTs,
    pub booked_at: UtcTs,
    pub attendance: Attendance,
    /// When the dose was given (a dosing session under way or done).
    pub dosed_at: Option<UtcTs>,
}

/// A scored response on record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub id: Uuid,
    pub instrument: Instrument,
    pub at: UtcTs,
    /// PHQ-9 item 9 (thoughts of being better off dead or of self-harm).
    pub phq9_item9: Option<u8>,
}

/// The course whose measures are scheduled.
#[derive(Debug, Clone, Copy)]
pub struct CourseFacts<'a> {
    pub sessions: &'a [CourseSession],
    /// When the end-of-induction review is due (end of that day in the clinic's zone).
    pub review_due: Option<UtcTs>,
    /// When the course stopped or completed; nothing is owed after it.
    pub ended_at: Option<UtcTs>,
    pub indications: Indications,
}

/// Why a measure is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "occasion")]
pub enum Occasion {
    Intake,
    PreDose {
        session: Uuid,
    },
    EndOfInduction,
    Maintenance,
    /// C-SSRS because the PHQ-9 before this integration session had item 9 ≥ 1.
    Integration {
        session: Uuid,
        phq9: Uuid,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    /// Answered: the response that counts.
    Done { response: Uuid, at: UtcTs },
    /// Its window has not opened.
    Upcoming,
    /// Open and not yet due.
    Due,
    /// Past its due time and still answerable.
    Overdue,
    /// Its window closed unanswered.
    Missed,
}

/// One measure owed, with its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Requirement {
    pub instrument: Instrument,
    #[serde(flatten)]
    pub occasion: Occasion,
    /// A response from this time counts (`None`: any earlier response).
    pub opens_at: Option<UtcTs>,
    pub due_by: UtcTs,
    /// A response after this time no longer counts (`None`: answerable late).
    pub closes_at: Option<UtcTs>,
    #[serde(flatten)]
    pub status: Status,
}

impl Requirement {
    /// Open and unanswered: what the portal should show the patient now.
    pub fn to_answer(&self) -> bool {
        matches!(self.status, Status::Due | Status::Overdue)
    }
}

fn weeks(n: u8) -> SignedDuration {
    SignedDuration::from_hours(i64::from(n) * 7 * 24)
}

fn minus(t: UtcTs, d: SignedDuration) -> UtcTs {
    UtcTs::from_unix_micros(t.unix_micros().saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
}

fn plus(t: UtcTs, d: SignedDuration) -> UtcTs {
    UtcTs::from_unix_micros(t.unix_micros().saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
}

struct Builder<'a> {
    responses: &'a [Answered],
    ended_at: Option<UtcTs>,
    now: UtcTs,
    out: Vec<Requirement>,
}

impl Builder<'_> {
    fn push(
        &mut self,
        instrument: Instrument,
        occasion: Occasion,
        opens_at: Option<UtcTs>,
        due_by: UtcTs,
        closes_at: Option<UtcTs>,
    ) {
        if self.ended_at.is_some_and(|end| due_by > end) {
            return;
        }
        let closes_at = match (closes_at, self.ended_at) {
            (Some(c), Some(e)) => Some(c.min(e)),
            (c, e) => c.or(e),
        };
        let answer = self
            .responses
            .iter()
            .filter(|r| {
                r.instrument == instrument
                    && r.at <= self.now
                    && opens_at.is_none_or(|o| r.at >= o)
                    && closes_at.is_none_or(|c| r.at <= c)
            })
            .max_by_key(|r| r.at);
        let now = self.now;
        let status = match answer {
            Some(r) => Status::Done { response: r.id, at: r.at },
            None if opens_at.is_some_and(|o| now < o) => Status::Upcoming,
            None if now <= due_by => Status::Due,
            None if closes_at.is_some_and(|c| now > c) => Status::Missed,
            None => Status::Overdue,
        };
        self.out.push(Requirement { instrument, occasion, opens_at, due_by, closes_at, status });
    }
}

/// Everything owed on `course` at `now`, by due time.
pub fn schedule(
    course: &CourseFacts<'_>,
    responses: &[Answered],
    settings: &MeasurementSettings,
    now: UtcTs,
) -> Vec<Requirement> {
    use Instrument::{CssrsScreener as Cssrs, Gad7, Pcl5, Phq9};
    let ind = course.indications;
    let mut sessions: Vec<&CourseSession> =
        course.sessions.iter().filter(|s| s.attendance != Attendance::Missed).collect();
    sessions.sort_by_key(|s| s.start);
    let dosing: Vec<&CourseSession> = sessions.iter().copied().filter(|s| s.kind == SessionKind::Dosing).collect();
    let mut b = Builder { responses, ended_at: course.ended_at, now, out: Vec::new() };

    // Intake: the baseline set, before the first dose.
    if let Some(first) = dosing.first() {
        let close = first.dosed_at;
        for (i, wanted) in [(Phq9, true), (Gad7, ind.gad7), (Pcl5, ind.pcl5), (Cssrs, true)] {
            if wanted {
                b.push(i, Occasion::Intake, None, first.start, close);
            }
        }
    }

    // Each dosing day: since the last visit, before the dose.
    for (n, s) in dosing.iter().enumerate() {
        let previous_end = n.checked_sub(1).and_then(|p| dosing.get(p)).map(|p| p.end);
        let opens = previous_end.map_or(s.booked_at, |e| e.max(s.booked_at));
        let close = Some(s.dosed_at.unwrap_or(s.end));
        let occasion = Occasion::PreDose { session: s.id };
        b.push(Phq9, occasion, Some(opens), s.start, close);
        if ind.gad7 && settings.gad7_each_dosing_day {
            b.push(Gad7, occasion, Some(opens), s.start, close);
        }
        b.push(Cssrs, occasion, Some(opens), s.start, close);
    }

    // End of induction: from after the session before the last induction session.
    let induction: Vec<&&CourseSession> = dosing.iter().filter(|s| s.phase == Phase::Induction).collect();
    if let Some(last) = induction.last() {
        let before_last = dosing.iter().rev().find(|s| s.start < last.start);
        let opens = before_last.map_or(last.dosed_at.unwrap_or(last.start), |p| p.end);
        let due = course.review_due.unwrap_or(last.end).max(last.end);
        for (i, wanted) in [(Phq9, true), (Gad7, ind.gad7), (Pcl5, ind.pcl5), (Cssrs, true)] {
            if wanted {
                b.push(i, Occasion::EndOfInduction, Some(opens), due, None);
            }
        }
    }

    // Maintenance: the next measure of each instrument, an interval after its last response.
    if let Some(from) = dosing.iter().find(|s| s.phase == Phase::Maintenance).map(|s| s.start) {
        let notice = SignedDuration::from_hours(i64::from(settings.notice_days) * 24);
        for (i, wanted, every) in [
            (Phq9, true, settings.phq9_maintenance_every_weeks),
            (Gad7, ind.gad7, settings.gad7_maintenance_every_weeks),
            (Pcl5, ind.pcl5, settings.pcl5_maintenance_every_weeks),
            (Cssrs, true, settings.phq9_maintenance_every_weeks),
        ] {
            if !wanted {
                continue;
            }
            let last = responses.iter().filter(|r| r.instrument == i && r.at <= now).map(|r| r.at).max();
            let due = last.map_or(from, |l| plus(l, weeks(every)).max(from));
            b.push(i, Occasion::Maintenance, Some(minus(due, notice)), due, None);
        }
    }

    // Integration: a C-SSRS when the PHQ-9 before the session had item 9 >= 1.
    for s in sessions.iter().filter(|s| s.kind == SessionKind::Integration) {
        let phq9 = responses.iter().filter(|r| r.instrument == Phq9 && r.at < s.start).max_by_key(|r| r.at);
        if let Some(p) = phq9.filter(|p| p.phq9_item9.is_some_and(|v| v >= 1)) {
            b.push(Cssrs, Occasion::Integration { session: s.id, phq9: p.id }, Some(p.at), s.end, None);
        }
    }

    let mut out = b.out;
    out.sort_by_key(|r| (r.due_by, instrument_order(r.instrument)));
    out
}

fn instrument_order(i: Instrument) -> u8 {
    match i {
        Instrument::Phq9 => 0,
        Instrument::Gad7 => 1,
        Instrument::Pcl5 => 2,
        Instrument::CssrsScreener => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;
    const DAY: i64 = 24 * HOUR;

    /// Day `d` at hour `h` (day 0 is a Monday in 2026).
    fn at(d: i64, h: i64) -> UtcTs {
        UtcTs::from_unix_micros(1_767_571_200_000_000 + d * DAY + h * HOUR)
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn dosing(n: u128, day: i64, phase: Phase, attendance: Attendance) -> CourseSession {
        CourseSession {
            id: id(n),
            kind: SessionKind::Dosing,
            phase,
            start: at(day, 9),
            end: at(day, 12),
            booked_at: at(-10, 9),
            attendance,
            dosed_at: (attendance == Attendance::Completed).then(|| at(day, 10)),
        }
    }

    fn integration(n: u128, day: i64) -> CourseSession {
        CourseSession {
            id: id(n),
            kind: SessionKind::Integration,
            phase: Phase::Induction,
            start: at(day, 14),
            end: at(day, 15),
            booked_at: at(-10, 9),
            attendance: Attendance::Booked,
            dosed_at: None,
        }
    }

    fn answered(n: u128, instrument: Instrument, at: UtcTs) -> Answered {
        Answered { id: id(n), instrument, at, phq9_item9: (instrument == Instrument::Phq9).then_some(0) }
    }

    fn facts(sessions: &[CourseSession]) -> CourseFacts<'_> {
        CourseFacts { sessions, review_due: None, ended_at: None, indications: Indications::from_record(false) }
    }

    fn find(reqs: &[Requirement], i: Instrument, o: Occasion) -> Status {
        reqs.iter()
            .find(|r| r.instrument == i && r.occasion == o)
            .map(|r| r.status)
            .unwrap_or_else(|| panic!("{i} {o:?} not scheduled"))
    }

    #[test]
    fn phq9_and_cssrs_before_each_dosing_session_since_the_last_visit() {
        use Instrument::*;
        let sessions =
            [dosing(1, 0, Phase::Induction, Attendance::Completed), dosing(2, 3, Phase::Induction, Attendance::Booked)];
        let responses = [
            answered(10, Phq9, at(-1, 18)),
            answered(11, CssrsScreener, at(0, 9)),
            // Answered during session 1's check-in, before its dose: it counts for session 1 only.
            answered(12, Phq9, at(0, 9)),
        ];
        let s1 = Occasion::PreDose { session: id(1) };
        let s2 = Occasion::PreDose { session: id(2) };
        let reqs = schedule(&facts(&sessions), &responses, &MeasurementSettings::default(), at(1, 9));
        assert_eq!(find(&reqs, Phq9, s1), Status::Done { response: id(12), at: at(0, 9) });
        assert_eq!(find(&reqs, CssrsScreener, s1), Status::Done { response: id(11), at: at(0, 9) });
        assert_eq!(find(&reqs, Phq9, s2), Status::Due, "open since session 1 ended, due by session 2");
        assert!(
            reqs.iter().all(|r| r.instrument != Gad7 || !matches!(r.occasion, Occasion::PreDose { .. })),
            "GAD-7 on dosing days is optional"
        );
        // Session 2 has started without a PHQ-9: overdue until the dose, then missed.
        let reqs = schedule(&facts(&sessions), &responses, &MeasurementSettings::default(), at(3, 9));
        assert_eq!(find(&reqs, Phq9, s2), Status::Due, "due by the start itself");
        let reqs = schedule(&facts(&sessions), &responses, &MeasurementSettings::default(), at(3, 10));
        assert_eq!(find(&reqs, Phq9, s2), Status::Overdue);
        let mut done = sessions;
        done[1] = dosing(2, 3, Phase::Induction, Attendance::Completed);
        let reqs = schedule(&facts(&done), &responses, &MeasurementSettings::default(), at(3, 13));
        assert_eq!(find(&reqs, Phq9, s2), Status::Missed);
        // With the clinic's optional GAD-7 on dosing days.
        let gad = MeasurementSettings { gad7_each_dosing_day: true, ..MeasurementSettings::default() };
        let reqs = schedule(&facts(&sessions), &responses, &gad, at(1, 9));
        assert_eq!(find(&reqs, Gad7, s2), Status::Due);
    }

    #[test]
    fn intake_measures_are_due_before_the_first_dose_and_missed_after_it() {
        use Instrument::*;
        let sessions = [dosing(1, 0, Phase::Induction, Attendance::Completed)];
        let responses = [answered(10, Phq9, at(-20, 10)), answered(11, CssrsScreener, at(-20, 10))];
        let mut f = facts(&sessions);
        f.indications = Indications::from_record(true);
        let reqs = schedule(&f, &responses, &MeasurementSettings::default(), at(1, 9));
        assert!(matches!(find(&reqs, Phq9, Occasion::Intake), Status::Done { .. }));
        assert_eq!(find(&reqs, Gad7, Occasion::Intake), Status::Missed, "no baseline GAD-7 before the first dose");
        assert_eq!(find(&reqs, Pcl5, Occasion::Intake), Status::Missed);
        let reqs = schedule(&f, &responses, &MeasurementSettings::default(), at(-1, 9));
        assert_eq!(find(&reqs, Pcl5, Occasion::Intake), Status::Due, "before the first session");
        let no_trauma = schedule(&facts(&sessions), &responses, &MeasurementSettings::default(), at(1, 9));
        assert!(no_trauma.iter().all(|r| r.instrument != Pcl5), "PCL-5 only if trauma (7.10)");
    }

    #[test]
    fn cancelled_sessions_owe_nothing() {
        let sessions =
            [dosing(1, 0, Phase::Induction, Attendance::Completed), dosing(2, 3, Phase::Induction, Attendance::Missed)];
        let reqs = schedule(&facts(&sessions), &[], &MeasurementSettings::default(), at(5, 9));
        assert!(reqs.iter().all(|r| r.occasion != Occasion::PreDose { session: id(2) }));
    }

    #[test]
    fn end_of_induction_counts_the_last_pre_dose_measure_and_stays_overdue() {
        use Instrument::*;
        let sessions = [
            dosing(1, 0, Phase::Induction, Attendance::Completed),
            dosing(2, 7, Phase::Induction, Attendance::Completed),
            dosing(3, 14, Phase::Induction, Attendance::Completed),
        ];
        let mut f = facts(&sessions);
        f.review_due = Some(at(16, 23));
        // The pre-dose PHQ-9 of the last induction session (day 14) answers the end of induction.
        let responses = [answered(10, Phq9, at(13, 20)), answered(11, Gad7, at(6, 20))];
        let reqs = schedule(&f, &responses, &MeasurementSettings::default(), at(15, 9));
        assert_eq!(find(&reqs, Phq9, Occasion::EndOfInduction), Status::Done { response: id(10), at: at(13, 20) });
        assert_eq!(find(&reqs, Gad7, Occasion::EndOfInduction), Status::Due, "day 6 is before the window");
        let eoi = reqs.iter().find(|r| r.occasion == Occasion::EndOfInduction).map(|r| (r.opens_at, r.due_by));
        assert_eq!(eoi, Some((Some(at(7, 12)), at(16, 23))), "opens when session 2 ended; due by the review");
        let reqs = schedule(&f, &responses, &MeasurementSettings::default(), at(40, 9));
        assert_eq!(find(&reqs, Gad7, Occasion::EndOfInduction), Status::Overdue, "the review needs it");
        assert_eq!(find(&reqs, CssrsScreener, Occasion::EndOfInduction), Status::Overdue);
    }

    #[test]
    fn maintenance_measures_fall_due_an_interval_after_the_last_response() {
        use Instrument::*;
        let sessions = [
            dosing(1, 0, Phase::Induction, Attendance::Completed),
            dosing(2, 14, Phase::Maintenance, Attendance::Completed),
            dosing(3, 70, Phase::Maintenance, Attendance::Booked),
        ];
        let responses = [answered(10, Phq9, at(14, 8)), answered(11, Gad7, at(-5, 8))];
        let settings = MeasurementSettings::default();
        let next = |reqs: &[Requirement], i| {
            reqs.iter().find(|r| r.instrument == i && r.occasion == Occasion::Maintenance).map(|r| (r.due_by, r.status))
        };
        let reqs = schedule(&facts(&sessions), &responses, &settings, at(20, 9));
        assert_eq!(next(&reqs, Phq9), Some((at(42, 8), Status::Upcoming)), "4 weeks after the last PHQ-9");
        assert_eq!(
            next(&reqs, Gad7),
            Some((at(23, 8), Status::Due)),
            "4 weeks after the last GAD-7, sent 3 days ahead"
        );
        let reqs = schedule(&facts(&sessions), &responses, &settings, at(40, 9));
        assert_eq!(next(&reqs, Phq9), Some((at(42, 8), Status::Due)), "sent 3 days ahead");
        assert_eq!(next(&reqs, Gad7), Some((at(23, 8), Status::Overdue)));
        let two = MeasurementSettings { phq9_maintenance_every_weeks: 2, ..settings };
        let reqs = schedule(&facts(&sessions), &responses, &two, at(40, 9));
        assert_eq!(next(&reqs, Phq9), Some((at(28, 8), Status::Overdue)), "every 2 weeks");
        assert_eq!(next(&reqs, CssrsScreener).map(|n| n.0), Some(at(14, 9)), "C-SSRS with the PHQ-9 cadence");
        // No maintenance session: nothing on an interval.
        let induction_only = &sessions[..1];
        let reqs = schedule(&facts(induction_only), &responses, &settings, at(40, 9));
        assert!(reqs.iter().all(|r| r.occasion != Occasion::Maintenance));
    }

    #[test]
    fn integration_asks_for_a_cssrs_when_phq9_item_9_was_positive() {
        use Instrument::*;
        let sessions = [dosing(1, 0, Phase::Induction, Attendance::Completed), integration(2, 1)];
        let mut phq = answered(10, Phq9, at(0, 8));
        phq.phq9_item9 = Some(1);
        let reqs = schedule(&facts(&sessions), &[phq], &MeasurementSettings::default(), at(1, 10));
        let o = Occasion::Integration { session: id(2), phq9: id(10) };
        assert_eq!(find(&reqs, CssrsScreener, o), Status::Due);
        let reqs = schedule(&facts(&sessions), &[phq], &MeasurementSettings::default(), at(2, 10));
        assert_eq!(find(&reqs, CssrsScreener, o), Status::Overdue, "a safety check stays overdue");
        let answered_later = [phq, answered(11, CssrsScreener, at(1, 14))];
        let reqs = schedule(&facts(&sessions), &answered_later, &MeasurementSettings::default(), at(2, 10));
        assert!(matches!(find(&reqs, CssrsScreener, o), Status::Done { .. }));
        phq.phq9_item9 = Some(0);
        let reqs = schedule(&facts(&sessions), &[phq], &MeasurementSettings::default(), at(1, 10));
        assert!(reqs.iter().all(|r| !matches!(r.occasion, Occasion::Integration { .. })));
    }

    #[test]
    fn a_stopped_course_owes_nothing_after_its_end() {
        let sessions =
            [dosing(1, 0, Phase::Induction, Attendance::Completed), dosing(2, 7, Phase::Induction, Attendance::Booked)];
        let mut f = facts(&sessions);
        f.ended_at = Some(at(2, 9));
        let reqs = schedule(&f, &[], &MeasurementSettings::default(), at(10, 9));
        assert!(reqs.iter().all(|r| r.occasion != Occasion::PreDose { session: id(2) }), "due after the end");
        assert!(reqs.iter().all(|r| r.occasion != Occasion::EndOfInduction));
        // What was open when it ended is missed, not overdue for ever.
        assert_eq!(find(&reqs, Instrument::Phq9, Occasion::Intake), Status::Missed);
    }

    #[test]
    fn the_list_is_in_due_order_and_serialises_flat() {
        let sessions =
            [dosing(1, 0, Phase::Induction, Attendance::Booked), dosing(2, 3, Phase::Induction, Attendance::Booked)];
        let reqs = schedule(&facts(&sessions), &[], &MeasurementSettings::default(), at(-1, 9));
        assert!(reqs.windows(2).all(|w| w[0].due_by <= w[1].due_by));
        assert!(reqs.iter().filter(|r| r.to_answer()).all(|r| r.due_by <= at(0, 9)), "only session 1 is open");
        let json = serde_json::to_value(reqs[0]).unwrap_or_default();
        assert_eq!((json["instrument"].as_str(), json["occasion"].as_str()), (Some("phq9"), Some("intake")));
        assert_eq!(json["status"], "due");
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(MeasurementSettings::default().check(), Ok(()));
        let s = MeasurementSettings { phq9_maintenance_every_weeks: 5, ..MeasurementSettings::default() };
        assert_eq!(s.check().map_err(|e| e.field), Err("phq9_maintenance_every_weeks"), "7.10: 2–4 weeks");
        let s: MeasurementSettings = serde_json::from_str(r#"{"phq9_maintenance_every_weeks":2}"#).unwrap();
        assert_eq!((s.phq9_maintenance_every_weeks, s.gad7_maintenance_every_weeks), (2, 4));
    }
}
