//! One served model: its settings, the plugin that runs it and the device, its life cycle
//! (which holds the loaded worker), its job queue and its metrics. The queue outlives loads:
//! jobs wait in it while the model loads, and stay queued while it unloads.

pub mod readiness;

use crate::{
    config::ModelConfig, jobs::Jobs, services::device::DeviceArg, services::metrics::Metrics,
};
use abi_stable::std_types::RResult;
use rbee_plugin_api::{HostApiRef, LoadRequest, Manifest, PluginError, WorkerBox};
use readiness::Readiness;
use serde_json::{Value, json};
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// A plugin's `load` entry point.
pub type LoadFn = extern "C" fn(LoadRequest, HostApiRef) -> RResult<WorkerBox, PluginError>;

/// Where a model's worker runs.
pub enum Loader {
    /// In the host's process, loaded by the plugin's entry point.
    InProcess(LoadFn),
    /// In a supervised child process that opens the plugin file at this path (the default).
    Isolated(std::path::PathBuf),
}

/// The first wait before a crashed plugin process is started again; it doubles with each
/// crash that follows within [`CRASH_MEMORY`], up to [`MAX_RESTART_DELAY`].
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(500);

/// The longest wait before a restart.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// How long a crash counts towards the next restart's back-off.
const CRASH_MEMORY: Duration = Duration::from_secs(60);

/// Everything that belongs to one model, shared by its handlers, engine threads and heartbeats.
pub struct WorkerState {
    /// What the host was told to serve.
    pub config: ModelConfig,
    /// How its worker is loaded (the plugin is opened once, for every model it serves).
    pub loader: Loader,
    /// The plugin's manifest, as JSON for `/v1/info`.
    pub manifest: Value,
    /// The tasks the plugin serves.
    pub tasks: Vec<String>,
    /// The device, as given to the plugin.
    pub device: DeviceArg,
    /// Unloaded, loading, ready (with the worker), unloading, failed or draining.
    pub readiness: Arc<Readiness>,
    /// The queue and the job registry.
    pub jobs: Arc<Jobs>,
    /// Prometheus metrics, labelled with the model's id.
    pub metrics: Arc<Metrics>,
    slots: AtomicUsize,
    footprint: AtomicU64,
    last_error: Mutex<Option<String>>,
    engines: Mutex<Vec<JoinHandle<()>>>,
    crashes: Mutex<Crashes>,
}

/// How often a model's plugin process has crashed, and how recently.
#[derive(Default)]
struct Crashes {
    total: u64,
    in_a_row: u32,
    last: Option<Instant>,
}

impl WorkerState {
    /// Records a load: its engine threads (one per job run at once) and its size: what the
    /// worker reports, or else what the load added to the process.
    pub fn loaded(&self, engines: Vec<JoinHandle<()>>, size: u64) {
        self.slots.store(engines.len(), Ordering::Relaxed);
        self.footprint.store(size, Ordering::Relaxed);
        *self.engines.lock().unwrap_or_else(|e| e.into_inner()) = engines;
        self.set_last_error(None);
    }

    /// Waits for the engine threads to end (they were parked and finish their current jobs).
    pub fn join_engines(&self) {
        let engines = std::mem::take(&mut *self.engines.lock().unwrap_or_else(|e| e.into_inner()));
        for engine in engines {
            let _ = engine.join();
        }
        self.slots.store(0, Ordering::Relaxed);
    }

    /// Records a crash of its plugin process; how long to wait before starting it again.
    pub fn crashed(&self) -> Duration {
        let mut crashes = self.crashes.lock().unwrap_or_else(|e| e.into_inner());
        let recent = crashes
            .last
            .is_some_and(|last| last.elapsed() < CRASH_MEMORY);
        crashes.in_a_row = if recent { crashes.in_a_row + 1 } else { 1 };
        crashes.total += 1;
        crashes.last = Some(Instant::now());
        let doublings = (crashes.in_a_row - 1).min(16);
        (FIRST_RESTART_DELAY * 2u32.pow(doublings)).min(MAX_RESTART_DELAY)
    }

    /// How many times its plugin process has crashed.
    pub fn crashes(&self) -> u64 {
        self.crashes.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl WorkerState {
    /// The model `config` names, unloaded, run on `device` by the plugin `manifest` describes,
    /// which `loader` loads.
    pub fn new(
        config: ModelConfig,
        manifest: &Manifest,
        loader: Loader,
        device: DeviceArg,
        metrics: Metrics,
    ) -> Self {
        let metrics = Arc::new(metrics);
        Self {
            manifest: manifest_json(manifest),
            tasks: manifest.tasks.iter().map(|t| t.to_string()).collect(),
            device,
            readiness: Arc::new(Readiness::default()),
            jobs: Arc::new(Jobs::new(config.queue_size).with_metrics(metrics.clone())),
            metrics,
            slots: AtomicUsize::new(0),
            footprint: AtomicU64::new(0),
            last_error: Mutex::new(None),
            engines: Mutex::new(Vec::new()),
            crashes: Mutex::new(Crashes::default()),
            config,
            loader,
        }
    }

    /// The name requests use.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Whether `name` is this model's id or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.config.id == name || self.config.aliases.iter().any(|alias| alias == name)
    }

    /// Whether its plugin serves `task`.
    pub fn serves(&self, task: &str) -> bool {
        self.tasks.iter().any(|served| served == task)
    }

    /// How many jobs run at once while loaded; 0 while not.
    pub fn slots(&self) -> usize {
        self.slots.load(Ordering::Relaxed)
    }

    /// The memory the loaded worker holds: what it reports, or else what its load added to
    /// the process; 0 while not loaded.
    pub fn memory_bytes(&self) -> u64 {
        match self.readiness.worker() {
            Some(worker) => match worker.status().memory_bytes {
                0 => self.footprint.load(Ordering::Relaxed),
                reported => reported,
            },
            None => 0,
        }
    }

    /// What the last load took, counted as [`WorkerState::memory_bytes`] counts it; 0 before
    /// any load.
    pub fn last_size(&self) -> u64 {
        self.footprint.load(Ordering::Relaxed)
    }

    /// Why the last load failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Its entry in `/v1/models`: id, plugin, tasks and life-cycle state.
    pub fn summary(&self) -> Value {
        json!({
            "id": self.config.id,
            "object": "model",
            "created": host_started(),
            "owned_by": self.manifest["id"],
            "plugin": self.manifest["id"],
            "tasks": self.tasks,
            "state": self.readiness.state().word(),
            "pinned": self.config.pinned,
            "aliases": self.config.aliases,
        })
    }

    /// Its summary with the details `/v1/models/{id}` and `/v1/info` add: device, queue,
    /// slots, keep-alive, memory and the last load error.
    pub fn details(&self) -> Value {
        let (waiting, running) = self.jobs.counts();
        let mut details = self.summary();
        let extra = json!({
            "model": self.config.model,
            "device": self.device.to_string(),
            "queue": {"waiting": waiting, "running": running},
            "slots": self.slots(),
            "keep_alive_seconds": self.config.keep_alive.map(|k| k.as_secs_f64()),
            "memory_bytes": self.memory_bytes(),
            "last_error": self.last_error(),
            "crashes": self.crashes(),
        });
        if let (Some(details), Value::Object(extra)) = (details.as_object_mut(), extra) {
            details.extend(extra);
        }
        details
    }

    /// Records why the last load failed (`None`: it succeeded).
    pub fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
}

/// When the host started, in seconds since the epoch: the `created` of every model.
fn host_started() -> u64 {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STARTED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// The manifest as `/v1/info` shows it.
fn manifest_json(manifest: &Manifest) -> Value {
    json!({
        "id": manifest.id.as_str(),
        "kind": manifest.kind.as_str(),
        "backend": manifest.backend.as_str(),
        "version": manifest.version.as_str(),
        "api_version": manifest.api_version.as_str(),
        "description": manifest.description.as_str(),
        "tasks": manifest.tasks.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "params_schema": serde_json::from_str::<Value>(&manifest.params_schema_json).unwrap_or_default(),
        "default_model": manifest.default_model.as_str(),
        "capabilities": manifest.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
    })
}

/// Models and workers for the host's unit tests.
#[cfg(test)]
pub mod testing {
    use super::*;
    use crate::{config::ModelDefaults, services::metrics::MetricsRegistry};
    use abi_stable::{
        sabi_trait::TD_Opaque,
        std_types::{ROption, RStr},
    };
    use rbee_plugin_api::{ExtensionRef, Job, JobEnd, JobSink, Worker, WorkerStatus};

    /// A worker that does nothing and ends every job at once.
    struct Idle;

    impl Worker for Idle {
        fn max_concurrent_jobs(&self) -> u32 {
            1
        }
        fn validate(&self, _job: &Job) -> RResult<(), PluginError> {
            RResult::ROk(())
        }
        fn execute(&self, _job: Job, _sink: JobSink) -> RResult<JobEnd, PluginError> {
            RResult::ROk(JobEnd::completed())
        }
        fn status(&self) -> WorkerStatus {
            WorkerStatus::default()
        }
        fn extension(&self, _name: RStr<'_>) -> ROption<ExtensionRef> {
            ROption::RNone
        }
    }

    /// A loaded worker to hand to [`Readiness::ready`].
    pub fn idle_worker() -> Arc<WorkerBox> {
        Arc::new(WorkerBox::from_value(Idle, TD_Opaque))
    }

    extern "C" fn no_weights(_: LoadRequest, _: HostApiRef) -> RResult<WorkerBox, PluginError> {
        RResult::RErr(PluginError::internal("no weights"))
    }

    /// An unloaded model of the echo plugin (task `echo`) named `id`, whose load fails.
    pub fn echo_model(id: &str, pinned: bool, registry: &MetricsRegistry) -> WorkerState {
        let manifest = Manifest::new("echo", "cpu", "0.1.0", &["echo"]).default_model("tiny");
        in_process_model(id, pinned, &manifest, no_weights, registry)
    }

    /// An unloaded model named `id` of the plugin `manifest` describes, loaded in the host's
    /// process by `load`; its queue holds 4 jobs.
    pub fn in_process_model(
        id: &str,
        pinned: bool,
        manifest: &Manifest,
        load: LoadFn,
        registry: &MetricsRegistry,
    ) -> WorkerState {
        let defaults = ModelDefaults {
            device: None,
            threads: 0,
            parallel: 0,
            queue_size: 4,
            plugin_options: String::new(),
        };
        let plugin = format!("{}-{}", manifest.kind, manifest.backend);
        let mut config = defaults.entry(id.into(), plugin, String::new());
        config.pinned = pinned;
        let device = DeviceArg {
            kind: "cpu".into(),
            ordinal: 0,
        };
        WorkerState::new(
            config,
            manifest,
            Loader::InProcess(load),
            device,
            registry.for_model(id),
        )
    }
}
