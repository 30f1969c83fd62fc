//! Stopping a job: a flag set on cancellation or at the deadline, which the plugin polls and
//! which decides the job's stop reason.

use rbee_plugin_api::{StopReason, tasks::stop_reason};
use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};

/// Why a job was told to stop, shared between the registry, the engine and the sink.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicU8>);

const RUNNING: u8 = StopReason::NONE.0;
const CANCELLED: u8 = StopReason::CANCELLED.0;
const DEADLINE: u8 = StopReason::DEADLINE_EXCEEDED.0;

impl StopFlag {
    /// Asks the job to stop because a client cancelled it (the first reason given wins).
    pub fn cancel(&self) {
        let _ = self
            .0
            .compare_exchange(RUNNING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Asks the job to stop because its deadline passed (the first reason given wins).
    pub fn expire(&self) {
        let _ = self
            .0
            .compare_exchange(RUNNING, DEADLINE, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Whether the job should stop.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed) != RUNNING
    }

    /// Why the job was asked to stop, as the plugin reads it.
    pub fn reason(&self) -> StopReason {
        StopReason(self.0.load(Ordering::SeqCst))
    }

    /// The stop reason a stopped job ends with: `cancelled` or `deadline_exceeded`.
    pub fn stop_reason(&self) -> &'static str {
        match self.0.load(Ordering::SeqCst) {
            DEADLINE => stop_reason::DEADLINE_EXCEEDED,
            _ => stop_reason::CANCELLED,
        }
    }
}
