//! Serving: pick and check the plugin, bind, load the model in the background, serve until a
//! signal, then drain.

mod load;
mod shutdown;

use crate::{
    config::ServeConfig,
    error::HostError,
    plugin::loader::{self, OpenPlugin},
    server::{AppState, app},
    services::{
        device::{self, DeviceArg},
        heartbeat,
        metrics::Metrics,
    },
    worker::WorkerState,
};
use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
};

/// Serves the configured plugin until SIGINT/SIGTERM; fails if the model cannot be loaded.
pub fn serve(config: ServeConfig) -> Result<(), HostError> {
    let opening = Instant::now();
    let candidate = config.search.find(&config.plugin)?;
    let plugin = loader::probe_and_open(&candidate.path)?;
    let plugin_load_seconds = opening.elapsed().as_secs_f64();
    if plugin.manifest.id.as_str() != config.plugin {
        return Err(HostError::PluginIdMismatch {
            path: candidate.path,
            asked: config.plugin,
            declared: plugin.manifest.id.to_string(),
        });
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
        // SAFETY: `serve` calls this on the main thread before it builds the runtime, and
        // before the model-load and engine threads exist; the host has started no other thread
        // (the plugin probe runs in a child process), so nothing reads or writes the
        // environment concurrently.
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
    let worker = Arc::new(WorkerState::new(
        &plugin.manifest,
        config.model.clone(),
        device.to_string(),
        config.queue_size,
        metrics,
    ));
    let state = Arc::new(AppState::new(worker.clone(), config.http.clone()));
    let (stop_heartbeat, heartbeat_stopped) = watch::channel(false);
    let heartbeat = config.heartbeat.clone().map(|hb| {
        heartbeat::spawn(
            hb,
            worker.clone(),
            format!("http://{address}"),
            heartbeat_stopped,
        )
    });
    let (fatal_tx, fatal_rx) = oneshot::channel();
    load::spawn(&config, &plugin, &device, worker.clone(), fatal_tx);
    let outcome = Arc::new(OnceLock::new());
    let shutdown = {
        let (worker, outcome) = (worker.clone(), outcome.clone());
        async move {
            let fatal = shutdown::wait_for_stop(fatal_rx).await;
            if fatal.is_none() {
                shutdown::drain(&worker, config.shutdown_timeout).await;
            }
            let _ = outcome.set(fatal);
        }
    };
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    worker.jobs.close();
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
