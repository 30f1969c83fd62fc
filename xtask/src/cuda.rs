//! `cargo xtask check-cuda`: the cuda build of every plugin type-checked, with candle's CUDA
//! kernels compiled by NVIDIA's own compiler, on a machine with no GPU and no CUDA install. The
//! compiler, its headers and the runtime headers come from NVIDIA's PyPI wheels.

use crate::{models, paths, plugins, run::EXAMPLE_PLUGINS};
use anyhow::{Context, Result};
use std::{
    fs::File,
    path::{Path, PathBuf},
};

/// The toolkit's wheels. 13.4 is the newest CUDA that cudarc 0.19 (candle 0.11's) knows.
const TOOLKIT_WHEELS: &[&str] = &[
    "nvidia-cuda-nvcc==13.4.92",
    "nvidia-cuda-crt==13.4.92",
    "nvidia-nvvm==13.4.92",
    "nvidia-cuda-runtime==13.4.92",
    "nvidia-cuda-cccl==13.3.4.3.1",
];

/// The GPU generation kernels are compiled for when no GPU can be asked (Ampere);
/// `$CUDA_COMPUTE_CAP` overrides it.
const DEFAULT_COMPUTE_CAP: &str = "80";

/// Checks the in-tree plugins and the example plugins with their `cuda` features.
pub fn check() -> Result<()> {
    let cuda_root = match std::env::var_os("CUDA_ROOT") {
        Some(root) => root.into(),
        None => provision_toolkit()?,
    };
    let bin = cuda_root.join("bin");
    let path = std::env::join_paths(
        std::iter::once(bin.clone()).chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        ),
    )?;
    let compute_cap =
        std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| DEFAULT_COMPUTE_CAP.into());
    let cargo_check = || {
        let mut cargo = plugins::cargo_for_plugins("cuda");
        cargo
            .arg("check")
            .env("CUDA_ROOT", &cuda_root)
            .env("CUDA_COMPUTE_CAP", &compute_cap)
            .env("PATH", &path);
        cargo
    };
    let crates = plugins::plugin_crates("cuda")?;
    plugins::run(cargo_check().args(plugins::package_args(&crates, "cuda")))
        .context("the cuda plugins do not compile")?;
    for example in EXAMPLE_PLUGINS {
        let manifest = paths::root().join(example).join("Cargo.toml");
        plugins::run(cargo_check().arg("--manifest-path").arg(&manifest).args([
            "--no-default-features",
            "--features",
            "cuda",
        ]))
        .with_context(|| format!("the cuda build of {example} does not compile"))?;
    }
    println!(
        "cuda builds of every plugin compile (sm_{compute_cap}, {})",
        bin.display()
    );
    Ok(())
}

/// Unpacks the toolkit's wheels into the cache once; returns its root (the `cu13` dir). A
/// marker naming the wheels is written last, so an interrupted unpack is redone.
fn provision_toolkit() -> Result<PathBuf> {
    let dir = paths::cuda_toolkit_dir();
    let root = dir.join("nvidia").join("cu13");
    let marker = dir.join(".unpacked");
    let wanted = TOOLKIT_WHEELS.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|unpacked| unpacked == wanted) {
        return Ok(root);
    }
    let wheels = dir.join(".wheels");
    for requirement in TOOLKIT_WHEELS {
        println!("fetching {requirement} from PyPI");
        let wheel = models::download_wheel(requirement, &wheels)?;
        unpack(&wheel, &dir)?;
        std::fs::remove_file(&wheel).ok();
    }
    std::fs::write(&marker, wanted).with_context(|| format!("writing {}", marker.display()))?;
    Ok(root)
}

/// Unpacks a whole wheel, making its programs executable (wheels do not always record it).
fn unpack(wheel: &Path, into: &Path) -> Result<()> {
    zip::ZipArchive::new(File::open(wheel)?)
        .and_then(|mut archive| archive.extract(into))
        .with_context(|| format!("unpacking {}", wheel.display()))?;
    for programs in ["bin", "nvvm/bin"] {
        let dir = into.join("nvidia/cu13").join(programs);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                plugins::set_mode(&entry.path(), 0o755)?;
            }
        }
    }
    Ok(())
}
