//! The compute device and CPU thread count a worker runs with.

use crate::error::LlmError;
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
pub fn open(spec: &DeviceSpec) -> Result<Device, LlmError> {
    let ordinal = spec.ordinal as usize;
    match spec.kind.as_str() {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(ordinal),
        "metal" => metal(ordinal),
        other => Err(LlmError::Device(format!(
            "unknown device kind '{other}' (expected cpu, cuda or metal)"
        ))),
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Device, LlmError> {
    Device::new_cuda(ordinal)
        .map_err(|e| LlmError::Device(format!("cannot open cuda:{ordinal}: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda(ordinal: usize) -> Result<Device, LlmError> {
    Err(not_built_for("cuda", ordinal))
}

#[cfg(feature = "metal")]
fn metal(ordinal: usize) -> Result<Device, LlmError> {
    Device::new_metal(ordinal)
        .map_err(|e| LlmError::Device(format!("cannot open metal:{ordinal}: {e}")))
}

#[cfg(not(feature = "metal"))]
fn metal(ordinal: usize) -> Result<Device, LlmError> {
    Err(not_built_for("metal", ordinal))
}

#[cfg(any(not(feature = "cuda"), not(feature = "metal")))]
fn not_built_for(kind: &str, ordinal: usize) -> LlmError {
    LlmError::Device(format!(
        "device {kind}:{ordinal} was requested, but this plugin (llm-{BACKEND}) was built without \
         {kind} support; use the llm-{kind} plugin"
    ))
}

/// The number of threads candle's quantized matmuls run on.
///
/// candle 0.11 sizes its pools from the environment when each is first used:
/// `CANDLE_NUM_THREADS` for the barrier pool of the quantized matmuls, `RAYON_NUM_THREADS` for
/// rayon's global pool and gemm. rbee-host exports both from `--threads` before it starts any
/// thread (see `LoadRequest::threads`), so the plugin only reports what it got.
pub fn compute_threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
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
