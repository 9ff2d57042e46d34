//! HTML pages: askama templates (compile-time checked, auto-escaping), a shared layout with
//! navigation by role, and the page face of [`AppError`].

pub mod account;
pub mod admin;
pub mod admin_schedule;
pub mod api_docs;
pub mod auth;
pub mod chart;
pub mod consultation;
pub mod courses;
pub mod eligibility;
pub mod floor;
pub mod home;
pub mod integration_note;
pub mod integrations;
pub mod invite;
pub mod journal;
pub mod ledger;
pub mod measures;
pub mod outcomes;
pub mod patients;
pub mod portal;
pub mod protocols;
pub mod psychotherapy_note;
pub mod record_requests;
pub mod rems;
pub mod schedule;
pub mod session;

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kapstone_domain::permissions::{Action, allows};

use crate::auth::guard::CurrentUser;
use crate::error::AppError;

/// A navigation entry, shown only to roles the permission table allows.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

const NAV: &[(&str, &str, Action)] = &[
    ("/", "Today", Action::StaffHome),
    ("/patients", "Patients", Action::ListPatients),
    ("/schedule", "Schedule", Action::ReadSchedule),
    ("/floor", "Floor", Action::ReadFloor),
    ("/protocols", "Protocols", Action::ReadReferenceContent),
    ("/rems-forms", "REMS forms", Action::RunDosingSession),
    ("/cs", "Controlled substances", Action::ReadControlledSubstances),
    ("/reports/outcomes", "Outcomes", Action::ReadOutcomeReports),
    ("/portal", "My care", Action::PortalSelf),
    ("/portal/journal", "My journal", Action::PortalSelf),
    ("/journal", "Shared journals", Action::ReadClinicalRecord),
    ("/measures", "Measures due", Action::ReadClinicalRecord),
    ("/record-requests", "Record requests", Action::ManageRecordRequests),
    ("/portal/outcomes", "My progress", Action::PortalSelf),
    ("/admin/users", "Accounts", Action::ManageUsers),
    ("/admin/audit", "Audit log", Action::ReadAudit),
    ("/admin/outbox", "Outbox", Action::ManageUsers),
    ("/admin/scheduling", "Scheduling", Action::ManageScheduling),
    ("/admin/settings", "Settings", Action::ManageSettings),
    ("/admin/integrations", "Integrations", Action::ManageIntegrations),
    ("/account", "My account", Action::OwnAccount),
];

/// What every page's frame needs.
pub struct Layout {
    pub title: String,
    pub user_name: Option<String>,
    pub role_label: Option<&'static str>,
    pub csrf: String,
    pub nav: Vec<NavItem>,
    pub banner: Option<String>,
    pub portal: bool,
    /// The signed-in role, for links a page shows only to those who may follow them.
    pub role: Option<kapstone_domain::Role>,
}

impl Layout {
    pub fn anonymous(title: &str) -> Self {
        Self {
            title: title.into(),
            user_name: None,
            role_label: None,
            csrf: String::new(),
            nav: Vec::new(),
            banner: None,
            portal: false,
            role: None,
        }
    }

    pub fn for_user(title: &str, user: &CurrentUser, current_href: &str) -> Self {
        let nav = NAV
            .iter()
            .filter(|(_, _, action)| allows(Some(user.role), *action))
            .map(|(href, label, _)| NavItem { href, label, current: *href == current_href })
            .collect();
        let banner = if user.mfa_setup_required {
            Some(
                "Your clinic requires a second sign-in factor for your role. Set up an authenticator app to continue."
                    .into(),
            )
        } else if user.mfa_not_required_for_admins {
            Some("Two-factor sign-in is not yet required for admins. Require it in Settings to protect this clinic's records.".into())
        } else {
            None
        };
        Self {
            title: title.into(),
            user_name: Some(user.name.clone()),
            role_label: Some(user.role.label()),
            csrf: user.csrf.clone(),
            nav,
            banner,
            portal: !user.role.is_staff(),
            role: Some(user.role),
        }
    }

    /// Does the signed-in user keep psychotherapy notes (the link to their own notes of a
    /// session is shown only to them)?
    pub fn keeps_psychotherapy_notes(&self) -> bool {
        self.role.is_some_and(kapstone_domain::psychotherapy_note::may_write)
    }
}

/// Renders a template, turning a template failure into a logged 500.
pub fn render(t: &impl Template) -> Result<Html<String>, PageError> {
    t.render().map(Html).map_err(|e| PageError(AppError::Internal(anyhow::anyhow!("template: {e}"))))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    message: String,
    /// The step needs a fresh password entry: link to the confirm page.
    reauth: bool,
}

/// The HTML face of an error: a calm page that says what happened and what to do.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let correlation = self.0.log();
        let status = self.0.status();
        let page = ErrorPage {
            layout: Layout::anonymous("Something needs attention"),
            status: status.as_u16(),
            message: sentence(&self.0.public_message(&correlation)),
            reauth: self.0.code() == "reauth_required",
        };
        let mut resp = match page.render() {
            Ok(body) => (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response(),
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
        };
        if let Some((k, v)) = self.0.retry_after() {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

pub type PageResult<T> = Result<T, PageError>;

/// A form's field errors, for showing each message next to its field.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub fn from_error(e: &AppError) -> Option<Self> {
        e.field().map(|f| Self(vec![(f.to_owned(), sentence(&e.public_message("")))]))
    }
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Shows a use case's field under the form's own name for it.
    pub fn rename(&mut self, from: &str, to: &str) {
        for (f, _) in &mut self.0 {
            if f == from {
                *f = to.to_owned();
            }
        }
    }
}

/// Formats a timestamp for people: `2026-11-26 09:30 UTC`.
pub fn when(ts: kapstone_domain::UtcTs) -> String {
    let d = ts.to_datetime();
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", d.year(), u8::from(d.month()), d.day(), d.hour(), d.minute())
}

/// Formats a timestamp to the second: `2026-11-26 09:30:05`.
pub fn when_seconds(ts: kapstone_domain::UtcTs) -> String {
    let d = ts.to_datetime();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// Messages start with a capital letter on pages ("Enter an email address").
pub fn sentence(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}
