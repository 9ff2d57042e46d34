//! Psychotherapy notes over the JSON API (KAP-SPEC 10): the caller's own notes of a session,
//! writing one, amending one. Nobody but the author ever gets a note back: another clinician's
//! list is their own (usually empty) and their amendment of it is a 404.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_store::keyset::TimeKey;
use serde_json::Value;
use uuid::Uuid;

use super::ApiJson;
use super::page::{self, Filter, ListQuery};
use crate::app::psychotherapy_notes as app;
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn id_of(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

fn to_json(v: &impl serde::Serialize) -> Result<Value, AppError> {
    serde_json::to_value(v).map_err(|e| AppError::Internal(e.into()))
}

/// `GET /api/v1/sessions/{id}/psychotherapy-notes`: the caller's own notes of the session.
pub async fn list(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let notes = app::mine(&state, &user, id_of(&id)?).await?;
    Ok(Json(to_json(&notes)?))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    text: String,
}

/// `POST /api/v1/sessions/{id}/psychotherapy-notes`: 201 with the signed note; 422 names `text`.
pub async fn write(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<NoteBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        |n| Ok((StatusCode::CREATED, to_json(n)?)),
        app::write(&state, &user, id_of(&id)?, &b.text),
    )
    .await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendmentBody {
    text: String,
    reason: String,
}

/// `POST /api/v1/psychotherapy-notes/{id}/amendments`: 201 with the note and all its
/// amendments (the original text unchanged); 422 names `text` or `reason`; 404 for a note that
/// is not the caller's own.
pub async fn amend(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AmendmentBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::idempotency::answered(
        |n| Ok((StatusCode::CREATED, to_json(n)?)),
        app::amend(&state, &user, id_of(&id)?, &b.text, &b.reason),
    )
    .await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    colleague_id: String,
}

/// `POST /api/v1/psychotherapy-notes/{id}/share`: the author shares one note with one named
/// colleague (a therapist or prescriber of the clinic). 201 with the share; 422 names
/// `colleague_id`; 404 for a note that is not the caller's own; 409 when already shared.
pub async fn share(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ShareBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let colleague: Uuid =
        b.colleague_id.trim().parse().map_err(|_| {
            AppError::Invalid(kapstone_domain::FieldError::new("colleague_id", "give the colleague's id"))
        })?;
    super::idempotency::answered(
        |s| Ok((StatusCode::CREATED, to_json(s)?)),
        app::share(&state, &user, id_of(&id)?, colleague),
    )
    .await
}

/// `DELETE /api/v1/psychotherapy-notes/{id}/share`: the author withdraws the share; 204, or 404
/// when the caller has no live share of that note.
pub async fn withdraw(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::withdraw(&state, &user, id_of(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/psychotherapy-notes/shared?patient=&from=&to=&limit=&cursor=`: the notes shared
/// with the caller now, newest share first, a page at a time (see [`page`]); ids only.
pub async fn shared(State(state): State<AppState>, user: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let q = q.parse::<TimeKey>(&state, user.clinic, &[Filter::Patient, Filter::Dates]).await?;
    let (items, next) = app::shared_with_me_page(&state, &user, &q.filter, q.after, q.limit).await?;
    Ok(Json(page::body(items.iter().map(page::item).collect(), next.as_ref())))
}

/// `GET /api/v1/psychotherapy-notes/{id}`: one note, to its author or to the colleague it is
/// shared with now; 404 for anyone else.
pub async fn read(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let note = app::read_one(&state, &user, id_of(&id)?).await?;
    Ok(Json(to_json(&note)?))
}
