//! The patient portal: the patient's own record only (the id comes from the session).

use askama::Template;
use axum::extract::State;
use axum::response::Html;

use super::{Layout, PageResult, render, when};
use crate::app::patients;
use crate::auth::guard::CurrentUser;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "portal.html")]
struct PortalPage {
    layout: Layout,
    given_name: String,
    family_name: String,
    birth_date: String,
    mrn: String,
    views: Vec<(String, String)>,
}

pub async fn home(State(state): State<AppState>, me: CurrentUser) -> PageResult<Html<String>> {
    let p = patients::read_own(&state, &me).await?;
    let views = patients::access_history(&state, &me, 20)
        .await?
        .into_iter()
        .map(|e| {
            let who = e.actor_role.map_or_else(
                || "Clinic system".to_owned(),
                |r| r.parse::<kapstone_domain::Role>().map(|r| r.label().to_owned()).unwrap_or(r),
            );
            (when(e.at), format!("{who} opened your record"))
        })
        .collect();
    render(&PortalPage {
        layout: Layout::for_user("My care", &me, "/portal"),
        given_name: p.given_name,
        family_name: p.family_name,
        birth_date: p.birth_date.to_string(),
        mrn: p.mrn,
        views,
    })
}
