//! The backend this build targets, and the candle device a worker runs on.

use candle_core::Device;
use rbee_plugin_api::{DeviceSpec, PluginError, error_code};

/// The backend this build was compiled for: `cuda`, `metal` or `cpu`.
pub const BACKEND: &str = if cfg!(feature = "cuda") {
    "cuda"
} else if cfg!(feature = "metal") {
    "metal"
} else {
    "cpu"
};

/// The candle device for `spec`; a GPU this build cannot drive is a `device` error.
pub fn open(spec: &DeviceSpec) -> Result<Device, PluginError> {
    let ordinal = spec.ordinal as usize;
    let opened = match spec.kind.as_str() {
        "cpu" => Ok(Device::Cpu),
        "cuda" if cfg!(feature = "cuda") => Device::new_cuda(ordinal),
        "metal" if cfg!(feature = "metal") => Device::new_metal(ordinal),
        "cuda" | "metal" => {
            return Err(device_error(format!(
                "device {}:{ordinal} was requested, but this plugin (embeddings-{BACKEND}) was \
                 built without {} support; use embeddings-{}",
                spec.kind, spec.kind, spec.kind
            )));
        }
        other => return Err(device_error(format!("unknown device kind '{other}'"))),
    };
    opened.map_err(|e| device_error(format!("cannot open {}:{ordinal}: {e}", spec.kind)))
}

fn device_error(message: String) -> PluginError {
    PluginError::new(error_code::DEVICE, message)
}
