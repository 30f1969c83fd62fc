//! Liveness, readiness and what this host serves.

use super::AppState;
use crate::worker::{WorkerState, readiness::State};
use axum::{
    Json,
    extract::State as Extract,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde_json::{Value, json};
use std::sync::Arc;

/// `GET /health`: 200 whenever the process is alive, also while loading.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "operations",
    responses((status = 200, description = "Alive", body = ref("#/components/schemas/Health"))),
)]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: 200 once every pinned model is loaded; 503 with the state (and load progress)
/// of the first that is not, and while draining. `models` gives each model's state.
#[utoipa::path(
    get,
    path = "/ready",
    operation_id = "ready",
    tag = "operations",
    responses(
        (status = 200, description = "Every pinned model is loaded", body = ref("#/components/schemas/Readiness")),
        (status = 503, description = "Loading, draining or failed", body = ref("#/components/schemas/Readiness")),
    ),
)]
pub async fn ready(Extract(state): Extract<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let fleet = state.fleet();
    let current = fleet.state();
    let status = match current {
        State::Ready => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut body = json!(current);
    body["models"] = fleet
        .models()
        .iter()
        .map(|model| {
            (
                model.id().to_string(),
                json!(model.readiness.state().word()),
            )
        })
        .collect();
    (status, Json(body))
}

/// `GET /v1/info`: every model as `GET /v1/models/{id}` shows it plus its plugin's
/// `params_schema`, under `models`; and at the top, for the first model (the only one with
/// `--plugin`): the plugin's manifest, the model, the device, the state, the loaded worker's
/// figures, the queue and the slots.
#[utoipa::path(
    get,
    path = "/v1/info",
    operation_id = "info",
    tag = "models",
    responses((status = 200, description = "What this host serves", body = ref("#/components/schemas/Info"))),
)]
pub async fn info(Extract(state): Extract<Arc<AppState>>) -> Json<Value> {
    let models = state.fleet().models();
    let mut info = models
        .first()
        .map_or_else(|| json!({}), |first| model_info(first));
    info["models"] = models
        .iter()
        .map(|model| {
            let mut details = model.details();
            details["params_schema"] = model.manifest["params_schema"].clone();
            details
        })
        .collect();
    Json(info)
}

/// One model's fields in `/v1/info`.
fn model_info(served: &WorkerState) -> Value {
    let (waiting, running) = served.jobs.counts();
    let worker = served.readiness.worker().map(|worker| {
        let status = worker.status();
        json!({
            "model": status.model.as_str(),
            "memory_bytes": status.memory_bytes,
            "cache_usage_ratio": status.cache_usage_ratio,
        })
    });
    json!({
        "id": served.id(),
        "plugin": served.manifest,
        "model": served.config.model,
        "device": served.device.to_string(),
        "state": served.readiness.state(),
        "worker": worker,
        "queue": {"waiting": waiting, "running": running},
        "slots": served.slots(),
    })
}

/// `GET /metrics`: Prometheus / OpenMetrics text, every model's series.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String)),
)]
pub async fn metrics(Extract(state): Extract<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.fleet().render_metrics(),
    )
}
