//! The root module every plugin exports, and the plain-data preamble read before it.

use crate::{HostApiRef, LoadRequest, Manifest, PluginError, WorkerBox};
use abi_stable::{StableAbi, library::RootModule, sabi_types::VersionStrings, std_types::RResult};

/// The entry points of a plugin, exported by [`crate::export_plugin!`].
///
/// Frozen for all of 2.x: abi_stable checks the loading side's layout against the plugin's, so
/// a field appended here would make hosts and plugins of different minors refuse each other.
/// Later minors grow through [`crate::extension`] instead.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
pub struct PluginMod {
    /// Describes the plugin. Called on any host thread, possibly in a probe process, before
    /// anything is loaded; cheap, touches no device and loads nothing.
    pub manifest: extern "C" fn() -> RResult<Manifest, PluginError>,

    /// Loads the model and returns the worker. Called once, on a host thread of its own that
    /// it may block for minutes (report progress through [`crate::HostApi::load_progress`]).
    /// The worker is the host's until the process ends; the host keeps `HostApiRef` valid
    /// for as long.
    #[sabi(last_prefix_field)]
    pub load: extern "C" fn(LoadRequest, HostApiRef) -> RResult<WorkerBox, PluginError>,
}

/// The version abi_stable compares when it loads a plugin: only the major version of the API.
/// Minor releases stay loadable in both directions; finer checks are the host's.
const ROOT_MODULE_VERSION: &str = "2.0.0";

impl RootModule for PluginModRef {
    abi_stable::declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "rbee_plugin";
    const NAME: &'static str = "rbee_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new(ROOT_MODULE_VERSION);
}

/// The exported symbol holding the abi_stable library header (the root module loader).
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// The exported symbol holding a plugin's [`PluginPreamble`], NUL-terminated for `dlsym`.
pub const PREAMBLE_SYMBOL: &[u8] = b"rbee_plugin_preamble\0";

/// The preamble's first bytes. Unchanged since 1.0, so a host can read any plugin's API version
/// and refuse another major in words rather than with a layout dump.
const MAGIC: [u8; 8] = *b"RBEEPLG1";

/// Plain data every plugin exports next to its root module, readable without running any
/// plugin code: the plugin-api version it was built against and the CPU features it was
/// compiled for. The host reads it first, so it can refuse a plugin that would crash on this CPU.
#[repr(C)]
pub struct PluginPreamble {
    magic: [u8; 8],
    api_version: [u8; 32],
    cpu_features: [u8; 480],
}

impl PluginPreamble {
    /// The preamble of a plugin built against this plugin-api, compiled with `cpu_features`
    /// (empty names are skipped).
    pub const fn new(cpu_features: &[&str]) -> Self {
        let mut features = [0u8; 480];
        let mut at = 0;
        let mut i = 0;
        while i < cpu_features.len() {
            if cpu_features[i].is_empty() {
                i += 1;
                continue;
            }
            if at > 0 {
                features[at] = b',';
                at += 1;
            }
            let name = cpu_features[i].as_bytes();
            let mut j = 0;
            while j < name.len() {
                features[at] = name[j];
                at += 1;
                j += 1;
            }
            i += 1;
        }
        Self {
            magic: MAGIC,
            api_version: padded(crate::API_VERSION),
            cpu_features: features,
        }
    }

    /// Whether this is a preamble at all (and not some other symbol of that name).
    pub fn is_valid(&self) -> bool {
        self.magic == MAGIC
    }

    /// The plugin-api version the plugin was built against.
    pub fn api_version(&self) -> &str {
        until_nul(&self.api_version)
    }

    /// The CPU features the plugin was compiled for, e.g. `avx2`, `fma`.
    pub fn cpu_features(&self) -> Vec<&str> {
        until_nul(&self.cpu_features)
            .split(',')
            .filter(|name| !name.is_empty())
            .collect()
    }
}

const fn padded(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && i < 31 {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

fn until_nul(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[..end]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_module_symbol_is_the_one_abi_stable_looks_up() {
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }

    #[test]
    fn root_module_version_carries_the_api_major() {
        let major: u64 = ROOT_MODULE_VERSION
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(major, crate::API_MAJOR);
    }

    #[test]
    fn preamble_round_trips_version_and_features() {
        let preamble = PluginPreamble::new(&["avx2", "fma"]);
        assert!(preamble.is_valid());
        assert_eq!(preamble.api_version(), crate::API_VERSION);
        assert_eq!(preamble.cpu_features(), ["avx2", "fma"]);
        assert!(PluginPreamble::new(&[]).cpu_features().is_empty());
    }
}
