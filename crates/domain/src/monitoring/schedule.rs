//! When to measure (KAP-SPEC 5.2): a route's [`MonitoringPlan`] turned into the session's
//! [`PlannedCheck`]s, and each check's status against what was recorded.

use std::collections::BTreeMap;
use std::num::NonZeroU16;

use serde::{Deserialize, Serialize};
use time::Duration;

use super::{Anchor, ConfigError, DoseTimes, MeasureKind, Measurement, Reading};
use crate::UtcTs;

/// A runaway guard, not a clinical number: no series plans more checks than this (one a minute
/// for a day is 1,440), whatever observation end a caller passes.
const MAX_CHECKS_PER_SERIES: u32 = 2_000;

/// When a check counts as due, overdue and done. A workflow setting of the clinic: the spec
/// gives schedules, not tolerances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DueWindow {
    /// A check is due from this many minutes before its time, and a reading from then on counts
    /// for it.
    pub opens_minutes_before: u16,
    /// ... and overdue once this many minutes have passed after its time.
    pub overdue_minutes_after: u16,
    pub source: String,
}

/// A check at a fixed time, e.g. Spravato's BP "at about 40 min after dosing".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FixedCheck {
    pub after_minutes: u16,
    pub from: Anchor,
}

/// Where a repeating series stops. Every series also stops at the end of observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeriesEnd {
    /// While the dose is given (an IV infusion); to the end of observation while it runs.
    DoseEnd,
    /// Until the patient leaves.
    Discharge,
    /// Until a reading is back at the pre-dose baseline after having left it; checks due after
    /// that return are dropped ([`check_status`]).
    BackToBaseline,
    /// For this many minutes after the series' anchor.
    Minutes(u16),
}

/// A check every `every_minutes`, counted from `from` + `after_minutes`: the first at
/// `from + after_minutes + every_minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Series {
    pub every_minutes: NonZeroU16,
    pub from: Anchor,
    #[serde(default)]
    pub after_minutes: u16,
    pub until: SeriesEnd,
}

/// The schedule of one measure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasureSchedule {
    /// A pre-dose baseline reading is required.
    pub baseline: bool,
    /// A monitor runs throughout (e.g. pulse oximetry); shown to staff, plans no checks.
    pub continuous: bool,
    #[serde(default)]
    pub at: Vec<FixedCheck>,
    #[serde(default)]
    pub every: Vec<Series>,
    /// A reading just before the patient leaves (planned at the end of observation).
    pub before_discharge: bool,
    pub source: String,
}

/// A route's monitoring schedule (KAP-SPEC 5.2), from the protocol file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitoringPlan {
    pub due_window: DueWindow,
    pub measures: BTreeMap<MeasureKind, MeasureSchedule>,
}

impl MonitoringPlan {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        for (kind, m) in &self.measures {
            let path = || format!("plan.measures.{}", kind.as_str());
            if m.source.trim().is_empty() {
                return Err(ConfigError::new(path(), "name the source of this schedule"));
            }
            for s in &m.every {
                if s.until == SeriesEnd::BackToBaseline && !m.baseline {
                    return Err(ConfigError::new(
                        path(),
                        "a series until back to baseline needs a pre-dose baseline reading",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Why a check is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reason {
    Baseline,
    AtOffset { after_minutes: u16, from: Anchor },
    Series { every_minutes: u16, from: Anchor, until: SeriesEnd },
    BeforeDischarge,
}

impl Reason {
    /// Which of two checks at the same time is kept: the one that says more.
    fn rank(self) -> u8 {
        match self {
            Reason::Baseline => 0,
            Reason::AtOffset { .. } => 1,
            Reason::BeforeDischarge => 2,
            Reason::Series { .. } => 3,
        }
    }

    /// For staff: "40 min after the start of dosing (first device)".
    pub fn describe(self) -> String {
        match self {
            Reason::Baseline => "pre-dose baseline".to_owned(),
            Reason::AtOffset { after_minutes, from } => format!("{after_minutes} min after {}", from.phrase()),
            Reason::Series { every_minutes, from, until } => {
                let until = match until {
                    SeriesEnd::DoseEnd => "until the end of dosing".to_owned(),
                    SeriesEnd::Discharge => "until discharge".to_owned(),
                    SeriesEnd::BackToBaseline => "until back to the pre-dose baseline".to_owned(),
                    SeriesEnd::Minutes(m) => format!("for {m} min after {}", from.phrase()),
                };
                format!("every {every_minutes} min {until}")
            }
            Reason::BeforeDischarge => "before discharge".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PlannedCheck {
    pub kind: MeasureKind,
    pub due_at: UtcTs,
    pub reason: Reason,
}

fn minutes(m: u32) -> Duration {
    Duration::minutes(i64::from(m))
}

/// The checks of a session from its plan, sorted by time. A check counted from an anchor not yet
/// recorded (the last device, the end of an infusion) is planned once it is. `observation_end` is
/// when the patient is expected to leave: the earliest discharge
/// ([`crate::discharge::DischargeSettings::earliest_discharge`]) until a later time is known; plan
/// again when it moves. Nothing is planned after it, and the before-discharge checks fall on it.
/// Of two checks of one measure at the same time, one is kept.
pub fn planned_checks(plan: &MonitoringPlan, dose: &DoseTimes, observation_end: UtcTs) -> Vec<PlannedCheck> {
    let mut checks: Vec<PlannedCheck> = Vec::new();
    for (&kind, m) in &plan.measures {
        if m.baseline {
            checks.push(PlannedCheck { kind, due_at: dose.started_at, reason: Reason::Baseline });
        }
        for f in &m.at {
            if let Some(anchor) = f.from.at(dose) {
                let due_at = anchor.plus(minutes(f.after_minutes.into()));
                if due_at <= observation_end {
                    let reason = Reason::AtOffset { after_minutes: f.after_minutes, from: f.from };
                    checks.push(PlannedCheck { kind, due_at, reason });
                }
            }
        }
        for s in &m.every {
            let Some(anchor) = s.from.at(dose) else { continue };
            let end = match s.until {
                SeriesEnd::DoseEnd => dose.ended_at.unwrap_or(observation_end),
                SeriesEnd::Discharge | SeriesEnd::BackToBaseline => observation_end,
                SeriesEnd::Minutes(m) => anchor.plus(minutes(m.into())),
            }
            .min(observation_end);
            let start = anchor.plus(minutes(s.after_minutes.into()));
            let reason = Reason::Series { every_minutes: s.every_minutes.get(), from: s.from, until: s.until };
            for k in 1..=MAX_CHECKS_PER_SERIES {
                let due_at = start.plus(minutes(u32::from(s.every_minutes.get()) * k));
                if due_at > end {
                    break;
                }
                checks.push(PlannedCheck { kind, due_at, reason });
            }
        }
        if m.before_discharge {
            checks.push(PlannedCheck { kind, due_at: observation_end, reason: Reason::BeforeDischarge });
        }
    }
    checks.sort_by_key(|c| (c.due_at, c.kind, c.reason.rank()));
    checks.dedup_by_key(|c| (c.due_at, c.kind));
    checks
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Not yet due.
    Upcoming,
    /// Take it now.
    Due,
    /// Past its time and the late margin, and can still be taken.
    Overdue,
    /// Not taken, and the next check of the measure is now due, so it cannot be made up (a
    /// baseline once dosing has started).
    Missed,
    /// A reading counts for it.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CheckState {
    /// Written flat: `{kind, due_at, reason, status, reading_at}`.
    #[serde(flatten)]
    pub check: PlannedCheck,
    pub status: CheckStatus,
    /// The reading that satisfied it.
    pub reading_at: Option<UtcTs>,
}

/// The status of each planned check at `now`.
///
/// Each reading counts for at most one check: a baseline takes the readings at or before the
/// start of dosing; any other check the readings from `opens_minutes_before` its time until the
/// next check of the measure opens, so a late reading still counts for the check it was late
/// for. Checks of a series "until back to baseline" that open after the measure came back to
/// its baseline are left out.
pub fn check_status(
    planned: &[PlannedCheck],
    readings: &[Reading],
    dose_started_at: UtcTs,
    now: UtcTs,
    window: &DueWindow,
) -> Vec<CheckState> {
    let early = minutes(window.opens_minutes_before.into());
    let late = minutes(window.overdue_minutes_after.into());
    let just_after_start = UtcTs::from_unix_micros(dose_started_at.unix_micros().saturating_add(1));
    let mut out = Vec::with_capacity(planned.len());
    for kind in MeasureKind::ALL {
        let mut checks: Vec<&PlannedCheck> = planned.iter().filter(|c| c.kind == kind).collect();
        checks.sort_by_key(|c| c.due_at);
        let mut taken: Vec<&Reading> = readings
            .iter()
            .filter(|r| r.measurement.kind() == kind && !r.measurement.is_empty() && r.taken_at <= now)
            .collect();
        taken.sort_by_key(|r| r.taken_at);
        let returned_at = back_to_baseline_at(&taken, dose_started_at);

        let regular: Vec<&PlannedCheck> = checks.iter().copied().filter(|c| c.reason != Reason::Baseline).collect();
        let opens: Vec<UtcTs> = regular.iter().map(|c| c.due_at.plus(-early).max(just_after_start)).collect();

        for c in checks.iter().filter(|c| c.reason == Reason::Baseline) {
            // The last reading at or before the check (`taken` is in time order).
            let reading = taken[..taken.partition_point(|r| r.taken_at <= c.due_at)].last();
            let status = match reading {
                Some(_) => CheckStatus::Done,
                None if now <= c.due_at => CheckStatus::Due,
                None => CheckStatus::Missed,
            };
            out.push(CheckState { check: **c, status, reading_at: reading.map(|r| r.taken_at) });
        }
        for (i, c) in regular.iter().enumerate() {
            let opens_at = opens[i];
            let next_opens = opens.get(i + 1).copied();
            // The first reading from the check's opening, if it came before the next one opened
            // (found by halving: a long session has thousands of readings).
            let reading = taken
                .get(taken.partition_point(|r| r.taken_at < opens_at))
                .filter(|r| next_opens.is_none_or(|n| r.taken_at < n));
            if reading.is_none()
                && matches!(c.reason, Reason::Series { until: SeriesEnd::BackToBaseline, .. })
                && returned_at.is_some_and(|back| opens_at > back)
            {
                continue;
            }
            let status = if reading.is_some() {
                CheckStatus::Done
            } else if next_opens.is_some_and(|n| now >= n) {
                CheckStatus::Missed
            } else if now > c.due_at.plus(late) {
                CheckStatus::Overdue
            } else if now >= opens_at {
                CheckStatus::Due
            } else {
                CheckStatus::Upcoming
            };
            out.push(CheckState { check: **c, status, reading_at: reading.map(|r| r.taken_at) });
        }
    }
    out.sort_by_key(|s| (s.check.due_at, s.check.kind));
    out
}

/// When a measure came back to its pre-dose baseline after leaving it: the first post-dose
/// reading at or better than the baseline that follows one worse than it. A patient still at
/// baseline 15 minutes in may yet become sedated, so staying at baseline is not a return.
fn back_to_baseline_at(taken: &[&Reading], dose_started_at: UtcTs) -> Option<UtcTs> {
    let baseline: &Measurement = &taken.iter().rev().find(|r| r.taken_at <= dose_started_at)?.measurement;
    let mut left = false;
    for r in taken.iter().filter(|r| r.taken_at > dose_started_at) {
        match r.measurement.at_or_better_than(baseline) {
            Some(false) => left = true,
            Some(true) if left => return Some(r.taken_at),
            _ => {}
        }
    }
    None
}
