//! Kapstone's HTTP server: the route table, the guard, use cases, pages and the JSON API.

pub mod api;
pub mod app;
pub mod auth;
pub mod content;
pub mod error;
pub mod fhir;
pub mod html;
pub mod ops;
pub mod routes;
pub mod state;
mod unmatched;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::middleware;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use state::{AppState, ServerConfig};

/// Makes ring the process's TLS crypto provider (HTTP clients: webhooks, tests, the bench).
/// Idempotent; a provider already installed stays.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Every response says: run only our own scripts and styles, never inside a frame.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

#[derive(Clone, Default)]
struct UuidRequestId;

impl MakeRequestId for UuidRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).ok().map(RequestId::new)
    }
}

/// Builds the whole application from the route table.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in routes::table() {
        let mut handler = route.handler;
        if api::idempotency::applies(&route.method, route.path) {
            // Inside the guard: the key belongs to the principal the guard resolved.
            handler = handler.layer(middleware::from_fn_with_state(state.clone(), api::idempotency::middleware));
        }
        let guarded = handler.layer(middleware::from_fn_with_state((state.clone(), route.action), auth::guard::guard));
        router = router.route(route.path, guarded);
    }
    let request_id = HeaderName::from_static("x-request-id");
    let hsts = state.config.behind_tls_proxy.then(|| HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    router
        .fallback(unmatched::not_found)
        .layer(middleware::from_fn(unmatched::method_not_allowed))
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::overriding(header::STRICT_TRANSPORT_SECURITY, move |_: &_| hsts.clone()))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                .make_span_with(|req: &Request<_>| {
                    // Method, path (ids only) and request id: never query strings, which may hold search
                    // terms, and never bodies.
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
                    // Invitation links carry a secret in the path: log only the route.
                    let path = req.uri().path();
                    // Secret tokens in paths never reach the log: invitation and calendar-feed links.
                    let path = if path.starts_with("/invite/") {
                        "/invite/{token}"
                    } else if path.starts_with("/calendar/") {
                        "/calendar/{token}"
                    } else {
                        path
                    };
                    tracing::info_span!("request", method = %req.method(), path = %path, request_id = %id)
                }),
        )
        .layer(SetRequestIdLayer::new(request_id, UuidRequestId))
}

/// Serves on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn launch_with_listener(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    launch_with_listener_layered(state, listener, shutdown, |app| app).await
}

/// As [`launch_with_listener`], with the whole application wrapped by `wrap` first: the test
/// harness adds an outermost layer that checks every API response against the OpenAPI document.
pub async fn launch_with_listener_layered(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    wrap: impl FnOnce(Router) -> Router,
) -> anyhow::Result<()> {
    let stopping = state.stopping.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.send_replace(true);
    };
    let app = wrap(router(state));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
