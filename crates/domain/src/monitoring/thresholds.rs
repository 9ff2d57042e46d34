//! Hold, stop and escalate (KAP-SPEC 5.3, MON-01..MON-11): the route's [`Thresholds`] applied to
//! each reading as it is recorded, and the clinician-observed emergencies.

use serde::{Deserialize, Serialize};

use super::{ConfigError, DoseTimes, Measurement, Moaas, Reading, ReadingSummary, summarize_all};
use crate::UtcTs;
use crate::decision::Route;
use crate::vitals::BloodPressure;

/// Label values for Spravato that a protocol may tighten but never loosen (KAP-SPEC design
/// principle 1).
pub struct SpravatoLabel;

impl SpravatoLabel {
    /// MON-01: the label asks for the prescriber's confirmation when pre-dose BP is > 140/90
    /// [S1][S10].
    pub const CONFIRM_ABOVE_SYSTOLIC: u16 = 140;
    pub const CONFIRM_ABOVE_DIASTOLIC: u16 = 90;
    /// 5.4 / DC-01: at least 2 hours of observation at every session [S1][S3][S4].
    pub const MIN_OBSERVATION_MINUTES: u16 = 120;
}

/// How a BP limit compares: `above` is the label's "> 140/90", `at_or_above` the "≥ 180/100".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Above,
    AtOrAbove,
}

/// A BP limit crossed when either part crosses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BpLimit {
    pub systolic: u16,
    pub diastolic: u16,
    pub comparison: Comparison,
    pub source: String,
}

impl BpLimit {
    pub fn crossed_by(&self, bp: BloodPressure) -> bool {
        match self.comparison {
            Comparison::Above => bp.above(self.systolic, self.diastolic),
            Comparison::AtOrAbove => bp.at_or_above(self.systolic, self.diastolic),
        }
    }

    /// The lowest systolic and diastolic values that cross the limit.
    fn first_crossing(&self) -> (u16, u16) {
        match self.comparison {
            Comparison::Above => (self.systolic.saturating_add(1), self.diastolic.saturating_add(1)),
            Comparison::AtOrAbove => (self.systolic, self.diastolic),
        }
    }

    /// "above 140/90", "at or above 180/100".
    pub fn describe(&self) -> String {
        let how = match self.comparison {
            Comparison::Above => "above",
            Comparison::AtOrAbove => "at or above",
        };
        format!("{how} {}/{}", self.systolic, self.diastolic)
    }
}

/// MON-03: a post-dose rise of at least these many mmHg over the pre-dose reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BpRise {
    pub systolic_rise: u16,
    pub diastolic_rise: u16,
    pub source: String,
}

/// MON-06: SpO2 below `below` % for more than `sustained_seconds`, or a fall of at least
/// `fall_from_baseline` points from the pre-dose reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spo2Limits {
    pub below: u8,
    pub sustained_seconds: u16,
    pub fall_from_baseline: u8,
    pub source: String,
}

/// MON-07: respiratory rate below this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RespRateLimit {
    pub below: u8,
    pub source: String,
}

/// MON-08: heart rate above `above` or below `below`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartRateLimits {
    pub above: u16,
    pub below: u16,
    pub source: String,
}

/// MON-09: MOAA/S at or below this stops further dosing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoaasLimit {
    pub at_or_below: u8,
    pub source: String,
}

/// A route's thresholds (KAP-SPEC 5.3), from the protocol file. MON-04, MON-10 and MON-11 are
/// label rules with nothing to set; MON-04 and MON-11 are raised by staff
/// ([`observation_alert`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// MON-01: pre-dose BP needing the prescriber's confirmation and a reason.
    pub pre_dose_confirm: BpLimit,
    /// MON-02: pre-dose BP that holds the dose (GATE-05).
    pub pre_dose_hold: BpLimit,
    /// MON-03: rise over the pre-dose reading that alerts the prescriber.
    pub post_dose_rise: BpRise,
    /// MON-05: BP during an IV infusion that pauses it; `null` for the other routes.
    pub infusion_pause: Option<BpLimit>,
    /// MON-06.
    pub spo2: Spo2Limits,
    /// MON-07.
    pub resp_rate: RespRateLimit,
    /// MON-08.
    pub heart_rate: HeartRateLimits,
    /// MON-09.
    pub moaas_stop_dosing: MoaasLimit,
}

impl Thresholds {
    pub(crate) fn check(&self, route: Route) -> Result<(), ConfigError> {
        let sources = [
            ("pre_dose_confirm", &self.pre_dose_confirm.source),
            ("pre_dose_hold", &self.pre_dose_hold.source),
            ("post_dose_rise", &self.post_dose_rise.source),
            ("spo2", &self.spo2.source),
            ("resp_rate", &self.resp_rate.source),
            ("heart_rate", &self.heart_rate.source),
            ("moaas_stop_dosing", &self.moaas_stop_dosing.source),
        ];
        for (name, source) in
            sources.into_iter().chain(self.infusion_pause.as_ref().map(|l| ("infusion_pause", &l.source)))
        {
            if source.trim().is_empty() {
                return Err(ConfigError::new(format!("thresholds.{name}"), "name the source of this threshold"));
            }
        }
        if route == Route::SpravatoIntranasal {
            let (sys, dia) = self.pre_dose_confirm.first_crossing();
            if sys > SpravatoLabel::CONFIRM_ABOVE_SYSTOLIC + 1 || dia > SpravatoLabel::CONFIRM_ABOVE_DIASTOLIC + 1 {
                return Err(ConfigError::new(
                    "thresholds.pre_dose_confirm",
                    "the Spravato label asks for the prescriber's confirmation above 140/90; the protocol may ask \
                     earlier, not later",
                ));
            }
        }
        if self.infusion_pause.is_some() && route != Route::IntravenousRacemic {
            return Err(ConfigError::new("thresholds.infusion_pause", "MON-05 applies to IV infusions only; use null"));
        }
        if !(1..=100).contains(&self.spo2.below) || self.spo2.fall_from_baseline == 0 {
            return Err(ConfigError::new(
                "thresholds.spo2",
                "SpO2 limit must be 1–100 % and the fall from baseline at least 1 point",
            ));
        }
        if self.heart_rate.below >= self.heart_rate.above {
            return Err(ConfigError::new("thresholds.heart_rate", "the low limit must be below the high limit"));
        }
        if self.moaas_stop_dosing.at_or_below > Moaas::MAX {
            return Err(ConfigError::new("thresholds.moaas_stop_dosing", "MOAA/S is scored 0 to 5"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertSeverity {
    Info,
    Warning,
    Emergency,
}

/// What the rule asks staff to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertAction {
    /// MON-01: the prescriber confirms dosing and records a reason.
    ConfirmBeforeDosing,
    /// MON-02: hold the dose; the prescriber decides.
    HoldDose,
    /// MON-03, MON-08.
    AlertPrescriber,
    /// MON-04: emergency care immediately.
    EmergencyCare,
    /// MON-05.
    PauseInfusion,
    /// MON-06, MON-07: stimulate, airway support, oxygen, no further dosing.
    SupportBreathing,
    /// MON-09: no further dosing, continuous observation, prescriber at the bedside.
    StopFurtherDosing,
    /// MON-10: loss of consciousness.
    EmergencyResponse,
    /// MON-11: minimise stimulation, prescriber, rescue per protocol.
    ManageEmergenceReaction,
    /// Not yet a rule: look again.
    Recheck,
}

/// A threshold crossed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Alert {
    /// The spec's rule id, e.g. `MON-03`.
    pub rule: &'static str,
    pub severity: AlertSeverity,
    pub action: AlertAction,
    pub message: String,
    /// A clinician must acknowledge it (recorded with who and when by the app).
    pub needs_ack: bool,
}

impl Alert {
    fn new(rule: &'static str, severity: AlertSeverity, action: AlertAction, message: String) -> Self {
        Self { rule, severity, action, message, needs_ack: severity != AlertSeverity::Info }
    }

    /// Whether no (further) dose may be given while the alert stands.
    pub fn stops_dosing(&self) -> bool {
        matches!(
            self.action,
            AlertAction::HoldDose
                | AlertAction::EmergencyCare
                | AlertAction::PauseInfusion
                | AlertAction::SupportBreathing
                | AlertAction::StopFurtherDosing
                | AlertAction::EmergencyResponse
        )
    }
}

/// The pre-dose BP gate (MON-01, MON-02; GATE-05).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "outcome", content = "alert", rename_all = "snake_case")]
pub enum PreDoseBp {
    Pass,
    /// MON-01: dose only after the prescriber confirms, with a reason.
    ConfirmWithReason(Alert),
    /// MON-02: hold (it supersedes MON-01).
    Hold(Alert),
}

pub fn pre_dose_bp(t: &Thresholds, bp: BloodPressure) -> PreDoseBp {
    if t.pre_dose_hold.crossed_by(bp) {
        return PreDoseBp::Hold(Alert::new(
            "MON-02",
            AlertSeverity::Warning,
            AlertAction::HoldDose,
            format!(
                "Pre-dose BP {bp} is {} (MON-02): hold the dose (GATE-05); the prescriber decides.",
                t.pre_dose_hold.describe()
            ),
        ));
    }
    if t.pre_dose_confirm.crossed_by(bp) {
        return PreDoseBp::ConfirmWithReason(Alert::new(
            "MON-01",
            AlertSeverity::Warning,
            AlertAction::ConfirmBeforeDosing,
            format!(
                "Pre-dose BP {bp} is {} (MON-01): dose only after the prescriber confirms the benefit outweighs \
                 the risk and records the reason.",
                t.pre_dose_confirm.describe()
            ),
        ));
    }
    PreDoseBp::Pass
}

fn duration_words(seconds: u16) -> String {
    if seconds.is_multiple_of(60) { format!("{} min", seconds / 60) } else { format!("{seconds} s") }
}

const BREATHING: &str = "stimulate the patient, support the airway, give oxygen, and give no further dose";

/// The alerts one reading raises, most severe first. `history` is the session's other readings
/// (pre-dose ones give the baselines; earlier SpO2 readings tell whether a low SpO2 has lasted).
/// A reading at or before the start of dosing is a pre-dose reading: its BP goes through the
/// pre-dose gate instead of MON-03.
pub fn reading_alerts(t: &Thresholds, dose: &DoseTimes, history: &[Reading], reading: &Reading) -> Vec<Alert> {
    let others = history.iter().filter(|r| *r != reading);
    reading_alerts_given(t, dose, &summarize_all(others, dose.started_at), history, reading)
}

/// [`reading_alerts`] with the baselines already summarised (`baseline`, of the session's readings
/// at `dose.started_at`, e.g. a [`super::SummaryFold`] kept with the session): only a post-dose
/// reading reads them, and a post-dose reading is never its own baseline, so `baseline` may have
/// been summarised with `reading` in it.
pub fn reading_alerts_given(
    t: &Thresholds,
    dose: &DoseTimes,
    baseline: &ReadingSummary,
    history: &[Reading],
    reading: &Reading,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    let pre_dose = reading.taken_at <= dose.started_at;
    let others = || history.iter().filter(move |r| *r != reading);

    match reading.measurement {
        Measurement::BloodPressure { bp, heart_rate, .. } => {
            if pre_dose {
                match pre_dose_bp(t, bp) {
                    PreDoseBp::Pass => {}
                    PreDoseBp::ConfirmWithReason(a) | PreDoseBp::Hold(a) => alerts.push(a),
                }
            } else {
                alerts.extend(bp_rise_alert(t, bp, baseline.baseline_bp));
                if let Some(limit) =
                    t.infusion_pause.as_ref().filter(|l| dose.running_at(reading.taken_at) && l.crossed_by(bp))
                {
                    alerts.push(Alert::new(
                        "MON-05",
                        AlertSeverity::Warning,
                        AlertAction::PauseInfusion,
                        format!(
                            "BP {bp} during the infusion is {} (MON-05): pause the infusion; the prescriber \
                             evaluates.",
                            limit.describe()
                        ),
                    ));
                }
            }
            if let Some(hr) = heart_rate.map(|h| h.value()) {
                let limits = &t.heart_rate;
                let side = if hr > limits.above {
                    Some(format!("above {}/min", limits.above))
                } else if hr < limits.below {
                    Some(format!("below {}/min", limits.below))
                } else {
                    None
                };
                if let Some(side) = side {
                    alerts.push(Alert::new(
                        "MON-08",
                        AlertSeverity::Warning,
                        AlertAction::AlertPrescriber,
                        format!("Heart rate {hr}/min is {side} (MON-08): tell the prescriber."),
                    ));
                }
            }
        }
        Measurement::Spo2Rr { resp_rate: Some(rr), .. } if rr.value() < t.resp_rate.below => {
            alerts.push(Alert::new(
                "MON-07",
                AlertSeverity::Emergency,
                AlertAction::SupportBreathing,
                format!(
                    "Respiratory rate {}/min is below {}/min (MON-07): {BREATHING}.",
                    rr.value(),
                    t.resp_rate.below
                ),
            ));
        }
        Measurement::Spo2Rr { .. } | Measurement::Cadss { .. } => {}
        Measurement::Moaas { score } => {
            if score == Moaas::LOSS_OF_CONSCIOUSNESS {
                alerts.push(Alert::new(
                    "MON-10",
                    AlertSeverity::Emergency,
                    AlertAction::EmergencyResponse,
                    "MOAA/S 0: no response to a painful stimulus, loss of consciousness (MON-10). Start the \
                     emergency response; give no further dose."
                        .to_owned(),
                ));
            } else if score.value() <= t.moaas_stop_dosing.at_or_below {
                alerts.push(Alert::new(
                    "MON-09",
                    AlertSeverity::Warning,
                    AlertAction::StopFurtherDosing,
                    format!(
                        "{score} ({}) is at or below {} (MON-09): give no further dose, observe continuously, and \
                         call the prescriber to the bedside.",
                        score.description().to_lowercase(),
                        t.moaas_stop_dosing.at_or_below
                    ),
                ));
            }
        }
    }
    if let Some(spo2) = reading.measurement.spo2() {
        alerts.extend(spo2_alert(
            t,
            others(),
            reading,
            spo2.value(),
            if pre_dose { None } else { baseline.baseline_spo2.map(|s| s.value()) },
        ));
    }
    alerts.sort_by_key(|a| std::cmp::Reverse(a.severity));
    alerts
}

fn bp_rise_alert(t: &Thresholds, bp: BloodPressure, baseline: Option<BloodPressure>) -> Option<Alert> {
    let Some(base) = baseline else {
        return Some(Alert::new(
            "MON-03",
            AlertSeverity::Info,
            AlertAction::Recheck,
            "No pre-dose BP is recorded, so the rise from pre-dose (MON-03) cannot be checked.".to_owned(),
        ));
    };
    let d_sys = i32::from(bp.systolic.value()) - i32::from(base.systolic.value());
    let d_dia = i32::from(bp.diastolic.value()) - i32::from(base.diastolic.value());
    let rise = &t.post_dose_rise;
    if d_sys < i32::from(rise.systolic_rise) && d_dia < i32::from(rise.diastolic_rise) {
        return None;
    }
    Some(Alert::new(
        "MON-03",
        AlertSeverity::Warning,
        AlertAction::AlertPrescriber,
        format!(
            "BP {bp} is {d_sys:+}/{d_dia:+} mmHg from the pre-dose {base} (MON-03: a rise of {} systolic or {} \
             diastolic). Tell the prescriber and check BP more often; if it stays high, involve a practitioner \
             experienced in BP management.",
            rise.systolic_rise, rise.diastolic_rise
        ),
    ))
}

fn spo2_alert<'a>(
    t: &Thresholds,
    others: impl Iterator<Item = &'a Reading>,
    reading: &Reading,
    now: u8,
    baseline: Option<u8>,
) -> Option<Alert> {
    let limits = &t.spo2;
    if let Some(base) = baseline.filter(|b| b.saturating_sub(now) >= limits.fall_from_baseline) {
        return Some(Alert::new(
            "MON-06",
            AlertSeverity::Emergency,
            AlertAction::SupportBreathing,
            format!(
                "SpO2 {now}% has fallen {} points from the pre-dose {base}% (MON-06: a fall of {}): {BREATHING}.",
                base - now,
                limits.fall_from_baseline
            ),
        ));
    }
    if now >= limits.below {
        return None;
    }
    // The low run: back from this reading over earlier SpO2 readings still below the limit.
    let mut earlier: Vec<(UtcTs, u8)> = others
        .filter(|r| r.taken_at < reading.taken_at)
        .filter_map(|r| r.measurement.spo2().map(|s| (r.taken_at, s.value())))
        .collect();
    earlier.sort_by_key(|(at, _)| *at);
    let run_start =
        earlier.iter().rev().take_while(|(_, v)| *v < limits.below).last().map_or(reading.taken_at, |(at, _)| *at);
    let lasted_micros = reading.taken_at.unix_micros().saturating_sub(run_start.unix_micros());
    let sustained = lasted_micros > i64::from(limits.sustained_seconds) * 1_000_000;
    let over = duration_words(limits.sustained_seconds);
    Some(if sustained {
        Alert::new(
            "MON-06",
            AlertSeverity::Emergency,
            AlertAction::SupportBreathing,
            format!("SpO2 {now}% has been below {}% for over {over} (MON-06): {BREATHING}.", limits.below),
        )
    } else {
        Alert::new(
            "MON-06",
            AlertSeverity::Info,
            AlertAction::Recheck,
            format!(
                "SpO2 {now}% is below {}%: watch it; if it stays below for over {over}, MON-06 applies.",
                limits.below
            ),
        )
    })
}

/// Signs staff record from what they see or the patient reports (MON-04, MON-11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClinicianObservation {
    // Hypertensive crisis (MON-04, [S1]).
    ChestPain,
    ShortnessOfBreath,
    // Hypertensive encephalopathy (MON-04, [S1]).
    SuddenSevereHeadache,
    VisualDisturbance,
    Seizure,
    ReducedConsciousness,
    FocalNeurologicalDeficit,
    /// MON-11 [S12].
    SevereEmergenceReaction,
}

impl ClinicianObservation {
    pub const ALL: [ClinicianObservation; 8] = [
        ClinicianObservation::ChestPain,
        ClinicianObservation::ShortnessOfBreath,
        ClinicianObservation::SuddenSevereHeadache,
        ClinicianObservation::VisualDisturbance,
        ClinicianObservation::Seizure,
        ClinicianObservation::ReducedConsciousness,
        ClinicianObservation::FocalNeurologicalDeficit,
        ClinicianObservation::SevereEmergenceReaction,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ClinicianObservation::ChestPain => "Chest pain",
            ClinicianObservation::ShortnessOfBreath => "Shortness of breath",
            ClinicianObservation::SuddenSevereHeadache => "Sudden severe headache",
            ClinicianObservation::VisualDisturbance => "Visual disturbance",
            ClinicianObservation::Seizure => "Seizure",
            ClinicianObservation::ReducedConsciousness => "Reduced consciousness",
            ClinicianObservation::FocalNeurologicalDeficit => "Focal neurological deficit",
            ClinicianObservation::SevereEmergenceReaction => "Severe emergence reaction or agitation",
        }
    }
}

/// The alert an observation raises: MON-04 (label MUST: emergency care now) or MON-11.
pub fn observation_alert(o: ClinicianObservation) -> Alert {
    match o {
        ClinicianObservation::ChestPain | ClinicianObservation::ShortnessOfBreath => Alert::new(
            "MON-04",
            AlertSeverity::Emergency,
            AlertAction::EmergencyCare,
            format!("{}: a possible hypertensive crisis (MON-04). Get emergency care now.", o.label()),
        ),
        ClinicianObservation::SevereEmergenceReaction => Alert::new(
            "MON-11",
            AlertSeverity::Warning,
            AlertAction::ManageEmergenceReaction,
            "Severe emergence reaction or agitation (MON-11): minimise stimulation, call the prescriber, and give \
             rescue medication as the protocol says."
                .to_owned(),
        ),
        _ => Alert::new(
            "MON-04",
            AlertSeverity::Emergency,
            AlertAction::EmergencyCare,
            format!("{}: possible hypertensive encephalopathy (MON-04). Get emergency care now.", o.label()),
        ),
    }
}
