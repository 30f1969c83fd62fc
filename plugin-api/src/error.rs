//! The one error type that crosses the boundary.

use abi_stable::{
    StableAbi,
    std_types::{ROption, RString},
};
use std::fmt;

/// Machine-readable error codes used by the host and the plugins shipped with it.
///
/// A plugin may use its own codes too; the host passes them through to clients.
pub mod error_code {
    /// A job parameter is missing, has the wrong type or is out of range (HTTP 400).
    pub const INVALID_PARAMS: &str = "invalid_params";
    /// The plugin does not serve the requested task (HTTP 400).
    pub const UNSUPPORTED_TASK: &str = "unsupported_task";
    /// The model could not be found, read or understood.
    pub const MODEL_LOAD: &str = "model_load";
    /// The device could not be used.
    pub const DEVICE: &str = "device";
    /// The plugin panicked; the host caught it.
    pub const PANIC: &str = "plugin_panic";
    /// Anything else that went wrong inside the plugin.
    pub const INTERNAL: &str = "internal";
}

/// An error reported by a plugin: a code, a human message and, for parameter errors, the field.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct PluginError {
    /// One of [`error_code`] or a plugin-specific code.
    pub code: RString,
    /// A message for the user, naming what was wrong.
    pub message: RString,
    /// The job parameter at fault, for `invalid_params` errors.
    pub field: ROption<RString>,
}

impl PluginError {
    /// An error with a code and a message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into().into(),
            field: ROption::RNone,
        }
    }

    /// An `invalid_params` error naming the field at fault.
    pub fn invalid_param(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: ROption::RSome(field.into()),
            ..Self::new(error_code::INVALID_PARAMS, message)
        }
    }

    /// An `unsupported_task` error.
    pub fn unsupported_task(task: &str, served: &[&str]) -> Self {
        Self {
            field: ROption::RSome("task".into()),
            ..Self::new(
                error_code::UNSUPPORTED_TASK,
                format!(
                    "task '{task}' is not served by this plugin (it serves: {})",
                    served.join(", ")
                ),
            )
        }
    }

    /// An `internal` error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(error_code::INTERNAL, message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let ROption::RSome(field) = &self.field {
            write!(f, " (field '{field}')")?;
        }
        Ok(())
    }
}

impl std::error::Error for PluginError {}
