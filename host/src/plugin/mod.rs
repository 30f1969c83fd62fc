//! Plugins: finding them on disk, checking and opening them (first in a throw-away child
//! process), and the `rbee-host plugins` sub-commands.

pub mod commands;
pub mod cpu_features;
pub mod discovery;
pub mod error;
pub mod loader;
pub mod probe;
