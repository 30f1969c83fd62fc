//! [`PluginError`] constructors for the failures every plugin reports the same way.

use rbee_plugin_api::{PluginError, error_code};
use std::fmt::Display;

/// A `model_load` error: the model could not be found, read or understood.
pub fn model_load(message: impl Into<String>) -> PluginError {
    PluginError::new(error_code::MODEL_LOAD, message)
}

/// A `device` error: the requested device cannot be used by this build.
pub fn device(message: impl Into<String>) -> PluginError {
    PluginError::new(error_code::DEVICE, message)
}

/// An `internal` error from any error value, for `map_err(rbee_plugin_kit::error::internal)`.
pub fn internal(error: impl Display) -> PluginError {
    PluginError::internal(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let load = model_load("m.gguf: no such file");
        assert_eq!(load.code.as_str(), error_code::MODEL_LOAD);
        assert_eq!(load.message.as_str(), "m.gguf: no such file");
        assert_eq!(device("no GPU").code.as_str(), error_code::DEVICE);
        let io = std::io::Error::other("disk on fire");
        assert_eq!(internal(io).message.as_str(), "disk on fire");
    }
}
