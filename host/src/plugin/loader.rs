//! Opening a plugin file: permissions, preamble, CPU features, API version, layout, manifest.
//! Every refusal is one readable paragraph ([`LoadError`]).

use super::{cpu_features, discovery, error::LoadError, probe};
use abi_stable::library::{LibraryError, RawLibrary, abi_header_from_raw_library};
use rbee_plugin_api::{Manifest, PREAMBLE_SYMBOL, PluginModRef, PluginPreamble};
use semver::Version;
use std::path::{Path, PathBuf};

/// A plugin whose library passed every check, with its manifest.
pub struct OpenPlugin {
    /// The file it came from.
    pub path: PathBuf,
    /// Its entry points.
    pub module: PluginModRef,
    /// What it says about itself.
    pub manifest: Manifest,
}

/// What a plugin file says before any of its code runs: the plugin-api version it was built
/// against.
struct PreambleInfo {
    api_version: String,
}

/// The plugin-api version this host was built with.
pub fn host_api_version() -> &'static str {
    rbee_plugin_api::API_VERSION
}

/// Probes a plugin in a child process, then opens it here (see [`super::probe`]).
pub fn probe_and_open(path: &Path) -> Result<OpenPlugin, LoadError> {
    discovery::check_permissions(path)?;
    probe::in_child(path)?;
    open(path)
}

/// Opens and checks a plugin in this process, whose permissions the caller has checked
/// ([`probe_and_open`] does). The library is never unloaded (its code may still be referenced
/// by the worker it returns); an upgrade is a restart.
pub fn open(path: &Path) -> Result<OpenPlugin, LoadError> {
    let library = RawLibrary::load_at(path).map_err(|e| LoadError::NotALibrary {
        path: path.to_path_buf(),
        reason: short(&e),
    })?;
    let info = read_preamble(path, &library)?;
    let module = init_root_module(path, &library, &info)?;
    std::mem::forget(library);
    let manifest = module.manifest()()
        .into_result()
        .map_err(|e| LoadError::Manifest {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(OpenPlugin {
        path: path.to_path_buf(),
        module,
        manifest,
    })
}

/// Reads and checks the preamble: a plugin at all, the same API major, a CPU it can run on.
fn read_preamble(path: &Path, library: &RawLibrary) -> Result<PreambleInfo, LoadError> {
    // SAFETY: `RawLibrary::get` needs the type the library declared. `export_plugin!`, the only
    // way plugins are built, declares this symbol as a `static PluginPreamble`, and asking for
    // `*const T` yields the symbol's address, i.e. a pointer to that static. The reference does
    // not outlive `library` (only owned copies leave this function), and `PluginPreamble` is
    // plain `#[repr(C)]` bytes, so any bit pattern is a valid value; the magic is checked below
    // before any field is trusted.
    let preamble: &PluginPreamble = unsafe {
        library
            .get::<*const PluginPreamble>(PREAMBLE_SYMBOL)
            .map(|symbol| &**symbol)
            .map_err(|_| LoadError::NotAPlugin {
                path: path.to_path_buf(),
            })?
    };
    if !preamble.is_valid() {
        return Err(LoadError::UnknownPreamble {
            path: path.to_path_buf(),
        });
    }
    let found = preamble.api_version().to_string();
    let host = host_api_version();
    let majors = (
        Version::parse(&found).map(|v| v.major),
        Version::parse(host).map(|v| v.major),
    );
    match majors {
        (Ok(plugin_major), Ok(host_major)) if plugin_major == host_major => {}
        _ => {
            return Err(LoadError::ApiMajor {
                path: path.to_path_buf(),
                found,
                host,
            });
        }
    }
    let missing = cpu_features::missing(&preamble.cpu_features());
    if !missing.is_empty() {
        return Err(LoadError::CpuFeatures {
            path: path.to_path_buf(),
            missing,
        });
    }
    Ok(PreambleInfo { api_version: found })
}

/// Runs abi_stable's version and layout checks and the plugin's root-module constructor.
fn init_root_module(
    path: &Path,
    library: &RawLibrary,
    info: &PreambleInfo,
) -> Result<PluginModRef, LoadError> {
    let refuse = |error: LibraryError| LoadError::Layout {
        path: path.to_path_buf(),
        found: info.api_version.clone(),
        host: host_api_version(),
        reason: short(&error),
    };
    // SAFETY: the header is tied to the library's lifetime and dangles once it is unloaded.
    // When the checks pass, `open` forgets the library, so it is never unloaded; when they
    // fail, nothing of the header outlives this function (errors become text here). The
    // version and type layouts are checked (`upgrade`, `init_root_module`) before the module
    // is used.
    let header = unsafe { abi_header_from_raw_library(library) }.map_err(refuse)?;
    let header = header.upgrade().map_err(refuse)?;
    header.init_root_module::<PluginModRef>().map_err(refuse)
}

/// A library error in a few lines. abi_stable's layout errors run to hundreds of lines; what
/// matters is where the types differ (the field path before the first `Error:` line) and the
/// expected and found types after it.
fn short(error: &LibraryError) -> String {
    let text = error.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let summary = match lines.iter().position(|l| l.starts_with("Error:")) {
        Some(at) => layout_difference(&lines, at),
        None => lines.iter().take(3).copied().collect::<Vec<_>>().join(" "),
    };
    const LIMIT: usize = 600;
    match summary.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &summary[..cut]),
        None => summary,
    }
}

fn layout_difference(lines: &[&str], error_at: usize) -> String {
    let section = lines[..error_at]
        .iter()
        .rposition(|l| l.contains("error(s)inside:"))
        .unwrap_or(0);
    let path: Vec<&str> = lines[section..error_at]
        .iter()
        .filter_map(|l| l.strip_prefix("field_name:"))
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .filter(|name| !name.chars().all(|c| c.is_ascii_digit()))
        .collect();
    let after = |label: &str| {
        let at = lines[error_at..].iter().position(|l| *l == label)?;
        lines.get(error_at + at + 1).copied()
    };
    let mut summary = format!(
        "the type layouts differ at {}: {}",
        match path.is_empty() {
            true => "the root module".to_string(),
            false => path.join("."),
        },
        lines[error_at].trim_start_matches("Error:").trim()
    );
    if let (Some(expected), Some(found)) = (after("Expected:"), after("Found:")) {
        summary.push_str(&format!(
            " (this host expects {expected}, the plugin has {found})"
        ));
    }
    summary
}
