//! Events a plugin streams while it executes a job, and the host's sink that receives them.

use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RArc, ROption, RSlice, RStr},
};

/// What the host wants after an event: go on, or stop the job.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// The job was cancelled, its deadline passed or its client went away: return within one
    /// step or token, with [`crate::JobEnd::cancelled`]. [`EventSink::stop_reason`] says why.
    Stop,
}

impl Flow {
    /// Whether the plugin should stop.
    pub fn is_stop(self) -> bool {
        self == Flow::Stop
    }
}

/// Why the host asked a job to stop, from [`EventSink::stop_reason`].
///
/// A number rather than an enum so that a later 2.x minor can add reasons: a plugin treats a
/// value it does not know like [`StopReason::CANCELLED`].
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReason(pub u8);

impl StopReason {
    /// Nobody asked the job to stop.
    pub const NONE: Self = Self(0);
    /// A client cancelled the job (`DELETE /v1/jobs/{id}`, a disconnect, or the host draining).
    pub const CANCELLED: Self = Self(1);
    /// The job's deadline ([`crate::Job::deadline_unix_ms`]) passed.
    pub const DEADLINE_EXCEEDED: Self = Self(2);

    /// Whether the job should stop.
    pub fn is_stop(self) -> bool {
        self != Self::NONE
    }

    /// The stop reason the job's `end` event carries: one of [`crate::tasks::stop_reason`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NONE => "",
            Self::DEADLINE_EXCEEDED => crate::tasks::stop_reason::DEADLINE_EXCEEDED,
            _ => crate::tasks::stop_reason::CANCELLED,
        }
    }
}

/// A produced file (an image, a sound chunk, ...) or a preview of one, borrowed for the call.
/// Its bytes cross as bytes; the host picks the wire encoding (base64 in JSON, raw bytes for
/// OpenAI's binary answers).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct Artifact<'a> {
    /// IANA media type, e.g. `image/png`.
    pub media_type: RStr<'a>,
    /// The bytes of the file.
    pub data: RSlice<'a, u8>,
    /// A JSON object with details the client may want (seed, width, height, ...), or empty.
    pub metadata_json: RStr<'a>,
}

/// The host's receiver of one job's events. Implemented by the host; a plugin only calls it.
///
/// - **Who calls, from which thread:** the plugin, from the thread running
///   [`crate::Worker::execute`] or from any thread of its own (a batching engine, say): a sink
///   is `Send + Sync` and cheap to clone.
/// - **Until when:** until `execute` returns. After that every call is ignored and answers
///   [`Flow::Stop`], so a late event from a plugin thread is harmless.
/// - **Cost and blocking:** no I/O happens on the caller's thread, so a plugin may emit one
///   event per token. Each job's queue of events is bounded: when its client reads slower than
///   the job produces, a call blocks until the client catches up or the job is stopped. A slow
///   client therefore slows only its own job.
/// - **Ownership:** all borrowed data is copied before the call returns.
/// - **Checking:** every call returns a [`Flow`]; after [`Flow::Stop`] end the job within one
///   step or token. Bad data (a custom event name with a newline, text that is not a JSON
///   object where one is asked for) is dropped with a warning in the host's log.
#[sabi_trait]
pub trait EventSink: Clone + Send + Sync {
    /// The job began. `details_json` is a JSON object (e.g. the seed chosen) or empty.
    /// Optional: the host emits `started` on its own before the first other event.
    fn started(&self, details_json: RStr<'_>) -> Flow;

    /// A piece of generated text: the `index`th token (or segment) and its text.
    fn text(&self, index: u64, text: RStr<'_>) -> Flow;

    /// Progress through a job of `total` steps, with an optional low-resolution preview.
    fn progress(&self, step: u64, total: u64, preview: ROption<Artifact<'_>>) -> Flow;

    /// A finished output file.
    fn artifact(&self, artifact: Artifact<'_>) -> Flow;

    /// The embedding vector of the `index`th input.
    fn embedding(&self, index: u64, vector: RSlice<'_, f32>) -> Flow;

    /// Free-form figures as a JSON object (e.g. tokens per second so far).
    fn metrics(&self, metrics_json: RStr<'_>) -> Flow;

    /// An event kind the sink does not name (for example [`crate::tasks::transcription`]'s
    /// `segment`), sent to clients as-is: `event` is its name (letters, digits, `-`, `_`, `.`)
    /// and `data_json` its payload, a JSON object. A name the host uses itself gets an `x-`
    /// prefix. New worker types use it without any change to the host.
    fn custom(&self, event: RStr<'_>, data_json: RStr<'_>) -> Flow;

    /// Why the job should stop, or [`StopReason::NONE`]; for polling where no event is due
    /// (between prompt chunks, inside a long step).
    #[sabi(last_prefix_field)]
    fn stop_reason(&self) -> StopReason;
}

/// How a plugin holds the host's sink for one job. Clone it to hand it to another thread.
pub type JobSink = EventSink_TO<'static, RArc<()>>;

/// Shorthands on a sink.
pub trait EventSinkExt {
    /// Whether the job should stop ([`EventSink::stop_reason`] is set).
    fn is_cancelled(&self) -> bool;
}

impl EventSinkExt for JobSink {
    fn is_cancelled(&self) -> bool {
        self.stop_reason().is_stop()
    }
}
