//! The journal over the JSON API: the signed-in patient's own entries (portal), and the care
//! team's queue of shared entries and reading one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kapstone_store::keyset::TimeKey;
use serde_json::Value;
use uuid::Uuid;

use super::ApiJson;
use super::page::{self, Filter, ListQuery};
use crate::app::journal::{self as app, Change, NewText, QueueItem};
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

fn id_of(raw: &str) -> Result<Uuid, AppError> {
    raw.parse().map_err(|_| AppError::NotFound)
}

fn to_json(v: &impl serde::Serialize) -> Result<Value, AppError> {
    serde_json::to_value(v).map_err(|e| AppError::Internal(e.into()))
}

/// `GET /api/v1/portal/journal?from=&to=&limit=&cursor=`: the patient's own entries, newest first,
/// a page at a time (see [`page`]; `from`/`to` on when an entry was written), with the session to
/// prompt for, the prompts, who reads shared entries, and the crisis resources.
pub async fn own(State(state): State<AppState>, me: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let q = q.parse::<TimeKey>(&state, me.clinic, &[Filter::Dates]).await?;
    let (j, next) = app::own_page(&state, &me, &q.filter, q.after, q.limit).await?;
    let prompts = crate::content::journal_prompts().map_err(AppError::Internal)?;
    let answer = OwnJournalPage {
        next_cursor: next.as_ref().map(page::cursor),
        items: j.entries,
        prompt_session: j.prompt_session,
        prompts: &prompts.prompts,
        sharing_notice: &prompts.sharing_notice,
        crisis: &prompts.crisis,
    };
    Ok(Json(to_json(&answer)?))
}

/// A page of the patient's own journal, with what the journal page shows around it.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct OwnJournalPage<'a> {
    pub items: Vec<app::EntryView>,
    /// Ask for the next page with `?cursor=<next_cursor>` until it is null.
    pub next_cursor: Option<String>,
    /// The session a new entry is prompted about, if one is waiting for reflection.
    pub prompt_session: Option<app::PromptSession>,
    pub prompts: &'a [kapstone_domain::journal::Prompt],
    /// Who reads shared entries and when.
    pub sharing_notice: &'a str,
    /// Crisis resources.
    pub crisis: &'a str,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBody {
    text: String,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    prompt_id: Option<String>,
}

/// `POST /api/v1/portal/journal`: 201 with the new private entry.
pub async fn write(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(b): ApiJson<NewBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input = NewText { text: &b.text, session: b.session_id.as_deref(), prompt: b.prompt_id.as_deref() };
    super::idempotency::answered(|e| Ok((StatusCode::CREATED, to_json(e)?)), app::write(&state, &me, &input)).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    text: String,
}

/// `PUT /api/v1/portal/journal/{id}`: rewrites a private entry.
pub async fn edit(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<EditBody>,
) -> ApiResult<Json<Value>> {
    super::idempotency::answered_ok(to_json, app::change(&state, &me, id_of(&id)?, Change::Edit(&b.text))).await
}

/// `POST /api/v1/portal/journal/{id}/share`.
pub async fn share(State(state): State<AppState>, me: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    super::idempotency::answered_ok(to_json, app::change(&state, &me, id_of(&id)?, Change::Share)).await
}

/// `POST /api/v1/portal/journal/{id}/unshare`.
pub async fn unshare(State(state): State<AppState>, me: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    super::idempotency::answered_ok(to_json, app::change(&state, &me, id_of(&id)?, Change::Unshare)).await
}

/// `DELETE /api/v1/portal/journal/{id}`: deletes a private entry (204).
pub async fn delete(State(state): State<AppState>, me: CurrentUser, Path(id): Path<String>) -> ApiResult<StatusCode> {
    app::change(&state, &me, id_of(&id)?, Change::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/journal/queue?patient=&from=&to=&limit=&cursor=`: shared entries nobody on the
/// care team has read (ids only), in the order they were shared, a page at a time (see [`page`]).
pub async fn queue(State(state): State<AppState>, user: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let q = q.parse::<TimeKey>(&state, user.clinic, &[Filter::Patient, Filter::Dates]).await?;
    let items = app::queue_page(&state, &user, &q.filter, q.after, q.limit).await?;
    let key = |i: &QueueItem| TimeKey::new(i.shared_at, i.id);
    Ok(Json(page::page(items, q.limit, key, page::item)))
}

/// `GET /api/v1/journal/{id}`: a shared entry; the first read takes it out of the queue.
pub async fn read(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let e = app::read_shared(&state, &user, id_of(&id)?).await?;
    Ok(Json(to_json(&e)?))
}
