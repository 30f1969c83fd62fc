//! The LLM benchmark's random-weight file of Qwen3-0.6B's shape (#17: a realistic width, since
//! SmolLM2's 576 is narrow), written once by the plugin's `write_qwen3_bench` example and cached
//! under `target/fixtures`.

use crate::{paths, plugins};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// What the benchmark's tables call the file, for their footnote.
pub const DESCRIPTION: &str = "qwen3-0.6B-shape: random weights in Qwen3-0.6B's shape (28 layers, 1024 wide, 16/8 heads of 128, feed-forward 3072, tied) with SmolLM2's tokenizer, Q8_0; its llama-Q4_K_M by llama-quantize";

/// Where the file quantized to `kind` is kept.
pub fn quantized_path(kind: &str) -> PathBuf {
    paths::target()
        .join("fixtures")
        .join(format!("qwen3-0.6B-shape.{kind}.gguf"))
}

/// The Q8_0 file, written unless already there, with the tokenizer of the test model in
/// `models`.
pub fn file(models: &Path) -> Result<PathBuf> {
    let out = quantized_path("Q8_0");
    if out.is_file() {
        return Ok(out);
    }
    let dir = out.parent().context("a fixtures dir")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = out.with_extension("partial");
    let writer = "write_qwen3_bench";
    let status = plugins::example(plugins::cargo_for_plugins("cpu"), "rbee-plugin-llm", writer)
        .arg(&partial)
        .env("RBEE_MODELS_DIR", models)
        .status()
        .context("running write_qwen3_bench")?;
    if !status.success() {
        bail!("write_qwen3_bench failed");
    }
    std::fs::rename(&partial, &out).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}
