//! Which model a request goes to, and the routes that show, load and unload models by hand.

use super::{ApiError, AppState};
use crate::{
    fleet::{Fleet, PickError},
    worker::WorkerState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde_json::Value;
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

/// The model named `id` on the `/v1/models/{id}` routes.
fn named(state: &AppState, id: &str) -> Result<Arc<WorkerState>, ApiError> {
    state.fleet().get(id).cloned().map_err(pick_error)
}

/// `GET /v1/models/{id}`: the model, its state, queue, slots, keep-alive and memory.
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(named(&state, &id)?.details()))
}

/// `POST /v1/models/{id}/load` and `/unload` (ids may hold `/`, as hub references do).
pub async fn act(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (id, action) = path.rsplit_once('/').unwrap_or((&path, ""));
    let model = named(&state, id)?;
    match action {
        "load" => load(&state, &model).await?,
        "unload" => state.fleet().unload(&model).await,
        _ => {
            return Err(ApiError::not_found(
                "no such route: POST /v1/models/{id}/load or /v1/models/{id}/unload",
            ));
        }
    }
    Ok(Json(model.details()))
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
