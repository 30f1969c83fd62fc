//! Loading a model on a thread of its own (the API keeps answering), after unloading the least
//! recently used models the memory budget needs gone.

use super::{Fleet, memory};
use crate::{
    isolate,
    jobs::engine,
    services::host_services::{HostServices, ProgressDisplay},
    worker::{Loader, WorkerState, readiness::State},
};
use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RResult},
};
use rbee_plugin_api::{DeviceSpec, HostApi_TO, LoadRequest};
use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::oneshot;

/// The error code of jobs whose model failed to load.
pub const LOAD_FAILED: &str = "model_load_failed";

/// How often a request waiting for a load looks again.
const WAIT_POLL: Duration = Duration::from_millis(25);

impl Fleet {
    /// Starts loading `model` on a thread of its own unless it is loaded or loading.
    pub fn request_load(self: &Arc<Self>, model: &Arc<WorkerState>) {
        if !model.readiness.start_loading() {
            return;
        }
        let (fleet, model) = (self.clone(), model.clone());
        std::thread::Builder::new()
            .name("rbee-model-load".into())
            .spawn(move || fleet.load_or_fail_queued(&model))
            .expect("spawning a model-load thread");
    }

    /// Loads `model` (which is in the loading state) on this thread; if that fails, records
    /// why, marks it unloaded and fails the jobs waiting for it.
    pub(super) fn load_or_fail_queued(self: &Arc<Self>, model: &Arc<WorkerState>) {
        if let Err(message) = self.load_blocking(model) {
            model.set_last_error(Some(message.clone()));
            model.readiness.unloaded();
            model.jobs.fail_queued(LOAD_FAILED, &message);
        }
    }

    /// Loads every pinned model, one after the other, on a thread of its own; the first that
    /// fails is fatal: the host reports it through `fatal` and exits.
    pub fn load_pinned(self: &Arc<Self>, fatal: oneshot::Sender<String>) {
        let pinned: Vec<Arc<WorkerState>> = self
            .models
            .iter()
            .filter(|m| m.config.pinned)
            .cloned()
            .collect();
        for model in &pinned {
            model.readiness.start_loading();
        }
        let fleet = self.clone();
        std::thread::Builder::new()
            .name("rbee-model-load".into())
            .spawn(move || {
                for model in pinned {
                    if let Err(message) = fleet.load_blocking(&model) {
                        tracing::error!(model = model.id(), "loading the model failed: {message}");
                        model.readiness.fail(message.clone());
                        let _ = fatal.send(message);
                        return;
                    }
                }
            })
            .expect("spawning a model-load thread");
    }

    /// Loads `model` if needed and waits until it serves; why not, if it cannot.
    pub async fn load_and_wait(self: &Arc<Self>, model: &Arc<WorkerState>) -> Result<(), String> {
        self.request_load(model);
        loop {
            match model.readiness.state() {
                State::Ready => return Ok(()),
                State::Failed { message } => return Err(message),
                State::Draining => return Err("the host is shutting down".into()),
                State::Unloaded => match model.last_error() {
                    Some(message) => return Err(message),
                    None => self.request_load(model),
                },
                State::Loading { .. } | State::Unloading => {}
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// Loads `model` (which is in the loading state) on this thread, once the models the
    /// budget needs gone are unloaded, and starts its engine threads.
    fn load_blocking(self: &Arc<Self>, model: &Arc<WorkerState>) -> Result<(), String> {
        let _one_at_a_time = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        self.make_room_for(model);
        let request = LoadRequest {
            model: model.config.model.as_str().into(),
            device: DeviceSpec {
                kind: model.device.kind.as_str().into(),
                ordinal: model.device.ordinal,
            },
            threads: model.config.threads,
            parallel: model.config.parallel,
            options_json: model.config.plugin_options.as_str().into(),
            host_capabilities: HostServices::capabilities(),
        };
        let services = HostServices {
            plugin_id: model.manifest["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            model_id: model.id().to_string(),
            cache_dir: self.cache_dir.clone(),
            readiness: model.readiness.clone(),
            jobs: model.jobs.clone(),
            display: Arc::new(ProgressDisplay::default()),
        };
        let started = Instant::now();
        let resident_before = memory::resident_bytes();
        let host = HostApi_TO::from_ptr(RArc::new(services), TD_Opaque);
        let worker = match &model.loader {
            Loader::InProcess(load) => match catch_unwind(AssertUnwindSafe(|| load(request, host)))
            {
                Ok(RResult::ROk(worker)) => Arc::new(worker),
                Ok(RResult::RErr(error)) => return Err(error.to_string()),
                Err(_) => return Err("the plugin panicked while loading".into()),
            },
            Loader::Isolated(plugin) => {
                let on_crash = self.restart_on_crash(model);
                let worker = isolate::load(plugin, &request, host, on_crash);
                Arc::new(worker.map_err(|error| error.to_string())?)
            }
        };
        let size = match worker.status().memory_bytes {
            0 => memory::resident_bytes().saturating_sub(resident_before),
            reported => reported,
        };
        let slots = engine::concurrency(worker.max_concurrent_jobs(), model.config.parallel);
        model.jobs.unpark_engines();
        let engines = engine::spawn(
            worker.clone(),
            model.jobs.clone(),
            model.metrics.clone(),
            slots,
        );
        model.loaded(engines, size);
        model.metrics.model_loaded(started.elapsed().as_secs_f64());
        model.readiness.ready(worker);
        tracing::info!(
            model = model.id(),
            seconds = started.elapsed().as_secs_f32(),
            parallel = slots,
            memory_bytes = model.memory_bytes(),
            "model loaded; ready"
        );
        Ok(())
    }

    /// Unloads the least recently used unpinned models until `model`'s expected size fits the
    /// budget (or nothing more can go, which is logged).
    fn make_room_for(self: &Arc<Self>, model: &Arc<WorkerState>) {
        let Some(budget) = self.budget else {
            return;
        };
        let needed = memory::expected_size(model);
        loop {
            let held: u64 = self
                .models
                .iter()
                .filter(|other| !Arc::ptr_eq(other, model) && holds_memory(other))
                .map(|other| other.last_size())
                .sum();
            if held + needed <= budget {
                return;
            }
            let Some(victim) = self.least_recently_used(model) else {
                tracing::warn!(
                    model = model.id(),
                    needed,
                    held,
                    budget,
                    "the memory budget is exceeded and no model can be unloaded; loading anyway"
                );
                return;
            };
            tracing::info!(
                model = victim.id(),
                for_model = model.id(),
                "unloading to make room"
            );
            self.unload_blocking(&victim);
        }
    }

    /// The loaded, unpinned model (other than `keep`) whose last job is the oldest; idle ones
    /// before busy ones.
    fn least_recently_used(&self, keep: &Arc<WorkerState>) -> Option<Arc<WorkerState>> {
        self.models
            .iter()
            .filter(|m| !Arc::ptr_eq(m, keep) && !m.config.pinned)
            .filter(|m| matches!(m.readiness.state(), State::Ready))
            .max_by_key(|m| {
                m.jobs
                    .idle_for()
                    .map(|idle| (1, idle))
                    .unwrap_or((0, Duration::ZERO))
            })
            .cloned()
    }
}

/// Whether a model holds memory the budget counts: loaded, or on its way in or out.
fn holds_memory(model: &WorkerState) -> bool {
    matches!(
        model.readiness.state(),
        State::Ready | State::Loading { .. } | State::Unloading
    )
}
