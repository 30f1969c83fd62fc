//! A worker type built out of tree (examples/embeddings-plugin), against plugin-api alone, dropped
//! into a plugins dir as `embeddings-cpu.so` and served by the unchanged host.

use rbee_tests::{Host, SseEvent, models_dir, run_host, set_mode, workspace_root};
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

const SO: &str = std::env::consts::DLL_EXTENSION;

/// Builds the example exactly as its author would, with the flags and target dir of the in-tree
/// cpu plugins (so candle is shared), once per test process; returns the built library.
fn built_plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"))
            .join("plugins/cpu");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .current_dir(workspace_root())
            .args([
                "build",
                "--quiet",
                "--manifest-path",
                "examples/embeddings-plugin/Cargo.toml",
            ])
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS");
        if cfg!(target_arch = "x86_64") {
            cargo.env("RUSTFLAGS", "-C target-cpu=x86-64-v3");
        }
        let status = cargo.status().expect("running cargo");
        assert!(
            status.success(),
            "building examples/embeddings-plugin failed"
        );
        let name = format!(
            "{}rbee_plugin_embeddings{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        target.join("debug").join(name)
    })
}

/// A fresh plugins dir holding only the out-of-tree plugin, installed as a user would.
fn plugins_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    set_mode(dir.path(), 0o755);
    let installed = dir.path().join(format!("embeddings-cpu.{SO}"));
    std::fs::copy(built_plugin(), &installed).expect("installing the plugin");
    set_mode(&installed, 0o755);
    dir
}

/// The model `cargo xtask models` provisions.
fn model_dir() -> PathBuf {
    let dir = models_dir().join("all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run `cargo xtask models`",
        dir.display()
    );
    dir
}

/// A host serving the plugin; the plugins dir lives as long as the host.
struct Served {
    host: Host,
    _plugins: tempfile::TempDir,
}

fn serve() -> Served {
    let plugins = plugins_dir();
    let (dir, model) = (plugins.path().to_str().unwrap(), model_dir());
    let host = Host::start_ready(&[
        "--plugin",
        "embeddings-cpu",
        "--plugins-dir",
        dir,
        "--model",
        model.to_str().unwrap(),
    ]);
    Served {
        host,
        _plugins: plugins,
    }
}

/// Runs an embedding job and returns its events.
fn embed(host: &Host, params: Value) -> Vec<SseEvent> {
    host.stream(&host.submit("embedding", params)).collect_all()
}

/// The vectors of a job's `embedding` events, checking each carries the next index.
fn vectors(events: &[SseEvent]) -> Vec<Vec<f32>> {
    let embeddings: Vec<&SseEvent> = events.iter().filter(|e| e.name == "embedding").collect();
    embeddings
        .iter()
        .enumerate()
        .map(|(index, event)| {
            assert_eq!(event.data["index"], index, "embedding events out of order");
            serde_json::from_value(event.data["vector"].clone()).expect("a vector of numbers")
        })
        .collect()
}

/// The vectors of an embedding job's events.
fn vectors_of(host: &Host, params: Value) -> Vec<Vec<f32>> {
    vectors(&embed(host, params))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn the_host_lists_and_describes_the_out_of_tree_plugin() {
    let plugins = plugins_dir();
    let listed = run_host(&[
        "plugins",
        "list",
        "--plugins-dir",
        plugins.path().to_str().unwrap(),
    ]);
    let table = String::from_utf8_lossy(&listed.stdout);
    let row = table
        .lines()
        .find(|line| line.starts_with("embeddings-cpu"))
        .unwrap_or_else(|| panic!("not listed:\n{table}"));
    assert!(
        row.contains("embeddings") && row.trim_end().ends_with("yes"),
        "{row}"
    );

    let served = serve();
    let info: Value = served.host.get("/v1/info").json().unwrap();
    assert_eq!(info["plugin"]["kind"], "embeddings");
    assert_eq!(info["plugin"]["tasks"], json!(["embedding"]));
    assert_eq!(
        info["plugin"]["params_schema"]["required"],
        json!(["input"])
    );
    assert_eq!(info["worker"]["model"], model_dir().to_str().unwrap());
}

#[test]
fn each_input_gets_one_unit_length_384_dimension_embedding_event_in_order() {
    let served = serve();
    let inputs: Vec<String> = (0..20)
        .map(|n| format!("sentence number {n} about the weather"))
        .collect();
    let events = embed(&served.host, json!({"input": inputs}));
    assert_eq!(events.first().unwrap().name, "started");
    let vectors = vectors(&events);
    assert_eq!(vectors.len(), inputs.len());
    for vector in &vectors {
        assert_eq!(vector.len(), 384);
        assert!(
            (dot(vector, vector).sqrt() - 1.0).abs() < 1e-4,
            "not L2-normalised"
        );
    }
    let end = events.last().unwrap();
    assert_eq!(end.name, "end");
    assert_eq!(end.data["stop_reason"], "completed");
    assert_eq!(end.data["dimensions"], 384);
    assert!(
        end.data["prompt_tokens"].as_u64().unwrap() > 20 * 3,
        "{}",
        end.data
    );

    let one = vectors_of(&served.host, json!({"input": inputs[17]}));
    assert!(
        dot(&one[0], &vectors[17]) > 0.9999,
        "batching changed a vector"
    );
    let raw = vectors_of(
        &served.host,
        json!({"input": inputs[17], "normalize": false}),
    );
    assert!(
        (dot(&raw[0], &raw[0]).sqrt() - 1.0).abs() > 0.01,
        "normalize: false still normalised"
    );
}

#[test]
fn similar_sentences_are_closer_than_unrelated_ones() {
    let served = serve();
    let inputs = [
        "a cat sits on the mat",
        "a kitten is on the rug",
        "stock markets fell",
    ];
    let v = vectors_of(&served.host, json!({"input": inputs}));
    let (similar, unrelated) = (dot(&v[0], &v[1]), dot(&v[0], &v[2]));
    assert!(
        similar > unrelated + 0.2,
        "cat~kitten {similar}, cat~stocks {unrelated}"
    );
}

#[test]
fn similarities_match_the_sentence_transformers_reference() {
    let served = serve();
    let inputs = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ];
    let v = vectors_of(&served.host, json!({"input": inputs}));
    // The similarity matrix sentence-transformers' README prints for all-MiniLM-L6-v2.
    for ((a, b), expected) in [((0, 1), 0.6660), ((0, 2), 0.1046), ((1, 2), 0.1411)] {
        let similarity = dot(&v[a], &v[b]);
        assert!(
            (similarity - expected).abs() < 2e-3,
            "inputs {a} and {b}: {similarity}, expected {expected}"
        );
    }
}

#[test]
fn delete_stops_a_long_job_between_batches() {
    let served = serve();
    let long = "a long sentence about cats, markets and the weather ".repeat(5);
    let id = served
        .host
        .submit("embedding", json!({"input": vec![long; 256]}));
    let mut stream = served.host.stream(&id);
    assert_eq!(stream.next().unwrap().name, "started");
    assert_eq!(stream.next().unwrap().name, "embedding");
    assert_eq!(served.host.delete(&format!("/v1/jobs/{id}")).status(), 200);
    let rest: Vec<SseEvent> = stream.collect();
    let end = rest.last().unwrap();
    assert_eq!(
        (end.name.as_str(), &end.data["stop_reason"]),
        ("end", &json!("cancelled"))
    );
    assert!(rest.len() < 100, "{} events after the cancel", rest.len());
}

#[test]
fn bad_parameters_are_a_400_naming_the_field() {
    let served = serve();
    let too_many = vec!["x"; 257];
    for (params, field) in [
        (json!({}), "input"),
        (json!({"input": []}), "input"),
        (json!({"input": ["fine", 7]}), "input"),
        (json!({"input": too_many}), "input"),
        (json!({"input": "fine", "normalize": "yes"}), "normalize"),
        (json!({"input": "fine", "dimensions": 64}), "dimensions"),
    ] {
        let response = served
            .host
            .post("/v1/jobs", &json!({"task": "embedding", "params": params}));
        assert_eq!(response.status(), 400, "{params}");
        let error = &response.json::<Value>().unwrap()["error"];
        assert_eq!(
            (&error["code"], &error["field"]),
            (&json!("invalid_params"), &json!(field)),
            "{params}"
        );
    }
    let wrong_task = served.host.post(
        "/v1/jobs",
        &json!({"task": "text-generation", "params": {"prompt": "hi"}}),
    );
    assert_eq!(wrong_task.status(), 400);
}

#[test]
fn a_model_dir_missing_a_file_stops_the_host_naming_the_file() {
    let plugins = plugins_dir();
    let model = tempfile::tempdir().unwrap();
    std::fs::copy(
        model_dir().join("config.json"),
        model.path().join("config.json"),
    )
    .unwrap();
    let mut host = Host::start(&[
        "--plugin",
        "embeddings-cpu",
        "--plugins-dir",
        plugins.path().to_str().unwrap(),
        "--model",
        model.path().to_str().unwrap(),
    ]);
    assert_eq!(
        host.wait_exit(Duration::from_secs(30)).code(),
        Some(1),
        "{}",
        host.log()
    );
    assert!(
        host.log()
            .contains("model.safetensors, tokenizer.json missing"),
        "{}",
        host.log()
    );
}

/// README.md's harmless fields of the embeddings route are accepted (200) by the real plugin.
#[test]
fn harmless_embedding_fields_are_accepted() {
    use rbee_tests::openai_fields::{harmless_value, route_fields, send_field};
    let served = serve();
    let route = route_fields("/v1/embeddings");
    assert!(!route.harmless.is_empty());
    for field in &route.harmless {
        let base = json!({"input": "a sentence"});
        let response = send_field(
            &served.host,
            &route,
            &base,
            &[],
            field,
            &harmless_value(field),
        );
        let status = response.status();
        assert_eq!(status, 200, "{field}: {}", response.text().unwrap());
    }
}
