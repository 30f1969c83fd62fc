//! Why a `--device` value is not understood, or why the device cannot be used.

use super::DeviceArg;

/// A `--device` value that is not `cpu`, `cuda[:N]` or `metal[:N]`.
#[derive(Debug, thiserror::Error)]
pub enum ParseDeviceError {
    /// The part after `:` is not a number.
    #[error("'{0}' is not a device number")]
    BadOrdinal(String),
    /// `cpu:N`: there is one CPU device.
    #[error("the cpu device takes no number")]
    NumberedCpu,
    /// Not a device kind the host knows.
    #[error("unknown device '{0}' (expected cpu, cuda[:N] or metal[:N])")]
    Unknown(String),
}

/// A device that cannot be used: not the plugin's backend, absent, or not working.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device asked for is not the plugin's backend.
    #[error(
        "plugin {plugin_id} is built for the {backend} backend but --device {asked} was asked; \
         use the {kind}-{} plugin, or --device {backend}",
        asked.kind
    )]
    WrongBackend {
        /// The plugin's id.
        plugin_id: String,
        /// The plugin's backend.
        backend: String,
        /// The plugin's kind (its id without the backend).
        kind: String,
        /// The device asked for.
        asked: DeviceArg,
    },
    /// No CUDA driver library could be loaded.
    #[error(
        "no CUDA driver found (libcuda.so.1 could not be loaded): is the NVIDIA driver installed?"
    )]
    NoCudaDriver,
    /// The CUDA driver lacks a function the probe needs.
    #[error("the CUDA driver lacks {name}: {error}")]
    CudaSymbol {
        /// The function's symbol name.
        name: String,
        /// The loader's error.
        error: libloading::Error,
    },
    /// A CUDA driver call failed.
    #[error("the CUDA driver failed: {call} returned error {code}")]
    CudaCall {
        /// The function called.
        call: &'static str,
        /// The `CUresult` it returned.
        code: i32,
    },
    /// The CUDA device number is out of range.
    #[error("cuda:{ordinal} does not exist: this machine has {devices} CUDA device(s)")]
    NoSuchCudaDevice {
        /// The device asked for.
        ordinal: u32,
        /// How many there are.
        devices: i32,
    },
    /// The Metal framework cannot be loaded.
    #[error("Metal is not available: {0}")]
    MetalUnavailable(libloading::Error),
    /// The Metal framework lacks `MTLCreateSystemDefaultDevice`.
    #[error("Metal is not usable: {0}")]
    MetalUnusable(libloading::Error),
    /// Metal asked for on a platform that has none.
    #[error("metal:{ordinal} is not available: Metal exists only on macOS")]
    NoMetal {
        /// The device asked for.
        ordinal: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_for_another_backend_names_the_plugin_to_use() {
        let error = DeviceError::WrongBackend {
            plugin_id: "llm-cpu".into(),
            backend: "cpu".into(),
            kind: "llm".into(),
            asked: "cuda:1".parse().unwrap(),
        };
        assert_eq!(
            error.to_string(),
            "plugin llm-cpu is built for the cpu backend but --device cuda:1 was asked; \
             use the llm-cuda plugin, or --device cpu"
        );
    }
}
