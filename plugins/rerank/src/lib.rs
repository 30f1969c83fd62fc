//! `rerank-<backend>`: scores documents against a query with candle, serving the standard
//! `rerank` task (and so the host's `/v1/rerank`).
//!
//! Built once per backend (`--features cpu|cuda|metal`). Models are Hugging Face layout
//! directories (`config.json`, `tokenizer.json`, `model.safetensors`) or hub repositories:
//!
//! - cross-encoders, `BertForSequenceClassification` (ms-marco-MiniLM-L-6-v2) and
//!   `XLMRobertaForSequenceClassification` (bge-reranker-base): the query and each document
//!   read together; the score is the relevance probability (sigmoid of one logit, or softmax of
//!   the second of two);
//! - bi-encoders, any other BERT (all-MiniLM-L6-v2): query and documents embedded apart (mean
//!   pooled, normalised), the score being their cosine.
//!
//! Load options (`--plugin-options`): `{"kind": "cross-encoder"|"bi-encoder", "batch": N,
//! "max_tokens": N}`; the kind is detected from `config.json` when absent.
//!
//! A document longer than the window (the model's positions, at most 512 tokens) is cut to
//! fit; the query is kept whole, and a query that leaves no room is refused. Documents are
//! scored in batches of similar length (padded to the longest pair, masked), longest first.

mod batch;
mod cross;
mod model;
mod options;
mod params;
#[cfg(any(test, feature = "test-support"))]
pub mod tiny;
mod worker;

#[cfg(test)]
mod tests;

use options::LoadOptions;
use rbee_plugin_api::{
    HostApiRef, LoadRequest, LogLevel, Manifest, PluginError, export_plugin, tasks,
};
use std::path::Path;
use worker::RerankWorker;

pub use rbee_candle_device::BACKEND;

/// The model loaded when the host names none.
pub const DEFAULT_MODEL: &str = "cross-encoder/ms-marco-MiniLM-L-6-v2";

/// The plugin's manifest.
pub fn manifest() -> Manifest {
    Manifest::new(
        "rerank",
        BACKEND,
        env!("CARGO_PKG_VERSION"),
        &[tasks::rerank::TASK],
    )
    .description(
        "Reranking with BERT / XLM-RoBERTa cross-encoders (ms-marco-MiniLM, bge-reranker) or BERT sentence embeddings (candle)",
    )
    .params_schema(params::schema())
    .default_model(DEFAULT_MODEL)
}

/// Loads the reranker the host asks for.
pub fn load(request: LoadRequest, host: HostApiRef) -> Result<RerankWorker, PluginError> {
    let options = LoadOptions::parse(&request.options_json)?;
    let device = rbee_candle_device::open("rerank", &request.device)
        .map_err(rbee_plugin_kit::error::device)?;
    let model = match request.model.as_str() {
        "" => DEFAULT_MODEL,
        model => model,
    };
    let progress = |fraction: f32, message: &str| host.load_progress(fraction, message.into());
    let files = rbee_hub::repository::safetensors_model(
        model,
        "a reranker",
        Path::new(host.cache_dir().as_str()),
        &progress,
    )?;
    let reranker = model::Reranker::load(&files, &options, &device, &progress)?;
    let message = format!(
        "loaded {model} as a {:?} with a window of {} tokens on {}",
        reranker.kind(),
        reranker.window(),
        request.device.kind
    );
    host.log(
        LogLevel::Info,
        module_path!().into(),
        message.as_str().into(),
    );
    Ok(RerankWorker::new(model.to_string(), reranker))
}

export_plugin!(manifest: manifest, load: load);
