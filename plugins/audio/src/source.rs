//! Fetching a Whisper model named by a hub reference (parsed by [`rbee_plugin_kit::source`]), in
//! Hugging Face (`model.safetensors`) or CTranslate2 (`model.bin`) layout, into the host's cache
//! with `hf-hub`.

use crate::error::AudioError;
use hf_hub::{Cache, Repo};
use rbee_plugin_kit::source::ModelSource;
use std::path::{Path, PathBuf};

/// The files of each layout, Hugging Face first: the first complete one is used.
const LAYOUTS: [[&str; 3]; 2] = [
    ["config.json", "tokenizer.json", "model.safetensors"],
    ["config.json", "tokenizer.json", "model.bin"],
];

/// The model's local directory. A hub repository comes from `cache_dir` when a whole layout is
/// there; otherwise, unless `offline`, it is downloaded (`HF_ENDPOINT` and `HF_TOKEN` are
/// honoured) and `progress(fraction, message)` hears about it. A Whisper model is a whole
/// repository: a reference naming a file in one (`org/repo:file`) is refused.
pub fn resolve(
    source: &ModelSource,
    cache_dir: &Path,
    offline: bool,
    progress: &dyn Fn(f32, &str),
) -> Result<PathBuf, AudioError> {
    let repo = match source {
        ModelSource::Local(path) => return Ok(path.clone()),
        ModelSource::Hub { repo, file: None } => repo,
        ModelSource::Hub {
            repo,
            file: Some(_),
        } => {
            return Err(AudioError::model_load(
                source.to_string(),
                format!("a Whisper model is a whole repository: name it as {repo}"),
            ));
        }
    };
    let fail = |reason: String| AudioError::model_load(repo, reason);
    let cached = Cache::new(cache_dir.to_path_buf()).repo(Repo::model(repo.clone()));
    let in_cache = LAYOUTS.iter().find_map(|files| {
        let paths: Option<Vec<PathBuf>> = files.iter().map(|f| cached.get(f)).collect();
        paths?.first()?.parent().map(Path::to_path_buf)
    });
    if let Some(dir) = in_cache {
        return Ok(dir);
    }
    if offline {
        return Err(fail(format!(
            "HF_HUB_OFFLINE is set and the cache at {} holds no complete copy (config.json, \
             tokenizer.json and model.safetensors or model.bin)",
            cache_dir.display()
        )));
    }
    let api = rbee_hub::api(cache_dir).map_err(|e| fail(format!("cannot reach the hub: {e}")))?;
    let api_repo = api.model(repo.clone());
    let info = api_repo
        .info()
        .map_err(|e| fail(format!("cannot list the repository on the hub: {e}")))?;
    let names: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let files = layout_of(&names).map_err(fail)?;
    let mut dir = None;
    for file in files {
        let path = match cached.get(file) {
            Some(path) => path,
            None => {
                let progress = rbee_hub::DownloadProgress::new(progress);
                rbee_hub::download(&api_repo, repo, file, cache_dir, progress)
                    .map_err(|e| fail(format!("cannot download {file}: {e}")))?
            }
        };
        dir = path.parent().map(Path::to_path_buf);
    }
    dir.ok_or_else(|| fail("the download left no directory".into()))
}

/// The files to fetch from a repository holding `names`.
fn layout_of(names: &[&str]) -> Result<[&'static str; 3], String> {
    let complete = |files: &&[&str; 3]| files.iter().all(|f| names.contains(f));
    if let Some(files) = LAYOUTS.iter().find(complete) {
        return Ok(*files);
    }
    let weights = ["model.safetensors", "model.bin"];
    let missing: Vec<&str> = match weights.iter().any(|w| names.contains(w)) {
        true => ["config.json", "tokenizer.json"]
            .into_iter()
            .filter(|f| !names.contains(f))
            .collect(),
        false => vec!["model.safetensors (Hugging Face) or model.bin (CTranslate2)"],
    };
    Err(format!(
        "not a Whisper model repository: it has no {}",
        missing.join(" and no ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::hub_snapshot;

    fn quiet(_: f32, _: &str) {}

    #[test]
    fn a_reference_to_a_file_in_a_repository_is_refused() {
        let cache = tempfile::tempdir().unwrap();
        let source = ModelSource::parse("openai/whisper-tiny:model.bin");
        let error = resolve(&source, cache.path(), true, &quiet)
            .unwrap_err()
            .to_string();
        assert!(error.contains("name it as openai/whisper-tiny"), "{error}");
    }

    #[test]
    fn a_repository_s_layout_is_read_from_its_file_list() {
        let hf = [
            "config.json",
            "tokenizer.json",
            "model.safetensors",
            "pytorch_model.bin",
        ];
        assert_eq!(layout_of(&hf).unwrap(), LAYOUTS[0]);
        let ct2 = [
            "config.json",
            "model.bin",
            "tokenizer.json",
            "vocabulary.txt",
        ];
        assert_eq!(layout_of(&ct2).unwrap(), LAYOUTS[1]);
        let no_tokenizer = layout_of(&["config.json", "model.bin", "vocabulary.txt"]);
        assert!(no_tokenizer.unwrap_err().contains("no tokenizer.json"));
        let gguf = layout_of(&["model.gguf"]).unwrap_err();
        assert!(
            gguf.contains("model.safetensors (Hugging Face) or model.bin"),
            "{gguf}"
        );
    }

    #[test]
    fn a_complete_copy_in_the_cache_is_used_without_the_hub() {
        let cache = tempfile::tempdir().unwrap();
        let snapshot = hub_snapshot(cache.path(), "local/whisper");
        for file in LAYOUTS[1] {
            std::fs::write(snapshot.join(file), "{}").unwrap();
        }
        for offline in [true, false] {
            let dir = resolve(
                &ModelSource::parse("local/whisper"),
                cache.path(),
                offline,
                &quiet,
            )
            .unwrap();
            assert_eq!(dir, snapshot);
        }
    }

    #[test]
    fn offline_an_incomplete_copy_is_a_clear_error() {
        let cache = tempfile::tempdir().unwrap();
        let snapshot = hub_snapshot(cache.path(), "local/whisper");
        for file in ["config.json", "model.bin"] {
            std::fs::write(snapshot.join(file), "{}").unwrap();
        }
        let error = resolve(
            &ModelSource::parse("local/whisper"),
            cache.path(),
            true,
            &quiet,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("local/whisper") && error.contains("HF_HUB_OFFLINE is set"),
            "{error}"
        );
    }
}
