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
//!    for. Another major, or features this CPU lacks, are refused here in one paragraph.
//! 2. The host checks the root module ([`PluginModRef`]) with abi_stable: type layouts.
//! 3. [`PluginMod::manifest`] describes the plugin. It must be cheap and must not touch a device.
//! 4. [`PluginMod::load`] loads the model onto the device named in the [`LoadRequest`] and
//!    returns a [`Worker`], which says how many jobs it runs at once
//!    ([`Worker::max_concurrent_jobs`]). Loading may take minutes; report progress through
//!    [`HostApi`].
//! 5. The host calls [`Worker::validate`] for every submitted job before queueing it, off its
//!    async runtime. It calls [`Worker::execute`] on host-owned threads, up to
//!    `min(max_concurrent_jobs, --parallel)` at once. The plugin streams events into the job's
//!    [`JobSink`] (from that thread or its own) and returns a [`JobEnd`] or a [`PluginError`].
//! 6. Libraries are never unloaded; an upgrade is a restart.
//!
//! # The vocabulary
//!
//! [`tasks`] names every standard task, the parameters the host's routes send, the events each
//! emits and the keys of its `end` details, stop reasons included. Binary parameters (audio,
//! images) cross as bytes in [`Job::inputs`] and binary outputs as bytes in [`Artifact`]s; the
//! host picks the wire encoding.
//!
//! # Writing a plugin
//!
//! Implement [`PluginWorker`] for your worker and export it with [`export_plugin!`]. The macro
//! fills in the API version and the CPU features the crate was compiled for, and catches panics
//! at every entry point (a panic that crossed the boundary would abort the host). Build with
//! `crate-type = ["cdylib"]` and `panic = "unwind"` (the default). The `testing` feature gives
//! a recording sink and host services for unit tests ([`testing`]).
//!
//! ```ignore
//! use rbee_plugin_api::*;
//!
//! struct Echo;
//!
//! impl PluginWorker for Echo {
//!     fn validate(&self, job: &Job) -> Result<(), PluginError> { Ok(()) }
//!     fn execute(&self, job: Job, sink: JobSink) -> Result<JobEnd, PluginError> {
//!         sink.text(0, "hello".into());
//!         Ok(JobEnd::completed())
//!     }
//!     fn status(&self) -> WorkerStatus { WorkerStatus::default() }
//! }
//!
//! fn manifest() -> Manifest { Manifest::new("echo", "cpu", "0.1.0", &["echo"]) }
//! fn load(request: LoadRequest, host: HostApiRef) -> Result<Echo, PluginError> { Ok(Echo) }
//!
//! export_plugin!(manifest: manifest, load: load);
//! ```
//!
//! # Threading
//!
//! `manifest` may be called on any thread; `load` once, on a thread it may block. `validate`,
//! `status` and `extension` may be called from several threads at any moment, also while jobs
//! execute, so a worker is `Send + Sync`. Each `execute` call has a host thread of its own.
//!
//! # Compatibility
//!
//! The host refuses a plugin whose plugin-api major differs from its own, naming both. Within
//! a major, every type that crosses is frozen, and later minors add optional capabilities
//! ([`extension`]) that either side may lack: a plugin of any 2.x minor loads in a host of any
//! other 2.x minor.

pub use abi_stable;

mod error;
mod events;
mod export;
pub mod extension;
mod host_api;
mod manifest;
mod module;
pub mod tasks;
#[cfg(feature = "testing")]
pub mod testing;
mod worker;

pub use error::{PluginError, error_code};
pub use events::{Artifact, EventSink, EventSink_TO, EventSinkExt, Flow, JobSink, StopReason};
#[doc(hidden)]
pub use export::{__load_entry, __manifest_entry, __root_module, COMPILED_CPU_FEATURES};
pub use export::{PluginWorker, catch_panic, panic_report};
pub use extension::{Capability, Extension, ExtensionRef};
pub use host_api::{HostApi, HostApi_TO, HostApiRef, LogLevel};
pub use manifest::{DeviceSpec, LoadRequest, Manifest};
pub use module::{PREAMBLE_SYMBOL, PluginMod, PluginModRef, PluginPreamble, ROOT_MODULE_SYMBOL};
pub use worker::{Input, Job, JobEnd, Worker, Worker_TO, WorkerBox, WorkerStatus};

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
