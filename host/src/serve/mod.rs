//! Serving: open and check the plugins, bind, load the pinned models in the background, serve
//! until a signal, then drain.

mod connections;
mod shutdown;

use crate::{
    config::{ModelConfig, ServeConfig},
    error::HostError,
    fleet::Fleet,
    plugin::loader::{self, OpenPlugin},
    server::{AppState, app},
    services::{
        device::{self, DeviceArg},
        heartbeat,
        metrics::MetricsRegistry,
    },
    worker::{Loader, WorkerState},
};
use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
};

/// How long connections still open after the drain may take to end before they are closed.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A checked plugin, and how long opening it took.
struct Opened {
    plugin: OpenPlugin,
    seconds: f64,
}

/// Serves the configured models until SIGINT/SIGTERM; fails if a pinned model cannot be loaded.
pub fn serve(config: ServeConfig) -> Result<(), HostError> {
    crate::fleet::memory::prefer_returning_memory();
    let mut plugins: HashMap<String, Opened> = HashMap::new();
    for entry in &config.models {
        if !plugins.contains_key(&entry.plugin) {
            plugins.insert(entry.plugin.clone(), open(&config, &entry.plugin)?);
        }
    }
    let registry = MetricsRegistry::new(config.vllm_metrics);
    let mut models = Vec::new();
    for entry in config.models.clone() {
        let opened = &plugins[&entry.plugin];
        models.push(Arc::new(served_model(
            entry,
            opened,
            &registry,
            config.isolate,
        )?));
    }
    export_thread_count(config.threads);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let fleet = Arc::new(Fleet::new(
        models,
        config.max_memory,
        config.cache_dir.clone(),
        registry,
    ));
    runtime.block_on(run(config, fleet))
}

/// Finds, probes and opens the plugin `id`, checking that it is the plugin it claims to be.
fn open(config: &ServeConfig, id: &str) -> Result<Opened, HostError> {
    let opening = Instant::now();
    let candidate = config.search.find(id)?;
    let plugin = loader::probe_and_open(&candidate.path)?;
    if plugin.manifest.id.as_str() != id {
        return Err(HostError::PluginIdMismatch {
            path: candidate.path,
            asked: id.to_string(),
            declared: plugin.manifest.id.to_string(),
        });
    }
    tracing::info!(
        plugin = id,
        version = plugin.manifest.version.as_str(),
        path = %plugin.path.display(),
        "plugin checked"
    );
    Ok(Opened {
        plugin,
        seconds: opening.elapsed().as_secs_f64(),
    })
}

/// The model `entry` names, on its device (checked against the plugin's backend), named after
/// the plugin's default model when it names none.
fn served_model(
    mut entry: ModelConfig,
    opened: &Opened,
    registry: &MetricsRegistry,
    isolate: bool,
) -> Result<WorkerState, HostError> {
    let manifest = &opened.plugin.manifest;
    let device: DeviceArg =
        device::choose(&entry.plugin, &manifest.backend, entry.device.as_ref())?;
    let description = device::probe(&device)?;
    if entry.id.is_empty() {
        entry.id = match manifest.default_model.as_str() {
            "" => entry.plugin.clone(),
            default => crate::config::model_id(default),
        };
    }
    tracing::info!(
        model = entry.id,
        plugin = entry.plugin,
        device = description,
        "serving"
    );
    let metrics = registry.for_model(&entry.id);
    metrics.plugin_loaded(opened.seconds);
    let loader = match isolate {
        true => Loader::Isolated(opened.plugin.path.clone()),
        false => Loader::InProcess(opened.plugin.module.load()),
    };
    Ok(WorkerState::new(entry, manifest, loader, device, metrics))
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

async fn run(config: ServeConfig, fleet: Arc<Fleet>) -> Result<(), HostError> {
    let listener = TcpListener::bind(config.bind).await.map_err(|e| {
        HostError::Usage(format!(
            "cannot listen on {}:{}: {e}",
            config.bind.0, config.bind.1
        ))
    })?;
    let address = listener.local_addr()?;
    tracing::info!("listening on http://{address}");
    let state = Arc::new(AppState::new(fleet.clone(), config.http.clone()));
    let (stop_heartbeat, heartbeat_stopped) = watch::channel(false);
    let heartbeat = config.heartbeat.clone().map(|hb| {
        heartbeat::spawn(
            hb,
            fleet.clone(),
            format!("http://{address}"),
            heartbeat_stopped,
        )
    });
    let (fatal_tx, fatal_rx) = oneshot::channel();
    fleet.load_pinned(fatal_tx);
    let keep_alive = fleet.spawn_keep_alive();
    let outcome = Arc::new(OnceLock::new());
    let shutdown = {
        let (fleet, outcome) = (fleet.clone(), outcome.clone());
        async move {
            let fatal = shutdown::wait_for_stop(fatal_rx).await;
            keep_alive.abort();
            if fatal.is_none() {
                shutdown::drain(fleet.models(), config.shutdown_timeout).await;
            }
            let _ = outcome.set(fatal);
        }
    };
    let header_timeout = config.http.header_timeout;
    connections::serve(listener, app(state), header_timeout, CLOSE_GRACE, shutdown).await;
    for model in fleet.models() {
        model.jobs.close();
    }
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
