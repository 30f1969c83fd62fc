//! The loaded worker: validates and executes jobs. Implemented by the plugin.

use crate::{EventSinkRef, PluginError};
use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RBox, RResult, RStr, RString},
};

/// One unit of work, as the client submitted it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Job {
    /// The host's id for the job.
    pub id: RString,
    /// The task, one of those the manifest lists.
    pub task: RString,
    /// The job parameters as a JSON object, already accepted by [`Worker::validate`].
    pub params_json: RString,
}

/// How a job ended, returned by [`Worker::execute`]. The host turns it into the `end` event.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct JobEnd {
    /// Why the job ended: `completed`, `eos`, `stop_sequence`, `max_tokens`, `cancelled`, ...
    pub stop_reason: RString,
    /// A JSON object merged into the `end` event (usage, speeds, the seed, ...), or empty.
    pub details_json: RString,
}

impl JobEnd {
    /// A job that ended for `stop_reason`, with no details.
    pub fn new(stop_reason: &str) -> Self {
        Self {
            stop_reason: stop_reason.into(),
            details_json: RString::new(),
        }
    }

    /// A job that stopped because the sink answered [`crate::Flow::Stop`].
    pub fn cancelled() -> Self {
        Self::new("cancelled")
    }

    /// Adds details, a JSON object.
    pub fn with_details(mut self, details_json: impl Into<String>) -> Self {
        self.details_json = details_json.into().into();
        self
    }
}

/// What a worker reports about itself at any time.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default, PartialEq)]
pub struct WorkerStatus {
    /// The loaded model's name or path.
    pub model: RString,
    /// Memory the worker holds, in bytes (weights, caches).
    pub memory_bytes: u64,
    /// How full the worker's cache (KV cache, slots) is, 0 to 1.
    pub cache_usage_ratio: f32,
}

/// A loaded worker, as the host sees it. Plugins implement [`crate::PluginWorker`] instead and
/// let [`crate::export_plugin!`] adapt it; that adapter catches panics.
#[sabi_trait]
pub trait Worker: Send + Sync {
    /// Checks a job's parameters without running it; the host answers 400 on an error.
    fn validate(&self, task: RStr<'_>, params_json: RStr<'_>) -> RResult<(), PluginError>;

    /// Runs a job to its end, streaming events into `sink`. Blocks the calling (host-owned)
    /// thread; called for one job at a time.
    fn execute<'a>(&self, job: &Job, sink: EventSinkRef<'a>) -> RResult<JobEnd, PluginError>;

    /// The worker's current status.
    #[sabi(last_prefix_field)]
    fn status(&self) -> WorkerStatus;
}

/// How the host holds a loaded worker.
pub type WorkerBox = Worker_TO<'static, RBox<()>>;
