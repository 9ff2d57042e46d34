//! Monitoring during and after dosing (KAP-SPEC section 5): what to measure and when (5.1, 5.2),
//! the hold/stop/escalate thresholds (5.3), and the sedation and dissociation scores the checks
//! record (7.7 CADSS, 7.8 MOAA/S).
//!
//! Every CONFIG-DEFAULT number lives in the route's protocol file, not here: [`MonitoringPlan`],
//! [`Thresholds`] and [`crate::discharge::DischargeSettings`] are the shapes of that file's
//! `monitoring` object ([`MonitoringProtocol`]), whose shape is documented in
//! `content/protocols/MONITORING.md`. What the code does hold are label values no clinic may
//! change (MOAA/S 0 is loss of consciousness, Spravato's 2-hour floor and its > 140/90 guide), and
//! [`MonitoringProtocol::check`] refuses a file that would go below them.

mod schedule;
mod scores;
mod thresholds;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::UtcTs;
use crate::decision::Route;
use crate::discharge::DischargeSettings;
use crate::vitals::{BloodPressure, HeartRate, RespRate, Spo2};

pub use schedule::{
    CheckState, CheckStatus, DueWindow, FixedCheck, MeasureSchedule, MonitoringPlan, PlannedCheck, Reason, Series,
    SeriesEnd, check_status, planned_checks,
};
pub use scores::{
    CADSS6_ITEMS, CADSS23_DISSOCIATION_ABOVE, Cadss, Cadss6, Cadss23, CadssItems, Dissociation, Moaas, ScoreError,
    score_cadss_items,
};
pub use thresholds::{
    Alert, AlertAction, AlertSeverity, BpLimit, BpRise, ClinicianObservation, Comparison, HeartRateLimits, MoaasLimit,
    PreDoseBp, RespRateLimit, Spo2Limits, SpravatoLabel, Thresholds, observation_alert, pre_dose_bp, reading_alerts,
    reading_alerts_given,
};

/// What a scheduled check measures (KAP-SPEC 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MeasureKind {
    /// Blood pressure, taken with heart rate and SpO2 where the monitor gives them.
    BloodPressure,
    /// Respiratory status: pulse oximetry and respiratory rate.
    Spo2Rr,
    /// Sedation, MOAA/S 0–5.
    Moaas,
    /// Dissociation, CADSS (23-item) or CADSS-6.
    Cadss,
}

impl MeasureKind {
    pub const ALL: [MeasureKind; 4] =
        [MeasureKind::BloodPressure, MeasureKind::Spo2Rr, MeasureKind::Moaas, MeasureKind::Cadss];

    pub fn as_str(self) -> &'static str {
        match self {
            MeasureKind::BloodPressure => "blood_pressure",
            MeasureKind::Spo2Rr => "spo2_rr",
            MeasureKind::Moaas => "moaas",
            MeasureKind::Cadss => "cadss",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            MeasureKind::BloodPressure => "Blood pressure (with heart rate and SpO2)",
            MeasureKind::Spo2Rr => "SpO2 and respiratory rate",
            MeasureKind::Moaas => "Sedation (MOAA/S)",
            MeasureKind::Cadss => "Dissociation (CADSS)",
        }
    }
}

/// The moment a check or an observation period counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// The first device (Spravato), the start of the infusion, the injection, or the lozenge
    /// placed: KAP-SPEC 5.2's t0, and the REMS form's "1st device administration".
    DoseStart,
    /// The last nasal device (Spravato) or application (compounded nasal spray): the
    /// conservative reading of 5.4's "first or last device" question.
    LastDevice,
    /// The end of administration: infusion stopped, last device or application given, lozenge
    /// finished.
    DoseEnd,
}

impl Anchor {
    /// The anchor's time in this session; `None` until it is recorded.
    pub fn at(self, dose: &DoseTimes) -> Option<UtcTs> {
        match self {
            Anchor::DoseStart => Some(dose.started_at),
            Anchor::LastDevice => dose.last_device_at,
            Anchor::DoseEnd => dose.ended_at,
        }
    }

    /// For sentences: "40 min after {phrase}".
    pub fn phrase(self) -> &'static str {
        match self {
            Anchor::DoseStart => "the start of dosing (first device)",
            Anchor::LastDevice => "the last device",
            Anchor::DoseEnd => "the end of dosing",
        }
    }
}

/// When the dose was given. For nasal routes the last device ends the dose, so `ended_at` and
/// `last_device_at` are the same moment; an injection starts and ends at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DoseTimes {
    pub started_at: UtcTs,
    /// `None` while the infusion runs (or before the last device).
    pub ended_at: Option<UtcTs>,
    /// Spravato / compounded nasal spray only.
    pub last_device_at: Option<UtcTs>,
}

impl DoseTimes {
    /// The latest recorded moment of administration: readings before it are not recovery
    /// readings.
    pub fn last_administration_at(&self) -> UtcTs {
        [Some(self.started_at), self.ended_at, self.last_device_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.started_at)
    }

    /// Whether an infusion was running at `t` (from the start until it is stopped).
    pub fn running_at(&self, t: UtcTs) -> bool {
        t > self.started_at && self.ended_at.is_none_or(|end| t <= end)
    }
}

/// One recorded measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Measurement {
    BloodPressure { bp: BloodPressure, heart_rate: Option<HeartRate>, spo2: Option<Spo2> },
    Spo2Rr { spo2: Option<Spo2>, resp_rate: Option<RespRate> },
    Moaas { score: Moaas },
    Cadss { score: Cadss },
}

impl Measurement {
    pub fn kind(&self) -> MeasureKind {
        match self {
            Measurement::BloodPressure { .. } => MeasureKind::BloodPressure,
            Measurement::Spo2Rr { .. } => MeasureKind::Spo2Rr,
            Measurement::Moaas { .. } => MeasureKind::Moaas,
            Measurement::Cadss { .. } => MeasureKind::Cadss,
        }
    }

    /// A respiratory reading with neither SpO2 nor a rate records nothing, and completes no
    /// check.
    pub fn is_empty(&self) -> bool {
        matches!(self, Measurement::Spo2Rr { spo2: None, resp_rate: None })
    }

    pub fn spo2(&self) -> Option<Spo2> {
        match self {
            Measurement::BloodPressure { spo2, .. } | Measurement::Spo2Rr { spo2, .. } => *spo2,
            _ => None,
        }
    }

    /// Whether this reading is back at (or better than) `baseline`, a reading of the same kind:
    /// BP no higher on either part, SpO2 no lower, MOAA/S no lower (more alert), CADSS no higher.
    /// `None` when the two cannot be compared (other kinds, CADSS versions, missing SpO2).
    pub fn at_or_better_than(&self, baseline: &Measurement) -> Option<bool> {
        match (self, baseline) {
            (Measurement::BloodPressure { bp, .. }, Measurement::BloodPressure { bp: base, .. }) => {
                Some(bp.systolic <= base.systolic && bp.diastolic <= base.diastolic)
            }
            (Measurement::Spo2Rr { spo2: Some(now), .. }, Measurement::Spo2Rr { spo2: Some(base), .. }) => {
                Some(now >= base)
            }
            (Measurement::Moaas { score }, Measurement::Moaas { score: base }) => Some(score >= base),
            (Measurement::Cadss { score }, Measurement::Cadss { score: base }) => score.at_or_below(*base),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reading {
    pub taken_at: UtcTs,
    pub measurement: Measurement,
}

impl Reading {
    fn timed<T>(&self, value: T) -> Timed<T> {
        Timed { value, taken_at: self.taken_at }
    }
}

/// A value with the time it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Timed<T> {
    pub value: T,
    pub taken_at: UtcTs,
}

/// The pre-dose baseline (the latest reading at or before the start of dosing) and the latest
/// post-dose reading of each measure: what the thresholds and discharge criteria compare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ReadingSummary {
    pub baseline_bp: Option<BloodPressure>,
    pub latest_bp: Option<Timed<BloodPressure>>,
    pub baseline_spo2: Option<Spo2>,
    pub latest_spo2: Option<Timed<Spo2>>,
    pub latest_resp_rate: Option<Timed<RespRate>>,
    pub baseline_moaas: Option<Moaas>,
    pub latest_moaas: Option<Timed<Moaas>>,
    pub baseline_cadss: Option<Cadss>,
    pub latest_cadss: Option<Timed<Cadss>>,
}

/// Baselines and latest readings from a session's readings (any order).
pub fn summarize(readings: &[Reading], dose_started_at: UtcTs) -> ReadingSummary {
    summarize_all(readings, dose_started_at)
}

/// [`summarize`] over any readings. One pass, without sorting or copying. Each figure is the
/// reading with the latest `taken_at`; of readings taken at the same instant, the one that comes
/// last.
pub fn summarize_all<'a>(readings: impl IntoIterator<Item = &'a Reading>, dose_started_at: UtcTs) -> ReadingSummary {
    let mut fold = SummaryFold::new(dose_started_at);
    readings.into_iter().for_each(|r| fold.add(r));
    fold.summary()
}

/// [`summarize`] kept up to date one reading at a time: a session holds one, so that a reading
/// added to a long session is judged without going over the readings before it again (a session
/// folded from its log would otherwise cost the square of its length).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SummaryFold {
    dose_started_at: UtcTs,
    /// The pre-dose readings kept with their times (a later one replaces an earlier one).
    bp: Option<Timed<BloodPressure>>,
    spo2: Option<Timed<Spo2>>,
    moaas: Option<Timed<Moaas>>,
    cadss: Option<Timed<Cadss>>,
    post: ReadingSummary,
}

impl SummaryFold {
    pub fn new(dose_started_at: UtcTs) -> Self {
        Self { dose_started_at, bp: None, spo2: None, moaas: None, cadss: None, post: ReadingSummary::default() }
    }

    /// The start of dosing the readings are split at.
    pub fn dose_started_at(&self) -> UtcTs {
        self.dose_started_at
    }

    /// Adds a reading after those already added (of two taken at the same instant, the later
    /// added counts).
    pub fn add(&mut self, r: &Reading) {
        /// Keeps the latest (`taken_at`, value); a tie goes to the later one.
        fn keep<T>(slot: &mut Option<Timed<T>>, r: &Reading, value: T) {
            if slot.as_ref().is_none_or(|t| r.taken_at >= t.taken_at) {
                *slot = Some(r.timed(value));
            }
        }
        let pre = r.taken_at <= self.dose_started_at;
        let s = &mut self.post;
        if let Some(v) = r.measurement.spo2() {
            keep(if pre { &mut self.spo2 } else { &mut s.latest_spo2 }, r, v);
        }
        match r.measurement {
            Measurement::BloodPressure { bp: v, .. } => keep(if pre { &mut self.bp } else { &mut s.latest_bp }, r, v),
            Measurement::Spo2Rr { resp_rate: Some(rr), .. } if !pre => keep(&mut s.latest_resp_rate, r, rr),
            Measurement::Spo2Rr { .. } => {}
            Measurement::Moaas { score } => keep(if pre { &mut self.moaas } else { &mut s.latest_moaas }, r, score),
            Measurement::Cadss { score } => keep(if pre { &mut self.cadss } else { &mut s.latest_cadss }, r, score),
        }
    }

    /// The baselines and latest readings of the readings added so far.
    pub fn summary(&self) -> ReadingSummary {
        ReadingSummary {
            baseline_bp: self.bp.map(|t| t.value),
            baseline_spo2: self.spo2.map(|t| t.value),
            baseline_moaas: self.moaas.map(|t| t.value),
            baseline_cadss: self.cadss.map(|t| t.value),
            ..self.post
        }
    }
}

/// A protocol file's monitoring values that break a rule (a label floor, an impossible value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where in the `monitoring` object, e.g. `thresholds.pre_dose_confirm`.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

/// The monitoring part of a route's protocol file: when to measure, when to alert, when the
/// patient may leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitoringProtocol {
    pub plan: MonitoringPlan,
    pub thresholds: Thresholds,
    pub discharge: DischargeSettings,
}

impl MonitoringProtocol {
    /// Refuses values below a label floor for `route` or outside what the scores allow; the
    /// protocol loader calls it so a bad file stops the server at start-up, not a session.
    pub fn check(&self, route: Route) -> Result<(), ConfigError> {
        self.plan.check()?;
        self.thresholds.check(route)?;
        self.discharge.check(route)
    }
}
