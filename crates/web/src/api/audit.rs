//! The audit log over JSON (admins): the same filters as the page, paged by cursor.

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::page;
use crate::app::audit_log::{self, AuditQuery};
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

/// `GET /api/v1/audit?user=&patient=&action=&from=&to=&limit=&cursor=`: newest first, a page at a
/// time; the cursor carries the sequence number of the last event sent (see [`super::page`]).
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    patient: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    admin: CurrentUser,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| AppError::BadRequest { field: None, message: e.body_text() })?;
    let limit = page::limit(q.limit.as_deref())?;
    let before: Option<i64> = page::after(q.cursor.as_deref())?;
    let filter = AuditQuery { user: q.user, patient: q.patient, action: q.action, from: q.from, to: q.to, before };
    // The sequence number is unique: it orders the log and breaks every tie.
    let (rows, more) = audit_log::view_page(&state, &admin, &filter, limit).await?;
    let next = if more { rows.last().map(|e| page::cursor(&e.seq)) } else { None };
    let items: Vec<Value> = rows
        .into_iter()
        .map(|e| {
            page::item(&AuditEventView {
                seq: e.seq,
                at: e.at,
                actor_user_id: e.actor_user_id,
                actor_role: e.actor_role,
                action: e.action,
                entity_type: e.entity_type,
                entity_id: e.entity_id,
                patient_id: e.patient_id,
                source_ip: e.source_ip,
                outcome: e.outcome,
                reason: e.reason,
                hash: e.hash,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

/// One audit event: ids only, never names, notes or answers.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct AuditEventView {
    pub seq: i64,
    pub at: kapstone_domain::UtcTs,
    #[schemars(with = "Option<uuid::Uuid>")]
    pub actor_user_id: Option<String>,
    #[schemars(with = "Option<kapstone_domain::Role>")]
    pub actor_role: Option<String>,
    #[schemars(with = "kapstone_domain::audit::AuditAction")]
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    #[schemars(with = "Option<uuid::Uuid>")]
    pub patient_id: Option<String>,
    pub source_ip: Option<String>,
    #[schemars(with = "kapstone_domain::audit::Outcome")]
    pub outcome: String,
    pub reason: Option<String>,
    pub hash: String,
}
