//! Health check and static assets.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

/// 200 `{"status":"ok","database":"ok"}`, or 503 with `"database":"unavailable"`. The server
/// keeps running while the database is away; the pool reconnects when it returns.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.db.is_healthy().await {
        (StatusCode::OK, Json(json!({ "status": "ok", "database": "ok" })))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "degraded", "database": "unavailable" })))
    }
}

const CSS: &str = include_str!("../static/app.css");

pub async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], CSS)
}

const FLOOR_JS: &str = include_str!("../static/floor.js");

/// The floor board's script (the Content-Security-Policy allows only our own script files).
pub async fn floor_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        FLOOR_JS,
    )
}
