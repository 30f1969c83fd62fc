//! Liveness, readiness and what this host serves.

use super::AppState;
use crate::worker::readiness::State;
use axum::{
    Json,
    extract::State as Extract,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde_json::{Value, json};
use std::sync::Arc;

/// `GET /health`: 200 whenever the process is alive, also while loading.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: 200 once the model is loaded; 503 with state and progress before that,
/// after a failure, and while draining.
pub async fn ready(Extract(state): Extract<Arc<AppState>>) -> (StatusCode, Json<State>) {
    let current = state.worker().readiness.state();
    let status = match current {
        State::Ready => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(current))
}

/// `GET /v1/info`: the plugin's manifest, the model, the device, the state, the queue and the
/// slots (how many jobs run at once; 0 until the model is loaded).
pub async fn info(Extract(state): Extract<Arc<AppState>>) -> Json<Value> {
    let served = state.worker();
    let (waiting, running) = served.jobs.counts();
    let worker = served.readiness.worker().map(|worker| {
        let status = worker.status();
        json!({
            "model": status.model.as_str(),
            "memory_bytes": status.memory_bytes,
            "cache_usage_ratio": status.cache_usage_ratio,
        })
    });
    Json(json!({
        "plugin": served.manifest,
        "model": served.model,
        "device": served.device,
        "state": served.readiness.state(),
        "worker": worker,
        "queue": {"waiting": waiting, "running": running},
        "slots": served.slots(),
    }))
}

/// `GET /metrics`: Prometheus / OpenMetrics text.
pub async fn metrics(Extract(state): Extract<Arc<AppState>>) -> impl IntoResponse {
    let served = state.worker();
    let (waiting, running) = served.jobs.counts();
    let cache_usage = served
        .readiness
        .worker()
        .map_or(0.0, |worker| worker.status().cache_usage_ratio as f64);
    let text = served.metrics.render(waiting, running, cache_usage);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}
