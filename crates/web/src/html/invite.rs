//! The page behind a portal invitation link: choose a password, then straight into the portal.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::{Layout, PageResult, render, sentence};
use crate::app::invitations;
use crate::auth::guard::ClientIp;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage {
    layout: Layout,
    token: String,
    csrf: String,
    email: String,
    given_name: String,
    error: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> PageResult<Response> {
    let (email, given_name) = invitations::check(&state, &token).await?;
    let (csrf, set) = super::auth::pre_session_token(&state, &headers);
    let page: Html<String> =
        render(&InvitePage { layout: Layout::anonymous("Welcome"), token, csrf, email, given_name, error: None })?;
    let mut resp = page.into_response();
    if let Some(c) = set
        && let Ok(v) = c.parse()
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[derive(serde::Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
}

pub async fn accept(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> PageResult<Response> {
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    match invitations::redeem(&state, &token, &f.password, ip.as_deref(), ua).await {
        Ok(issued) => {
            let c = state.config.cookie(state.config.session_cookie_name(), &issued.token);
            Ok(([(header::SET_COOKIE, c)], Redirect::to("/portal")).into_response())
        }
        Err(AppError::Invalid(e)) if e.field == "password" => {
            let (email, given_name) = invitations::check(&state, &token).await?;
            let (csrf, _) = super::auth::pre_session_token(&state, &headers);
            let page = render(&InvitePage {
                layout: Layout::anonymous("Welcome"),
                token,
                csrf,
                email,
                given_name,
                error: Some(sentence(&e.message)),
            })?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
