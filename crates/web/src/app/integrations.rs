//! Integrations (issue 8): API tokens with scopes, and webhooks with signed, retried delivery.
//!
//! Tokens: `kst_` + 256 random bits in hex, shown once, stored as their SHA-256; the guard
//! resolves them (auth/guard.rs) and the scope table of the domain decides each route.
//! Webhooks: [`enqueue`] writes one delivery per subscribed endpoint in the caller's transaction
//! (an outbox); [`deliver_due`] claims due rows with a lease, signs and sends them, and retries
//! with the domain's backoff until [`webhook::MAX_ATTEMPTS`], then marks them failed.

use std::time::Duration;

use kapstone_domain::audit::{AuditAction, Outcome};
use kapstone_domain::permissions::Scope;
use kapstone_domain::webhook::{self, Event, EventType, Payload};
use kapstone_domain::{ClinicId, FieldError, UtcTs};
use kapstone_store::integrations::{self as store, Attempt, NewDelivery, NewToken};
use kapstone_store::keyset::{ListFilter, Page, TimeKey};
use kapstone_store::{Tx, audit};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::guard::{API_TOKEN_PREFIX, CurrentUser};
use crate::auth::tokens::{random_token, token_hash};
use crate::error::AppError;
use crate::state::{AppState, ServerConfig};

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid(FieldError::new(field, message))
}

/// Token and webhook management is for signed-in admins, never for a token (the scope table
/// already says so; this keeps the use cases safe when called from elsewhere).
fn ensure_person(user: &CurrentUser) -> Result<(), AppError> {
    if user.token.is_some() { Err(AppError::Forbidden) } else { Ok(()) }
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenInput {
    pub name: String,
    /// Read as names so that an unknown one is refused naming `scopes`.
    #[schemars(with = "Vec<Scope>")]
    pub scopes: Vec<String>,
    /// Days until the token stops working: 1 to 365.
    #[schemars(range(min = 1, max = 365))]
    pub expires_in_days: i64,
}

/// A token just created: the secret is in this value and nowhere else.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub id: Uuid,
    pub secret: String,
    pub expires_at: UtcTs,
}

/// Parses names into known values without repeats, in the order of `all`; an unknown name or
/// an empty list is refused naming `field` (`scopes`, `events`).
fn parse_known<T: Copy + PartialEq>(
    raw: &[String],
    field: &'static str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<Vec<T>, AppError> {
    let known: Vec<&str> = all.iter().map(|t| name(*t)).collect();
    if let Some(bad) = raw.iter().find(|r| !known.contains(&r.trim())) {
        let bad: String = bad.chars().take(40).collect();
        return Err(invalid(field, format!("unknown value {bad:?}; choose from {}", known.join(", "))));
    }
    let chosen: Vec<T> = all.iter().copied().filter(|t| raw.iter().any(|r| r.trim() == name(*t))).collect();
    if chosen.is_empty() {
        return Err(invalid(field, format!("choose at least one of {}", known.join(", "))));
    }
    Ok(chosen)
}

fn parse_scopes(raw: &[String]) -> Result<Vec<Scope>, AppError> {
    parse_known(raw, "scopes", &Scope::ALL, Scope::as_str)
}

fn scopes_text(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

fn name_of(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(invalid("name", "enter a name (what the integration is)"));
    }
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(invalid("name", "use at most 100 characters on one line"));
    }
    Ok(name.to_owned())
}

/// Creates a token; the returned secret is shown once and only its hash is stored.
pub async fn create_token(
    state: &AppState,
    admin: &CurrentUser,
    input: NewTokenInput,
) -> Result<CreatedToken, AppError> {
    ensure_person(admin)?;
    // A token acts for its creator for up to a year: create it only after a fresh password entry.
    super::reauth::require_recent(state, admin)?;
    let name = name_of(&input.name)?;
    let scopes = parse_scopes(&input.scopes)?;
    if !(1..=365).contains(&input.expires_in_days) {
        return Err(invalid("expires_in_days", "choose between 1 and 365 days"));
    }
    let secret = format!("{API_TOKEN_PREFIX}{}", random_token());
    let prefix: String = secret.chars().take(API_TOKEN_PREFIX.len() + 8).collect();
    let now = UtcTs::now();
    let expires_at = now.plus(time::Duration::days(input.expires_in_days));
    let scope_text = scopes_text(&scopes);
    let mut tx = state.db.begin().await?;
    let id = store::insert_token(
        &mut tx,
        &NewToken {
            clinic: admin.clinic,
            name: &name,
            prefix: &prefix,
            token_hash: &token_hash(&secret),
            scopes: &scope_text,
            created_by: admin.id,
            at: now,
            expires_at,
        },
    )
    .await?;
    let mut e = admin.event(AuditAction::ApiTokenCreated, "api_token", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.reason = Some(format!("scopes: {scope_text}; expires in {} days", input.expires_in_days));
    audit::append(&mut tx, &e).await?;
    let out = CreatedToken { id, secret, expires_at };
    tx.commit_answering(&out).await?;
    Ok(out)
}

/// A token as lists show it (never the secret, which is not stored).
#[derive(Debug, Clone)]
pub struct TokenView {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: UtcTs,
    pub expires_at: UtcTs,
    pub revoked_at: Option<UtcTs>,
    pub last_used_at: Option<UtcTs>,
}

/// Whether a token still opens the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    Active,
    Expired,
    Revoked,
}

impl TokenState {
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

impl TokenView {
    pub fn state(&self, now: UtcTs) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.expires_at <= now {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }
}

pub async fn tokens(state: &AppState, admin: &CurrentUser) -> Result<Vec<TokenView>, AppError> {
    ensure_person(admin)?;
    Ok(store::tokens(&state.db, admin.clinic).await?.into_iter().map(TokenView::from).collect())
}

/// A page of the clinic's tokens, newest first, read with one more than `limit` that says whether
/// a next page follows (the API's list; see `api::page`).
pub async fn tokens_page(
    state: &AppState,
    admin: &CurrentUser,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<TokenView>, AppError> {
    ensure_person(admin)?;
    let rows = store::tokens_page(
        &state.db,
        &Page {
            clinic: admin.clinic,
            filter: &ListFilter::default(),
            after: TimeKey::newest_first(after),
            limit: limit + 1,
        },
    )
    .await?;
    Ok(rows.into_iter().map(TokenView::from).collect())
}

impl From<store::TokenRow> for TokenView {
    fn from(t: store::TokenRow) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            scopes: t.scopes.split_whitespace().map(str::to_owned).collect(),
            created_at: t.created_at.0,
            expires_at: t.expires_at.0,
            revoked_at: t.revoked_at.map(|r| r.0),
            last_used_at: t.last_used_at.map(|r| r.0),
        }
    }
}

/// Revokes a token: from now on it answers 401. Revoking twice is a 404.
pub async fn revoke_token(state: &AppState, admin: &CurrentUser, id: Uuid) -> Result<(), AppError> {
    ensure_person(admin)?;
    let mut tx = state.db.begin().await?;
    if !store::revoke_token(&mut tx, admin.clinic, id, admin.id, UtcTs::now()).await? {
        return Err(AppError::NotFound);
    }
    let mut e = admin.event(AuditAction::ApiTokenRevoked, "api_token", Outcome::Success);
    e.entity_id = Some(id.to_string());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpointInput {
    /// `https://` (or `http://` to this machine, for testing).
    pub url: String,
    /// Read as names so that an unknown one is refused naming `events`.
    #[schemars(with = "Vec<EventType>")]
    pub events: Vec<String>,
}

fn parse_events(raw: &[String]) -> Result<Vec<EventType>, AppError> {
    parse_known(raw, "events", &EventType::ALL, EventType::as_str)
}

/// Registers an endpoint; returns its id and signing secret (shown once).
pub async fn create_endpoint(
    state: &AppState,
    admin: &CurrentUser,
    input: NewEndpointInput,
) -> Result<(Uuid, String), AppError> {
    ensure_person(admin)?;
    let url = input.url.trim().to_owned();
    webhook::check_url(&url).map_err(|m| invalid("url", m))?;
    let events = parse_events(&input.events)?;
    let events_text = events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(" ");
    let secret = format!("whsec_{}", random_token());
    let mut tx = state.db.begin().await?;
    let id = store::insert_endpoint(&mut tx, admin.clinic, &url, &events_text, &secret, admin.id, UtcTs::now()).await?;
    let mut e = admin.event(AuditAction::WebhookEndpointChanged, "webhook_endpoint", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.reason = Some(format!("registered for {events_text}"));
    audit::append(&mut tx, &e).await?;
    let out = (id, secret);
    tx.commit_answering(&out).await?;
    Ok(out)
}

/// Switches an endpoint off (no deliveries are sent; queued ones wait) or back on.
pub async fn set_endpoint_active(
    state: &AppState,
    admin: &CurrentUser,
    id: Uuid,
    active: bool,
) -> Result<(), AppError> {
    ensure_person(admin)?;
    let mut tx = state.db.begin().await?;
    if !store::set_endpoint_active(&mut tx, admin.clinic, id, active).await? {
        return Err(AppError::NotFound);
    }
    let mut e = admin.event(AuditAction::WebhookEndpointChanged, "webhook_endpoint", Outcome::Success);
    e.entity_id = Some(id.to_string());
    e.reason = Some(if active { "switched on" } else { "switched off" }.to_owned());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// An endpoint as lists show it (the secret is not shown again).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct EndpointView {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<EventType>,
    pub active: bool,
    pub created_at: UtcTs,
}

pub async fn endpoints(state: &AppState, admin: &CurrentUser) -> Result<Vec<EndpointView>, AppError> {
    ensure_person(admin)?;
    Ok(store::endpoints(&state.db, admin.clinic)
        .await?
        .into_iter()
        .map(|e| EndpointView {
            id: e.id,
            url: e.url,
            events: e.events.split_whitespace().filter_map(EventType::parse).collect(),
            active: e.active,
            created_at: e.created_at.0,
        })
        .collect())
}

/// A page of the clinic's deliveries, newest first, read with one more than `limit` that says
/// whether a next page follows (the API's list; see `api::page`).
pub async fn deliveries_page(
    state: &AppState,
    admin: &CurrentUser,
    filter: &ListFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<store::DeliveryRow>, AppError> {
    ensure_person(admin)?;
    Ok(store::deliveries_page(
        &state.db,
        &Page { clinic: admin.clinic, filter, after: TimeKey::newest_first(after), limit: limit + 1 },
    )
    .await?)
}

/// The most recent deliveries (the payloads hold ids only, so they are shown as sent).
pub async fn deliveries(state: &AppState, admin: &CurrentUser) -> Result<Vec<store::DeliveryRow>, AppError> {
    ensure_person(admin)?;
    Ok(store::recent_deliveries(&state.db, admin.clinic, 100).await?)
}

/// A delivery as the API lists it, with the payload it sends.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: UtcTs,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: UtcTs,
    pub delivered_at: Option<UtcTs>,
    pub payload: Payload,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

impl DeliveryView {
    /// A stored delivery; its type, status and payload are written only by [`enqueue`] and the
    /// sender, so one that does not read back is a broken row (500), never the caller's fault.
    pub fn of(d: &store::DeliveryRow) -> Result<Self, AppError> {
        let broken =
            |what: &str| AppError::Internal(anyhow::anyhow!("webhook delivery {}: stored {what} unreadable", d.id));
        let status = match d.status.as_str() {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => return Err(broken("status")),
        };
        Ok(DeliveryView {
            id: d.id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_type: EventType::parse(&d.event_type).ok_or_else(|| broken("event type"))?,
            status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.0,
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            created_at: d.created_at.0,
            delivered_at: d.delivered_at.map(|t| t.0),
            payload: serde_json::from_str(&d.payload).map_err(|_| broken("payload"))?,
        })
    }
}

/// Queues a delivery again now with a fresh count of attempts (after the receiver is fixed).
pub async fn redeliver(state: &AppState, admin: &CurrentUser, id: Uuid) -> Result<(), AppError> {
    ensure_person(admin)?;
    let mut tx = state.db.begin().await?;
    if !store::requeue(&mut tx, admin.clinic, id, UtcTs::now()).await? {
        return Err(AppError::NotFound);
    }
    let mut e = admin.event(AuditAction::WebhookRedelivered, "webhook_delivery", Outcome::Success);
    e.entity_id = Some(id.to_string());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// Queues `event` for every active endpoint of the clinic subscribed to it, inside the
/// transaction of the change that caused it: the event exists exactly when the change does.
/// `data` holds ids only (never names, notes, scores or answers).
pub async fn enqueue(tx: &mut Tx, clinic: ClinicId, event: Event) -> Result<(), AppError> {
    let event_type = event.event_type();
    let endpoints = store::active_endpoints_in(tx, clinic).await?;
    let subscribed: Vec<Uuid> = endpoints
        .into_iter()
        .filter(|(_, events)| events.split_whitespace().any(|e| e == event_type.as_str()))
        .map(|(id, _)| id)
        .collect();
    if subscribed.is_empty() {
        return Ok(());
    }
    let at = UtcTs::now();
    let event_id = Uuid::now_v7();
    let occurred_at = at
        .to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("timestamp: {e}")))?;
    let payload = Payload { id: event_id, event, occurred_at };
    let payload = serde_json::to_string(&payload).map_err(|e| AppError::Internal(e.into()))?;
    for endpoint in subscribed {
        let d = NewDelivery { clinic, endpoint, event_id, event_type: event_type.as_str(), payload: &payload, at };
        store::insert_delivery(tx, &d).await?;
    }
    Ok(())
}

/// The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "Kapstone-Signature";

/// The HTTP client for deliveries: `https://` verified against the public web's root
/// certificates (Mozilla's list, compiled in, so a server without a system bundle still works)
/// plus the clinic's own from `--webhook-ca-file`; no redirects (a receiver must answer itself).
/// `kapstone serve` builds it once at start-up so a bad CA file stops the server with the reason.
pub fn webhook_client(config: &ServerConfig) -> Result<reqwest::Client, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &config.webhook_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("webhook CA file: {e}"))?;
            roots.add(cert).map_err(|e| format!("webhook CA file: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("webhook CA file: no PEM certificate in it".into());
        }
    }
    // ring, as the mail transport uses: one crypto library in the build.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Kapstone-Webhooks/1")
        .build()
        .map_err(|e| e.to_string())
}

/// Sends the deliveries due now; returns (delivered, failed attempts).
pub async fn deliver_due(state: &AppState) -> Result<(usize, usize), AppError> {
    deliver_due_at(state, UtcTs::now()).await
}

/// Sends the deliveries due at `now` (tests pass a later time to reach a retry without waiting).
/// Each claimed row is leased for five minutes, so another server skips it meanwhile.
pub async fn deliver_due_at(state: &AppState, now: UtcTs) -> Result<(usize, usize), AppError> {
    let lease = now.plus(time::Duration::minutes(5));
    let due = store::claim_due(&state.db, now, lease, 20).await?;
    if due.is_empty() {
        return Ok((0, 0));
    }
    let client = webhook_client(&state.config).map_err(|e| AppError::Internal(anyhow::anyhow!("http client: {e}")))?;
    let (mut delivered, mut failed) = (0, 0);
    for d in due {
        let sent_at = UtcTs::now();
        let signature = webhook::sign(&d.secret, sent_at.unix_micros() / 1_000_000, d.payload.as_bytes());
        let result = client
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header("Kapstone-Delivery", d.id.to_string())
            .body(d.payload.clone())
            .send()
            .await;
        let attempt_no = d.attempts + 1;
        let retry_at = (attempt_no < webhook::MAX_ATTEMPTS)
            .then(|| now.plus(time::Duration::seconds(webhook::backoff_seconds(attempt_no))));
        let attempt = match &result {
            Ok(r) if r.status().is_success() => Attempt::Delivered { status_code: i32::from(r.status().as_u16()) },
            Ok(r) => {
                Attempt::Failed { status_code: Some(i32::from(r.status().as_u16())), error: "non-2xx answer", retry_at }
            }
            Err(e) if e.is_timeout() => Attempt::Failed { status_code: None, error: "timed out", retry_at },
            Err(e) if e.is_connect() => Attempt::Failed { status_code: None, error: "could not connect", retry_at },
            Err(_) => Attempt::Failed { status_code: None, error: "request failed", retry_at },
        };
        if matches!(attempt, Attempt::Delivered { .. }) {
            delivered += 1;
        } else {
            failed += 1;
            tracing::warn!(delivery = %d.id, attempt = attempt_no, "webhook delivery failed");
        }
        store::record_attempt(&state.db, d.id, UtcTs::now(), attempt).await?;
    }
    Ok((delivered, failed))
}
