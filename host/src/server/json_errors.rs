//! Error answers made outside the handlers (axum's 405 for a wrong method, a path segment that
//! does not decode) get the same `{"error": {code, message}}` body as every other error.

use super::ApiError;
use axum::{
    http::{
        StatusCode,
        header::{CONTENT_LENGTH, CONTENT_TYPE},
    },
    response::{IntoResponse, Response},
};

/// The most bytes of a non-JSON error body kept as the message.
const MESSAGE_BYTES: usize = 4096;

/// Rewrites an error response whose body is not JSON into the API's error shape, keeping its
/// status and its other headers (`Allow`, `Retry-After`, ...).
pub async fn ensure_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MESSAGE_BYTES)
        .await
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error");
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = if text.is_empty() {
        reason.to_string()
    } else {
        text
    };
    let code = reason.to_lowercase().replace([' ', '-'], "_");
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::body_too_large(message),
        _ => ApiError::new(status, &code, message),
    };
    let mut answer = error.into_response();
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}
