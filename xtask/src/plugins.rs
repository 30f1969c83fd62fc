//! `cargo xtask plugins`: build every plugin crate for a backend and install it as `<id>.so`.

use crate::paths;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Options of `cargo xtask plugins`.
#[derive(clap::Args, Clone)]
pub struct PluginsArgs {
    /// The backend to build for.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda", "metal"])]
    pub backend: String,
    /// Build with the release profile.
    #[arg(long)]
    pub release: bool,
    /// The plugins dir to install into (default: target/rbee-plugins).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Build only these kinds (e.g. `--only llm`; repeatable); default: every plugin.
    #[arg(long)]
    pub only: Vec<String>,
}

impl Default for PluginsArgs {
    fn default() -> Self {
        Self {
            backend: "cpu".into(),
            release: false,
            out: None,
            only: Vec::new(),
        }
    }
}

/// A plugin crate: package `rbee-plugin-<kind>` under `plugins/`, a cdylib.
#[derive(Debug, Clone)]
pub struct PluginCrate {
    /// The cargo package name.
    pub package: String,
    /// The worker kind, from the package name.
    pub kind: String,
    /// Whether the crate has a feature for the backend being built.
    pub has_backend_feature: bool,
    /// Whether the crate has a `test-support` feature (its test fixtures' writers, examples
    /// the black-box tests run).
    pub has_test_support: bool,
}

/// The workspace packages whose manifests lie under `dir` (relative to the workspace root).
fn packages_under(dir: &str) -> Result<Vec<Value>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(paths::root())
        .output()
        .context("running cargo metadata")?;
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("reading cargo metadata")?;
    let dir = paths::root().join(dir);
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    Ok(packages
        .into_iter()
        .filter(|p| Path::new(p["manifest_path"].as_str().unwrap_or_default()).starts_with(&dir))
        .collect())
}

/// The names of the crates plugins share: every package under `crates/`. They are built and
/// tested with the plugins' flags and target dir, never with the host's.
pub fn shared_plugin_crates() -> Result<Vec<String>> {
    Ok(packages_under("crates")?
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect())
}

/// The plugin crates that can be built for `backend`: every package under `plugins/`, each of
/// which must be a cdylib named `rbee-plugin-<kind>`.
pub fn plugin_crates(backend: &str) -> Result<Vec<PluginCrate>> {
    let mut crates = Vec::new();
    for package in &packages_under("plugins")? {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(kind) = name.strip_prefix("rbee-plugin-") else {
            bail!(
                "{name} is under plugins/ but not named rbee-plugin-<kind>; shared crates go in crates/"
            );
        };
        if !is_cdylib(package) {
            bail!("{name} is under plugins/ but builds no cdylib; shared crates go in crates/");
        }
        let has_backend_feature = package["features"].get(backend).is_some();
        if backend == "cpu" || has_backend_feature {
            crates.push(PluginCrate {
                package: name.into(),
                kind: kind.into(),
                has_backend_feature,
                has_test_support: package["features"].get("test-support").is_some(),
            });
        }
    }
    crates.sort_by(|a, b| a.kind.cmp(&b.kind));
    Ok(crates)
}

/// Whether a `cargo metadata` package has a cdylib target.
fn is_cdylib(package: &Value) -> bool {
    package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|target| {
            target["crate_types"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t == "cdylib")
        })
}

/// The environment plugin builds for `backend` use: their own target dir, and on x86-64 CPUs
/// the x86-64-v3 baseline (AVX2, FMA), which candle's fast kernels need at compile time. Each
/// plugin records these features, so the host refuses it cleanly on an older CPU.
pub fn cargo_for_plugins(backend: &str) -> Command {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(paths::root())
        .env("CARGO_TARGET_DIR", paths::plugin_target(backend));
    if cfg!(target_arch = "x86_64") && std::env::var_os("RUSTFLAGS").is_none() {
        cargo.env("RUSTFLAGS", "-C target-cpu=x86-64-v3");
    }
    cargo
}

/// `cargo run` of the SD plugin's example `name` (with its test-support feature) on the cpu
/// build, its arguments still to add.
pub fn sd_example(name: &str) -> Command {
    example(cargo_for_plugins("cpu"), "rbee-plugin-sd", name)
}

/// `cargo` made a `cargo run` of `package`'s example `name` with its test-support feature, its
/// arguments still to add.
pub fn example(mut cargo: Command, package: &str, name: &str) -> Command {
    cargo.args([
        "run",
        "--quiet",
        "-p",
        package,
        "--features",
        "test-support",
        "--example",
        name,
        "--",
    ]);
    cargo
}

/// The `-p` and `--features` arguments selecting `crates` for `backend`.
pub fn package_args(crates: &[PluginCrate], backend: &str) -> Vec<String> {
    let mut args: Vec<String> = crates
        .iter()
        .flat_map(|c| ["-p".to_string(), c.package.clone()])
        .collect();
    let features: Vec<String> = crates
        .iter()
        .filter(|c| c.has_backend_feature)
        .map(|c| format!("{}/{backend}", c.package))
        .collect();
    if backend != "cpu" {
        args.push("--no-default-features".into());
    }
    if !features.is_empty() {
        args.extend(["--features".to_string(), features.join(",")]);
    }
    args
}

/// Builds every plugin for the backend and installs it into the plugins dir, which it returns.
pub fn build_and_install(args: &PluginsArgs) -> Result<PathBuf> {
    let mut crates = plugin_crates(&args.backend)?;
    if !args.only.is_empty() {
        crates.retain(|c| args.only.contains(&c.kind));
    }
    if crates.is_empty() {
        bail!(
            "no plugin crate under plugins/ builds for the {} backend",
            args.backend
        );
    }
    let mut cargo = cargo_for_plugins(&args.backend);
    cargo
        .arg("build")
        .args(package_args(&crates, &args.backend));
    if args.release {
        cargo.arg("--release");
    }
    run(&mut cargo)?;
    let profile_dir =
        paths::plugin_target(&args.backend).join(if args.release { "release" } else { "debug" });
    let out = args.out.clone().unwrap_or_else(paths::default_plugins_dir);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    set_mode(&out, 0o755)?;
    for plugin in &crates {
        let built = profile_dir.join(library_file_name(&plugin.package.replace('-', "_")));
        let id = format!("{}-{}", plugin.kind, args.backend);
        let installed = out.join(format!("{id}.{}", std::env::consts::DLL_EXTENSION));
        install(&built, &installed)?;
        println!("installed {id}: {}", installed.display());
    }
    Ok(out)
}

fn library_file_name(crate_name: &str) -> String {
    format!(
        "{}{crate_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Copies then renames, so a running host never sees a half-written file.
fn install(from: &Path, to: &Path) -> Result<()> {
    let partial = to.with_extension("partial");
    std::fs::copy(from, &partial).with_context(|| format!("copying {}", from.display()))?;
    set_mode(&partial, 0o755)?;
    std::fs::rename(&partial, to).with_context(|| format!("installing {}", to.display()))
}

/// Sets a file's or directory's Unix permissions (nothing elsewhere).
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting permissions of {}", path.display()))?;
    }
    Ok(())
}

/// Runs a command, failing with its command line if it fails.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}
