//! The SPRAVATO REMS Patient Monitoring Form over the API: the form filled from a finished
//! session, the record of its submission, and the clinic's list of forms by urgency.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_store::dosing::RemsFormKey;
use serde_json::Value;
use uuid::Uuid;

use super::ApiJson;
use super::page::{self, ListQuery};
use crate::app::rems as app;
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn session_id(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

fn to_json(v: &impl serde::Serialize) -> Result<Value, AppError> {
    serde_json::to_value(v).map_err(|e| AppError::Internal(e.into()))
}

/// `GET /api/v1/sessions/{id}/rems-form`.
pub async fn form(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let view = app::form(&state, &user, session_id(&id)?).await?;
    Ok(Json(to_json(&view)?))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmissionBody {
    submitted_on: String,
    #[serde(default)]
    confirmation: Option<String>,
}

/// `POST /api/v1/sessions/{id}/rems-form/submissions`: 201; a date in the future or before the
/// session is 422 naming `submitted_on`.
pub async fn submit(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SubmissionBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let sid = session_id(&id)?;
    super::idempotency::answered(
        |r: &app::SubmissionRecorded| {
            Ok((StatusCode::CREATED, to_json(&Submitted { id: r.id, status: r.status, due: r.due })?))
        },
        app::submit(&state, &user, sid, &b.submitted_on, b.confirmation.as_deref()),
    )
    .await
}

/// A recorded submission, with the form's status and due date now.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Submitted {
    pub id: Uuid,
    pub status: kapstone_domain::rems_form::SubmissionStatus,
    pub due: jiff::civil::Date,
}

/// `GET /api/v1/rems-forms?limit=&cursor=`: the clinic's forms by urgency, a page at a time (see
/// [`page`]); the cursor carries the sort key of the last form sent.
pub async fn dashboard(State(state): State<AppState>, user: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let q = q.parse::<RemsFormKey>(&state, user.clinic, &[]).await?;
    let (rows, next) = app::dashboard_page(&state, &user, q.after, q.limit).await?;
    Ok(Json(page::body(rows.iter().map(page::item).collect(), next.as_ref())))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemsSettingBody {
    rems_certified: bool,
    #[serde(default)]
    address_line1: Option<String>,
    #[serde(default)]
    address_line2: Option<String>,
    #[serde(default)]
    city: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    zip: Option<String>,
}

/// A location's REMS setting: its certification and the address the REMS form asks for.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "RemsSetting")]
pub struct RemsSettingView {
    pub rems_certified: bool,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
}

/// The stored setting as the API shows it (also in `GET /api/v1/locations`).
pub fn setting_view(s: &kapstone_store::dosing::RemsSettingRow) -> RemsSettingView {
    RemsSettingView {
        rems_certified: s.rems_certified,
        address_line1: s.address_line1.clone(),
        address_line2: s.address_line2.clone(),
        city: s.city.clone(),
        state: s.state_code.clone(),
        zip: s.zip.clone(),
    }
}

/// `PUT /api/v1/locations/{id}/rems-setting` (admins): the location's REMS certification and the
/// address the REMS form asks for, replaced as a whole (absent or blank address parts clear the
/// address). A bad part is 422 naming it (`zip`, `state`, ...), and nothing is saved.
pub async fn set_rems_setting(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RemsSettingBody>,
) -> ApiResult<Json<Value>> {
    let input = app::RemsSettingInput {
        certified: b.rems_certified,
        address_line1: b.address_line1.unwrap_or_default(),
        address_line2: b.address_line2.unwrap_or_default(),
        city: b.city.unwrap_or_default(),
        state: b.state.unwrap_or_default(),
        zip: b.zip.unwrap_or_default(),
    };
    // The setting the update wrote is the setting now: the answer is stored with it.
    super::idempotency::answered_ok(
        |s: &kapstone_store::dosing::RemsSettingRow| to_json(&setting_view(s)),
        app::set_rems_setting(&state, &user, &id, &input),
    )
    .await
}
