//! `GET /v1/models`: every model the host serves, loaded or not.

use crate::server::AppState;
use axum::{Json, extract::State};
use serde_json::{Value, json};
use std::sync::Arc;

/// Lists every model with its plugin, tasks and state (loaded, loading, unloading, unloaded).
#[utoipa::path(
    get,
    path = "/v1/models",
    operation_id = "list_models",
    tag = "openai",
    responses((status = 200, description = "Every model", body = ref("#/components/schemas/ModelList"))),
)]
pub async fn list(State(state): State<Arc<AppState>>) -> Json<Value> {
    let data: Vec<Value> = state.fleet().models().iter().map(|m| m.summary()).collect();
    Json(json!({"object": "list", "data": data}))
}
