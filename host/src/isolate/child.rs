//! The plugin process (`rbee-host plugins isolated <file>`): opens one plugin and serves its
//! worker to the host that started it, which writes to its stdin and reads its stdout. Plugin
//! code that prints to stdout lands on stderr instead, so it cannot break the stream.

use super::protocol::{
    EndWire, ErrorWire, EventWire, FromChild, StatusWire, ToChild, floats_to_bytes, read_frame,
    write_frame,
};
use crate::{error::HostError, plugin::loader};
use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, ROption, RResult, RSlice, RStr, RString},
};
use rbee_plugin_api::{
    Artifact, EventSink, EventSink_TO, ExtensionRef, Flow, HostApi, HostApi_TO, LogLevel,
    PluginError, StopReason, WorkerBox, error_code,
};
use std::{
    collections::HashMap,
    fs::File,
    io::{BufReader, BufWriter},
    os::fd::{AsFd, FromRawFd, OwnedFd},
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    sync::{Arc, Condvar, Mutex},
};

/// How many events of one job may be on their way to the host before the plugin's sink call
/// waits: the host's own bounded queue then slows the job, as it does in-process.
const WINDOW: u32 = 256;

/// Serves the plugin at `path` until the host closes stdin.
pub fn run(path: &Path) -> Result<(), HostError> {
    let link = Arc::new(Link {
        out: Mutex::new(BufWriter::new(protocol_output()?)),
        calls: Mutex::new(HashMap::new()),
    });
    let plugin = loader::open(path)?;
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut worker: Option<Arc<WorkerBox>> = None;
    while let Some((message, payload)) = read_frame::<ToChild>(&mut input)? {
        match message {
            ToChild::Load { request, cache_dir } => {
                let services = ChildHost {
                    link: link.clone(),
                    cache_dir,
                };
                let host = HostApi_TO::from_ptr(RArc::new(services), TD_Opaque);
                let load = plugin.module.load();
                let outcome = match catch_unwind(AssertUnwindSafe(|| load(request.into(), host))) {
                    Ok(RResult::ROk(loaded)) => {
                        let slots = loaded.max_concurrent_jobs();
                        worker = Some(Arc::new(loaded));
                        Ok(slots)
                    }
                    Ok(RResult::RErr(error)) => Err(error.into()),
                    Err(_) => Err(panicked("while loading")),
                };
                link.send(&FromChild::Loaded(outcome), &[]);
            }
            ToChild::Validate { call, job } => {
                let (worker, link, job) = (loaded(&worker)?, link.clone(), job.join(&payload)?);
                std::thread::spawn(move || {
                    let outcome = catch_unwind(AssertUnwindSafe(|| worker.validate(&job)));
                    let outcome = match outcome {
                        Ok(RResult::ROk(())) => Ok(()),
                        Ok(RResult::RErr(error)) => Err(error.into()),
                        Err(_) => Err(panicked("while checking a job")),
                    };
                    link.send(&FromChild::Checked { call, outcome }, &[]);
                });
            }
            ToChild::Execute { call, job } => {
                let (worker, job) = (loaded(&worker)?, job.join(&payload)?);
                let state = Arc::new(CallState::default());
                link.lock_calls().insert(call, state.clone());
                let sink = ChildSink {
                    call,
                    link: link.clone(),
                    state,
                };
                std::thread::spawn(move || sink.run(&worker, job));
            }
            ToChild::Stop { call, reason } => {
                if let Some(state) = link.lock_calls().get(&call) {
                    state.stop(reason);
                }
            }
            ToChild::Ack { call, events } => {
                if let Some(state) = link.lock_calls().get(&call) {
                    state.ack(events);
                }
            }
            ToChild::Status { call } => {
                let status = match &worker {
                    Some(worker) => worker.status().into(),
                    None => StatusWire::default(),
                };
                link.send(&FromChild::Status { call, status }, &[]);
            }
        }
    }
    // The host closed the stream: it unloaded the model or went away. Running jobs and the
    // worker end with the process.
    std::process::exit(0)
}

/// The worker, or a broken-stream error when the host asks for jobs before a load.
fn loaded(worker: &Option<Arc<WorkerBox>>) -> std::io::Result<Arc<WorkerBox>> {
    worker.clone().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the host sent a job before the model was loaded",
        )
    })
}

fn panicked(when: &str) -> ErrorWire {
    PluginError::new(error_code::PANIC, format!("the plugin panicked {when}")).into()
}

/// The stream to the host: a copy of stdout, after which stdout itself points at stderr.
fn protocol_output() -> std::io::Result<File> {
    let output: OwnedFd = std::io::stdout().as_fd().try_clone_to_owned()?;
    // SAFETY: `dup2` on two descriptors this process owns for its whole life (stderr and
    // stdout); it only makes descriptor 1 another name for descriptor 2. Rust's `Stdout` keeps
    // writing to descriptor 1, now stderr, and the protocol goes through the copy made above.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created by `try_clone_to_owned`, and ownership moves
    // from the `OwnedFd` to the `File`.
    Ok(unsafe { File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(output)) })
}

/// The stream to the host, shared by every thread, and the running jobs' flow state.
struct Link {
    out: Mutex<BufWriter<File>>,
    calls: Mutex<HashMap<u64, Arc<CallState>>>,
}

impl Link {
    /// Sends a frame; the process ends if the host is gone.
    fn send(&self, header: &FromChild, payload: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if write_frame(&mut *out, header, payload).is_err() {
            std::process::exit(0);
        }
    }

    fn lock_calls(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<CallState>>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One running job's flow control: events not yet passed on by the host, and whether it
/// should stop or has ended.
#[derive(Default)]
struct CallState {
    flow: Mutex<Flowing>,
    changed: Condvar,
}

#[derive(Default)]
struct Flowing {
    in_flight: u32,
    stop: u8,
    ended: bool,
}

impl CallState {
    /// Waits until another event may go; false once the job has ended.
    fn take_credit(&self) -> bool {
        let mut flow = self.flow.lock().unwrap_or_else(|e| e.into_inner());
        while flow.in_flight >= WINDOW && flow.stop == 0 && !flow.ended {
            flow = self.changed.wait(flow).unwrap_or_else(|e| e.into_inner());
        }
        flow.in_flight += 1;
        !flow.ended
    }

    fn stop_reason(&self) -> StopReason {
        let flow = self.flow.lock().unwrap_or_else(|e| e.into_inner());
        match flow.ended {
            true => StopReason::CANCELLED,
            false => StopReason(flow.stop),
        }
    }

    fn update(&self, change: impl FnOnce(&mut Flowing)) {
        change(&mut self.flow.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.notify_all();
    }

    fn stop(&self, reason: u8) {
        self.update(|flow| flow.stop = reason.max(StopReason::CANCELLED.0));
    }

    fn ack(&self, events: u32) {
        self.update(|flow| flow.in_flight = flow.in_flight.saturating_sub(events));
    }
}

/// The plugin's sink for one job: each event becomes a frame to the host.
#[derive(Clone)]
struct ChildSink {
    call: u64,
    link: Arc<Link>,
    state: Arc<CallState>,
}

impl ChildSink {
    /// Runs the job on this thread and reports how it ended; the sink is inert afterwards.
    fn run(self, worker: &WorkerBox, job: rbee_plugin_api::Job) {
        let handle = EventSink_TO::from_ptr(RArc::new(self.clone()), TD_Opaque);
        let outcome = catch_unwind(AssertUnwindSafe(|| worker.execute(job, handle)));
        self.state.update(|flow| flow.ended = true);
        self.link.lock_calls().remove(&self.call);
        let outcome = match outcome {
            Ok(RResult::ROk(end)) => Ok(EndWire::from(end)),
            Ok(RResult::RErr(error)) => Err(error.into()),
            Err(_) => Err(panicked("while running a job")),
        };
        let ended = FromChild::Ended {
            call: self.call,
            outcome,
        };
        self.link.send(&ended, &[]);
    }

    fn send(&self, event: EventWire, payload: &[u8]) -> Flow {
        if !self.state.take_credit() {
            return Flow::Stop;
        }
        let call = self.call;
        self.link.send(&FromChild::Event { call, event }, payload);
        match self.state.stop_reason().is_stop() {
            true => Flow::Stop,
            false => Flow::Continue,
        }
    }
}

/// An artifact's header and bytes.
fn artifact_parts(artifact: &Artifact<'_>) -> ((String, String), Vec<u8>) {
    let header = (
        artifact.media_type.to_string(),
        artifact.metadata_json.to_string(),
    );
    (header, artifact.data.to_vec())
}

impl EventSink for ChildSink {
    fn started(&self, details_json: RStr<'_>) -> Flow {
        self.send(EventWire::Started(details_json.into()), &[])
    }

    fn text(&self, index: u64, text: RStr<'_>) -> Flow {
        self.send(EventWire::Text(index, text.into()), &[])
    }

    fn progress(&self, step: u64, total: u64, preview: ROption<Artifact<'_>>) -> Flow {
        match preview.as_ref().into_option().map(artifact_parts) {
            Some((header, bytes)) => {
                self.send(EventWire::Progress(step, total, Some(header)), &bytes)
            }
            None => self.send(EventWire::Progress(step, total, None), &[]),
        }
    }

    fn artifact(&self, artifact: Artifact<'_>) -> Flow {
        let ((media_type, metadata), bytes) = artifact_parts(&artifact);
        self.send(EventWire::Artifact(media_type, metadata), &bytes)
    }

    fn embedding(&self, index: u64, vector: RSlice<'_, f32>) -> Flow {
        self.send(EventWire::Embedding(index), &floats_to_bytes(&vector))
    }

    fn metrics(&self, metrics_json: RStr<'_>) -> Flow {
        self.send(EventWire::Metrics(metrics_json.into()), &[])
    }

    fn custom(&self, event: RStr<'_>, data_json: RStr<'_>) -> Flow {
        self.send(EventWire::Custom(event.into(), data_json.into()), &[])
    }

    fn stop_reason(&self) -> StopReason {
        self.state.stop_reason()
    }
}

/// The host's services, as the plugin process offers them: logs and progress go to the host.
#[derive(Clone)]
struct ChildHost {
    link: Arc<Link>,
    cache_dir: String,
}

impl HostApi for ChildHost {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        let line = FromChild::Log {
            level: level as u8,
            target: target.into(),
            message: message.into(),
        };
        self.link.send(&line, &[]);
    }

    fn cache_dir(&self) -> RString {
        self.cache_dir.as_str().into()
    }

    fn load_progress(&self, fraction: f32, message: RStr<'_>) {
        let progress = FromChild::Progress {
            fraction,
            message: message.into(),
        };
        self.link.send(&progress, &[]);
    }

    fn extension(&self, _name: RStr<'_>) -> ROption<ExtensionRef> {
        ROption::RNone
    }
}
