//! Fetching a model named by a hub reference into the host's cache directory (references are
//! parsed by [`rbee_plugin_kit::source`]).

use crate::error::LlmError;
use hf_hub::{Cache, Repo};
use rbee_plugin_kit::source::ModelSource;
use std::path::{Path, PathBuf};

/// Files of a safetensors checkpoint fetched when a hub reference names no file.
const CHECKPOINT_FILES: [&str; 5] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "chat_template.jinja",
];

/// The local path of the model, downloading it first if it comes from the hub.
/// `progress(fraction, message)` hears about downloads.
pub fn resolve(
    source: &ModelSource,
    cache_dir: &Path,
    progress: &dyn Fn(f32, &str),
) -> Result<PathBuf, LlmError> {
    match source {
        ModelSource::Local(path) => Ok(path.clone()),
        ModelSource::Hub { repo, file } => download(repo, file.as_deref(), cache_dir, progress),
    }
}

fn download(
    repo: &str,
    file: Option<&str>,
    cache_dir: &Path,
    progress: &dyn Fn(f32, &str),
) -> Result<PathBuf, LlmError> {
    let fail = |reason: String| {
        LlmError::model_load(
            format!(
                "{repo}{}",
                file.map(|f| format!(":{f}")).unwrap_or_default()
            ),
            reason,
        )
    };
    let cached = Cache::new(cache_dir.to_path_buf()).repo(Repo::model(repo.to_string()));
    if rbee_hub::offline() {
        let file = file
            .ok_or_else(|| fail("HF_HUB_OFFLINE is set: name the file as org/repo:file".into()))?;
        return cached.get(file).ok_or_else(|| {
            fail(format!(
                "HF_HUB_OFFLINE is set and {file} is not in the cache at {}",
                cache_dir.display()
            ))
        });
    }
    let api = rbee_hub::api(cache_dir).map_err(|e| fail(format!("cannot reach the hub: {e}")))?;
    let api_repo = api.model(repo.to_string());
    let fetch = |name: &str| -> Result<PathBuf, LlmError> {
        if let Some(path) = cached.get(name) {
            return Ok(path);
        }
        let progress = rbee_hub::DownloadProgress::new(progress);
        rbee_hub::download(&api_repo, repo, name, cache_dir, progress)
            .map_err(|e| fail(format!("cannot download {name}: {e}")))
    };
    if let Some(file) = file {
        return fetch(file);
    }
    let info = api_repo
        .info()
        .map_err(|e| fail(format!("cannot list the repository: {e}")))?;
    let names: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let ggufs: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.ends_with(".gguf"))
        .collect();
    if let [single] = ggufs.as_slice() {
        return fetch(single);
    }
    if !ggufs.is_empty() {
        return Err(fail(format!(
            "the repository holds several .gguf files; name one as {repo}:<file>"
        )));
    }
    let wanted = names
        .iter()
        .copied()
        .filter(|n| n.ends_with(".safetensors") || CHECKPOINT_FILES.contains(n));
    let mut config = None;
    for name in wanted {
        let path = fetch(name)?;
        if name == "config.json" {
            config = Some(path);
        }
    }
    config
        .and_then(|path| path.parent().map(Path::to_path_buf))
        .ok_or_else(|| fail("the repository holds neither a .gguf file nor a config.json".into()))
}
