//! The HTTP API: `fn app(state) -> Router`, the shared state, and the handlers' modules.

mod error;
mod jobs;
mod openai;
mod status;
mod stream;

pub use error::ApiError;

use crate::{jobs::Jobs, readiness::Readiness};
use axum::{
    Router,
    routing::{get, post},
};
use rbee_plugin_api::WorkerBox;
use serde_json::Value;
use std::sync::{Arc, OnceLock};

/// What every handler can reach.
pub struct AppState {
    /// The plugin's manifest, as JSON for `/v1/info`.
    pub manifest: Value,
    /// The tasks the plugin serves.
    pub tasks: Vec<String>,
    /// The model asked for (empty: the plugin's default).
    pub model: String,
    /// The device, as given to the plugin.
    pub device: String,
    /// Loading, ready, failed or draining.
    pub readiness: Arc<Readiness>,
    /// The worker, once loaded.
    pub worker: OnceLock<Arc<WorkerBox>>,
    /// The queue and the job registry.
    pub jobs: Arc<Jobs>,
}

/// The router with every route of the API.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(status::health))
        .route("/ready", get(status::ready))
        .route("/v1/info", get(status::info))
        .route("/v1/jobs", post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/jobs/{id}/stream", get(stream::stream))
        .merge(openai::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}
