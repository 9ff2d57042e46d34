//! The staff start page: what is due next for this person.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use kapstone_domain::Role;
use kapstone_domain::permissions::{Action, allows};
use kapstone_store::{patients, users};

use super::{Layout, PageResult, render};
use crate::auth::guard::CurrentUser;
use crate::state::AppState;

pub struct NextStep {
    pub href: String,
    pub text: String,
}

/// An open safety alert as a clinician sees it on the home page.
pub struct AlertView {
    pub id: String,
    pub patient_id: String,
    pub patient: String,
    pub high: bool,
    pub level: String,
    pub reason: String,
    pub raised: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    alerts: Vec<AlertView>,
    can_acknowledge: bool,
    next_steps: Vec<NextStep>,
    patient_count: i64,
    role_label: &'static str,
}

pub async fn home(State(state): State<AppState>, user: CurrentUser) -> PageResult<Response> {
    if !allows(Some(user.role), Action::StaffHome) {
        return Ok(Redirect::to("/portal").into_response());
    }
    let mut next_steps = Vec::new();
    if user.mfa_setup_required {
        next_steps.push(NextStep {
            href: "/account/mfa".into(),
            text: "Set up your authenticator app (required by your clinic)".into(),
        });
    } else if !user.totp_enabled {
        next_steps.push(NextStep {
            href: "/account/mfa".into(),
            text: "Protect your account with an authenticator app".into(),
        });
    }
    if user.role == Role::Admin {
        let accounts = users::list(&state.db, user.clinic).await?;
        let without_mfa = accounts.iter().filter(|u| u.active && !u.totp_enabled && u.role != "patient").count();
        if without_mfa > 0 {
            next_steps.push(NextStep {
                href: "/admin/users".into(),
                text: format!("{without_mfa} staff accounts have no second factor yet"),
            });
        }
        if user.mfa_not_required_for_admins {
            next_steps
                .push(NextStep { href: "/admin/settings".into(), text: "Require a second factor for admins".into() });
        }
    }
    // Inventories due and open discrepancies stay here until done (KAP-SPEC 9.4).
    if allows(Some(user.role), Action::ReadControlledSubstances) {
        for (href, text) in crate::app::ledger::reports::due(&state, &user).await? {
            next_steps.push(NextStep { href, text });
        }
    }
    if allows(Some(user.role), Action::BookAppointments) {
        for (appointment, kind, note, _) in kapstone_store::scheduling::open_requests(&state.db, user.clinic).await? {
            let note = note.map(|n| format!(": “{n}”")).unwrap_or_default();
            next_steps.push(NextStep {
                href: format!("/schedule/appointments/{appointment}"),
                text: format!("A patient asks to {kind} an appointment{note}"),
            });
        }
    }
    if allows(Some(user.role), Action::ReadSchedule) {
        next_steps.extend(preparation_due(&state, &user).await?);
    }
    // Journal entries patients shared, waiting unread for the care team (issue 7).
    if allows(Some(user.role), Action::ReadClinicalRecord) {
        let unread = kapstone_store::journal::count_unread_shared(&state.db, user.clinic).await?;
        if unread > 0 {
            let s = if unread == 1 { "entry" } else { "entries" };
            next_steps.push(NextStep {
                href: "/journal".into(),
                text: format!("{unread} journal {s} shared by patients waiting to be read"),
            });
        }
    }
    // Issue 7: patients' record requests with their deadlines, and measures overdue.
    if allows(Some(user.role), Action::ManageRecordRequests) {
        use kapstone_domain::records_access::Status;
        for r in crate::app::record_requests::open(&state, &user).await? {
            let what = if r.kind == "access" { "a copy of their record" } else { "an amendment" };
            let text = match r.status {
                Status::Overdue { due } => format!("Overdue since {due}: a patient's request for {what}"),
                Status::Open { due, .. } => format!("Due by {due}: a patient's request for {what}"),
                Status::Answered { .. } => "A patient disagrees with a denied amendment: file the rebuttal".to_owned(),
            };
            next_steps.push(NextStep { href: format!("/record-requests#request-{}", r.id), text });
        }
    }
    if allows(Some(user.role), Action::ReadClinicalRecord) {
        let overdue = crate::app::measures::due(&state, &user)
            .await?
            .iter()
            .filter(|d| d.requirement.status == kapstone_domain::measurement::Status::Overdue)
            .count();
        if overdue > 0 {
            next_steps
                .push(NextStep { href: "/measures".into(), text: format!("{overdue} questionnaires are overdue") });
        }
    }
    let mut alerts = Vec::new();
    if allows(Some(user.role), Action::ReadSafetyAlerts) {
        for a in crate::app::questionnaires::open_alerts(&state, &user).await? {
            let p = patients::get(&state.db, user.clinic, kapstone_domain::PatientId::from_uuid(a.patient_id)).await?;
            alerts.push(AlertView {
                id: a.id.to_string(),
                patient_id: a.patient_id.to_string(),
                patient: p.map_or_else(
                    || "Unknown patient".to_owned(),
                    |p| format!("{} {} ({})", p.given_name, p.family_name, p.mrn),
                ),
                high: a.level == "high",
                level: match a.level.as_str() {
                    "high" => "High risk".to_owned(),
                    "moderate" => "Moderate risk".to_owned(),
                    _ => "Needs review".to_owned(),
                },
                reason: a.reason,
                raised: super::when(a.raised_at.0),
            });
        }
    }
    let page = HomePage {
        layout: Layout::for_user("Today", &user, "/"),
        alerts,
        can_acknowledge: allows(Some(user.role), Action::AcknowledgeSafetyAlert),
        next_steps,
        patient_count: patients::count(&state.db, user.clinic).await?,
        role_label: user.role.label(),
    };
    Ok(render(&page)?.into_response())
}

#[derive(serde::Deserialize)]
pub struct AckForm {
    #[serde(default)]
    action_taken: String,
}

/// `POST /safety-alerts/{id}/acknowledge` from the home page.
pub async fn acknowledge(
    State(state): State<AppState>,
    user: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Form(f): axum::extract::Form<AckForm>,
) -> PageResult<Response> {
    let id = id.parse().map_err(|_| crate::error::AppError::NotFound)?;
    crate::app::questionnaires::acknowledge(&state, &user, id, &f.action_taken).await?;
    Ok(Redirect::to("/").into_response())
}

/// Dosing sessions in the next 48 hours whose preparation is not complete (KAP-SPEC 2.1 stage 5):
/// flagged at 48 h and again at 24 h.
async fn preparation_due(state: &AppState, user: &CurrentUser) -> Result<Vec<NextStep>, crate::error::AppError> {
    let now = jiff::Timestamp::now();
    let until = now.checked_add(jiff::SignedDuration::from_hours(48)).unwrap_or(now);
    let rows = crate::app::scheduling::between(state, user, now, until).await?;
    let rows: Vec<_> = rows.into_iter().map(|(a, _)| a).collect();
    let mut out = Vec::new();
    for p in crate::app::preparation::checklists(state, user, &rows).await? {
        let Some(flag) = p.flag else { continue };
        let open: Vec<&str> = p
            .items
            .iter()
            .filter(|i| i.status == kapstone_domain::preparation::ItemStatus::Open)
            .map(|i| i.label)
            .collect();
        let patient =
            patients::get(&state.db, user.clinic, kapstone_domain::PatientId::from_uuid(p.appointment.patient_id))
                .await?
                .map_or_else(String::new, |x| x.mrn);
        out.push(NextStep {
            href: format!("/schedule/appointments/{}", p.appointment.id),
            text: format!("Dosing session within {flag} ({patient}): still open — {}", open.join(", ").to_lowercase()),
        });
    }
    Ok(out)
}
