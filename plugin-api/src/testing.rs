//! Test doubles for plugins' unit tests (feature `testing`): a sink that records a job's
//! events and can stop it on cue, and host services that log to stderr.
//!
//! ```ignore
//! let recording = RecordingSink::new().stop_after_texts(3);
//! let end = worker.execute(Job::new("t", "echo", r#"{"text": "a b c d"}"#), recording.sink())?;
//! assert_eq!(recording.text(), "a b c ");
//! ```

use crate::{
    Artifact, EventSink, EventSink_TO, ExtensionRef, Flow, HostApi, HostApi_TO, HostApiRef,
    JobSink, LogLevel, StopReason,
};
use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, ROption, RSlice, RStr, RString},
};
use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
};

/// An artifact or preview, copied out of the call.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedArtifact {
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    pub data: Vec<u8>,
    /// Its metadata, a JSON object's text (or empty).
    pub metadata_json: String,
}

impl From<&Artifact<'_>> for RecordedArtifact {
    fn from(artifact: &Artifact<'_>) -> Self {
        Self {
            media_type: artifact.media_type.to_string(),
            data: artifact.data.to_vec(),
            metadata_json: artifact.metadata_json.to_string(),
        }
    }
}

/// One event as the sink received it.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// `started`, with its details' text.
    Started(String),
    /// A piece of text.
    Text(u64, String),
    /// Progress, with the preview if one came.
    Progress(u64, u64, Option<RecordedArtifact>),
    /// A finished file.
    Artifact(RecordedArtifact),
    /// An embedding.
    Embedding(u64, Vec<f32>),
    /// Metrics, as JSON text.
    Metrics(String),
    /// A custom event: its name and its data's text.
    Custom(String, String),
}

#[derive(Default)]
struct Recording {
    events: Mutex<Vec<Recorded>>,
    stop_after_texts: Option<usize>,
    stop_at_poll: Option<usize>,
    polls: AtomicUsize,
    texts: AtomicUsize,
    stop: AtomicU8,
}

/// A sink that records every event. Clones share one recording.
#[derive(Clone, Default)]
pub struct RecordingSink(Arc<Recording>);

impl RecordingSink {
    /// A sink that never stops the job on its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers [`Flow::Stop`] from the text event that makes `n` on.
    pub fn stop_after_texts(self, n: usize) -> Self {
        self.configure(|recording| recording.stop_after_texts = Some(n))
    }

    /// [`EventSink::stop_reason`] answers cancelled from poll `n` on (1 = the first).
    pub fn stop_at_poll(self, n: usize) -> Self {
        self.configure(|recording| recording.stop_at_poll = Some(n))
    }

    fn configure(self, change: impl FnOnce(&mut Recording)) -> Self {
        let mut recording = Arc::try_unwrap(self.0).unwrap_or_else(|_| {
            panic!("configure a RecordingSink before handing it out");
        });
        change(&mut recording);
        Self(Arc::new(recording))
    }

    /// The host-side handle a worker's `execute` takes.
    pub fn sink(&self) -> JobSink {
        EventSink_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }

    /// Stops the job from now on, as `DELETE /v1/jobs/{id}` would.
    pub fn cancel(&self) {
        self.0.stop.store(StopReason::CANCELLED.0, Ordering::SeqCst);
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<Recorded> {
        self.lock().clone()
    }

    /// Every text event, in order.
    pub fn texts(&self) -> Vec<(u64, String)> {
        self.filter(|event| match event {
            Recorded::Text(index, text) => Some((*index, text.clone())),
            _ => None,
        })
    }

    /// All text received, joined.
    pub fn text(&self) -> String {
        self.texts().into_iter().map(|(_, text)| text).collect()
    }

    /// The details of every `started` event.
    pub fn started(&self) -> Vec<String> {
        self.filter(|event| match event {
            Recorded::Started(details) => Some(details.clone()),
            _ => None,
        })
    }

    /// Every `(step, total)` of the progress events.
    pub fn progress(&self) -> Vec<(u64, u64)> {
        self.filter(|event| match event {
            Recorded::Progress(step, total, _) => Some((*step, *total)),
            _ => None,
        })
    }

    /// Every preview that came with a progress event.
    pub fn previews(&self) -> Vec<RecordedArtifact> {
        self.filter(|event| match event {
            Recorded::Progress(_, _, preview) => preview.clone(),
            _ => None,
        })
    }

    /// Every finished file.
    pub fn artifacts(&self) -> Vec<RecordedArtifact> {
        self.filter(|event| match event {
            Recorded::Artifact(artifact) => Some(artifact.clone()),
            _ => None,
        })
    }

    /// Every embedding.
    pub fn embeddings(&self) -> Vec<(u64, Vec<f32>)> {
        self.filter(|event| match event {
            Recorded::Embedding(index, vector) => Some((*index, vector.clone())),
            _ => None,
        })
    }

    /// The data of every custom event named `name`.
    pub fn custom(&self, name: &str) -> Vec<String> {
        self.filter(|event| match event {
            Recorded::Custom(event, data) if event == name => Some(data.clone()),
            _ => None,
        })
    }

    /// How often [`EventSink::stop_reason`] was asked.
    pub fn polls(&self) -> usize {
        self.0.polls.load(Ordering::SeqCst)
    }

    fn filter<T>(&self, pick: impl Fn(&Recorded) -> Option<T>) -> Vec<T> {
        self.lock().iter().filter_map(pick).collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Recorded>> {
        self.0.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, event: Recorded) -> Flow {
        let is_text = matches!(event, Recorded::Text(..));
        self.lock().push(event);
        let texts = self
            .0
            .texts
            .fetch_add(usize::from(is_text), Ordering::SeqCst)
            + usize::from(is_text);
        if self.0.stop_after_texts.is_some_and(|n| texts >= n) {
            self.cancel();
        }
        self.flow()
    }

    fn flow(&self) -> Flow {
        match self.0.stop.load(Ordering::SeqCst) {
            0 => Flow::Continue,
            _ => Flow::Stop,
        }
    }
}

impl EventSink for RecordingSink {
    fn started(&self, details_json: RStr<'_>) -> Flow {
        self.record(Recorded::Started(details_json.into()))
    }

    fn text(&self, index: u64, text: RStr<'_>) -> Flow {
        self.record(Recorded::Text(index, text.into()))
    }

    fn progress(&self, step: u64, total: u64, preview: ROption<Artifact<'_>>) -> Flow {
        let preview = preview.as_ref().map(RecordedArtifact::from).into_option();
        self.record(Recorded::Progress(step, total, preview))
    }

    fn artifact(&self, artifact: Artifact<'_>) -> Flow {
        self.record(Recorded::Artifact((&artifact).into()))
    }

    fn embedding(&self, index: u64, vector: RSlice<'_, f32>) -> Flow {
        self.record(Recorded::Embedding(index, vector.to_vec()))
    }

    fn metrics(&self, metrics_json: RStr<'_>) -> Flow {
        self.record(Recorded::Metrics(metrics_json.into()))
    }

    fn custom(&self, event: RStr<'_>, data_json: RStr<'_>) -> Flow {
        self.record(Recorded::Custom(event.into(), data_json.into()))
    }

    fn stop_reason(&self) -> StopReason {
        let polls = self.0.polls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.0.stop_at_poll.is_some_and(|n| polls >= n) {
            self.cancel();
        }
        StopReason(self.0.stop.load(Ordering::SeqCst))
    }
}

/// Host services for tests: log lines go to stderr, load progress is recorded, and the cache
/// directory is the one given (a temporary one by default).
#[derive(Clone)]
pub struct TestHost {
    cache_dir: PathBuf,
    progress: Arc<Mutex<Vec<f32>>>,
}

impl Default for TestHost {
    fn default() -> Self {
        Self::with_cache_dir(std::env::temp_dir().join("rbee-plugin-test-cache"))
    }
}

impl TestHost {
    /// Host services whose cache directory is `cache_dir`.
    pub fn with_cache_dir(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            progress: Arc::default(),
        }
    }

    /// The handle a plugin's `load` takes.
    pub fn api(&self) -> HostApiRef {
        HostApi_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }

    /// Every load-progress fraction reported so far.
    pub fn progress(&self) -> Vec<f32> {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl HostApi for TestHost {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        eprintln!("[{level:?} {target}] {message}");
    }

    fn cache_dir(&self) -> RString {
        self.cache_dir.to_string_lossy().as_ref().into()
    }

    fn load_progress(&self, fraction: f32, message: RStr<'_>) {
        eprintln!("[load {:.0}%] {message}", fraction * 100.0);
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fraction);
    }

    fn extension(&self, _name: RStr<'_>) -> ROption<ExtensionRef> {
        ROption::RNone
    }
}
