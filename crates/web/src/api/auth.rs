//! `POST /api/v1/auth/login`, `POST /api/v1/auth/logout`, `GET /api/v1/auth/me`,
//! `POST /api/v1/auth/reauth`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use kapstone_store::sessions::SessionKind;
use kapstone_store::users::UserRow;
use serde_json::{Value, json};

use super::ApiJson;
use crate::app::sign_in::{self, Credentials};
use crate::auth::guard::{ClientIp, CurrentUser};
use crate::error::ApiResult;
use crate::state::AppState;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    totp_code: Option<String>,
}

fn user_json(u: &UserRow) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "name": u.display_name,
        "role": u.role,
        "patient_id": u.patient_id,
        "mfa_enabled": u.totp_enabled,
    })
}

pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Json<Value>> {
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let creds = Credentials { email: body.email, password: body.password, totp_code: body.totp_code };
    let issued = sign_in::sign_in(&state, creds, SessionKind::Api, ip.as_deref(), ua).await?;
    Ok(Json(json!({
        "token": issued.token,
        "expires_at": issued.expires_at,
        "user": user_json(&issued.user),
    })))
}

pub async fn logout(State(state): State<AppState>, user: CurrentUser) -> ApiResult<StatusCode> {
    sign_in::sign_out(&state, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn me(user: CurrentUser) -> Json<Value> {
    Json(json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "clinic_id": user.clinic,
        "patient_id": user.patient,
        "mfa_enabled": user.totp_enabled,
        "csrf_token": if user.api { None } else { Some(user.csrf.clone()) },
    }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReauthBody {
    password: String,
    #[serde(default)]
    totp_code: Option<String>,
}

/// Re-authenticates this session (see `app::reauth`): signing, witnessing and exporting are
/// allowed for the next few minutes. Answers when that window ends.
pub async fn reauth(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(body): ApiJson<ReauthBody>,
) -> ApiResult<Json<Value>> {
    crate::app::reauth::reauthenticate(&state, &user, &body.password, body.totp_code.as_deref()).await?;
    let until = kapstone_domain::UtcTs::now().plus(state.config.reauth.window);
    Ok(Json(json!({ "reauthenticated_until": until })))
}
