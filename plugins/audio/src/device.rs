//! The compute device a worker runs on.

use crate::error::AudioError;
use candle_core::Device;
use rbee_plugin_api::DeviceSpec;

/// The backend this build was compiled for: `cuda`, `metal` or `cpu`.
pub const BACKEND: &str = if cfg!(feature = "cuda") {
    "cuda"
} else if cfg!(feature = "metal") {
    "metal"
} else {
    "cpu"
};

/// The candle device for `spec`; a GPU this build cannot drive is a `device` error.
pub fn open(spec: &DeviceSpec) -> Result<Device, AudioError> {
    let ordinal = spec.ordinal as usize;
    match spec.kind.as_str() {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(ordinal),
        "metal" => metal(ordinal),
        other => Err(AudioError::Device(format!(
            "unknown device kind '{other}' (expected cpu, cuda or metal)"
        ))),
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Device, AudioError> {
    Device::new_cuda(ordinal)
        .map_err(|e| AudioError::Device(format!("cannot open cuda:{ordinal}: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda(ordinal: usize) -> Result<Device, AudioError> {
    Err(not_built_for("cuda", ordinal))
}

#[cfg(feature = "metal")]
fn metal(ordinal: usize) -> Result<Device, AudioError> {
    Device::new_metal(ordinal)
        .map_err(|e| AudioError::Device(format!("cannot open metal:{ordinal}: {e}")))
}

#[cfg(not(feature = "metal"))]
fn metal(ordinal: usize) -> Result<Device, AudioError> {
    Err(not_built_for("metal", ordinal))
}

#[cfg(any(not(feature = "cuda"), not(feature = "metal")))]
fn not_built_for(kind: &str, ordinal: usize) -> AudioError {
    AudioError::Device(format!(
        "device {kind}:{ordinal} was requested, but this plugin (audio-{BACKEND}) was built without \
         {kind} support; use the audio-{kind} plugin"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str) -> DeviceSpec {
        DeviceSpec {
            kind: kind.into(),
            ordinal: 0,
        }
    }

    #[test]
    fn cpu_opens() {
        assert!(open(&spec("cpu")).unwrap().is_cpu());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_cpu_build_asked_for_cuda_says_so() {
        let error = open(&spec("cuda")).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("cuda:0") && message.contains("without cuda"),
            "{message}"
        );
        assert_eq!(
            rbee_plugin_api::PluginError::from(error).code.as_str(),
            "device"
        );
    }

    #[test]
    fn an_unknown_device_kind_is_refused() {
        assert!(open(&spec("tpu")).is_err());
    }
}
