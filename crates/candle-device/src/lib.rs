//! The candle device of rbee's candle-based plugins (llm, sd, audio): which backend this build
//! targets, opening the device the host asked for, and the CPU threads candle got.

use candle_core::Device;
use rbee_plugin_api::DeviceSpec;

/// The backend this build targets (cuda > metal > cpu); it names the plugins (`llm-cuda`, ...).
pub const BACKEND: &str = if cfg!(feature = "cuda") {
    "cuda"
} else if cfg!(feature = "metal") {
    "metal"
} else {
    "cpu"
};

/// Opens the device in `spec` for the plugin of `kind` (e.g. `llm`). A GPU this build cannot
/// drive is an error naming the plugin build that can.
pub fn open(kind: &str, spec: &DeviceSpec) -> Result<Device, String> {
    let ordinal = spec.ordinal as usize;
    let failed =
        |error: candle_core::Error| format!("cannot open {}:{ordinal}: {error}", spec.kind);
    match spec.kind.as_str() {
        "cpu" => Ok(Device::Cpu),
        "cuda" if cfg!(feature = "cuda") => Device::new_cuda(ordinal).map_err(failed),
        "metal" if cfg!(feature = "metal") => Device::new_metal(ordinal).map_err(failed),
        gpu @ ("cuda" | "metal") => Err(format!(
            "device {gpu}:{ordinal} was requested, but this plugin ({kind}-{BACKEND}) was built \
             without {gpu} support; use the {kind}-{gpu} plugin"
        )),
        other => Err(format!(
            "unknown device kind '{other}' (expected cpu, cuda or metal)"
        )),
    }
}

/// The number of threads candle's quantized matmuls run on.
///
/// candle 0.11 sizes its pools from the environment when each is first used:
/// `CANDLE_NUM_THREADS` for the barrier pool of the quantized matmuls, `RAYON_NUM_THREADS` for
/// rayon's global pool and gemm. rbee-host exports both from `--threads` before it starts any
/// thread (see `LoadRequest::threads`), so a plugin only reports what it got.
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
    fn the_cpu_opens() {
        assert!(open("llm", &spec("cpu")).unwrap().is_cpu());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_build_without_cuda_names_the_cuda_plugin() {
        let message = open("llm", &spec("cuda")).unwrap_err();
        assert!(message.contains("use the llm-cuda plugin"), "{message}");
    }

    #[test]
    fn unknown_kinds_are_refused() {
        assert!(
            open("llm", &spec("tpu"))
                .unwrap_err()
                .contains("unknown device kind 'tpu'")
        );
    }
}
