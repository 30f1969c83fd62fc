//! Validated settings: what the command line resolves to, and what serving runs on.

use crate::{plugin::discovery::SearchDirs, services::device::DeviceArg};
use std::{net::IpAddr, path::PathBuf, time::Duration};

/// Validated settings for serving.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Plugin id.
    pub plugin: String,
    /// Model reference; empty for the plugin's default.
    pub model: String,
    /// Requested device, if any.
    pub device: Option<DeviceArg>,
    /// Address and port to bind.
    pub bind: (IpAddr, u16),
    /// Plugin compute threads.
    pub threads: u32,
    /// The cap on concurrent jobs; 0 for none.
    pub parallel: u32,
    /// Queue capacity.
    pub queue_size: usize,
    /// Plugin load options (JSON object text, possibly empty).
    pub plugin_options: String,
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
}

/// HTTP policy: who may call, from which origins, with how large a body.
#[derive(Debug, Clone, Default)]
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
