//! Test harness: builds what the tests need, starts the real `rbee-host` binary, talks HTTP
//! and SSE to it.

mod build;
mod fixtures;
mod hive;
mod host;
pub mod load;
mod models_file;
pub mod openai_fields;
pub mod soak;
mod sse;

pub use build::{
    host_bin, models_dir, plugin_file, plugins_dir, tiny_rerank_checkpoint, tiny_sd_checkpoint,
    tiny_tts_checkpoint, workspace_root,
};
pub use fixtures::{ApiChange, echo_built_against, host_built_against};
pub use hive::{FakeHive, Received};
pub use host::{Host, LLM_TEST_MODEL, open_files, resident_bytes, run_host};
pub use models_file::ModelsFile;
pub use sse::{SseEvent, SseStream, streamed_text};

use std::time::{Duration, Instant};

/// Polls `condition` every few milliseconds until it holds; panics naming `what` (what was
/// awaited, e.g. "the job to run") if it still does not hold after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        // Pacing between polls; how long this waits is bounded by `timeout`.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A directory holding copies of some installed plugins, with safe permissions.
pub fn plugins_dir_with(ids: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    set_mode(dir.path(), 0o755);
    for id in ids {
        let target = dir
            .path()
            .join(format!("{id}.{}", std::env::consts::DLL_EXTENSION));
        std::fs::copy(plugin_file(id), &target).expect("copying a plugin");
        set_mode(&target, 0o755);
    }
    dir
}

/// Sets a file's or directory's permission bits.
pub fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
