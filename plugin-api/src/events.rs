//! Events a plugin streams while it executes a job, and the host-side sink that receives them.

use abi_stable::{
    StableAbi, sabi_trait,
    sabi_types::RMut,
    std_types::{ROption, RSlice, RStr},
};

/// What the host wants after an event: go on, or stop the job.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going.
    Continue,
    /// The job was cancelled or its client went away: return within one step or token,
    /// with [`crate::JobEnd::cancelled`].
    Stop,
}

impl Flow {
    /// Whether the plugin should stop.
    pub fn is_stop(self) -> bool {
        self == Flow::Stop
    }
}

/// A produced file (an image, a sound, ...) or a preview of one, borrowed for the call.
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

/// The host's receiver of job events. Implemented by the host; a plugin only calls it.
///
/// Every call returns a [`Flow`]. After [`Flow::Stop`] the plugin must end the job within one
/// step or token. Calls are cheap (no I/O happens on the plugin's thread), so a plugin may emit
/// one event per token. All borrowed data is copied before the call returns.
#[sabi_trait]
pub trait EventSink {
    /// The job began. `details_json` is a JSON object (e.g. the seed chosen) or empty.
    /// Optional: the host emits `started` on its own before the first other event.
    fn started(&mut self, details_json: RStr<'_>) -> Flow;

    /// A piece of generated text: the `index`th token (or segment) and its text.
    fn text(&mut self, index: u64, text: RStr<'_>) -> Flow;

    /// Progress through a job of `total` steps, with an optional low-resolution preview.
    fn progress(&mut self, step: u64, total: u64, preview: ROption<Artifact<'_>>) -> Flow;

    /// A finished output file.
    fn artifact(&mut self, artifact: Artifact<'_>) -> Flow;

    /// The embedding vector of the `index`th input.
    fn embedding(&mut self, index: u64, vector: RSlice<'_, f32>) -> Flow;

    /// Free-form figures as a JSON object (e.g. tokens per second so far).
    fn metrics(&mut self, metrics_json: RStr<'_>) -> Flow;

    /// An event kind this API does not name, sent to clients as-is: `event` is its name and
    /// `data_json` its JSON payload. New worker types use it without any change to the host.
    fn custom(&mut self, event: RStr<'_>, data_json: RStr<'_>) -> Flow;

    /// Whether the job has been cancelled, for polling where no event is due
    /// (between prompt chunks, inside a long step).
    #[sabi(last_prefix_field)]
    fn is_cancelled(&self) -> bool;
}

/// How a plugin holds the host's sink during [`crate::Worker::execute`].
pub type EventSinkRef<'a> = EventSink_TO<'a, RMut<'a, ()>>;
