//! The Hugging Face hub as rbee's plugins reach it: downloads go into the cache directory the
//! host names, and the standard variables apply (`HF_ENDPOINT` for a mirror, `HF_TOKEN` for
//! gated repositories, `HF_HUB_OFFLINE` to use the cache alone), as in Hugging Face's own tools.

use hf_hub::{
    Cache,
    api::{
        Progress,
        sync::{Api, ApiBuilder, ApiError},
    },
};
use std::path::Path;

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
