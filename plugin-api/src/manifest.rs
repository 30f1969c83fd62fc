//! What a plugin says about itself, and what the host asks it to load.

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

/// A plugin's description of itself, returned by [`crate::PluginMod::manifest`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Manifest {
    /// `<kind>-<backend>`, e.g. `llm-cpu`: what users pass to `rbee-host --plugin`.
    pub id: RString,
    /// The worker type, e.g. `llm`, `sd`, `embeddings`.
    pub kind: RString,
    /// The backend the plugin was built for: `cpu`, `cuda` or `metal`.
    pub backend: RString,
    /// The plugin's own version (semver).
    pub version: RString,
    /// The plugin-api version the plugin was built against; use [`crate::API_VERSION`].
    pub api_version: RString,
    /// One line saying what the plugin does.
    pub description: RString,
    /// The tasks served, e.g. `text-generation`, `image-generation`, `embedding`.
    pub tasks: RVec<RString>,
    /// A JSON Schema of the job parameters.
    pub params_schema_json: RString,
    /// The model loaded when the user names none; empty if there is no default.
    pub default_model: RString,
    /// CPU features the plugin was compiled for; use [`crate::compiled_cpu_features`].
    pub required_cpu_features: RVec<RString>,
}

/// The device a worker runs on.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// `cpu`, `cuda` or `metal`.
    pub kind: RString,
    /// The device index for `cuda` and `metal`; 0 for `cpu`.
    pub ordinal: u32,
}

/// What the host asks [`crate::PluginMod::load`] to load.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct LoadRequest {
    /// A local path or a hub reference (`org/repo[:file]`); empty means the default model.
    pub model: RString,
    /// The device to load onto; the host has already checked that it works.
    pub device: DeviceSpec,
    /// Compute threads to use; 0 means the plugin chooses. Because rayon, OpenMP and candle
    /// size their pools from the environment, the host also exports `RAYON_NUM_THREADS`,
    /// `OMP_NUM_THREADS` and `CANDLE_NUM_THREADS` with this value before it starts any thread.
    pub threads: u32,
    /// Plugin-specific load options as a JSON object (`--plugin-options`); empty if none.
    pub options_json: RString,
}
