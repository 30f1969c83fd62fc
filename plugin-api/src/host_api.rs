//! Services the host offers to a plugin: logging, a cache directory, load progress.

use crate::ExtensionRef;
use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RArc, ROption, RStr, RString},
};

/// Severity of a log line sent through [`HostApi::log`].
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something failed.
    Error,
}

/// Host services, implemented by the host. Cheap to clone; may be kept and used from any thread
/// for as long as the worker lives. Frozen for all of 2.x: later minors add capabilities through
/// [`HostApi::extension`].
///
/// A plugin has its own copy of `tracing` and cannot see the host's subscriber: send log lines
/// through [`HostApi::log`] to have them appear in the host's logs with the plugin id attached.
#[sabi_trait]
pub trait HostApi: Clone + Send + Sync {
    /// Writes a log line into the host's log, under `target` (usually a module path). Cheap;
    /// never blocks on I/O.
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);

    /// The directory where the plugin should cache downloaded models.
    fn cache_dir(&self) -> RString;

    /// Reports model-loading progress: `fraction` in 0..=1 and what is happening.
    /// The host shows it in `/ready` and in its logs. Called from the loading thread.
    fn load_progress(&self, fraction: f32, message: RStr<'_>);

    /// An optional capability the host offers by name (see [`crate::extension`]), or `RNone`
    /// when this host does not know it: fall back to 2.0's behaviour then.
    #[sabi(last_prefix_field)]
    fn extension(&self, name: RStr<'_>) -> ROption<ExtensionRef>;
}

/// How a plugin holds the host's services.
pub type HostApiRef = HostApi_TO<'static, RArc<()>>;
