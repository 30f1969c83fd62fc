//! `cargo xtask fuzz`: the cargo-fuzz targets of `tests/fuzz`, each for a bounded time, on
//! stable Rust (`RUSTC_BOOTSTRAP=1` allows the flags cargo-fuzz passes; no sanitizer).

use crate::{
    paths,
    plugins::run,
    run::{SOUNDFILE, ensure_python_package},
};
use anyhow::{Context, Result, bail};
use std::{path::Path, process::Command};

/// The cargo-fuzz release installed when `cargo fuzz` is missing or another.
const CARGO_FUZZ: &str = "0.13.2";

/// The targets run when none is named: every one but `gguf`.
const DEFAULT_TARGETS: [&str; 4] = ["multipart", "png", "json", "audio"];

/// `gguf`, candle's GGUF reader, builds candle too: minutes more, so only when named.
const GGUF: &str = "gguf";

/// Seconds per target in `cargo xtask test`.
pub const TEST_SECONDS: u64 = 15;

/// Every target, `gguf` included: what `cargo xtask test` runs.
pub fn every_target() -> Vec<String> {
    DEFAULT_TARGETS
        .iter()
        .chain([&GGUF])
        .map(|t| t.to_string())
        .collect()
}

/// Builds the fuzz targets once and runs each of `targets` (the default ones if empty) for
/// `seconds`, from the seeds `tests/fuzz/seeds.py` writes and the corpus earlier runs grew; fails
/// naming the saved input of the first that crashes, hangs or runs out of memory.
pub fn fuzz(seconds: u64, targets: &[String]) -> Result<()> {
    let targets: Vec<&str> = match targets {
        [] => DEFAULT_TARGETS.to_vec(),
        named => named.iter().map(String::as_str).collect(),
    };
    if let Some(unknown) = targets
        .iter()
        .find(|t| !DEFAULT_TARGETS.contains(t) && **t != GGUF)
    {
        bail!(
            "no fuzz target '{unknown}' (known: {}, {GGUF})",
            DEFAULT_TARGETS.join(", ")
        );
    }
    ensure_cargo_fuzz()?;
    ensure_python_package("soundfile", SOUNDFILE)?;
    let dir = paths::target().join("fuzz");
    let triple = host_triple()?;
    // No sanitizer: AddressSanitizer doubled the build and cut executions per second 5 to 7
    // times. 16 codegen units (cargo-fuzz's default is 1): large crates build on every core.
    let mut build = Command::new(env!("CARGO"));
    build
        .current_dir(paths::root())
        .args("fuzz build --fuzz-dir tests/fuzz --sanitizer none --codegen-units 16".split(' '))
        .args(["--target", &triple, "--target-dir"])
        .arg(&dir)
        .env("RUSTC_BOOTSTRAP", "1");
    if targets.contains(&GGUF) {
        build.args(["--features", GGUF]);
    }
    run(&mut build).context("building the fuzz targets")?;
    let corpus = dir.join("corpus");
    run(Command::new("python3")
        .arg(paths::root().join("tests/fuzz/seeds.py"))
        .arg(&corpus))
    .context("writing the fuzz seeds")?;
    let binaries = dir.join(&triple).join("release");
    for target in targets {
        fuzz_one(&binaries.join(target), &corpus.join(target), &dir, seconds)?;
    }
    Ok(())
}

/// Runs one target's binary for `seconds` over its corpus dir, its output into
/// `<dir>/logs/<target>.log` and what it finds into `<dir>/artifacts/<target>/`.
fn fuzz_one(binary: &Path, corpus: &Path, dir: &Path, seconds: u64) -> Result<()> {
    let target = binary.file_name().unwrap_or_default().to_string_lossy();
    let artifacts = dir.join("artifacts").join(&*target);
    let log = dir.join("logs").join(format!("{target}.log"));
    std::fs::remove_dir_all(&artifacts).ok();
    std::fs::create_dir_all(&artifacts)?;
    std::fs::create_dir_all(dir.join("logs"))?;
    eprintln!("fuzzing {target} for {seconds} s (log: {})", log.display());
    let status = Command::new(binary)
        .arg(corpus)
        .arg(format!("-max_total_time={seconds}"))
        .arg("-timeout=60") // a hang: one input running a minute
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .stderr(std::fs::File::create(&log)?)
        .status()
        .with_context(|| format!("running {}", binary.display()))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if status.success() {
        eprintln!(
            "{}",
            text.lines().rfind(|l| l.contains("DONE")).unwrap_or("done")
        );
        return Ok(());
    }
    let found: Vec<String> = std::fs::read_dir(&artifacts)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| !path.to_string_lossy().contains("slow-unit-"))
        .map(|path| path.display().to_string())
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("{}", lines[lines.len().saturating_sub(60)..].join("\n"));
    bail!(
        "fuzz target {target} failed ({status}); the input: {} (replay it: {} <input>)",
        found.join(", "),
        binary.display()
    )
}

/// Installs cargo-fuzz [`CARGO_FUZZ`] with `cargo install` unless `cargo fuzz` is that one.
fn ensure_cargo_fuzz() -> Result<()> {
    let installed = Command::new(env!("CARGO"))
        .args(["fuzz", "--version"])
        .output();
    if installed.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ)) {
        return Ok(());
    }
    run(Command::new(env!("CARGO")).args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ,
    ]))
    .context("installing cargo-fuzz")
}

/// The host's target triple, which cargo-fuzz builds for and names its output dir after.
fn host_triple() -> Result<String> {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV names no host")
}
