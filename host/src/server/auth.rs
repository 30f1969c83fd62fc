//! Bearer-key authentication: every route but the probes and metrics needs
//! `Authorization: Bearer <key>` when a key is set.

use super::ApiError;
use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Routes that orchestrators poll without credentials.
const OPEN_ROUTES: &[&str] = &["/health", "/ready", "/metrics"];

/// The middleware: passes requests that carry the key (compared in constant time).
pub async fn require_key(State(key): State<Arc<String>>, request: Request, next: Next) -> Response {
    if OPEN_ROUTES.contains(&request.uri().path())
        || request.method() == axum::http::Method::OPTIONS
    {
        return next.run(request).await;
    }
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(offered.as_bytes().ct_eq(key.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
        "a valid API key is required: send 'Authorization: Bearer <key>'",
    )
    .openai()
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
