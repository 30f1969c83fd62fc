//! `template-<backend>`: a minimal rbee-host worker plugin that streams its input back in upper
//! case. Copy it to start a new worker type.
//!
//! A plugin is two functions, [`manifest`] and [`load`], exported with [`export_plugin!`], and a
//! worker implementing [`rbee_plugin_api::PluginWorker`].

mod params;
mod worker;

#[cfg(test)]
mod tests;

use rbee_plugin_api::{HostApiRef, LoadRequest, LogLevel, Manifest, PluginError, export_plugin};
use worker::{TASK, UppercaseWorker};

/// The backend this build was compiled for, from the `cpu` / `cuda` / `metal` features.
const BACKEND: &str = if cfg!(feature = "cuda") {
    "cuda"
} else if cfg!(feature = "metal") {
    "metal"
} else {
    "cpu"
};

/// Describes the plugin. Called before anything is loaded: cheap, and touches no device.
fn manifest() -> Manifest {
    Manifest::new("template", BACKEND, env!("CARGO_PKG_VERSION"), &[TASK])
        .description("Streams its input back word by word, in upper case")
        .params_schema(params::SCHEMA)
}

/// Loads the worker. A real plugin reads `request.model` onto `request.device` here, reporting
/// progress; it may take minutes.
fn load(request: LoadRequest, host: HostApiRef) -> Result<UppercaseWorker, PluginError> {
    host.load_progress(1.0, "nothing to load".into());
    let message = format!("ready on {}", request.device.kind);
    host.log(LogLevel::Info, "template".into(), message.as_str().into());
    Ok(UppercaseWorker)
}

export_plugin!(manifest: manifest, load: load);
