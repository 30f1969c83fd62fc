//! Command-line flags (raw values) and their turning into validated settings.

use crate::{
    config::{
        HeartbeatConfig, HttpSettings, ModelConfig, ModelDefaults, ServeConfig, model_id,
        models_dir, models_file,
    },
    error::HostError,
    plugin::discovery::SearchDirs,
    services::device::DeviceArg,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::{net::IpAddr, path::PathBuf, time::Duration};

/// rbee-host: serves plugin workers (LLM, image generation, ...) over HTTP: one model, or many
/// from a models file, loaded on demand.
#[derive(Debug, Parser)]
#[command(
    name = "rbee-host",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Inspect installed plugins instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// What to serve, and how.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// Sub-commands besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with installed plugins.
    Plugins {
        /// What to do.
        #[command(subcommand)]
        action: PluginsAction,
    },
}

/// `rbee-host plugins ...`
#[derive(Debug, Subcommand)]
pub enum PluginsAction {
    /// List every plugin found, its version and whether this host can load it.
    List(SearchArgs),
    /// Show one plugin's manifest, parameter schema, API version and compatibility verdict,
    /// without loading a model.
    Inspect {
        /// A plugin id (searched like --plugin) or the path of a plugin file.
        plugin: String,
        /// Where to look for plugins.
        #[command(flatten)]
        search: SearchArgs,
    },
    /// Open one plugin file and check it, in this process (the host runs this in a child
    /// process before it loads any plugin, so a crashing library cannot take it down).
    #[command(hide = true)]
    Probe {
        /// The plugin file.
        path: PathBuf,
    },
    /// Load and run one plugin file in this process for the host that started it, which talks
    /// to it over stdin and stdout (plugins run this way unless --in-process is given).
    #[command(hide = true)]
    Isolated {
        /// The plugin file.
        path: PathBuf,
    },
}

/// Where to look for plugins.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A directory to search for plugins first (repeatable). Then come $RBEE_PLUGIN_PATH,
    /// ~/.local/share/rbee/plugins, /usr/lib/rbee/plugins and plugins/ beside the executable.
    #[arg(long = "plugins-dir", value_name = "DIR")]
    pub plugins_dirs: Vec<PathBuf>,
}

/// Flags for serving a plugin.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The plugin to serve, by id (`<kind>-<backend>`, e.g. llm-cpu, sd-cuda).
    #[arg(long, value_name = "ID", conflicts_with_all = ["models", "models_dir"])]
    pub plugin: Option<String>,
    /// The model: a local path or a hub reference (org/repo[:file]); default: the plugin's.
    #[arg(long, value_name = "PATH|REPO", conflicts_with_all = ["models", "models_dir"])]
    pub model: Option<String>,
    /// Serve every model a TOML models file lists (see README), routed by the requests'
    /// `model`, loaded on demand and unloaded when idle.
    #[arg(long, value_name = "FILE", conflicts_with = "models_dir")]
    pub models: Option<PathBuf>,
    /// Serve every model in a directory (.gguf files, Stable Diffusion and CTranslate2 Whisper
    /// directories), each named after its file.
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// The backend of the plugins --models-dir uses (`<kind>-<backend>`).
    #[arg(long, default_value = "cpu", value_name = "BACKEND")]
    pub backend: String,
    /// The most memory loaded models may hold together (bytes, or e.g. 8GiB, 512MB); the least
    /// recently used unpinned model is unloaded to make room. Default: 90% of the memory
    /// available at start-up.
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<bytesize::ByteSize>,
    /// The device: cpu, cuda[:N] or metal[:N]; default: the plugin's backend, device 0.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<DeviceArg>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Compute threads for the plugin (0: the plugin chooses).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// The most jobs run at once (0: as many as the worker can; a worker that runs one job at a
    /// time is not raised by this).
    #[arg(long, env = "RBEE_PARALLEL", default_value_t = 0)]
    pub parallel: u32,
    /// How many jobs may wait in the queue; more get 503 with Retry-After.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub queue_size: u32,
    /// Plugin-specific load options, a JSON object.
    #[arg(long, value_name = "JSON")]
    pub plugin_options: Option<String>,
    /// How long running jobs may take to finish after SIGTERM before they are cancelled, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub shutdown_timeout: u64,
    /// Where plugins cache models downloaded from the hub (default: the standard Hugging Face
    /// cache, `$HF_HOME/hub` or `~/.cache/huggingface/hub`, shared with other tools).
    #[arg(long, env = "RBEE_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The bearer key clients must send (`Authorization: Bearer <key>`); required when
    /// listening on a non-loopback address.
    #[arg(long, env = "RBEE_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Read the API key from this file instead.
    #[arg(long, value_name = "FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,
    /// Allow listening on a non-loopback address without an API key.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// An origin allowed to call the API from a browser (repeatable; `*` for any).
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// The largest request body accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Cancel a job submitted with POST /v1/jobs whose event stream no client opens within this
    /// many seconds (0: never), so that unread jobs do not hold a slot for ever.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub unread_timeout: u64,
    /// Close a connection whose request headers are not all sent within this many seconds
    /// (also the most a keep-alive connection stays idle).
    #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Answer 408 when a client pauses for this many seconds while sending a request body.
    #[arg(long, default_value_t = 60, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,
    /// Also publish the gateway gauges under another engine's names.
    #[arg(long, value_enum, default_value_t = MetricsCompat::None)]
    pub metrics_compat: MetricsCompat,
    /// The hive (or queen) to send the ready callback and heartbeats to.
    #[arg(long, visible_alias = "queen-url", value_name = "URL")]
    pub hive_url: Option<String>,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_interval: u64,
    /// This worker's id in heartbeats (default: a random one).
    #[arg(long, value_name = "ID")]
    pub worker_id: Option<String>,
    /// The URL clients reach this worker at, sent in heartbeats (default: http://HOST:PORT).
    #[arg(long, value_name = "URL")]
    pub advertise_url: Option<String>,
    /// Load plugins into the host's own process instead of a supervised child process per
    /// model. Saves the child (about 10 MB) and a pipe hop per event (a few microseconds), but
    /// a plugin that segfaults, aborts or overflows its stack then ends the whole host.
    #[arg(long, env = "RBEE_IN_PROCESS")]
    pub in_process: bool,
    /// Where to look for plugins.
    #[command(flatten)]
    pub search: SearchArgs,
}

/// Other engines' metric names the gateway gauges can also be published under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricsCompat {
    /// Only rbee's names.
    None,
    /// Also vLLM's (`vllm:num_requests_waiting`, ...), which the inference gateway reads by default.
    Vllm,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl ServeArgs {
    /// Checks the flags and resolves defaults.
    pub fn validate(self) -> Result<ServeConfig, HostError> {
        let plugin_options = match self.plugin_options {
            Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Object(_)) => text,
                _ => {
                    return Err(HostError::Usage(
                        "--plugin-options must be a JSON object".into(),
                    ));
                }
            },
            None => String::new(),
        };
        let cache_dir = self
            .cache_dir
            .or_else(|| std::env::var_os("HF_HOME").map(|home| PathBuf::from(home).join("hub")))
            .or_else(|| dirs::cache_dir().map(|dir| dir.join("huggingface").join("hub")))
            .unwrap_or_else(|| PathBuf::from(".rbee-cache"));
        let api_key = match (self.api_key, &self.api_key_file) {
            (Some(key), _) => Some(key),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        HostError::Usage(format!(
                            "cannot read --api-key-file {}: {e}",
                            file.display()
                        ))
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if api_key.as_deref() == Some("") {
            return Err(HostError::Usage("the API key is empty".into()));
        }
        if !self.host.is_loopback() && api_key.is_none() && !self.insecure_no_auth {
            return Err(HostError::Usage(format!(
                "listening on {} needs an API key (--api-key, --api-key-file or RBEE_API_KEY); \
                 pass --insecure-no-auth to serve without one",
                self.host
            )));
        }
        let heartbeat = self.hive_url.map(|hive_url| HeartbeatConfig {
            hive_url: hive_url.trim_end_matches('/').to_string(),
            interval: Duration::from_secs(self.heartbeat_interval),
            worker_id: self
                .worker_id
                .unwrap_or_else(|| format!("worker-{}", uuid::Uuid::new_v4().simple())),
            advertise_url: self.advertise_url.clone(),
        });
        let defaults = ModelDefaults {
            device: self.device,
            threads: self.threads,
            parallel: self.parallel,
            queue_size: self.queue_size as usize,
            plugin_options,
        };
        let models = match (self.plugin, &self.models, &self.models_dir) {
            (_, Some(file), _) => models_file::read(file, &defaults).map_err(HostError::Usage)?,
            (_, _, Some(dir)) => {
                models_dir::scan(dir, &self.backend, &defaults).map_err(HostError::Usage)?
            }
            (Some(plugin), None, None) => vec![single_model(plugin, self.model, &defaults)],
            (None, None, None) => {
                return Err(HostError::Usage(
                    "say what to serve: --plugin <ID> (see `rbee-host plugins list`), \
                     --models <FILE> or --models-dir <DIR>"
                        .into(),
                ));
            }
        };
        Ok(ServeConfig {
            models,
            max_memory: match self.max_memory {
                Some(size) => Some(size.as_u64()),
                None => default_memory_budget(),
            },
            http: HttpSettings {
                api_key,
                cors_origins: self.cors_origins,
                max_body_bytes: self.max_body_bytes,
                unread_timeout: (self.unread_timeout > 0)
                    .then(|| std::time::Duration::from_secs(self.unread_timeout)),
                header_timeout: Duration::from_secs(self.header_timeout),
                body_timeout: Duration::from_secs(self.body_timeout),
            },
            vllm_metrics: self.metrics_compat == MetricsCompat::Vllm,
            heartbeat,
            bind: (self.host, self.port),
            threads: self.threads,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            isolate: !self.in_process,
            cache_dir,
            search: SearchDirs::new(&self.search.plugins_dirs)?,
        })
    }
}

/// The `--plugin`/`--model` case: one pinned entry that never unloads, named after its model.
fn single_model(plugin: String, model: Option<String>, defaults: &ModelDefaults) -> ModelConfig {
    let model = model.unwrap_or_default();
    let mut entry = defaults.entry(model_id(&model), plugin, model);
    entry.pinned = true;
    entry.keep_alive = None;
    entry
}

/// 90% of the memory available now (Linux's `MemAvailable`); `None` where it cannot be read.
fn default_memory_budget() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024 / 10 * 9)
}
