//! The clinic's dosing protocols as pages: what each route's protocol says (dose rule, limits,
//! observation, monitoring, hand-out), a dose calculator for clinicians, and for the medical
//! director the form that saves a new version.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use kapstone_domain::dose::DoseRequest;
use kapstone_domain::permissions::{Action, allows};
use kapstone_domain::protocol::{Protocol, form};

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

/// One input of the structured form (or, for those who may not edit, one line of the values
/// table).
pub struct FormValue {
    /// The value's JSON path: the input's name.
    pub name: String,
    /// An HTML id made from the path.
    pub id: String,
    pub label: String,
    /// What the input holds: the value in force, or what was typed when the form was refused.
    pub value: String,
    pub current: String,
    pub source: String,
    pub multiline: bool,
    pub inputmode: &'static str,
    pub error: Option<String>,
}

pub struct FormGroup {
    pub heading: &'static str,
    pub values: Vec<FormValue>,
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
    /// The values a medical director tunes, by section.
    groups: Vec<FormGroup>,
    /// The version the structured form saves.
    next_version: String,
    outcome: Outcome,
}

/// What a request adds to the page: the calculator's inputs and result, a refusal or notice, and
/// what was typed into a refused form.
#[derive(Default)]
struct Outcome {
    /// The calculator's inputs as typed (kept on a refusal).
    calc: Vec<(&'static str, String)>,
    result: Vec<Line>,
    zone: String,
    reasons: Vec<String>,
    calc_error: Option<String>,
    /// The JSON form's refusal and the draft it refused.
    edit_error: Option<String>,
    draft: Option<String>,
    /// The structured form's refusal: (input name, if it names one; message).
    values_error: Option<(Option<String>, String)>,
    /// The structured form as typed, and its reason, when refused.
    typed: Vec<(String, String)>,
    reason: String,
    notice: Option<String>,
}

impl Outcome {
    fn value(&self, name: &str) -> &str {
        self.calc.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
    }

    /// Whether the structured form was refused for this input.
    fn refused(&self, name: &str) -> bool {
        matches!(&self.values_error, Some((Some(field), _)) if field == name)
    }
}

fn html_id(key: &str) -> String {
    let id: String = key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("v-{}", id.trim_end_matches('-'))
}

fn groups(p: &Protocol, outcome: &Outcome) -> Vec<FormGroup> {
    let values = form::tunable_values(p);
    form::Group::ALL
        .iter()
        .map(|g| FormGroup {
            heading: g.heading(),
            values: values
                .iter()
                .filter(|v| v.group == *g)
                .map(|v| FormValue {
                    id: html_id(&v.key),
                    value: outcome
                        .typed
                        .iter()
                        .find(|(k, _)| *k == v.key)
                        .map_or_else(|| v.current.clone(), |(_, typed)| typed.clone()),
                    label: v.label.clone(),
                    current: if v.current.is_empty() { "none".into() } else { v.current.clone() },
                    source: v.source.clone(),
                    multiline: matches!(v.kind, form::ValueKind::Text { max_chars } if max_chars > 200),
                    inputmode: match v.kind {
                        form::ValueKind::Whole { .. } => "numeric",
                        form::ValueKind::Decimal | form::ValueKind::OptionalDecimal => "decimal",
                        form::ValueKind::Text { .. } => "text",
                    },
                    error: outcome
                        .values_error
                        .as_ref()
                        .filter(|_| outcome.refused(&v.key))
                        .map(|(_, message)| message.clone()),
                    name: v.key.clone(),
                })
                .collect(),
        })
        .filter(|g| !g.values.is_empty())
        .collect()
}

async fn page(state: &AppState, user: &CurrentUser, id: &str, outcome: Outcome) -> PageResult<Html<String>> {
    let set = app::current(state, user.clinic).await?;
    let p: &Protocol = set.find(id).ok_or(AppError::NotFound)?;
    let json = p.to_json().map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let year = u32::try_from(jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).year()).unwrap_or(0);
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
        groups: groups(p, &outcome),
        next_version: form::next_version(&p.version, year).unwrap_or_default(),
        outcome,
    })
}

/// `GET /protocols/{id}`.
pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    page(&state, &user, &id, Outcome::default()).await
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
    let mut extra = Outcome { calc: CALC_FIELDS.iter().map(|k| (*k, get(&p, k))).collect(), ..Outcome::default() };
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

/// `POST /protocols/{id}/values`: a medical director saves a new version from the structured
/// form. A refusal shows the form again as typed, with the message next to the input it names.
pub async fn revise_values(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Response> {
    let p = pairs(&body)?;
    let reason = get(&p, "reason");
    match app::revise_values(&state, &user, &id, &get(&p, "base_version"), &p, &reason).await {
        Ok(saved) => {
            let notice = format!("Saved as version {}.", saved.version);
            Ok(page(&state, &user, &saved.id, Outcome { notice: Some(notice), ..Outcome::default() })
                .await?
                .into_response())
        }
        Err(e @ (AppError::Invalid(_) | AppError::InvalidItem { .. } | AppError::Conflict { .. })) => {
            // A stale form is shown again with the values now in force, not the ones typed over
            // the older version.
            let stale = matches!(e, AppError::Conflict { .. });
            let status = if stale { StatusCode::CONFLICT } else { StatusCode::UNPROCESSABLE_ENTITY };
            let field = e.field().map(str::to_owned);
            let outcome = Outcome {
                values_error: Some((field, sentence(&e.public_message("")))),
                typed: if stale { Vec::new() } else { p.iter().filter(|(k, _)| k != "csrf_token").cloned().collect() },
                reason,
                ..Outcome::default()
            };
            Ok((status, page(&state, &user, &id, outcome).await?).into_response())
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
            let extra = Outcome { notice: Some(format!("Saved as version {}.", saved.version)), ..Outcome::default() };
            Ok(page(&state, &user, &id, extra).await?.into_response())
        }
        Ok(saved) => Ok(page(&state, &user, &saved.id, Outcome::default()).await?.into_response()),
        Err(e @ AppError::Invalid(_)) => {
            let field = e.field().map(|f| format!(" ({f})")).unwrap_or_default();
            let extra = Outcome {
                edit_error: Some(format!("{}{field}", sentence(&e.public_message("")))),
                draft: Some(definition),
                ..Outcome::default()
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page(&state, &user, &id, extra).await?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
