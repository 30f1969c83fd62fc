//! Models named by hub reference (`org/repo:file`): the standard cache, offline mode, and a
//! clear error (not a hang) when the hub cannot be reached. No real hub is reachable here, so
//! the hub is a closed loopback port and the cache is laid out by the test.

use rbee_tests::{Host, models_dir, plugins_dir};
use serde_json::json;
use std::time::Duration;

const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn llm_args<'a>(dir: &'a str, model: &'a str, cache: &'a str) -> Vec<&'a str> {
    vec![
        "--plugin",
        "llm-cpu",
        "--plugins-dir",
        dir,
        "--model",
        model,
        "--cache-dir",
        cache,
    ]
}

/// A Hugging Face cache holding the test model as `local/smollm` at revision main.
fn cache_with_the_test_model() -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--local--smollm");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    let model = models_dir().join(FILE);
    assert!(model.is_file(), "run `cargo xtask models` first");
    std::os::unix::fs::symlink(model, snapshot.join(FILE)).unwrap();
    cache
}

#[test]
fn an_unreachable_hub_is_a_clear_error_not_a_hang() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = tempfile::tempdir().unwrap();
    let dir = plugins_dir().to_str().unwrap().to_string();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let args = llm_args(
        &dir,
        "someorg/somerepo:model.gguf",
        cache.path().to_str().unwrap(),
    );
    let mut host = Host::start_with_env(&args, &[("HF_ENDPOINT", endpoint.as_str())]);
    assert_eq!(host.wait_exit(Duration::from_secs(60)).code(), Some(1));
    let log = host.log();
    assert!(
        log.contains("someorg/somerepo:model.gguf") && log.contains("cannot download model.gguf"),
        "{log}"
    );
}

#[test]
fn offline_mode_serves_a_model_from_the_cache() {
    let cache = cache_with_the_test_model();
    let dir = plugins_dir().to_str().unwrap().to_string();
    let model = format!("local/smollm:{FILE}");
    let args = llm_args(&dir, &model, cache.path().to_str().unwrap());
    let host = Host::start_with_env(
        &args,
        &[
            ("HF_HUB_OFFLINE", "1"),
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
        ],
    );
    host.wait_ready(Duration::from_secs(120));
    let events = host
        .stream(&host.submit(
            "text-generation",
            json!({"prompt": "Hello", "max_tokens": 3}),
        ))
        .collect_all();
    assert_eq!(events.last().unwrap().data["completion_tokens"], 3);
}

#[test]
fn offline_mode_names_a_file_missing_from_the_cache() {
    let cache = cache_with_the_test_model();
    let dir = plugins_dir().to_str().unwrap().to_string();
    let args = llm_args(
        &dir,
        "local/smollm:other.gguf",
        cache.path().to_str().unwrap(),
    );
    let mut host = Host::start_with_env(&args, &[("HF_HUB_OFFLINE", "1")]);
    assert_eq!(host.wait_exit(Duration::from_secs(60)).code(), Some(1));
    assert!(
        host.log()
            .contains("HF_HUB_OFFLINE is set and other.gguf is not in the cache"),
        "{}",
        host.log()
    );
}
