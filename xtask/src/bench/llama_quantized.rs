//! `cargo xtask bench llm --llama-quantize <path>`: the test model as llama.cpp's own quantizer
//! writes the K-quant files people download (Q4_K_M, Q5_K_M, Q6_K), made from its Q8_0 copy
//! and cached under `target/fixtures`, for the LLM benchmark to measure beside the others (and
//! the random Qwen3 file's Q4_K_M).

use crate::paths;
use anyhow::{Context, Result, bail};
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The llama-quantize types measured.
pub const TYPES: [&str; 3] = ["Q4_K_M", "Q5_K_M", "Q6_K"];

/// The file of each of [`TYPES`], written by `llama_quantize` from `q8_0` unless already there.
pub fn files(llama_quantize: &Path, q8_0: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    TYPES
        .into_iter()
        .map(|kind| {
            let out = paths::target()
                .join("fixtures")
                .join(format!("SmolLM2-135M-Instruct.llama-{kind}.gguf"));
            Ok((kind, file(llama_quantize, q8_0, kind, &out)?))
        })
        .collect()
}

/// `out`: `source` requantized to `kind` by `llama_quantize`, written unless already there.
pub fn file(llama_quantize: &Path, source: &Path, kind: &str, out: &Path) -> Result<PathBuf> {
    if out.is_file() {
        return Ok(out.to_path_buf());
    }
    let dir = out.parent().context("a file name with a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = out.with_extension("partial");
    let status = Command::new(llama_quantize)
        .arg("--allow-requantize")
        .arg(source)
        .arg(&partial)
        .arg(kind)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {}", llama_quantize.display()))?;
    if !status.success() {
        bail!("{} failed to write {kind}", llama_quantize.display());
    }
    std::fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(out.to_path_buf())
}
