//! Where a model's three files come from: a local Hugging Face layout directory, or a hub
//! repository downloaded into the host's cache directory (the cache alone when offline).

use rbee_plugin_api::PluginError;
use std::path::{Path, PathBuf};

/// The files a model is made of.
pub const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// A model's files on disk.
pub struct ModelFiles {
    /// The model as the user named it, for status and logs.
    pub name: String,
    /// `config.json`.
    pub config: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `model.safetensors`.
    pub weights: PathBuf,
}

/// Finds (or downloads into `cache_dir`) the files of `model`, telling `progress`.
pub fn resolve(
    model: &str,
    cache_dir: &Path,
    progress: &dyn Fn(f32, &str),
) -> Result<ModelFiles, PluginError> {
    let [config, tokenizer, weights] =
        rbee_hub::repository::resolve(model, FILES, "a reranker", cache_dir, progress)?;
    Ok(ModelFiles {
        name: model.to_string(),
        config,
        tokenizer,
        weights,
    })
}
