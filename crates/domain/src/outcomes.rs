//! Measured outcomes (KAP-SPEC 2.1 stage 8, 7.1–7.3, 7.10; test vectors TV-PHQ-R1..R5): from a
//! patient's series of totals for one instrument, the baseline, the latest score, the change and
//! whether it is a response or a remission; and the figures a dashboard adds up over many
//! patients, so the SQL layer only fetches rows.
//!
//! Choices made here, and why:
//! - **Baseline** is a score from before the first dose: a score taken after treatment started
//!   measures the treatment, not the starting point. Which one is a clinic setting
//!   ([`BaselineRule`]); the default is the intake measure, the one the spec calls baseline.
//! - **Change, response and remission** are computed only for a score taken after the first dose
//!   (a follow-up): before that there is nothing to measure the treatment by.
//! - **Response** is decided in exact integer arithmetic (`100 (b - f) >= p b`), never on a rounded
//!   percentage, so the 50.0 % boundary of TV-PHQ-R2 and TV-PHQ-R5 is a response.
//! - **PCL-5** has no response or remission definition in the spec and no severity bands (7.3), so
//!   neither is reported; its change in points is classed as reliable or clinically meaningful.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::UtcTs;
use crate::instruments::Instrument;

/// One scored response: when it was answered and its total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Score {
    pub at: UtcTs,
    pub total: u8,
}

/// Which score before the first dose is the baseline (CONFIG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaselineRule {
    /// The first score on record before the first dose: the intake measure taken at the
    /// consultation (KAP-SPEC 2.1 stage 2 "baseline instruments (PHQ-9, GAD-7, PCL-5 as
    /// indicated, C-SSRS)"; 7.10 column "Intake").
    #[default]
    Intake,
    /// The last score before the first dose: usually the pre-dose measure of the first dosing day
    /// (7.10 "each dosing day (pre-dose)"), the score nearest to the start of treatment.
    LastBeforeFirstDose,
}

/// The clinic's outcome definitions. KAP-SPEC 7.1: "Definitions vary between organizations …
/// → CONFIG with these defaults".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OutcomeSettings {
    pub baseline: BaselineRule,
    /// PHQ-9 response: a reduction from baseline of at least this percentage (7.1: ">= 50%
    /// reduction from baseline" [S36]).
    pub phq9_response_percent: u8,
    /// PHQ-9 remission: a score below this (7.1: "remission: score < 5" [S36]).
    pub phq9_remission_below: u8,
    /// GAD-7 response (7.2: "no standard verified → CONFIG-DEFAULT response >= 50% reduction",
    /// UNVERIFIED, mirrors PHQ-9).
    pub gad7_response_percent: u8,
    /// GAD-7 remission (7.2: "remission < 5", UNVERIFIED, mirrors PHQ-9).
    pub gad7_remission_below: u8,
    /// Compute response only when the baseline is at least moderate (PHQ-9 and GAD-7 >= 10, the
    /// lower edge of "moderate" in 7.1 [S34] and 7.2 [S37]). TV-PHQ-R5 note: "many programs only
    /// compute response when baseline >= 10 [S36]; CONFIG". Off by default: TV-PHQ-R5 expects
    /// a response from a baseline of 8.
    pub response_needs_moderate_baseline: bool,
    /// PCL-5: a change of at least this many points is a reliable change (7.3: "5–10 points =
    /// reliable change", secondary summary of NCPTSD guidance [S68]).
    pub pcl5_reliable_change_points: u8,
    /// PCL-5: a change of at least this many points is clinically meaningful (7.3: "10–20 points
    /// = clinically meaningful change" [S68]).
    pub pcl5_meaningful_change_points: u8,
}

impl Default for OutcomeSettings {
    fn default() -> Self {
        Self {
            baseline: BaselineRule::Intake,
            phq9_response_percent: 50,
            phq9_remission_below: 5,
            gad7_response_percent: 50,
            gad7_remission_below: 5,
            response_needs_moderate_baseline: false,
            pcl5_reliable_change_points: 5,
            pcl5_meaningful_change_points: 10,
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

impl OutcomeSettings {
    pub fn check(&self) -> Result<(), SettingsError> {
        let e = |field, message| Err(SettingsError { field, message });
        if !(1..=100).contains(&self.phq9_response_percent) {
            return e("phq9_response_percent", "a reduction of 1 to 100 %");
        }
        if !(1..=100).contains(&self.gad7_response_percent) {
            return e("gad7_response_percent", "a reduction of 1 to 100 %");
        }
        if !(1..=max_total(Instrument::Phq9)).contains(&self.phq9_remission_below) {
            return e("phq9_remission_below", "a PHQ-9 score of 1 to 27");
        }
        if !(1..=max_total(Instrument::Gad7)).contains(&self.gad7_remission_below) {
            return e("gad7_remission_below", "a GAD-7 score of 1 to 21");
        }
        if self.pcl5_reliable_change_points == 0
            || self.pcl5_reliable_change_points >= self.pcl5_meaningful_change_points
            || self.pcl5_meaningful_change_points > max_total(Instrument::Pcl5)
        {
            return e("pcl5_meaningful_change_points", "1 to 80 points, more than the reliable change");
        }
        Ok(())
    }

    /// (response %, remission below) of an instrument; `None` where the spec defines none.
    fn rule(&self, instrument: Instrument) -> Option<(u8, u8)> {
        match instrument {
            Instrument::Phq9 => Some((self.phq9_response_percent, self.phq9_remission_below)),
            Instrument::Gad7 => Some((self.gad7_response_percent, self.gad7_remission_below)),
            Instrument::Pcl5 | Instrument::CssrsScreener => None,
        }
    }
}

/// The highest total of an instrument (7.1: 0–27, 7.2: 0–21, 7.3: 0–80); the C-SSRS screener has
/// a risk level, not a total.
pub const fn max_total(instrument: Instrument) -> u8 {
    match instrument {
        Instrument::Phq9 => 27,
        Instrument::Gad7 => 21,
        Instrument::Pcl5 => 80,
        Instrument::CssrsScreener => 0,
    }
}

/// The lower edge of "moderate" (7.1 PHQ-9 10–14 [S34]; 7.2 GAD-7 10–14 [S37]). The PCL-5 has no
/// severity bands (7.3), so no baseline is "moderate" there.
pub const fn moderate_from(instrument: Instrument) -> Option<u8> {
    match instrument {
        Instrument::Phq9 | Instrument::Gad7 => Some(10),
        Instrument::Pcl5 | Instrument::CssrsScreener => None,
    }
}

/// Why a response or remission is not stated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotComputed {
    /// The spec defines none for this instrument (PCL-5).
    NoDefinition,
    /// The clinic computes response only from a baseline that is at least moderate.
    BaselineBelowModerate,
    /// A baseline of 0 cannot be reduced by a percentage.
    BaselineZero,
}

/// A yes or no, or the reason there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Judgement {
    Yes,
    No,
    NotComputed(NotComputed),
}

impl Judgement {
    fn of(b: bool) -> Self {
        if b { Judgement::Yes } else { Judgement::No }
    }

    /// `Some(true|false)`, or `None` when not computed (the API's `true`/`false`/`null`).
    pub fn as_option(self) -> Option<bool> {
        match self {
            Judgement::Yes => Some(true),
            Judgement::No => Some(false),
            Judgement::NotComputed(_) => None,
        }
    }
}

/// PCL-5 change in points (7.3 [S68]): fewer symptoms by at least the clinically meaningful or
/// the reliable change, or neither (which includes any worsening).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pcl5Change {
    ClinicallyMeaningful,
    Reliable,
    BelowReliable,
}

/// From a baseline to a follow-up score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Change {
    pub baseline: u8,
    pub follow_up: u8,
    /// Follow-up minus baseline, in points (negative: fewer symptoms).
    pub points: i16,
    /// The same as a share of the baseline, in tenths of a percent, rounded half away from zero
    /// (TV-PHQ-R3: 15 → 8 is −467, "46.7 % reduction"). `None` for a baseline of 0.
    pub percent_tenths: Option<i32>,
    pub response: Judgement,
    pub remission: Judgement,
    /// PCL-5 only.
    pub pcl5: Option<Pcl5Change>,
}

impl Change {
    /// The change in percent (−46.7 for TV-PHQ-R3), for an API.
    pub fn percent(&self) -> Option<f64> {
        self.percent_tenths.map(|t| f64::from(t) / 10.0)
    }
}

/// `n / d` rounded half away from zero (`d > 0`).
fn div_round(n: i32, d: i32) -> i32 {
    if n >= 0 { (n + d / 2) / d } else { -((-n + d / 2) / d) }
}

/// Compares a follow-up total with the baseline under the clinic's definitions.
pub fn compare(instrument: Instrument, baseline: u8, follow_up: u8, settings: &OutcomeSettings) -> Change {
    let (b, f) = (i32::from(baseline), i32::from(follow_up));
    let percent_tenths = (b > 0).then(|| div_round((f - b) * 1000, b));
    let (response, remission) = match settings.rule(instrument) {
        None => (Judgement::NotComputed(NotComputed::NoDefinition), Judgement::NotComputed(NotComputed::NoDefinition)),
        Some((percent, below)) => {
            let moderate = moderate_from(instrument).unwrap_or(0);
            let response = if b == 0 {
                Judgement::NotComputed(NotComputed::BaselineZero)
            } else if settings.response_needs_moderate_baseline && baseline < moderate {
                Judgement::NotComputed(NotComputed::BaselineBelowModerate)
            } else {
                // (b - f) / b >= p / 100, in integers.
                Judgement::of(100 * (b - f) >= i32::from(percent) * b)
            };
            (response, Judgement::of(follow_up < below))
        }
    };
    let pcl5 = (instrument == Instrument::Pcl5).then(|| {
        let fewer = b - f;
        if fewer >= i32::from(settings.pcl5_meaningful_change_points) {
            Pcl5Change::ClinicallyMeaningful
        } else if fewer >= i32::from(settings.pcl5_reliable_change_points) {
            Pcl5Change::Reliable
        } else {
            Pcl5Change::BelowReliable
        }
    });
    Change {
        baseline,
        follow_up,
        points: i16::from(follow_up) - i16::from(baseline),
        percent_tenths,
        response,
        remission,
        pcl5,
    }
}

/// One instrument's outcome for one patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Outcome {
    pub instrument: Instrument,
    /// Every score, oldest first (what a chart draws).
    pub series: Vec<Score>,
    /// `None`: no score before the first dose.
    pub baseline: Option<Score>,
    /// The newest score on record.
    pub latest: Option<Score>,
    /// Baseline to latest, when the latest is a follow-up (taken once treatment started).
    pub change: Option<Change>,
}

/// The outcome of `instrument` from its scores (any order). `first_dose` is when the first dose
/// of treatment was given (the administration start of the first dosing session, not the
/// appointment's start: the pre-dose measure of that day is answered before it); `None` before
/// treatment.
pub fn evaluate(
    instrument: Instrument,
    scores: &[Score],
    first_dose: Option<UtcTs>,
    settings: &OutcomeSettings,
) -> Outcome {
    let mut series = scores.to_vec();
    // Stable: two scores at the same instant keep the order they were given in.
    series.sort_by_key(|s| s.at);
    let before_dose = |s: &&Score| first_dose.is_none_or(|d| s.at < d);
    let baseline = match settings.baseline {
        BaselineRule::Intake => series.iter().find(before_dose).copied(),
        BaselineRule::LastBeforeFirstDose => series.iter().rfind(before_dose).copied(),
    };
    let latest = series.last().copied();
    let change = match (baseline, latest, first_dose) {
        (Some(b), Some(l), Some(dose)) if l.at >= dose => Some(compare(instrument, b.total, l.total, settings)),
        _ => None,
    };
    Outcome { instrument, series, baseline, latest, change }
}

/// The outcome as it stood at `cutoff` (scores after it are left out): the outcome at the end of
/// induction that the course review and the dashboard report.
pub fn evaluate_as_of(
    instrument: Instrument,
    scores: &[Score],
    first_dose: Option<UtcTs>,
    cutoff: UtcTs,
    settings: &OutcomeSettings,
) -> Outcome {
    let upto: Vec<Score> = scores.iter().filter(|s| s.at <= cutoff).copied().collect();
    evaluate(instrument, &upto, first_dose.filter(|d| *d <= cutoff), settings)
}

impl Outcome {
    /// The (baseline, follow-up) pair a dashboard counts, when there is one.
    pub fn pair(&self) -> Option<Pair> {
        self.change.map(|c| Pair { baseline: c.baseline, follow_up: c.follow_up })
    }
}

/// A patient's (or a course's) baseline and follow-up totals: what the SQL layer fetches for the
/// dashboard, one row each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pair {
    pub baseline: u8,
    pub follow_up: u8,
}

/// `count` out of `of`, shown with both numbers so a rate of 2 patients is not mistaken for one of
/// 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, schemars::JsonSchema)]
pub struct Rate {
    pub count: u32,
    pub of: u32,
}

impl Rate {
    /// In tenths of a percent, rounded half up; `None` out of 0.
    pub fn percent_tenths(&self) -> Option<u32> {
        (self.of > 0)
            .then(|| (u64::from(self.count) * 1000 + u64::from(self.of) / 2) / u64::from(self.of))
            .map(|t| u32::try_from(t).unwrap_or(u32::MAX))
    }

    /// "12 of 30 (40.0 %)", or "0 of 0".
    pub fn text(&self) -> String {
        match self.percent_tenths() {
            Some(t) => format!("{} of {} ({}.{} %)", self.count, self.of, t / 10, t % 10),
            None => format!("{} of {}", self.count, self.of),
        }
    }
}

/// What a dashboard shows for one instrument and one group of patients.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub instrument: Instrument,
    /// Patients with a baseline and a follow-up.
    pub patients: u32,
    /// Responders out of the patients whose response is computed.
    pub response: Rate,
    /// Patients whose response is not computed (baseline below moderate, or 0).
    pub response_not_computed: u32,
    /// Remissions out of all the patients.
    pub remission: Rate,
    /// Median change in points (negative: fewer symptoms); `None` for no patient.
    pub median_change_points: Option<f64>,
    /// Median change in percent of baseline (baselines of 0 left out).
    pub median_change_percent: Option<f64>,
}

/// The median, halfway between the two middle values for an even count; `None` when empty.
pub fn median(values: &mut [i32]) -> Option<f64> {
    values.sort_unstable();
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    Some(if n % 2 == 1 { f64::from(values[mid]) } else { (f64::from(values[mid - 1]) + f64::from(values[mid])) / 2.0 })
}

/// Adds up the pairs of a group of patients. Response and remission are `None`-rated (0 of 0)
/// for an instrument the spec defines none for (PCL-5).
pub fn summarize(instrument: Instrument, pairs: &[Pair], settings: &OutcomeSettings) -> Summary {
    let mut s = Summary {
        instrument,
        patients: 0,
        response: Rate::default(),
        response_not_computed: 0,
        remission: Rate::default(),
        median_change_points: None,
        median_change_percent: None,
    };
    let mut points = Vec::with_capacity(pairs.len());
    let mut percents = Vec::with_capacity(pairs.len());
    for p in pairs {
        let c = compare(instrument, p.baseline, p.follow_up, settings);
        s.patients += 1;
        points.push(i32::from(c.points));
        percents.extend(c.percent_tenths);
        match c.response {
            Judgement::Yes => {
                s.response.count += 1;
                s.response.of += 1;
            }
            Judgement::No => s.response.of += 1,
            Judgement::NotComputed(NotComputed::NoDefinition) => {}
            Judgement::NotComputed(_) => s.response_not_computed += 1,
        }
        match c.remission {
            Judgement::Yes => {
                s.remission.count += 1;
                s.remission.of += 1;
            }
            Judgement::No => s.remission.of += 1,
            Judgement::NotComputed(_) => {}
        }
    }
    s.median_change_points = median(&mut points);
    s.median_change_percent = median(&mut percents).map(|t| t / 10.0);
    s
}

/// [`summarize`] per group (route, protocol, location …), groups in key order.
pub fn summarize_by<K: Ord + Clone>(
    instrument: Instrument,
    rows: &[(K, Pair)],
    settings: &OutcomeSettings,
) -> BTreeMap<K, Summary> {
    let mut groups: BTreeMap<K, Vec<Pair>> = BTreeMap::new();
    for (k, p) in rows {
        groups.entry(k.clone()).or_default().push(*p);
    }
    groups.into_iter().map(|(k, pairs)| (k, summarize(instrument, &pairs, settings))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn day(d: i64) -> UtcTs {
        UtcTs::from_unix_micros(1_767_225_600_000_000 + d * DAY)
    }

    fn score(d: i64, total: u8) -> Score {
        Score { at: day(d), total }
    }

    /// A PHQ-9 baseline at intake (day 0), the first dose on day 7, a follow-up on day 35.
    fn phq9(baseline: u8, follow_up: u8, settings: &OutcomeSettings) -> Change {
        let o = evaluate(Instrument::Phq9, &[score(35, follow_up), score(0, baseline)], Some(day(7)), settings);
        assert_eq!(o.baseline, Some(score(0, baseline)));
        assert_eq!(o.latest, Some(score(35, follow_up)));
        o.change.unwrap_or_else(|| panic!("a follow-up after the first dose has a change"))
    }

    #[test]
    fn tv_phq_r1() {
        let c = phq9(20, 9, &OutcomeSettings::default());
        assert_eq!((c.points, c.percent_tenths), (-11, Some(-550)), "55.0 % reduction");
        assert_eq!((c.response, c.remission), (Judgement::Yes, Judgement::No));
    }

    #[test]
    fn tv_phq_r2() {
        let c = phq9(20, 10, &OutcomeSettings::default());
        assert_eq!(c.percent_tenths, Some(-500));
        assert_eq!((c.response, c.remission), (Judgement::Yes, Judgement::No), "50.0 % is a response (>=)");
    }

    #[test]
    fn tv_phq_r3() {
        let c = phq9(15, 8, &OutcomeSettings::default());
        assert_eq!(c.percent_tenths, Some(-467), "46.7 % reduction");
        assert_eq!(c.percent(), Some(-46.7));
        assert_eq!((c.response, c.remission), (Judgement::No, Judgement::No));
    }

    #[test]
    fn tv_phq_r4() {
        let c = phq9(18, 4, &OutcomeSettings::default());
        assert_eq!(c.percent_tenths, Some(-778), "77.8 % reduction");
        assert_eq!((c.response, c.remission), (Judgement::Yes, Judgement::Yes));
    }

    #[test]
    fn tv_phq_r5() {
        let c = phq9(8, 4, &OutcomeSettings::default());
        assert_eq!(c.percent_tenths, Some(-500));
        assert_eq!((c.response, c.remission), (Judgement::Yes, Judgement::Yes));
        // With the clinic's rule that response needs a baseline of at least moderate (>= 10).
        let strict = OutcomeSettings { response_needs_moderate_baseline: true, ..OutcomeSettings::default() };
        let c = phq9(8, 4, &strict);
        assert_eq!(c.response, Judgement::NotComputed(NotComputed::BaselineBelowModerate));
        assert_eq!(c.response.as_option(), None);
        assert_eq!(c.remission, Judgement::Yes, "remission does not depend on the baseline");
        assert_eq!(phq9(10, 5, &strict).response, Judgement::Yes, "10 is moderate (7.1)");
    }

    #[test]
    fn the_baseline_is_a_score_from_before_the_first_dose() {
        let scores = [score(0, 19), score(6, 17), score(9, 12), score(20, 8)];
        let intake = evaluate(Instrument::Phq9, &scores, Some(day(7)), &OutcomeSettings::default());
        assert_eq!(intake.baseline, Some(score(0, 19)), "the intake measure");
        assert_eq!(intake.change.map(|c| (c.baseline, c.follow_up)), Some((19, 8)));
        let last = OutcomeSettings { baseline: BaselineRule::LastBeforeFirstDose, ..OutcomeSettings::default() };
        let o = evaluate(Instrument::Phq9, &scores, Some(day(7)), &last);
        assert_eq!(o.baseline, Some(score(6, 17)), "the pre-dose measure of the first dosing day");
        // A score taken at the instant of the first dose is a follow-up, not a baseline.
        let o = evaluate(Instrument::Phq9, &[score(7, 15)], Some(day(7)), &OutcomeSettings::default());
        assert_eq!((o.baseline, o.change), (None, None));
        // Only follow-ups (GAD-7 first answered after treatment started): no baseline, no change.
        let o = evaluate(Instrument::Gad7, &[score(10, 12), score(30, 4)], Some(day(7)), &OutcomeSettings::default());
        assert_eq!((o.baseline, o.latest, o.change), (None, Some(score(30, 4)), None));
        assert_eq!(o.series.len(), 2);
    }

    #[test]
    fn no_change_before_treatment_or_without_scores() {
        let o = evaluate(Instrument::Phq9, &[score(0, 20), score(3, 18)], None, &OutcomeSettings::default());
        assert_eq!((o.baseline, o.latest, o.change), (Some(score(0, 20)), Some(score(3, 18)), None));
        let o = evaluate(Instrument::Phq9, &[score(0, 20)], Some(day(7)), &OutcomeSettings::default());
        assert_eq!(o.change, None, "the latest is the baseline itself");
        let o = evaluate(Instrument::Phq9, &[], Some(day(7)), &OutcomeSettings::default());
        assert_eq!((o.baseline, o.latest, o.change, o.series.len()), (None, None, None, 0));
    }

    #[test]
    fn the_outcome_as_of_the_end_of_induction_leaves_later_scores_out() {
        let scores = [score(0, 20), score(20, 9), score(60, 16)];
        let eoi = evaluate_as_of(Instrument::Phq9, &scores, Some(day(7)), day(28), &OutcomeSettings::default());
        assert_eq!(eoi.change.map(|c| c.response), Some(Judgement::Yes));
        let now = evaluate(Instrument::Phq9, &scores, Some(day(7)), &OutcomeSettings::default());
        assert_eq!(now.change.map(|c| c.response), Some(Judgement::No), "the relapse on day 60");
        let before = evaluate_as_of(Instrument::Phq9, &scores, Some(day(7)), day(5), &OutcomeSettings::default());
        assert_eq!(before.change, None, "no dose by the cutoff");
    }

    #[test]
    fn gad7_mirrors_phq9_and_pcl5_reports_points_only() {
        let c = compare(Instrument::Gad7, 14, 4, &OutcomeSettings::default());
        assert_eq!((c.response, c.remission, c.pcl5), (Judgement::Yes, Judgement::Yes, None));
        let c = compare(Instrument::Pcl5, 50, 38, &OutcomeSettings::default());
        assert_eq!(c.response, Judgement::NotComputed(NotComputed::NoDefinition));
        assert_eq!(c.remission, Judgement::NotComputed(NotComputed::NoDefinition));
        assert_eq!(c.pcl5, Some(Pcl5Change::ClinicallyMeaningful), "12 points");
        assert_eq!(compare(Instrument::Pcl5, 50, 45, &OutcomeSettings::default()).pcl5, Some(Pcl5Change::Reliable));
        assert_eq!(
            compare(Instrument::Pcl5, 50, 46, &OutcomeSettings::default()).pcl5,
            Some(Pcl5Change::BelowReliable)
        );
        assert_eq!(
            compare(Instrument::Pcl5, 30, 40, &OutcomeSettings::default()).pcl5,
            Some(Pcl5Change::BelowReliable)
        );
    }

    #[test]
    fn a_zero_baseline_and_a_worsening() {
        let c = compare(Instrument::Phq9, 0, 3, &OutcomeSettings::default());
        assert_eq!((c.percent_tenths, c.response), (None, Judgement::NotComputed(NotComputed::BaselineZero)));
        let c = compare(Instrument::Phq9, 12, 18, &OutcomeSettings::default());
        assert_eq!((c.points, c.percent_tenths, c.response), (6, Some(500), Judgement::No));
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(OutcomeSettings::default().check(), Ok(()));
        let bad = OutcomeSettings { phq9_response_percent: 0, ..OutcomeSettings::default() };
        assert_eq!(bad.check().map_err(|e| e.field), Err("phq9_response_percent"));
        let bad = OutcomeSettings { gad7_remission_below: 22, ..OutcomeSettings::default() };
        assert_eq!(bad.check().map_err(|e| e.field), Err("gad7_remission_below"));
        let bad = OutcomeSettings { pcl5_reliable_change_points: 10, ..OutcomeSettings::default() };
        assert!(bad.check().is_err());
        let parsed: OutcomeSettings =
            serde_json::from_str(r#"{"response_needs_moderate_baseline":true}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((parsed.response_needs_moderate_baseline, parsed.phq9_remission_below), (true, 5));
        assert!(serde_json::from_str::<OutcomeSettings>(r#"{"respons":1}"#).is_err(), "a misspelt setting");
    }

    #[test]
    fn rates_and_medians_for_a_dashboard() {
        let pairs = [
            Pair { baseline: 20, follow_up: 9 }, // response, no remission (R1)
            Pair { baseline: 15, follow_up: 8 }, // neither (R3)
            Pair { baseline: 18, follow_up: 4 }, // both (R4)
            Pair { baseline: 8, follow_up: 4 },  // both by default (R5)
        ];
        let s = summarize(Instrument::Phq9, &pairs, &OutcomeSettings::default());
        assert_eq!(s.patients, 4);
        assert_eq!((s.response, s.remission), (Rate { count: 3, of: 4 }, Rate { count: 2, of: 4 }));
        assert_eq!(s.response.text(), "3 of 4 (75.0 %)");
        // Changes −11, −7, −14, −4 → sorted −14, −11, −7, −4 → median −9.
        assert_eq!(s.median_change_points, Some(-9.0));
        // −55.0, −46.7, −77.8, −50.0 → median (−55.0 + −50.0) / 2.
        assert_eq!(s.median_change_percent, Some(-52.5));
        let strict = OutcomeSettings { response_needs_moderate_baseline: true, ..OutcomeSettings::default() };
        let s = summarize(Instrument::Phq9, &pairs, &strict);
        assert_eq!((s.response, s.response_not_computed), (Rate { count: 2, of: 3 }, 1));
        assert_eq!(s.remission, Rate { count: 2, of: 4 }, "remission counts every patient");
        let none = summarize(Instrument::Phq9, &[], &OutcomeSettings::default());
        assert_eq!((none.median_change_points, none.response.text()), (None, "0 of 0".to_owned()));
        let pcl = summarize(Instrument::Pcl5, &[Pair { baseline: 40, follow_up: 20 }], &OutcomeSettings::default());
        assert_eq!((pcl.response, pcl.remission, pcl.response_not_computed), (Rate::default(), Rate::default(), 0));
        assert_eq!(pcl.median_change_points, Some(-20.0));
        assert_eq!(Rate { count: 1, of: 3 }.percent_tenths(), Some(333));
        assert_eq!(Rate { count: 2, of: 3 }.percent_tenths(), Some(667));
    }

    #[test]
    fn groups_are_summarised_apart() {
        let rows = [
            ("iv", Pair { baseline: 20, follow_up: 9 }),
            ("spravato", Pair { baseline: 15, follow_up: 14 }),
            ("iv", Pair { baseline: 18, follow_up: 4 }),
        ];
        let by = summarize_by(Instrument::Phq9, &rows, &OutcomeSettings::default());
        assert_eq!(by.keys().copied().collect::<Vec<_>>(), ["iv", "spravato"]);
        assert_eq!(by["iv"].response, Rate { count: 2, of: 2 });
        assert_eq!(by["spravato"].response, Rate { count: 0, of: 1 });
        assert_eq!(by["iv"].median_change_points, Some(-12.5));
    }

    #[test]
    fn an_outcome_gives_the_pair_the_dashboard_counts() {
        let o = evaluate(Instrument::Phq9, &[score(0, 20), score(30, 9)], Some(day(7)), &OutcomeSettings::default());
        assert_eq!(o.pair(), Some(Pair { baseline: 20, follow_up: 9 }));
        let json = serde_json::to_value(&o).unwrap_or_default();
        assert_eq!(json["instrument"], "phq9");
        assert_eq!(json["change"]["response"], "yes");
    }
}
