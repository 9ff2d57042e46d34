//! Outcome pages (issue 7): the charts (PHQ-9, GAD-7, PCL-5 over time with dosing sessions
//! marked, drawn on the server as SVG) on the patient's chart, the course page and the portal;
//! the clinic dashboard with its CSV export.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use jiff::tz::TimeZone;
use kapstone_domain::instruments::Instrument;

use super::chart::{self, GAD7_BANDS, LineChart, Marker, PHQ9_BANDS};
use super::{Layout, PageResult, render, sentence};
use crate::app::outcomes::{self as app, Dashboard, DashboardQuery, PatientOutcomes};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// One instrument's chart and its summary in words.
pub struct ChartPanel {
    pub title: &'static str,
    /// Baseline, latest, change, response and remission in text.
    pub summary: String,
    /// Trusted SVG from [`chart::line_chart`] (every text escaped there).
    pub svg: String,
    pub scores: usize,
}

/// The clinic's zone (dates on the charts).
pub async fn zone(state: &AppState, clinic: kapstone_domain::ClinicId) -> Result<TimeZone, AppError> {
    let name = kapstone_store::clinics::time_zone(&state.db, clinic).await?.unwrap_or_else(|| "UTC".into());
    crate::app::scheduling::time_zone(&name)
}

/// The three charts of a patient's outcomes, with the dosing sessions as markers.
pub fn panels(o: &PatientOutcomes, zone: &TimeZone, id_prefix: &str) -> Vec<ChartPanel> {
    let markers: Vec<Marker> = o
        .doses
        .iter()
        .enumerate()
        .map(|(i, d)| Marker { at: d.ts, label: format!("Dosing session {}", i + 1) })
        .collect();
    o.outcomes
        .iter()
        .map(|i| {
            let instrument = Instrument::parse(i.instrument).unwrap_or(Instrument::Phq9);
            let bands: &[chart::Band] = match instrument {
                Instrument::Phq9 => &PHQ9_BANDS,
                Instrument::Gad7 => &GAD7_BANDS,
                Instrument::Pcl5 | Instrument::CssrsScreener => &[],
            };
            let summary = i.sentence();
            // Drawn only when there is a score to draw: a panel without one says so in words
            // (outcomes_panel.html), and the drawing was a twentieth of a chart view's CPU.
            if i.scores.is_empty() {
                return ChartPanel { title: i.title, summary, svg: String::new(), scores: 0 };
            }
            let y_max = kapstone_domain::outcomes::max_total(instrument);
            let y_label = format!("{} total (0–{y_max})", i.title);
            let id = format!("{id_prefix}-{}", i.instrument);
            let title = format!("{} over time", i.title);
            let svg = chart::line_chart(&LineChart {
                id: &id,
                title: &title,
                description: &summary,
                y_label: &y_label,
                y_max,
                scores: &i.scores,
                markers: &markers,
                bands,
                zone,
            });
            ChartPanel { title: i.title, summary, svg, scores: i.scores.len() }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "portal_outcomes.html")]
struct PortalOutcomesPage {
    layout: Layout,
    outcome_panels: Vec<ChartPanel>,
    doses: usize,
}

/// `GET /portal/outcomes`: the patient's own charts.
pub async fn portal(State(state): State<AppState>, me: CurrentUser) -> PageResult<Html<String>> {
    let o = app::own(&state, &me).await?;
    let zone = zone(&state, me.clinic).await?;
    render(&PortalOutcomesPage {
        layout: Layout::for_user("My progress", &me, "/portal/outcomes"),
        outcome_panels: panels(&o, &zone, "mine"),
        doses: o.doses.len(),
    })
}

pub struct StageRow {
    pub label: &'static str,
    pub patients: i64,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "outcomes_report.html")]
struct DashboardPage {
    layout: Layout,
    from: String,
    to: String,
    location: String,
    /// (id, name)
    locations: Vec<(String, String)>,
    d: Option<Dashboard>,
    csv_query: String,
    error: Option<(String, String)>,
}

async fn locations(state: &AppState, user: &CurrentUser) -> Result<Vec<(String, String)>, AppError> {
    Ok(kapstone_store::scheduling::locations(&state.db, user.clinic)
        .await?
        .into_iter()
        .map(|l| (l.id.to_string(), l.name.clone()))
        .collect())
}

/// `GET /reports/outcomes`: the clinic dashboard.
pub async fn dashboard(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<DashboardQuery>,
) -> PageResult<Response> {
    let locations = locations(&state, &user).await?;
    let (d, error) = match app::dashboard(&state, &user, &q).await {
        Ok(d) => (Some(d), None),
        Err(e @ AppError::Invalid(_)) => {
            (None, Some((e.field().unwrap_or_default().to_owned(), sentence(&e.public_message("")))))
        }
        Err(e) => return Err(e.into()),
    };
    let csv_query = serde_urlencoded::to_string([
        ("from", q.from.clone().unwrap_or_default()),
        ("to", q.to.clone().unwrap_or_default()),
        ("location", q.location.clone().unwrap_or_default()),
    ])
    .unwrap_or_default();
    let page = render(&DashboardPage {
        layout: Layout::for_user("Outcomes", &user, "/reports/outcomes"),
        from: d.as_ref().map_or_else(|| q.from.clone().unwrap_or_default(), |d| d.from.clone()),
        to: d.as_ref().map_or_else(|| q.to.clone().unwrap_or_default(), |d| d.to.clone()),
        location: q.location.clone().unwrap_or_default(),
        locations,
        error: error.clone(),
        d,
        csv_query,
    })?;
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, page).into_response())
}

/// `GET /reports/outcomes.csv`: the same figures as CSV.
pub async fn dashboard_csv(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<DashboardQuery>,
) -> PageResult<Response> {
    crate::app::reauth::before_export(&state, &user).await?;
    let d = app::dashboard(&state, &user, &q).await?;
    let name = format!("outcomes-{}-to-{}.csv", d.from, d.to);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        app::to_csv(&d),
    )
        .into_response())
}
