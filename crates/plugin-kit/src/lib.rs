//! The plugin kit: what every rbee plugin would otherwise write again.
//!
//! - [`source`]: one rule set telling a local model path from a hub reference `org/repo[:file]`.
//! - [`error`]: [`PluginError`](rbee_plugin_api::PluginError) constructors for the failures
//!   plugins share (model loading, devices, internal errors).
//! - [`options`]: the load options (`--plugin-options`) read into the plugin's own type.
//! - [`params`]: a job's JSON parameters read into a `#[derive(Deserialize, JsonSchema)]` type,
//!   with errors naming the field, and the manifest's JSON Schema derived from that same type.
//!
//! A plugin derives `JsonSchema` with the workspace's `schemars` (`schemars.workspace = true`).
//! The kit is built with the plugins' flags, like every crate under `crates/`.

pub mod error;
pub mod options;
pub mod params;
pub mod source;
