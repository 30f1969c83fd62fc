//! Validated settings: what the command line (and a models file) resolve to, and what serving
//! runs on.

pub mod models_dir;
pub mod models_file;

use crate::{plugin::discovery::SearchDirs, services::device::DeviceArg};
use std::{net::IpAddr, path::PathBuf, time::Duration};

/// Validated settings for serving.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The models served, in the order given; the single-model flags make one pinned entry.
    pub models: Vec<ModelConfig>,
    /// The most memory loaded workers may hold together, in bytes; `None`: no budget.
    pub max_memory: Option<u64>,
    /// Address and port to bind.
    pub bind: (IpAddr, u16),
    /// `--threads`, exported for the compute libraries' pools (0: theirs).
    pub threads: u32,
    /// Drain timeout.
    pub shutdown_timeout: Duration,
    /// Model cache directory.
    pub cache_dir: PathBuf,
    /// Plugin search directories.
    pub search: SearchDirs,
    /// Authentication, CORS, body limit.
    pub http: HttpSettings,
    /// Whether to publish vLLM-named gauges too.
    pub vllm_metrics: bool,
    /// Heartbeats to a hive, if one was given.
    pub heartbeat: Option<HeartbeatConfig>,
    /// Whether plugins run in supervised child processes (the default; not `--in-process`).
    pub isolate: bool,
}

/// One model the host serves: which plugin runs it, on what, and how long it stays loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The name requests use (`model`); empty until serving fills in the plugin's default.
    pub id: String,
    /// Other names requests may use for it.
    pub aliases: Vec<String>,
    /// Plugin id.
    pub plugin: String,
    /// Model reference; empty for the plugin's default.
    pub model: String,
    /// Requested device, if any.
    pub device: Option<DeviceArg>,
    /// Plugin compute threads (0: the plugin chooses).
    pub threads: u32,
    /// The cap on concurrent jobs; 0 for none.
    pub parallel: u32,
    /// Queue capacity.
    pub queue_size: usize,
    /// Plugin load options (JSON object text, possibly empty).
    pub plugin_options: String,
    /// How long it stays loaded with nothing to do; `None`: for ever.
    pub keep_alive: Option<Duration>,
    /// Loaded at start-up and never unloaded for idleness or memory.
    pub pinned: bool,
}

/// The settings every model starts from: the command line's flags.
#[derive(Debug, Clone)]
pub struct ModelDefaults {
    /// `--device`.
    pub device: Option<DeviceArg>,
    /// `--threads`.
    pub threads: u32,
    /// `--parallel`.
    pub parallel: u32,
    /// `--queue-size`.
    pub queue_size: usize,
    /// `--plugin-options`.
    pub plugin_options: String,
}

/// How long an unpinned model stays loaded with nothing to do, unless it says otherwise.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(300);

impl ModelDefaults {
    /// An unpinned entry for `model` served by `plugin`, named `id`, with these defaults.
    pub fn entry(&self, id: String, plugin: String, model: String) -> ModelConfig {
        ModelConfig {
            id,
            aliases: Vec::new(),
            plugin,
            model,
            device: self.device.clone(),
            threads: self.threads,
            parallel: self.parallel,
            queue_size: self.queue_size,
            plugin_options: self.plugin_options.clone(),
            keep_alive: Some(DEFAULT_KEEP_ALIVE),
            pinned: false,
        }
    }
}

/// The name a model reference goes by: a local path's file name (without `.gguf`), a hub
/// reference as written, or empty for the plugin's default.
pub fn model_id(model: &str) -> String {
    let path = std::path::Path::new(model);
    if !path.is_absolute() && !model.starts_with('.') {
        return model.to_string();
    }
    let name = path
        .file_name()
        .map_or(model.into(), |n| n.to_string_lossy());
    name.strip_suffix(".gguf").unwrap_or(&name).to_string()
}

/// HTTP policy: who may call, from which origins, with how large a body.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The bearer key every non-probe route requires, if any.
    pub api_key: Option<String>,
    /// Origins allowed by CORS (`*` for any); none means no CORS headers.
    pub cors_origins: Vec<String>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a submitted job waits for a client to open its stream before it is cancelled;
    /// `None` waits for ever.
    pub unread_timeout: Option<std::time::Duration>,
    /// How long a client may take to send a request's headers (also the most a keep-alive
    /// connection stays idle).
    pub header_timeout: Duration,
    /// How long a client may pause while sending a request body.
    pub body_timeout: Duration,
}

/// Where and how often to send heartbeats.
#[derive(Debug, Clone)]
pub struct HeartbeatConfig {
    /// The hive's base URL.
    pub hive_url: String,
    /// Time between heartbeats.
    pub interval: Duration,
    /// This worker's id.
    pub worker_id: String,
    /// The URL clients reach this worker at; default: the bound address.
    pub advertise_url: Option<String>,
}
