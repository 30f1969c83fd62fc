//! The host's side of `HostApi`: plugin logs into tracing, the cache dir, load progress.

use crate::readiness::Readiness;
use abi_stable::std_types::{RStr, RString};
use rbee_plugin_api::{HostApi, LogLevel};
use std::{path::PathBuf, sync::Arc};

/// What a plugin can ask of the host.
#[derive(Clone)]
pub struct HostServices {
    /// The plugin's id, attached to every log line it sends.
    pub plugin_id: String,
    /// Where it should cache models.
    pub cache_dir: PathBuf,
    /// Where load progress goes.
    pub readiness: Arc<Readiness>,
}

impl HostApi for HostServices {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        let (plugin, target, message) =
            (self.plugin_id.as_str(), target.as_str(), message.as_str());
        match level {
            LogLevel::Trace => tracing::trace!(plugin, target, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, target, "{message}"),
            LogLevel::Info => tracing::info!(plugin, target, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, target, "{message}"),
            LogLevel::Error => tracing::error!(plugin, target, "{message}"),
        }
    }

    fn cache_dir(&self) -> RString {
        self.cache_dir.to_string_lossy().into_owned().into()
    }

    fn load_progress(&self, fraction: f32, message: RStr<'_>) {
        tracing::info!(
            plugin = self.plugin_id,
            "loading: {:.0}% {message}",
            fraction * 100.0
        );
        self.readiness.progress(fraction, message.as_str());
    }
}
