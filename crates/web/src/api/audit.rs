//! The audit log over JSON (admins): the same filters as the page, keyset paging by `before`.

use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use crate::app::audit_log::{self, AuditQuery};
use crate::auth::guard::CurrentUser;
use crate::error::{ApiResult, AppError};
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    admin: CurrentUser,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| AppError::BadRequest { field: None, message: e.body_text() })?;
    let (rows, more) = audit_log::view(&state, &admin, &q).await?;
    let next = if more { rows.last().map(|e| e.seq) } else { None };
    let items: Vec<Value> = rows
        .into_iter()
        .map(|e| {
            json!({
                "seq": e.seq, "at": e.at, "actor_user_id": e.actor_user_id, "actor_role": e.actor_role,
                "action": e.action, "entity_type": e.entity_type, "entity_id": e.entity_id,
                "patient_id": e.patient_id, "source_ip": e.source_ip, "outcome": e.outcome,
                "reason": e.reason, "hash": e.hash,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items, "next_before": next })))
}
