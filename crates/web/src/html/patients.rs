//! Patient list and chart (staff). Both reads are audited by the use case.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use kapstone_domain::PatientId;
use kapstone_domain::permissions::{Action, allows};
use kapstone_store::patients::{PatientKey, PatientRow};

use super::{FieldErrors, Layout, PageResult, render, when};
use crate::api::page;
use crate::app::patients;
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

const PAGE: i64 = 50;

#[derive(Template)]
#[template(path = "patients.html")]
struct PatientsPage {
    layout: Layout,
    rows: Vec<PatientRow>,
    /// Each row's pathway stage.
    stages: Vec<&'static str>,
    total: i64,
    q: String,
    search_error: Option<String>,
    can_register: bool,
    /// Past the first page: a link back to it.
    first_href: Option<String>,
    /// More follow: the next page, after this one's last patient (keyset, like the API).
    next_href: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// `/patients?q=&cursor=`: the clinic's patients (or those matching `q`) by family name, given
/// name and id, 50 at a time; "Next page" carries the last one's key, so a patient registered
/// meanwhile is neither skipped nor shown twice.
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ListQuery>,
) -> PageResult<Html<String>> {
    let total = kapstone_store::patients::count(&state.db, user.clinic).await?;
    let text = q.q.clone().unwrap_or_default();
    let can_register = allows(Some(user.role), Action::RegisterPatient);
    let layout = Layout::for_user("Patients", &user, "/patients");
    let after: Option<PatientKey> = page::after(q.cursor.as_deref())?;
    let searching = !text.trim().is_empty();
    let (mut rows, search_error) = if searching {
        match patients::search(&state, &user, &text, after.as_ref(), PAGE + 1).await {
            Ok(rows) => (rows, None),
            Err(AppError::Invalid(e)) => (Vec::new(), Some(super::sentence(&e.message))),
            Err(e) => return Err(e.into()),
        }
    } else {
        (patients::page(&state, &user, after.as_ref(), PAGE + 1).await?, None)
    };
    let next = kapstone_store::keyset::cut(&mut rows, PAGE, PatientRow::key);
    let href = |cursor: Option<String>| {
        let mut params: Vec<(&str, String)> = Vec::new();
        if searching {
            params.push(("q", text.clone()));
        }
        params.extend(cursor.map(|c| ("cursor", c)));
        let query = serde_urlencoded::to_string(&params).unwrap_or_default();
        if query.is_empty() { "/patients".to_owned() } else { format!("/patients?{query}") }
    };
    let next_href = next.map(|k| href(Some(page::cursor(&k))));
    let first_href = after.is_some().then(|| href(None));
    let stages = stage_labels(&state, &user, &rows).await?;
    render(&PatientsPage { layout, stages, rows, total, q: text, search_error, can_register, first_href, next_href })
}

async fn stage_labels(
    state: &AppState,
    user: &CurrentUser,
    rows: &[PatientRow],
) -> Result<Vec<&'static str>, AppError> {
    Ok(crate::app::eligibility::stages(state, user, rows).await?.into_iter().map(|s| s.label()).collect())
}

/// One scored questionnaire as listed on the chart.
pub struct ResponseView {
    pub instrument: String,
    pub when: String,
    pub total: String,
    pub severity: String,
    pub flags: String,
    pub via: &'static str,
}

#[derive(Template)]
#[template(path = "patient.html")]
struct PatientPage {
    layout: Layout,
    p: PatientRow,
    registered: String,
    responses: Vec<ResponseView>,
    assigned: Vec<(String, String)>,
    can_assign: bool,
    can_invite: bool,
    has_account: bool,
    /// (document id, title, status text, valid, live consent id to revoke)
    consents: Vec<(String, String, String, bool, Option<String>)>,
    can_record_consent: bool,
    /// What is due next for this patient, most urgent first.
    due: Vec<String>,
    stage: &'static str,
    can_read_clinical: bool,
    can_manage_pathway: bool,
    /// (event, reason, when)
    pathway_events: Vec<(String, String, String)>,
    /// (when, type, status, upcoming, id)
    appointments: Vec<super::schedule::TimelineItem>,
    /// The date of the Spravato REMS enrolment, if recorded.
    rems_enrolled_on: Option<String>,
    can_book: bool,
    can_see_schedule: bool,
    notice: Option<String>,
    assign_error: Option<String>,
    pathway_error: Option<String>,
    /// Dosing sessions, newest first, each with the link to its integration notes: (id, opened, phase).
    dosing_sessions: Vec<(String, String, String)>,
    /// PHQ-9, GAD-7 and PCL-5 over time with the dosing sessions marked (clinicians).
    outcome_panels: Vec<super::outcomes::ChartPanel>,
}

fn instrument_title(id: &str) -> String {
    kapstone_domain::instruments::Instrument::parse(id)
        .and_then(|i| crate::content::instrument(i).ok())
        .map_or_else(|| id.to_owned(), |d| d.title.clone())
}

async fn chart(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    notice: Option<String>,
    assign_error: Option<String>,
) -> PageResult<Html<String>> {
    chart_with(state, user, id, notice, assign_error, None).await
}

/// The chart. One statement (they were some thirty): the patient with its account, REMS
/// enrolment, clinic time zone, the version of the clinic's settings in force, the newest
/// consultation, the eligibility decision in force and the lists as JSON — all the questionnaire
/// responses (the recent list, the instruments done, the newest per instrument and the outcome
/// scores come from them), open assignments, open safety alerts (for the roles that may read them),
/// pathway events, the latest signature of each consent document, the dosing sessions (for the
/// clinical record's readers), the appointments with their types and places (for the roles that
/// see the schedule) — in one (`kapstone_store::patients::chart_head`). Each statement costs a
/// hand-over to SQLite's connection thread and back (on PostgreSQL a round trip), which was most
/// of a view's cost. The settings are parsed once per version and process
/// (`app::settings_cache`). The audit events (the read, and the outcomes for clinicians) are
/// queued together and committed while the panels are read; the page is answered only once they
/// are.
async fn chart_with(
    state: &AppState,
    user: &CurrentUser,
    id: PatientId,
    notice: Option<String>,
    assign_error: Option<String>,
    pathway_error: Option<String>,
) -> PageResult<Html<String>> {
    // The dosing sessions are read, as the outcomes, only for the clinical record's readers.
    let can_read_clinical = allows(Some(user.role), Action::ReadClinicalRecord);
    let parts = kapstone_store::patients::ChartParts {
        safety_alerts: allows(Some(user.role), Action::ReadSafetyAlerts),
        dosing_sessions: can_read_clinical,
        appointments: allows(Some(user.role), Action::ReadSchedule),
    };
    let Some(head) = kapstone_store::patients::chart_head(&state.db, user.clinic, id, parts).await? else {
        state.read_audit.record(patients::read_event(user, id, false)).await?;
        return Err(AppError::NotFound.into());
    };
    let mut events = vec![patients::read_event(user, id, true)];
    if can_read_clinical {
        events.push(crate::app::outcomes::read_event(user, id, "PHQ-9, GAD-7, PCL-5 outcomes"));
    }
    let audited = async { state.read_audit.record_all(events).await.map(|_| ()).map_err(AppError::from) };
    let ((), mut page) = tokio::try_join!(audited, panels(state, user, head, parts))?;
    page.notice = notice;
    page.assign_error = assign_error;
    page.pathway_error = pathway_error;
    render(&page)
}

/// Reads and builds every panel of the chart (no audit: the caller audits).
async fn panels(
    state: &AppState,
    user: &CurrentUser,
    head: kapstone_store::patients::ChartHead,
    parts: kapstone_store::patients::ChartParts,
) -> Result<PatientPage, AppError> {
    use kapstone_store::{DbTs, eligibility as elig, questionnaires};
    // What the role may read, as the head was read for it.
    let (can_read_clinical, can_see_schedule) = (parts.dosing_sessions, parts.appointments);
    let consultation = head.consultation();
    let decision = head.decision_in_force();
    let (open_assignments, alert_reasons, pathway_rows) =
        (head.open_assignments()?, head.open_alert_reasons()?, head.pathway_events()?);
    let (signatures, sessions, appointments) = (head.consents()?, head.dosing_sessions()?, head.appointments()?);
    // Oldest first, by (submitted_at, id).
    let all_responses = head.responses()?;
    let kapstone_store::patients::ChartHead {
        patient: p,
        has_account,
        rems_enrolled_on,
        clinic_time_zone,
        settings_version,
        ..
    } = head;
    let id = p.patient_id();
    let db = &state.db;
    let kept = state.settings.at(db, user.clinic, settings_version).await?;
    let settings: &kapstone_store::clinics::ClinicSettings = &kept;
    let responses = all_responses
        .iter()
        .rev()
        .take(20)
        .map(|r| {
            let result: serde_json::Value = serde_json::from_str(&r.result).unwrap_or_default();
            let flags =
                result["flags"].as_array().map(|f| f.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "));
            let risk = result["risk"].as_str().map(|r| format!("risk {r}"));
            let pcl = result["provisional_dsm5"].as_bool().map(|d| {
                format!(
                    "DSM rule {}, cut-point {}",
                    if d { "positive" } else { "negative" },
                    if result["provisional_cutoff"].as_bool() == Some(true) { "positive" } else { "negative" }
                )
            });
            ResponseView {
                instrument: instrument_title(&r.instrument),
                when: when(r.submitted_at.0),
                total: r.total.map(|t| t.to_string()).unwrap_or_else(|| "—".into()),
                severity: r.severity.as_ref().map(|s| s.replace('_', " ")).or(risk).or(pcl).unwrap_or_default(),
                flags: flags.unwrap_or_default().replace("suicide_risk", "⚠ suicide risk"),
                via: if r.entered_via == "portal" { "patient, portal" } else { "staff" },
            }
        })
        .collect();
    let assigned =
        open_assignments.into_iter().map(|a| (instrument_title(&a.instrument), when(a.assigned_at))).collect();
    let title = format!("{} {}", p.given_name, p.family_name);
    let registered = when(p.created_at.0);
    let now = kapstone_domain::UtcTs::now();
    let mut consents = Vec::new();
    for doc in crate::content::consent_documents()? {
        let latest = signatures.iter().find(|c| c.document_id == doc.id);
        let status = crate::app::consents::status_of(settings, latest.map(|c| (c.signed_at, c.revoked)), now);
        let live = latest.filter(|c| !c.revoked && status.is_valid()).map(|c| c.id.to_string());
        consents.push((
            doc.id.clone(),
            doc.title.clone(),
            crate::app::consents::describe(status),
            status.is_valid(),
            live,
        ));
    }
    // Most urgent first: an open safety alert, then the pathway's missing pieces.
    let mut due: Vec<String> = Vec::new();
    // Read with the patient only for the roles that may see them.
    due.extend(alert_reasons.into_iter().map(|reason| format!("⚠ Safety alert open: {reason}")));
    // The pathway stage from the rows read for the panels (as `eligibility::pathway_status`,
    // without the alerts).
    let mut done: Vec<(uuid::Uuid, String)> = Vec::new();
    let mut newest: std::collections::BTreeMap<&str, &questionnaires::ResponseSummary> = Default::default();
    for r in &all_responses {
        if !done.iter().any(|(_, i)| *i == r.instrument) {
            done.push((p.id, r.instrument.clone()));
        }
        newest.insert(&r.instrument, r);
    }
    let data = crate::app::eligibility::FactsData {
        inputs: elig::PathwayInputs {
            consultations: consultation.iter().map(|c| (p.id, c.body.clone())).collect(),
            decisions: decision.into_iter().collect(),
            events: pathway_rows.iter().map(|e| (p.id, e.event.clone())).collect(),
        },
        done,
        consents: signatures.iter().map(|c| (p.id, c.document_id.clone(), DbTs(c.signed_at), c.revoked)).collect(),
        settings,
        alerts: Vec::new(),
        rems: if rems_enrolled_on.is_some() { vec![p.id] } else { Vec::new() },
    };
    let assess = crate::app::eligibility::AssessInputs {
        settings,
        consultation: consultation.as_ref(),
        latest: newest.into_values().cloned().collect(),
        today: crate::app::eligibility::today_in(clinic_time_zone.as_deref())?,
    };
    let facts = crate::app::eligibility::facts_of(state, &p, &data, Some(&assess)).await?;
    let (stage, next) = kapstone_domain::pathway::assess(&facts);
    due.extend(next.into_iter().map(|n| format!("{} ({})", n.what, n.who)));
    let pathway_events = pathway_rows
        .into_iter()
        .map(|e| (e.event, if can_read_clinical { e.reason } else { String::new() }, when(e.recorded_at)))
        .collect();
    // Empty when the role may not see the schedule (not read).
    let appointments = super::schedule::timeline(appointments)?;
    let (dosing_sessions, outcome_panels) = if can_read_clinical {
        // The doses oldest first, as `outcomes::doses_of` reads them.
        let mut doses: Vec<kapstone_store::outcomes::DoseRow> = sessions
            .iter()
            .filter_map(|s| s.dose_started_at.map(|at| (s.id, DbTs(at), s.protocol_id.clone())))
            .collect();
        doses.sort_by_key(|d| (d.1, d.0));
        let scores: Vec<kapstone_store::outcomes::ScoreRow> = all_responses
            .iter()
            .filter(|r| matches!(r.instrument.as_str(), "phq9" | "gad7" | "pcl5"))
            .filter_map(|r| r.total.map(|t| (r.instrument.clone(), r.submitted_at, t)))
            .collect();
        let o = crate::app::outcomes::outcomes_from(id, settings, &scores, doses)?;
        let zone = crate::app::scheduling::time_zone(clinic_time_zone.as_deref().unwrap_or("UTC"))?;
        let sessions = sessions
            .into_iter()
            .map(|s| (s.id.to_string(), super::when(s.created_at), s.state.replace('_', " ")))
            .collect();
        (sessions, super::outcomes::panels(&o, &zone, "chart"))
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(PatientPage {
        dosing_sessions,
        outcome_panels,
        rems_enrolled_on,
        appointments,
        can_book: allows(Some(user.role), Action::BookAppointments),
        can_see_schedule,
        stage: stage.label(),
        can_read_clinical,
        can_manage_pathway: allows(Some(user.role), Action::ManagePathway),
        pathway_events,
        layout: Layout::for_user(&title, user, "/patients"),
        due,
        p,
        registered,
        responses,
        assigned,
        can_assign: allows(Some(user.role), Action::RecordQuestionnaire),
        can_invite: allows(Some(user.role), Action::RegisterPatient),
        can_record_consent: allows(Some(user.role), Action::RecordConsent),
        consents,
        has_account,
        notice: None,
        assign_error: None,
        pathway_error: None,
    })
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    chart(&state, &user, id, None, None).await
}

#[derive(serde::Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    instrument: String,
}

/// `POST /patients/{id}/assign`: send a questionnaire to the patient's portal.
pub async fn assign(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    axum::extract::Form(f): axum::extract::Form<AssignForm>,
) -> PageResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    match crate::app::questionnaires::assign(&state, &user, id, &f.instrument).await {
        Ok(_) => {
            Ok(chart(&state, &user, id, Some("Sent to the patient's portal.".into()), None).await?.into_response())
        }
        Err(AppError::Invalid(e)) => {
            let page = chart(&state, &user, id, None, Some(super::sentence(&e.message))).await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "patient_new.html")]
struct NewPatientPage {
    layout: Layout,
    required: Vec<Field>,
    optional: Vec<Field>,
    sex_at_birth: String,
    errors: FieldErrors,
}

impl NewPatientPage {
    fn new(user: &CurrentUser, form: &patients::NewPatientInput, errors: FieldErrors) -> Self {
        let f = |name, label, kind, value: &str| Field { name, label, kind, value: value.to_owned() };
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            layout: Layout::for_user("Register a patient", user, "/patients"),
            required: vec![
                f("given_name", "Given name", "text", &form.given_name),
                f("family_name", "Family name", "text", &form.family_name),
                f("birth_date", "Date of birth", "date", &form.birth_date),
            ],
            optional: vec![
                f("gender_identity", "Gender identity", "text", &o(&form.gender_identity)),
                f("pronouns", "Pronouns", "text", &o(&form.pronouns)),
                f("phone", "Phone", "tel", &o(&form.phone)),
                f("email", "Email", "email", &o(&form.email)),
                f("address", "Address", "text", &o(&form.address)),
                f("emergency_contact_name", "Emergency contact name", "text", &o(&form.emergency_contact_name)),
                f("emergency_contact_phone", "Emergency contact phone", "tel", &o(&form.emergency_contact_phone)),
            ],
            sex_at_birth: form.sex_at_birth.clone(),
            errors,
        }
    }
}

pub async fn new_form(user: CurrentUser) -> PageResult<Html<String>> {
    render(&NewPatientPage::new(&user, &patients::NewPatientInput::default(), FieldErrors::default()))
}

#[derive(serde::Deserialize)]
pub struct NewPatientForm {
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    sex_at_birth: String,
    #[serde(default)]
    gender_identity: String,
    #[serde(default)]
    pronouns: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    emergency_contact_name: String,
    #[serde(default)]
    emergency_contact_phone: String,
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    axum::extract::Form(f): axum::extract::Form<NewPatientForm>,
) -> PageResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let input = patients::NewPatientInput {
        given_name: f.given_name,
        family_name: f.family_name,
        birth_date: f.birth_date,
        sex_at_birth: f.sex_at_birth,
        gender_identity: Some(f.gender_identity),
        pronouns: Some(f.pronouns),
        phone: Some(f.phone),
        email: Some(f.email),
        address: Some(f.address),
        emergency_contact_name: Some(f.emergency_contact_name),
        emergency_contact_phone: Some(f.emergency_contact_phone),
    };
    match patients::register(&state, &user, &input).await {
        Ok(row) => Ok(axum::response::Redirect::to(&format!("/patients/{}", row.id)).into_response()),
        Err(e) => {
            let Some(errors) = FieldErrors::from_error(&e) else { return Err(e.into()) };
            let page = render(&NewPatientPage::new(&user, &input, errors))?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

#[derive(serde::Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
}

/// `POST /patients/{id}/invite`: send the patient a portal invitation.
pub async fn invite(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    axum::extract::Form(f): axum::extract::Form<InviteForm>,
) -> PageResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    match crate::app::invitations::invite(&state, &user, id, &f.email).await {
        Ok(()) => {
            Ok(chart(&state, &user, id, Some("Invitation written to the outbox.".into()), None).await?.into_response())
        }
        Err(e @ (AppError::Invalid(_) | AppError::Conflict { .. })) => {
            let msg = super::sentence(&e.public_message(""));
            let page = chart(&state, &user, id, None, Some(msg)).await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct PaperConsentForm {
    #[serde(default)]
    document: String,
    #[serde(default)]
    signed_name: String,
    #[serde(default)]
    signed_on: String,
}

/// `POST /patients/{id}/consents`: a consent signed on paper.
pub async fn record_consent(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    axum::extract::Form(f): axum::extract::Form<PaperConsentForm>,
) -> PageResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    match crate::app::consents::record_paper(&state, &user, id, &f.document, &f.signed_name, &f.signed_on).await {
        Ok(()) => Ok(chart(&state, &user, id, Some("Paper consent recorded.".into()), None).await?.into_response()),
        Err(AppError::Invalid(e)) => {
            let page = chart(&state, &user, id, None, Some(super::sentence(&e.message))).await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    reason: String,
}

/// `POST /patients/{id}/consents/{consent}/revoke`.
pub async fn revoke_consent(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, consent)): Path<(String, String)>,
    axum::extract::Form(f): axum::extract::Form<RevokeForm>,
) -> PageResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    let consent: uuid::Uuid = consent.parse().map_err(|_| AppError::NotFound)?;
    match crate::app::consents::revoke(&state, &user, id, consent, &f.reason).await {
        Ok(()) => Ok(chart(&state, &user, id, Some("Consent withdrawn.".into()), None).await?.into_response()),
        Err(AppError::Invalid(e)) => {
            let page = chart(&state, &user, id, None, Some(super::sentence(&e.message))).await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct PathwayForm {
    #[serde(default)]
    event: String,
    #[serde(default)]
    reason: String,
}

/// `POST /patients/{id}/pathway`: hold, resume, withdraw, complete or reopen; then back to the
/// chart (a redirect, so a reload does not post again).
pub async fn change_pathway(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    axum::extract::Form(f): axum::extract::Form<PathwayForm>,
) -> PageResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    match crate::app::eligibility::change_pathway(&state, &user, id, &f.event, &f.reason).await {
        Ok(()) => Ok(axum::response::Redirect::to(&format!("/patients/{id}")).into_response()),
        Err(AppError::Invalid(e)) => {
            let page = chart_with(&state, &user, id, None, None, Some(super::sentence(&e.message))).await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct RemsForm {
    #[serde(default)]
    enrolled_on: String,
    #[serde(default)]
    reference: String,
}

/// `POST /patients/{id}/rems`: record the Spravato REMS patient enrolment (GATE-03).
pub async fn record_rems(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    axum::extract::Form(f): axum::extract::Form<RemsForm>,
) -> PageResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    match crate::app::scheduling::record_rems(&state, &user, id, &f.enrolled_on, Some(&f.reference)).await {
        Ok(()) => Ok(axum::response::Redirect::to(&format!("/patients/{id}")).into_response()),
        Err(AppError::Invalid(e)) => {
            let page = chart(&state, &user, id, None, Some(super::sentence(&e.message))).await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
