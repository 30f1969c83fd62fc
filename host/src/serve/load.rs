//! Loading the model on a thread of its own, so the API answers `/health` and `/ready` while
//! it loads.

use crate::{
    config::ServeConfig,
    jobs::engine,
    plugin::loader::OpenPlugin,
    services::{device::DeviceArg, host_services::HostServices},
    worker::WorkerState,
};
use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RResult},
};
use rbee_plugin_api::{DeviceSpec, HostApi_TO, LoadRequest};
use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
    time::Instant,
};
use tokio::sync::oneshot;

/// Loads the model on a thread of its own; when done, starts the engine threads and turns ready,
/// or reports the failure through `fatal`.
pub fn spawn(
    config: &ServeConfig,
    plugin: &OpenPlugin,
    device: &DeviceArg,
    state: Arc<WorkerState>,
    fatal: oneshot::Sender<String>,
) {
    let request = LoadRequest {
        model: config.model.as_str().into(),
        device: DeviceSpec {
            kind: device.kind.as_str().into(),
            ordinal: device.ordinal,
        },
        threads: config.threads,
        parallel: config.parallel,
        options_json: config.plugin_options.as_str().into(),
        host_capabilities: HostServices::capabilities(),
    };
    let parallel = config.parallel;
    let services = HostServices {
        plugin_id: plugin.manifest.id.to_string(),
        cache_dir: config.cache_dir.clone(),
        readiness: state.readiness.clone(),
        display: Arc::default(),
    };
    let load = plugin.module.load();
    std::thread::Builder::new()
        .name("rbee-model-load".into())
        .spawn(move || {
            let started = Instant::now();
            let host = HostApi_TO::from_ptr(RArc::new(services), TD_Opaque);
            let result = catch_unwind(AssertUnwindSafe(|| load(request, host)));
            match result {
                Ok(RResult::ROk(worker)) => {
                    let worker = Arc::new(worker);
                    let slots = engine::concurrency(worker.max_concurrent_jobs(), parallel);
                    engine::spawn(
                        worker.clone(),
                        state.jobs.clone(),
                        state.metrics.clone(),
                        slots,
                    );
                    state.set_slots(slots);
                    state.metrics.model_loaded(started.elapsed().as_secs_f64());
                    state.readiness.ready(worker);
                    tracing::info!(
                        seconds = started.elapsed().as_secs_f32(),
                        parallel = slots,
                        "model loaded; ready"
                    );
                }
                Ok(RResult::RErr(error)) => fail(&state, fatal, error.to_string()),
                Err(_) => fail(&state, fatal, "the plugin panicked while loading".into()),
            }
        })
        .expect("spawning the model-load thread");
}

fn fail(state: &WorkerState, fatal: oneshot::Sender<String>, message: String) {
    tracing::error!("loading the model failed: {message}");
    state.readiness.fail(message.clone());
    let _ = fatal.send(message);
}
