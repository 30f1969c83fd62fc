//! What a plugin says about itself, and what the host asks it to load.

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

/// A plugin's description of itself, returned by [`crate::PluginMod::manifest`].
///
/// Build it with [`Manifest::new`]; [`crate::export_plugin!`] fills in `api_version` and
/// `required_cpu_features` itself.
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
    /// The plugin-api version the plugin was built against (filled in by the export macro).
    pub api_version: RString,
    /// One line saying what the plugin does.
    pub description: RString,
    /// The tasks served: names from [`crate::tasks`] for the standard routes, or the
    /// plugin's own.
    pub tasks: RVec<RString>,
    /// A JSON Schema of the job parameters.
    pub params_schema_json: RString,
    /// The model loaded when the user names none; empty if there is no default.
    pub default_model: RString,
    /// CPU features the plugin was compiled for (filled in by the export macro).
    pub required_cpu_features: RVec<RString>,
    /// The capabilities its workers offer through [`crate::Worker::extension`], by name.
    pub capabilities: RVec<RString>,
}

impl Manifest {
    /// A manifest for plugin `kind`-`backend` at `version`, serving `tasks`.
    pub fn new(kind: &str, backend: &str, version: &str, tasks: &[&str]) -> Self {
        Self {
            id: format!("{kind}-{backend}").into(),
            kind: kind.into(),
            backend: backend.into(),
            version: version.into(),
            api_version: crate::API_VERSION.into(),
            description: RString::new(),
            tasks: tasks.iter().map(|&task| task.into()).collect(),
            params_schema_json: RString::new(),
            default_model: RString::new(),
            required_cpu_features: RVec::new(),
            capabilities: RVec::new(),
        }
    }

    /// Sets the one-line description.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }

    /// Sets the JSON Schema of the job parameters.
    pub fn params_schema(mut self, schema_json: impl Into<String>) -> Self {
        self.params_schema_json = schema_json.into().into();
        self
    }

    /// Sets the default model.
    pub fn default_model(mut self, model: &str) -> Self {
        self.default_model = model.into();
        self
    }

    /// Lists a capability the workers offer.
    pub fn capability(mut self, name: &str) -> Self {
        self.capabilities.push(name.into());
        self
    }
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

impl DeviceSpec {
    /// The CPU.
    pub fn cpu() -> Self {
        Self {
            kind: "cpu".into(),
            ordinal: 0,
        }
    }
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
    /// The most jobs the host will run at once (`--parallel`); 0 means no cap. A worker sizes
    /// its slots to `min(this, what it can do)` and reports that in
    /// [`crate::Worker::max_concurrent_jobs`].
    pub parallel: u32,
    /// Plugin-specific load options as a JSON object (`--plugin-options`); empty if none.
    pub options_json: RString,
    /// The capabilities the host offers through [`crate::HostApi::extension`], by name.
    pub host_capabilities: RVec<RString>,
}

impl LoadRequest {
    /// A request for `model` on the CPU, with no options.
    pub fn cpu(model: &str) -> Self {
        Self {
            model: model.into(),
            device: DeviceSpec::cpu(),
            threads: 0,
            parallel: 0,
            options_json: RString::new(),
            host_capabilities: RVec::new(),
        }
    }
}
