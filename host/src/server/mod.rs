//! The HTTP API: `fn app(state) -> Router`, the shared state, and the handlers' modules.

mod auth;
mod collect;
mod error;
mod jobs;
mod json_errors;
mod models;
mod openai;
mod openapi;
mod playground;
mod state;
mod status;
mod stream;
#[cfg(test)]
mod tests;

pub use error::{ApiError, clipped};
pub use openai::untrusted;
pub use state::AppState;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::HeaderValue,
    middleware,
    routing::{get, post},
};
use std::sync::Arc;
use tower_http::{
    cors::{AllowOrigin, Any, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::RequestBodyTimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

/// The router with every route of the API, and its middleware: request ids (honouring
/// `X-Request-Id`), a span per request, the limits of the request head and the body's size and
/// time limits, CORS and the API key.
pub fn app(state: Arc<AppState>) -> Router {
    let http = state.http().clone();
    let mut router = routes(state)
        .layer(DefaultBodyLimit::max(http.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(http.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(http.body_timeout))
        .layer(middleware::map_response(json_errors::ensure_json));
    if let Some(key) = http.api_key {
        router = router.layer(middleware::from_fn_with_state(
            Arc::new(key),
            auth::require_key,
        ));
    }
    router = router.layer(middleware::from_fn(json_errors::limit_head));
    if !http.cors_origins.is_empty() {
        router = router.layer(cors(&http.cors_origins));
    }
    router
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = match origins.iter().any(|o| o == "*") {
        true => AllowOrigin::any(),
        false => AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok())),
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods(Any)
        .allow_headers(Any)
}

fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(status::health))
        .route("/ready", get(status::ready))
        .route("/metrics", get(status::metrics))
        .route("/v1/info", get(status::info))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/jobs", post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/jobs/{id}/stream", get(stream::stream))
        .route("/v1/models/{*id}", models::route())
        .merge(openai::routes())
        .merge(playground::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}
