//! The compute device: parsing `--device`, matching it to a plugin's backend, probing it.

mod cuda;
mod error;
mod metal;

pub use error::{DeviceError, ParseDeviceError};
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
    type Err = ParseDeviceError;

    fn from_str(text: &str) -> Result<Self, ParseDeviceError> {
        let (kind, ordinal) = match text.split_once(':') {
            Some((kind, n)) => {
                let ordinal = n
                    .parse()
                    .map_err(|_| ParseDeviceError::BadOrdinal(n.to_string()))?;
                (kind, ordinal)
            }
            None => (text, 0),
        };
        match kind {
            "cpu" if ordinal == 0 => Ok(Self {
                kind: kind.into(),
                ordinal,
            }),
            "cpu" => Err(ParseDeviceError::NumberedCpu),
            "cuda" | "metal" => Ok(Self {
                kind: kind.into(),
                ordinal,
            }),
            other => Err(ParseDeviceError::Unknown(other.to_string())),
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
) -> Result<DeviceArg, DeviceError> {
    match asked {
        None => Ok(DeviceArg {
            kind: backend.to_string(),
            ordinal: 0,
        }),
        Some(device) if device.kind == backend => Ok(device.clone()),
        Some(device) => Err(DeviceError::WrongBackend {
            plugin_id: plugin_id.to_string(),
            backend: backend.to_string(),
            kind: plugin_id
                .rsplit_once('-')
                .map_or(plugin_id, |(kind, _)| kind)
                .to_string(),
            asked: device.clone(),
        }),
    }
}

/// Checks that the device exists and works, returning a one-line description of it.
pub fn probe(device: &DeviceArg) -> Result<String, DeviceError> {
    match device.kind.as_str() {
        "cpu" => Ok(format!(
            "cpu ({} threads available)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        )),
        "cuda" => cuda::probe(device.ordinal),
        _ => metal::probe(device.ordinal),
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
                .to_string()
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
