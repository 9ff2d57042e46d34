//! The staff's list of due and overdue measures (KAP-SPEC 7.10).

use askama::Template;
use axum::extract::State;
use axum::response::Html;
use kapstone_domain::PatientId;
use kapstone_domain::measurement::{Occasion, Status};

use super::{Layout, PageResult, render, when};
use crate::app::measures;
use crate::auth::guard::CurrentUser;
use crate::state::AppState;

pub struct Line {
    pub patient_id: String,
    pub patient: String,
    pub instrument: String,
    pub occasion: &'static str,
    pub due_by: String,
    pub overdue: bool,
    pub in_portal: bool,
}

#[derive(Template)]
#[template(path = "measures.html")]
struct MeasuresPage {
    layout: Layout,
    lines: Vec<Line>,
}

/// `GET /measures`.
pub async fn show(State(state): State<AppState>, user: CurrentUser) -> PageResult<Html<String>> {
    let items = measures::due(&state, &user).await?;
    let mut lines = Vec::new();
    for d in items {
        let p = kapstone_store::patients::get(&state.db, user.clinic, PatientId::from_uuid(d.patient_id)).await?;
        let r = d.requirement;
        lines.push(Line {
            patient_id: d.patient_id.to_string(),
            patient: p.map_or_else(String::new, |p| format!("{} {} ({})", p.given_name, p.family_name, p.mrn)),
            instrument: crate::content::instrument(r.instrument)
                .map_or_else(|_| r.instrument.as_str().to_owned(), |d| d.title.clone()),
            occasion: match r.occasion {
                Occasion::Intake => "baseline, before the first dose",
                Occasion::PreDose { .. } => "before a dosing session",
                Occasion::EndOfInduction => "end of induction",
                Occasion::Maintenance => "maintenance interval",
                Occasion::Integration { .. } => "safety check after PHQ-9 item 9",
            },
            due_by: when(r.due_by),
            overdue: r.status == Status::Overdue,
            in_portal: d.in_portal,
        });
    }
    render(&MeasuresPage { layout: Layout::for_user("Measures due", &user, "/measures"), lines })
}
