//! Where a model comes from: a local path, or a Hugging Face hub reference downloaded into the
//! host's cache directory.

use crate::error::LlmError;
use hf_hub::{Cache, Repo};
use std::path::{Path, PathBuf};

/// Files of a safetensors checkpoint fetched when a hub reference names no file.
const CHECKPOINT_FILES: [&str; 5] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "chat_template.jinja",
];

/// A model as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A file or directory on this machine.
    Local(PathBuf),
    /// A hub repository (`org/repo`), and the file in it, if named (`org/repo:file`).
    Hub {
        /// `org/repo`.
        repo: String,
        /// A file in the repository, e.g. `model.Q4_K_M.gguf`.
        file: Option<String>,
    },
}

impl ModelSource {
    /// Reads a model reference: an existing path, or `org/repo[:file]`, otherwise a path
    /// (which then fails to load, naming itself).
    pub fn parse(reference: &str) -> Self {
        let path = Path::new(reference);
        if path.exists()
            || path.is_absolute()
            || reference.starts_with('.')
            || reference.starts_with('~')
        {
            return Self::Local(path.to_path_buf());
        }
        let (repo, file) = match reference.split_once(':') {
            Some((repo, file)) => (repo, Some(file.to_string())),
            None => (reference, None),
        };
        let is_repo = repo.split('/').count() == 2
            && repo.split('/').all(|part| !part.is_empty())
            && !repo.ends_with(".gguf");
        match is_repo {
            true if file.as_deref() != Some("") => Self::Hub {
                repo: repo.to_string(),
                file,
            },
            _ => Self::Local(path.to_path_buf()),
        }
    }

    /// The local path of the model, downloading it first if it comes from the hub.
    /// `progress(fraction, message)` hears about downloads.
    pub fn resolve(
        &self,
        cache_dir: &Path,
        progress: &dyn Fn(f32, &str),
    ) -> Result<PathBuf, LlmError> {
        match self {
            Self::Local(path) => Ok(path.clone()),
            Self::Hub { repo, file } => download(repo, file.as_deref(), cache_dir, progress),
        }
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
        api_repo
            .download_with_progress(name, rbee_hub::DownloadProgress::new(progress))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(repo: &str, file: Option<&str>) -> ModelSource {
        ModelSource::Hub {
            repo: repo.into(),
            file: file.map(Into::into),
        }
    }

    #[test]
    fn hub_references_and_paths_are_told_apart() {
        assert_eq!(ModelSource::parse("org/repo"), hub("org/repo", None));
        assert_eq!(
            ModelSource::parse("org/repo:m.Q4_1.gguf"),
            hub("org/repo", Some("m.Q4_1.gguf"))
        );
        for path in [
            "/abs/m.gguf",
            "./m.gguf",
            "m.gguf",
            "a/b/c.gguf",
            "dir/m.gguf",
            "org/repo:",
        ] {
            assert_eq!(
                ModelSource::parse(path),
                ModelSource::Local(path.into()),
                "{path}"
            );
        }
    }

    #[test]
    fn an_existing_relative_path_is_local_even_if_it_looks_like_a_repo() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("models")).unwrap();
        let reference = dir.path().join("models");
        assert_eq!(
            ModelSource::parse(reference.to_str().unwrap()),
            ModelSource::Local(reference)
        );
    }
}
