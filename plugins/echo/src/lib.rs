//! `echo-cpu`: a test worker that streams its input back word by word.
//!
//! It exists to exercise the host: switches make it sleep between words, fail, panic or crash
//! its process, at load time or in the middle of a job, and run several jobs at once. It is a
//! real plugin built like any other.

mod crash;
mod params;

use params::{Crash, EchoParams, LoadOptions};
use rbee_plugin_api::{
    EventSinkExt, HostApiRef, Job, JobEnd, JobSink, LoadRequest, LogLevel, Manifest, PluginError,
    PluginWorker, WorkerStatus, export_plugin,
};
use serde_json::json;
use std::{thread, time::Duration};

/// The one task this worker serves.
pub const TASK: &str = "echo";

/// The echo worker. Holds the name of the "model" it was asked to load and how many jobs it
/// runs at once.
pub struct Echo {
    model: String,
    parallel: u32,
    crash: Option<(String, Crash)>,
}

fn manifest() -> Manifest {
    Manifest::new("echo", "cpu", env!("CARGO_PKG_VERSION"), &[TASK])
        .description(
            "Streams its input back word by word; can sleep, fail, panic or crash on request",
        )
        .params_schema(EchoParams::schema())
        .default_model("echo")
}

fn load(request: LoadRequest, host: HostApiRef) -> Result<Echo, PluginError> {
    let options = LoadOptions::parse(&request.options_json)?;
    let steps = 10;
    for step in 1..=steps {
        thread::sleep(Duration::from_millis(options.load_delay_ms / steps));
        host.load_progress(step as f32 / steps as f32, "pretending to load".into());
    }
    if options.panic_on_load {
        panic!("echo was asked to panic while loading");
    }
    if let Some(message) = options.fail_load {
        return Err(PluginError::new(
            rbee_plugin_api::error_code::MODEL_LOAD,
            message,
        ));
    }
    let model = match request.model.as_str() {
        "" => "echo".to_string(),
        name => name.to_string(),
    };
    host.log(
        LogLevel::Info,
        "echo".into(),
        format!("loaded model '{model}'").as_str().into(),
    );
    Ok(Echo {
        model,
        parallel: options.parallel,
        crash: options.crash_at_word.map(|word| (word, options.crash_with)),
    })
}

impl PluginWorker for Echo {
    fn max_concurrent_jobs(&self) -> u32 {
        self.parallel
    }

    fn validate(&self, job: &Job) -> Result<(), PluginError> {
        if job.task != TASK {
            return Err(PluginError::unsupported_task(&job.task, &[TASK]));
        }
        EchoParams::parse(&job.params_json).map(drop)
    }

    fn execute(&self, job: Job, sink: JobSink) -> Result<JobEnd, PluginError> {
        let params = EchoParams::parse(&job.params_json)?;
        let words = params.text.split_inclusive(' ').count();
        let started =
            json!({"words": words, "deadline_unix_ms": job.deadline_unix_ms.into_option()});
        sink.started(started.to_string().as_str().into());
        if !params.from_thread {
            return stream_words(&params, &sink, self.crash.clone());
        }
        let crash = self.crash.clone();
        let streamed = thread::spawn(move || stream_words(&params, &sink, crash)).join();
        streamed.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            model: self.model.as_str().into(),
            memory_bytes: 0,
            cache_usage_ratio: 0.0,
        }
    }
}

/// Streams the words of `params.text` into `sink`, misbehaving as `params` ask, and crashing
/// at `crash`'s word. A stopped job ends cancelled, saying which stop reason it saw.
fn stream_words(
    params: &EchoParams,
    sink: &JobSink,
    crash: Option<(String, Crash)>,
) -> Result<JobEnd, PluginError> {
    let words: Vec<&str> = params.text.split_inclusive(' ').collect();
    for (index, word) in words.iter().enumerate() {
        if let Some((at, how)) = &crash
            && word.trim() == at
        {
            crash::crash(*how);
        }
        if params.panic_after == Some(index) {
            panic!("echo was asked to panic after {index} words");
        }
        if params.fail_after == Some(index) {
            return Err(PluginError::internal(format!(
                "echo was asked to fail after {index} words"
            )));
        }
        if sleep_unless_cancelled(sink, params.delay_ms)
            || sink.text(index as u64, (*word).into()).is_stop()
        {
            let seen = json!({"stop_reason_seen": sink.stop_reason().as_str()});
            return Ok(JobEnd::cancelled().with_details(seen.to_string()));
        }
    }
    Ok(JobEnd::completed().with_details(json!({"words": words.len()}).to_string()))
}

/// Sleeps `delay_ms` in short slices; true if the job was cancelled meanwhile.
fn sleep_unless_cancelled(sink: &JobSink, delay_ms: u64) -> bool {
    let mut left = delay_ms;
    while left > 0 {
        if sink.is_cancelled() {
            return true;
        }
        let slice = left.min(10);
        thread::sleep(Duration::from_millis(slice));
        left -= slice;
    }
    sink.is_cancelled()
}

export_plugin!(manifest: manifest, load: load);
