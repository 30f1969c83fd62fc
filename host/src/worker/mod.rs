//! One served worker: the plugin's manifest, the model and device it runs on, its life cycle
//! (which holds the loaded worker), its job queue and its metrics.

pub mod readiness;

use crate::{jobs::Jobs, services::metrics::Metrics};
use rbee_plugin_api::Manifest;
use readiness::Readiness;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

/// Everything that belongs to one worker, shared by its handlers, engine threads and heartbeats.
pub struct WorkerState {
    /// The plugin's manifest, as JSON for `/v1/info`.
    pub manifest: Value,
    /// The tasks the plugin serves.
    pub tasks: Vec<String>,
    /// The model asked for (empty: the plugin's default).
    pub model: String,
    /// The device, as given to the plugin.
    pub device: String,
    /// Loading, ready (with the worker), failed or draining.
    pub readiness: Arc<Readiness>,
    /// The queue and the job registry.
    pub jobs: Arc<Jobs>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// How many jobs run at once, known once the model is loaded.
    slots: OnceLock<usize>,
}

impl WorkerState {
    /// A worker of the plugin `manifest` describes, still loading `model` onto `device`, whose
    /// queue holds up to `queue_size` waiting jobs.
    pub fn new(
        manifest: &Manifest,
        model: String,
        device: String,
        queue_size: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            manifest: manifest_json(manifest),
            tasks: manifest.tasks.iter().map(|t| t.to_string()).collect(),
            model,
            device,
            readiness: Arc::new(Readiness::default()),
            jobs: Arc::new(Jobs::new(queue_size).with_metrics(metrics.clone())),
            metrics,
            slots: OnceLock::new(),
        }
    }

    /// How many jobs run at once (the engine threads serving the loaded worker); 0 until the
    /// model is loaded.
    pub fn slots(&self) -> usize {
        self.slots.get().copied().unwrap_or(0)
    }

    /// Records how many jobs run at once, when the model is loaded; later calls change nothing.
    pub fn set_slots(&self, slots: usize) {
        let _ = self.slots.set(slots);
    }
}

/// The manifest as `/v1/info` shows it.
fn manifest_json(manifest: &Manifest) -> Value {
    json!({
        "id": manifest.id.as_str(),
        "kind": manifest.kind.as_str(),
        "backend": manifest.backend.as_str(),
        "version": manifest.version.as_str(),
        "api_version": manifest.api_version.as_str(),
        "description": manifest.description.as_str(),
        "tasks": manifest.tasks.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "params_schema": serde_json::from_str::<Value>(&manifest.params_schema_json).unwrap_or_default(),
        "default_model": manifest.default_model.as_str(),
        "capabilities": manifest.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
    })
}
