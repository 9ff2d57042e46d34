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
    pub href: &'static str,
    pub text: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
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
            href: "/account/mfa",
            text: "Set up your authenticator app (required by your clinic)".into(),
        });
    } else if !user.totp_enabled {
        next_steps
            .push(NextStep { href: "/account/mfa", text: "Protect your account with an authenticator app".into() });
    }
    if user.role == Role::Admin {
        let accounts = users::list(&state.db, user.clinic).await?;
        let without_mfa = accounts.iter().filter(|u| u.active && !u.totp_enabled && u.role != "patient").count();
        if without_mfa > 0 {
            next_steps.push(NextStep {
                href: "/admin/users",
                text: format!("{without_mfa} staff accounts have no second factor yet"),
            });
        }
        if user.mfa_not_required_for_admins {
            next_steps.push(NextStep { href: "/admin/settings", text: "Require a second factor for admins".into() });
        }
    }
    let page = HomePage {
        layout: Layout::for_user("Today", &user, "/"),
        next_steps,
        patient_count: patients::count(&state.db, user.clinic).await?,
        role_label: user.role.label(),
    };
    Ok(render(&page)?.into_response())
}
