//! Why a plugin file is refused, each reason one readable paragraph naming the file.

use std::{io, path::PathBuf, process::ExitStatus};

/// A plugin file that cannot be served: unsafe permissions, a failed probe, not a plugin,
/// incompatible, or built for another CPU.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Others could change the file (see [`PermissionError`]).
    #[error(transparent)]
    Permissions(#[from] PermissionError),
    /// Opening it in a child process failed (see [`ProbeError`]).
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The dynamic loader refused the file.
    #[error("refusing {}: it cannot be opened as a shared library: {reason}", path.display())]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// The loader's error, shortened.
        reason: String,
    },
    /// The library exports no preamble.
    #[error(
        "refusing {}: it is not an rbee plugin (it exports no rbee_plugin_preamble; \
         plugins are built with rbee_plugin_api::export_plugin!)",
        path.display()
    )]
    NotAPlugin {
        /// The file.
        path: PathBuf,
    },
    /// The preamble's magic or layout is unknown.
    #[error(
        "refusing {}: its rbee_plugin_preamble is not one this host understands",
        path.display()
    )]
    UnknownPreamble {
        /// The file.
        path: PathBuf,
    },
    /// The plugin was built against another plugin-api major.
    #[error(
        "refusing {}: it was built against plugin-api {found}, but this host speaks plugin-api {host}; \
         host and plugin must share the major version, so rebuild the plugin against plugin-api {}.x",
        path.display(),
        host.split('.').next().unwrap_or(host)
    )]
    ApiMajor {
        /// The file.
        path: PathBuf,
        /// The plugin's plugin-api version.
        found: String,
        /// This host's plugin-api version.
        host: &'static str,
    },
    /// The plugin was compiled for CPU features this CPU lacks.
    #[error(
        "refusing {}: it was compiled for CPU features this CPU lacks ({}); \
         install a build of the plugin for this CPU",
        path.display(),
        missing.join(", ")
    )]
    CpuFeatures {
        /// The file.
        path: PathBuf,
        /// The features lacking.
        missing: Vec<String>,
    },
    /// abi_stable's version or layout checks failed, or the root module would not initialise.
    #[error(
        "refusing {}: built against plugin-api {found}, it does not match this host's plugin-api {host}: {reason}",
        path.display()
    )]
    Layout {
        /// The file.
        path: PathBuf,
        /// The plugin's plugin-api version.
        found: String,
        /// This host's plugin-api version.
        host: &'static str,
        /// Where the layouts differ, shortened.
        reason: String,
    },
    /// The plugin's `manifest()` returned an error.
    #[error("refusing {}: its manifest() failed: {reason}", path.display())]
    Manifest {
        /// The file.
        path: PathBuf,
        /// The plugin's error.
        reason: String,
    },
}

/// A plugin file others could have changed, or whose permissions cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PermissionError {
    /// The file or its directory cannot be read.
    #[error("cannot read {}: {error}", path.display())]
    Unreadable {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The file or its directory is writable by group or others.
    #[error(
        "refusing plugin {}: its {what} {} is writable by group or others (mode {mode:o}); \
         loading a plugin runs its code, so fix it with `chmod go-w {}`",
        plugin.display(),
        item.display(),
        item.display()
    )]
    Writable {
        /// The plugin file.
        plugin: PathBuf,
        /// `file` or `directory`.
        what: &'static str,
        /// The file or directory at fault.
        item: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Opening a plugin file in a child process failed, or the child refused it.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The host cannot find its own executable to run the probe.
    #[error("cannot find the rbee-host executable: {0}")]
    NoExecutable(io::Error),
    /// The probe process would not start.
    #[error("cannot start a probe process: {0}")]
    Spawn(io::Error),
    /// Waiting for the probe process failed.
    #[error("{0}")]
    Wait(io::Error),
    /// Opening the file did not finish in time.
    #[error(
        "refusing {}: opening it did not finish within {seconds} s (a static initialiser hangs?)",
        path.display()
    )]
    Hung {
        /// The file.
        path: PathBuf,
        /// The time allowed.
        seconds: u64,
    },
    /// Opening the file killed the probe process.
    #[error(
        "refusing {}: opening it crashed a probe process (signal {signal}); it is broken or not a plugin",
        path.display()
    )]
    Crashed {
        /// The file.
        path: PathBuf,
        /// The signal that ended the probe.
        signal: i32,
    },
    /// The probe process refused the file, with this paragraph.
    #[error("{0}")]
    Refused(String),
    /// The probe process failed without saying why.
    #[error("refusing {}: the probe failed ({status})", path.display())]
    Failed {
        /// The file.
        path: PathBuf,
        /// How the probe process ended.
        status: ExitStatus,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_one_paragraph_naming_the_file() {
        let path = PathBuf::from("/p/x.so");
        let cases: [(LoadError, &str); 7] = [
            (
                LoadError::NotAPlugin { path: path.clone() },
                "refusing /p/x.so: it is not an rbee plugin (it exports no rbee_plugin_preamble; \
                 plugins are built with rbee_plugin_api::export_plugin!)",
            ),
            (
                LoadError::ApiMajor {
                    path: path.clone(),
                    found: "3.0.0".into(),
                    host: "2.0.0",
                },
                "refusing /p/x.so: it was built against plugin-api 3.0.0, but this host speaks \
                 plugin-api 2.0.0; host and plugin must share the major version, so rebuild the \
                 plugin against plugin-api 2.x",
            ),
            (
                LoadError::CpuFeatures {
                    path: path.clone(),
                    missing: vec!["avx9".into(), "sse9".into()],
                },
                "refusing /p/x.so: it was compiled for CPU features this CPU lacks (avx9, sse9); \
                 install a build of the plugin for this CPU",
            ),
            (
                LoadError::Layout {
                    path: path.clone(),
                    found: "2.1.0".into(),
                    host: "2.0.0",
                    reason: "the type layouts differ".into(),
                },
                "refusing /p/x.so: built against plugin-api 2.1.0, it does not match this host's \
                 plugin-api 2.0.0: the type layouts differ",
            ),
            (
                PermissionError::Writable {
                    plugin: path.clone(),
                    what: "directory",
                    item: PathBuf::from("/p"),
                    mode: 0o777,
                }
                .into(),
                "refusing plugin /p/x.so: its directory /p is writable by group or others \
                 (mode 777); loading a plugin runs its code, so fix it with `chmod go-w /p`",
            ),
            (
                ProbeError::Hung {
                    path: path.clone(),
                    seconds: 20,
                }
                .into(),
                "refusing /p/x.so: opening it did not finish within 20 s (a static initialiser \
                 hangs?)",
            ),
            (
                ProbeError::Crashed { path, signal: 11 }.into(),
                "refusing /p/x.so: opening it crashed a probe process (signal 11); it is broken \
                 or not a plugin",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }
}
