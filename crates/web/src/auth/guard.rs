//! The guard in front of every route: who is asking, may they, and is the request genuine.
//!
//! Every route is registered in `routes.rs` with one [`Action`]; this middleware resolves the
//! session, applies the permission table, enforces MFA steps and CSRF, then hands the handler a
//! [`CurrentUser`]. No handler runs without passing here.

use std::net::SocketAddr;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use kapstone_domain::audit::{AuditAction, NewAuditEvent, Outcome};
use kapstone_domain::auth::SessionState;
use kapstone_domain::permissions::{Action, Scope, allows, scopes_allow};
use kapstone_domain::{ClinicId, PatientId, Role, SessionId, UserId, UtcTs};
use kapstone_store::{audit, integrations, sessions, users};
use uuid::Uuid;

use super::tokens::{eq_ct, token_hash};
use crate::error::{ApiError, AppError};
use crate::html::PageError;
use crate::state::AppState;

/// The signed-in account making this request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: UserId,
    pub clinic: ClinicId,
    pub role: Role,
    pub name: String,
    pub email: String,
    pub patient: Option<PatientId>,
    pub session: SessionId,
    pub csrf: String,
    pub api: bool,
    pub totp_enabled: bool,
    /// The clinic requires MFA for this role and the account has not enrolled yet.
    pub mfa_setup_required: bool,
    /// Admins see a banner while MFA is not required for admins.
    pub mfa_not_required_for_admins: bool,
    pub ip: Option<String>,
    /// Set when the request came with an API token (issue 8): the integration acts on behalf of
    /// the admin who created the token (`id`, `role`), limited to the token's scopes.
    pub token: Option<TokenPrincipal>,
    /// When this session last proved the account's password (sign-in or re-authentication);
    /// `None` for API tokens, which never re-authenticate (see `app::reauth`).
    pub authenticated_at: Option<UtcTs>,
}

/// The API token a request came with.
#[derive(Debug, Clone)]
pub struct TokenPrincipal {
    pub id: Uuid,
    pub scopes: Vec<Scope>,
}

impl CurrentUser {
    /// An audit event with the actor filled in (and the token, when an integration acts).
    pub fn event(&self, action: AuditAction, entity_type: &'static str, outcome: Outcome) -> NewAuditEvent {
        let mut e = NewAuditEvent::new(action, entity_type, outcome);
        e.clinic_id = Some(self.clinic);
        e.actor_user_id = Some(self.id);
        e.actor_role = Some(self.role);
        e.source_ip.clone_from(&self.ip);
        e.actor_token_id = self.token.as_ref().map(|t| t.id.to_string());
        e
    }

    /// May this principal perform `action`? The permission table for accounts, the scope table
    /// for API tokens: the one question handlers ask when they shape a response by permission.
    pub fn may(&self, action: Action) -> bool {
        match &self.token {
            Some(t) => scopes_allow(&t.scopes, action),
            None => allows(Some(self.role), action),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<CurrentUser>().cloned().ok_or(AppError::Unauthenticated)
    }
}

/// A signed-in session that still owes its second factor; only the MFA step accepts it.
#[derive(Debug, Clone)]
pub struct PendingMfa(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for PendingMfa {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<PendingMfa>().cloned().ok_or(AppError::Unauthenticated)
    }
}

/// The client's address: the socket peer, or the first `X-Forwarded-For` hop behind a proxy.
#[derive(Debug, Clone)]
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ClientIp>().cloned().unwrap_or(ClientIp(None)))
    }
}

pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || is_fhir(path)
}

fn is_fhir(path: &str) -> bool {
    path.starts_with("/fhir/")
}

enum Resolved {
    Anonymous,
    Pending(CurrentUser),
    SignedIn(CurrentUser),
}

/// The prefix of API tokens, so a leaked one is recognisable (and never mistaken for a session).
pub const API_TOKEN_PREFIX: &str = "kst_";

/// Resolves an API token: live (not revoked, not expired), of an active account of its clinic,
/// and only on the JSON API. Anything else is anonymous, so the route answers 401.
async fn resolve_api_token(
    state: &AppState,
    token: &str,
    path: &str,
    ip: Option<String>,
) -> Result<Resolved, AppError> {
    if !path.starts_with("/api/v1/") {
        return Ok(Resolved::Anonymous);
    }
    let Some(row) = integrations::token_by_hash(&state.db, &token_hash(token)).await? else {
        return Ok(Resolved::Anonymous);
    };
    let now = UtcTs::now();
    if row.revoked_at.is_some() || row.expires_at.0 <= now {
        return Ok(Resolved::Anonymous);
    }
    let Some(user) = users::get(&state.db, UserId::from_uuid(row.created_by)).await? else {
        return Ok(Resolved::Anonymous);
    };
    if !user.active || user.clinic().as_uuid() != row.clinic_id {
        return Ok(Resolved::Anonymous);
    }
    let scopes = row.scopes.split_whitespace().filter_map(Scope::parse).collect();
    Ok(Resolved::SignedIn(CurrentUser {
        id: user.user_id(),
        clinic: user.clinic(),
        role: user.role()?,
        name: format!("API token {}", row.name),
        email: user.email.clone(),
        patient: None,
        session: SessionId::from_uuid(row.id),
        csrf: String::new(),
        api: true,
        totp_enabled: user.totp_enabled,
        mfa_setup_required: false,
        mfa_not_required_for_admins: false,
        ip,
        token: Some(TokenPrincipal { id: row.id, scopes }),
        authenticated_at: None,
    }))
}

/// Finds the live session for the request's token, ending it if it has timed out.
async fn resolve(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    path: &str,
    ip: Option<String>,
) -> Result<Resolved, AppError> {
    if let Some(t) = bearer(headers).filter(|t| t.starts_with(API_TOKEN_PREFIX)) {
        return resolve_api_token(state, t, path, ip).await;
    }
    let (token, via_bearer) = match bearer(headers) {
        Some(t) => (t, true),
        None => match cookie(headers, state.config.session_cookie_name()) {
            Some(t) => (t, false),
            None => return Ok(Resolved::Anonymous),
        },
    };
    // The session, its account and the clinic's second-factor rule in one statement: every
    // signed-in request reads them.
    let Some(signed_in) = sessions::find_signed_in(&state.db, &token_hash(token)).await? else {
        return Ok(Resolved::Anonymous);
    };
    let session = &signed_in.session;
    let user = &signed_in.user;
    // A bearer token only works as a bearer token; a cookie only as a cookie (a cookie token
    // replayed as a bearer header would skip the CSRF check).
    if session.is_api() != via_bearer {
        return Ok(Resolved::Anonymous);
    }
    let role = user.role()?;
    let now = UtcTs::now();
    let policy = state.config.session;
    let expiry = policy.state(session.created_at.0, session.last_seen_at.0, now);
    if !user.active || expiry != SessionState::Active {
        let reason = match expiry {
            _ if !user.active => "account deactivated",
            SessionState::IdleExpired => "idle timeout",
            _ => "session lifetime reached",
        };
        let mut tx = state.db.begin().await?;
        if sessions::end(&mut tx, session.session_id(), user.user_id(), reason).await? {
            let mut e = NewAuditEvent::new(AuditAction::SessionEnded, "session", Outcome::Success);
            e.clinic_id = Some(user.clinic());
            e.actor_user_id = Some(user.user_id());
            e.actor_role = Some(role);
            e.entity_id = Some(session.session_id().to_string());
            e.reason = Some(reason.to_owned());
            e.source_ip.clone_from(&ip);
            audit::append(&mut tx, &e).await?;
        }
        tx.commit().await?;
        return Ok(Resolved::Anonymous);
    }
    // Idle timeout needs last_seen_at; writing it at most once a minute keeps reads cheap.
    if now > session.last_seen_at.0.plus(time::Duration::minutes(1)) {
        let touched = async {
            let mut tx = state.db.begin().await?;
            sessions::touch(&mut tx, session.session_id(), now).await?;
            tx.commit().await
        };
        match touched.await {
            Ok(()) => {}
            // With the disk full, reads keep working: a missed touch can only end the session
            // sooner (the idle timeout counts from the last touch that was stored).
            Err(e) if e.is_storage_fault() => tracing::warn!(error = %e, "session activity not recorded"),
            Err(e) => return Err(e.into()),
        }
    }
    let current = CurrentUser {
        id: user.user_id(),
        clinic: user.clinic(),
        role,
        name: user.display_name.clone(),
        email: user.email.clone(),
        patient: user.patient(),
        session: session.session_id(),
        csrf: session.csrf_token.clone(),
        api: session.is_api(),
        totp_enabled: user.totp_enabled,
        mfa_setup_required: signed_in.requires_mfa(role) && !user.totp_enabled,
        mfa_not_required_for_admins: role == Role::Admin && !signed_in.requires_mfa(Role::Admin),
        ip,
        token: None,
        authenticated_at: Some(session.last_authenticated()),
    };
    Ok(if session.mfa_pending { Resolved::Pending(current) } else { Resolved::SignedIn(current) })
}

fn refuse(path: &str, err: AppError) -> Response {
    if is_fhir(path) {
        crate::fhir::FhirError::from(err).into_response()
    } else if is_api(path) {
        ApiError(err).into_response()
    } else if matches!(err, AppError::Unauthenticated) {
        Redirect::to("/login").into_response()
    } else {
        PageError(err).into_response()
    }
}

/// Same-origin check: a browser always sends `Origin` on cross-site POSTs. Under our
/// `Referrer-Policy: no-referrer` browsers send `Origin: null` even for our own forms, so `null`
/// proves nothing either way and the CSRF token alone decides.
fn origin_ok(headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    if origin == "null" {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    origin_host == host
}

/// CSRF for cookie-authenticated and anonymous form requests: the `csrf_token` form field or the
/// `X-CSRF-Token` header must match the session's token (or, before sign-in, the pre-session
/// cookie). Bearer-token requests carry no ambient credential and are exempt.
async fn check_csrf(state: &AppState, req: Request, expected: Option<&str>) -> Result<Request, AppError> {
    if !origin_ok(req.headers()) {
        return Err(AppError::Csrf);
    }
    let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let expected = match expected {
        Some(e) => e.to_owned(),
        None => match cookie(req.headers(), state.config.pre_session_cookie_name()) {
            Some(c) => c.to_owned(),
            None => return Err(AppError::Csrf),
        },
    };
    if let Some(t) = header_token {
        return if eq_ct(&t, &expected) { Ok(req) } else { Err(AppError::Csrf) };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(AppError::Csrf);
    }
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, state.config.max_body_bytes).await.map_err(|_| AppError::PayloadTooLarge)?;
    let pairs: Vec<(String, String)> = serde_urlencoded_pairs(&bytes);
    let ok = pairs.iter().any(|(k, v)| k == "csrf_token" && eq_ct(v, &expected));
    if !ok {
        return Err(AppError::Csrf);
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn serde_urlencoded_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(bytes).unwrap_or_default()
}

/// Middleware installed on every route with its action.
pub async fn guard(State((state, action)): State<(AppState, Action)>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    // Behind the proxy, the last X-Forwarded-For entry is the one the proxy itself added; the
    // earlier ones are whatever the client sent.
    let forwarded = state
        .config
        .behind_tls_proxy
        .then(|| req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()))
        .flatten()
        .and_then(|v| v.rsplit(',').next())
        .map(|s| s.trim().chars().take(64).collect::<String>())
        .filter(|s| !s.is_empty());
    let ip = forwarded.or(peer);
    req.extensions_mut().insert(ClientIp(ip.clone()));
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);

    let resolved = match resolve(&state, req.headers(), &path, ip).await {
        Ok(r) => r,
        Err(e) => return refuse(&path, e),
    };
    let user = match resolved {
        Resolved::Anonymous => {
            if action != Action::Public {
                return refuse(&path, AppError::Unauthenticated);
            }
            // Anonymous form posts (the sign-in form) use the pre-session cookie token.
            if unsafe_method && !is_api(&path) {
                req = match check_csrf(&state, req, None).await {
                    Ok(r) => r,
                    Err(e) => return refuse(&path, e),
                };
            }
            return next.run(req).await;
        }
        Resolved::Pending(user) => {
            if !matches!(action, Action::Public | Action::CompleteSignIn | Action::SignOut) {
                return refuse(&path, AppError::Unauthenticated);
            }
            if unsafe_method && !user.api {
                // Public pages (the sign-in form) carry the pre-session token, not the session's.
                let expected = (action != Action::Public).then_some(user.csrf.as_str());
                req = match check_csrf(&state, req, expected).await {
                    Ok(r) => r,
                    Err(e) => return refuse(&path, e),
                };
            }
            if action == Action::SignOut {
                req.extensions_mut().insert(user.clone());
            }
            req.extensions_mut().insert(PendingMfa(user));
            return next.run(req).await;
        }
        Resolved::SignedIn(user) => user,
    };

    if action == Action::CompleteSignIn {
        // Already past the second factor: nothing to complete.
        return if is_api(&path) { StatusCode::NO_CONTENT.into_response() } else { Redirect::to("/").into_response() };
    }
    if user.mfa_setup_required && !matches!(action, Action::Public | Action::OwnAccount | Action::SignOut) {
        return if is_api(&path) {
            refuse(&path, AppError::Forbidden)
        } else {
            Redirect::to("/account/mfa").into_response()
        };
    }
    if !user.may(action) {
        if let Err(e) = audit_denied(&state, &user, &path).await {
            return refuse(&path, e);
        }
        return refuse(&path, AppError::Forbidden);
    }
    if let Some(t) = &user.token
        && let Err(e) = audit_token_use(&state, &user, t.id, &path).await
    {
        return refuse(&path, e);
    }
    if unsafe_method && !user.api {
        // Public forms (sign-in, invitation) carry the pre-session token even when a session exists.
        let csrf = (action != Action::Public).then(|| user.csrf.clone());
        req = match check_csrf(&state, req, csrf.as_deref()).await {
            Ok(r) => r,
            Err(e) => return refuse(&path, e),
        };
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}

/// Every request an API token makes is audited (the path, never a body) and marks the token used.
async fn audit_token_use(state: &AppState, user: &CurrentUser, token: Uuid, path: &str) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    integrations::touch_token(&mut tx, token, UtcTs::now()).await?;
    let mut e = user.event(AuditAction::ApiTokenUsed, "api_token", Outcome::Success);
    e.entity_id = Some(token.to_string());
    e.reason = Some(path.chars().take(200).collect());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// Access-control failures are security events (ASVS 7.2.2); the path is recorded, no content.
async fn audit_denied(state: &AppState, user: &CurrentUser, path: &str) -> Result<(), AppError> {
    let mut tx = state.db.begin().await?;
    let mut e = user.event(AuditAction::AccessDenied, "route", Outcome::Denied);
    e.entity_id = Some(path.chars().take(200).collect());
    audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}
