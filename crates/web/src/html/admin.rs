//! Admin pages: accounts, clinic settings, audit log review and export.

use askama::Template;
use axum::extract::{Form, Path, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use kapstone_domain::audit::AuditAction;
use kapstone_domain::{Role, UserId, UtcTs};

use super::{FieldErrors, Layout, PageResult, render, when, when_seconds};
use crate::app::accounts::{self, AccountUpdate, NewAccountInput, Operator};
use crate::app::{audit_log, settings};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

fn role_options() -> Vec<(&'static str, &'static str)> {
    Role::ALL.into_iter().map(|r| (r.as_str(), r.label())).collect()
}

pub struct UserView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub mfa: bool,
    pub active: bool,
    pub locked: bool,
}

pub struct FormField {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub value: String,
    pub hint: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    layout: Layout,
    notice: Option<String>,
    users: Vec<UserView>,
    fields: Vec<FormField>,
    roles: Vec<(&'static str, &'static str)>,
    form: NewAccountInput,
    errors: FieldErrors,
}

async fn users_page(
    state: &AppState,
    admin: &CurrentUser,
    form: NewAccountInput,
    errors: FieldErrors,
    notice: Option<String>,
) -> PageResult<Html<String>> {
    let now = UtcTs::now();
    let users = accounts::list_accounts(state, admin)
        .await?
        .into_iter()
        .map(|u| UserView {
            id: u.id.to_string(),
            name: u.display_name.clone(),
            email: u.email.clone(),
            role: u.role().map(Role::label).unwrap_or("unknown"),
            mfa: u.totp_enabled,
            active: u.active,
            locked: state.config.lockout.is_locked(u.locked_until.map(|t| t.0), now),
        })
        .collect();
    let fields = vec![
        FormField { name: "name", label: "Full name", kind: "text", value: form.name.clone(), hint: None },
        FormField { name: "email", label: "Email", kind: "email", value: form.email.clone(), hint: None },
        FormField { name: "role", label: "Role", kind: "select", value: form.role.clone(), hint: None },
        FormField {
            name: "patient_mrn",
            label: "Patient MRN (patient accounts only)",
            kind: "text",
            value: form.patient_mrn.clone().unwrap_or_default(),
            hint: Some("Links a patient account to its record, e.g. K000012."),
        },
        FormField {
            name: "password",
            label: "First password",
            kind: "password",
            value: String::new(),
            hint: Some("At least 12 characters. Give it to the person in a safe way; they can change it."),
        },
    ];
    render(&UsersPage {
        layout: Layout::for_user("Accounts", admin, "/admin/users"),
        notice,
        users,
        fields,
        roles: role_options(),
        form,
        errors,
    })
}

#[derive(serde::Deserialize)]
pub struct UsersQuery {
    #[serde(default)]
    reset: Option<u8>,
}

pub async fn users(
    State(state): State<AppState>,
    admin: CurrentUser,
    Query(q): Query<UsersQuery>,
) -> PageResult<Html<String>> {
    let form = NewAccountInput { role: "nurse".into(), ..Default::default() };
    let notice = q.reset.map(|_| "The new password is set; that account was signed out everywhere.".to_owned());
    users_page(&state, &admin, form, FieldErrors::default(), notice).await
}

#[derive(serde::Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    patient_mrn: String,
}

pub async fn create_user(
    State(state): State<AppState>,
    admin: CurrentUser,
    Form(f): Form<CreateForm>,
) -> PageResult<Response> {
    let input = NewAccountInput {
        email: f.email,
        name: f.name,
        role: f.role,
        password: f.password,
        patient_mrn: Some(f.patient_mrn).filter(|m| !m.trim().is_empty()),
    };
    let shown = NewAccountInput { password: String::new(), ..input.clone() };
    match accounts::create_account(&state, Operator::Admin(&admin), input).await {
        Ok(_) => Ok(users_page(
            &state,
            &admin,
            NewAccountInput { role: "nurse".into(), ..Default::default() },
            FieldErrors::default(),
            Some(format!("Account {} added.", shown.email.trim())),
        )
        .await?
        .into_response()),
        Err(e) => {
            let Some(errors) = FieldErrors::from_error(&e) else { return Err(e.into()) };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, users_page(&state, &admin, shown, errors, None).await?)
                .into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage {
    layout: Layout,
    id: String,
    name: String,
    email: String,
    role: String,
    active: bool,
    locked: bool,
    created: String,
    roles: Vec<(&'static str, &'static str)>,
    errors: FieldErrors,
    medical_director: bool,
    /// As stored, or as typed when refused.
    work_phone: String,
}

async fn user_page(state: &AppState, admin: &CurrentUser, id: UserId, errors: FieldErrors) -> PageResult<Html<String>> {
    user_page_with(state, admin, id, errors, None).await
}

async fn user_page_with(
    state: &AppState,
    admin: &CurrentUser,
    id: UserId,
    errors: FieldErrors,
    typed_phone: Option<String>,
) -> PageResult<Html<String>> {
    let u = accounts::get_account(state, admin, id).await?;
    let work_phone = match typed_phone {
        Some(p) => p,
        None => crate::app::rems::work_phone(state, id).await?.unwrap_or_default(),
    };
    render(&UserPage {
        layout: Layout::for_user(&u.display_name, admin, "/admin/users"),
        id: u.id.to_string(),
        name: u.display_name.clone(),
        email: u.email.clone(),
        role: u.role.clone(),
        active: u.active,
        locked: state.config.lockout.is_locked(u.locked_until.map(|t| t.0), UtcTs::now()),
        created: when(u.created_at.0),
        roles: role_options(),
        errors,
        medical_director: kapstone_store::dosing::is_medical_director(&state.db, id).await?,
        work_phone,
    })
}

#[derive(serde::Deserialize)]
pub struct WorkPhoneForm {
    #[serde(default)]
    work_phone: String,
}

/// `POST /admin/users/{id}/work-phone`: the telephone the REMS Patient Monitoring Form gives for
/// this clinician when they conducted the monitoring; blank clears it. A refused number is shown
/// again next to the field and nothing is saved.
pub async fn set_work_phone(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<WorkPhoneForm>,
) -> PageResult<Response> {
    let id = user_id(&id)?;
    match crate::app::rems::set_work_phone(&state, &admin, id, &f.work_phone).await {
        Ok(()) => Ok(Redirect::to(&format!("/admin/users/{id}")).into_response()),
        Err(e @ AppError::Invalid(_)) => {
            let Some(errors) = FieldErrors::from_error(&e) else { return Err(e.into()) };
            let page = user_page_with(&state, &admin, id, errors, Some(f.work_phone)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct DirectorForm {
    #[serde(default)]
    medical_director: String,
}

/// `POST /admin/users/{id}/medical-director`: grant or withdraw the permission to change the
/// clinic's dosing protocols.
pub async fn set_medical_director(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<DirectorForm>,
) -> PageResult<Response> {
    let id = user_id(&id)?;
    let on = f.medical_director == "yes";
    match crate::app::protocols::set_medical_director(&state, &admin, id, on).await {
        Ok(()) => Ok(Redirect::to(&format!("/admin/users/{id}")).into_response()),
        Err(e @ AppError::Invalid(_)) => {
            let Some(errors) = FieldErrors::from_error(&e) else { return Err(e.into()) };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, user_page(&state, &admin, id, errors).await?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

fn user_id(raw: &str) -> Result<UserId, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

pub async fn user(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    user_page(&state, &admin, user_id(&id)?, FieldErrors::default()).await
}

#[derive(serde::Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    active: String,
}

#[derive(serde::Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    new_password: String,
}

pub async fn reset_password(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<ResetForm>,
) -> PageResult<Response> {
    let id = user_id(&id)?;
    match accounts::reset_password(&state, Operator::Admin(&admin), id, &f.new_password).await {
        Ok(()) => Ok(Redirect::to("/admin/users?reset=1").into_response()),
        Err(e) => {
            let Some(mut errors) = FieldErrors::from_error(&e) else { return Err(e.into()) };
            errors.rename("password", "new_password");
            Ok((StatusCode::UNPROCESSABLE_ENTITY, user_page(&state, &admin, id, errors).await?).into_response())
        }
    }
}

pub async fn update_user(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<UpdateForm>,
) -> PageResult<Response> {
    let id = user_id(&id)?;
    let active = match f.active.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(kapstone_domain::FieldError::new("active", "choose Active or Deactivated").into()),
    };
    let update = AccountUpdate { name: f.name, role: f.role, active };
    match accounts::update_account(&state, Operator::Admin(&admin), id, update).await {
        Ok(()) => Ok(Redirect::to("/admin/users").into_response()),
        Err(e) => {
            let Some(errors) = FieldErrors::from_error(&e) else { return Err(e.into()) };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, user_page(&state, &admin, id, errors).await?).into_response())
        }
    }
}

#[derive(Template)]
#[template(path = "admin_settings.html")]
struct SettingsPage {
    layout: Layout,
    notice: Option<String>,
    version: i64,
    roles: Vec<(&'static str, &'static str, bool)>,
    pcl5_cutoff: u8,
    consent_validity_months: u8,
    eligibility: kapstone_domain::eligibility::EligibilitySettings,
    reminders: kapstone_domain::reminders::ReminderSettings,
    measurement: kapstone_domain::measurement::MeasurementSettings,
    outcomes: kapstone_domain::outcomes::OutcomeSettings,
    intake_baseline: bool,
    course_review: kapstone_domain::course::ReviewSettings,
}

async fn settings_page(state: &AppState, admin: &CurrentUser, notice: Option<String>) -> PageResult<Html<String>> {
    let s = settings::current(state, admin.clinic).await?;
    let roles = Role::ALL.into_iter().map(|r| (r.as_str(), r.label(), s.requires_mfa(r))).collect();
    render(&SettingsPage {
        layout: Layout::for_user("Settings", admin, "/admin/settings"),
        notice,
        version: s.version,
        pcl5_cutoff: s.pcl5_cutoff,
        consent_validity_months: s.consent_validity_months,
        eligibility: s.eligibility,
        reminders: s.reminders,
        measurement: s.measurement,
        outcomes: s.outcomes,
        intake_baseline: s.outcomes.baseline == kapstone_domain::outcomes::BaselineRule::Intake,
        course_review: s.course_review,
        roles,
    })
}

#[derive(serde::Deserialize)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<i64>,
}

pub async fn settings_show(
    State(state): State<AppState>,
    admin: CurrentUser,
    Query(q): Query<SavedQuery>,
) -> PageResult<Html<String>> {
    let notice = q.saved.map(|v| format!("Settings saved as version {v}."));
    settings_page(&state, &admin, notice).await
}

/// Checkbox lists arrive as repeated keys (`mfa_role=admin&mfa_role=nurse`).
pub async fn settings_save(State(state): State<AppState>, admin: CurrentUser, body: String) -> PageResult<Response> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })?;
    let roles = pairs
        .iter()
        .filter(|(k, _)| k == "mfa_role")
        .map(|(_, v)| v.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(AppError::Invalid)?;
    let current = settings::current(&state, admin.clinic).await?;
    // A blank or absent field keeps the current value; anything else must be a whole number.
    fn number<T: std::str::FromStr + Copy>(
        pairs: &[(String, String)],
        name: &'static str,
        current: T,
    ) -> Result<T, AppError> {
        match pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()) {
            None | Some("") => Ok(current),
            Some(v) => v
                .parse::<T>()
                .map_err(|_| AppError::Invalid(kapstone_domain::FieldError::new(name, "enter a whole number"))),
        }
    }
    fn severity(
        pairs: &[(String, String)],
        name: &'static str,
        current: kapstone_domain::eligibility::Severity,
    ) -> Result<kapstone_domain::eligibility::Severity, AppError> {
        use kapstone_domain::eligibility::Severity;
        match pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()) {
            None | Some("") => Ok(current),
            Some("exclude") => Ok(Severity::Exclude),
            Some("physician_review") => Ok(Severity::PhysicianReview),
            Some(_) => {
                Err(AppError::Invalid(kapstone_domain::FieldError::new(name, "choose exclude or physician review")))
            }
        }
    }
    let el = current.eligibility;
    let new = kapstone_store::clinics::ClinicSettings {
        version: 0,
        mfa_required_roles: roles,
        pcl5_cutoff: number(&pairs, "pcl5_cutoff", current.pcl5_cutoff)?,
        consent_validity_months: number(&pairs, "consent_validity_months", current.consent_validity_months)?,
        eligibility: kapstone_domain::eligibility::EligibilitySettings {
            bp_exclude_systolic: number(&pairs, "bp_exclude_systolic", el.bp_exclude_systolic)?,
            bp_exclude_diastolic: number(&pairs, "bp_exclude_diastolic", el.bp_exclude_diastolic)?,
            benzodiazepine_review_above_mg: number(
                &pairs,
                "benzodiazepine_review_above_mg",
                el.benzodiazepine_review_above_mg,
            )?,
            trd_min_adequate_weeks: number(&pairs, "trd_min_adequate_weeks", el.trd_min_adequate_weeks)?,
            pregnancy_severity: severity(&pairs, "pregnancy_severity", el.pregnancy_severity)?,
            current_mania_severity: severity(&pairs, "current_mania_severity", el.current_mania_severity)?,
        },
        reminders: kapstone_domain::reminders::ReminderSettings {
            first_hours: number(&pairs, "reminder_first_hours", current.reminders.first_hours)?,
            second_hours: number(&pairs, "reminder_second_hours", current.reminders.second_hours)?,
            check_in_after_dosing: if pairs.iter().any(|(k, _)| k == "reminder_fields") {
                pairs.iter().any(|(k, v)| k == "check_in_after_dosing" && v == "yes")
            } else {
                current.reminders.check_in_after_dosing
            },
        },
        measurement: {
            let m = current.measurement;
            let new = kapstone_domain::measurement::MeasurementSettings {
                phq9_maintenance_every_weeks: number(
                    &pairs,
                    "phq9_maintenance_every_weeks",
                    m.phq9_maintenance_every_weeks,
                )?,
                gad7_maintenance_every_weeks: number(
                    &pairs,
                    "gad7_maintenance_every_weeks",
                    m.gad7_maintenance_every_weeks,
                )?,
                pcl5_maintenance_every_weeks: number(
                    &pairs,
                    "pcl5_maintenance_every_weeks",
                    m.pcl5_maintenance_every_weeks,
                )?,
                gad7_each_dosing_day: if pairs.iter().any(|(k, _)| k == "measurement_fields") {
                    pairs.iter().any(|(k, v)| k == "gad7_each_dosing_day" && v == "yes")
                } else {
                    m.gad7_each_dosing_day
                },
                notice_days: number(&pairs, "measure_notice_days", m.notice_days)?,
            };
            new.check().map_err(|e| AppError::Invalid(kapstone_domain::FieldError::new(e.field, e.message)))?;
            new
        },
        outcomes: {
            use kapstone_domain::outcomes::{BaselineRule, OutcomeSettings};
            let o = current.outcomes;
            let baseline = match pairs.iter().find(|(k, _)| k == "outcome_baseline").map(|(_, v)| v.as_str()) {
                None | Some("") => o.baseline,
                Some("intake") => BaselineRule::Intake,
                Some("last_before_first_dose") => BaselineRule::LastBeforeFirstDose,
                Some(_) => {
                    return Err(AppError::Invalid(kapstone_domain::FieldError::new(
                        "outcome_baseline",
                        "choose the intake score or the last score before the first dose",
                    ))
                    .into());
                }
            };
            OutcomeSettings {
                baseline,
                phq9_response_percent: number(&pairs, "phq9_response_percent", o.phq9_response_percent)?,
                phq9_remission_below: number(&pairs, "phq9_remission_below", o.phq9_remission_below)?,
                gad7_response_percent: number(&pairs, "gad7_response_percent", o.gad7_response_percent)?,
                gad7_remission_below: number(&pairs, "gad7_remission_below", o.gad7_remission_below)?,
                response_needs_moderate_baseline: if pairs.iter().any(|(k, _)| k == "outcome_fields") {
                    pairs.iter().any(|(k, v)| k == "response_needs_moderate_baseline" && v == "yes")
                } else {
                    o.response_needs_moderate_baseline
                },
                pcl5_reliable_change_points: number(
                    &pairs,
                    "pcl5_reliable_change_points",
                    o.pcl5_reliable_change_points,
                )?,
                pcl5_meaningful_change_points: number(
                    &pairs,
                    "pcl5_meaningful_change_points",
                    o.pcl5_meaningful_change_points,
                )?,
            }
        },
        course_review: kapstone_domain::course::ReviewSettings {
            re_review_every_months: number(
                &pairs,
                "re_review_every_months",
                current.course_review.re_review_every_months,
            )?,
        },
    };
    let version = settings::save(&state, &admin, &new).await?;
    // Redirect so the next page is built from the new settings (the banner depends on them).
    Ok(Redirect::to(&format!("/admin/settings?saved={version}")).into_response())
}

pub struct EventView {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub entity: String,
    /// Full patient id (for the link) and its short form (for reading).
    pub patient: String,
    pub patient_short: String,
    pub outcome: String,
    pub ip: String,
    pub reason: String,
}

pub struct FilterField {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    layout: Layout,
    filters: Vec<FilterField>,
    actions: Vec<&'static str>,
    accounts: Vec<(String, String)>,
    errors: FieldErrors,
    events: Vec<EventView>,
    query: String,
    older: Option<i64>,
}

pub async fn audit(
    State(state): State<AppState>,
    admin: CurrentUser,
    Query(q): Query<audit_log::AuditQuery>,
) -> PageResult<Response> {
    let keep = audit_log::AuditQuery { before: None, ..q.clone() };
    let query = serde_urlencoded::to_string([
        ("user", keep.user.clone().unwrap_or_default()),
        ("patient", keep.patient.clone().unwrap_or_default()),
        ("action", keep.action.clone().unwrap_or_default()),
        ("from", keep.from.clone().unwrap_or_default()),
        ("to", keep.to.clone().unwrap_or_default()),
    ])
    .unwrap_or_default();
    let filters = vec![
        FilterField { name: "user", label: "Who", kind: "select", value: keep.user.clone().unwrap_or_default() },
        FilterField {
            name: "patient",
            label: "Patient id",
            kind: "text",
            value: keep.patient.clone().unwrap_or_default(),
        },
        FilterField { name: "action", label: "Action", kind: "select", value: keep.action.clone().unwrap_or_default() },
        FilterField { name: "from", label: "From (date)", kind: "date", value: keep.from.clone().unwrap_or_default() },
        FilterField { name: "to", label: "To (date)", kind: "date", value: keep.to.clone().unwrap_or_default() },
    ];
    let actions = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
    let (events, more, errors, status) = match audit_log::view(&state, &admin, &q).await {
        Ok((rows, more)) => (rows, more, FieldErrors::default(), StatusCode::OK),
        Err(e) => match FieldErrors::from_error(&e) {
            Some(errors) => (Vec::new(), false, errors, StatusCode::UNPROCESSABLE_ENTITY),
            None => return Err(e.into()),
        },
    };
    let older = if more { events.last().map(|e| e.seq) } else { None };
    // Staff names make the log readable; ids stay in the CSV and the API.
    let users = accounts::list_accounts(&state, &admin).await?;
    let name_of = |id: &str| users.iter().find(|u| u.id.to_string() == id).map(|u| u.display_name.clone());
    let short = |id: &str| id.rsplit('-').next().unwrap_or(id).chars().take(8).collect::<String>();
    let events = events
        .into_iter()
        .map(|e| EventView {
            seq: e.seq,
            at: when_seconds(e.at),
            actor: match (e.actor_role.as_deref(), e.actor_user_id.as_deref()) {
                (Some(r), Some(u)) => format!("{} ({r})", name_of(u).unwrap_or_else(|| short(u))),
                (None, Some(u)) => name_of(u).unwrap_or_else(|| short(u)),
                _ => "—".into(),
            },
            action: e.action,
            entity: match e.entity_id.as_deref() {
                Some(id) if id.len() == 36 => format!("{} …{}", e.entity_type, short(id)),
                Some(id) => format!("{} {id}", e.entity_type),
                None => e.entity_type,
            },
            patient_short: e.patient_id.as_deref().map(|p| format!("…{}", short(p))).unwrap_or_default(),
            patient: e.patient_id.unwrap_or_default(),
            outcome: e.outcome,
            ip: e.source_ip.unwrap_or_default(),
            reason: e.reason.unwrap_or_default(),
        })
        .collect();
    let accounts = users.iter().map(|u| (u.id.to_string(), format!("{} ({})", u.display_name, u.role))).collect();
    let page = render(&AuditPage {
        layout: Layout::for_user("Audit log", &admin, "/admin/audit"),
        filters,
        actions,
        accounts,
        errors,
        events,
        query,
        older,
    })?;
    Ok((status, page).into_response())
}

pub async fn audit_csv(
    State(state): State<AppState>,
    admin: CurrentUser,
    RawQuery(raw): RawQuery,
) -> PageResult<Response> {
    let q: audit_log::AuditQuery = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|_| AppError::BadRequest { field: None, message: "the filter could not be read".into() })?;
    let csv = axum::body::Body::from_stream(audit_log::export_csv(&state, &admin, &q).await?);
    let name = format!("attachment; filename=\"kapstone-audit-{}.csv\"", UtcTs::now().to_datetime().date());
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, name)], csv)
        .into_response())
}

pub struct MessageView {
    pub when: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// Sent, waiting, or the last failed attempt.
    pub status: String,
}

#[derive(Template)]
#[template(path = "admin_outbox.html")]
struct OutboxPage {
    layout: Layout,
    messages: Vec<MessageView>,
    mail_server: bool,
}

pub async fn outbox(State(state): State<AppState>, admin: CurrentUser) -> PageResult<Html<String>> {
    let messages = crate::app::invitations::outbox(&state, &admin)
        .await?
        .into_iter()
        .map(|m| {
            let status = match (&m.sent_at, &m.last_error) {
                (Some(at), _) => format!("sent {}", when(at.0)),
                (None, Some(e)) => format!("not sent: attempt {} failed ({e}); will try again", m.attempts),
                (None, None) => "waiting to be sent".to_owned(),
            };
            MessageView { when: when(m.created_at.0), to: m.to_address, subject: m.subject, body: m.body, status }
        })
        .collect();
    render(&OutboxPage {
        layout: Layout::for_user("Outbox", &admin, "/admin/outbox"),
        messages,
        mail_server: state.config.smtp_url.is_some(),
    })
}
