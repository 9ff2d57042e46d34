//! Rule-by-rule tests against the shipped rule file.

use time::macros::date;

use super::*;
use crate::consultation::*;
use crate::vitals::{BloodPressure, DiastolicBp, SystolicBp};

fn rules() -> RuleSet {
    let set: RuleSet = serde_json::from_str(include_str!("../../../../content/eligibility/rules.json")).unwrap();
    set.check().unwrap();
    set
}

fn trial(outcome: TrialOutcome) -> AntidepressantTrial {
    AntidepressantTrial {
        drug: "escitalopram".into(),
        max_daily_dose_mg: 20.0,
        reached_minimum_labelled_dose: true,
        weeks_at_or_above_min_dose: 8,
        adherence: Adherence::Good,
        outcome,
        current_episode: true,
    }
}

fn bp(s: u16, d: u16) -> Option<BloodPressure> {
    Some(BloodPressure::new(SystolicBp::new(s).unwrap(), DiastolicBp::new(d).unwrap()).unwrap())
}

/// A consultation where every element is recorded and nothing applies.
fn clear() -> Consultation {
    let mut c = Consultation::empty();
    c.conditions = MedicalConditions {
        aneurysmal_vascular_disease: Some(false),
        arteriovenous_malformation: Some(false),
        intracerebral_hemorrhage_history: Some(false),
        ketamine_hypersensitivity: Some(false),
        pressure_risk_condition: Some(PressureRiskCondition::None),
        uncontrolled_hypertension: Some(false),
        hypertensive_encephalopathy_history: Some(false),
        raised_intracranial_pressure: Some(false),
        intraocular_risk: Some(IntraocularRisk::None),
        preeclampsia_or_eclampsia: None,
        psychotic_disorder: Some(PsychoticDisorder::None),
        current_mania: Some(false),
        bipolar_currently_depressed: Some(false),
        substance_use_disorder: Some(SubstanceUseDisorder::None),
        alcohol_use: Some(false),
        hepatic: Some(HepaticStatus::None),
        uncontrolled_hyperthyroidism: Some(false),
        cystitis_or_urinary_symptoms: Some(false),
        serious_reaction_to_ketamine: Some(false),
        seizure_disorder: Some(false),
        unable_to_consent: Some(false),
    };
    c.medications_reconciled = true;
    c.pregnancy_status = Some(PregnancyStatus::NotPregnant);
    c.breastfeeding = Some(false);
    c.vitals.blood_pressure = bp(122, 78);
    let mut second = trial(TrialOutcome::Partial);
    second.drug = "venlafaxine".into();
    c.antidepressant_trials = vec![trial(TrialOutcome::NonResponse), second];
    c
}

fn evaluate_with(c: &Consultation, birth: Date, sex: SexAtBirth, risk: Option<Risk>) -> Evaluation {
    rules().evaluate(&Inputs {
        birth_date: birth,
        today: date!(2026 - 11 - 26),
        sex_at_birth: sex,
        consultation: Some(c),
        cssrs_risk: risk,
        settings: EligibilitySettings::default(),
    })
}

fn evaluate(c: &Consultation) -> Evaluation {
    evaluate_with(c, date!(1985 - 03 - 14), SexAtBirth::Female, Some(Risk::None))
}

/// The findings as (rule id, severity).
fn found(e: &Evaluation) -> Vec<(&str, FindingSeverity)> {
    e.findings.iter().map(|f| (f.rule_id.as_str(), f.severity)).collect()
}

#[test]
fn the_shipped_rule_file_covers_every_rule_of_the_spec() {
    let set = rules();
    let ids: Vec<_> = set.rules.iter().map(|r| r.id.as_str()).collect();
    let expected: Vec<String> =
        (1..=29).map(|n| format!("ELIG-{n:03}")).chain((1..=12).map(|n| format!("DDI-{n:03}"))).collect();
    assert_eq!(ids, expected);
    for r in &set.rules {
        assert!(!r.rationale.is_empty() && !r.source.is_empty() && !r.reads.is_empty(), "{}", r.id);
    }
}

#[test]
fn a_clear_consultation_is_eligible() {
    let e = evaluate(&clear());
    assert_eq!(found(&e), vec![]);
    assert_eq!(e.outcome, Outcome::Eligible);
    assert_eq!(e.ruleset_version, "2026.1");
}

#[test]
fn each_condition_rule_reports_its_severity() {
    use FindingSeverity::*;
    type Change = fn(&mut Consultation);
    let cases: Vec<(Change, &str, FindingSeverity)> = vec![
        (|c| c.conditions.aneurysmal_vascular_disease = Some(true), "ELIG-001", Exclude),
        (|c| c.conditions.arteriovenous_malformation = Some(true), "ELIG-002", Exclude),
        (|c| c.conditions.intracerebral_hemorrhage_history = Some(true), "ELIG-003", Exclude),
        (|c| c.conditions.ketamine_hypersensitivity = Some(true), "ELIG-004", Exclude),
        (|c| c.conditions.pressure_risk_condition = Some(PressureRiskCondition::Recent), "ELIG-005", Exclude),
        (|c| c.conditions.pressure_risk_condition = Some(PressureRiskCondition::Remote), "ELIG-005", PhysicianReview),
        (|c| c.conditions.uncontrolled_hypertension = Some(true), "ELIG-006", Exclude),
        (|c| c.conditions.hypertensive_encephalopathy_history = Some(true), "ELIG-008", Precaution),
        (|c| c.conditions.raised_intracranial_pressure = Some(true), "ELIG-009", Exclude),
        (|c| c.conditions.intraocular_risk = Some(IntraocularRisk::GlaucomaOrRaisedIop), "ELIG-010", PhysicianReview),
        (|c| c.conditions.intraocular_risk = Some(IntraocularRisk::OpenGlobeInjury), "ELIG-010", Exclude),
        (
            |c| {
                c.pregnancy_status = Some(PregnancyStatus::Pregnant);
                c.conditions.preeclampsia_or_eclampsia = Some(false);
            },
            "ELIG-011",
            Exclude,
        ),
        (|c| c.breastfeeding = Some(true), "ELIG-013", PhysicianReview),
        (|c| c.conditions.psychotic_disorder = Some(PsychoticDisorder::Current), "ELIG-015", Exclude),
        (|c| c.conditions.psychotic_disorder = Some(PsychoticDisorder::History), "ELIG-015", PhysicianReview),
        (|c| c.conditions.current_mania = Some(true), "ELIG-016", Exclude),
        (|c| c.conditions.bipolar_currently_depressed = Some(true), "ELIG-017", PhysicianReview),
        (|c| c.conditions.substance_use_disorder = Some(SubstanceUseDisorder::Active), "ELIG-018", PhysicianReview),
        (|c| c.conditions.substance_use_disorder = Some(SubstanceUseDisorder::ActiveDissociative), "ELIG-018", Exclude),
        (|c| c.conditions.hepatic = Some(HepaticStatus::DiseaseOrAbnormalLfts), "ELIG-021", PhysicianReview),
        (|c| c.conditions.uncontrolled_hyperthyroidism = Some(true), "ELIG-022", PhysicianReview),
        (|c| c.conditions.cystitis_or_urinary_symptoms = Some(true), "ELIG-023", Precaution),
        (|c| c.conditions.serious_reaction_to_ketamine = Some(true), "ELIG-025", PhysicianReview),
        (|c| c.conditions.seizure_disorder = Some(true), "ELIG-026", Precaution),
        (|c| c.conditions.unable_to_consent = Some(true), "ELIG-027", Exclude),
        (|c| c.antidepressant_trials.truncate(1), "ELIG-029", PhysicianReview),
    ];
    for (change, rule, severity) in cases {
        let mut c = clear();
        change(&mut c);
        assert_eq!(found(&evaluate(&c)), vec![(rule, severity)], "{rule}");
    }
}

#[test]
fn blood_pressure_rules_use_the_label_and_the_clinic_threshold() {
    let mut c = clear();
    c.vitals.blood_pressure = bp(150, 85);
    assert_eq!(found(&evaluate(&c)), vec![("ELIG-007", FindingSeverity::PhysicianReview)]);
    c.vitals.blood_pressure = bp(140, 90);
    assert_eq!(found(&evaluate(&c)), vec![]);
    c.vitals.blood_pressure = bp(182, 96);
    let e = evaluate(&c);
    assert_eq!(found(&e), vec![("ELIG-006", FindingSeverity::Exclude), ("ELIG-007", FindingSeverity::PhysicianReview)]);
    assert_eq!(e.outcome, Outcome::Excluded);
    // A clinic that sets its exclusion threshold to 190/110 sees only the review finding.
    let settings =
        EligibilitySettings { bp_exclude_systolic: 190, bp_exclude_diastolic: 110, ..EligibilitySettings::default() };
    let e = rules().evaluate(&Inputs {
        birth_date: date!(1985 - 03 - 14),
        today: date!(2026 - 11 - 26),
        sex_at_birth: SexAtBirth::Male,
        consultation: Some(&c),
        cssrs_risk: Some(Risk::Low),
        settings,
    });
    assert_eq!(found(&e), vec![("ELIG-007", FindingSeverity::PhysicianReview)]);
}

#[test]
fn age_rules_count_completed_years() {
    assert_eq!(age_on(date!(2008 - 11 - 27), date!(2026 - 11 - 26)), 17);
    assert_eq!(age_on(date!(2008 - 11 - 26), date!(2026 - 11 - 26)), 18);
    let c = clear();
    let minor = evaluate_with(&c, date!(2008 - 11 - 27), SexAtBirth::Female, Some(Risk::None));
    assert_eq!(found(&minor), vec![("ELIG-014", FindingSeverity::Exclude)]);
    let adult = evaluate_with(&c, date!(2008 - 11 - 26), SexAtBirth::Female, Some(Risk::None));
    assert_eq!(found(&adult), vec![]);
    let older = evaluate_with(&c, date!(1961 - 11 - 26), SexAtBirth::Female, Some(Risk::None));
    assert_eq!(found(&older), vec![("ELIG-028", FindingSeverity::Precaution)]);
    // ELIG-028 is esketamine-only: racemic stays eligible.
    assert_eq!((older.esketamine, older.racemic), (Outcome::EligibleWithPrecautions, Outcome::Eligible));
}

#[test]
fn pregnancy_rules_apply_only_where_pregnancy_is_possible() {
    let mut c = clear();
    c.pregnancy_status = None;
    c.breastfeeding = None;
    let e = evaluate(&c);
    assert_eq!(found(&e), vec![("ELIG-011", FindingSeverity::MissingData), ("ELIG-013", FindingSeverity::MissingData)]);
    assert_eq!(e.findings[0].missing, vec!["pregnancy_status"]);
    assert_eq!(e.outcome, Outcome::NeedsReview);
    let male = evaluate_with(&c, date!(1985 - 03 - 14), SexAtBirth::Male, Some(Risk::None));
    assert_eq!(found(&male), vec![]);
    // Pre-eclampsia is asked of a pregnancy, and is a racemic-only exclusion.
    c.pregnancy_status = Some(PregnancyStatus::Pregnant);
    c.breastfeeding = Some(false);
    let e = evaluate(&c);
    assert_eq!(found(&e), vec![("ELIG-011", FindingSeverity::Exclude), ("ELIG-012", FindingSeverity::MissingData)]);
    c.conditions.preeclampsia_or_eclampsia = Some(true);
    let e = evaluate(&c);
    assert_eq!(found(&e), vec![("ELIG-011", FindingSeverity::Exclude), ("ELIG-012", FindingSeverity::Exclude)]);
    assert_eq!(e.findings[1].scope, Scope::Racemic);
}

#[test]
fn hepatic_grades_split_by_product() {
    let mut c = clear();
    c.conditions.hepatic = Some(HepaticStatus::ChildPughC);
    let e = evaluate(&c);
    assert_eq!(found(&e), vec![("ELIG-019", FindingSeverity::Exclude), ("ELIG-021", FindingSeverity::PhysicianReview)]);
    // Esketamine is excluded, racemic ketamine needs review: the patient can still be treated.
    assert_eq!((e.esketamine, e.racemic, e.outcome), (Outcome::Excluded, Outcome::NeedsReview, Outcome::NeedsReview));
    c.conditions.hepatic = Some(HepaticStatus::ChildPughB);
    assert_eq!(
        found(&evaluate(&c)),
        vec![("ELIG-020", FindingSeverity::Precaution), ("ELIG-021", FindingSeverity::PhysicianReview)]
    );
}

#[test]
fn cssrs_high_risk_needs_review_and_a_missing_screener_is_a_finding() {
    let c = clear();
    let high = evaluate_with(&c, date!(1985 - 03 - 14), SexAtBirth::Female, Some(Risk::High));
    assert_eq!(found(&high), vec![("ELIG-024", FindingSeverity::PhysicianReview)]);
    assert!(high.findings[0].detail.contains("GATE-01"));
    let moderate = evaluate_with(&c, date!(1985 - 03 - 14), SexAtBirth::Female, Some(Risk::Moderate));
    assert_eq!(found(&moderate), vec![]);
    let none = evaluate_with(&c, date!(1985 - 03 - 14), SexAtBirth::Female, None);
    assert_eq!(found(&none), vec![("ELIG-024", FindingSeverity::MissingData)]);
}

fn med(name: &str, class: DrugClass, dz: Option<f64>) -> Medication {
    Medication { name: name.into(), drug_class: class, daily_dose_mg: Some(1.0), diazepam_equivalent_mg: dz }
}

#[test]
fn interaction_rules_read_the_medication_classes() {
    use FindingSeverity::*;
    let cases = [
        (DrugClass::NonBenzodiazepineHypnotic, "DDI-002", Precaution),
        (DrugClass::Opioid, "DDI-003", Precaution),
        (DrugClass::OtherCnsDepressant, "DDI-004", Precaution),
        (DrugClass::Psychostimulant, "DDI-005", Precaution),
        (DrugClass::Maoi, "DDI-006", PhysicianReview),
        (DrugClass::Lamotrigine, "DDI-007", Precaution),
        (DrugClass::TheophyllineOrAminophylline, "DDI-008", Exclude),
        (DrugClass::Sympathomimetic, "DDI-009", Precaution),
        (DrugClass::Cyp3a4Or2b6Modulator, "DDI-010", Precaution),
        (DrugClass::NasalCorticosteroidOrDecongestant, "DDI-011", Precaution),
        (DrugClass::Antidepressant, "DDI-012", Info),
    ];
    for (class, rule, severity) in cases {
        let mut c = clear();
        c.medications = vec![med("drug", class, None)];
        assert_eq!(found(&evaluate(&c)), vec![(rule, severity)], "{rule}");
    }
    let mut c = clear();
    c.medications = vec![med("sertraline", DrugClass::Antidepressant, None)];
    assert_eq!(evaluate(&c).outcome, Outcome::Eligible, "informational findings do not change the outcome");
    c.conditions.alcohol_use = Some(true);
    assert_eq!(found(&evaluate(&c)), vec![("DDI-004", Precaution), ("DDI-012", Info)]);
    // Another depressant on the list does not hide an unrecorded alcohol use.
    c.medications = vec![med("zopiclone-like", DrugClass::OtherCnsDepressant, None)];
    c.conditions.alcohol_use = None;
    assert_eq!(found(&evaluate(&c)), vec![("DDI-004", MissingData)]);
}

#[test]
fn benzodiazepines_need_review_above_the_threshold() {
    let mut c = clear();
    c.medications = vec![med("lorazepam", DrugClass::Benzodiazepine, Some(5.0))];
    assert_eq!(found(&evaluate(&c)), vec![("DDI-001", FindingSeverity::Precaution)]);
    c.medications.push(med("clonazepam", DrugClass::Benzodiazepine, Some(5.0)));
    let e = evaluate(&c);
    assert_eq!(found(&e), vec![("DDI-001", FindingSeverity::PhysicianReview)]);
    assert!(e.findings[0].detail.contains("10 mg"), "{}", e.findings[0].detail);
    c.medications[1].diazepam_equivalent_mg = None;
    assert_eq!(found(&evaluate(&c)), vec![("DDI-001", FindingSeverity::MissingData)]);
}

#[test]
fn seizure_disorder_with_theophylline_excludes_racemic_ketamine() {
    let mut c = clear();
    c.conditions.seizure_disorder = Some(true);
    c.medications = vec![med("theophylline", DrugClass::TheophyllineOrAminophylline, None)];
    let e = evaluate(&c);
    assert_eq!(found(&e), vec![("ELIG-026", FindingSeverity::Exclude), ("DDI-008", FindingSeverity::Exclude)]);
    assert_eq!((e.esketamine, e.racemic), (Outcome::Eligible, Outcome::Excluded));
    assert_eq!(e.outcome, Outcome::Eligible);
}

#[test]
fn nothing_recorded_is_never_a_silent_pass() {
    let e = rules().evaluate(&Inputs {
        birth_date: date!(1985 - 03 - 14),
        today: date!(2026 - 11 - 26),
        sex_at_birth: SexAtBirth::Female,
        consultation: None,
        cssrs_risk: None,
        settings: EligibilitySettings::default(),
    });
    assert_eq!(e.outcome, Outcome::NeedsReview);
    let missing: Vec<_> = e.findings.iter().filter(|f| f.severity == FindingSeverity::MissingData).collect();
    // Every rule that reads recorded data reports it missing; the age rules and ELIG-012 (only
    // asked of a pregnancy) and ELIG-029 (no trials is itself the finding) are decided.
    assert_eq!(missing.len(), 41 - 4, "{:?}", found(&e));
    assert!(e.findings.iter().any(|f| f.rule_id == "ELIG-029" && f.severity == FindingSeverity::PhysicianReview));
}

#[test]
fn a_rule_file_that_disagrees_with_the_code_is_refused() {
    let mut set = rules();
    set.rules.retain(|r| r.id != "ELIG-011");
    assert!(set.check().unwrap_err().0.contains("ELIG-011"));
    let mut set = rules();
    set.rules[4].cases.remove("remote");
    assert!(set.check().unwrap_err().0.contains("remote"));
    let mut set = rules();
    set.rules[0].cases.insert("maybe".into(), Severity::Info);
    assert!(set.check().is_err());
    let mut set = rules();
    set.rules[6].params.clear();
    assert!(set.check().unwrap_err().0.contains("systolic_above"));
    // A clinic makes pregnancy a review finding in its settings (the spec's CONFIG-DEFAULT).
    let mut c = clear();
    c.pregnancy_status = Some(PregnancyStatus::Pregnant);
    c.conditions.preeclampsia_or_eclampsia = Some(false);
    let e = rules().evaluate(&Inputs {
        birth_date: date!(1985 - 03 - 14),
        today: date!(2026 - 11 - 26),
        sex_at_birth: SexAtBirth::Female,
        consultation: Some(&c),
        cssrs_risk: Some(Risk::None),
        settings: EligibilitySettings {
            pregnancy_severity: Severity::PhysicianReview,
            ..EligibilitySettings::default()
        },
    });
    assert_eq!(found(&e), vec![("ELIG-011", FindingSeverity::PhysicianReview)]);
    // Settings stored before these fields existed still load, with the spec's defaults.
    let old: EligibilitySettings = serde_json::from_str(r#"{"bp_exclude_systolic":170}"#).unwrap();
    assert_eq!((old.bp_exclude_systolic, old.pregnancy_severity), (170, Severity::Exclude));
    // Other severities change with the rule file (and its version), e.g. a clinic that excludes
    // any active substance use disorder.
    let mut set = rules();
    set.rules[17].cases.insert("active".into(), Severity::Exclude);
    set.check().unwrap();
    let mut c = clear();
    c.conditions.substance_use_disorder = Some(SubstanceUseDisorder::Active);
    let e = set.evaluate(&Inputs {
        birth_date: date!(1985 - 03 - 14),
        today: date!(2026 - 11 - 26),
        sex_at_birth: SexAtBirth::Female,
        consultation: Some(&c),
        cssrs_risk: Some(Risk::None),
        settings: EligibilitySettings::default(),
    });
    assert_eq!(found(&e), vec![("ELIG-018", FindingSeverity::Exclude)]);
}
