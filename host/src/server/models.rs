//! Which model a request goes to, and the routes that show, load and unload models by hand.

use super::{ApiError, AppState, error::ErrorBody};
use crate::{
    fleet::{Fleet, PickError},
    worker::WorkerState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, Uri, header::ALLOW},
    response::{IntoResponse, Response},
    routing::{MethodRouter, get},
};
use std::sync::Arc;

/// The model a request for `task` goes to (see [`Fleet::pick`]): 404 for an unknown name,
/// 400 naming `model` when it must be given.
pub fn pick(fleet: &Fleet, name: Option<&str>, task: &str) -> Result<Arc<WorkerState>, ApiError> {
    fleet
        .pick(name, task)
        .cloned()
        .map_err(|error| match error {
            PickError::Unserved { served } => ApiError::bad_field(
                "task",
                format!(
                    "task '{task}' is not served here; the tasks served are: {}",
                    served.join(", ")
                ),
            ),
            other => pick_error(other),
        })
}

/// 404 naming the models there are, or 400 asking for `model` among the candidates.
pub fn pick_error(error: PickError) -> ApiError {
    match error {
        PickError::Unknown { name, available } => ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!(
                "model '{}' is not served here; available: {}",
                super::clipped(&name),
                available.join(", ")
            ),
        )
        .on_field("model"),
        PickError::Ambiguous { candidates } => ApiError::bad_field(
            "model",
            format!(
                "'model' is required: several models serve this task ({})",
                candidates.join(", ")
            ),
        ),
        PickError::Unserved { served } => ApiError::new(
            StatusCode::NOT_FOUND,
            "unsupported_route",
            format!(
                "no model serves this; the tasks served are: {}",
                served.join(", ")
            ),
        ),
    }
}

/// The `/v1/models/{*id}` routes: `GET /v1/models/{id}` shows a model, `POST
/// /v1/models/{id}/load` and `/unload` act on it. One wildcard route serves both (ids may hold
/// `/`), so a wrong method is answered here, with the methods of the path it was sent to.
pub fn route() -> MethodRouter<Arc<AppState>> {
    get(show).post(act).fallback(wrong_method)
}

/// The actions `POST /v1/models/{id}/{action}` takes.
const ACTIONS: [&str; 2] = ["load", "unload"];

/// The model id and the action of a path `{id}/{action}`, if it ends with an action.
fn split_action(path: &str) -> Option<(&str, &str)> {
    path.rsplit_once('/')
        .filter(|(_, action)| ACTIONS.contains(action))
}

/// 405 with `Allow`: `POST` for an action's path, `GET, HEAD` for a model's.
fn method_not_allowed(path: &str) -> Response {
    let allow = match split_action(path) {
        Some(_) => "POST",
        None => "GET,HEAD",
    };
    let message = format!("this path takes {allow} only");
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        message,
    )
    .into_response();
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

async fn wrong_method(uri: Uri) -> Response {
    method_not_allowed(uri.path())
}

/// The model named `id` on the `/v1/models/{id}` routes.
fn named(state: &AppState, id: &str) -> Result<Arc<WorkerState>, ApiError> {
    state.fleet().get(id).cloned().map_err(pick_error)
}

/// `GET /v1/models/{id}`: the model, its state, queue, slots, keep-alive and memory.
#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    operation_id = "show_model",
    tag = "models",
    params(("id" = String, Path, description = "The model's id or one of its aliases")),
    responses(
        (status = 200, description = "The model", body = ref("#/components/schemas/ModelDetails")),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 405, description = "`{id}` is a model's path followed by `/load` or `/unload`, which take POST", body = ErrorBody),
    ),
)]
pub async fn show(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match named(&state, &id) {
        Ok(model) => Json(model.details()).into_response(),
        Err(_) if split_action(&id).is_some_and(|(id, _)| named(&state, id).is_ok()) => {
            method_not_allowed(&id)
        }
        Err(error) => error.into_response(),
    }
}

/// `POST /v1/models/{id}/load` and `/unload` (ids may hold `/`, as hub references do).
#[utoipa::path(
    post,
    path = "/v1/models/{id}/{action}",
    operation_id = "act_on_model",
    tag = "models",
    params(
        ("id" = String, Path, description = "The model's id or one of its aliases"),
        ("action" = String, Path, description = "`load` (answers once it serves) or `unload` (once its running jobs end)", pattern = "^(load|unload)$"),
    ),
    responses(
        (status = 200, description = "The model, loaded or unloaded", body = ref("#/components/schemas/ModelDetails")),
        (status = 404, description = "No such model or action", body = ErrorBody),
        (status = 405, description = "`{id}/{action}` is a model's id, which takes GET", body = ErrorBody),
        (status = 500, description = "The model failed to load (`model_load_failed`)", body = ErrorBody),
    ),
)]
pub async fn act(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let Some((id, action)) = split_action(&path) else {
        if named(&state, &path).is_ok() {
            return Ok(method_not_allowed(&path));
        }
        return Err(ApiError::not_found(
            "no such route: POST /v1/models/{id}/load or /v1/models/{id}/unload",
        ));
    };
    let model = named(&state, id)?;
    // Seen before acting, so that a pinned model unloaded now is past its start-up when it
    // loads again.
    state.started();
    match action {
        "load" => load(&state, &model).await?,
        _ => state.fleet().unload(&model).await,
    }
    Ok(Json(model.details()).into_response())
}

/// Loads the model (unloading others if the memory budget needs it) and returns once it
/// serves; 500 `model_load_failed` if it cannot load.
async fn load(state: &AppState, model: &Arc<WorkerState>) -> Result<(), ApiError> {
    state
        .fleet()
        .load_and_wait(model)
        .await
        .map_err(|message| ApiError::job_failed(crate::fleet::LOAD_FAILED, message))
}
