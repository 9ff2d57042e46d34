//! The synthetic demo clinic and the large-clinic generator for benchmarks.
//! Every name here is invented; no real patient information is ever used.

use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
use kapstone_domain::patient::{BirthDate, NewPatient, PatientDetails, Phone, SexAtBirth};
use kapstone_domain::{ClinicId, PersonName, Role};
use kapstone_store::{Db, audit, clinics, patients};
use time::{Date, Duration, Month};

use super::accounts::{NewAccountInput, Operator, create_account};
use crate::error::AppError;
use crate::state::AppState;

pub const DEMO_DOMAIN: &str = "demo.kapstone.test";
pub const DEMO_CLINIC: &str = "Harbour Light KAP Clinic (demo)";
pub const DEMO_TIME_ZONE: &str = "America/Los_Angeles";
/// Patient accounts seeded by `--demo`: patient1@, patient2@, ...
pub const DEMO_PATIENT_ACCOUNTS: usize = 3;

const GIVEN: &[&str] = &[
    "Avery", "Blake", "Casey", "Devon", "Emery", "Finley", "Gray", "Harper", "Indigo", "Jules", "Kai", "Lane",
    "Morgan", "Noor", "Oakley", "Parker", "Quinn", "Reese", "Sage", "Tatum", "Umi", "Vesper", "Wren", "Yael",
];
const FAMILY: &[&str] = &[
    "Alder",
    "Birchwood",
    "Castellan",
    "Dunmore",
    "Ellery",
    "Fairweather",
    "Glenhaven",
    "Holloway",
    "Ivers",
    "Juniper",
    "Kestrel",
    "Larkspur",
    "Merriweather",
    "Northcott",
    "Oakhurst",
    "Pemberly",
    "Quillon",
    "Rowntree",
    "Silverton",
    "Thistlewood",
    "Underhill",
    "Vantongeren",
    "Westbrook",
    "Yarrowby",
];

/// What `--demo` created, printed for the newcomer.
#[derive(Debug, Clone)]
pub struct DemoSeed {
    pub clinic: ClinicId,
    pub accounts: Vec<(String, Role)>,
}

/// Deterministic pseudo-random numbers (splitmix64), so `demo --scale N` builds the same clinic
/// on every machine and benchmark runs compare like with like.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % (n.max(1) as u64)).unwrap_or(0)
    }
}

fn synthetic_patient(rng: &mut SplitMix64, today: Date) -> Result<NewPatient, AppError> {
    let given = GIVEN[rng.below(GIVEN.len())];
    let family = FAMILY[rng.below(FAMILY.len())];
    let age_days = 18 * 365 + rng.below(55 * 365);
    let birth = today - Duration::days(i64::try_from(age_days).unwrap_or(0));
    let sex_at_birth = if rng.below(2) == 0 { SexAtBirth::Female } else { SexAtBirth::Male };
    // 555-01xx numbers are reserved for fiction.
    let phone = Phone::parse("phone", &format!("+1 555 01{:02} {:04}", rng.below(100), rng.below(10_000)))?;
    Ok(NewPatient {
        given_name: PersonName::parse("given_name", given)?,
        family_name: PersonName::parse("family_name", family)?,
        birth_date: BirthDate::new(birth, today)?,
        sex_at_birth,
        // An address the dispensing record needs (KAP-SPEC 9.2), made up from figures already drawn
        // so the random sequence (and every later patient) stays as it was.
        details: PatientDetails {
            phone: Some(phone),
            address: Some(format!(
                "{} {} Street, Springfield, ST 00000",
                10 + age_days % 890,
                ["Harbour", "Elm", "Quay", "Willow", "Station"][age_days % 5]
            )),
            ..PatientDetails::default()
        },
    })
}

/// Creates the clinic and its first settings version.
pub async fn create_clinic(db: &Db, name: &str, time_zone: &str) -> Result<ClinicId, AppError> {
    let clinic = ClinicId::new();
    let mut tx = db.begin().await?;
    clinics::insert(&mut tx, clinic, name, time_zone).await?;
    clinics::save_settings(&mut tx, clinic, &clinics::ClinicSettings::default(), None).await?;
    tx.commit().await?;
    Ok(clinic)
}

/// Seeds the demo clinic into an empty database: one account per staff role, a few patients with
/// portal accounts. Refuses a database that already holds data.
pub async fn seed_demo(state: &AppState, password: &str) -> Result<DemoSeed, AppError> {
    if !state.db.is_empty().await? {
        return Err(AppError::Conflict {
            field: "database",
            message: "the database is not empty; demo data is only seeded into a new database".into(),
        });
    }
    let clinic = create_clinic(&state.db, DEMO_CLINIC, DEMO_TIME_ZONE).await?;
    let mut accounts = Vec::new();
    // A second therapist covers the dosing floor (every KAP session has its own therapist
    // present throughout, KAP-SPEC 2.2); everyone else is one person per role.
    let staff = [
        (Role::Admin, "admin", "Morgan Admin"),
        (Role::Prescriber, "prescriber", "Dr. Riley Prescriber"),
        (Role::Nurse, "nurse", "Sam Nurse, RN"),
        (Role::Therapist, "therapist", "Alex Therapist, LMFT"),
        (Role::Therapist, "therapist2", "Casey Therapist, LCSW"),
        (Role::Frontdesk, "frontdesk", "Jordan Frontdesk"),
    ];
    for (role, local, name) in staff {
        let email = format!("{local}@{DEMO_DOMAIN}");
        let input = NewAccountInput {
            email: email.clone(),
            name: name.into(),
            role: role.as_str().into(),
            password: password.into(),
            patient_mrn: None,
        };
        create_account(state, Operator::CommandLine { clinic }, input).await?;
        accounts.push((email, role));
    }
    let today = kapstone_domain::UtcTs::now().to_datetime().date();
    let mut rng = SplitMix64::new(2026);
    let created = insert_patients(&state.db, clinic, 12, &mut rng, today).await?;
    for (i, p) in created.iter().take(DEMO_PATIENT_ACCOUNTS).enumerate() {
        let (mrn, given, family) = (&p.mrn, &p.given_name, &p.family_name);
        let email = format!("patient{}@{DEMO_DOMAIN}", i + 1);
        let input = NewAccountInput {
            email: email.clone(),
            name: format!("{given} {family}"),
            role: "patient".into(),
            password: password.into(),
            patient_mrn: Some(mrn.clone()),
        };
        create_account(state, Operator::CommandLine { clinic }, input).await?;
        accounts.push((email, Role::Patient));
    }
    seed_questionnaires(state).await?;
    let on_the_floor = seed_pathway(state, clinic).await?;
    seed_schedule(state).await?;
    super::demo_ledger::seed_ledger(state).await?;
    super::demo_floor::seed_floor(state, &on_the_floor).await?;
    super::demo_journal::seed_journal(state).await?;
    super::demo_outcomes::seed_outcomes(state).await?;
    Ok(DemoSeed { clinic, accounts })
}

/// The demo clinic's schedule: one location, three chairs, the appointment types, clinicians'
/// weekday hours, and a week of appointments. Lengths follow KAP-SPEC 5.4 (minimum observation:
/// 2 h for Spravato and SL/IM racemic; IV = 40-minute infusion (4.1) + 60 min); the 15-minute
/// check-in and recovery buffers are this demo clinic's choice, configurable per clinic.
async fn seed_schedule(state: &AppState) -> Result<(), AppError> {
    use kapstone_domain::decision::Route;
    use kapstone_domain::scheduling::{AppointmentKind as K, AppointmentType, Length, StaffNeed};

    use super::scheduling as sched;
    let actor = |role: &str| {
        let email = format!("{role}@{DEMO_DOMAIN}");
        async move {
            let row = kapstone_store::users::find_by_email(&state.db, &kapstone_domain::Email::parse(&email)?)
                .await?
                .ok_or(AppError::NotFound)?;
            demo_actor(&row).map(|a| (a, row.id))
        }
    };
    let (admin, _) = actor("admin").await?;
    let (front, _) = actor("frontdesk").await?;
    let (_, prescriber) = actor("prescriber").await?;
    // The demo prescriber is also the medical director (may change the dosing protocols).
    let mut tx = state.db.begin().await?;
    kapstone_store::dosing::set_medical_director(&mut tx, kapstone_domain::UserId::from_uuid(prescriber), true).await?;
    tx.commit().await?;
    let (_, nurse) = actor("nurse").await?;
    let (_, therapist) = actor("therapist").await?;
    let location = sched::create_location(state, &admin, "Harbour Light — Main clinic", DEMO_TIME_ZONE).await?;
    // The demo clinic is a REMS-certified healthcare setting (GATE-03), with the address and the
    // clinicians' telephones the REMS Patient Monitoring Form asks for. All synthetic: 555-01xx
    // numbers are reserved for fiction.
    let setting = super::rems::RemsSettingInput {
        certified: true,
        address_line1: "1200 Harbour Light Way".into(),
        address_line2: "Suite 300".into(),
        city: "Portland".into(),
        state: "OR".into(),
        zip: "97201".into(),
    };
    super::rems::set_rems_setting(state, &admin, &location.to_string(), &setting).await?;
    let (_, nurse_id) = actor("nurse").await?;
    for (id, phone) in [(prescriber, "+1 503 555 0141"), (nurse_id, "+1 503 555 0142")] {
        super::rems::set_work_phone(state, &admin, kapstone_domain::UserId::from_uuid(id), phone).await?;
    }
    let mut chairs = Vec::new();
    for name in ["Chair 1", "Chair 2", "Chair 3"] {
        chairs.push(sched::create_room(state, &admin, &location.to_string(), name).await?);
    }
    let need = |roles: &[Role]| StaffNeed(roles.to_vec());
    let dosing = |code: &str, name: &str, route: Route, observation: u16| AppointmentType {
        code: code.into(),
        name: name.into(),
        kind: K::Dosing,
        route: Some(route),
        length: Length::Dosing { check_in_minutes: 15, observation_minutes: observation, recovery_minutes: 15 },
        staff: vec![need(&[Role::Prescriber, Role::Nurse]), need(&[Role::Therapist])],
        needs_room: true,
        telehealth: false,
    };
    let simple = |code: &str, name: &str, kind: K, minutes: u16, roles: &[Role], telehealth: bool| AppointmentType {
        code: code.into(),
        name: name.into(),
        kind,
        route: None,
        length: Length::Fixed { minutes },
        staff: vec![need(roles)],
        needs_room: false,
        telehealth,
    };
    let types = [
        simple("consultation", "Consultation", K::Consultation, 60, &[Role::Prescriber], false),
        simple("preparation", "Preparation session", K::Preparation, 50, &[Role::Therapist], true),
        dosing("dosing-sl", "Dosing: sublingual lozenge (KAP)", Route::SublingualLozenge, 120),
        dosing("dosing-im", "Dosing: IM ketamine (KAP)", Route::IntramuscularRacemic, 120),
        dosing("dosing-iv", "Dosing: IV ketamine infusion", Route::IntravenousRacemic, 100),
        dosing("dosing-spravato", "Dosing: Spravato", Route::SpravatoIntranasal, 120),
        simple("integration", "Integration session", K::Integration, 50, &[Role::Therapist], true),
        simple("follow-up", "Follow-up", K::FollowUp, 30, &[Role::Prescriber, Role::Nurse, Role::Therapist], true),
        simple("course-review", "Course review", K::CourseReview, 30, &[Role::Prescriber], false),
    ];
    for t in &types {
        sched::save_type(state, &admin, t).await?;
    }
    let week: Vec<sched::HoursInput> = (1..=5)
        .map(|d| sched::HoursInput { weekday: d, start: "08:00".into(), end: "18:00".into(), location_id: None })
        .collect();
    for person in [prescriber, nurse, therapist] {
        sched::set_hours(state, &admin, &person.to_string(), &week).await?;
    }
    // A week of appointments from the next weekday on, at local clinic times.
    let tz = sched::time_zone(DEMO_TIME_ZONE)?;
    let today = jiff::Timestamp::now().to_zoned(tz.clone()).date();
    let mut days = Vec::new();
    let mut d = today;
    while days.len() < 5 {
        d = d.tomorrow().map_err(|e| AppError::Internal(e.into()))?;
        if d.weekday().to_monday_one_offset() <= 5 {
            days.push(d);
        }
    }
    let at = |day: jiff::civil::Date, h: i8, m: i8| -> Result<String, AppError> {
        let t = jiff::civil::Time::new(h, m, 0, 0).map_err(|e| AppError::Internal(e.into()))?;
        Ok(kapstone_domain::scheduling::instant(&tz, day, t).map_err(|e| AppError::Internal(e.into()))?.to_string())
    };
    let account_patient = |n: usize| async move {
        let email = kapstone_domain::Email::parse(&format!("patient{n}@{DEMO_DOMAIN}"))?;
        let row = kapstone_store::users::find_by_email(&state.db, &email).await?.ok_or(AppError::NotFound)?;
        row.patient().ok_or(AppError::NotFound)
    };
    let p3 = account_patient(3).await?;
    let p1 = account_patient(1).await?;
    let p2 = account_patient(2).await?;
    sched::record_rems(state, &front, p3, &today.to_string(), Some("REMS-DEMO-0003")).await?;
    let book = |patient: kapstone_domain::PatientId,
                kind: &str,
                start: String,
                staff: Vec<uuid::Uuid>,
                room: Option<uuid::Uuid>| {
        let req = sched::BookingRequest {
            patient_id: patient.to_string(),
            kind: kind.into(),
            start,
            staff_ids: staff.iter().map(ToString::to_string).collect(),
            room_id: room.map(|r| r.to_string()),
            location_id: None,
            course: None,
        };
        let front = front.clone();
        async move { sched::book(state, &front, &req, None).await }
    };
    // Patient 3 (preparation): a preparation session, then Spravato twice in week 1 with integration.
    book(p3, "preparation", at(days[0], 8, 0)?, vec![therapist], None).await?;
    // Patient 3's Spravato course (SPRAVATO-TRD: twice weekly in weeks 1–4, ...) from the coming
    // Monday, booked at 10:00 (Mondays and Thursdays).
    let monday = days.iter().copied().find(|d| d.weekday() == jiff::civil::Weekday::Monday).unwrap_or(days[0]);
    let (prescriber_actor, _) = actor("prescriber").await?;
    let course = super::courses::start(
        state,
        &prescriber_actor,
        p3,
        "SPRAVATO-TRD",
        &monday.to_string(),
        kapstone_domain::course::CourseOptions::default(),
    )
    .await?;
    super::courses::book_plan(
        state,
        &front,
        course.id,
        "10:00",
        &[nurse.to_string(), therapist.to_string()],
        Some(&chairs[0].to_string()),
        false,
    )
    .await?;
    book(p3, "integration", at(days[2], 15, 0)?, vec![therapist], None).await?;
    // Checklists in every state: the first session ready, the second with a ride taken on the
    // phone (not yet confirmed by the patient), the rest still open.
    let p3_account = {
        let email = kapstone_domain::Email::parse(&format!("patient3@{DEMO_DOMAIN}"))?;
        let row = kapstone_store::users::find_by_email(&state.db, &email).await?.ok_or(AppError::NotFound)?;
        demo_actor(&row)?
    };
    let dosing: Vec<uuid::Uuid> = kapstone_store::scheduling::appointments_of_patient(&state.db, p3)
        .await?
        .into_iter()
        .filter(|a| a.status == "booked" && a.room_id.is_some())
        .map(|a| a.id)
        .collect();
    if let Some(first) = dosing.first() {
        use super::preparation as prep;
        prep::set_escort(state, &p3_account, *first, "Robin Example", "+1 555 0100 0003", "partner").await?;
        prep::set_intention(state, &p3_account, *first, "To meet the heaviness with curiosity instead of fear.")
            .await?;
        prep::acknowledge(state, &p3_account, *first).await?;
        prep::set_medication_instructions(state, &prescriber_actor, *first, "Take sertraline as usual. No changes.")
            .await?;
    }
    if let Some(second) = dosing.get(1) {
        super::preparation::set_escort(state, &front, *second, "Robin Example", "+1 555 0100 0003", "partner").await?;
    }
    // Patient 1 (consultation under way): the consultation visit; patient 2: a follow-up.
    book(p1, "consultation", at(days[0], 11, 0)?, vec![prescriber], None).await?;
    book(p2, "follow-up", at(days[2], 14, 0)?, vec![nurse], None).await?;
    Ok(())
}

/// A consultation with every eligibility data element recorded and nothing that applies, which
/// each demo patient then varies.
fn demo_consultation(male: bool) -> serde_json::Value {
    use serde_json::json;
    json!({
        "mental_health_history": "Recurrent depressive episodes since early adulthood; two prior hospital-free courses of treatment.",
        "current_symptoms": "Low mood most days, poor sleep, loss of interest in usual activities.",
        "treatment_goals": "Return to work full time; re-engage with friends and family.",
        "diagnoses": [{"code": "F33.2"}],
        "conditions": {
            "aneurysmal_vascular_disease": false, "arteriovenous_malformation": false,
            "intracerebral_hemorrhage_history": false, "ketamine_hypersensitivity": false,
            "pressure_risk_condition": "none", "uncontrolled_hypertension": false,
            "hypertensive_encephalopathy_history": false, "raised_intracranial_pressure": false,
            "intraocular_risk": "none", "psychotic_disorder": "none", "current_mania": false,
            "bipolar_currently_depressed": false, "substance_use_disorder": "none", "alcohol_use": false,
            "hepatic": "none", "uncontrolled_hyperthyroidism": false, "cystitis_or_urinary_symptoms": false,
            "serious_reaction_to_ketamine": false, "seizure_disorder": false, "unable_to_consent": false
        },
        "medications_reconciled": true,
        "medications": [{"name": "sertraline", "drug_class": "antidepressant", "daily_dose_mg": 150}],
        "allergies": [{"substance": "penicillin", "reaction": "rash", "severity": "mild"}],
        "antidepressant_trials": [
            {"drug": "escitalopram", "max_daily_dose_mg": 20, "reached_minimum_labelled_dose": true,
             "weeks_at_or_above_min_dose": 10, "adherence": "good", "outcome": "non_response", "current_episode": true},
            {"drug": "venlafaxine", "max_daily_dose_mg": 225, "reached_minimum_labelled_dose": true,
             "weeks_at_or_above_min_dose": 8, "adherence": "good", "outcome": "partial", "current_episode": true}
        ],
        "pregnancy_status": if male { "not_applicable" } else { "not_pregnant" },
        "breastfeeding": if male { serde_json::Value::Null } else { json!(false) },
        "vitals": {"systolic_mmhg": 122, "diastolic_mmhg": 78, "heart_rate_bpm": 72, "spo2_percent": 98,
                   "weight_kg": 70.5, "height_cm": 172}
    })
}

/// Demo patients at each stage of the pathway (KAP-SPEC 2.1): patient 1 in consultation with an
/// open safety alert; patient 2 at consent (eligible, with a reviewed blood-pressure finding);
/// patient 3 in preparation (decision and consent signed); one awaiting the prescriber's
/// decision; one excluded by ELIG-001 and signed not eligible; one on hold; one withdrawn; the
/// rest newly referred.
/// Returns the patients ready for today's dosing sessions on the floor (eligible for lozenges and
/// IM ketamine, consent signed).
async fn seed_pathway(state: &AppState, clinic: ClinicId) -> Result<Vec<kapstone_domain::PatientId>, AppError> {
    use super::eligibility as elig;
    use serde_json::json;
    let prescriber_email = kapstone_domain::Email::parse(&format!("prescriber@{DEMO_DOMAIN}"))?;
    let prescriber =
        kapstone_store::users::find_by_email(&state.db, &prescriber_email).await?.ok_or(AppError::NotFound)?;
    let nurse_email = kapstone_domain::Email::parse(&format!("nurse@{DEMO_DOMAIN}"))?;
    let nurse = kapstone_store::users::find_by_email(&state.db, &nurse_email).await?.ok_or(AppError::NotFound)?;
    let (prescriber, nurse) = (demo_actor(&prescriber)?, demo_actor(&nurse)?);
    let patients = kapstone_store::patients::list(&state.db, clinic, 12, 0).await?;
    let account_of = |n: usize| async move {
        let email = kapstone_domain::Email::parse(&format!("patient{n}@{DEMO_DOMAIN}"))?;
        let row = kapstone_store::users::find_by_email(&state.db, &email).await?.ok_or(AppError::NotFound)?;
        row.patient().ok_or(AppError::NotFound)
    };
    let (p1, p2, p3) = (account_of(1).await?, account_of(2).await?, account_of(3).await?);
    let others: Vec<_> = patients.iter().filter(|p| ![p1, p2, p3].contains(&p.patient_id())).collect();
    let male =
        |id: kapstone_domain::PatientId| patients.iter().any(|p| p.patient_id() == id && p.sex_at_birth == "male");
    let consult = |id: kapstone_domain::PatientId, body: serde_json::Value| {
        let nurse = nurse.clone();
        async move {
            let input: kapstone_domain::consultation::ConsultationInput =
                serde_json::from_value(body).map_err(|e| AppError::Internal(e.into()))?;
            elig::save_consultation(state, &nurse, id, &input, None).await
        }
    };
    let baseline = |id: kapstone_domain::PatientId| {
        let nurse = nurse.clone();
        async move {
            for (instrument, answers) in [
                ("phq9", json!([2, 2, 2, 1, 1, 2, 1, 1, 0])),
                ("gad7", json!([1, 2, 1, 1, 0, 1, 1])),
                ("cssrs_screener", json!([false, false, null, null, null, false, null])),
            ] {
                let answers = answers.as_array().cloned().unwrap_or_default();
                let submission = super::questionnaires::Submission { instrument: instrument.into(), answers };
                super::questionnaires::submit(state, &nurse, id, submission).await?;
            }
            Ok::<(), AppError>(())
        }
    };
    let sign = |id: kapstone_domain::PatientId, request: serde_json::Value| {
        let prescriber = prescriber.clone();
        async move {
            let row =
                kapstone_store::patients::get(&state.db, prescriber.clinic, id).await?.ok_or(AppError::NotFound)?;
            let a = elig::assess(state, &row).await?;
            let request: kapstone_domain::decision::DecisionRequest =
                serde_json::from_value(request).map_err(|e| AppError::Internal(e.into()))?;
            // The seeded demo signs without re-entering a password (no one is there to type it).
            let signing = elig::Signing {
                request: &request,
                reviewed_input_sha256: &a.input_sha256,
                amends: None,
                password: None,
                totp_code: None,
            };
            elig::sign(state, &prescriber, id, signing).await
        }
    };

    // Patient 1: consultation under way (no C-SSRS yet, no vitals), open safety alert.
    let mut partial = demo_consultation(male(p1));
    partial["vitals"] = json!({});
    consult(p1, partial).await?;

    // Patient 2: eligible for lozenges after the prescriber reviewed a raised blood pressure.
    let mut raised = demo_consultation(male(p2));
    raised["vitals"]["systolic_mmhg"] = json!(148);
    raised["vitals"]["diastolic_mmhg"] = json!(88);
    consult(p2, raised).await?;
    baseline(p2).await?;
    sign(p2, json!({
        "verdict": "eligible",
        "routes": [{"route": "sublingual_lozenge", "course_template": "KAP-SL"}],
        "dispositions": [{"rule_id": "ELIG-007", "acceptable": true,
                          "reason": "Repeat reading 134/84 after rest; no cardiovascular history."}],
        "summary": "Recurrent MDD with two failed adequate trials; benefit outweighs risk. BP to be rechecked before each session."
    })).await?;

    // Patient 3: eligible for Spravato (TRD) and racemic IM; both consents signed on paper.
    consult(p3, demo_consultation(male(p3))).await?;
    baseline(p3).await?;
    sign(
        p3,
        json!({
            "verdict": "eligible",
            "routes": [{"route": "spravato_intranasal", "course_template": "SPRAVATO-TRD"},
                       {"route": "intramuscular_racemic", "course_template": "KAP-IM"}],
            "spravato_indication": "trd",
            "summary": "TRD per KAP-SPEC 3.3 (two adequate trials in this episode). Start Spravato per label."
        }),
    )
    .await?;
    let p3_row = patients.iter().find(|p| p.patient_id() == p3).ok_or(AppError::NotFound)?;
    let typed = format!("{} {}", p3_row.given_name, p3_row.family_name);
    let signed_on = kapstone_domain::UtcTs::now().to_datetime().date().to_string();
    for doc in ["kap-general", "spravato-rems"] {
        super::consents::record_paper(state, &nurse, p3, doc, &typed, &signed_on).await?;
    }

    let mut rest = others.into_iter().map(|p| p.patient_id());
    // Awaiting the prescriber: everything recorded, no decision yet.
    if let Some(id) = rest.next() {
        consult(id, demo_consultation(male(id))).await?;
        baseline(id).await?;
    }
    // Excluded by ELIG-001 (aneurysmal vascular disease) and signed not eligible.
    if let Some(id) = rest.next() {
        let mut c = demo_consultation(male(id));
        c["conditions"]["aneurysmal_vascular_disease"] = json!(true);
        consult(id, c).await?;
        baseline(id).await?;
        sign(id, json!({
            "verdict": "not_eligible",
            "summary": "Known abdominal aortic aneurysm (ELIG-001): ketamine's blood-pressure rise is a serious hazard. Referred back to the GP with alternatives."
        })).await?;
    }
    // On hold while a cardiology letter is awaited.
    if let Some(id) = rest.next() {
        let mut c = demo_consultation(male(id));
        c["conditions"]["pressure_risk_condition"] = json!("remote");
        consult(id, c).await?;
        elig::change_pathway(state, &nurse, id, "hold", "Awaiting the cardiology letter about the 2019 MI.").await?;
    }
    // Withdrawn by the patient before the consultation.
    if let Some(id) = rest.next() {
        elig::change_pathway(
            state,
            &nurse,
            id,
            "withdraw",
            "Patient chose to continue with their current psychiatrist.",
        )
        .await?;
    }
    // On the floor today: eligible for lozenges and IM ketamine, consent signed on paper.
    let mut ready = Vec::new();
    for id in rest.take(3) {
        consult(id, demo_consultation(male(id))).await?;
        baseline(id).await?;
        sign(id, json!({
            "verdict": "eligible",
            "routes": [{"route": "sublingual_lozenge", "course_template": "KAP-SL"},
                       {"route": "intramuscular_racemic", "course_template": "KAP-IM"}],
            "summary": "Recurrent MDD, two failed adequate trials; no exclusions. KAP with lozenges, IM as an alternative."
        })).await?;
        let row = patients.iter().find(|p| p.patient_id() == id).ok_or(AppError::NotFound)?;
        let typed = format!("{} {}", row.given_name, row.family_name);
        super::consents::record_paper(state, &nurse, id, "kap-general", &typed, &signed_on).await?;
        ready.push(id);
    }
    Ok(ready)
}

/// Baseline questionnaires as the demo patients filled them in the portal: patient 1 answers
/// PHQ-9 item 9 with "several days", which leaves an open safety alert on every clinician's home
/// page until a prescriber or therapist acknowledges it.
async fn seed_questionnaires(state: &AppState) -> Result<(), AppError> {
    use serde_json::json;
    let plans: [(&str, &str, serde_json::Value); 4] = [
        ("patient1", "phq9", json!([2, 2, 1, 3, 1, 2, 1, 0, 1])),
        ("patient1", "gad7", json!([2, 3, 2, 1, 0, 2, 1])),
        ("patient2", "phq9", json!([2, 2, 2, 2, 2, 2, 2, 1, 0])),
        ("patient3", "pcl5", json!([3, 2, 1, 2, 3, 2, 1, 0, 1, 2, 1, 3, 1, 0, 1, 2, 1, 3, 0, 1])),
    ];
    for (who, instrument, answers) in plans {
        let email = kapstone_domain::Email::parse(&format!("{who}@{DEMO_DOMAIN}"))?;
        let Some(row) = kapstone_store::users::find_by_email(&state.db, &email).await? else { continue };
        let answers = answers.as_array().cloned().unwrap_or_default();
        let submission = super::questionnaires::Submission { instrument: instrument.into(), answers };
        let patient = row.patient().ok_or(AppError::NotFound)?;
        super::questionnaires::submit(state, &demo_actor(&row)?, patient, submission).await?;
    }
    Ok(())
}

/// The seeded patient acting in the portal (no request, so no session or address).
pub fn demo_actor(row: &kapstone_store::users::UserRow) -> Result<crate::auth::guard::CurrentUser, AppError> {
    Ok(crate::auth::guard::CurrentUser {
        id: row.user_id(),
        clinic: row.clinic(),
        role: row.role()?,
        name: row.display_name.clone(),
        email: row.email.clone(),
        patient: row.patient(),
        session: kapstone_domain::SessionId::new(),
        csrf: String::new(),
        api: true,
        totp_enabled: false,
        mfa_setup_required: false,
        mfa_not_required_for_admins: false,
        ip: None,
        token: None,
        // The seed acts for people who are not at a keyboard: it counts as just authenticated.
        authenticated_at: Some(kapstone_domain::UtcTs::now()),
    })
}

/// Inserts `n` synthetic patients in batches, each with its audit event. Returns their records.
pub async fn insert_patients(
    db: &Db,
    clinic: ClinicId,
    n: usize,
    rng: &mut SplitMix64,
    today: Date,
) -> Result<Vec<patients::PatientRow>, AppError> {
    const BATCH: usize = 1_000;
    let mut out = Vec::with_capacity(n);
    let mut done = 0;
    while done < n {
        let mut tx = db.begin().await?;
        for _ in 0..BATCH.min(n - done) {
            let p = synthetic_patient(rng, today)?;
            let row = patients::insert(&mut tx, clinic, &p).await?;
            let mut e = NewAuditEvent::new(AuditAction::PatientCreated, "patient", Outcome::Success);
            e.clinic_id = Some(clinic);
            e.entity_id = Some(row.id.to_string());
            e.patient_id = Some(row.patient_id());
            e.reason = Some("synthetic demo data".into());
            audit::append(&mut tx, &e).await?;
            out.push(row);
            done += 1;
        }
        tx.commit().await?;
    }
    Ok(out)
}

/// A fixed "today" for generated data, so generated clinics are identical across runs.
pub fn generator_today() -> Date {
    Date::from_calendar_date(2026, Month::January, 1).unwrap_or(Date::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic() {
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
    }

    #[test]
    fn synthetic_patients_are_adults_with_valid_names() {
        let mut rng = SplitMix64::new(1);
        let today = generator_today();
        for _ in 0..200 {
            let p = synthetic_patient(&mut rng, today).ok();
            let age = p.map(|p| today.year() - p.birth_date.date().year());
            assert!(age.is_some_and(|a| (18..=74).contains(&a)), "{age:?}");
        }
    }
}
