//! Measurement-based care over the JSON API (KAP-SPEC 7.10).

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::page::{self, Filter, ListQuery};
use crate::app::measures::{self, DueKey};
use crate::auth::guard::CurrentUser;
use crate::error::ApiResult;
use crate::state::AppState;

/// `GET /api/v1/measures/due?patient=&from=&to=&limit=&cursor=`: due and overdue questionnaires of
/// patients on an active course, by due time (so overdue first), each with its occasion, window,
/// status and whether it is in the portal, a page at a time (see [`page`]); `from`/`to` filter on
/// the due time.
pub async fn due(State(state): State<AppState>, user: CurrentUser, q: ListQuery) -> ApiResult<Json<Value>> {
    let q = q.parse::<DueKey>(&state, user.clinic, &[Filter::Patient, Filter::Dates]).await?;
    let items = measures::due_page(&state, &user, &q.filter, q.after.as_ref(), q.limit).await?;
    Ok(Json(page::page(items, q.limit, measures::due_key, page::item)))
}
