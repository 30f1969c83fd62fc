//! Error answers made outside the handlers (axum's 405 for a wrong method, a path segment that
//! does not decode, a request head over the limits) get the same `{"error": {code, message}}`
//! body as every other error.

use super::ApiError;
use axum::{
    extract::Request,
    http::{
        StatusCode,
        header::{CONTENT_LENGTH, CONTENT_TYPE},
    },
    middleware::Next,
    response::{IntoResponse, Response},
};

/// The most bytes of a non-JSON error body kept as the message.
const MESSAGE_BYTES: usize = 4096;

/// The longest request target (authority, path and query) read, in bytes; longer ones get 414.
const MAX_URI_BYTES: usize = 8 * 1024;

/// The most request header fields read (with the `X-Request-Id` the host adds when a request has
/// none); more get 431.
const MAX_HEADERS: usize = 100;

/// The most bytes of request header fields read (names, values, `": "` and CRLF); more get 431.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Answers a request whose head is over the limits above itself, in the error shape: 414
/// `uri_too_long` or 431 `request_header_fields_too_large`. hyper's own limits are above these
/// (`serve::connections`); what goes beyond them gets hyper's answer, with an empty body.
pub async fn limit_head(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let target = uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        let message = format!("the request target is {target} bytes; the limit is {MAX_URI_BYTES}");
        return ApiError::new(StatusCode::URI_TOO_LONG, "uri_too_long", message).into_response();
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        let message = format!(
            "the request has {} header fields of {bytes} bytes; the limits are {MAX_HEADERS} \
             fields and {MAX_HEADER_BYTES} bytes",
            headers.len()
        );
        let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        let error = ApiError::new(status, "request_header_fields_too_large", message);
        return error.into_response();
    }
    next.run(request).await
}

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
