//! The error answers the OpenAI routes document, once for all of them: what a JSON route and
//! a multipart route can answer besides their result.

use crate::server::error::OpenAiErrorBody;
use utoipa::IntoResponses;

/// The errors of a route whose body is JSON.
#[derive(IntoResponses)]
#[expect(
    dead_code,
    reason = "only described in the OpenAPI document, never built"
)]
pub enum JsonRouteErrors {
    /// A field at fault (`param`).
    #[response(status = 400)]
    BadRequest(OpenAiErrorBody),
    /// No model serves the route's task, or no such model.
    #[response(status = 404)]
    NotFound(OpenAiErrorBody),
    /// The body was sent too slowly.
    #[response(status = 408)]
    Timeout(OpenAiErrorBody),
    /// The body is too large.
    #[response(status = 413)]
    TooLarge(OpenAiErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415)]
    NotJson(OpenAiErrorBody),
    /// The body is not valid JSON of the right shape.
    #[response(status = 422)]
    BadJson(OpenAiErrorBody),
    /// The job failed, or the model failed to load.
    #[response(status = 500)]
    Failed(OpenAiErrorBody),
    /// The queue is full or the host drains; retry after `Retry-After` seconds.
    #[response(status = 503)]
    Unavailable(OpenAiErrorBody),
}

/// The errors of a route whose body is a multipart form.
#[derive(IntoResponses)]
#[expect(
    dead_code,
    reason = "only described in the OpenAPI document, never built"
)]
pub enum FormRouteErrors {
    /// A field at fault (`param`).
    #[response(status = 400)]
    BadRequest(OpenAiErrorBody),
    /// No model serves the route's task, or no such model.
    #[response(status = 404)]
    NotFound(OpenAiErrorBody),
    /// The body was sent too slowly.
    #[response(status = 408)]
    Timeout(OpenAiErrorBody),
    /// The body is too large.
    #[response(status = 413)]
    TooLarge(OpenAiErrorBody),
    /// The job failed, or the model failed to load.
    #[response(status = 500)]
    Failed(OpenAiErrorBody),
    /// The queue is full or the host drains; retry after `Retry-After` seconds.
    #[response(status = 503)]
    Unavailable(OpenAiErrorBody),
}
