//! The eligibility engine (KAP-SPEC section 3).
//!
//! The rules live in a versioned rule file (`content/eligibility/`): id, condition, scope,
//! rationale, source, the data elements each reads, and the severity of each of its *cases*.
//! This module holds what the file cannot: how each rule's case is decided from the
//! consultation. The split lets a clinic's medical director change a CONFIG-DEFAULT severity (a
//! pregnancy excludes by default) in content, while the logic that reads the data stays tested
//! code. [`RuleSet::check`] refuses a file whose rules and code disagree.
//!
//! A rule whose data is missing yields a `missing_data` finding ("pregnancy status not
//! recorded"), never a silent pass; missing data keeps the outcome at `needs_review`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::consultation::{
    Consultation, DrugClass, HepaticStatus, IntraocularRisk, PregnancyStatus, PressureRiskCondition, PsychoticDisorder,
    SubstanceUseDisorder, is_treatment_resistant,
};
use crate::instruments::cssrs::Risk;
use crate::patient::SexAtBirth;

/// Which products a rule applies to (spec: ESK, KET, ALL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Spravato (esketamine).
    Esketamine,
    /// Racemic ketamine, any route.
    Racemic,
    All,
}

impl Scope {
    pub fn covers(self, family: Family) -> bool {
        matches!(
            (self, family),
            (Scope::All, _) | (Scope::Esketamine, Family::Esketamine) | (Scope::Racemic, Family::Racemic)
        )
    }
}

/// The two product families a decision can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Esketamine,
    Racemic,
}

/// A rule's severity, as the rule file assigns it to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Hard stop: cannot be signed away.
    Exclude,
    /// Blocks until a prescriber records a reasoned disposition.
    PhysicianReview,
    /// Allowed, with a warning (may alter monitoring).
    Precaution,
    /// Informational only.
    Info,
}

/// A finding's severity: a rule's severity, or data the rule needs that is not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingSeverity {
    Exclude,
    PhysicianReview,
    MissingData,
    Precaution,
    Info,
}

impl From<Severity> for FindingSeverity {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Exclude => FindingSeverity::Exclude,
            Severity::PhysicianReview => FindingSeverity::PhysicianReview,
            Severity::Precaution => FindingSeverity::Precaution,
            Severity::Info => FindingSeverity::Info,
        }
    }
}

/// The overall result, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Excluded,
    NeedsReview,
    EligibleWithPrecautions,
    Eligible,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Excluded => "excluded",
            Outcome::NeedsReview => "needs_review",
            Outcome::EligibleWithPrecautions => "eligible_with_precautions",
            Outcome::Eligible => "eligible",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Excluded => "Excluded",
            Outcome::NeedsReview => "Needs prescriber review",
            Outcome::EligibleWithPrecautions => "Eligible with precautions",
            Outcome::Eligible => "Eligible",
        }
    }
}

/// One rule of the rule file.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    /// The condition as the spec words it.
    pub condition: String,
    pub scope: Scope,
    /// Severity of each case the rule's code can report (`present`, `current`, `history`, ...).
    pub cases: BTreeMap<String, Severity>,
    /// The data elements the rule reads (paths in the consultation input, or `patient.*`).
    pub reads: Vec<String>,
    pub rationale: String,
    pub source: String,
    /// Label-derived numbers the rule uses (e.g. `systolic_above: 140`).
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
}

impl Rule {
    /// The most severe case: the rule's headline severity for listings.
    pub fn headline_severity(&self) -> Severity {
        let rank = |s: &Severity| match s {
            Severity::Exclude => 0,
            Severity::PhysicianReview => 1,
            Severity::Precaution => 2,
            Severity::Info => 3,
        };
        self.cases.values().copied().min_by_key(rank).unwrap_or(Severity::Info)
    }

    fn param(&self, name: &str) -> f64 {
        self.params.get(name).copied().unwrap_or(f64::NAN)
    }
}

/// A versioned rule file.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub version: String,
    pub source: String,
    pub rules: Vec<Rule>,
}

/// The clinic's CONFIG-DEFAULT values the rules use (versioned with the clinic settings).
/// Fields added later default, so settings stored by an older version still load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct EligibilitySettings {
    /// ELIG-006: resting BP at or above this excludes until controlled (default 180/100).
    pub bp_exclude_systolic: u16,
    pub bp_exclude_diastolic: u16,
    /// DDI-001: benzodiazepine daily dose above this (diazepam-equivalent mg) needs review
    /// (default 8).
    pub benzodiazepine_review_above_mg: u16,
    /// Spec 3.3: weeks at or above the minimum labelled dose for a trial to be adequate
    /// (default 6).
    pub trd_min_adequate_weeks: u8,
    /// ELIG-011: what a pregnancy is (CONFIG-DEFAULT exclude; a clinic may make it a review).
    pub pregnancy_severity: Severity,
    /// ELIG-016: what current mania is (CONFIG-DEFAULT exclude).
    pub current_mania_severity: Severity,
}

impl EligibilitySettings {
    /// The clinic's severity for a rule's case, where the spec makes it configurable.
    fn override_for(&self, rule: &str, case: &str) -> Option<Severity> {
        match (rule, case) {
            ("ELIG-011", "pregnant") => Some(self.pregnancy_severity),
            ("ELIG-016", "present") => Some(self.current_mania_severity),
            _ => None,
        }
    }
}

impl Default for EligibilitySettings {
    fn default() -> Self {
        Self {
            bp_exclude_systolic: 180,
            bp_exclude_diastolic: 100,
            benzodiazepine_review_above_mg: 8,
            trd_min_adequate_weeks: 6,
            pregnancy_severity: Severity::Exclude,
            current_mania_severity: Severity::Exclude,
        }
    }
}

/// Everything the rules read about one patient.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub birth_date: Date,
    pub today: Date,
    pub sex_at_birth: SexAtBirth,
    /// `None` before any consultation is recorded: every rule then reports missing data.
    pub consultation: Option<&'a Consultation>,
    /// The latest C-SSRS screener risk, if one was given.
    pub cssrs_risk: Option<Risk>,
    pub settings: EligibilitySettings,
}

/// Completed years of age on `today`.
pub fn age_on(birth: Date, today: Date) -> i32 {
    let mut age = today.year() - birth.year();
    if (today.month() as u8, today.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

/// What a rule's code found.
enum Check {
    Clear,
    /// A case of the rule applies; the text says what was found.
    Case(&'static str, String),
    /// The rule cannot be decided: these data elements are not recorded.
    Missing(Vec<&'static str>),
}

use Check::{Case, Clear, Missing};

/// A finding for the prescriber.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub rule_id: String,
    pub severity: FindingSeverity,
    pub scope: Scope,
    /// What was found (or which data is missing).
    pub detail: String,
    pub rationale: String,
    pub source: String,
    /// The data elements not recorded, for a `missing_data` finding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Evaluation {
    pub ruleset_version: String,
    /// The better of the two families: whether the patient can receive *some* treatment.
    pub outcome: Outcome,
    pub esketamine: Outcome,
    pub racemic: Outcome,
    pub findings: Vec<Finding>,
}

impl Evaluation {
    pub fn outcome_for(&self, family: Family) -> Outcome {
        match family {
            Family::Esketamine => self.esketamine,
            Family::Racemic => self.racemic,
        }
    }

    /// The findings that apply to `family`.
    pub fn findings_for(&self, family: Family) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.scope.covers(family))
    }
}

fn flag(v: Option<bool>, element: &'static str, what: &str) -> Check {
    match v {
        None => Missing(vec![element]),
        Some(true) => Case("present", what.to_owned()),
        Some(false) => Clear,
    }
}

fn has_class(c: &Consultation, class: DrugClass) -> Vec<&str> {
    c.medications.iter().filter(|m| m.drug_class == class).map(|m| m.name.as_str()).collect()
}

/// A DDI rule that fires when any medication of `class` is on the reconciled list.
fn class_rule(c: &Consultation, class: DrugClass) -> Check {
    if !c.medications_reconciled {
        return Missing(vec!["medications_reconciled"]);
    }
    let names = has_class(c, class);
    if names.is_empty() { Clear } else { Case("present", format!("on {}", names.join(", "))) }
}

fn pregnancy_possible(i: &Inputs<'_>) -> bool {
    i.sex_at_birth != SexAtBirth::Male
}

type RuleFn = fn(&Inputs<'_>, &Consultation, &Rule) -> Check;

/// The code of every rule: id, the cases it can report, and the check.
const RULES: &[(&str, &[&str], RuleFn)] = &[
    ("ELIG-001", &["present"], |_, c, _| {
        flag(
            c.conditions.aneurysmal_vascular_disease,
            "conditions.aneurysmal_vascular_disease",
            "aneurysmal vascular disease",
        )
    }),
    ("ELIG-002", &["present"], |_, c, _| {
        flag(
            c.conditions.arteriovenous_malformation,
            "conditions.arteriovenous_malformation",
            "arteriovenous malformation",
        )
    }),
    ("ELIG-003", &["present"], |_, c, _| {
        flag(
            c.conditions.intracerebral_hemorrhage_history,
            "conditions.intracerebral_hemorrhage_history",
            "history of intracerebral hemorrhage",
        )
    }),
    ("ELIG-004", &["present"], |_, c, _| {
        flag(
            c.conditions.ketamine_hypersensitivity,
            "conditions.ketamine_hypersensitivity",
            "hypersensitivity to (es)ketamine",
        )
    }),
    ("ELIG-005", &["recent", "remote"], |_, c, _| match c.conditions.pressure_risk_condition {
        None => Missing(vec!["conditions.pressure_risk_condition"]),
        Some(PressureRiskCondition::None) => Clear,
        Some(PressureRiskCondition::Recent) => {
            Case("recent", "recent condition where a BP/ICP rise is a serious risk".into())
        }
        Some(PressureRiskCondition::Remote) => {
            Case("remote", "remote history of a condition where a BP/ICP rise is a risk".into())
        }
    }),
    ("ELIG-006", &["at_or_above_threshold", "uncontrolled_hypertension"], |i, c, _| {
        let (s, d) = (i.settings.bp_exclude_systolic, i.settings.bp_exclude_diastolic);
        match (c.vitals.blood_pressure, c.conditions.uncontrolled_hypertension) {
            (Some(bp), _) if bp.at_or_above(s, d) => {
                Case("at_or_above_threshold", format!("resting BP {bp} is at or above {s}/{d}"))
            }
            (_, Some(true)) => Case("uncontrolled_hypertension", "untreated or poorly controlled hypertension".into()),
            (Some(_), Some(false)) => Clear,
            (bp, h) => Missing(
                [
                    bp.is_none().then_some("vitals.systolic_mmhg"),
                    h.is_none().then_some("conditions.uncontrolled_hypertension"),
                ]
                .into_iter()
                .flatten()
                .collect(),
            ),
        }
    }),
    ("ELIG-007", &["above"], |_, c, r| match c.vitals.blood_pressure {
        None => Missing(vec!["vitals.systolic_mmhg"]),
        Some(bp) => {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let (s, d) = (r.param("systolic_above") as u16, r.param("diastolic_above") as u16);
            if bp.above(s, d) { Case("above", format!("baseline BP {bp} is above {s}/{d}")) } else { Clear }
        }
    }),
    ("ELIG-008", &["present"], |_, c, _| {
        flag(
            c.conditions.hypertensive_encephalopathy_history,
            "conditions.hypertensive_encephalopathy_history",
            "history of hypertensive encephalopathy",
        )
    }),
    ("ELIG-009", &["present"], |_, c, _| {
        flag(
            c.conditions.raised_intracranial_pressure,
            "conditions.raised_intracranial_pressure",
            "raised intracranial pressure, intracranial mass or recent head injury",
        )
    }),
    ("ELIG-010", &["raised_iop_risk", "open_globe"], |_, c, _| match c.conditions.intraocular_risk {
        None => Missing(vec!["conditions.intraocular_risk"]),
        Some(IntraocularRisk::None) => Clear,
        Some(IntraocularRisk::GlaucomaOrRaisedIop) => {
            Case("raised_iop_risk", "condition where raised intraocular pressure is harmful".into())
        }
        Some(IntraocularRisk::OpenGlobeInjury) => Case("open_globe", "open globe injury".into()),
    }),
    // Sex at birth only decides whether an unrecorded pregnancy or breastfeeding status is
    // missing data; a status the clinician recorded is always read (a recorded pregnancy is
    // never ignored because of a registration detail).
    ("ELIG-011", &["pregnant"], |i, c, _| match c.pregnancy_status {
        Some(PregnancyStatus::Pregnant) => Case("pregnant", "pregnant".into()),
        Some(_) => Clear,
        None if !pregnancy_possible(i) => Clear,
        None => Missing(vec!["pregnancy_status"]),
    }),
    ("ELIG-012", &["present"], |_, c, _| {
        if c.pregnancy_status != Some(PregnancyStatus::Pregnant) {
            return Clear;
        }
        flag(
            c.conditions.preeclampsia_or_eclampsia,
            "conditions.preeclampsia_or_eclampsia",
            "pre-eclampsia / eclampsia",
        )
    }),
    ("ELIG-013", &["present"], |i, c, _| {
        if c.breastfeeding.is_none() && !pregnancy_possible(i) {
            return Clear;
        }
        flag(c.breastfeeding, "breastfeeding", "breastfeeding")
    }),
    ("ELIG-014", &["under_age"], |i, _, r| {
        let age = age_on(i.birth_date, i.today);
        if f64::from(age) < r.param("minimum_age") { Case("under_age", format!("age {age}")) } else { Clear }
    }),
    ("ELIG-015", &["current", "history"], |_, c, _| match c.conditions.psychotic_disorder {
        None => Missing(vec!["conditions.psychotic_disorder"]),
        Some(PsychoticDisorder::None) => Clear,
        Some(PsychoticDisorder::Current) => Case("current", "current psychosis or primary psychotic disorder".into()),
        Some(PsychoticDisorder::History) => Case("history", "history of psychosis".into()),
    }),
    ("ELIG-016", &["present"], |_, c, _| {
        flag(c.conditions.current_mania, "conditions.current_mania", "current mania, hypomania or mixed episode")
    }),
    ("ELIG-017", &["present"], |_, c, _| {
        flag(
            c.conditions.bipolar_currently_depressed,
            "conditions.bipolar_currently_depressed",
            "bipolar disorder, currently depressed",
        )
    }),
    ("ELIG-018", &["active", "active_dissociative"], |_, c, _| match c.conditions.substance_use_disorder {
        None => Missing(vec!["conditions.substance_use_disorder"]),
        Some(SubstanceUseDisorder::None | SubstanceUseDisorder::History) => Clear,
        Some(SubstanceUseDisorder::Active) => Case("active", "active substance use disorder".into()),
        Some(SubstanceUseDisorder::ActiveDissociative) => {
            Case("active_dissociative", "active misuse of ketamine or other dissociatives".into())
        }
    }),
    ("ELIG-019", &["present"], |_, c, _| match c.conditions.hepatic {
        None => Missing(vec!["conditions.hepatic"]),
        Some(HepaticStatus::ChildPughC) => Case("present", "severe hepatic impairment (Child-Pugh C)".into()),
        Some(_) => Clear,
    }),
    ("ELIG-020", &["present"], |_, c, _| match c.conditions.hepatic {
        None => Missing(vec!["conditions.hepatic"]),
        Some(HepaticStatus::ChildPughB) => Case("present", "moderate hepatic impairment (Child-Pugh B)".into()),
        Some(_) => Clear,
    }),
    ("ELIG-021", &["present"], |_, c, _| match c.conditions.hepatic {
        None => Missing(vec!["conditions.hepatic"]),
        Some(HepaticStatus::None) => Clear,
        Some(_) => Case("present", "hepatic disease or abnormal liver function tests".into()),
    }),
    ("ELIG-022", &["present"], |_, c, _| {
        flag(
            c.conditions.uncontrolled_hyperthyroidism,
            "conditions.uncontrolled_hyperthyroidism",
            "uncontrolled hyperthyroidism",
        )
    }),
    ("ELIG-023", &["present"], |_, c, _| {
        flag(
            c.conditions.cystitis_or_urinary_symptoms,
            "conditions.cystitis_or_urinary_symptoms",
            "cystitis or lower urinary tract symptoms",
        )
    }),
    ("ELIG-024", &["high_risk"], |i, _, _| match i.cssrs_risk {
        None => Missing(vec!["questionnaires.cssrs_screener"]),
        Some(Risk::High) => {
            Case("high_risk", "C-SSRS screener: high risk — follow the crisis workflow (GATE-01)".into())
        }
        Some(_) => Clear,
    }),
    ("ELIG-025", &["present"], |_, c, _| {
        flag(
            c.conditions.serious_reaction_to_ketamine,
            "conditions.serious_reaction_to_ketamine",
            "previous serious adverse reaction to ketamine or a related agent",
        )
    }),
    ("ELIG-026", &["present", "with_theophylline"], |_, c, _| match c.conditions.seizure_disorder {
        None => Missing(vec!["conditions.seizure_disorder"]),
        Some(false) => Clear,
        Some(true) if !c.medications_reconciled => Missing(vec!["medications_reconciled"]),
        Some(true) if !has_class(c, DrugClass::TheophyllineOrAminophylline).is_empty() => {
            Case("with_theophylline", "seizure disorder while on theophylline/aminophylline".into())
        }
        Some(true) => Case("present", "seizure disorder".into()),
    }),
    ("ELIG-027", &["present"], |_, c, _| {
        flag(c.conditions.unable_to_consent, "conditions.unable_to_consent", "unable to give informed consent")
    }),
    ("ELIG-028", &["older_adult"], |i, _, r| {
        let age = age_on(i.birth_date, i.today);
        if f64::from(age) >= r.param("age_at_or_above") { Case("older_adult", format!("age {age}")) } else { Clear }
    }),
    ("ELIG-029", &["not_trd"], |i, c, _| {
        if is_treatment_resistant(&c.antidepressant_trials, i.settings.trd_min_adequate_weeks) {
            Clear
        } else {
            Case(
                "not_trd",
                format!(
                    "fewer than two adequate (≥ {} weeks) failed antidepressant trials in the current episode",
                    i.settings.trd_min_adequate_weeks
                ),
            )
        }
    }),
    ("DDI-001", &["present", "above_threshold"], |i, c, _| {
        if !c.medications_reconciled {
            return Missing(vec!["medications_reconciled"]);
        }
        let benzos: Vec<_> = c.medications.iter().filter(|m| m.drug_class == DrugClass::Benzodiazepine).collect();
        if benzos.is_empty() {
            return Clear;
        }
        if benzos.iter().any(|m| m.diazepam_equivalent_mg.is_none()) {
            return Missing(vec!["medications[].diazepam_equivalent_mg"]);
        }
        let total: f64 = benzos.iter().filter_map(|m| m.diazepam_equivalent_mg).sum();
        let limit = i.settings.benzodiazepine_review_above_mg;
        let names = benzos.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
        if total > f64::from(limit) {
            Case("above_threshold", format!("{names}: {total} mg diazepam-equivalent daily, above {limit} mg"))
        } else {
            Case("present", format!("{names}: {total} mg diazepam-equivalent daily"))
        }
    }),
    ("DDI-002", &["present"], |_, c, _| class_rule(c, DrugClass::NonBenzodiazepineHypnotic)),
    ("DDI-003", &["present"], |_, c, _| class_rule(c, DrugClass::Opioid)),
    ("DDI-004", &["present", "alcohol"], |_, c, _| {
        // Both halves must be recorded: an unrecorded alcohol use is missing data even when
        // another depressant already gives a finding.
        let alcohol = c.conditions.alcohol_use;
        match (class_rule(c, DrugClass::OtherCnsDepressant), alcohol) {
            (Missing(mut m), None) => {
                m.push("conditions.alcohol_use");
                Missing(m)
            }
            (Missing(m), Some(_)) => Missing(m),
            (_, None) => Missing(vec!["conditions.alcohol_use"]),
            (Case(case, detail), Some(_)) => Case(case, detail),
            (Clear, Some(true)) => Case("alcohol", "current alcohol use (none within 12 h of dosing: GATE-06)".into()),
            (Clear, Some(false)) => Clear,
        }
    }),
    ("DDI-005", &["present"], |_, c, _| class_rule(c, DrugClass::Psychostimulant)),
    ("DDI-006", &["present"], |_, c, _| class_rule(c, DrugClass::Maoi)),
    ("DDI-007", &["present"], |_, c, _| class_rule(c, DrugClass::Lamotrigine)),
    ("DDI-008", &["present"], |_, c, _| class_rule(c, DrugClass::TheophyllineOrAminophylline)),
    ("DDI-009", &["present"], |_, c, _| class_rule(c, DrugClass::Sympathomimetic)),
    ("DDI-010", &["present"], |_, c, _| class_rule(c, DrugClass::Cyp3a4Or2b6Modulator)),
    ("DDI-011", &["present"], |_, c, _| class_rule(c, DrugClass::NasalCorticosteroidOrDecongestant)),
    ("DDI-012", &["present"], |_, c, _| class_rule(c, DrugClass::Antidepressant)),
];

/// A rule file that does not match the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("eligibility rule file: {0}")]
pub struct RuleSetError(pub String);

impl RuleSet {
    /// Every rule in the file has code, every coded rule is in the file, and every case the code
    /// can report has a severity. Run when the content is loaded, so a bad file stops start-up.
    pub fn check(&self) -> Result<(), RuleSetError> {
        for (id, cases, _) in RULES {
            let rule = self
                .rules
                .iter()
                .find(|r| r.id == *id)
                .ok_or_else(|| RuleSetError(format!("{id} is missing from version {}", self.version)))?;
            for case in *cases {
                if !rule.cases.contains_key(*case) {
                    return Err(RuleSetError(format!("{id} gives no severity for case `{case}`")));
                }
            }
            if let Some(extra) = rule.cases.keys().find(|k| !cases.contains(&k.as_str())) {
                return Err(RuleSetError(format!("{id} names case `{extra}`, which its code never reports")));
            }
        }
        for rule in &self.rules {
            if !RULES.iter().any(|(id, _, _)| *id == rule.id) {
                return Err(RuleSetError(format!("{} has no implementation", rule.id)));
            }
            if rule.params.values().any(|v| !v.is_finite()) {
                return Err(RuleSetError(format!("{} has a parameter that is not a number", rule.id)));
            }
        }
        let needs = [
            ("ELIG-007", "systolic_above"),
            ("ELIG-007", "diastolic_above"),
            ("ELIG-014", "minimum_age"),
            ("ELIG-028", "age_at_or_above"),
        ];
        for (id, param) in needs {
            if self.rules.iter().find(|r| r.id == id).is_some_and(|r| !r.params.contains_key(param)) {
                return Err(RuleSetError(format!("{id} needs the parameter `{param}`")));
            }
        }
        Ok(())
    }

    /// Evaluates every rule for one patient. The set must have passed [`RuleSet::check`].
    pub fn evaluate(&self, inputs: &Inputs<'_>) -> Evaluation {
        let empty;
        let consultation = match inputs.consultation {
            Some(c) => c,
            None => {
                empty = Consultation::empty();
                &empty
            }
        };
        let mut findings = Vec::new();
        for rule in &self.rules {
            let Some((_, _, check)) = RULES.iter().find(|(id, _, _)| *id == rule.id) else { continue };
            let (severity, detail, missing) = match check(inputs, consultation, rule) {
                Clear => continue,
                Case(case, detail) => {
                    match inputs.settings.override_for(&rule.id, case).or(rule.cases.get(case).copied()) {
                        Some(s) => (FindingSeverity::from(s), detail, Vec::new()),
                        None => continue,
                    }
                }
                Missing(elements) => {
                    let detail = format!("not recorded: {}", elements.join(", "));
                    (FindingSeverity::MissingData, detail, elements)
                }
            };
            findings.push(Finding {
                rule_id: rule.id.clone(),
                severity,
                scope: rule.scope,
                detail,
                rationale: rule.rationale.clone(),
                source: rule.source.clone(),
                missing,
            });
        }
        let family_outcome = |family: Family| {
            findings.iter().filter(|f| f.scope.covers(family)).fold(Outcome::Eligible, |acc, f| {
                acc.min(match f.severity {
                    FindingSeverity::Exclude => Outcome::Excluded,
                    FindingSeverity::PhysicianReview | FindingSeverity::MissingData => Outcome::NeedsReview,
                    FindingSeverity::Precaution => Outcome::EligibleWithPrecautions,
                    FindingSeverity::Info => Outcome::Eligible,
                })
            })
        };
        let (esketamine, racemic) = (family_outcome(Family::Esketamine), family_outcome(Family::Racemic));
        Evaluation {
            ruleset_version: self.version.clone(),
            outcome: esketamine.max(racemic),
            esketamine,
            racemic,
            findings,
        }
    }
}

impl Consultation {
    /// A consultation with nothing recorded.
    pub fn empty() -> Self {
        Consultation {
            mental_health_history: None,
            current_symptoms: None,
            treatment_goals: None,
            medical_history_notes: None,
            diagnoses: Vec::new(),
            diagnosis_table_version: String::new(),
            conditions: Default::default(),
            medications_reconciled: false,
            medications: Vec::new(),
            allergies: Vec::new(),
            antidepressant_trials: Vec::new(),
            substance_use_notes: None,
            pregnancy_status: None,
            breastfeeding: None,
            vitals: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests;
