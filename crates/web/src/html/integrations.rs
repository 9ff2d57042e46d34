//! The admin's integrations page (issue 8): API tokens (create: the secret is shown once; revoke),
//! webhook endpoints (register: the signing secret is shown once; switch off or on) and the most
//! recent deliveries with their status and a re-send button.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use kapstone_domain::UtcTs;
use kapstone_domain::permissions::Scope;
use kapstone_domain::webhook::EventType;
use uuid::Uuid;

use super::{FieldErrors, Layout, PageResult, render, when};
use crate::app::integrations::{self, NewEndpointInput, NewTokenInput};
use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

pub struct TokenRowView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub expires: String,
    pub last_used: String,
    pub state: &'static str,
}

pub struct EndpointRowView {
    pub id: String,
    pub url: String,
    pub events: String,
    pub active: bool,
}

pub struct DeliveryView {
    pub id: String,
    pub when: String,
    pub event: String,
    pub endpoint: String,
    pub status: String,
    pub attempts: i32,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "admin_integrations.html")]
struct IntegrationsPage {
    layout: Layout,
    tokens: Vec<TokenRowView>,
    endpoints: Vec<EndpointRowView>,
    deliveries: Vec<DeliveryView>,
    scopes: Vec<(&'static str, &'static str)>,
    events: Vec<&'static str>,
    /// A secret just created, shown this once: (what, secret).
    secret: Option<(String, String)>,
    errors: FieldErrors,
    notice: Option<String>,
}

async fn page(
    state: &AppState,
    admin: &CurrentUser,
    secret: Option<(String, String)>,
    errors: FieldErrors,
    notice: Option<String>,
) -> PageResult<Html<String>> {
    let now = UtcTs::now();
    let tokens = integrations::tokens(state, admin)
        .await?
        .into_iter()
        .map(|t| TokenRowView {
            id: t.id.to_string(),
            name: t.name.clone(),
            prefix: format!("{}…", t.prefix),
            scopes: t.scopes.join(", "),
            expires: when(t.expires_at),
            last_used: t.last_used_at.map_or_else(|| "never".to_owned(), when),
            state: t.state(now).as_str(),
        })
        .collect();
    let endpoint_rows = integrations::endpoints(state, admin).await?;
    let deliveries = integrations::deliveries(state, admin)
        .await?
        .into_iter()
        .map(|d| {
            let detail = match (d.status.as_str(), d.last_status_code, &d.last_error) {
                ("delivered", Some(code), _) => format!("answered {code}"),
                ("pending", _, None) => "waiting to be sent".to_owned(),
                (s, code, err) => format!(
                    "{}{}{}",
                    err.clone().unwrap_or_default(),
                    code.map(|c| format!(" (HTTP {c})")).unwrap_or_default(),
                    if s == "pending" {
                        format!("; next attempt {}", when(d.next_attempt_at.0))
                    } else {
                        String::new()
                    }
                ),
            };
            DeliveryView {
                id: d.id.to_string(),
                when: when(d.created_at.0),
                event: d.event_type.clone(),
                endpoint: endpoint_rows
                    .iter()
                    .find(|e| e.id == d.endpoint_id)
                    .map_or_else(|| d.endpoint_id.to_string(), |e| e.url.clone()),
                status: d.status.clone(),
                attempts: d.attempts,
                detail,
            }
        })
        .collect();
    let endpoints = endpoint_rows
        .into_iter()
        .map(|e| EndpointRowView {
            id: e.id.to_string(),
            url: e.url,
            events: e.events.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", "),
            active: e.active,
        })
        .collect();
    render(&IntegrationsPage {
        layout: Layout::for_user("Integrations", admin, "/admin/integrations"),
        tokens,
        endpoints,
        deliveries,
        scopes: Scope::ALL.iter().map(|s| (s.as_str(), s.label())).collect(),
        events: EventType::ALL.iter().map(|e| e.as_str()).collect(),
        secret,
        errors,
        notice,
    })
}

pub async fn show(State(state): State<AppState>, admin: CurrentUser) -> PageResult<Html<String>> {
    page(&state, &admin, None, FieldErrors::default(), None).await
}

fn form_pairs(body: &str) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_str(body)
        .map_err(|_| AppError::BadRequest { field: None, message: "the form could not be read".into() })
}

fn all(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
}

fn one(pairs: &[(String, String)], key: &str) -> String {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default()
}

/// A refused form shows the page again with the message next to its field (422).
async fn refused(state: &AppState, admin: &CurrentUser, e: AppError) -> PageResult<Response> {
    let Some(errors) = FieldErrors::from_error(&e) else { return Err(e.into()) };
    let html = page(state, admin, None, errors, None).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, html).into_response())
}

/// Checkbox lists arrive as repeated keys (`scope=write&scope=scheduling`).
pub async fn create_token(State(state): State<AppState>, admin: CurrentUser, body: String) -> PageResult<Response> {
    let pairs = form_pairs(&body)?;
    let days = one(&pairs, "expires_in_days");
    let input = NewTokenInput {
        name: one(&pairs, "name"),
        scopes: all(&pairs, "scope"),
        expires_in_days: match days.trim().parse() {
            Ok(d) => d,
            Err(_) => return refused(&state, &admin, invalid("expires_in_days", "enter a whole number of days")).await,
        },
    };
    let name = input.name.trim().to_owned();
    match integrations::create_token(&state, &admin, input).await {
        Ok(t) => {
            let what = format!("API token “{name}”");
            Ok(page(&state, &admin, Some((what, t.secret)), FieldErrors::default(), None).await?.into_response())
        }
        Err(e) => refused(&state, &admin, e).await,
    }
}

fn invalid(field: &'static str, message: &str) -> AppError {
    AppError::Invalid(kapstone_domain::FieldError::new(field, message))
}

fn id_of(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

pub async fn revoke_token(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Redirect> {
    integrations::revoke_token(&state, &admin, id_of(&id)?).await?;
    Ok(Redirect::to("/admin/integrations"))
}

pub async fn create_endpoint(State(state): State<AppState>, admin: CurrentUser, body: String) -> PageResult<Response> {
    let pairs = form_pairs(&body)?;
    let input = NewEndpointInput { url: one(&pairs, "url"), events: all(&pairs, "event") };
    let url = input.url.trim().to_owned();
    match integrations::create_endpoint(&state, &admin, input).await {
        Ok((_, secret)) => {
            let what = format!("webhook endpoint {url}");
            Ok(page(&state, &admin, Some((what, secret)), FieldErrors::default(), None).await?.into_response())
        }
        Err(e) => refused(&state, &admin, e).await,
    }
}

pub async fn set_endpoint_active(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
    body: String,
) -> PageResult<Redirect> {
    let pairs = form_pairs(&body)?;
    let active = one(&pairs, "active") == "true";
    integrations::set_endpoint_active(&state, &admin, id_of(&id)?, active).await?;
    Ok(Redirect::to("/admin/integrations"))
}

pub async fn redeliver(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Html<String>> {
    integrations::redeliver(&state, &admin, id_of(&id)?).await?;
    page(&state, &admin, None, FieldErrors::default(), Some("The delivery is queued to be sent again.".into())).await
}
