//! The Hugging Face hub as rbee's plugins reach it: downloads go into the cache directory the
//! host names, and the standard variables apply (`HF_ENDPOINT` for a mirror, `HF_TOKEN` for
//! gated repositories, `HF_HUB_OFFLINE` to use the cache alone), as in Hugging Face's own tools.

use hf_hub::{
    Cache, Repo,
    api::{
        Progress,
        sync::{Api, ApiBuilder, ApiError, ApiRepo},
    },
};
use std::{
    fs::File,
    io::ErrorKind,
    path::{Path, PathBuf},
};

pub mod repository;

/// Whether `HF_HUB_OFFLINE` forbids network access (the cache alone is used).
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// The hub client: `cache_dir` as its cache, `HF_ENDPOINT` and `HF_TOKEN` when set.
pub fn api(cache_dir: &Path) -> Result<Api, ApiError> {
    let mut builder =
        ApiBuilder::from_cache(Cache::new(cache_dir.to_path_buf())).with_progress(false);
    if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint);
    }
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    builder.build()
}

/// Downloads `file` of the hub repository `repo` (which `api` reaches) into `cache_dir`, the
/// cache `api` was built on, telling `progress`; why not, for people. A download the disk cannot
/// hold leaves no partial file behind (it would keep the disk full), and its error names the
/// cache directory.
pub fn download(
    api: &ApiRepo,
    repo: &str,
    file: &str,
    cache_dir: &Path,
    progress: impl Progress,
) -> Result<PathBuf, String> {
    let error = match api.download_with_progress(file, progress) {
        Ok(path) => return Ok(path),
        Err(error) => error,
    };
    let full = match &error {
        ApiError::IoError(e) if e.kind() == ErrorKind::StorageFull => "no space left on device",
        ApiError::IoError(e) if e.kind() == ErrorKind::QuotaExceeded => "disk quota exceeded",
        _ => return Err(error.to_string()),
    };
    let repo_dir = cache_dir.join(Repo::model(repo.to_string()).folder_name());
    remove_partial_downloads(&repo_dir.join("blobs"));
    Err(format!(
        "{full} in the model cache {}: the partial download was removed; free space there, or \
         choose another directory with --cache-dir",
        cache_dir.display()
    ))
}

/// Removes the partial downloads (`*.part`) in `blobs` that no download is writing: hf-hub
/// holds the lock file beside each while it writes.
fn remove_partial_downloads(blobs: &Path) {
    let Ok(entries) = std::fs::read_dir(blobs) else {
        return;
    };
    for part in entries.filter_map(|entry| Some(entry.ok()?.path())) {
        if part.extension().is_none_or(|extension| extension != "part") {
            continue;
        }
        let Ok(lock) = File::open(part.with_extension("lock")) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            let _ = std::fs::remove_file(&part);
        }
    }
}

/// Forwards hf-hub's byte counts to `progress(fraction, message)`, at most once per percent of
/// the file.
pub struct DownloadProgress<'a> {
    progress: &'a dyn Fn(f32, &str),
    file: String,
    total: usize,
    done: usize,
    reported: f32,
}

impl<'a> DownloadProgress<'a> {
    /// Reports to `progress`.
    pub fn new(progress: &'a dyn Fn(f32, &str)) -> Self {
        Self {
            progress,
            file: String::new(),
            total: 1,
            done: 0,
            reported: 0.0,
        }
    }
}

impl Progress for DownloadProgress<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        self.total = size.max(1);
        self.file = filename.to_string();
        (self.progress)(0.0, &format!("downloading {filename}"));
    }

    fn update(&mut self, size: usize) {
        self.done += size;
        let fraction = (self.done as f32 / self.total as f32).min(1.0);
        if fraction - self.reported >= 0.01 {
            self.reported = fraction;
            (self.progress)(fraction, &format!("downloading {}", self.file));
        }
    }

    fn finish(&mut self) {
        (self.progress)(1.0, &format!("downloaded {}", self.file));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partial_downloads_nobody_writes_are_removed() {
        let blobs = std::env::temp_dir().join(format!("rbee-hub-blobs-{}", std::process::id()));
        std::fs::create_dir_all(&blobs).unwrap();
        for name in [
            "stale.part",
            "stale.lock",
            "written.part",
            "written.lock",
            "whole",
        ] {
            std::fs::write(blobs.join(name), "x").unwrap();
        }
        let writing = File::open(blobs.join("written.lock")).unwrap();
        writing.lock().unwrap();
        remove_partial_downloads(&blobs);
        let mut left: Vec<String> = std::fs::read_dir(&blobs)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["stale.lock", "whole", "written.lock", "written.part"]
        );
        std::fs::remove_dir_all(&blobs).unwrap();
    }
}
