//! The shared test model and worker, for the crate's tests and the benchmark example. The host
//! side (an event sink, host services) is `rbee_plugin_api::testing`'s.

pub use crate::cpu_transformer::tiny_gguf::Tiny;

use crate::{LlmWorker, TASK, load};
use rbee_plugin_api::{
    Job, JobEnd, LoadRequest, PluginError, PluginWorker,
    testing::{RecordingSink, TestHost},
};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

/// The test model's file name, as `cargo xtask models` provisions it.
pub const TEST_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where the test model must be: `$RBEE_MODELS_DIR` or `~/.cache/rbee/models`. Panics with
/// instructions when it is missing, so model tests fail rather than skip.
pub fn model_path() -> PathBuf {
    provisioned(TEST_MODEL_FILE)
}

/// The provisioned model file `name` in `$RBEE_MODELS_DIR` or `~/.cache/rbee/models`; panics
/// with instructions when it is missing.
pub fn provisioned(name: &str) -> PathBuf {
    let dir = std::env::var_os("RBEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/rbee/models")
        });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "the test model is missing at {}: run `cargo xtask models` to provision it",
        path.display()
    );
    path
}

/// The test model with its weight matrices in `format` (`Q4_1` is the file itself; `Q4_0` and
/// `Q8_0` are requantized copies written next to it on first use).
pub fn model_in_format(format: candle_core::quantized::GgmlDType) -> PathBuf {
    let original = model_path();
    if format == candle_core::quantized::GgmlDType::Q4_1 {
        return original;
    }
    let copy = original.with_file_name(format!("SmolLM2-135M-Instruct.{format:?}.gguf"));
    if !copy.is_file() {
        crate::requantize::write_requantized(&original, &copy, format)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", copy.display()));
    }
    copy
}

/// Loads the model at `path` on the CPU with `threads` compute threads.
pub fn load_worker(path: &Path, threads: u32) -> LlmWorker {
    load_worker_with(path, threads, "")
}

/// [`load_worker`] with plugin options (`--plugin-options`' JSON).
pub fn load_worker_with(path: &Path, threads: u32, options_json: &str) -> LlmWorker {
    let request = LoadRequest {
        threads,
        options_json: options_json.into(),
        ..LoadRequest::cpu(&path.to_string_lossy())
    };
    load(request, TestHost::default().api())
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

/// The worker with the test model, loaded once for all tests (jobs run one at a time).
pub fn worker() -> &'static LlmWorker {
    static WORKER: OnceLock<LlmWorker> = OnceLock::new();
    WORKER.get_or_init(|| load_worker(&model_path(), 2))
}

/// Runs a `text-generation` job with `params` on the test worker.
pub fn run(params: Value, sink: &RecordingSink) -> Result<JobEnd, PluginError> {
    worker().execute(Job::new("test", TASK, &params.to_string()), sink.sink())
}

/// The `details_json` of a job end, parsed.
pub fn details(end: &JobEnd) -> Value {
    serde_json::from_str(&end.details_json).unwrap()
}
