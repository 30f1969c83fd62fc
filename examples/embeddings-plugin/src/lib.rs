//! `embeddings-<backend>`: sentence embeddings with candle's BERT (all-MiniLM-L6-v2 and its kin),
//! an rbee-host worker type built out of tree, against `rbee-plugin-api` alone.
//!
//! The host knows nothing about this worker type: it loads `embeddings-cpu.so` from a plugins
//! dir, publishes the manifest below, and forwards the `embedding` events to clients as SSE.
//! Because the plugin serves the standard `embedding` task, the host's `/v1/embeddings` route
//! works with it too.

mod device;
mod model;
mod params;
mod worker;

#[cfg(test)]
mod tests;

use rbee_plugin_api::{
    HostApiRef, LoadRequest, LogLevel, Manifest, PluginError, error_code, export_plugin, tasks,
};
use std::path::Path;
use worker::EmbeddingsWorker;

/// Where this plugin's log lines appear in the host's log.
const LOG_TARGET: &str = "rbee_plugin_embeddings";

/// Describes the plugin: `embeddings-<backend>`, serving `embedding`. Touches no device.
fn manifest() -> Manifest {
    Manifest::new(
        "embeddings",
        device::BACKEND,
        env!("CARGO_PKG_VERSION"),
        &[tasks::embedding::TASK],
    )
    .description(
        "Sentence embeddings with candle's BERT (all-MiniLM-L6-v2): mean pooled, L2-normalised",
    )
    .params_schema(params::SCHEMA)
}

/// Loads the BERT model in the directory `request.model` onto the requested device.
fn load(request: LoadRequest, host: HostApiRef) -> Result<EmbeddingsWorker, PluginError> {
    if request.model.is_empty() {
        return Err(PluginError::new(
            error_code::MODEL_LOAD,
            "embeddings needs a model: pass --model DIR, a directory holding config.json, \
             model.safetensors and tokenizer.json (e.g. all-MiniLM-L6-v2)",
        ));
    }
    if request.threads > 0 {
        host.log(
            LogLevel::Info,
            LOG_TARGET.into(),
            "--threads is not applied: candle sizes its CPU pool from RAYON_NUM_THREADS".into(),
        );
    }
    let device = device::open(&request.device)?;
    let progress = |fraction: f32, message: &str| host.load_progress(fraction, message.into());
    let model = model::Embedder::load(Path::new(request.model.as_str()), &device, &progress)?;
    let message = format!(
        "loaded {} ({} dimensions) on {}",
        request.model,
        model.dimensions(),
        request.device.kind
    );
    host.log(LogLevel::Info, LOG_TARGET.into(), message.as_str().into());
    Ok(EmbeddingsWorker::new(request.model.to_string(), model))
}

export_plugin!(manifest: manifest, load: load);
