//! Sign-in, the second-factor step, sign-out.

use askama::Template;
use axum::extract::State;
use axum::extract::{Form, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use kapstone_store::sessions::SessionKind;

use super::{Layout, PageResult, render};
use crate::app::sign_in::{self, Credentials};
use crate::auth::guard::{ClientIp, CurrentUser, PendingMfa, cookie};
use crate::auth::tokens;
use crate::error::AppError;
use crate::state::AppState;

/// The signed-in user on a public route, if any.
pub struct MaybeUser(pub Option<CurrentUser>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeUser(parts.extensions.get::<CurrentUser>().cloned()))
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    email: String,
    error: Option<String>,
}

/// The pre-session CSRF token (double-submit cookie) for forms shown before sign-in, and the
/// `Set-Cookie` value when a new one was made.
pub(crate) fn pre_session_token(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, state.config.pre_session_cookie_name()) {
        Some(t) if t.len() == 64 => (t.to_owned(), None),
        _ => {
            let t = tokens::random_token();
            let set = state.config.cookie(state.config.pre_session_cookie_name(), &t);
            (t, Some(set))
        }
    }
}

pub async fn login_page(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    headers: HeaderMap,
) -> PageResult<Response> {
    if user.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let (csrf, set_cookie) = pre_session_token(&state, &headers);
    let page = render(&LoginPage { layout: Layout::anonymous("Sign in"), csrf, email: String::new(), error: None })?;
    let mut resp = page.into_response();
    if let Some(c) = set_cookie
        && let Ok(v) = c.parse()
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn login_submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> PageResult<Response> {
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let creds = Credentials { email: form.email.clone(), password: form.password, totp_code: None };
    match sign_in::sign_in(&state, creds, SessionKind::Browser, ip.as_deref(), ua).await {
        Ok(issued) => {
            let cookie = state.config.cookie(state.config.session_cookie_name(), &issued.token);
            let to = if issued.mfa_pending { "/login/mfa" } else { "/" };
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response())
        }
        Err(e @ (AppError::InvalidCredentials | AppError::Invalid(_))) => {
            let (csrf, _) = pre_session_token(&state, &headers);
            let status = e.status();
            let page = render(&LoginPage {
                layout: Layout::anonymous("Sign in"),
                csrf,
                email: form.email,
                error: Some(super::sentence(&e.public_message(""))),
            })?;
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "login_mfa.html")]
struct MfaPage {
    layout: Layout,
    csrf: String,
    error: Option<String>,
}

pub async fn mfa_page(PendingMfa(pending): PendingMfa) -> PageResult<Response> {
    Ok(render(&MfaPage { layout: Layout::anonymous("Confirm it's you"), csrf: pending.csrf, error: None })?
        .into_response())
}

#[derive(serde::Deserialize)]
pub struct MfaForm {
    #[serde(default)]
    code: String,
}

pub async fn mfa_submit(
    State(state): State<AppState>,
    PendingMfa(pending): PendingMfa,
    Form(form): Form<MfaForm>,
) -> PageResult<Response> {
    match sign_in::complete_mfa(&state, &pending, &form.code).await {
        Ok(()) => Ok(Redirect::to("/").into_response()),
        Err(e @ (AppError::Invalid(_) | AppError::InvalidCredentials)) => {
            let page = render(&MfaPage {
                layout: Layout::anonymous("Confirm it's you"),
                csrf: pending.csrf,
                error: Some(super::sentence(&e.public_message(""))),
            })?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn logout(State(state): State<AppState>, user: CurrentUser) -> PageResult<Response> {
    sign_in::sign_out(&state, &user).await?;
    let expired = state.config.expired_cookie(state.config.session_cookie_name());
    Ok(([(header::SET_COOKIE, expired)], Redirect::to("/login")).into_response())
}
