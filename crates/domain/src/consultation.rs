//! The comprehensive consultation (KAP-SPEC 2.1 stage 2): history, diagnoses, the medical data
//! elements the eligibility rules read, medications, allergies, antidepressant trials, substance
//! use, pregnancy and breastfeeding, and baseline vitals.
//!
//! [`ConsultationInput`] is what a form or the API sends: every eligibility data element is
//! optional, because "not recorded" is a state the rules must see (a missing value is a
//! finding, never a silent pass). [`ConsultationInput::parse`] checks ranges and names the field
//! at fault with its full path (`medications[2].daily_dose_mg`). A parsed [`Consultation`]
//! serialises back to the same shape, so the stored JSON is the input format.

use serde::{Deserialize, Serialize};

use crate::vitals::{BloodPressure, DiastolicBp, HeartRate, HeightCm, Spo2, SystolicBp, WeightKg};

/// A field that failed to parse, named by its path in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputError {
    pub field: String,
    pub message: String,
}

impl InputError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// A versioned ICD-10-CM code table (KAP-SPEC 8.5: versioned by fiscal year), shipped as content.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
pub struct DiagnosisTable {
    pub version: String,
    pub codes: Vec<DiagnosisCode>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct DiagnosisCode {
    pub code: String,
    pub description: String,
}

impl DiagnosisTable {
    pub fn find(&self, code: &str) -> Option<&DiagnosisCode> {
        let wanted = code.trim().to_ascii_uppercase();
        self.codes.iter().find(|c| c.code == wanted)
    }
}

/// Condition of ELIG-005: a condition where a rise in blood pressure or intracranial pressure is
/// a serious risk (recent MI, unstable angina, decompensated heart failure, stroke/TIA, cerebral
/// trauma). Remote history goes to physician review; recent excludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PressureRiskCondition {
    None,
    Remote,
    Recent,
}

/// Condition of ELIG-010.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntraocularRisk {
    None,
    /// Uncontrolled glaucoma or another condition where raised intraocular pressure is harmful.
    GlaucomaOrRaisedIop,
    OpenGlobeInjury,
}

/// Condition of ELIG-015.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PsychoticDisorder {
    None,
    History,
    Current,
}

/// Condition of ELIG-018.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubstanceUseDisorder {
    None,
    /// In remission.
    History,
    /// Active, other than dissociatives.
    Active,
    /// Active misuse of ketamine, PCP or other dissociatives.
    ActiveDissociative,
}

/// Conditions of ELIG-019..021.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HepaticStatus {
    None,
    /// Hepatic disease or abnormal liver function tests, not graded moderate or severe.
    DiseaseOrAbnormalLfts,
    /// Moderate impairment, Child-Pugh B.
    ChildPughB,
    /// Severe impairment, Child-Pugh C.
    ChildPughC,
}

/// Pregnancy status (ELIG-011); `not_applicable` where pregnancy is not possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PregnancyStatus {
    NotPregnant,
    Pregnant,
    NotApplicable,
}

/// The medical history as the eligibility rules read it: one value per rule condition, `None`
/// while not recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MedicalConditions {
    /// ELIG-001
    pub aneurysmal_vascular_disease: Option<bool>,
    /// ELIG-002
    pub arteriovenous_malformation: Option<bool>,
    /// ELIG-003
    pub intracerebral_hemorrhage_history: Option<bool>,
    /// ELIG-004: esketamine, ketamine or an excipient.
    pub ketamine_hypersensitivity: Option<bool>,
    /// ELIG-005
    pub pressure_risk_condition: Option<PressureRiskCondition>,
    /// ELIG-006: untreated or poorly controlled hypertension.
    pub uncontrolled_hypertension: Option<bool>,
    /// ELIG-008
    pub hypertensive_encephalopathy_history: Option<bool>,
    /// ELIG-009: raised intracranial pressure, intracranial mass, recent significant head injury.
    pub raised_intracranial_pressure: Option<bool>,
    /// ELIG-010
    pub intraocular_risk: Option<IntraocularRisk>,
    /// ELIG-012, asked when pregnant.
    pub preeclampsia_or_eclampsia: Option<bool>,
    /// ELIG-015
    pub psychotic_disorder: Option<PsychoticDisorder>,
    /// ELIG-016: current mania, hypomania or mixed episode.
    pub current_mania: Option<bool>,
    /// ELIG-017
    pub bipolar_currently_depressed: Option<bool>,
    /// ELIG-018
    pub substance_use_disorder: Option<SubstanceUseDisorder>,
    /// DDI-004: any current alcohol use.
    pub alcohol_use: Option<bool>,
    /// ELIG-019..021
    pub hepatic: Option<HepaticStatus>,
    /// ELIG-022
    pub uncontrolled_hyperthyroidism: Option<bool>,
    /// ELIG-023: ulcerative or interstitial cystitis, lower urinary tract symptoms.
    pub cystitis_or_urinary_symptoms: Option<bool>,
    /// ELIG-025
    pub serious_reaction_to_ketamine: Option<bool>,
    /// ELIG-026
    pub seizure_disorder: Option<bool>,
    /// ELIG-027: unable to give informed consent, significant cognitive impairment.
    pub unable_to_consent: Option<bool>,
}

/// Medication classes as the interaction rules (KAP-SPEC 3.2) name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DrugClass {
    /// DDI-001
    Benzodiazepine,
    /// DDI-002 (Z-drugs)
    NonBenzodiazepineHypnotic,
    /// DDI-003
    Opioid,
    /// DDI-004
    OtherCnsDepressant,
    /// DDI-005: amphetamines, methylphenidate, modafinil, armodafinil.
    Psychostimulant,
    /// DDI-006
    Maoi,
    /// DDI-007
    Lamotrigine,
    /// DDI-008
    TheophyllineOrAminophylline,
    /// DDI-009: sympathomimetics, vasopressin.
    Sympathomimetic,
    /// DDI-010: strong CYP3A4/CYP2B6 inducers or inhibitors.
    Cyp3a4Or2b6Modulator,
    /// DDI-011
    NasalCorticosteroidOrDecongestant,
    /// DDI-012: SSRI, SNRI and other conventional antidepressants.
    Antidepressant,
    Other,
}

impl DrugClass {
    pub const ALL: [DrugClass; 13] = [
        DrugClass::Benzodiazepine,
        DrugClass::NonBenzodiazepineHypnotic,
        DrugClass::Opioid,
        DrugClass::OtherCnsDepressant,
        DrugClass::Psychostimulant,
        DrugClass::Maoi,
        DrugClass::Lamotrigine,
        DrugClass::TheophyllineOrAminophylline,
        DrugClass::Sympathomimetic,
        DrugClass::Cyp3a4Or2b6Modulator,
        DrugClass::NasalCorticosteroidOrDecongestant,
        DrugClass::Antidepressant,
        DrugClass::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DrugClass::Benzodiazepine => "Benzodiazepine",
            DrugClass::NonBenzodiazepineHypnotic => "Z-drug (non-benzodiazepine hypnotic)",
            DrugClass::Opioid => "Opioid",
            DrugClass::OtherCnsDepressant => "Other CNS depressant",
            DrugClass::Psychostimulant => "Psychostimulant",
            DrugClass::Maoi => "MAOI",
            DrugClass::Lamotrigine => "Lamotrigine",
            DrugClass::TheophyllineOrAminophylline => "Theophylline / aminophylline",
            DrugClass::Sympathomimetic => "Sympathomimetic / vasopressin",
            DrugClass::Cyp3a4Or2b6Modulator => "Strong CYP3A4/CYP2B6 inducer or inhibitor",
            DrugClass::NasalCorticosteroidOrDecongestant => "Nasal corticosteroid or decongestant",
            DrugClass::Antidepressant => "Antidepressant (SSRI, SNRI, ...)",
            DrugClass::Other => "Other",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DrugClass::Benzodiazepine => "benzodiazepine",
            DrugClass::NonBenzodiazepineHypnotic => "non_benzodiazepine_hypnotic",
            DrugClass::Opioid => "opioid",
            DrugClass::OtherCnsDepressant => "other_cns_depressant",
            DrugClass::Psychostimulant => "psychostimulant",
            DrugClass::Maoi => "maoi",
            DrugClass::Lamotrigine => "lamotrigine",
            DrugClass::TheophyllineOrAminophylline => "theophylline_or_aminophylline",
            DrugClass::Sympathomimetic => "sympathomimetic",
            DrugClass::Cyp3a4Or2b6Modulator => "cyp3a4_or_2b6_modulator",
            DrugClass::NasalCorticosteroidOrDecongestant => "nasal_corticosteroid_or_decongestant",
            DrugClass::Antidepressant => "antidepressant",
            DrugClass::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Medication {
    pub name: String,
    pub drug_class: DrugClass,
    /// Total daily dose in mg, when the medication is dosed in mg.
    #[serde(default)]
    pub daily_dose_mg: Option<f64>,
    /// For a benzodiazepine: the daily dose as diazepam-equivalent mg, converted by the
    /// clinician (DDI-001 compares it with the clinic's threshold; Kapstone does not convert).
    #[serde(default)]
    pub diazepam_equivalent_mg: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllergySeverity {
    Mild,
    Moderate,
    Severe,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allergy {
    pub substance: String,
    #[serde(default)]
    pub reaction: Option<String>,
    pub severity: AllergySeverity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Adherence {
    Good,
    Partial,
    Poor,
}

/// KAP-SPEC 3.3 trial outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrialOutcome {
    NonResponse,
    Partial,
    Intolerance,
    Response,
}

/// An antidepressant trial (KAP-SPEC 3.3 data model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AntidepressantTrial {
    pub drug: String,
    pub max_daily_dose_mg: f64,
    /// Whether the drug reached at least its minimum labelled therapeutic dose (the clinician's
    /// judgement against the label; Kapstone holds no dose table).
    pub reached_minimum_labelled_dose: bool,
    /// Weeks at or above that minimum dose.
    pub weeks_at_or_above_min_dose: u16,
    pub adherence: Adherence,
    pub outcome: TrialOutcome,
    /// In the current depressive episode.
    pub current_episode: bool,
}

impl AntidepressantTrial {
    /// KAP-SPEC 3.3 (CONFIG-DEFAULT): adequate if the minimum labelled dose was reached for at
    /// least `min_weeks`.
    pub fn is_adequate(&self, min_weeks: u8) -> bool {
        self.reached_minimum_labelled_dose && self.weeks_at_or_above_min_dose >= u16::from(min_weeks)
    }
}

/// `is_trd = count(trials where episode == current && adequate && outcome in {non_response,
/// partial}) >= 2` (KAP-SPEC 3.3).
///
/// The label speaks of "at least two oral antidepressants", so two trials of the same drug count
/// once (drug names compared without case or surrounding space).
pub fn is_treatment_resistant(trials: &[AntidepressantTrial], min_weeks: u8) -> bool {
    let mut drugs: Vec<String> = trials
        .iter()
        .filter(|t| {
            t.current_episode
                && t.is_adequate(min_weeks)
                && matches!(t.outcome, TrialOutcome::NonResponse | TrialOutcome::Partial)
        })
        .map(|t| t.drug.trim().to_lowercase())
        .collect();
    drugs.sort();
    drugs.dedup();
    drugs.len() >= 2
}

/// Baseline vitals as entered (numbers), before range checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VitalsInput {
    #[serde(default)]
    #[schemars(range(min = crate::vitals::SystolicBp::MIN, max = crate::vitals::SystolicBp::MAX))]
    pub systolic_mmhg: Option<f64>,
    #[serde(default)]
    #[schemars(range(min = crate::vitals::DiastolicBp::MIN, max = crate::vitals::DiastolicBp::MAX))]
    pub diastolic_mmhg: Option<f64>,
    #[serde(default)]
    #[schemars(range(min = crate::vitals::HeartRate::MIN, max = crate::vitals::HeartRate::MAX))]
    pub heart_rate_bpm: Option<f64>,
    #[serde(default)]
    #[schemars(range(min = crate::vitals::Spo2::MIN, max = crate::vitals::Spo2::MAX))]
    pub spo2_percent: Option<f64>,
    #[serde(default)]
    #[schemars(range(min = crate::vitals::WeightKg::MIN, max = crate::vitals::WeightKg::MAX))]
    pub weight_kg: Option<f64>,
    #[serde(default)]
    #[schemars(range(min = crate::vitals::HeightCm::MIN, max = crate::vitals::HeightCm::MAX))]
    pub height_cm: Option<f64>,
}

/// Baseline vitals that passed their plausibility checks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BaselineVitals {
    pub blood_pressure: Option<BloodPressure>,
    pub heart_rate: Option<HeartRate>,
    pub spo2: Option<Spo2>,
    pub weight: Option<WeightKg>,
    pub height: Option<HeightCm>,
}

impl BaselineVitals {
    /// All of BP, heart rate, SpO2, weight and height recorded (the consultation exit gate).
    pub fn complete(&self) -> bool {
        self.blood_pressure.is_some()
            && self.heart_rate.is_some()
            && self.spo2.is_some()
            && self.weight.is_some()
            && self.height.is_some()
    }

    fn to_input(&self) -> VitalsInput {
        VitalsInput {
            systolic_mmhg: self.blood_pressure.map(|b| f64::from(b.systolic.value())),
            diastolic_mmhg: self.blood_pressure.map(|b| f64::from(b.diastolic.value())),
            heart_rate_bpm: self.heart_rate.map(|h| f64::from(h.value())),
            spo2_percent: self.spo2.map(|s| f64::from(s.value())),
            weight_kg: self.weight.map(WeightKg::value),
            height_cm: self.height.map(HeightCm::value),
        }
    }
}

/// A diagnosis as entered: an ICD-10-CM code from the shipped table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnosisInput {
    pub code: String,
}

/// The consultation as a form or the API sends it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsultationInput {
    #[serde(default)]
    pub mental_health_history: Option<String>,
    #[serde(default)]
    pub current_symptoms: Option<String>,
    #[serde(default)]
    pub treatment_goals: Option<String>,
    #[serde(default)]
    pub medical_history_notes: Option<String>,
    #[serde(default)]
    pub diagnoses: Vec<DiagnosisInput>,
    #[serde(default)]
    pub conditions: MedicalConditions,
    #[serde(default)]
    pub medications_reconciled: bool,
    #[serde(default)]
    pub medications: Vec<Medication>,
    #[serde(default)]
    pub allergies: Vec<Allergy>,
    #[serde(default)]
    pub antidepressant_trials: Vec<AntidepressantTrial>,
    #[serde(default)]
    pub substance_use_notes: Option<String>,
    #[serde(default)]
    pub pregnancy_status: Option<PregnancyStatus>,
    #[serde(default)]
    pub breastfeeding: Option<bool>,
    #[serde(default)]
    pub vitals: VitalsInput,
}

/// A consultation that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Consultation {
    pub mental_health_history: Option<String>,
    pub current_symptoms: Option<String>,
    pub treatment_goals: Option<String>,
    pub medical_history_notes: Option<String>,
    /// Codes from the table version in `diagnosis_table_version`.
    pub diagnoses: Vec<DiagnosisCode>,
    pub diagnosis_table_version: String,
    pub conditions: MedicalConditions,
    pub medications_reconciled: bool,
    pub medications: Vec<Medication>,
    pub allergies: Vec<Allergy>,
    pub antidepressant_trials: Vec<AntidepressantTrial>,
    pub substance_use_notes: Option<String>,
    pub pregnancy_status: Option<PregnancyStatus>,
    pub breastfeeding: Option<bool>,
    pub vitals: BaselineVitals,
}

const LONG_TEXT: usize = 10_000;
const SHORT_TEXT: usize = 200;
const MAX_ROWS: usize = 50;

fn text(field: &str, raw: &Option<String>, max: usize) -> Result<Option<String>, InputError> {
    let Some(s) = raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    if s.chars().count() > max {
        return Err(InputError::new(field, format!("use at most {max} characters")));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(InputError::new(field, "remove control characters"));
    }
    Ok(Some(s.to_owned()))
}

fn required_text(field: &str, raw: &str, max: usize) -> Result<String, InputError> {
    text(field, &Some(raw.to_owned()), max)?.ok_or_else(|| InputError::new(field, "enter a value"))
}

fn positive_mg(field: &str, v: Option<f64>, max: f64) -> Result<Option<f64>, InputError> {
    match v {
        None => Ok(None),
        Some(x) if x.is_finite() && x > 0.0 && x <= max => Ok(Some(x)),
        Some(_) => Err(InputError::new(field, format!("enter a dose above 0 and at most {max} mg"))),
    }
}

/// A whole number within `T`'s range (a form may send `120.0`).
fn whole<T: TryFrom<i64>>(field: &str, v: f64) -> Result<T, InputError> {
    if v.fract() != 0.0 || !v.is_finite() {
        return Err(InputError::new(field, "enter a whole number"));
    }
    // The range check of the vital type follows; anything beyond i64/T is out of range anyway.
    #[allow(clippy::cast_possible_truncation)]
    T::try_from(v as i64).map_err(|_| InputError::new(field, "the value is out of range; check the reading"))
}

fn vital<T, R>(
    field: &str,
    v: Option<f64>,
    make: impl Fn(R) -> Result<T, crate::vitals::VitalError>,
) -> Result<Option<T>, InputError>
where
    R: TryFrom<i64>,
{
    v.map(|x| whole::<R>(field, x).and_then(|r| make(r).map_err(|e| InputError::new(field, e.message)))).transpose()
}

impl VitalsInput {
    pub fn parse(&self, prefix: &str) -> Result<BaselineVitals, InputError> {
        let f = |name: &str| format!("{prefix}{name}");
        let systolic = vital(&f("systolic_mmhg"), self.systolic_mmhg, SystolicBp::new)?;
        let diastolic = vital(&f("diastolic_mmhg"), self.diastolic_mmhg, DiastolicBp::new)?;
        let blood_pressure = match (systolic, diastolic) {
            (Some(s), Some(d)) => {
                Some(BloodPressure::new(s, d).map_err(|e| InputError::new(f("systolic_mmhg"), e.message))?)
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(InputError::new(f("diastolic_mmhg"), "enter both parts of the blood pressure"));
            }
            (None, Some(_)) => {
                return Err(InputError::new(f("systolic_mmhg"), "enter both parts of the blood pressure"));
            }
        };
        let heart_rate = vital(&f("heart_rate_bpm"), self.heart_rate_bpm, HeartRate::new)?;
        let spo2 = vital(&f("spo2_percent"), self.spo2_percent, Spo2::new)?;
        let weight = self
            .weight_kg
            .map(|w| WeightKg::new(w).map_err(|e| InputError::new(f("weight_kg"), e.message)))
            .transpose()?;
        let height = self
            .height_cm
            .map(|h| HeightCm::new(h).map_err(|e| InputError::new(f("height_cm"), e.message)))
            .transpose()?;
        Ok(BaselineVitals { blood_pressure, heart_rate, spo2, weight, height })
    }
}

fn rows<T>(field: &str, list: &[T]) -> Result<(), InputError> {
    if list.len() > MAX_ROWS {
        return Err(InputError::new(field, format!("record at most {MAX_ROWS} entries")));
    }
    Ok(())
}

impl ConsultationInput {
    /// Checks every field; the first fault is returned, named by its path.
    pub fn parse(&self, table: &DiagnosisTable) -> Result<Consultation, InputError> {
        self.parse_with(table, true)
    }

    /// Reads a stored consultation. A code that a later ICD-10-CM table no longer lists (the
    /// table is replaced every fiscal year) is kept with a note rather than making the record
    /// unreadable; everything else is checked as on entry.
    pub fn parse_stored(&self, table: &DiagnosisTable) -> Result<Consultation, InputError> {
        self.parse_with(table, false)
    }

    fn parse_with(&self, table: &DiagnosisTable, strict_codes: bool) -> Result<Consultation, InputError> {
        let mut diagnoses = Vec::new();
        rows("diagnoses", &self.diagnoses)?;
        for (i, d) in self.diagnoses.iter().enumerate() {
            let found = match table.find(&d.code) {
                Some(found) => found.clone(),
                None if !strict_codes => DiagnosisCode {
                    code: d.code.trim().to_ascii_uppercase(),
                    description: format!("(not in the ICD-10-CM table {})", table.version),
                },
                None => {
                    return Err(InputError::new(
                        format!("diagnoses[{i}].code"),
                        format!("not a code of the ICD-10-CM table {} shipped with Kapstone", table.version),
                    ));
                }
            };
            if diagnoses.contains(&found) {
                return Err(InputError::new(format!("diagnoses[{i}].code"), "this diagnosis is already listed"));
            }
            diagnoses.push(found);
        }
        rows("medications", &self.medications)?;
        let mut medications = Vec::new();
        for (i, m) in self.medications.iter().enumerate() {
            let p = |n: &str| format!("medications[{i}].{n}");
            let diazepam_equivalent_mg = positive_mg(&p("diazepam_equivalent_mg"), m.diazepam_equivalent_mg, 1000.0)?;
            if diazepam_equivalent_mg.is_some() && m.drug_class != DrugClass::Benzodiazepine {
                return Err(InputError::new(
                    p("diazepam_equivalent_mg"),
                    "only benzodiazepines take a diazepam equivalent",
                ));
            }
            medications.push(Medication {
                name: required_text(&p("name"), &m.name, SHORT_TEXT)?,
                drug_class: m.drug_class,
                daily_dose_mg: positive_mg(&p("daily_dose_mg"), m.daily_dose_mg, 100_000.0)?,
                diazepam_equivalent_mg,
            });
        }
        rows("allergies", &self.allergies)?;
        let mut allergies = Vec::new();
        for (i, a) in self.allergies.iter().enumerate() {
            allergies.push(Allergy {
                substance: required_text(&format!("allergies[{i}].substance"), &a.substance, SHORT_TEXT)?,
                reaction: text(&format!("allergies[{i}].reaction"), &a.reaction, SHORT_TEXT)?,
                severity: a.severity,
            });
        }
        rows("antidepressant_trials", &self.antidepressant_trials)?;
        let mut trials = Vec::new();
        for (i, t) in self.antidepressant_trials.iter().enumerate() {
            let p = |n: &str| format!("antidepressant_trials[{i}].{n}");
            if t.weeks_at_or_above_min_dose > 520 {
                return Err(InputError::new(p("weeks_at_or_above_min_dose"), "enter at most 520 weeks"));
            }
            trials.push(AntidepressantTrial {
                drug: required_text(&p("drug"), &t.drug, SHORT_TEXT)?,
                max_daily_dose_mg: positive_mg(&p("max_daily_dose_mg"), Some(t.max_daily_dose_mg), 100_000.0)?
                    .unwrap_or(t.max_daily_dose_mg),
                ..t.clone()
            });
        }
        if self.conditions.preeclampsia_or_eclampsia == Some(true)
            && self.pregnancy_status != Some(PregnancyStatus::Pregnant)
        {
            return Err(InputError::new(
                "conditions.preeclampsia_or_eclampsia",
                "pre-eclampsia can only be recorded for a current pregnancy",
            ));
        }
        Ok(Consultation {
            mental_health_history: text("mental_health_history", &self.mental_health_history, LONG_TEXT)?,
            current_symptoms: text("current_symptoms", &self.current_symptoms, LONG_TEXT)?,
            treatment_goals: text("treatment_goals", &self.treatment_goals, LONG_TEXT)?,
            medical_history_notes: text("medical_history_notes", &self.medical_history_notes, LONG_TEXT)?,
            diagnoses,
            diagnosis_table_version: table.version.clone(),
            conditions: self.conditions.clone(),
            medications_reconciled: self.medications_reconciled,
            medications,
            allergies,
            antidepressant_trials: trials,
            substance_use_notes: text("substance_use_notes", &self.substance_use_notes, LONG_TEXT)?,
            pregnancy_status: self.pregnancy_status,
            breastfeeding: self.breastfeeding,
            vitals: self.vitals.parse("vitals.")?,
        })
    }
}

impl Consultation {
    /// Back to the input shape: what is stored, and what a form is filled from.
    pub fn to_input(&self) -> ConsultationInput {
        ConsultationInput {
            mental_health_history: self.mental_health_history.clone(),
            current_symptoms: self.current_symptoms.clone(),
            treatment_goals: self.treatment_goals.clone(),
            medical_history_notes: self.medical_history_notes.clone(),
            diagnoses: self.diagnoses.iter().map(|d| DiagnosisInput { code: d.code.clone() }).collect(),
            conditions: self.conditions.clone(),
            medications_reconciled: self.medications_reconciled,
            medications: self.medications.clone(),
            allergies: self.allergies.clone(),
            antidepressant_trials: self.antidepressant_trials.clone(),
            substance_use_notes: self.substance_use_notes.clone(),
            pregnancy_status: self.pregnancy_status,
            breastfeeding: self.breastfeeding,
            vitals: self.vitals.to_input(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn table() -> DiagnosisTable {
        DiagnosisTable {
            version: "FY2026".into(),
            codes: vec![DiagnosisCode { code: "F33.2".into(), description: "MDD, recurrent, severe".into() }],
        }
    }

    fn trial(outcome: TrialOutcome, weeks: u16, current: bool) -> AntidepressantTrial {
        AntidepressantTrial {
            drug: "sertraline".into(),
            max_daily_dose_mg: 150.0,
            reached_minimum_labelled_dose: true,
            weeks_at_or_above_min_dose: weeks,
            adherence: Adherence::Good,
            outcome,
            current_episode: current,
        }
    }

    #[test]
    fn trd_needs_two_adequate_failed_trials_in_the_current_episode() {
        use TrialOutcome::*;
        let other = |mut t: AntidepressantTrial| {
            t.drug = "venlafaxine".into();
            t
        };
        assert!(is_treatment_resistant(&[trial(NonResponse, 6, true), other(trial(Partial, 8, true))], 6));
        // Too short, previous episode, intolerance or response do not count.
        assert!(!is_treatment_resistant(&[trial(NonResponse, 5, true), other(trial(Partial, 8, true))], 6));
        assert!(!is_treatment_resistant(&[trial(NonResponse, 6, false), other(trial(Partial, 8, true))], 6));
        assert!(!is_treatment_resistant(&[trial(Intolerance, 6, true), other(trial(Partial, 8, true))], 6));
        assert!(!is_treatment_resistant(&[trial(Response, 6, true), other(trial(Partial, 8, true))], 6));
        let mut low = trial(NonResponse, 10, true);
        low.reached_minimum_labelled_dose = false;
        assert!(!is_treatment_resistant(&[low, other(trial(Partial, 8, true))], 6));
        // Two trials of one drug are one antidepressant.
        let mut again = trial(Partial, 8, true);
        again.drug = " Sertraline ".into();
        assert!(!is_treatment_resistant(&[trial(NonResponse, 6, true), again], 6));
        // The minimum duration is the clinic's setting.
        assert!(is_treatment_resistant(&[trial(NonResponse, 5, true), other(trial(Partial, 5, true))], 4));
    }

    #[test]
    fn impossible_vitals_name_their_field() {
        let mut input = ConsultationInput::default();
        input.vitals.systolic_mmhg = Some(20.0);
        input.vitals.diastolic_mmhg = Some(10.0);
        assert_eq!(input.parse(&table()).unwrap_err().field, "vitals.systolic_mmhg");
        input.vitals.systolic_mmhg = Some(400.0);
        assert_eq!(input.parse(&table()).unwrap_err().field, "vitals.systolic_mmhg");
        input.vitals.systolic_mmhg = Some(120.0);
        assert_eq!(input.parse(&table()).unwrap_err().field, "vitals.diastolic_mmhg");
        input.vitals.diastolic_mmhg = Some(80.0);
        input.vitals.weight_kg = Some(0.0);
        assert_eq!(input.parse(&table()).unwrap_err().field, "vitals.weight_kg");
        input.vitals.weight_kg = Some(70.0);
        input.vitals.heart_rate_bpm = Some(72.5);
        assert_eq!(input.parse(&table()).unwrap_err().field, "vitals.heart_rate_bpm");
        input.vitals.heart_rate_bpm = Some(72.0);
        assert!(input.parse(&table()).is_ok());
    }

    #[test]
    fn list_entries_are_named_by_index() {
        let mut input = ConsultationInput {
            diagnoses: vec![DiagnosisInput { code: "f33.2".into() }, DiagnosisInput { code: "F99.9".into() }],
            ..Default::default()
        };
        assert_eq!(input.parse(&table()).unwrap_err().field, "diagnoses[1].code");
        input.diagnoses.pop();
        input.medications = vec![Medication {
            name: "sertraline".into(),
            drug_class: DrugClass::Antidepressant,
            daily_dose_mg: Some(-5.0),
            diazepam_equivalent_mg: None,
        }];
        assert_eq!(input.parse(&table()).unwrap_err().field, "medications[0].daily_dose_mg");
        input.medications[0].daily_dose_mg = Some(100.0);
        input.medications[0].diazepam_equivalent_mg = Some(5.0);
        assert_eq!(input.parse(&table()).unwrap_err().field, "medications[0].diazepam_equivalent_mg");
        input.medications[0].diazepam_equivalent_mg = None;
        let parsed = input.parse(&table()).unwrap();
        assert_eq!(parsed.diagnoses[0].code, "F33.2");
        // What is stored parses back to the same consultation.
        assert_eq!(parsed.to_input().parse(&table()).unwrap(), parsed);
        // A code a later table dropped still loads from storage, marked as such.
        let next_year = DiagnosisTable { version: "FY2027".into(), codes: Vec::new() };
        let stored = parsed.to_input().parse_stored(&next_year).unwrap();
        assert_eq!(stored.diagnoses[0].code, "F33.2");
        assert!(stored.diagnoses[0].description.contains("FY2027"));
        assert!(parsed.to_input().parse(&next_year).is_err());
    }
}
