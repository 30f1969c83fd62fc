//! Where things are: the workspace, target dirs, the plugins dir, the model cache.

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The cargo target dir of the workspace.
pub fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Where plugins for `backend` are compiled (apart from the host: they use other CPU flags).
pub fn plugin_target(backend: &str) -> PathBuf {
    target().join("plugins").join(backend)
}

/// The plugins dir `cargo xtask plugins` installs into by default.
pub fn default_plugins_dir() -> PathBuf {
    target().join("rbee-plugins")
}

/// Where `cargo xtask check-cuda` unpacks NVIDIA's compiler: `$RBEE_CUDA_DIR`, else
/// `~/.cache/rbee/cuda-13.4`. Outside the repo.
pub fn cuda_toolkit_dir() -> PathBuf {
    std::env::var_os("RBEE_CUDA_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|dir| dir.join("rbee").join("cuda-13.4")))
        .expect("no cache dir: set RBEE_CUDA_DIR")
}

/// The test-model cache: `$RBEE_MODELS_DIR`, else `~/.cache/rbee/models`. Outside the repo.
pub fn models_dir() -> PathBuf {
    std::env::var_os("RBEE_MODELS_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|dir| dir.join("rbee").join("models")))
        .expect("no cache dir: set RBEE_MODELS_DIR")
}
