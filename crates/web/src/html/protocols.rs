//! The clinic's dosing protocols as pages: what each route's protocol says (dose rule, limits,
//! observation, monitoring, hand-out), a dose calculator for clinicians, and for the medical
//! director the form that saves a new version.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use kapstone_domain::dose::DoseRequest;
use kapstone_domain::permissions::{Action, allows};
use kapstone_domain::protocol::Protocol;

use super::{Layout, PageResult, render, sentence};
use crate::app::protocols as app;
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "protocols.html")]
struct ListPage {
    layout: Layout,
    /// (id, title, version, route label, observation)
    protocols: Vec<(String, String, String, &'static str, String)>,
}

/// `GET /protocols`.
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> PageResult<Html<String>> {
    let set = app::current(&state, user.clinic).await?;
    render(&ListPage {
        layout: Layout::for_user("Protocols", &user, "/protocols"),
        protocols: set
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    p.title.clone(),
                    p.version.clone(),
                    p.route.label(),
                    format!("{} min from {}", p.observation_minutes, p.observation_from.as_str().replace('_', " ")),
                )
            })
            .collect(),
    })
}

/// One line of the calculator's result.
pub struct Line {
    pub label: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "protocol.html")]
struct ProtocolPage {
    layout: Layout,
    id: String,
    title: String,
    version: String,
    route: &'static str,
    instructions: Vec<String>,
    json: String,
    /// (version, reason, saved at)
    versions: Vec<(String, String, String)>,
    can_calculate: bool,
    can_edit: bool,
    weight_based: bool,
    /// The calculator's inputs as typed (kept on a refusal).
    calc: Vec<(&'static str, String)>,
    result: Vec<Line>,
    zone: String,
    reasons: Vec<String>,
    calc_error: Option<String>,
    edit_error: Option<String>,
    notice: Option<String>,
    draft: Option<String>,
}

impl ProtocolPage {
    fn value(&self, name: &str) -> &str {
        self.calc.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Extra {
    calc: Vec<(&'static str, String)>,
    result: Vec<Line>,
    zone: String,
    reasons: Vec<String>,
    calc_error: Option<String>,
    edit_error: Option<String>,
    notice: Option<String>,
    draft: Option<String>,
}

async fn page(state: &AppState, user: &CurrentUser, id: &str, extra: Extra) -> PageResult<Html<String>> {
    let set = app::current(state, user.clinic).await?;
    let p: &Protocol = set.find(id).ok_or(AppError::NotFound)?;
    let json = p.to_json().map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    render(&ProtocolPage {
        layout: Layout::for_user(&p.title, user, "/protocols"),
        id: p.id.clone(),
        title: p.title.clone(),
        version: p.version.clone(),
        route: p.route.label(),
        instructions: p.post_session_instructions.iter().map(|i| i.text.clone()).collect(),
        json,
        versions: app::history(state, user.clinic, &p.id).await?,
        can_calculate: allows(Some(user.role), Action::CalculateDose),
        can_edit: allows(Some(user.role), Action::EditProtocols) && app::is_medical_director(state, user).await?,
        weight_based: matches!(p.dose, kapstone_domain::protocol::DoseRule::MgPerKg(_)),
        calc: extra.calc,
        result: extra.result,
        zone: extra.zone,
        reasons: extra.reasons,
        calc_error: extra.calc_error,
        edit_error: extra.edit_error,
        notice: extra.notice,
        draft: extra.draft,
    })
}

/// `GET /protocols/{id}`.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    page(&state, &user, &id, Extra::default()).await
}

fn pairs(body: &str) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_str(body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })
}

fn get(pairs: &[(String, String)], k: &str) -> String {
    pairs.iter().find(|(n, _)| n == k).map_or_else(String::new, |(_, v)| v.trim().to_owned())
}

fn number(p: &[(String, String)], k: &'static str) -> Result<Option<f64>, AppError> {
    match get(p, k).as_str() {
        "" => Ok(None),
        v => v
            .parse::<f64>()
            .map(Some)
            .map_err(|_| AppError::Invalid(kapstone_domain::FieldError::new(k, "give a number"))),
    }
}

const CALC_FIELDS: [&str; 8] = [
    "weight_kg",
    "weight_measured_days_ago",
    "dose_mg_per_kg",
    "dose_mg",
    "stock_mg_per_ml",
    "infusion_minutes",
    "bag_ml",
    "tablet_mg",
];

fn request(id: &str, p: &[(String, String)]) -> Result<DoseRequest, AppError> {
    let mut v = serde_json::json!({"protocol": id, "diluted_with_equal_volume": get(p, "diluted") == "yes"});
    for k in CALC_FIELDS {
        if let Some(n) = number(p, k)? {
            v[k] = if k == "weight_measured_days_ago" {
                serde_json::json!(n.max(0.0).round() as u32)
            } else {
                serde_json::json!(n)
            };
        }
    }
    serde_json::from_value(v).map_err(|e| AppError::BadRequest { field: None, message: e.to_string() })
}

fn show_number(v: f64, unit: &str) -> String {
    format!("{} {unit}", (v * 10_000.0).round() / 10_000.0)
}

/// `POST /protocols/{id}/calculate`: the calculator without JavaScript.
pub async fn calculate(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let p = pairs(&body)?;
    let mut extra = Extra { calc: CALC_FIELDS.iter().map(|k| (*k, get(&p, k))).collect(), ..Extra::default() };
    let outcome = match request(&id, &p) {
        Ok(req) => app::calculate(&state, &user, &req).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(c) => {
            let mut lines = vec![Line { label: "Dose", value: show_number(c.dose_mg, "mg") }];
            let mut add = |label, v: Option<f64>, unit: &str| {
                if let Some(v) = v {
                    lines.push(Line { label, value: show_number(v, unit) });
                }
            };
            add("Dosing weight", c.dosing_weight_kg, "kg");
            add("Volume to draw", c.volume_ml, "mL");
            add("Diluent (equal volume)", c.diluent_ml, "mL");
            add("Rate", c.rate_mg_per_min, "mg/min");
            add("Pump rate", c.pump_ml_per_h, "mL/h");
            if let Some(t) = &c.tablets {
                lines.push(Line { label: "Tablets", value: format!("{} × {} mg", t.count, t.tablet_mg) });
            }
            if let Some(d) = c.devices {
                lines.push(Line { label: "Devices", value: format!("{d} × 28 mg, at least 5 minutes apart") });
            }
            extra.result = lines;
            extra.zone = format!("{:?}", c.zone).to_lowercase();
            extra.reasons = c.reasons.iter().map(|r| r.message.clone()).collect();
            Ok(page(&state, &user, &id, extra).await?.into_response())
        }
        Err(e @ (AppError::Invalid(_) | AppError::BadRequest { .. })) => {
            let field = e.field().map(|f| format!(" ({f})")).unwrap_or_default();
            extra.calc_error = Some(format!("{}{field}", sentence(&e.public_message(""))));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page(&state, &user, &id, extra).await?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /protocols/{id}`: a medical director saves a new version.
pub async fn revise(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let p = pairs(&body)?;
    let definition = get(&p, "definition");
    match app::revise(&state, &user, &definition, &get(&p, "reason")).await {
        Ok(saved) if saved.id == id => {
            let extra = Extra { notice: Some(format!("Saved as version {}.", saved.version)), ..Extra::default() };
            Ok(page(&state, &user, &id, extra).await?.into_response())
        }
        Ok(saved) => Ok(page(&state, &user, &saved.id, Extra::default()).await?.into_response()),
        Err(e @ AppError::Invalid(_)) => {
            let field = e.field().map(|f| format!(" ({f})")).unwrap_or_default();
            let extra = Extra {
                edit_error: Some(format!("{}{field}", sentence(&e.public_message("")))),
                draft: Some(definition),
                ..Extra::default()
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page(&state, &user, &id, extra).await?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
