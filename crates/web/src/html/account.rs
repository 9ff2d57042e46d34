//! My account: password, second factor, sessions.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use kapstone_domain::SessionId;
use kapstone_store::{sessions, users};

use super::{FieldErrors, Layout, PageResult, render, when};
use crate::app::accounts;
use crate::auth::guard::CurrentUser;
use crate::auth::totp;
use crate::error::AppError;
use crate::state::AppState;

pub struct SessionView {
    pub id: String,
    pub kind: &'static str,
    pub started: String,
    pub last_seen: String,
    pub ip: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    notice: Option<String>,
    errors: FieldErrors,
    totp_enabled: bool,
    recovery_left: i64,
    sessions: Vec<SessionView>,
    /// Staff who see the schedule: their calendar link, if made.
    calendar: Option<Option<String>>,
}

async fn account_page(
    state: &AppState,
    me: &CurrentUser,
    notice: Option<String>,
    errors: FieldErrors,
) -> PageResult<Html<String>> {
    let sessions = sessions::list_live_for_user(&state.db, me.id)
        .await?
        .into_iter()
        .map(|s| SessionView {
            id: s.id.to_string(),
            kind: if s.is_api() { "API token" } else { "Browser" },
            started: when(s.created_at.0),
            last_seen: when(s.last_seen_at.0),
            ip: s.source_ip.clone().unwrap_or_default(),
            current: s.session_id() == me.session,
        })
        .collect();
    render(&AccountPage {
        layout: Layout::for_user("My account", me, "/account"),
        notice,
        errors,
        totp_enabled: me.totp_enabled,
        recovery_left: users::unused_recovery_codes(&state.db, me.id).await?,
        sessions,
        calendar: if kapstone_domain::permissions::allows(Some(me.role), kapstone_domain::Action::ReadSchedule) {
            // Made on first view, like the API's: the link is always on the profile page.
            Some(Some(crate::app::calendar::feed_url(state, me, false).await?))
        } else {
            None
        },
    })
}

/// `POST /account/calendar-feed`: makes (or replaces) the secret calendar link.
pub async fn calendar_feed(State(state): State<AppState>, me: CurrentUser) -> PageResult<Html<String>> {
    if !kapstone_domain::permissions::allows(Some(me.role), kapstone_domain::Action::ReadSchedule) {
        return Err(crate::error::AppError::Forbidden.into());
    }
    crate::app::calendar::feed_url(&state, &me, true).await?;
    account_page(
        &state,
        &me,
        Some("A new calendar link is ready; the old one no longer works.".into()),
        FieldErrors::default(),
    )
    .await
}

pub async fn show(State(state): State<AppState>, me: CurrentUser) -> PageResult<Html<String>> {
    account_page(&state, &me, None, FieldErrors::default()).await
}

/// Re-renders the account page with the error next to its field, or fails the request.
async fn with_field_error(
    state: &AppState,
    me: &CurrentUser,
    e: AppError,
    rename: &[(&str, &str)],
) -> PageResult<Response> {
    let Some(mut errors) = FieldErrors::from_error(&e) else { return Err(e.into()) };
    for (from, to) in rename {
        errors.rename(from, to);
    }
    let page = account_page(state, me, None, errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

#[derive(serde::Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(f): Form<PasswordForm>,
) -> PageResult<Response> {
    match accounts::change_password(&state, &me, &f.current_password, &f.new_password).await {
        Ok(()) => Ok(account_page(
            &state,
            &me,
            Some("Your password is changed. Other sessions were signed out.".into()),
            FieldErrors::default(),
        )
        .await?
        .into_response()),
        Err(e) => with_field_error(&state, &me, e, &[("password", "new_password")]).await,
    }
}

#[derive(Template)]
#[template(path = "account_mfa.html")]
struct MfaSetupPage {
    layout: Layout,
    secret: String,
    otpauth_url: String,
    error: Option<String>,
    recovery_codes: Option<Vec<String>>,
}

pub async fn mfa_setup(State(state): State<AppState>, me: CurrentUser) -> PageResult<Response> {
    if me.totp_enabled {
        return Ok(Redirect::to("/account").into_response());
    }
    let secret = accounts::begin_mfa_enrolment(&state, &me).await?;
    let otpauth_url = totp::otpauth_url(&secret, &me.email)?;
    Ok(render(&MfaSetupPage {
        layout: Layout::for_user("Set up an authenticator app", &me, "/account"),
        secret,
        otpauth_url,
        error: None,
        recovery_codes: None,
    })?
    .into_response())
}

#[derive(serde::Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

pub async fn mfa_confirm(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(f): Form<CodeForm>,
) -> PageResult<Response> {
    match accounts::confirm_mfa_enrolment(&state, &me, &f.password, &f.code).await {
        Ok(codes) => Ok(render(&MfaSetupPage {
            layout: Layout::for_user("Second factor on", &me, "/account"),
            secret: String::new(),
            otpauth_url: String::new(),
            error: None,
            recovery_codes: Some(codes),
        })?
        .into_response()),
        Err(AppError::Invalid(fe)) => {
            let row = users::get(&state.db, me.id).await?.ok_or(AppError::Unauthenticated)?;
            let secret = row.totp_secret.unwrap_or_default();
            let otpauth_url = totp::otpauth_url(&secret, &me.email)?;
            let page = render(&MfaSetupPage {
                layout: Layout::for_user("Set up an authenticator app", &me, "/account"),
                secret,
                otpauth_url,
                error: Some(super::sentence(&fe.message)),
                recovery_codes: None,
            })?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub struct DisableForm {
    #[serde(default)]
    password: String,
}

pub async fn mfa_disable(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(f): Form<DisableForm>,
) -> PageResult<Response> {
    match accounts::disable_mfa(&state, &me, &f.password).await {
        Ok(()) => Ok(Redirect::to("/account").into_response()),
        Err(e) => with_field_error(&state, &me, e, &[]).await,
    }
}

pub async fn end_session(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> PageResult<Response> {
    let id: SessionId = id.parse().map_err(|_| AppError::NotFound)?;
    accounts::end_my_session(&state, &me, id).await?;
    Ok(Redirect::to("/account").into_response())
}

#[derive(Template)]
#[template(path = "reauth.html")]
struct ReauthPage {
    layout: Layout,
    errors: FieldErrors,
    totp_enabled: bool,
    minutes: i64,
    next: String,
}

/// Where to go after confirming: a path of this site only (never another host).
fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && n.len() <= 2000 => n.to_owned(),
        _ => "/account".to_owned(),
    }
}

#[derive(serde::Deserialize)]
pub struct ReauthQuery {
    #[serde(default)]
    next: Option<String>,
}

fn reauth_page(state: &AppState, me: &CurrentUser, errors: FieldErrors, next: String) -> PageResult<Html<String>> {
    render(&ReauthPage {
        layout: Layout::for_user("Confirm it's you", me, "/account"),
        errors,
        totp_enabled: me.totp_enabled,
        minutes: state.config.reauth.window.whole_minutes(),
        next,
    })
}

/// `GET /reauth`: the password (and code) again before signing, witnessing or exporting.
pub async fn reauth_show(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Query(q): axum::extract::Query<ReauthQuery>,
) -> PageResult<Response> {
    Ok(reauth_page(&state, &me, FieldErrors::default(), local_next(q.next.as_deref()))?.into_response())
}

#[derive(serde::Deserialize)]
pub struct ReauthForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp_code: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

pub async fn reauth_submit(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(f): Form<ReauthForm>,
) -> PageResult<Response> {
    let next = local_next(f.next.as_deref());
    match crate::app::reauth::reauthenticate(&state, &me, &f.password, f.totp_code.as_deref()).await {
        Ok(()) => Ok(Redirect::to(&next).into_response()),
        Err(e) => match FieldErrors::from_error(&e) {
            Some(errors) => Ok((e.status(), reauth_page(&state, &me, errors, next)?).into_response()),
            None => Err(e.into()),
        },
    }
}
