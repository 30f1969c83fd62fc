//! Building (once per test process) and finding the binaries and fixtures the tests run.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, OnceLock},
};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// The cargo target dir.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn cargo(args: &[&str]) {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(workspace_root())
        .status()
        .expect("running cargo");
    assert!(status.success(), "cargo {args:?} failed");
}

/// The `rbee-host` binary, built on first use.
pub fn host_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        cargo(&["build", "--quiet", "-p", "rbee-host"]);
        target_dir().join("debug").join("rbee-host")
    })
}

/// The installed plugins dir: `$RBEE_TEST_PLUGINS_DIR` (set by `cargo xtask test`), else
/// built now with `cargo xtask plugins`.
pub fn plugins_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| match std::env::var_os("RBEE_TEST_PLUGINS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dir = target_dir().join("rbee-plugins");
            cargo(&[
                "xtask",
                "plugins",
                "--out",
                dir.to_str().expect("a UTF-8 path"),
            ]);
            dir
        }
    })
}

/// The installed file of plugin `id`.
pub fn plugin_file(id: &str) -> PathBuf {
    let file = plugins_dir().join(format!("{id}.{}", std::env::consts::DLL_EXTENSION));
    assert!(
        file.is_file(),
        "{} is missing: run `cargo xtask plugins`",
        file.display()
    );
    file
}

/// The test-model cache (`cargo xtask models` fills it).
pub fn models_dir() -> PathBuf {
    std::env::var_os("RBEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/rbee/models")
        })
}

/// The tiny random-weight Stable Diffusion checkpoint in diffusers layout (no real SD weights can
/// be fetched here), written once per test process with the SD plugin's own writer. It loads
/// through the same code path as a real checkpoint; only the configs are small.
pub fn tiny_sd_checkpoint() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = target_dir().join("fixtures").join("tiny-sd");
        run_plugin_example(
            "rbee-plugin-sd",
            "write_tiny_checkpoint",
            &[dir.as_os_str()],
        );
        dir
    })
}

/// A random-weight cross-encoder checkpoint of `kind` (`bert`, 2 layers; `minilm`, the
/// architecture of ms-marco-MiniLM-L-6-v2) in Hugging Face layout, with all-MiniLM-L6-v2's
/// tokenizer (no real reranker can be fetched here), written once per test process with the
/// rerank plugin's own writer.
pub fn tiny_rerank_checkpoint(kind: &str) -> PathBuf {
    static WRITTEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let dir = target_dir()
        .join("fixtures")
        .join(format!("tiny-rerank-{kind}"));
    let mut written = WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    if written.iter().any(|k| k == kind) {
        return dir;
    }
    let tokenizer = models_dir().join("all-MiniLM-L6-v2").join("tokenizer.json");
    assert!(
        tokenizer.is_file(),
        "{} is missing: run `cargo xtask models`",
        tokenizer.display()
    );
    run_plugin_example(
        "rbee-plugin-rerank",
        "write_tiny_cross_encoder",
        &[dir.as_os_str(), tokenizer.as_os_str(), kind.as_ref()],
    );
    written.push(kind.to_string());
    dir
}

/// A random-weight Parler-TTS checkpoint (2-layer text encoder and decoder, full-size DAC codec;
/// no real text-to-speech model can be fetched here), written once per test process with the
/// tts plugin's own writer. It loads through the same code path as a real checkpoint.
pub fn tiny_tts_checkpoint() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = target_dir().join("fixtures").join("tiny-tts");
        run_plugin_example("rbee-plugin-tts", "write_tiny_parler", &[dir.as_os_str()]);
        dir
    })
}

/// Runs a plugin crate's `example` (with its `test-support` feature) built as the cpu plugins
/// are, panicking if it fails. `cargo xtask test` builds the examples beside the plugins' own
/// tests, with every plugin's features, and names their directory in
/// `$RBEE_TEST_PLUGIN_EXAMPLES`; without it, cargo builds the one package's example (with that
/// package's features alone, which can mean building candle again).
fn run_plugin_example(package: &str, example: &str, args: &[&std::ffi::OsStr]) {
    let mut command = match std::env::var_os("RBEE_TEST_PLUGIN_EXAMPLES") {
        Some(dir) => {
            let binary = PathBuf::from(dir).join(example);
            assert!(
                binary.is_file(),
                "{} is missing: `cargo xtask test` builds it",
                binary.display()
            );
            Command::new(binary)
        }
        None => cargo_run_example(package, example),
    };
    assert!(
        command.args(args).status().unwrap().success(),
        "running {package}'s example {example} failed"
    );
}

/// `cargo run` of a plugin crate's `example` with its `test-support` feature, built as the cpu
/// plugins are; its arguments still to add.
fn cargo_run_example(package: &str, example: &str) -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(workspace_root())
        .args([
            "run",
            "--quiet",
            "-p",
            package,
            "--features",
            "test-support",
        ])
        .args(["--example", example, "--"])
        .env("CARGO_TARGET_DIR", target_dir().join("plugins").join("cpu"));
    if cfg!(target_arch = "x86_64") {
        cargo.env("RUSTFLAGS", "-C target-cpu=x86-64-v3");
    }
    cargo
}
