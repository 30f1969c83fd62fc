//! Jobs: the registry and bounded queue between HTTP handlers and the engine threads, the
//! engine threads that run them on the worker, and the events they produce.

pub mod engine;
pub mod event;
mod queue;
mod registry;
pub mod sink;
mod stop;

pub use queue::{EVENT_QUEUE, EventReceiver, EventSender, event_queue};
pub use registry::{JobState, JobView, Jobs, QueuedJob, StreamError, SubmitError};
pub use stop::StopFlag;
