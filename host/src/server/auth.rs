//! Bearer-key authentication: every route but the probes, metrics and the playground's files
//! needs `Authorization: Bearer <key>` when a key is set.

use super::{ApiError, playground};
use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Routes that orchestrators poll without credentials.
const OPEN_ROUTES: &[&str] = &["/health", "/ready", "/metrics"];

/// The middleware: passes requests that carry the key (compared in constant time), and the
/// open ones.
pub async fn require_key(State(key): State<Arc<String>>, request: Request, next: Next) -> Response {
    if is_open(request.method(), request.uri().path()) {
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

/// Whether a request needs no key: the probes and metrics, CORS preflights, and reading the
/// playground's files (the page asks for the key and sends it on its API calls).
fn is_open(method: &Method, path: &str) -> bool {
    OPEN_ROUTES.contains(&path)
        || method == Method::OPTIONS
        || (matches!(*method, Method::GET | Method::HEAD) && playground::is_page(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_the_playground_is_open_and_every_api_route_is_not() {
        for (method, path) in [
            (Method::GET, "/"),
            (Method::HEAD, "/ui/"),
            (Method::GET, "/ui/app.js"),
            (Method::GET, "/ready"),
        ] {
            assert!(is_open(&method, path), "{method} {path}");
        }
        for (method, path) in [
            (Method::POST, "/"),
            (Method::DELETE, "/ui/app.js"),
            (Method::GET, "/v1/info"),
            (Method::GET, "/v1/models"),
            (Method::POST, "/v1/jobs"),
            (Method::GET, "/ui/../v1/info"),
        ] {
            assert!(!is_open(&method, path), "{method} {path}");
        }
    }
}
