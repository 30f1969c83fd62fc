//! The one error type at the HTTP edge: a status and `{"error": {code, message, field}}`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use rbee_plugin_api::PluginError;
use serde::Serialize;
use utoipa::ToSchema;

/// The longest field name an error message repeats: longer ones are cut, so that a huge
/// unknown key does not come back as a huge answer.
const SHOWN_NAME_CHARS: usize = 64;

/// `name` as error messages show it: cut after [`SHOWN_NAME_CHARS`] characters, with `...`.
pub fn clipped(name: &str) -> String {
    match name.char_indices().nth(SHOWN_NAME_CHARS) {
        Some((cut, _)) => format!("{}...", &name[..cut]),
        None => name.to_string(),
    }
}

/// Whether `error` comes from the body timeout (the client paused too long while sending).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    field: Option<String>,
    retry_after_secs: Option<u32>,
    openai: bool,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
            retry_after_secs: None,
            openai: false,
        }
    }

    /// The same error, naming the request field at fault.
    pub fn on_field(self, field: &str) -> Self {
        Self {
            field: Some(field.into()),
            ..self
        }
    }

    /// The same error in OpenAI's shape: `{"error": {message, type, param, code}}`.
    pub fn openai(self) -> Self {
        Self {
            openai: true,
            ..self
        }
    }

    /// 500: the job failed inside the worker.
    pub fn job_failed(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 400 `invalid_request`, naming the field at fault.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    /// A request body axum could not read: too large (413), sent too slowly (408), not JSON
    /// (400), ...
    pub fn rejected(rejection: axum::extract::rejection::JsonRejection) -> Self {
        let status = match timed_out(&rejection) {
            true => StatusCode::REQUEST_TIMEOUT,
            false => rejection.status(),
        };
        Self {
            field: Some("body".into()),
            ..Self::new(status, "invalid_request", rejection.body_text())
        }
    }

    /// 413 for a body larger than the limit (`Content-Length` says so before it is sent).
    pub fn body_too_large(message: impl Into<String>) -> Self {
        Self {
            field: Some("body".into()),
            ..Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", message)
        }
    }

    /// 503 with a Retry-After header: try again later.
    pub fn unavailable(code: &str, message: impl Into<String>, retry_after_secs: u32) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// A plugin's refusal of a job: 400, with the plugin's code and field.
    pub fn from_plugin(error: PluginError) -> Self {
        Self {
            field: error.field.into_option().map(|f| f.into_string()),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                &error.code,
                error.message.into_string(),
            )
        }
    }
}

/// The body of every native error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorDetail,
}

/// A native error: a code, a message and the request field at fault, if one is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// A stable code, e.g. `invalid_request`, `not_found`, `queue_full`.
    code: String,
    /// What went wrong, for people.
    message: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// The body of every error answer of the OpenAI-compatible routes, in OpenAI's shape.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OpenAiError)]
#[serde(deny_unknown_fields)]
pub struct OpenAiErrorBody {
    /// What went wrong.
    error: OpenAiErrorDetail,
}

/// An error as OpenAI's API gives it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAiErrorDetail {
    /// What went wrong, for people.
    message: String,
    /// `invalid_request_error`, `authentication_error` or `server_error`.
    #[serde(rename = "type")]
    kind: OpenAiErrorType,
    /// The request field at fault, or null.
    #[schema(required = true)]
    param: Option<String>,
    /// A stable code, e.g. `invalid_request`, `unsupported_route`.
    code: String,
}

/// The `type` of an OpenAI error, from its status.
#[derive(Debug, Serialize, ToSchema)]
pub enum OpenAiErrorType {
    /// 401.
    #[serde(rename = "authentication_error")]
    Authentication,
    /// Any other 4xx.
    #[serde(rename = "invalid_request_error")]
    InvalidRequest,
    /// 5xx.
    #[serde(rename = "server_error")]
    Server,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.openai {
            true => Json(OpenAiErrorBody {
                error: OpenAiErrorDetail {
                    message: self.message,
                    kind: match self.status.as_u16() {
                        401 => OpenAiErrorType::Authentication,
                        400..=499 => OpenAiErrorType::InvalidRequest,
                        _ => OpenAiErrorType::Server,
                    },
                    param: self.field,
                    code: self.code,
                },
            })
            .into_response(),
            false => Json(ErrorBody {
                error: ErrorDetail {
                    code: self.code,
                    message: self.message,
                    field: self.field,
                },
            })
            .into_response(),
        };
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
