//! Accounts over JSON (admins).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kapstone_store::keyset::TimeKey;
use kapstone_store::users::UserRow;
use serde_json::Value;

use super::ApiJson;
use super::page::{self, Filter, ListQuery};
use crate::app::accounts::{self, NewAccountInput, Operator};
use crate::auth::guard::CurrentUser;
use crate::error::ApiResult;
use crate::state::AppState;

/// `GET /api/v1/users?patient=&from=&to=&limit=&cursor=`: the clinic's accounts in the order they
/// were made, a page at a time (see [`page`]); `patient` finds a patient's portal account,
/// `from`/`to` filter on when the account was made.
pub async fn list(State(state): State<AppState>, admin: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let q = q.parse::<TimeKey>(&state, admin.clinic, &[Filter::Patient, Filter::Dates]).await?;
    let rows = accounts::accounts_page(&state, &admin, &q.filter, q.after, q.limit).await?;
    let item = |u: &UserRow| {
        page::item(&AccountView {
            id: u.id,
            email: u.email.clone(),
            name: u.display_name.clone(),
            role: u.role.clone(),
            active: u.active,
            mfa_enabled: u.totp_enabled,
            patient_id: u.patient_id,
        })
    };
    Ok(Json(page::page(rows, q.limit, |u| TimeKey::new(u.created_at, u.id), item)))
}

pub async fn create(
    State(state): State<AppState>,
    admin: CurrentUser,
    ApiJson(input): ApiJson<NewAccountInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        |id| Ok((StatusCode::CREATED, page::item(&super::Created { id: id.as_uuid() }))),
        accounts::create_account(&state, Operator::Admin(&admin), input),
    )
    .await
}

/// An account of the clinic.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct AccountView {
    pub id: uuid::Uuid,
    pub email: String,
    pub name: String,
    #[schemars(with = "kapstone_domain::Role")]
    pub role: String,
    pub active: bool,
    pub mfa_enabled: bool,
    pub patient_id: Option<uuid::Uuid>,
}
