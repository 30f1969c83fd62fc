#![allow(non_local_definitions)] // abi_stable's #[sabi_trait] expands impls inside consts.
//! The contract between `rbee-host` and its worker plugins.
//!
//! A plugin is a dynamic library (`.so` / `.dylib`) that serves one *worker type* (text
//! generation, image generation, embeddings, ...) on one backend (cpu, cuda, metal). This crate is
//! everything both sides share; nothing else crosses the boundary.
//!
//! # Lifecycle
//!
//! 1. The host opens the library and reads its [`PluginPreamble`] (plain data, no plugin code
//!    runs): the plugin-api version it was built against and the CPU features it was compiled
//!    for. A plugin that needs features this CPU lacks is refused here.
//! 2. The host checks the root module ([`PluginModRef`]) with abi_stable: API major version and
//!    type layout. A mismatch is refused with a readable message.
//! 3. [`PluginMod::manifest`] describes the plugin. It must be cheap and must not touch a device.
//! 4. [`PluginMod::load`] loads the model onto the device named in the [`LoadRequest`] and
//!    returns a [`Worker`]. It may take minutes; report progress through [`HostApi`].
//! 5. The host calls [`Worker::validate`] for every submitted job before queueing it, and
//!    [`Worker::execute`] for one job at a time on a host-owned thread. The plugin streams
//!    events into an [`EventSink`] and returns a [`JobEnd`] (or a [`PluginError`]).
//! 6. Libraries are never unloaded; an upgrade is a restart.
//!
//! # Writing a plugin
//!
//! Implement [`PluginWorker`] for your worker and export it with [`export_plugin!`]. The macro
//! catches panics at every entry point and turns them into [`PluginError`]s (a panic that
//! crossed the boundary would abort the host), and records the CPU features the crate was
//! compiled for. Build with `crate-type = ["cdylib"]` and `panic = "unwind"` (the default).
//!
//! ```ignore
//! use rbee_plugin_api::*;
//!
//! struct Echo;
//!
//! impl PluginWorker for Echo {
//!     fn validate(&self, task: &str, params_json: &str) -> Result<(), PluginError> { Ok(()) }
//!     fn execute(&self, job: &Job, sink: &mut EventSinkRef<'_>) -> Result<JobEnd, PluginError> {
//!         sink.text(0, "hello".into());
//!         Ok(JobEnd::new("completed"))
//!     }
//!     fn status(&self) -> WorkerStatus { WorkerStatus::default() }
//! }
//!
//! fn manifest() -> Manifest { /* ... */ }
//! fn load(request: LoadRequest, host: HostApiRef) -> Result<Echo, PluginError> { Ok(Echo) }
//!
//! export_plugin!(manifest: manifest, load: load);
//! ```
//!
//! # Threading
//!
//! `manifest` and `load` are called once, on a host thread that may block. `execute` is called
//! on the host's engine thread, one job at a time. `validate` and `status` may be called from
//! other threads at any moment, also while a job executes, so a worker is `Send + Sync`.
//!
//! # Compatibility
//!
//! The host refuses a plugin whose plugin-api major version differs from its own. Within a major
//! version, a plugin built against an older minor release keeps loading in a newer host.

pub use abi_stable;

mod error;
mod events;
mod export;
mod host_api;
mod manifest;
mod module;
mod worker;

pub use error::{PluginError, error_code};
pub use events::{Artifact, EventSink, EventSink_TO, EventSinkRef, Flow};
pub use export::{
    __load_entry, __manifest_entry, __root_module, COMPILED_CPU_FEATURES, PluginWorker,
    WorkerAdapter, catch_panic, compiled_cpu_features,
};
pub use host_api::{HostApi, HostApi_TO, HostApiRef, LogLevel};
pub use manifest::{DeviceSpec, LoadRequest, Manifest};
pub use module::{PREAMBLE_SYMBOL, PluginMod, PluginModRef, PluginPreamble, ROOT_MODULE_SYMBOL};
pub use worker::{Job, JobEnd, Worker, Worker_TO, WorkerBox, WorkerStatus};

/// The plugin-api version this crate is, compiled into every plugin built against it.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The major version of this API: host and plugin must agree on it.
pub const API_MAJOR: u64 = parse_major(API_VERSION);

const fn parse_major(version: &str) -> u64 {
    let bytes = version.as_bytes();
    let mut major = 0;
    let mut i = 0;
    while i < bytes.len() && bytes[i] != b'.' {
        major = major * 10 + (bytes[i] - b'0') as u64;
        i += 1;
    }
    major
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_major_matches_the_package_version() {
        let major: u64 = super::API_VERSION
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(super::API_MAJOR, major);
    }
}
