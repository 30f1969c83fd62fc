//! Test doubles for the host side (an event sink and host services) and the shared test model.

use crate::{LlmWorker, load};
use rbee_plugin_api::{
    Artifact, DeviceSpec, EventSink, EventSink_TO, Flow, HostApi, HostApi_TO, HostApiRef, Job,
    JobEnd, LoadRequest, LogLevel, PluginError, PluginWorker,
    abi_stable::{
        sabi_trait::TD_Opaque,
        std_types::{RArc, ROption, RSlice, RStr, RString},
    },
};
use serde_json::Value;
use std::{cell::Cell, path::PathBuf, sync::OnceLock};

/// The test model's file name, as `cargo xtask models` provisions it.
pub const TEST_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where the test model must be: `$RBEE_MODELS_DIR` or `~/.cache/rbee/models`. Panics with
/// instructions when it is missing, so model tests fail rather than skip.
pub fn model_path() -> PathBuf {
    let dir = std::env::var_os("RBEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/rbee/models")
        });
    let path = dir.join(TEST_MODEL_FILE);
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

/// The worker with the test model, loaded once for all tests (jobs run one at a time).
pub fn worker() -> &'static LlmWorker {
    static WORKER: OnceLock<LlmWorker> = OnceLock::new();
    WORKER.get_or_init(|| load(load_request(&model_path().to_string_lossy(), 2), host()).unwrap())
}

/// A load request for `model` on the CPU.
pub fn load_request(model: &str, threads: u32) -> LoadRequest {
    LoadRequest {
        model: model.into(),
        device: DeviceSpec {
            kind: "cpu".into(),
            ordinal: 0,
        },
        threads,
        options_json: RString::new(),
    }
}

/// Host services that print log lines and use a temporary cache directory.
pub fn host() -> HostApiRef {
    HostApi_TO::from_ptr(RArc::new(TestHost), TD_Opaque)
}

/// Runs a `text-generation` job with `params` on the test worker.
pub fn run(params: Value, sink: &mut RecordingSink) -> Result<JobEnd, PluginError> {
    let job = Job {
        id: "test".into(),
        task: crate::TASK.into(),
        params_json: params.to_string().into(),
    };
    worker().execute(&job, &mut EventSink_TO::from_ptr(sink, TD_Opaque))
}

/// The `details_json` of a job end, parsed.
pub fn details(end: &JobEnd) -> Value {
    serde_json::from_str(&end.details_json).unwrap()
}

#[derive(Clone)]
struct TestHost;

impl HostApi for TestHost {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        eprintln!("[{level:?} {target}] {message}");
    }

    fn cache_dir(&self) -> RString {
        std::env::temp_dir()
            .join("rbee-llm-test-cache")
            .to_string_lossy()
            .as_ref()
            .into()
    }

    fn load_progress(&self, fraction: f32, message: RStr<'_>) {
        eprintln!("[load {:.0}%] {message}", fraction * 100.0);
    }
}

/// An event sink that records what it receives and can cancel on cue.
#[derive(Default)]
pub struct RecordingSink {
    /// `details_json` of every `started` event.
    pub started: Vec<String>,
    /// Every text event, in order.
    pub texts: Vec<(u64, String)>,
    /// Answer [`Flow::Stop`] to the text event that makes this many.
    pub stop_after_texts: Option<usize>,
    /// `is_cancelled` answers true from this poll on (1 = the first).
    pub cancel_at_poll: Option<usize>,
    /// How often `is_cancelled` was called.
    pub polls: Cell<usize>,
}

impl RecordingSink {
    /// All text received, joined.
    pub fn text(&self) -> String {
        self.texts.iter().map(|(_, text)| text.as_str()).collect()
    }
}

impl EventSink for RecordingSink {
    fn started(&mut self, details_json: RStr<'_>) -> Flow {
        self.started.push(details_json.into());
        Flow::Continue
    }

    fn text(&mut self, index: u64, text: RStr<'_>) -> Flow {
        self.texts.push((index, text.into()));
        match self.stop_after_texts {
            Some(n) if self.texts.len() >= n => Flow::Stop,
            _ => Flow::Continue,
        }
    }

    fn progress(&mut self, _step: u64, _total: u64, _preview: ROption<Artifact<'_>>) -> Flow {
        Flow::Continue
    }

    fn artifact(&mut self, _artifact: Artifact<'_>) -> Flow {
        Flow::Continue
    }

    fn embedding(&mut self, _index: u64, _vector: RSlice<'_, f32>) -> Flow {
        Flow::Continue
    }

    fn metrics(&mut self, _metrics_json: RStr<'_>) -> Flow {
        Flow::Continue
    }

    fn custom(&mut self, _event: RStr<'_>, _data_json: RStr<'_>) -> Flow {
        Flow::Continue
    }

    fn is_cancelled(&self) -> bool {
        self.polls.set(self.polls.get() + 1);
        self.cancel_at_poll.is_some_and(|n| self.polls.get() >= n)
    }
}
