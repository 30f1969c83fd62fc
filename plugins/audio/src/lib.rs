//! rbee-host worker plugin for speech-to-text with candle's Whisper: Hugging Face and
//! CTranslate2 (faster-whisper) models, from a local directory or the hub, audio decoded, resampled and turned into
//! log-mel features in Rust, segments with timestamps; on cpu, cuda or metal.
//!
//! The plugin entry points are [`manifest`] and [`load`], exported with
//! [`rbee_plugin_api::export_plugin!`]. The same functions serve in-process callers (tests,
//! benchmarks): `load` returns an [`AudioWorker`], whose [`PluginWorker::execute`] runs a job.

mod audio;
mod candle_decoder;
mod compression;
mod cpu_decoder;
mod cpu_encoder;
mod ct2;
mod decode;
mod decoder;
mod encoder;
mod error;
mod matmul;
mod mel;
mod model;
mod params;
mod source;
mod token_text;
mod vector_math;
mod weights;
mod worker;

/// Test doubles, the test model and clips, for the crate's tests and the benchmark example.
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub use error::AudioError;
pub use rbee_candle_device::BACKEND;
pub use worker::AudioWorker;

use rbee_plugin_api::{
    HostApiRef, LoadRequest, LogLevel, Manifest, PluginError, PluginWorker, export_plugin,
    tasks::transcription::TASK,
};
use rbee_plugin_kit::source::ModelSource;
use serde_json::Value;
use std::path::PathBuf;

/// The model loaded when the request names none: Whisper base (multilingual, 74M parameters)
/// in CTranslate2 float16 layout, as faster-whisper uses it.
pub const DEFAULT_MODEL: &str = "Systran/faster-whisper-base";

/// The longest audio a job may send, in seconds, unless the load option `max_audio_seconds`
/// says otherwise.
pub const MAX_AUDIO_SECONDS: f64 = 3600.0;

const LOG_TARGET: &str = "rbee_plugin_audio";

/// Describes the plugin: `audio-<backend>`, serving `transcription`. Touches no device.
pub fn manifest() -> Manifest {
    Manifest::new("audio", BACKEND, env!("CARGO_PKG_VERSION"), &[TASK])
        .description(
            "Speech-to-text with candle Whisper: Hugging Face and CTranslate2 (faster-whisper) models",
        )
        .params_schema(params::schema())
        .default_model(DEFAULT_MODEL)
}

/// Loads the Whisper model named in `request` (a local directory, or `org/repo` on the hub in
/// Hugging Face or CTranslate2 layout; empty means [`DEFAULT_MODEL`]) onto the requested device
/// and returns the worker. Hub models are cached in the host's cache dir; `HF_HUB_OFFLINE`
/// keeps to that cache. Load options (a JSON object): `max_audio_seconds` (default
/// [`MAX_AUDIO_SECONDS`]).
pub fn load(request: LoadRequest, host: HostApiRef) -> Result<AudioWorker, PluginError> {
    let max_audio_seconds = max_audio_seconds(&request.options_json)?;
    let reference = match request.model.as_str() {
        "" => DEFAULT_MODEL,
        named => named,
    };
    let device = rbee_candle_device::open("audio", &request.device).map_err(AudioError::Device)?;
    host.load_progress(0.0, "locating the model".into());
    let progress =
        |fraction: f32, message: &str| host.load_progress(fraction * 0.5, message.into());
    let path = source::resolve(
        &ModelSource::parse(reference),
        &PathBuf::from(host.cache_dir().as_str()),
        rbee_hub::offline(),
        &progress,
    )?;
    host.load_progress(0.5, format!("loading {}", path.display()).as_str().into());
    let loaded = model::load(&path, &device)?;
    let worker = AudioWorker::new(loaded, reference.to_string(), max_audio_seconds);
    host.log(
        LogLevel::Info,
        LOG_TARGET.into(),
        format!(
            "loaded {}: {} MB, audio up to {max_audio_seconds} s per job",
            request.model,
            worker.status().memory_bytes / 1_000_000
        )
        .as_str()
        .into(),
    );
    host.load_progress(1.0, "model loaded".into());
    Ok(worker)
}

fn max_audio_seconds(options_json: &str) -> Result<f64, PluginError> {
    let bad = |message: &str| {
        PluginError::new(
            rbee_plugin_api::error_code::INVALID_PARAMS,
            format!("plugin options: {message}"),
        )
    };
    if options_json.trim().is_empty() {
        return Ok(MAX_AUDIO_SECONDS);
    }
    let options: Value =
        serde_json::from_str(options_json).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let Value::Object(options) = options else {
        return Err(bad("must be a JSON object"));
    };
    if let Some(unknown) = options.keys().find(|k| *k != "max_audio_seconds") {
        return Err(bad(&format!(
            "unknown option '{unknown}' (known: max_audio_seconds)"
        )));
    }
    match options.get("max_audio_seconds") {
        None => Ok(MAX_AUDIO_SECONDS),
        Some(value) => value
            .as_f64()
            .filter(|s| *s > 0.0)
            .ok_or_else(|| bad("max_audio_seconds must be a positive number")),
    }
}

export_plugin!(manifest: manifest, load: load);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{
        clip, clip_audio, hub_snapshot, normalise, run_on, write_hugging_face_layout,
    };
    use rbee_plugin_api::{
        abi_stable::std_types::RString,
        tasks::transcription::param,
        testing::{RecordingSink, TestHost},
    };

    #[test]
    fn the_manifest_names_kind_backend_and_task() {
        let manifest = manifest();
        assert_eq!(manifest.id.as_str(), "audio-cpu");
        assert_eq!(
            (manifest.kind.as_str(), manifest.backend.as_str()),
            ("audio", "cpu")
        );
        assert_eq!(manifest.tasks.as_slice(), &[RString::from(TASK)]);
        assert_eq!(manifest.default_model.as_str(), DEFAULT_MODEL);
        assert_eq!(
            ModelSource::parse(DEFAULT_MODEL),
            ModelSource::Hub {
                repo: DEFAULT_MODEL.into(),
                file: None
            }
        );
        let schema: Value = serde_json::from_str(&manifest.params_schema_json).unwrap();
        assert_eq!(schema["required"][0], param::AUDIO);
    }

    #[test]
    fn load_options_are_checked() {
        assert_eq!(max_audio_seconds("").unwrap(), MAX_AUDIO_SECONDS);
        assert_eq!(
            max_audio_seconds(r#"{"max_audio_seconds": 60}"#).unwrap(),
            60.0
        );
        assert!(max_audio_seconds(r#"{"max_audio_seconds": -1}"#).is_err());
        assert!(max_audio_seconds(r#"{"beam": 5}"#).is_err());
    }

    #[test]
    fn loading_a_missing_model_is_a_model_load_error_naming_the_path() {
        let error = load(
            LoadRequest::cpu("/nonexistent/rbee/whisper"),
            TestHost::default().api(),
        )
        .err()
        .unwrap();
        assert_eq!(error.code.as_str(), rbee_plugin_api::error_code::MODEL_LOAD);
        assert!(
            error.message.contains("/nonexistent/rbee/whisper"),
            "{error}"
        );
    }

    #[test]
    fn a_hub_reference_in_hugging_face_layout_loads_from_the_host_s_cache() {
        let cache = tempfile::tempdir().unwrap();
        write_hugging_face_layout(&hub_snapshot(cache.path(), "local/whisper-tiny.en"));
        let worker = load(
            LoadRequest::cpu("local/whisper-tiny.en"),
            TestHost::with_cache_dir(cache.path()).api(),
        )
        .unwrap();
        assert_eq!(worker.status().model.as_str(), "local/whisper-tiny.en");
        let sink = RecordingSink::new();
        let audio = clip_audio("hello_world");
        run_on(&worker, &audio, serde_json::json!({}), &sink).unwrap();
        assert_eq!(normalise(&sink.text()), normalise(&clip("hello_world").1));
    }
}
