//! Where a model's three files come from: a local Hugging Face layout directory, or a hub
//! repository downloaded into the host's cache directory (the cache alone when offline).

use hf_hub::Cache;
use rbee_hub::DownloadProgress;
use rbee_plugin_api::PluginError;
use rbee_plugin_kit::{error::model_load, source::ModelSource};
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
    let paths = match ModelSource::parse(model) {
        ModelSource::Local(dir) => local(&dir)?,
        ModelSource::Hub { repo, file: None } => hub(&repo, cache_dir, progress)?,
        ModelSource::Hub { file: Some(_), .. } => {
            return Err(model_load(format!(
                "'{model}' names a file; a Parler-TTS model is a whole repository: give 'org/name'"
            )));
        }
    };
    let [config, tokenizer, weights] = paths;
    Ok(ModelFiles {
        name: model.to_string(),
        config,
        tokenizer,
        weights,
    })
}

/// The files in directory `dir`; an error names the missing ones.
fn local(dir: &Path) -> Result<[PathBuf; 3], PluginError> {
    let missing: Vec<&str> = FILES
        .into_iter()
        .filter(|file| !dir.join(file).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(model_load(format!(
            "cannot load the text-to-speech model in {}: {} missing (a model directory holds {})",
            dir.display(),
            missing.join(", "),
            FILES.join(", ")
        )));
    }
    Ok(FILES.map(|file| dir.join(file)))
}

/// The files of hub repository `repo`: cached, or downloaded unless `HF_HUB_OFFLINE` is set.
fn hub(
    repo: &str,
    cache_dir: &Path,
    progress: &dyn Fn(f32, &str),
) -> Result<[PathBuf; 3], PluginError> {
    let cached = Cache::new(cache_dir.to_path_buf()).model(repo.to_string());
    let mut found = Vec::with_capacity(FILES.len());
    for file in FILES {
        if let Some(path) = cached.get(file) {
            found.push(path);
            continue;
        }
        if rbee_hub::offline() {
            return Err(model_load(format!(
                "{repo}: {file} is not in the cache {} and HF_HUB_OFFLINE is set",
                cache_dir.display()
            )));
        }
        let api = rbee_hub::api(cache_dir)
            .map_err(|e| model_load(format!("{repo}: the hub cannot be reached: {e}")))?
            .model(repo.to_string());
        let path = rbee_hub::download(&api, repo, file, cache_dir, DownloadProgress::new(progress))
            .map_err(|e| model_load(format!("cannot download {file} from {repo}: {e}")))?;
        found.push(path);
    }
    found
        .try_into()
        .map_err(|_| model_load(format!("{repo}: not every file was found")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_the_files_names_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let reference = dir.path().to_str().unwrap();
        let error = resolve(reference, dir.path(), &|_, _| {}).err().unwrap();
        assert!(
            error
                .message
                .contains("tokenizer.json, model.safetensors missing"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_hub_file_reference_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = resolve("org/repo:model.safetensors", dir.path(), &|_, _| {})
            .err()
            .unwrap();
        assert!(error.message.contains("names a file"), "{}", error.message);
    }
}
