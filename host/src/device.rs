//! The compute device: parsing `--device`, matching it to a plugin's backend, probing it.

use crate::error::HostError;
use std::{fmt, str::FromStr};

/// A device as given on the command line: `cpu`, `cuda[:N]` or `metal[:N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceArg {
    /// `cpu`, `cuda` or `metal`: the same names plugins use for their backend.
    pub kind: String,
    /// The device index (0 for cpu).
    pub ordinal: u32,
}

impl FromStr for DeviceArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (kind, ordinal) = match text.split_once(':') {
            Some((kind, n)) => {
                let ordinal = n
                    .parse()
                    .map_err(|_| format!("'{n}' is not a device number"))?;
                (kind, ordinal)
            }
            None => (text, 0),
        };
        match kind {
            "cpu" if ordinal == 0 => Ok(Self {
                kind: kind.into(),
                ordinal,
            }),
            "cpu" => Err("the cpu device takes no number".into()),
            "cuda" | "metal" => Ok(Self {
                kind: kind.into(),
                ordinal,
            }),
            other => Err(format!(
                "unknown device '{other}' (expected cpu, cuda[:N] or metal[:N])"
            )),
        }
    }
}

impl fmt::Display for DeviceArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind.as_str() {
            "cpu" => f.write_str("cpu"),
            kind => write!(f, "{kind}:{}", self.ordinal),
        }
    }
}

/// The device to use: the one asked for, which must match the plugin's backend, or by default
/// device 0 of the plugin's backend.
pub fn choose(
    plugin_id: &str,
    backend: &str,
    asked: Option<&DeviceArg>,
) -> Result<DeviceArg, HostError> {
    match asked {
        None => Ok(DeviceArg {
            kind: backend.to_string(),
            ordinal: 0,
        }),
        Some(device) if device.kind == backend => Ok(device.clone()),
        Some(device) => {
            let kind = plugin_id
                .rsplit_once('-')
                .map_or(plugin_id, |(kind, _)| kind);
            Err(HostError::Device(format!(
                "plugin {plugin_id} is built for the {backend} backend but --device {device} was asked; \
                 use the {kind}-{} plugin, or --device {backend}",
                device.kind
            )))
        }
    }
}

/// Checks that the device exists and works, returning a one-line description of it.
pub fn probe(device: &DeviceArg) -> Result<String, HostError> {
    match device.kind.as_str() {
        "cpu" => Ok(format!(
            "cpu ({} threads available)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        )),
        "cuda" => cuda::probe(device.ordinal).map_err(HostError::Device),
        _ => metal::probe(device.ordinal).map_err(HostError::Device),
    }
}

/// CUDA, probed through the driver API loaded at run time, so one host binary serves every
/// backend and needs no CUDA toolkit to build.
mod cuda {
    use libloading::{Library, Symbol};
    use std::ffi::{c_char, c_int, c_uint};

    type CuResult = c_int;

    pub fn probe(ordinal: u32) -> Result<String, String> {
        let library = ["libcuda.so.1", "libcuda.so", "nvcuda.dll"]
            .iter()
            .find_map(|name| unsafe { Library::new(name) }.ok())
            .ok_or("no CUDA driver found (libcuda.so.1 could not be loaded): is the NVIDIA driver installed?")?;
        unsafe {
            let init: Symbol<unsafe extern "C" fn(c_uint) -> CuResult> =
                symbol(&library, b"cuInit\0")?;
            let count: Symbol<unsafe extern "C" fn(*mut c_int) -> CuResult> =
                symbol(&library, b"cuDeviceGetCount\0")?;
            let get: Symbol<unsafe extern "C" fn(*mut c_int, c_int) -> CuResult> =
                symbol(&library, b"cuDeviceGet\0")?;
            let name: Symbol<unsafe extern "C" fn(*mut c_char, c_int, c_int) -> CuResult> =
                symbol(&library, b"cuDeviceGetName\0")?;
            check(init(0), "cuInit")?;
            let mut devices = 0;
            check(count(&mut devices), "cuDeviceGetCount")?;
            if ordinal as c_int >= devices {
                return Err(format!(
                    "cuda:{ordinal} does not exist: this machine has {devices} CUDA device(s)"
                ));
            }
            let mut handle = 0;
            check(get(&mut handle, ordinal as c_int), "cuDeviceGet")?;
            let mut buffer = [0 as c_char; 256];
            check(
                name(buffer.as_mut_ptr(), buffer.len() as c_int, handle),
                "cuDeviceGetName",
            )?;
            let device_name = std::ffi::CStr::from_ptr(buffer.as_ptr()).to_string_lossy();
            Ok(format!("cuda:{ordinal} ({device_name})"))
        }
    }

    unsafe fn symbol<'l, T>(library: &'l Library, name: &[u8]) -> Result<Symbol<'l, T>, String> {
        unsafe { library.get(name) }.map_err(|e| {
            format!(
                "the CUDA driver lacks {}: {e}",
                String::from_utf8_lossy(name)
            )
        })
    }

    fn check(code: CuResult, call: &str) -> Result<(), String> {
        match code {
            0 => Ok(()),
            code => Err(format!(
                "the CUDA driver failed: {call} returned error {code}"
            )),
        }
    }
}

/// Metal exists only on Apple platforms; elsewhere asking for it is a clear error.
mod metal {
    #[cfg(target_os = "macos")]
    pub fn probe(ordinal: u32) -> Result<String, String> {
        const FRAMEWORK: &str = "/System/Library/Frameworks/Metal.framework/Metal";
        let library = unsafe { libloading::Library::new(FRAMEWORK) }
            .map_err(|e| format!("Metal is not available: {e}"))?;
        let _create: libloading::Symbol<unsafe extern "C" fn() -> *mut std::ffi::c_void> =
            unsafe { library.get(b"MTLCreateSystemDefaultDevice\0") }
                .map_err(|e| format!("Metal is not usable: {e}"))?;
        Ok(format!("metal:{ordinal}"))
    }

    #[cfg(not(target_os = "macos"))]
    pub fn probe(ordinal: u32) -> Result<String, String> {
        Err(format!(
            "metal:{ordinal} is not available: Metal exists only on macOS"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<DeviceArg>().unwrap().to_string(), "cpu");
        assert_eq!("cuda".parse::<DeviceArg>().unwrap().to_string(), "cuda:0");
        assert_eq!("cuda:3".parse::<DeviceArg>().unwrap().ordinal, 3);
        assert!(
            "tpu:0"
                .parse::<DeviceArg>()
                .unwrap_err()
                .contains("unknown device")
        );
        assert!("cuda:x".parse::<DeviceArg>().is_err());
        assert!("cpu:1".parse::<DeviceArg>().is_err());
    }

    #[test]
    fn a_device_must_match_the_plugin_backend() {
        let cuda = "cuda:0".parse::<DeviceArg>().unwrap();
        let message = choose("llm-cpu", "cpu", Some(&cuda))
            .unwrap_err()
            .to_string();
        assert!(message.contains("llm-cuda"), "{message}");
        assert_eq!(choose("llm-cuda", "cuda", None).unwrap(), cuda);
    }

    #[test]
    fn the_cpu_always_probes() {
        assert!(probe(&"cpu".parse().unwrap()).unwrap().starts_with("cpu"));
    }
}
