//! The worker the host sees for an isolated plugin: each call becomes messages to the plugin
//! process, and a dead process becomes a `plugin_crashed` error instead of a dead host.

use super::{
    process::{PLUGIN_CRASHED, Process, Reply},
    protocol::{EventWire, JobWire, ToChild, bytes_to_floats},
};
use abi_stable::std_types::{ROption, RResult, RStr};
use rbee_plugin_api::{
    Artifact, ExtensionRef, Flow, Job, JobEnd, JobSink, PluginError, Worker, WorkerStatus,
};
use std::{
    sync::{Arc, mpsc::RecvTimeoutError},
    time::Duration,
};

/// How often a running job whose plugin sends nothing is checked for a stop.
const STOP_POLL: Duration = Duration::from_millis(20);

/// How long a status request may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// Events passed on between two acknowledgements.
const ACK_EVERY: u32 = 16;

/// A loaded worker in a plugin process.
pub struct IsolatedWorker {
    process: Arc<Process>,
    slots: u32,
}

impl IsolatedWorker {
    /// The worker `process` has loaded, which runs `slots` jobs at once.
    pub fn new(process: Arc<Process>, slots: u32) -> Self {
        Self { process, slots }
    }
}

/// The error of a call whose process died.
pub fn crashed(why: &str) -> PluginError {
    PluginError::new(PLUGIN_CRASHED, format!("{why}; the host restarts it"))
}

impl Worker for IsolatedWorker {
    fn max_concurrent_jobs(&self) -> u32 {
        self.slots
    }

    fn validate(&self, job: &Job) -> RResult<(), PluginError> {
        let (call, answers) = self.process.open_call(false);
        let (job, payload) = JobWire::split(job);
        self.process
            .send(&ToChild::Validate { call, job }, &payload);
        match answers.recv() {
            Ok(Reply::Checked(outcome)) => outcome.into(),
            Ok(Reply::Died(why)) => RResult::RErr(crashed(&why)),
            _ => RResult::RErr(crashed("the plugin process stopped answering")),
        }
    }

    fn execute(&self, job: Job, sink: JobSink) -> RResult<JobEnd, PluginError> {
        let (call, answers) = self.process.open_call(false);
        let (job, payload) = JobWire::split(&job);
        self.process.send(&ToChild::Execute { call, job }, &payload);
        let (mut unacknowledged, mut stop_sent) = (0, false);
        // Passes the host's stop (or its sink's `Flow::Stop`) on to the plugin, once.
        let pass_stop_on = |stop_sent: &mut bool, flow_stopped: bool| {
            let reason = sink.stop_reason();
            if !*stop_sent && (flow_stopped || reason.is_stop()) {
                *stop_sent = true;
                self.process.send(
                    &ToChild::Stop {
                        call,
                        reason: reason.0,
                    },
                    &[],
                );
            }
        };
        loop {
            let reply = match answers.recv_timeout(STOP_POLL) {
                Ok(reply) => reply,
                Err(RecvTimeoutError::Timeout) => {
                    pass_stop_on(&mut stop_sent, false);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    Reply::Died("the plugin process stopped answering".into())
                }
            };
            match reply {
                Reply::Event(event, bytes) => {
                    let flow = deliver(&sink, event, &bytes);
                    unacknowledged += 1;
                    if unacknowledged >= ACK_EVERY {
                        let events = std::mem::take(&mut unacknowledged);
                        self.process.send(&ToChild::Ack { call, events }, &[]);
                    }
                    if flow.is_stop() {
                        pass_stop_on(&mut stop_sent, true);
                    }
                }
                Reply::Ended(outcome) => return outcome.into(),
                Reply::Died(why) => return RResult::RErr(crashed(&why)),
                _ => {
                    self.process.close_call(call);
                    return RResult::RErr(crashed("the plugin process answered out of turn"));
                }
            }
        }
    }

    fn status(&self) -> WorkerStatus {
        if self.process.death().is_some() {
            return WorkerStatus::default();
        }
        let (call, answers) = self.process.open_call(false);
        self.process.send(&ToChild::Status { call }, &[]);
        let mut status = match answers.recv_timeout(STATUS_TIMEOUT) {
            Ok(Reply::Status(status)) => status,
            _ => {
                self.process.close_call(call);
                WorkerStatus::default()
            }
        };
        if status.memory_bytes == 0 {
            status.memory_bytes = self.process.resident_bytes();
        }
        status
    }

    fn extension(&self, _name: RStr<'_>) -> ROption<ExtensionRef> {
        ROption::RNone
    }
}

impl Drop for IsolatedWorker {
    fn drop(&mut self) {
        self.process.close();
    }
}

/// Hands one event from the plugin process to the job's sink.
fn deliver(sink: &JobSink, event: EventWire, bytes: &[u8]) -> Flow {
    fn artifact<'a>(media_type: &'a str, metadata: &'a str, bytes: &'a [u8]) -> Artifact<'a> {
        Artifact {
            media_type: media_type.into(),
            data: bytes.into(),
            metadata_json: metadata.into(),
        }
    }
    match event {
        EventWire::Started(details) => sink.started(details.as_str().into()),
        EventWire::Text(index, text) => sink.text(index, text.as_str().into()),
        EventWire::Progress(step, total, preview) => {
            let preview = preview
                .as_ref()
                .map(|(kind, meta)| artifact(kind, meta, bytes));
            sink.progress(step, total, preview.into())
        }
        EventWire::Artifact(kind, meta) => sink.artifact(artifact(&kind, &meta, bytes)),
        EventWire::Embedding(index) => {
            sink.embedding(index, bytes_to_floats(bytes).as_slice().into())
        }
        EventWire::Metrics(metrics) => sink.metrics(metrics.as_str().into()),
        EventWire::Custom(name, data) => sink.custom(name.as_str().into(), data.as_str().into()),
    }
}
