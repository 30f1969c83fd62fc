//! `GET /v1/models`: the one loaded model.

use super::{model_name, now};
use crate::server::AppState;
use axum::{Json, extract::State};
use serde_json::{Value, json};
use std::sync::Arc;

/// Lists the loaded model.
pub async fn list(State(state): State<Arc<AppState>>) -> Json<Value> {
    let id = model_name(&state);
    let owner = state.worker().manifest["id"].clone();
    Json(
        json!({"object": "list", "data": [{"id": id, "object": "model", "created": now(), "owned_by": owner}]}),
    )
}
