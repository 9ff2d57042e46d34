//! Treatment courses (KAP-SPEC 4.2, 4.4): a template proposes the dosing dates at its spacing,
//! an integration session after each, and when the course review is due; the course then tracks
//! sessions done and left and its phase (induction, maintenance). At the course review a
//! prescriber decides to continue, modify or stop ([`review`], KAP-SPEC 2.1 stages 8–9).

use jiff::ToSpan;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::decision::Route;
use crate::{FieldError, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Template {
    #[serde(rename = "SPRAVATO-TRD")]
    SpravatoTrd,
    #[serde(rename = "IV-6")]
    Iv6,
    #[serde(rename = "KAP-SL")]
    KapSl,
    #[serde(rename = "KAP-IM")]
    KapIm,
}

impl Template {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SPRAVATO-TRD" => Some(Template::SpravatoTrd),
            "IV-6" => Some(Template::Iv6),
            "KAP-SL" => Some(Template::KapSl),
            "KAP-IM" => Some(Template::KapIm),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Template::SpravatoTrd => "SPRAVATO-TRD",
            Template::Iv6 => "IV-6",
            Template::KapSl => "KAP-SL",
            Template::KapIm => "KAP-IM",
        }
    }

    pub fn route(self) -> Route {
        match self {
            Template::SpravatoTrd => Route::SpravatoIntranasal,
            Template::Iv6 => Route::IntravenousRacemic,
            Template::KapSl => Route::SublingualLozenge,
            Template::KapIm => Route::IntramuscularRacemic,
        }
    }
}

/// The clinic's choices within a template (CONFIG-DEFAULTs of KAP-SPEC 4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CourseOptions {
    /// SPRAVATO-TRD from week 9: weekly (1) or every 2 weeks (2) — the lowest frequency that
    /// keeps the response (label).
    pub spravato_maintenance_every_weeks: u8,
    /// IV-6: infusions per week (2 or 3; "2–3 per week over 2–3 weeks").
    pub iv_per_week: u8,
    /// KAP-SL / KAP-IM: number of dosing sessions (KAP-SL: at least 3).
    pub kap_sessions: u8,
    /// KAP-SL / KAP-IM: weeks between sessions (1 = weekly, 2 = every other week).
    pub kap_every_weeks: u8,
    /// An integration session this many days after each dosing session (0: none proposed).
    pub integration_days_after: u8,
    /// Recurring maintenance after the induction: every N weeks (e.g. 8), `0` for none.
    pub maintenance_every_weeks: u8,
    /// How many maintenance sessions to propose ahead.
    pub maintenance_sessions: u8,
    /// The course review falls due this many days after the last induction session (0: on that
    /// day, "at the end of induction", KAP-SPEC 2.1 stage 8 / 4.2).
    pub review_days_after_induction: u8,
}

impl Default for CourseOptions {
    fn default() -> Self {
        Self {
            spravato_maintenance_every_weeks: 2,
            iv_per_week: 3,
            kap_sessions: 3,
            kap_every_weeks: 1,
            integration_days_after: 1,
            maintenance_every_weeks: 0,
            maintenance_sessions: 0,
            review_days_after_induction: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CourseError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: &str) -> CourseError {
    CourseError { field, message: message.to_owned() }
}

impl CourseOptions {
    pub fn check(&self, template: Template) -> Result<(), CourseError> {
        if !(1..=2).contains(&self.spravato_maintenance_every_weeks) {
            return Err(err(
                "spravato_maintenance_every_weeks",
                "weekly (1) or every 2 weeks (2), as the label allows",
            ));
        }
        if !(2..=3).contains(&self.iv_per_week) {
            return Err(err("iv_per_week", "2 or 3 infusions a week"));
        }
        let min_sessions = if template == Template::KapSl { 3 } else { 1 };
        if !(min_sessions..=24).contains(&self.kap_sessions) {
            return Err(err("kap_sessions", "KAP-SL has at least 3 dosing sessions (at most 24)"));
        }
        if !(1..=2).contains(&self.kap_every_weeks) {
            return Err(err("kap_every_weeks", "weekly (1) or every other week (2)"));
        }
        if self.integration_days_after > 14 {
            return Err(err("integration_days_after", "0 to 14 days"));
        }
        if self.review_days_after_induction > 28 {
            return Err(err("review_days_after_induction", "0 to 28 days"));
        }
        if self.maintenance_every_weeks > 26 || self.maintenance_sessions > 12 {
            return Err(err("maintenance_every_weeks", "every 1 to 26 weeks, at most 12 sessions ahead"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Induction,
    Maintenance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    Dosing,
    Integration,
    CourseReview,
}

/// One proposed session of a course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Planned {
    pub date: Date,
    pub kind: SessionKind,
    pub phase: Phase,
    /// 1-based number among the dosing sessions.
    pub dosing_number: Option<u16>,
    /// What the label fixes for this session (Spravato day 1: 56 mg).
    pub note: Option<&'static str>,
}

fn add_days(d: Date, days: i64) -> Result<Date, CourseError> {
    d.checked_add(days.days()).map_err(|_| err("first_date", "the date is out of range"))
}

/// The dosing dates of a template from its first session.
fn dosing_dates(template: Template, first: Date, o: &CourseOptions) -> Result<Vec<(Date, Phase)>, CourseError> {
    let mut out = Vec::new();
    match template {
        Template::SpravatoTrd => {
            // Weeks 1–4 twice weekly (first day and 3 days later: Mon/Thu in TV-SPR-3), weeks 5–8
            // weekly, from week 9 weekly or every 2 weeks (label, KAP-SPEC 4.2).
            for week in 0..4 {
                out.push((add_days(first, 7 * week)?, Phase::Induction));
                out.push((add_days(first, 7 * week + 3)?, Phase::Induction));
            }
            for week in 4..8 {
                out.push((add_days(first, 7 * week)?, Phase::Maintenance));
            }
            let step = i64::from(o.spravato_maintenance_every_weeks) * 7;
            for i in 0..2 {
                out.push((add_days(first, 7 * 8 + step * i)?, Phase::Maintenance));
            }
        }
        Template::Iv6 => {
            // Six infusions: Mon/Wed/Fri-like (3 a week) or Mon/Thu-like (2 a week).
            let offsets: &[i64] = if o.iv_per_week == 3 { &[0, 2, 4, 7, 9, 11] } else { &[0, 3, 7, 10, 14, 17] };
            for d in offsets {
                out.push((add_days(first, *d)?, Phase::Induction));
            }
        }
        Template::KapSl | Template::KapIm => {
            for i in 0..i64::from(o.kap_sessions) {
                out.push((add_days(first, 7 * i64::from(o.kap_every_weeks) * i)?, Phase::Induction));
            }
        }
    }
    if o.maintenance_every_weeks > 0 {
        let last = out.last().map_or(first, |(d, _)| *d);
        for i in 1..=i64::from(o.maintenance_sessions) {
            out.push((add_days(last, 7 * i64::from(o.maintenance_every_weeks) * i)?, Phase::Maintenance));
        }
    }
    Ok(out)
}

/// The whole proposal: dosing sessions, an integration session after each, and the course
/// review at the end of the induction (KAP-SPEC 2.1 stage 8).
pub fn propose(template: Template, first: Date, o: &CourseOptions) -> Result<Vec<Planned>, CourseError> {
    o.check(template)?;
    let dates = dosing_dates(template, first, o)?;
    let mut out = Vec::new();
    for (i, (date, phase)) in dates.iter().enumerate() {
        let n = u16::try_from(i + 1).unwrap_or(u16::MAX);
        let note = (template == Template::SpravatoTrd && i == 0).then_some("day 1: 56 mg (label)");
        out.push(Planned { date: *date, kind: SessionKind::Dosing, phase: *phase, dosing_number: Some(n), note });
        if o.integration_days_after > 0 {
            let d = add_days(*date, i64::from(o.integration_days_after))?;
            out.push(Planned {
                date: d,
                kind: SessionKind::Integration,
                phase: *phase,
                dosing_number: None,
                note: None,
            });
        }
    }
    let last_induction = dates.iter().rfind(|(_, p)| *p == Phase::Induction).map(|(d, _)| *d);
    if let Some(d) = last_induction {
        let review = add_days(d, i64::from(o.review_days_after_induction))?;
        out.push(Planned {
            date: review,
            kind: SessionKind::CourseReview,
            phase: Phase::Induction,
            dosing_number: None,
            note: None,
        });
    }
    out.sort_by_key(|p| p.date);
    Ok(out)
}

/// A course's status as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CourseStatus {
    Active,
    Completed,
    Stopped,
}

impl CourseStatus {
    pub const ALL: [CourseStatus; 3] = [CourseStatus::Active, CourseStatus::Completed, CourseStatus::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            CourseStatus::Active => "active",
            CourseStatus::Completed => "completed",
            CourseStatus::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The prescriber's decision at a course review (KAP-SPEC 2.1 stage 8 exit gate: "Prescriber
/// decision recorded: continue (maintenance), modify, stop").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "decision", deny_unknown_fields)]
pub enum ReviewDecision {
    /// Go on (into maintenance after the induction).
    Continue,
    /// Go on with changed options (spacing, maintenance, integration). A different route is a
    /// new course under the eligibility decision, not a modification.
    Modify {
        options: CourseOptions,
    },
    Stop,
}

impl ReviewDecision {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReviewDecision::Continue => "continue",
            ReviewDecision::Modify { .. } => "modify",
            ReviewDecision::Stop => "stop",
        }
    }
}

/// When a course that goes on is reviewed again (KAP-SPEC 2.1 stage 9: "Periodic re-review
/// (CONFIG-DEFAULT every 3 months)"; Spravato: "periodically re-examine the need to continue"
/// [S2][S68 MIMS]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewSettings {
    pub re_review_every_months: u8,
}

impl Default for ReviewSettings {
    fn default() -> Self {
        Self { re_review_every_months: 3 }
    }
}

impl ReviewSettings {
    pub fn check(&self) -> Result<(), CourseError> {
        if !(1..=12).contains(&self.re_review_every_months) {
            return Err(err("re_review_every_months", "every 1 to 12 months"));
        }
        Ok(())
    }
}

/// The course after a review: what the store writes back, with the reason kept beside the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Reviewed {
    pub status: CourseStatus,
    pub options: CourseOptions,
    /// The next review, for a course that goes on.
    pub next_review_due: Option<Date>,
    pub reason: String,
}

/// Why a review is refused: `code` is `role`, `state` or `invalid`; `field` names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ReviewRefusal {
    pub code: &'static str,
    pub field: Option<&'static str>,
    pub message: String,
}

const MAX_REVIEW_REASON: usize = 4000;

/// The course as it stands before a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnderReview {
    pub template: Template,
    pub status: CourseStatus,
    pub options: CourseOptions,
}

/// Decides a course review on `on` by someone in `role`. Only a prescriber decides (2.1 stage 8),
/// only an active course is reviewed, every decision carries its reason, and a modification must
/// change something and still be a valid course for the template.
pub fn review(
    course: &UnderReview,
    role: Role,
    decision: &ReviewDecision,
    reason: &str,
    on: Date,
    settings: &ReviewSettings,
) -> Result<Reviewed, ReviewRefusal> {
    let UnderReview { template, status, options } = course;
    let refuse = |code, field, message: &str| Err(ReviewRefusal { code, field, message: message.to_owned() });
    if role != Role::Prescriber {
        return refuse("role", None, "a prescriber decides at the course review (KAP-SPEC 2.1 stage 8)");
    }
    if *status != CourseStatus::Active {
        return refuse("state", None, "this course has ended; start a new course instead");
    }
    let reason = crate::text::plain("reason", reason, MAX_REVIEW_REASON, true)
        .map_err(|FieldError { field, message }| ReviewRefusal { code: "invalid", field: Some(field), message })?;
    let next = || {
        on.checked_add(i64::from(settings.re_review_every_months).months()).map_err(|_| ReviewRefusal {
            code: "invalid",
            field: Some("on"),
            message: "the date is out of range".into(),
        })
    };
    match decision {
        ReviewDecision::Continue => {
            Ok(Reviewed { status: CourseStatus::Active, options: *options, next_review_due: Some(next()?), reason })
        }
        ReviewDecision::Modify { options: new } => {
            if new == options {
                return refuse("invalid", Some("options"), "nothing is changed: continue instead, or change an option");
            }
            new.check(*template).map_err(|e| ReviewRefusal {
                code: "invalid",
                field: Some(e.field),
                message: e.message,
            })?;
            Ok(Reviewed { status: CourseStatus::Active, options: *new, next_review_due: Some(next()?), reason })
        }
        ReviewDecision::Stop => {
            Ok(Reviewed { status: CourseStatus::Stopped, options: *options, next_review_due: None, reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn decide(role: Role, status: CourseStatus, d: ReviewDecision, reason: &str) -> Result<Reviewed, ReviewRefusal> {
        let course = UnderReview { template: Template::KapSl, status, options: CourseOptions::default() };
        review(&course, role, &d, reason, date(2026, 3, 31), &ReviewSettings::default())
    }

    #[test]
    fn a_review_continues_modifies_or_stops_with_its_reason() {
        let r = decide(Role::Prescriber, CourseStatus::Active, ReviewDecision::Continue, " PHQ-9 20 → 9: response ");
        let r = r.unwrap();
        assert_eq!((r.status, r.reason.as_str()), (CourseStatus::Active, "PHQ-9 20 → 9: response"));
        assert_eq!(r.next_review_due, Some(date(2026, 6, 30)), "re-reviewed every 3 months (2.1 stage 9)");
        let options = CourseOptions { maintenance_every_weeks: 4, maintenance_sessions: 3, ..CourseOptions::default() };
        let r = decide(Role::Prescriber, CourseStatus::Active, ReviewDecision::Modify { options }, "monthly boosters");
        let r = r.unwrap();
        assert_eq!((r.status, r.options.maintenance_every_weeks), (CourseStatus::Active, 4));
        let r = decide(Role::Prescriber, CourseStatus::Active, ReviewDecision::Stop, "no benefit after induction");
        let r = r.unwrap();
        assert_eq!((r.status, r.next_review_due), (CourseStatus::Stopped, None));
        let monthly = ReviewSettings { re_review_every_months: 1 };
        let course =
            UnderReview { template: Template::KapSl, status: CourseStatus::Active, options: CourseOptions::default() };
        let r = review(&course, Role::Prescriber, &ReviewDecision::Continue, "ok", date(2026, 1, 31), &monthly);
        assert_eq!(r.map(|r| r.next_review_due), Ok(Some(date(2026, 2, 28))), "month ends clamp");
    }

    #[test]
    fn only_a_prescriber_reviews_an_active_course_with_a_reason() {
        for role in [Role::Therapist, Role::Nurse, Role::Admin, Role::Frontdesk, Role::Patient] {
            let e = decide(role, CourseStatus::Active, ReviewDecision::Continue, "x").unwrap_err();
            assert_eq!(e.code, "role", "{role:?}");
        }
        for status in [CourseStatus::Stopped, CourseStatus::Completed] {
            assert_eq!(decide(Role::Prescriber, status, ReviewDecision::Stop, "x").unwrap_err().code, "state");
        }
        let e = decide(Role::Prescriber, CourseStatus::Active, ReviewDecision::Stop, "  ").unwrap_err();
        assert_eq!((e.code, e.field), ("invalid", Some("reason")));
        let same = ReviewDecision::Modify { options: CourseOptions::default() };
        let e = decide(Role::Prescriber, CourseStatus::Active, same, "x").unwrap_err();
        assert_eq!(e.field, Some("options"));
        let bad = ReviewDecision::Modify { options: CourseOptions { kap_sessions: 2, ..CourseOptions::default() } };
        let e = decide(Role::Prescriber, CourseStatus::Active, bad, "fewer").unwrap_err();
        assert_eq!(e.field, Some("kap_sessions"), "KAP-SL keeps at least 3 sessions");
    }

    #[test]
    fn decisions_and_statuses_read_as_stored() {
        let d: ReviewDecision = serde_json::from_str(r#"{"decision":"stop"}"#).unwrap();
        assert_eq!(d.as_str(), "stop");
        let d: ReviewDecision =
            serde_json::from_str(r#"{"decision":"modify","options":{"kap_every_weeks":2}}"#).unwrap();
        assert!(matches!(d, ReviewDecision::Modify { options } if options.kap_every_weeks == 2));
        assert!(serde_json::from_str::<ReviewDecision>(r#"{"decision":"pause"}"#).is_err());
        for s in CourseStatus::ALL {
            assert_eq!(CourseStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ReviewSettings::default().check(), Ok(()));
        assert!(ReviewSettings { re_review_every_months: 0 }.check().is_err());
    }

    #[test]
    fn spravato_follows_the_label_schedule_tv_spr_3() {
        let o = CourseOptions { integration_days_after: 0, ..CourseOptions::default() };
        let plan = propose(Template::SpravatoTrd, date(2025, 3, 3), &o).unwrap();
        let dosing: Vec<_> = plan.iter().filter(|p| p.kind == SessionKind::Dosing).collect();
        let induction: Vec<String> =
            dosing.iter().filter(|p| p.phase == Phase::Induction).map(|p| p.date.to_string()).collect();
        assert_eq!(
            induction,
            [
                "2025-03-03",
                "2025-03-06",
                "2025-03-10",
                "2025-03-13",
                "2025-03-17",
                "2025-03-20",
                "2025-03-24",
                "2025-03-27"
            ]
        );
        let weekly: Vec<String> = dosing[8..12].iter().map(|p| p.date.to_string()).collect();
        assert_eq!(weekly, ["2025-03-31", "2025-04-07", "2025-04-14", "2025-04-21"], "weeks 5–8 weekly");
        assert_eq!(dosing[12].date.to_string(), "2025-04-28", "week 9");
        assert_eq!(dosing[13].date.to_string(), "2025-05-12", "every 2 weeks from week 9");
        assert_eq!(dosing[0].note, Some("day 1: 56 mg (label)"));
        let weekly_from_9 = CourseOptions { spravato_maintenance_every_weeks: 1, ..o };
        let plan = propose(Template::SpravatoTrd, date(2025, 3, 3), &weekly_from_9).unwrap();
        let last: Vec<String> =
            plan.iter().filter(|p| p.kind == SessionKind::Dosing).skip(12).map(|p| p.date.to_string()).collect();
        assert_eq!(last, ["2025-04-28", "2025-05-05"]);
        // The course review is due at the end of the induction (the clinic may set days after).
        let review = plan.iter().find(|p| p.kind == SessionKind::CourseReview).unwrap();
        assert_eq!(review.date.to_string(), "2025-03-27");
        let later = CourseOptions { review_days_after_induction: 7, ..weekly_from_9 };
        let plan = propose(Template::SpravatoTrd, date(2025, 3, 3), &later).unwrap();
        let review = plan.iter().find(|p| p.kind == SessionKind::CourseReview).unwrap();
        assert_eq!(review.date.to_string(), "2025-04-03");
    }

    #[test]
    fn integration_follows_each_dosing_session() {
        let plan = propose(Template::KapSl, date(2026, 12, 1), &CourseOptions::default()).unwrap();
        let kinds: Vec<SessionKind> = plan.iter().map(|p| p.kind).collect();
        use SessionKind::*;
        assert_eq!(kinds, [Dosing, Integration, Dosing, Integration, Dosing, CourseReview, Integration]);
        assert_eq!(plan[1].date.to_string(), "2026-12-02");
    }

    #[test]
    fn iv6_has_six_infusions_and_maintenance_recurs() {
        let o = CourseOptions {
            integration_days_after: 0,
            maintenance_every_weeks: 8,
            maintenance_sessions: 2,
            ..CourseOptions::default()
        };
        let plan = propose(Template::Iv6, date(2026, 12, 7), &o).unwrap();
        let dosing: Vec<&Planned> = plan.iter().filter(|p| p.kind == SessionKind::Dosing).collect();
        assert_eq!(dosing.len(), 8);
        assert_eq!(dosing[5].date.to_string(), "2026-12-18", "six infusions over two weeks");
        assert_eq!((dosing[6].date.to_string(), dosing[6].phase), ("2027-02-12".to_owned(), Phase::Maintenance));
        assert_eq!(dosing[7].date.to_string(), "2027-04-09", "every 8 weeks");
    }

    #[test]
    fn options_are_checked() {
        let o = CourseOptions { kap_sessions: 2, ..CourseOptions::default() };
        assert_eq!(propose(Template::KapSl, date(2026, 12, 1), &o).unwrap_err().field, "kap_sessions");
        let o = CourseOptions { spravato_maintenance_every_weeks: 3, ..CourseOptions::default() };
        assert!(propose(Template::SpravatoTrd, date(2026, 12, 1), &o).is_err());
    }
}
