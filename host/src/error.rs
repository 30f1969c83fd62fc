//! Start-up errors: what the user did wrong or what went wrong, with an exit code.

use crate::{plugin::error::LoadError, services::device::DeviceError};
use std::path::PathBuf;

/// Everything that stops `rbee-host` from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The command line or environment asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// No plugin with the requested id was found.
    #[error("no plugin '{id}' found in {searched}; plugins found: {found}")]
    PluginNotFound {
        /// The id asked for.
        id: String,
        /// The directories searched, joined for display.
        searched: String,
        /// The ids found, joined for display.
        found: String,
    },
    /// The same plugin id was found twice.
    #[error("plugin '{id}' is found twice: {} and {}; remove one or pass --plugins-dir", first.display(), second.display())]
    DuplicatePlugin {
        /// The id.
        id: String,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
    /// A plugin file was refused: unsafe permissions, not a plugin, incompatible, wrong CPU.
    #[error(transparent)]
    PluginRefused(#[from] LoadError),
    /// The plugin file for an id declares another id.
    #[error(
        "refusing {}: the file is named '{asked}' but the plugin declares id '{declared}'",
        path.display()
    )]
    PluginIdMismatch {
        /// The file.
        path: PathBuf,
        /// The id asked for, which names the file.
        asked: String,
        /// The id in the plugin's manifest.
        declared: String,
    },
    /// The device cannot be used with this plugin.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The plugin failed to load its model.
    #[error("loading the model failed: {0}")]
    ModelLoad(String),
    /// An I/O failure (binding the port, reading a directory).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl HostError {
    /// The process exit code: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            HostError::Usage(_) | HostError::PluginNotFound { .. } => 2,
            _ => 1,
        }
    }
}
