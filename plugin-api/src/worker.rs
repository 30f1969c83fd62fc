//! The loaded worker: validates and executes jobs. Implemented by the plugin.

use crate::{ExtensionRef, JobSink, PluginError, tasks::stop_reason};
use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RBox, ROption, RResult, RStr, RString, RVec},
};

/// A named binary input of a job (an audio upload, an init image), as bytes. The host decodes
/// whatever wire encoding the client used (base64 in JSON, a multipart file) before the plugin
/// sees it; which parameters of a task cross this way is [`crate::tasks::TaskSpec::binary_params`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Input {
    /// The parameter's name, e.g. `audio`.
    pub name: RString,
    /// Its bytes.
    pub data: RVec<u8>,
}

/// One unit of work, as the client submitted it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Job {
    /// The host's id for the job.
    pub id: RString,
    /// The task, one of those the manifest lists.
    pub task: RString,
    /// The job parameters as a JSON object, binary ones taken out (see [`Job::inputs`]).
    pub params_json: RString,
    /// The binary parameters, as bytes.
    pub inputs: RVec<Input>,
    /// When the job must end, in milliseconds since the Unix epoch, if the client set a
    /// deadline. Past it the sink answers [`crate::Flow::Stop`] with
    /// [`crate::StopReason::DEADLINE_EXCEEDED`]; a plugin may also use it to plan (fewer steps).
    pub deadline_unix_ms: ROption<u64>,
}

impl Job {
    /// A job with no binary inputs and no deadline.
    pub fn new(id: &str, task: &str, params_json: &str) -> Self {
        Self {
            id: id.into(),
            task: task.into(),
            params_json: params_json.into(),
            inputs: RVec::new(),
            deadline_unix_ms: ROption::RNone,
        }
    }

    /// Adds a binary input.
    pub fn with_input(mut self, name: &str, data: impl Into<Vec<u8>>) -> Self {
        self.inputs.push(Input {
            name: name.into(),
            data: data.into().into(),
        });
        self
    }

    /// The bytes of binary input `name`, if the job has it.
    pub fn input(&self, name: &str) -> Option<&[u8]> {
        self.inputs
            .iter()
            .find(|input| input.name.as_str() == name)
            .map(|input| input.data.as_slice())
    }
}

/// How a job ended, returned by [`Worker::execute`]. The host turns it into the `end` event.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct JobEnd {
    /// Why the job ended: one of [`crate::tasks::stop_reason`] or a task's own (see
    /// [`crate::tasks::TaskSpec::stop_reasons`]).
    pub stop_reason: RString,
    /// A JSON object merged into the `end` event (usage, speeds, the seed, ...), or empty. Its
    /// standard keys are [`crate::tasks::TaskSpec::end_keys`].
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

    /// A job that ran to its natural end.
    pub fn completed() -> Self {
        Self::new(stop_reason::COMPLETED)
    }

    /// A job that stopped because the sink answered [`crate::Flow::Stop`]; the host reports
    /// the real reason (cancelled or deadline exceeded).
    pub fn cancelled() -> Self {
        Self::new(stop_reason::CANCELLED)
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

/// A loaded worker, as the host sees it. Frozen for all of 2.x: later minors grow through
/// [`Worker::extension`], never by changing this trait. Plugins implement
/// [`crate::PluginWorker`] instead and let [`crate::export_plugin!`] adapt it (catching panics).
#[sabi_trait]
pub trait Worker: Send + Sync {
    /// How many jobs the host may run at once, asked once right after loading (at least 1).
    /// The host runs up to `min(this, --parallel)` concurrent [`Worker::execute`] calls.
    fn max_concurrent_jobs(&self) -> u32;

    /// Checks a job without running it; the host answers 400 on an error.
    ///
    /// Called on a host thread outside the async runtime, from several threads at once and
    /// while jobs execute. It may take as long as checking needs (decoding an upload), but
    /// should not touch the device.
    fn validate(&self, job: &Job) -> RResult<(), PluginError>;

    /// Runs a job to its end, streaming events into `sink`, and returns how it ended.
    ///
    /// Called on a host-owned thread that it may block for as long as the job takes; up to
    /// [`Worker::max_concurrent_jobs`] calls run at once, each on its own thread. The job and
    /// the sink are the plugin's to keep or hand to its own threads; the sink works until this
    /// call returns.
    fn execute(&self, job: Job, sink: JobSink) -> RResult<JobEnd, PluginError>;

    /// The worker's current status. Cheap; called from any thread at any time.
    fn status(&self) -> WorkerStatus;

    /// An optional capability this worker offers by name (see [`crate::extension`]), or
    /// `RNone`. Asked once per name, after loading; the answer stays valid while the worker lives.
    #[sabi(last_prefix_field)]
    fn extension(&self, name: RStr<'_>) -> ROption<ExtensionRef>;
}

/// How the host holds a loaded worker.
pub type WorkerBox = Worker_TO<'static, RBox<()>>;
