//! `POST /api/v1/auth/login`, `POST /api/v1/auth/logout`, `GET /api/v1/auth/me`,
//! `POST /api/v1/auth/reauth`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use kapstone_store::sessions::SessionKind;
use kapstone_store::users::UserRow;
use serde_json::Value;

use super::ApiJson;
use crate::app::sign_in::{self, Credentials};
use crate::auth::guard::{ClientIp, CurrentUser};
use crate::error::ApiResult;
use crate::state::AppState;

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    totp_code: Option<String>,
}

/// The account a sign-in opened.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct SignedInUser {
    pub id: uuid::Uuid,
    pub email: String,
    pub name: String,
    #[schemars(with = "kapstone_domain::Role")]
    pub role: String,
    pub patient_id: Option<uuid::Uuid>,
    pub mfa_enabled: bool,
}

/// The answer of a sign-in: the bearer token, when it lapses, and the account.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct LoginAnswer {
    pub token: String,
    pub expires_at: kapstone_domain::UtcTs,
    pub user: SignedInUser,
}

/// The signed-in account.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Me {
    pub id: kapstone_domain::UserId,
    pub email: String,
    pub name: String,
    pub role: kapstone_domain::Role,
    pub clinic_id: kapstone_domain::ClinicId,
    pub patient_id: Option<kapstone_domain::PatientId>,
    pub mfa_enabled: bool,
    /// Absent (null) for API tokens.
    pub csrf_token: Option<String>,
}

/// When the re-authentication of this session lapses.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Reauthenticated {
    pub reauthenticated_until: kapstone_domain::UtcTs,
}

fn user_json(u: &UserRow) -> SignedInUser {
    SignedInUser {
        id: u.id,
        email: u.email.clone(),
        name: u.display_name.clone(),
        role: u.role.clone(),
        patient_id: u.patient_id,
        mfa_enabled: u.totp_enabled,
    }
}

fn to_json(v: &impl serde::Serialize) -> Value {
    super::page::item(v)
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
    let user = user_json(&issued.user);
    Ok(Json(to_json(&LoginAnswer { token: issued.token, expires_at: issued.expires_at, user })))
}

pub async fn logout(State(state): State<AppState>, user: CurrentUser) -> ApiResult<StatusCode> {
    sign_in::sign_out(&state, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn me(user: CurrentUser) -> Json<Value> {
    Json(to_json(&Me {
        id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
        role: user.role,
        clinic_id: user.clinic,
        patient_id: user.patient,
        mfa_enabled: user.totp_enabled,
        csrf_token: if user.api { None } else { Some(user.csrf.clone()) },
    }))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
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
    Ok(Json(to_json(&Reauthenticated { reauthenticated_until: until })))
}
