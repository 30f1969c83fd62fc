//! The audio plugin's models by hub reference (`org/repo`): a CTranslate2 repository served
//! from the standard cache in offline mode, the default model, and clear errors (not hangs)
//! when the hub cannot be reached. No real hub is reachable here, so the hub is a closed
//! loopback port and the cache is laid out by the test.

mod audio_support;

use audio_support::{MODEL_DIR, base64, clip, normalise, provisioned};
use rbee_tests::{Host, plugins_dir, streamed_text};
use serde_json::json;
use std::time::Duration;

/// `--plugin audio-cpu` with the test plugins, the given cache and, if any, `--model`.
fn host_args(model: Option<&str>, cache: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--plugin",
        "audio-cpu",
        "--plugins-dir",
        plugins_dir().to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--threads",
        "2",
    ]
    .map(String::from)
    .to_vec();
    if let Some(model) = model {
        args.extend(["--model".to_string(), model.to_string()]);
    }
    args
}

fn start(args: &[String], env: &[(&str, &str)]) -> Host {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Host::start_with_env(&args, env)
}

/// A port nothing listens on: the hub the host cannot reach.
fn closed_hub() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

/// A Hugging Face cache holding the `files` of the test model (CTranslate2) as
/// `local/whisper-tiny.en` at revision main.
fn cache_with_the_test_model(files: &[&str]) -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--local--whisper-tiny.en");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    for file in files {
        let source = provisioned(&format!("{MODEL_DIR}/{file}"));
        std::os::unix::fs::symlink(source, snapshot.join(file)).unwrap();
    }
    cache
}

#[test]
fn offline_a_ctranslate2_repository_is_served_from_the_cache() {
    let cache = cache_with_the_test_model(&["config.json", "model.bin", "tokenizer.json"]);
    let args = host_args(Some("local/whisper-tiny.en"), cache.path());
    let host = start(
        &args,
        &[
            ("HF_HUB_OFFLINE", "1"),
            ("HF_ENDPOINT", closed_hub().as_str()),
        ],
    );
    host.wait_ready(Duration::from_secs(120));
    let (wav, reference) = clip("hello_world");
    let events = host
        .stream(&host.submit("transcription", json!({"audio": base64(&wav)})))
        .collect_all();
    assert_eq!(normalise(&streamed_text(&events)), normalise(&reference));
    let models = host.get("/v1/models").json::<serde_json::Value>().unwrap();
    assert_eq!(models["data"][0]["id"], "local/whisper-tiny.en", "{models}");
}

#[test]
fn offline_an_incomplete_copy_in_the_cache_is_named() {
    let cache = cache_with_the_test_model(&["config.json", "model.bin"]);
    let args = host_args(Some("local/whisper-tiny.en"), cache.path());
    let mut host = start(&args, &[("HF_HUB_OFFLINE", "1")]);
    assert_eq!(host.wait_exit(Duration::from_secs(60)).code(), Some(1));
    let log = host.log();
    assert!(
        log.contains("local/whisper-tiny.en")
            && log.contains("HF_HUB_OFFLINE is set and the cache at"),
        "{log}"
    );
}

#[test]
fn without_model_the_default_is_fetched_and_an_unreachable_hub_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let args = host_args(None, cache.path());
    let mut host = start(&args, &[("HF_ENDPOINT", closed_hub().as_str())]);
    assert_eq!(host.wait_exit(Duration::from_secs(60)).code(), Some(1));
    let log = host.log();
    assert!(
        log.contains("Systran/faster-whisper-base")
            && log.contains("cannot list the repository on the hub"),
        "{log}"
    );
}
