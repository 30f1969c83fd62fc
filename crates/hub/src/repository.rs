//! A model that is a whole repository of named files (a Hugging Face layout directory): found in
//! a local directory, or in the hub cache, downloaded into it unless `HF_HUB_OFFLINE` is set.

use crate::{DownloadProgress, api, download, offline};
use hf_hub::Cache;
use rbee_plugin_api::PluginError;
use rbee_plugin_kit::{error::model_load, source::ModelSource};
use std::path::{Path, PathBuf};

/// The files of a Hugging Face layout model: `config.json`, `tokenizer.json` and
/// `model.safetensors`.
pub const SAFETENSORS_MODEL: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// A Hugging Face layout model's files on disk.
pub struct SafetensorsModel {
    /// The model as the user named it, for status and logs.
    pub name: String,
    /// `config.json`.
    pub config: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `model.safetensors`.
    pub weights: PathBuf,
}

/// Finds (or downloads into `cache_dir`) the [`SAFETENSORS_MODEL`] files of `model`, telling
/// `progress`; `what` names the kind of model in errors.
pub fn safetensors_model(
    model: &str,
    what: &str,
    cache_dir: &Path,
    progress: &dyn Fn(f32, &str),
) -> Result<SafetensorsModel, PluginError> {
    let [config, tokenizer, weights] =
        resolve(model, SAFETENSORS_MODEL, what, cache_dir, progress)?;
    Ok(SafetensorsModel {
        name: model.to_string(),
        config,
        tokenizer,
        weights,
    })
}

/// The paths of `files` for `model` (a local directory or an `org/name` hub repository), in
/// the order given; `what` names the kind of model in errors ("a reranker"). A missing file,
/// a hub reference to a single file, or a failed download is a `model_load` error naming it.
pub fn resolve<const N: usize>(
    model: &str,
    files: [&str; N],
    what: &str,
    cache_dir: &Path,
    progress: &dyn Fn(f32, &str),
) -> Result<[PathBuf; N], PluginError> {
    match ModelSource::parse(model) {
        ModelSource::Local(dir) => local(&dir, files, what),
        ModelSource::Hub { repo, file: None } => hub(&repo, files, cache_dir, progress),
        ModelSource::Hub { file: Some(_), .. } => Err(model_load(format!(
            "'{model}' names a file; {what} is a whole repository: give 'org/name'"
        ))),
    }
}

fn local<const N: usize>(
    dir: &Path,
    files: [&str; N],
    what: &str,
) -> Result<[PathBuf; N], PluginError> {
    let missing: Vec<&str> = files
        .into_iter()
        .filter(|file| !dir.join(file).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(model_load(format!(
            "cannot load {what} from {}: {} missing (a model directory holds {})",
            dir.display(),
            missing.join(", "),
            files.join(", ")
        )));
    }
    Ok(files.map(|file| dir.join(file)))
}

fn hub<const N: usize>(
    repo: &str,
    files: [&str; N],
    cache_dir: &Path,
    progress: &dyn Fn(f32, &str),
) -> Result<[PathBuf; N], PluginError> {
    let cached = Cache::new(cache_dir.to_path_buf()).model(repo.to_string());
    let mut found = Vec::with_capacity(N);
    for file in files {
        if let Some(path) = cached.get(file) {
            found.push(path);
            continue;
        }
        if offline() {
            return Err(model_load(format!(
                "{repo}: {file} is not in the cache {} and HF_HUB_OFFLINE is set",
                cache_dir.display()
            )));
        }
        let api = api(cache_dir)
            .map_err(|e| model_load(format!("{repo}: the hub cannot be reached: {e}")))?
            .model(repo.to_string());
        let path = download(&api, repo, file, cache_dir, DownloadProgress::new(progress))
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

    const FILES: [&str; 3] = SAFETENSORS_MODEL;

    #[test]
    fn a_directory_without_the_files_names_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let reference = dir.path().to_str().unwrap();
        let error = resolve(reference, FILES, "a reranker", dir.path(), &|_, _| {})
            .err()
            .unwrap();
        assert!(
            error.message.contains("cannot load a reranker from")
                && error
                    .message
                    .contains("tokenizer.json, model.safetensors missing"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_complete_directory_gives_its_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for file in FILES {
            std::fs::write(dir.path().join(file), "{}").unwrap();
        }
        let reference = dir.path().to_str().unwrap();
        let paths = resolve(reference, FILES, "a reranker", dir.path(), &|_, _| {}).unwrap();
        assert_eq!(paths, FILES.map(|file| dir.path().join(file)));
    }

    #[test]
    fn a_hub_file_reference_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = resolve(
            "org/repo:model.safetensors",
            FILES,
            "a reranker",
            dir.path(),
            &|_, _| {},
        )
        .err()
        .unwrap();
        assert!(error.message.contains("names a file"), "{}", error.message);
    }
}
