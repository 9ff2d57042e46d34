//! The discharge gate (KAP-SPEC 6.1, DC-01..DC-09): every criterion must be met before the
//! patient leaves. Each is reported met, unmet or not yet recorded, with a plain reason and who
//! can resolve it, so the floor board can say what is still missing.
//!
//! The CONFIG-DEFAULT values live in the route's protocol file ([`DischargeSettings`]); the label
//! floor does not: Spravato observation is never shorter than 2 hours from the first device.

use serde::{Deserialize, Serialize};
use time::Duration;

use crate::UtcTs;
use crate::decision::Route;
use crate::identity::Role;
use crate::instruments::cssrs::Risk;
use crate::monitoring::{Anchor, ConfigError, DoseTimes, Moaas, ReadingSummary, SpravatoLabel, Timed};

/// DC-01: how long the patient stays at least, counted from `from` (KAP-SPEC 5.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinimumObservation {
    pub minutes: u16,
    pub from: Anchor,
    pub source: String,
}

/// DC-03: BP below these limits and within `rise_over_baseline_at_most` mmHg of the pre-dose
/// reading on both parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DischargeBp {
    pub systolic_below: u16,
    pub diastolic_below: u16,
    pub rise_over_baseline_at_most: u16,
    pub source: String,
}

/// DC-04: MOAA/S at least `at_least`, or back to the pre-dose score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DischargeMoaas {
    pub at_least: u8,
    pub or_back_to_baseline: bool,
    pub source: String,
}

/// DC-05: CADSS at or below the cut-off of its version, or back to the pre-dose total. `null`
/// for a version means only the return to baseline counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DischargeCadss {
    pub cadss23_at_most: Option<u8>,
    pub cadss6_at_most: Option<u8>,
    pub or_back_to_baseline: bool,
    pub source: String,
}

/// DC-06: SpO2 back to the pre-dose value (less at most `spo2_below_baseline_at_most` points),
/// on room air, and a respiratory rate within the limits given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DischargeRespiratory {
    pub spo2_below_baseline_at_most: u8,
    pub resp_rate_at_least: Option<u8>,
    pub resp_rate_at_most: Option<u8>,
    pub source: String,
}

/// A route's discharge settings (KAP-SPEC 5.4, 6.1), from the protocol file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DischargeSettings {
    pub minimum_observation: MinimumObservation,
    pub blood_pressure: DischargeBp,
    pub moaas: DischargeMoaas,
    pub cadss: DischargeCadss,
    pub respiratory: DischargeRespiratory,
    /// DC-09 (CONFIG): a C-SSRS screener at discharge, and HIGH risk keeps the patient.
    pub cssrs_check: bool,
    /// A reading older than this does not count for DC-03..DC-06; `null`: any reading taken after
    /// the end of dosing counts (the spec sets no age).
    pub readings_max_age_minutes: Option<u16>,
}

impl DischargeSettings {
    pub(crate) fn check(&self, route: Route) -> Result<(), ConfigError> {
        if route == Route::SpravatoIntranasal
            && self.minimum_observation.minutes < SpravatoLabel::MIN_OBSERVATION_MINUTES
        {
            return Err(ConfigError::new(
                "discharge.minimum_observation.minutes",
                "Spravato observation is at least 120 minutes at every session (label and REMS)",
            ));
        }
        if self.moaas.at_least > Moaas::MAX {
            return Err(ConfigError::new("discharge.moaas.at_least", "MOAA/S is scored 0 to 5"));
        }
        if self.cadss.cadss23_at_most.is_some_and(|c| c > crate::monitoring::Cadss23::MAX)
            || self.cadss.cadss6_at_most.is_some_and(|c| c > crate::monitoring::Cadss6::MAX)
        {
            return Err(ConfigError::new("discharge.cadss", "a cut-off beyond the scale's maximum"));
        }
        for (name, source) in [
            ("minimum_observation", &self.minimum_observation.source),
            ("blood_pressure", &self.blood_pressure.source),
            ("moaas", &self.moaas.source),
            ("cadss", &self.cadss.source),
            ("respiratory", &self.respiratory.source),
        ] {
            if source.trim().is_empty() {
                return Err(ConfigError::new(format!("discharge.{name}"), "name the source of this criterion"));
            }
        }
        Ok(())
    }

    /// DC-01: the earliest the patient may leave; `None` until the anchor is recorded (the last
    /// device, the end of the infusion).
    pub fn earliest_discharge(&self, dose: &DoseTimes) -> Option<UtcTs> {
        let anchor = self.minimum_observation.from.at(dose)?;
        Some(anchor.plus(Duration::minutes(self.minimum_observation.minutes.into())))
    }
}

/// The REMS form's "total time from 1st device administration to completion of monitoring", in
/// whole minutes (KAP-SPEC 5.6, TV-SPR-1).
pub fn treatment_duration_minutes(first_device_at: UtcTs, completed_at: UtcTs) -> i64 {
    completed_at.unix_micros().saturating_sub(first_device_at.unix_micros()).div_euclid(60_000_000)
}

/// DC-02: the prescriber's or monitoring HCP's judgement that the patient is clinically stable
/// and ready to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ReadinessJudgement {
    pub ready: bool,
    pub assessed_at: UtcTs,
}

/// DC-07: the monitoring clinician's recovery assessment [S65].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryAssessment {
    pub oriented: bool,
    pub can_talk: bool,
    pub sits_up_and_walks_steadily_unaided: bool,
    pub nausea_controlled: bool,
    pub adequately_hydrated: bool,
}

/// What the gate reads about the session.
#[derive(Debug, Clone, PartialEq)]
pub struct DischargeFacts {
    pub dose: DoseTimes,
    pub now: UtcTs,
    /// Pre-dose baselines and latest readings ([`crate::monitoring::summarize`]).
    pub readings: ReadingSummary,
    /// DC-06: no supplemental oxygen.
    pub on_room_air: Option<bool>,
    pub readiness: Option<ReadinessJudgement>,
    pub recovery: Option<RecoveryAssessment>,
    /// DC-08: the responsible adult is here (or the pre-arranged ride has arrived).
    pub escort_present: Option<bool>,
    /// DC-09: serious adverse events of the session not yet resolved
    /// ([`crate::adverse_event::unresolved_serious`]).
    pub unresolved_serious_adverse_events: usize,
    /// DC-09: the C-SSRS screener taken at the discharge check.
    pub cssrs_at_discharge: Option<Risk>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CriterionStatus {
    Met,
    Unmet,
    NotYetRecorded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Criterion {
    /// `DC-01` .. `DC-09`.
    pub id: &'static str,
    pub title: &'static str,
    pub status: CriterionStatus,
    /// Plain words: what was found, or what is missing.
    pub reason: String,
    /// The roles that can resolve it; empty when only time can (DC-01).
    pub resolved_by: Vec<Role>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DischargeReadiness {
    /// Every criterion met.
    pub ready: bool,
    /// DC-01's time, when known.
    pub earliest_at: Option<UtcTs>,
    pub criteria: Vec<Criterion>,
}

const MONITORING: [Role; 2] = [Role::Nurse, Role::Prescriber];

/// Reasons give times relative to now ("12 min ago"): the clinic's time zone is the web layer's.
fn ago(now: UtcTs, t: UtcTs) -> String {
    match treatment_duration_minutes(t, now) {
        m if m < 1 => "just now".to_owned(),
        m => format!("{m} min ago"),
    }
}

struct Gate<'a> {
    settings: &'a DischargeSettings,
    facts: &'a DischargeFacts,
}

impl Gate<'_> {
    /// A reading counts for recovery if taken after the end of dosing and, where the clinic sets
    /// one, recently enough.
    fn usable<T: Copy>(&self, t: Option<Timed<T>>) -> Result<Timed<T>, String> {
        let Some(t) = t else { return Err("no reading after dosing yet".to_owned()) };
        let last_dose = self.facts.dose.last_administration_at();
        if t.taken_at <= last_dose {
            return Err("the latest reading is from before the end of dosing".to_owned());
        }
        if let Some(max) = self.settings.readings_max_age_minutes
            && self.facts.now.unix_micros() - t.taken_at.unix_micros() > i64::from(max) * 60_000_000
        {
            return Err(format!("the latest reading is older than {max} min ({})", ago(self.facts.now, t.taken_at)));
        }
        Ok(t)
    }

    fn dc01(&self) -> Criterion {
        let min = &self.settings.minimum_observation;
        let (status, reason) = match self.settings.earliest_discharge(&self.facts.dose) {
            None => (CriterionStatus::NotYetRecorded, format!("the time of {} is not recorded", min.from.phrase())),
            Some(earliest) if self.facts.now >= earliest => (
                CriterionStatus::Met,
                format!("{} min of observation after {} have passed", min.minutes, min.from.phrase()),
            ),
            Some(earliest) => {
                let anchor = min.from.at(&self.facts.dose).unwrap_or(self.facts.dose.started_at);
                let so_far = treatment_duration_minutes(anchor, self.facts.now);
                (
                    CriterionStatus::Unmet,
                    format!(
                        "{so_far} of {} min of observation after {}: {} min to go",
                        min.minutes,
                        min.from.phrase(),
                        // Rounded up: "0 min to go" would read as "may leave".
                        u64::try_from(earliest.unix_micros() - self.facts.now.unix_micros())
                            .unwrap_or(0)
                            .div_ceil(60_000_000)
                    ),
                )
            }
        };
        Criterion { id: "DC-01", title: "Minimum observation time", status, reason, resolved_by: vec![] }
    }

    fn dc02(&self) -> Criterion {
        let earliest = self.settings.earliest_discharge(&self.facts.dose);
        let (status, reason) = match self.facts.readiness {
            None => {
                (CriterionStatus::NotYetRecorded, "the prescriber or HCP has not yet assessed the patient".to_owned())
            }
            Some(j) if earliest.is_some_and(|e| j.assessed_at < e) => (
                CriterionStatus::NotYetRecorded,
                "assessed before the minimum observation time was up; assess again once it is".to_owned(),
            ),
            Some(j) if j.ready => (
                CriterionStatus::Met,
                format!("clinically stable and ready to leave (assessed {})", ago(self.facts.now, j.assessed_at)),
            ),
            Some(j) => (
                CriterionStatus::Unmet,
                format!("not yet stable enough to leave (assessed {})", ago(self.facts.now, j.assessed_at)),
            ),
        };
        Criterion {
            id: "DC-02",
            title: "Clinically stable and ready to leave",
            status,
            reason,
            resolved_by: vec![Role::Prescriber, Role::Nurse],
        }
    }

    fn dc03(&self) -> Criterion {
        let s = &self.settings.blood_pressure;
        let r = &self.facts.readings;
        let (status, reason) = match (self.usable(r.latest_bp), r.baseline_bp) {
            (Err(why), _) => (CriterionStatus::NotYetRecorded, format!("BP: {why}")),
            (Ok(_), None) => (CriterionStatus::NotYetRecorded, "no pre-dose BP is recorded to compare with".to_owned()),
            (Ok(latest), Some(base)) => {
                let bp = latest.value;
                let (sys, dia) = (bp.systolic.value(), bp.diastolic.value());
                let rise_sys = i32::from(sys) - i32::from(base.systolic.value());
                let rise_dia = i32::from(dia) - i32::from(base.diastolic.value());
                let max_rise = i32::from(s.rise_over_baseline_at_most);
                let mut problems = Vec::new();
                if sys >= s.systolic_below || dia >= s.diastolic_below {
                    problems.push(format!("not below {}/{}", s.systolic_below, s.diastolic_below));
                }
                if rise_sys > max_rise || rise_dia > max_rise {
                    problems.push(format!(
                        "{rise_sys:+}/{rise_dia:+} mmHg from the pre-dose {base}, more than +{max_rise}"
                    ));
                }
                if problems.is_empty() {
                    (
                        CriterionStatus::Met,
                        format!(
                            "BP {bp} ({}) is below {}/{} and within +{max_rise} of the pre-dose {base}",
                            ago(self.facts.now, latest.taken_at),
                            s.systolic_below,
                            s.diastolic_below
                        ),
                    )
                } else {
                    (
                        CriterionStatus::Unmet,
                        format!(
                            "BP {bp} ({}): {}; re-check until it settles",
                            ago(self.facts.now, latest.taken_at),
                            problems.join("; ")
                        ),
                    )
                }
            }
        };
        Criterion { id: "DC-03", title: "Blood pressure acceptable", status, reason, resolved_by: MONITORING.to_vec() }
    }

    fn dc04(&self) -> Criterion {
        let s = &self.settings.moaas;
        let r = &self.facts.readings;
        let (status, reason) = match self.usable(r.latest_moaas) {
            Err(why) => (CriterionStatus::NotYetRecorded, format!("MOAA/S: {why}")),
            Ok(latest) => {
                let score = latest.value;
                let at_baseline = s.or_back_to_baseline && r.baseline_moaas.is_some_and(|b| score >= b);
                if score.value() >= s.at_least || at_baseline {
                    (CriterionStatus::Met, format!("{score} ({})", ago(self.facts.now, latest.taken_at)))
                } else {
                    let base = r.baseline_moaas.map(|b| format!(" (pre-dose {})", b.value())).unwrap_or_default();
                    (
                        CriterionStatus::Unmet,
                        format!(
                            "{score} ({}): not yet {}{}{base}",
                            ago(self.facts.now, latest.taken_at),
                            s.at_least,
                            if s.or_back_to_baseline { " or back to the pre-dose score" } else { "" }
                        ),
                    )
                }
            }
        };
        Criterion { id: "DC-04", title: "Alert (sedation resolved)", status, reason, resolved_by: MONITORING.to_vec() }
    }

    fn dc05(&self) -> Criterion {
        let s = &self.settings.cadss;
        let r = &self.facts.readings;
        let (status, reason) = match self.usable(r.latest_cadss) {
            Err(why) => (CriterionStatus::NotYetRecorded, format!("CADSS: {why}")),
            Ok(latest) => {
                let score = latest.value;
                let cut = match score {
                    crate::monitoring::Cadss::Cadss23(_) => s.cadss23_at_most,
                    crate::monitoring::Cadss::Cadss6(_) => s.cadss6_at_most,
                };
                match score.resolved(r.baseline_cadss, cut, s.or_back_to_baseline) {
                    Some(true) => (
                        CriterionStatus::Met,
                        format!("{score} ({}): dissociation resolved", ago(self.facts.now, latest.taken_at)),
                    ),
                    Some(false) => (
                        CriterionStatus::Unmet,
                        format!(
                            "{score} ({}): {}{}",
                            ago(self.facts.now, latest.taken_at),
                            cut.map(|c| format!("above {c}"))
                                .unwrap_or_else(|| "no cut-off for this version".to_owned()),
                            r.baseline_cadss
                                .map(|b| format!(" and above the pre-dose {}", b.total()))
                                .unwrap_or_default()
                        ),
                    ),
                    None => (
                        CriterionStatus::NotYetRecorded,
                        format!("{score}: no cut-off for this version and no pre-dose score in it to compare with"),
                    ),
                }
            }
        };
        Criterion { id: "DC-05", title: "Dissociation resolved", status, reason, resolved_by: MONITORING.to_vec() }
    }

    fn dc06(&self) -> Criterion {
        let s = &self.settings.respiratory;
        let r = &self.facts.readings;
        let mut missing = Vec::new();
        let mut problems = Vec::new();
        let mut found = Vec::new();
        match (self.usable(r.latest_spo2), r.baseline_spo2) {
            (Err(why), _) => missing.push(format!("SpO2: {why}")),
            (Ok(_), None) => missing.push("no pre-dose SpO2 to compare with".to_owned()),
            (Ok(latest), Some(base)) => {
                let fall = base.value().saturating_sub(latest.value.value());
                if fall > s.spo2_below_baseline_at_most {
                    problems.push(format!("SpO2 {} is below the pre-dose {}", latest.value, base));
                } else {
                    found.push(format!("SpO2 {} (pre-dose {})", latest.value, base));
                }
            }
        }
        match self.facts.on_room_air {
            None => missing.push("room air or oxygen not recorded".to_owned()),
            Some(false) => problems.push("still on oxygen".to_owned()),
            Some(true) => found.push("on room air".to_owned()),
        }
        match self.usable(r.latest_resp_rate) {
            Err(why) => missing.push(format!("respiratory rate: {why}")),
            Ok(latest) => {
                let rr = latest.value.value();
                if s.resp_rate_at_least.is_some_and(|min| rr < min) || s.resp_rate_at_most.is_some_and(|max| rr > max) {
                    problems.push(format!("respiratory rate {rr}/min is outside the normal range set by the clinic"));
                } else {
                    found.push(format!("respiratory rate {rr}/min"));
                }
            }
        }
        let (status, reason) = if !problems.is_empty() {
            (CriterionStatus::Unmet, problems.into_iter().chain(missing).collect::<Vec<_>>().join("; "))
        } else if !missing.is_empty() {
            (CriterionStatus::NotYetRecorded, missing.join("; "))
        } else {
            (CriterionStatus::Met, found.join(", "))
        };
        Criterion { id: "DC-06", title: "Breathing back to baseline", status, reason, resolved_by: MONITORING.to_vec() }
    }

    fn dc07(&self) -> Criterion {
        let (status, reason) = match self.facts.recovery {
            None => (CriterionStatus::NotYetRecorded, "the recovery assessment is not recorded".to_owned()),
            Some(a) => {
                let not_yet: Vec<&str> = [
                    (a.oriented, "oriented"),
                    (a.can_talk, "can talk"),
                    (a.sits_up_and_walks_steadily_unaided, "sits up and walks steadily unaided"),
                    (a.nausea_controlled, "nausea controlled"),
                    (a.adequately_hydrated, "adequately hydrated"),
                ]
                .into_iter()
                .filter(|(ok, _)| !ok)
                .map(|(_, what)| what)
                .collect();
                if not_yet.is_empty() {
                    (
                        CriterionStatus::Met,
                        "oriented, talking, walking steadily, nausea controlled, hydrated".to_owned(),
                    )
                } else {
                    (CriterionStatus::Unmet, format!("not yet: {}", not_yet.join(", ")))
                }
            }
        };
        Criterion {
            id: "DC-07",
            title: "Recovered: oriented, walking, no nausea",
            status,
            reason,
            resolved_by: MONITORING.to_vec(),
        }
    }

    fn dc08(&self) -> Criterion {
        let (status, reason) = match self.facts.escort_present {
            None => (CriterionStatus::NotYetRecorded, "the escort's arrival is not recorded".to_owned()),
            Some(true) => (CriterionStatus::Met, "the escort is here; the patient must not drive".to_owned()),
            Some(false) => {
                (CriterionStatus::Unmet, "no escort yet: the patient may not leave alone or drive".to_owned())
            }
        };
        Criterion {
            id: "DC-08",
            title: "Escort present",
            status,
            reason,
            resolved_by: vec![Role::Frontdesk, Role::Nurse],
        }
    }

    fn dc09(&self) -> Criterion {
        let mut problems = Vec::new();
        let mut missing = None;
        let n = self.facts.unresolved_serious_adverse_events;
        if n > 0 {
            problems.push(format!("{n} serious adverse event{} not resolved", if n == 1 { "" } else { "s" }));
        }
        if self.settings.cssrs_check {
            match self.facts.cssrs_at_discharge {
                None => missing = Some("the C-SSRS screener at discharge is not done"),
                Some(Risk::High) => {
                    problems.push("C-SSRS risk is HIGH: follow the crisis and safety workflow".to_owned())
                }
                Some(_) => {}
            }
        }
        let (status, reason) = match (problems.is_empty(), missing) {
            (false, _) => (CriterionStatus::Unmet, problems.join("; ")),
            (true, Some(m)) => (CriterionStatus::NotYetRecorded, m.to_owned()),
            (true, None) if self.settings.cssrs_check => {
                (CriterionStatus::Met, "no unresolved serious adverse event; C-SSRS not high".to_owned())
            }
            (true, None) => (CriterionStatus::Met, "no unresolved serious adverse event".to_owned()),
        };
        Criterion {
            id: "DC-09",
            title: "No unresolved SAE; suicide risk not high",
            status,
            reason,
            resolved_by: vec![Role::Prescriber],
        }
    }
}

/// The discharge gate at `facts.now`.
pub fn evaluate(settings: &DischargeSettings, facts: &DischargeFacts) -> DischargeReadiness {
    let g = Gate { settings, facts };
    let criteria = vec![g.dc01(), g.dc02(), g.dc03(), g.dc04(), g.dc05(), g.dc06(), g.dc07(), g.dc08(), g.dc09()];
    DischargeReadiness {
        ready: criteria.iter().all(|c| c.status == CriterionStatus::Met),
        earliest_at: settings.earliest_discharge(&facts.dose),
        criteria,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;
    use crate::monitoring::fixtures;
    use crate::monitoring::{Cadss, Cadss6, Cadss23};
    use crate::vitals::{BloodPressure, DiastolicBp, RespRate, Spo2, SystolicBp};

    fn at(h: u8, m: u8) -> UtcTs {
        UtcTs::from_datetime(datetime!(2025-03-07 00:00 UTC).replace_time(time::Time::from_hms(h, m, 0).unwrap()))
    }

    fn before(t: UtcTs, minutes: i64) -> UtcTs {
        t.plus(Duration::minutes(-minutes))
    }

    fn bp(sys: u16, dia: u16) -> BloodPressure {
        BloodPressure::new(SystolicBp::new(sys).unwrap(), DiastolicBp::new(dia).unwrap()).unwrap()
    }

    fn timed<T>(value: T, taken_at: UtcTs) -> Option<Timed<T>> {
        Some(Timed { value, taken_at })
    }

    /// TV-SPR-1's session (first device 10:00, last 10:10) with every criterion but the clock met
    /// at `now`: readings from 5 minutes before, assessments made now.
    pub(crate) fn all_met_facts(now: UtcTs) -> DischargeFacts {
        let recent = before(now, 5);
        DischargeFacts {
            dose: DoseTimes { started_at: at(10, 0), ended_at: Some(at(10, 10)), last_device_at: Some(at(10, 10)) },
            now,
            readings: ReadingSummary {
                baseline_bp: Some(bp(120, 80)),
                latest_bp: timed(bp(125, 82), recent),
                baseline_spo2: Some(Spo2::new(98).unwrap()),
                latest_spo2: timed(Spo2::new(98).unwrap(), recent),
                latest_resp_rate: timed(RespRate::new(14).unwrap(), recent),
                baseline_moaas: Some(Moaas::ALERT),
                latest_moaas: timed(Moaas::ALERT, recent),
                baseline_cadss: Some(Cadss::Cadss23(Cadss23::new(0).unwrap())),
                latest_cadss: timed(Cadss::Cadss23(Cadss23::new(2).unwrap()), recent),
            },
            on_room_air: Some(true),
            readiness: Some(ReadinessJudgement { ready: true, assessed_at: now }),
            recovery: Some(RecoveryAssessment {
                oriented: true,
                can_talk: true,
                sits_up_and_walks_steadily_unaided: true,
                nausea_controlled: true,
                adequately_hydrated: true,
            }),
            escort_present: Some(true),
            unresolved_serious_adverse_events: 0,
            cssrs_at_discharge: Some(Risk::Low),
        }
    }

    fn spravato() -> DischargeSettings {
        fixtures::discharge(Route::SpravatoIntranasal)
    }

    fn criterion(settings: &DischargeSettings, facts: &DischargeFacts, id: &str) -> Criterion {
        evaluate(settings, facts).criteria.into_iter().find(|c| c.id == id).unwrap()
    }

    fn status(settings: &DischargeSettings, facts: &DischargeFacts, id: &str) -> CriterionStatus {
        criterion(settings, facts, id).status
    }

    #[test]
    fn tv_spr_1_discharge_at_11_55_is_refused_after_115_minutes() {
        let result = evaluate(&spravato(), &all_met_facts(at(11, 55)));
        assert!(!result.ready);
        let dc01 = &result.criteria[0];
        assert_eq!((dc01.id, dc01.status), ("DC-01", CriterionStatus::Unmet));
        assert_eq!(dc01.reason, "115 of 120 min of observation after the start of dosing (first device): 5 min to go");
        assert!(dc01.resolved_by.is_empty(), "only time resolves it");
        assert_eq!(result.earliest_at, Some(at(12, 0)));
    }

    #[test]
    fn tv_spr_1_discharge_at_12_00_is_allowed() {
        let result = evaluate(&spravato(), &all_met_facts(at(12, 0)));
        assert!(result.ready, "{:#?}", result.criteria);
        assert_eq!(result.criteria.len(), 9);
    }

    #[test]
    fn tv_spr_1_counting_from_the_last_device_moves_discharge_to_12_10() {
        let mut settings = spravato();
        settings.minimum_observation.from = Anchor::LastDevice;
        assert_eq!(settings.earliest_discharge(&all_met_facts(at(12, 0)).dose), Some(at(12, 10)));
        assert!(!evaluate(&settings, &all_met_facts(at(12, 5))).ready);
        assert!(evaluate(&settings, &all_met_facts(at(12, 10))).ready);
    }

    #[test]
    fn tv_spr_1_rems_treatment_duration_is_140_minutes_at_12_20() {
        assert_eq!(treatment_duration_minutes(at(10, 0), at(12, 20)), 140);
        assert_eq!(treatment_duration_minutes(at(10, 0), at(11, 55)), 115);
    }

    #[test]
    fn iv_observation_counts_from_the_end_of_the_infusion() {
        let settings = fixtures::discharge(Route::IntravenousRacemic);
        let mut facts = all_met_facts(at(11, 30));
        facts.dose = DoseTimes { started_at: at(10, 0), ended_at: None, last_device_at: None };
        assert_eq!(status(&settings, &facts, "DC-01"), CriterionStatus::NotYetRecorded);
        facts.dose.ended_at = Some(at(10, 40));
        assert_eq!(status(&settings, &facts, "DC-01"), CriterionStatus::Unmet);
        facts.now = at(11, 40);
        facts.readiness = Some(ReadinessJudgement { ready: true, assessed_at: at(11, 40) });
        assert!(evaluate(&settings, &facts).ready);
    }

    #[test]
    fn dc02_an_assessment_made_before_the_observation_time_was_up_does_not_count() {
        let mut facts = all_met_facts(at(12, 5));
        facts.readiness = Some(ReadinessJudgement { ready: true, assessed_at: at(11, 50) });
        assert_eq!(status(&spravato(), &facts, "DC-02"), CriterionStatus::NotYetRecorded);
        facts.readiness = Some(ReadinessJudgement { ready: false, assessed_at: at(12, 1) });
        let c = criterion(&spravato(), &facts, "DC-02");
        assert_eq!(c.status, CriterionStatus::Unmet);
        assert_eq!(c.resolved_by, [Role::Prescriber, Role::Nurse]);
        facts.readiness = None;
        assert_eq!(status(&spravato(), &facts, "DC-02"), CriterionStatus::NotYetRecorded);
    }

    #[test]
    fn dc03_bp_must_be_below_160_100_and_within_20_of_baseline() {
        let mut facts = all_met_facts(at(12, 5));
        let recent = at(12, 0);
        for (sys, dia, expected) in [
            (140, 90, CriterionStatus::Met),
            (160, 90, CriterionStatus::Unmet),
            (150, 100, CriterionStatus::Unmet),
            (141, 85, CriterionStatus::Unmet),
            (140, 100, CriterionStatus::Unmet),
        ] {
            facts.readings.latest_bp = timed(bp(sys, dia), recent);
            assert_eq!(status(&spravato(), &facts, "DC-03"), expected, "{sys}/{dia} vs 120/80");
        }
        facts.readings.baseline_bp = None;
        assert_eq!(status(&spravato(), &facts, "DC-03"), CriterionStatus::NotYetRecorded);
    }

    #[test]
    fn dc04_moaas_5_or_the_pre_dose_score() {
        let mut facts = all_met_facts(at(12, 5));
        facts.readings.latest_moaas = timed(Moaas::new(4).unwrap(), at(12, 0));
        assert_eq!(status(&spravato(), &facts, "DC-04"), CriterionStatus::Unmet);
        facts.readings.baseline_moaas = Some(Moaas::new(4).unwrap());
        assert_eq!(status(&spravato(), &facts, "DC-04"), CriterionStatus::Met);
        let mut strict = spravato();
        strict.moaas.or_back_to_baseline = false;
        assert_eq!(status(&strict, &facts, "DC-04"), CriterionStatus::Unmet);
    }

    #[test]
    fn dc05_cadss_at_most_4_or_back_to_baseline_and_cadss6_only_by_baseline() {
        let mut facts = all_met_facts(at(12, 5));
        facts.readings.latest_cadss = timed(Cadss::Cadss23(Cadss23::new(6).unwrap()), at(12, 0));
        assert_eq!(status(&spravato(), &facts, "DC-05"), CriterionStatus::Unmet);
        let six = |n| Cadss::Cadss6(Cadss6::new(n).unwrap());
        facts.readings.latest_cadss = timed(six(3), at(12, 0));
        assert_eq!(status(&spravato(), &facts, "DC-05"), CriterionStatus::NotYetRecorded, "versions differ");
        facts.readings.baseline_cadss = Some(six(3));
        assert_eq!(status(&spravato(), &facts, "DC-05"), CriterionStatus::Met);
        facts.readings.baseline_cadss = Some(six(1));
        assert_eq!(status(&spravato(), &facts, "DC-05"), CriterionStatus::Unmet);
    }

    #[test]
    fn dc06_spo2_back_to_baseline_on_room_air_and_a_normal_respiratory_rate() {
        let mut facts = all_met_facts(at(12, 5));
        facts.readings.latest_spo2 = timed(Spo2::new(97).unwrap(), at(12, 0));
        assert_eq!(status(&spravato(), &facts, "DC-06"), CriterionStatus::Unmet);
        let mut tolerant = spravato();
        tolerant.respiratory.spo2_below_baseline_at_most = 1;
        assert_eq!(status(&tolerant, &facts, "DC-06"), CriterionStatus::Met);
        facts.on_room_air = Some(false);
        assert_eq!(status(&tolerant, &facts, "DC-06"), CriterionStatus::Unmet);
        facts.on_room_air = None;
        assert_eq!(status(&tolerant, &facts, "DC-06"), CriterionStatus::NotYetRecorded);
        facts.on_room_air = Some(true);
        facts.readings.latest_resp_rate = timed(RespRate::new(8).unwrap(), at(12, 0));
        assert_eq!(status(&tolerant, &facts, "DC-06"), CriterionStatus::Unmet);
    }

    #[test]
    fn dc07_names_what_is_not_yet_recovered() {
        let mut facts = all_met_facts(at(12, 5));
        facts.recovery = facts.recovery.map(|r| RecoveryAssessment { nausea_controlled: false, ..r });
        let c = criterion(&spravato(), &facts, "DC-07");
        assert_eq!(c.status, CriterionStatus::Unmet);
        assert_eq!(c.reason, "not yet: nausea controlled");
        facts.recovery = None;
        assert_eq!(status(&spravato(), &facts, "DC-07"), CriterionStatus::NotYetRecorded);
    }

    #[test]
    fn dc08_no_escort_no_discharge() {
        let mut facts = all_met_facts(at(12, 5));
        facts.escort_present = Some(false);
        let c = criterion(&spravato(), &facts, "DC-08");
        assert_eq!(c.status, CriterionStatus::Unmet);
        assert!(c.resolved_by.contains(&Role::Frontdesk));
    }

    #[test]
    fn dc09_an_unresolved_sae_or_high_suicide_risk_keeps_the_patient() {
        let mut facts = all_met_facts(at(12, 5));
        facts.unresolved_serious_adverse_events = 1;
        assert_eq!(status(&spravato(), &facts, "DC-09"), CriterionStatus::Unmet);
        facts.unresolved_serious_adverse_events = 0;
        facts.cssrs_at_discharge = Some(Risk::High);
        let c = criterion(&spravato(), &facts, "DC-09");
        assert_eq!((c.status, c.resolved_by.as_slice()), (CriterionStatus::Unmet, [Role::Prescriber].as_slice()));
        facts.cssrs_at_discharge = None;
        assert_eq!(status(&spravato(), &facts, "DC-09"), CriterionStatus::NotYetRecorded);
        let mut off = spravato();
        off.cssrs_check = false;
        assert_eq!(status(&off, &facts, "DC-09"), CriterionStatus::Met);
    }

    #[test]
    fn readings_from_before_the_end_of_dosing_are_not_recovery_readings() {
        let mut facts = all_met_facts(at(12, 5));
        facts.readings.latest_moaas = timed(Moaas::ALERT, at(10, 5));
        let c = criterion(&spravato(), &facts, "DC-04");
        assert_eq!(c.status, CriterionStatus::NotYetRecorded);
        assert!(c.reason.contains("before the end of dosing"), "{}", c.reason);
    }

    #[test]
    fn a_clinic_may_require_recent_readings() {
        let mut settings = spravato();
        settings.readings_max_age_minutes = Some(15);
        let mut facts = all_met_facts(at(12, 5));
        facts.readings.latest_bp = timed(bp(125, 82), at(11, 40));
        assert_eq!(status(&settings, &facts, "DC-03"), CriterionStatus::NotYetRecorded);
        assert_eq!(status(&spravato(), &facts, "DC-03"), CriterionStatus::Met);
    }

    proptest! {
        #[test]
        fn dc01_is_met_exactly_when_the_minimum_time_has_passed(minutes_after in 0i64..300, observe in 0u16..240) {
            let mut settings = fixtures::discharge(Route::SublingualLozenge);
            settings.minimum_observation.minutes = observe;
            let mut facts = all_met_facts(at(10, 0));
            facts.dose = DoseTimes { started_at: at(9, 40), ended_at: Some(at(10, 0)), last_device_at: None };
            facts.now = at(10, 0).plus(Duration::minutes(minutes_after));
            let met = status(&settings, &facts, "DC-01") == CriterionStatus::Met;
            prop_assert_eq!(met, minutes_after >= i64::from(observe));
        }
    }
}
