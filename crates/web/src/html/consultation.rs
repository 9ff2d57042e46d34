//! The consultation form (clinicians). Works without JavaScript: list sections (diagnoses,
//! medications, allergies, antidepressant trials) show the recorded rows plus blank ones, and
//! blank rows are ignored. Every input's `name` is its path in the API's JSON
//! (`medications[2].daily_dose_mg`), so an error from the domain lands next to its field.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use kapstone_domain::PatientId;
use kapstone_domain::consultation::{
    AllergySeverity, AntidepressantTrial, ConsultationInput, DiagnosisInput, DrugClass, MedicalConditions, Medication,
};
use kapstone_domain::permissions::{Action, allows};
use kapstone_store::patients::PatientRow;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{FieldErrors, Layout, PageResult, render, sentence, when};
use crate::app::eligibility as app;
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// One input of the form.
pub struct Input {
    pub name: String,
    pub label: String,
    /// `text`, `textarea`, `number` or `select`.
    pub kind: &'static str,
    pub value: String,
    pub options: Vec<(String, String)>,
    pub hint: &'static str,
}

impl Input {
    fn id(&self) -> String {
        self.name.replace(['[', ']', '.'], "-")
    }
}

/// A titled group of inputs; `rows` groups list entries.
pub struct Section {
    pub title: &'static str,
    pub intro: &'static str,
    pub inputs: Vec<Input>,
    pub rows: Vec<(String, Vec<Input>)>,
}

#[derive(Template)]
#[template(path = "consultation.html")]
struct ConsultationPage {
    layout: Layout,
    p: PatientRow,
    version: Option<(i32, String)>,
    /// The version this form edits: the one it was opened on, kept through error redisplays so
    /// a stale form stays stale (a save is refused until the clinician reloads).
    base_version: i32,
    can_edit: bool,
    sections: Vec<Section>,
    errors: FieldErrors,
    notice: Option<String>,
}

impl ConsultationPage {
    fn error_for(&self, input: &Input) -> Option<&str> {
        self.errors.get(&input.name)
    }
}

fn opt(v: &str, label: &str) -> (String, String) {
    (v.to_owned(), label.to_owned())
}

fn yes_no() -> Vec<(String, String)> {
    vec![opt("", "Not recorded"), opt("no", "No"), opt("yes", "Yes")]
}

fn tri(v: Option<bool>) -> String {
    match v {
        None => String::new(),
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
    }
}

/// The serde name of an enum value (`ChildPughB` -> `child_pugh_b`).
fn enum_value<T: serde::Serialize>(v: &Option<T>) -> String {
    v.as_ref()
        .and_then(|x| serde_json::to_value(x).ok())
        .and_then(|x| x.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn num(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn input(name: impl Into<String>, label: impl Into<String>, kind: &'static str, value: String) -> Input {
    Input { name: name.into(), label: label.into(), kind, value, options: Vec::new(), hint: "" }
}

fn select(name: impl Into<String>, label: impl Into<String>, value: String, options: Vec<(String, String)>) -> Input {
    Input { options, ..input(name, label, "select", value) }
}

const EXTRA_ROWS: usize = 2;

/// The answers of a multiple-choice condition: (value, label).
type Choices = &'static [(&'static str, &'static str)];

/// The condition inputs: (field, label, choices). `None` choices is a yes/no question.
const CONDITIONS: &[(&str, &str, Option<Choices>)] = &[
    (
        "aneurysmal_vascular_disease",
        "Aneurysmal vascular disease (aorta, intracranial or peripheral arteries) — ELIG-001",
        None,
    ),
    ("arteriovenous_malformation", "Arteriovenous malformation — ELIG-002", None),
    ("intracerebral_hemorrhage_history", "History of intracerebral hemorrhage — ELIG-003", None),
    ("ketamine_hypersensitivity", "Hypersensitivity to esketamine, ketamine or an excipient — ELIG-004", None),
    (
        "pressure_risk_condition",
        "Condition where a rise in BP or intracranial pressure is a serious risk (MI, unstable angina, heart failure, stroke/TIA, cerebral trauma) — ELIG-005",
        Some(&[("none", "None"), ("remote", "Remote history"), ("recent", "Recent")]),
    ),
    ("uncontrolled_hypertension", "Untreated or poorly controlled hypertension — ELIG-006", None),
    ("hypertensive_encephalopathy_history", "History of hypertensive encephalopathy — ELIG-008", None),
    (
        "raised_intracranial_pressure",
        "Raised intracranial pressure, intracranial mass or recent significant head injury — ELIG-009",
        None,
    ),
    (
        "intraocular_risk",
        "Eye: condition where raised intraocular pressure is harmful — ELIG-010",
        Some(&[
            ("none", "None"),
            ("glaucoma_or_raised_iop", "Uncontrolled glaucoma or similar"),
            ("open_globe_injury", "Open globe injury"),
        ]),
    ),
    (
        "psychotic_disorder",
        "Psychosis or primary psychotic disorder — ELIG-015",
        Some(&[("none", "None"), ("history", "History"), ("current", "Current")]),
    ),
    ("current_mania", "Current mania, hypomania or mixed episode — ELIG-016", None),
    ("bipolar_currently_depressed", "Bipolar disorder, currently depressed — ELIG-017", None),
    (
        "substance_use_disorder",
        "Substance use disorder — ELIG-018",
        Some(&[
            ("none", "None"),
            ("history", "In remission"),
            ("active", "Active (not dissociatives)"),
            ("active_dissociative", "Active misuse of ketamine/PCP/dissociatives"),
        ]),
    ),
    ("alcohol_use", "Any current alcohol use — DDI-004", None),
    (
        "hepatic",
        "Liver — ELIG-019/020/021",
        Some(&[
            ("none", "No hepatic disease"),
            ("disease_or_abnormal_lfts", "Hepatic disease or abnormal LFTs"),
            ("child_pugh_b", "Moderate impairment (Child-Pugh B)"),
            ("child_pugh_c", "Severe impairment (Child-Pugh C)"),
        ]),
    ),
    ("uncontrolled_hyperthyroidism", "Uncontrolled or untreated hyperthyroidism — ELIG-022", None),
    (
        "cystitis_or_urinary_symptoms",
        "Ulcerative or interstitial cystitis, lower urinary tract symptoms — ELIG-023",
        None,
    ),
    (
        "serious_reaction_to_ketamine",
        "Previous serious adverse reaction to ketamine or related agents — ELIG-025",
        None,
    ),
    ("seizure_disorder", "Seizure disorder — ELIG-026", None),
    ("unable_to_consent", "Unable to give informed consent / significant cognitive impairment — ELIG-027", None),
    ("preeclampsia_or_eclampsia", "Pre-eclampsia or eclampsia (current pregnancy only) — ELIG-012", None),
];

fn condition_value(c: &MedicalConditions, field: &str) -> String {
    let v = serde_json::to_value(c).unwrap_or(Value::Null);
    match &v[field] {
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

fn sections(c: &ConsultationInput) -> Vec<Section> {
    let table = crate::content::diagnosis_table().ok();
    let mut codes = vec![opt("", "—")];
    if let Some(t) = table {
        codes.extend(t.codes.iter().map(|d| (d.code.clone(), format!("{} {}", d.code, d.description))));
    }
    let text =
        |name: &str, label: &str, v: &Option<String>| input(name, label, "textarea", v.clone().unwrap_or_default());
    let history = Section {
        title: "History and goals",
        intro: "",
        inputs: vec![
            text("mental_health_history", "Mental-health history", &c.mental_health_history),
            text("current_symptoms", "Current symptoms", &c.current_symptoms),
            text("treatment_goals", "Treatment goals", &c.treatment_goals),
            text("medical_history_notes", "Medical history (notes)", &c.medical_history_notes),
            text("substance_use_notes", "Substance use (notes)", &c.substance_use_notes),
        ],
        rows: Vec::new(),
    };
    let mut dx_rows = Vec::new();
    for i in 0..c.diagnoses.len() + EXTRA_ROWS {
        let v = c.diagnoses.get(i).map(|d| d.code.clone()).unwrap_or_default();
        dx_rows.push((
            format!("Diagnosis {}", i + 1),
            vec![select(format!("diagnoses[{i}].code"), "ICD-10-CM code", v, codes.clone())],
        ));
    }
    let diagnoses = Section {
        title: "Diagnoses",
        intro: "Coded in ICD-10-CM from the table shipped with Kapstone.",
        inputs: Vec::new(),
        rows: dx_rows,
    };
    let conditions = Section {
        title: "Medical history for eligibility",
        intro: "Each answer is read by an eligibility rule (KAP-SPEC 3.1). “Not recorded” is shown to the prescriber as missing data.",
        inputs: CONDITIONS
            .iter()
            .map(|(field, label, choices)| {
                let options = match choices {
                    None => yes_no(),
                    Some(list) => {
                        let mut o = vec![opt("", "Not recorded")];
                        o.extend(list.iter().map(|(v, l)| opt(v, l)));
                        o
                    }
                };
                select(format!("conditions.{field}"), *label, condition_value(&c.conditions, field), options)
            })
            .collect(),
        rows: Vec::new(),
    };
    let pregnancy = Section {
        title: "Pregnancy and breastfeeding",
        intro: "",
        inputs: vec![
            select(
                "pregnancy_status",
                "Pregnancy status — ELIG-011",
                enum_value(&c.pregnancy_status),
                vec![
                    opt("", "Not recorded"),
                    opt("not_pregnant", "Not pregnant"),
                    opt("pregnant", "Pregnant"),
                    opt("not_applicable", "Not applicable"),
                ],
            ),
            select("breastfeeding", "Breastfeeding — ELIG-013", tri(c.breastfeeding), yes_no()),
        ],
        rows: Vec::new(),
    };
    let classes: Vec<(String, String)> =
        std::iter::once(opt("", "Choose…")).chain(DrugClass::ALL.iter().map(|d| opt(d.as_str(), d.label()))).collect();
    let mut med_rows = Vec::new();
    for i in 0..c.medications.len() + EXTRA_ROWS + 1 {
        let m = c.medications.get(i);
        let p = |f: &str| format!("medications[{i}].{f}");
        med_rows.push((
            format!("Medication {}", i + 1),
            vec![
                input(p("name"), "Name", "text", m.map(|m| m.name.clone()).unwrap_or_default()),
                select(
                    p("drug_class"),
                    "Class",
                    m.map(|m| m.drug_class.as_str().to_owned()).unwrap_or_default(),
                    classes.clone(),
                ),
                input(p("daily_dose_mg"), "Daily dose (mg)", "number", num(m.and_then(|m| m.daily_dose_mg))),
                Input {
                    hint: "Benzodiazepines only (DDI-001)",
                    ..input(
                        p("diazepam_equivalent_mg"),
                        "Diazepam-equivalent (mg/day)",
                        "number",
                        num(m.and_then(|m| m.diazepam_equivalent_mg)),
                    )
                },
            ],
        ));
    }
    let medications = Section {
        title: "Current medications",
        intro: "The interaction rules (KAP-SPEC 3.2) read each medication's class. Until the list is marked reconciled, they report missing data.",
        inputs: vec![select(
            "medications_reconciled",
            "Medication list reconciled (complete, checked with the patient)",
            if c.medications_reconciled { "yes".into() } else { "no".into() },
            vec![opt("no", "Not yet"), opt("yes", "Yes, reconciled")],
        )],
        rows: med_rows,
    };
    let severities =
        vec![opt("", "Choose…"), opt("mild", "Mild"), opt("moderate", "Moderate"), opt("severe", "Severe")];
    let mut allergy_rows = Vec::new();
    for i in 0..c.allergies.len() + EXTRA_ROWS {
        let a = c.allergies.get(i);
        let p = |f: &str| format!("allergies[{i}].{f}");
        allergy_rows.push((
            format!("Allergy {}", i + 1),
            vec![
                input(p("substance"), "Substance", "text", a.map(|a| a.substance.clone()).unwrap_or_default()),
                input(p("reaction"), "Reaction", "text", a.and_then(|a| a.reaction.clone()).unwrap_or_default()),
                select(p("severity"), "Severity", enum_value(&a.map(|a| a.severity)), severities.clone()),
            ],
        ));
    }
    let allergies = Section { title: "Allergies", intro: "", inputs: Vec::new(), rows: allergy_rows };
    let mut trial_rows = Vec::new();
    for i in 0..c.antidepressant_trials.len() + EXTRA_ROWS {
        let t = c.antidepressant_trials.get(i);
        let p = |f: &str| format!("antidepressant_trials[{i}].{f}");
        let b = |f: fn(&AntidepressantTrial) -> bool| t.map(|t| tri(Some(f(t)))).unwrap_or_default();
        trial_rows.push((
            format!("Trial {}", i + 1),
            vec![
                input(p("drug"), "Drug", "text", t.map(|t| t.drug.clone()).unwrap_or_default()),
                input(p("max_daily_dose_mg"), "Maximum daily dose (mg)", "number", num(t.map(|t| t.max_daily_dose_mg))),
                select(
                    p("reached_minimum_labelled_dose"),
                    "Reached the minimum labelled dose",
                    b(|t| t.reached_minimum_labelled_dose),
                    yes_no(),
                ),
                input(
                    p("weeks_at_or_above_min_dose"),
                    "Weeks at or above that dose",
                    "number",
                    t.map(|t| t.weeks_at_or_above_min_dose.to_string()).unwrap_or_default(),
                ),
                select(
                    p("adherence"),
                    "Adherence",
                    enum_value(&t.map(|t| t.adherence)),
                    vec![opt("", "Choose…"), opt("good", "Good"), opt("partial", "Partial"), opt("poor", "Poor")],
                ),
                select(
                    p("outcome"),
                    "Outcome",
                    enum_value(&t.map(|t| t.outcome)),
                    vec![
                        opt("", "Choose…"),
                        opt("non_response", "No response"),
                        opt("partial", "Partial response"),
                        opt("intolerance", "Stopped: intolerance"),
                        opt("response", "Response"),
                    ],
                ),
                select(p("current_episode"), "In the current episode", b(|t| t.current_episode), yes_no()),
            ],
        ));
    }
    let trials = Section {
        title: "Antidepressant trials",
        intro: "Treatment-resistant depression is derived from these (KAP-SPEC 3.3): at least two adequate trials in the current episode without response.",
        inputs: Vec::new(),
        rows: trial_rows,
    };
    let v = &c.vitals;
    let vitals = Section {
        title: "Baseline vitals",
        intro: "",
        inputs: vec![
            input("vitals.systolic_mmhg", "Systolic BP (mmHg)", "number", num(v.systolic_mmhg)),
            input("vitals.diastolic_mmhg", "Diastolic BP (mmHg)", "number", num(v.diastolic_mmhg)),
            input("vitals.heart_rate_bpm", "Heart rate (/min)", "number", num(v.heart_rate_bpm)),
            input("vitals.spo2_percent", "SpO2 (%)", "number", num(v.spo2_percent)),
            input("vitals.weight_kg", "Weight (kg)", "number", num(v.weight_kg)),
            input("vitals.height_cm", "Height (cm)", "number", num(v.height_cm)),
        ],
        rows: Vec::new(),
    };
    vec![history, diagnoses, conditions, pregnancy, medications, allergies, trials, vitals]
}

/// What the form shows: the stored record, an input that failed the domain's checks, or the
/// raw form when it could not even be read (so nothing typed is lost).
enum Shown {
    Stored,
    Input(Box<ConsultationInput>),
    Form(FormData),
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    shown: Shown,
    base: Option<i32>,
    errors: FieldErrors,
    notice: Option<String>,
) -> PageResult<Html<String>> {
    let (p, current) = app::consultation(state, user, id).await?;
    let version = current.as_ref().map(|(row, _)| (row.version, when(row.recorded_at.0)));
    let base_version = base.unwrap_or_else(|| version.as_ref().map_or(0, |v| v.0));
    let mut stored = current.map(|(_, c)| c.to_input()).unwrap_or_default();
    if let Shown::Form(form) = &shown {
        // Enough rows for every row the clinician typed, so nothing typed is lost.
        let want = |list: &str| form.rows(list).last().map_or(0, |i| i + 1).saturating_sub(EXTRA_ROWS);
        while stored.diagnoses.len() < want("diagnoses") {
            stored.diagnoses.push(DiagnosisInput { code: String::new() });
        }
        while stored.medications.len() + 1 < want("medications") {
            stored.medications.push(Medication {
                name: String::new(),
                drug_class: DrugClass::Other,
                daily_dose_mg: None,
                diazepam_equivalent_mg: None,
            });
        }
        while stored.allergies.len() < want("allergies") {
            stored.allergies.push(kapstone_domain::consultation::Allergy {
                substance: String::new(),
                reaction: None,
                severity: AllergySeverity::Mild,
            });
        }
        while stored.antidepressant_trials.len() < want("antidepressant_trials") {
            stored.antidepressant_trials.push(AntidepressantTrial {
                drug: String::new(),
                max_daily_dose_mg: 0.0,
                reached_minimum_labelled_dose: false,
                weeks_at_or_above_min_dose: 0,
                adherence: kapstone_domain::consultation::Adherence::Good,
                outcome: kapstone_domain::consultation::TrialOutcome::NonResponse,
                current_episode: false,
            });
        }
    }
    let mut sections = match &shown {
        Shown::Input(input) => sections(input),
        Shown::Stored | Shown::Form(_) => sections(&stored),
    };
    if let Shown::Form(form) = &shown {
        for s in &mut sections {
            for i in s.inputs.iter_mut().chain(s.rows.iter_mut().flat_map(|(_, r)| r.iter_mut())) {
                i.value = form.get(&i.name).to_owned();
            }
        }
    }
    render(&ConsultationPage {
        layout: Layout::for_user(&format!("Consultation — {} {}", p.given_name, p.family_name), user, "/patients"),
        p,
        version,
        base_version,
        can_edit: allows(Some(user.role), Action::RecordConsultation),
        sections,
        errors,
        notice,
    })
}

#[derive(serde::Deserialize)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<i32>,
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<SavedQuery>,
) -> PageResult<Html<String>> {
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    let notice = q.saved.map(|v| format!("Consultation saved as version {v}."));
    page(&state, &user, id, Shown::Stored, None, FieldErrors::default(), notice).await
}

/// The form's fields, by name.
struct FormData(Vec<(String, String)>);

impl FormData {
    fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
    }

    fn text(&self, name: &str) -> Option<String> {
        Some(self.get(name).to_owned()).filter(|s| !s.is_empty())
    }

    fn yes_no(&self, name: &str) -> Result<Option<bool>, AppError> {
        match self.get(name) {
            "" => Ok(None),
            "yes" => Ok(Some(true)),
            "no" => Ok(Some(false)),
            _ => Err(item(name, "choose yes or no")),
        }
    }

    fn number(&self, name: &str) -> Result<Option<f64>, AppError> {
        match self.get(name) {
            "" => Ok(None),
            v => v.parse::<f64>().map(Some).map_err(|_| item(name, "enter a number")),
        }
    }

    /// An enum value by its serde name.
    fn choice<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, AppError> {
        match self.get(name) {
            "" => Ok(None),
            v => serde_json::from_value(Value::String(v.to_owned()))
                .map(Some)
                .map_err(|_| item(name, "choose from the list")),
        }
    }

    fn required<T: DeserializeOwned>(&self, name: &str) -> Result<T, AppError> {
        self.choice(name)?.ok_or_else(|| item(name, "choose from the list"))
    }

    /// Row indexes present for a list (`medications[3].name` -> 3).
    fn rows(&self, list: &str) -> Vec<usize> {
        let prefix = format!("{list}[");
        let mut idx: Vec<usize> = self
            .0
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(&prefix)?.split(']').next()?.parse().ok())
            .filter(|i| *i < 100)
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx
    }
}

fn item(field: &str, message: &str) -> AppError {
    AppError::InvalidItem { field: field.to_owned(), message: message.to_owned() }
}

/// Builds the API's input from the form; blank list rows are skipped, and list entries are
/// renumbered so errors name the row the clinician sees.
fn from_form(f: &FormData) -> Result<ConsultationInput, AppError> {
    let mut conditions = serde_json::Map::new();
    for (field, _, choices) in CONDITIONS {
        let name = format!("conditions.{field}");
        let v = match choices {
            None => f.yes_no(&name)?.map(Value::Bool),
            Some(list) => match f.get(&name) {
                "" => None,
                v if list.iter().any(|(o, _)| *o == v) => Some(Value::String(v.to_owned())),
                _ => return Err(item(&name, "choose from the list")),
            },
        };
        conditions.insert((*field).to_owned(), v.unwrap_or(Value::Null));
    }
    let conditions: MedicalConditions =
        serde_json::from_value(Value::Object(conditions)).map_err(|e| AppError::Internal(e.into()))?;
    let mut diagnoses = Vec::new();
    for i in f.rows("diagnoses") {
        if let Some(code) = f.text(&format!("diagnoses[{i}].code")) {
            diagnoses.push(DiagnosisInput { code });
        }
    }
    let mut medications = Vec::new();
    for i in f.rows("medications") {
        let p = |x: &str| format!("medications[{i}].{x}");
        let blank =
            ["name", "drug_class", "daily_dose_mg", "diazepam_equivalent_mg"].iter().all(|x| f.get(&p(x)).is_empty());
        if blank {
            continue;
        }
        medications.push(Medication {
            name: f.get(&p("name")).to_owned(),
            drug_class: f.required(&p("drug_class"))?,
            daily_dose_mg: f.number(&p("daily_dose_mg"))?,
            diazepam_equivalent_mg: f.number(&p("diazepam_equivalent_mg"))?,
        });
    }
    let mut allergies = Vec::new();
    for i in f.rows("allergies") {
        let p = |x: &str| format!("allergies[{i}].{x}");
        if ["substance", "reaction", "severity"].iter().all(|x| f.get(&p(x)).is_empty()) {
            continue;
        }
        allergies.push(kapstone_domain::consultation::Allergy {
            substance: f.get(&p("substance")).to_owned(),
            reaction: f.text(&p("reaction")),
            severity: f.required::<AllergySeverity>(&p("severity"))?,
        });
    }
    let mut trials = Vec::new();
    for i in f.rows("antidepressant_trials") {
        let p = |x: &str| format!("antidepressant_trials[{i}].{x}");
        let fields = [
            "drug",
            "max_daily_dose_mg",
            "reached_minimum_labelled_dose",
            "weeks_at_or_above_min_dose",
            "adherence",
            "outcome",
            "current_episode",
        ];
        if fields.iter().all(|x| f.get(&p(x)).is_empty()) {
            continue;
        }
        let weeks = f.get(&p("weeks_at_or_above_min_dose"));
        trials.push(AntidepressantTrial {
            drug: f.get(&p("drug")).to_owned(),
            max_daily_dose_mg: f
                .number(&p("max_daily_dose_mg"))?
                .ok_or_else(|| item(&p("max_daily_dose_mg"), "enter the dose"))?,
            reached_minimum_labelled_dose: f
                .yes_no(&p("reached_minimum_labelled_dose"))?
                .ok_or_else(|| item(&p("reached_minimum_labelled_dose"), "choose yes or no"))?,
            weeks_at_or_above_min_dose: weeks
                .parse()
                .map_err(|_| item(&p("weeks_at_or_above_min_dose"), "enter whole weeks"))?,
            adherence: f.required(&p("adherence"))?,
            outcome: f.required(&p("outcome"))?,
            current_episode: f
                .yes_no(&p("current_episode"))?
                .ok_or_else(|| item(&p("current_episode"), "choose yes or no"))?,
        });
    }
    Ok(ConsultationInput {
        mental_health_history: f.text("mental_health_history"),
        current_symptoms: f.text("current_symptoms"),
        treatment_goals: f.text("treatment_goals"),
        medical_history_notes: f.text("medical_history_notes"),
        diagnoses,
        conditions,
        medications_reconciled: f.get("medications_reconciled") == "yes",
        medications,
        allergies,
        antidepressant_trials: trials,
        substance_use_notes: f.text("substance_use_notes"),
        pregnancy_status: f.choice("pregnancy_status")?,
        breastfeeding: f.yes_no("breastfeeding")?,
        vitals: kapstone_domain::consultation::VitalsInput {
            systolic_mmhg: f.number("vitals.systolic_mmhg")?,
            diastolic_mmhg: f.number("vitals.diastolic_mmhg")?,
            heart_rate_bpm: f.number("vitals.heart_rate_bpm")?,
            spo2_percent: f.number("vitals.spo2_percent")?,
            weight_kg: f.number("vitals.weight_kg")?,
            height_cm: f.number("vitals.height_cm")?,
        },
    })
}

/// `POST /patients/{id}/consultation`: saves a new version, then redirects (so a reload does not
/// post again); on an error the form comes back with what was typed and the message next to
/// the field.
pub async fn save(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })?;
    let form = FormData(pairs);
    let base = form.get("base_version").parse::<i32>().ok();
    let result = match from_form(&form) {
        Ok(input) => app::save_consultation(&state, &user, id, &input, base)
            .await
            .map_err(|e| (e, Shown::Input(Box::new(input)))),
        Err(e) => Err((e, Shown::Form(form))),
    };
    match result {
        Ok(version) => Ok(Redirect::to(&format!("/patients/{id}/consultation?saved={version}")).into_response()),
        Err((e, shown)) => {
            let Some(errors) = FieldErrors::from_error(&e) else { return Err(e.into()) };
            let status = e.status();
            let notice = Some(if status == StatusCode::CONFLICT {
                "Someone saved this consultation after you opened it. Your changes are shown below but were not \
                 saved: open the consultation again to see theirs, then enter yours again."
                    .to_owned()
            } else {
                let field = e
                    .field()
                    .map(|f| format!(" ({})", f.replace(['[', ']', '.'], " ").trim().to_owned()))
                    .unwrap_or_default();
                format!("{}{field}", sentence(&e.public_message("")))
            });
            let page = page(&state, &user, id, shown, base.or(Some(0)), errors, notice).await?;
            Ok((if status == StatusCode::CONFLICT { status } else { StatusCode::UNPROCESSABLE_ENTITY }, page)
                .into_response())
        }
    }
}
