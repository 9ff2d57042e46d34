//! Patient list and chart (staff). Both reads are audited by the use case.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use kapstone_domain::PatientId;
use kapstone_store::patients::PatientRow;

use super::{Layout, PageResult, render, when};
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
    total: i64,
    prev_offset: Option<i64>,
    next_offset: Option<i64>,
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    offset: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ListQuery>,
) -> PageResult<Html<String>> {
    let total = kapstone_store::patients::count(&state.db, user.clinic).await?;
    let offset = q.offset.unwrap_or(0).clamp(0, total);
    let rows = patients::list(&state, &user, PAGE, offset).await?;
    let next_offset = (offset + PAGE < total).then_some(offset + PAGE);
    let prev_offset = (offset > 0).then(|| (offset - PAGE).max(0));
    render(&PatientsPage {
        layout: Layout::for_user("Patients", &user, "/patients"),
        rows,
        total,
        prev_offset,
        next_offset,
    })
}

#[derive(Template)]
#[template(path = "patient.html")]
struct PatientPage {
    layout: Layout,
    p: PatientRow,
    registered: String,
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    let id: PatientId = id.parse().map_err(|_| AppError::NotFound)?;
    let p = patients::read(&state, &user, id).await?;
    let title = format!("{} {}", p.given_name, p.family_name);
    let registered = when(p.created_at.0);
    render(&PatientPage { layout: Layout::for_user(&title, &user, "/patients"), p, registered })
}
