//! Where a model comes from, as the user named it: a local path or a Hugging Face hub reference.
//!
//! [`ModelSource::parse`] applies one rule set, in order:
//!
//! 1. A reference that exists on this machine (file or directory) is a local path.
//! 2. So is one that is absolute or starts with `.` or `~`.
//! 3. `org/repo` and `org/repo:file` are hub references: exactly two non-empty `/`-separated
//!    parts before the first `:`, the repository not ending in `.gguf` (that is a file path), and
//!    a file after `:`, if any, that is not empty.
//! 4. Anything else is a local path, which then fails to load, naming itself.
//!
//! Fetching is each plugin's own: what files make up a model differs from plugin to plugin.

use std::{
    fmt,
    path::{Path, PathBuf},
};

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
    /// Reads a model reference by the rules of the [module docs](self).
    pub fn parse(reference: &str) -> Self {
        let path = Path::new(reference);
        if path.exists() || path.is_absolute() || reference.starts_with(['.', '~']) {
            return Self::Local(path.to_path_buf());
        }
        let (repo, file) = match reference.split_once(':') {
            Some((repo, file)) => (repo, Some(file)),
            None => (reference, None),
        };
        let parts: Vec<&str> = repo.split('/').collect();
        let is_repo = parts.len() == 2
            && parts.iter().all(|part| !part.is_empty())
            && !repo.ends_with(".gguf")
            && file != Some("");
        match is_repo {
            true => Self::Hub {
                repo: repo.to_string(),
                file: file.map(str::to_string),
            },
            false => Self::Local(path.to_path_buf()),
        }
    }
}

/// The reference as the user would write it: the path, or `org/repo[:file]`.
impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Hub { repo, file: None } => f.write_str(repo),
            Self::Hub {
                repo,
                file: Some(file),
            } => write!(f, "{repo}:{file}"),
        }
    }
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
            "~/models/m",
            "m.gguf",
            "whisper",
            "a/b/c.gguf",
            "a/b/c",
            "dir/m.gguf",
            "org/",
            "/repo",
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

    #[test]
    fn a_source_displays_as_written() {
        for reference in ["org/repo", "org/repo:m.gguf", "./m.gguf"] {
            assert_eq!(ModelSource::parse(reference).to_string(), reference);
        }
    }
}
