//! Serving: pick and check the plugin, bind, load the model in the background, serve until a
//! signal, then drain.

use crate::{
    cli::ServeConfig,
    device::{self, DeviceArg},
    engine,
    error::HostError,
    heartbeat,
    host_services::HostServices,
    jobs::Jobs,
    loader::{self, OpenPlugin},
    metrics::Metrics,
    readiness::{Readiness, State},
    server::{AppState, app},
};
use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RResult},
};
use rbee_plugin_api::{DeviceSpec, HostApi_TO, LoadRequest};
use serde_json::json;
use std::{
    future::pending,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
};

/// How long a cancelled job may take to stop at the end of a drain.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Serves the configured plugin until SIGINT/SIGTERM; fails if the model cannot be loaded.
pub fn serve(config: ServeConfig) -> Result<(), HostError> {
    let opening = Instant::now();
    let candidate = config.search.find(&config.plugin)?;
    let plugin = loader::probe_and_open(&candidate.path).map_err(HostError::PluginRefused)?;
    let plugin_load_seconds = opening.elapsed().as_secs_f64();
    if plugin.manifest.id.as_str() != config.plugin {
        return Err(HostError::PluginRefused(format!(
            "refusing {}: the file is named '{}' but the plugin declares id '{}'",
            candidate.path.display(),
            config.plugin,
            plugin.manifest.id
        )));
    }
    let device = device::choose(
        &config.plugin,
        &plugin.manifest.backend,
        config.device.as_ref(),
    )?;
    let description = device::probe(&device)?;
    tracing::info!(
        plugin = config.plugin,
        version = plugin.manifest.version.as_str(),
        path = %plugin.path.display(),
        device = description,
        "plugin checked"
    );
    export_thread_count(config.threads);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let model_name = match config.model.as_str() {
        "" => plugin.manifest.default_model.to_string(),
        model => model.to_string(),
    };
    let metrics = Arc::new(Metrics::new(&model_name, config.vllm_metrics));
    metrics.plugin_loaded(plugin_load_seconds);
    runtime.block_on(run(config, plugin, device, metrics))
}

/// Exports `--threads` for the compute libraries plugins use, which size their pools from the
/// environment (see `LoadRequest::threads`).
fn export_thread_count(threads: u32) {
    if threads == 0 {
        return;
    }
    for name in ["RAYON_NUM_THREADS", "OMP_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        // SAFETY: called before the runtime, the model loader or any other thread starts, so
        // nothing reads the environment concurrently.
        unsafe { std::env::set_var(name, threads.to_string()) };
    }
}

async fn run(
    config: ServeConfig,
    plugin: OpenPlugin,
    device: DeviceArg,
    metrics: Arc<Metrics>,
) -> Result<(), HostError> {
    let listener = TcpListener::bind(config.bind).await.map_err(|e| {
        HostError::Usage(format!(
            "cannot listen on {}:{}: {e}",
            config.bind.0, config.bind.1
        ))
    })?;
    let address = listener.local_addr()?;
    tracing::info!("listening on http://{address}");
    let manifest = &plugin.manifest;
    let state = Arc::new(AppState {
        manifest: json!({
            "id": manifest.id.as_str(),
            "kind": manifest.kind.as_str(),
            "backend": manifest.backend.as_str(),
            "version": manifest.version.as_str(),
            "api_version": manifest.api_version.as_str(),
            "description": manifest.description.as_str(),
            "tasks": manifest.tasks.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "params_schema": serde_json::from_str::<serde_json::Value>(&manifest.params_schema_json).unwrap_or_default(),
            "default_model": manifest.default_model.as_str(),
            "capabilities": manifest.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        }),
        tasks: manifest.tasks.iter().map(|t| t.to_string()).collect(),
        model: config.model.clone(),
        device: device.to_string(),
        readiness: Arc::new(Readiness::default()),
        worker: OnceLock::new(),
        jobs: Arc::new(Jobs::new(config.queue_size)),
        metrics,
        http: config.http.clone(),
    });
    let (stop_heartbeat, heartbeat_stopped) = watch::channel(false);
    let heartbeat = config.heartbeat.clone().map(|hb| {
        heartbeat::spawn(
            hb,
            state.clone(),
            format!("http://{address}"),
            heartbeat_stopped,
        )
    });
    let (fatal_tx, fatal_rx) = oneshot::channel();
    spawn_model_load(&config, &plugin, &device, state.clone(), fatal_tx);
    let outcome = Arc::new(OnceLock::new());
    let shutdown = {
        let (state, outcome) = (state.clone(), outcome.clone());
        async move {
            let fatal = wait_for_stop(fatal_rx).await;
            if fatal.is_none() {
                drain(&state, config.shutdown_timeout).await;
            }
            let _ = outcome.set(fatal);
        }
    };
    axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(shutdown)
        .await?;
    state.jobs.close();
    let _ = stop_heartbeat.send(true);
    if let Some(task) = heartbeat {
        let _ = tokio::time::timeout(Duration::from_secs(6), task).await;
    }
    match outcome.get().cloned().flatten() {
        Some(message) => Err(HostError::ModelLoad(message)),
        None => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// Loads the model on a thread of its own; when done, starts the engine threads and turns ready,
/// or reports the failure through `fatal`.
fn spawn_model_load(
    config: &ServeConfig,
    plugin: &OpenPlugin,
    device: &DeviceArg,
    state: Arc<AppState>,
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
                    let _ = state.worker.set(worker.clone());
                    let slots = engine::concurrency(worker.max_concurrent_jobs(), parallel);
                    engine::spawn(worker, state.jobs.clone(), state.metrics.clone(), slots);
                    state.metrics.model_loaded(started.elapsed().as_secs_f64());
                    state.readiness.set(State::Ready);
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

fn fail(state: &AppState, fatal: oneshot::Sender<String>, message: String) {
    tracing::error!("loading the model failed: {message}");
    state.readiness.set(State::Failed {
        message: message.clone(),
    });
    let _ = fatal.send(message);
}

/// Waits for SIGINT/SIGTERM (`None`) or a fatal load error (`Some(message)`).
async fn wait_for_stop(fatal: oneshot::Receiver<String>) -> Option<String> {
    let fatal = async {
        match fatal.await {
            Ok(message) => message,
            Err(_) => pending().await,
        }
    };
    tokio::select! {
        () = signal() => None,
        message = fatal => Some(message),
    }
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Stops taking jobs, cancels queued ones, lets the running ones finish up to `timeout`, then
/// cancels them and waits for them to stop.
async fn drain(state: &AppState, timeout: Duration) {
    state.readiness.set(State::Draining);
    state.jobs.drain();
    if !wait_idle(state, timeout).await {
        tracing::warn!("shutdown timeout reached; cancelling the running jobs");
        state.jobs.cancel_running();
        wait_idle(state, CANCEL_GRACE).await;
    }
}

async fn wait_idle(state: &AppState, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while state.jobs.counts().1 > 0 {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}
