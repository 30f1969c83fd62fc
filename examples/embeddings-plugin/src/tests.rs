//! The worker tested without a host, on the test model (all-MiniLM-L6-v2): plugin-api's
//! recording sink and host services stand in for the host.

use crate::{
    load,
    worker::{BATCH, EmbeddingsWorker},
};
use rbee_plugin_api::{
    Job, LoadRequest, PluginWorker, error_code,
    tasks::{embedding, stop_reason},
    testing::{RecordingSink, TestHost},
};
use serde_json::{Value, json};
use std::{path::PathBuf, sync::OnceLock};

/// The test model's directory under `$RBEE_MODELS_DIR` (or `~/.cache/rbee/models`). Panics with
/// instructions when it is missing, so the model tests fail rather than skip.
fn model_dir() -> PathBuf {
    let models = std::env::var_os("RBEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/rbee/models")
        });
    let dir = models.join("all-MiniLM-L6-v2");
    assert!(
        dir.is_dir(),
        "the test model is missing at {}: run `cargo xtask models` to provision it",
        dir.display()
    );
    dir
}

/// The worker on the test model, loaded once for all tests.
fn worker() -> &'static EmbeddingsWorker {
    static WORKER: OnceLock<EmbeddingsWorker> = OnceLock::new();
    WORKER.get_or_init(|| {
        let request = LoadRequest::cpu(model_dir().to_str().unwrap());
        load(request, TestHost::default().api()).unwrap()
    })
}

/// An `embedding` job on `texts`.
fn job(texts: &[&str]) -> Job {
    let params = json!({ (embedding::param::INPUT): texts }).to_string();
    Job::new("test", embedding::TASK, &params)
}

/// The dot product: the cosine similarity of unit vectors.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn embeds_each_input_in_order_as_unit_vectors() {
    let recording = RecordingSink::new();
    let texts = [
        "a cat sits on the mat",
        "a kitten rests on a rug",
        "the tax form is due",
    ];
    let end = worker().execute(job(&texts), recording.sink()).unwrap();

    assert_eq!(end.stop_reason.as_str(), stop_reason::COMPLETED);
    let details: Value = serde_json::from_str(&end.details_json).unwrap();
    assert_eq!(details["dimensions"], 384);
    assert!(details[embedding::end::PROMPT_TOKENS].as_u64().unwrap() > texts.len() as u64);
    let embeddings = recording.embeddings();
    let indices: Vec<u64> = embeddings.iter().map(|(index, _)| *index).collect();
    assert_eq!(indices, [0, 1, 2]);
    for (_, vector) in &embeddings {
        assert_eq!(vector.len(), 384);
        assert!((dot(vector, vector) - 1.0).abs() < 1e-4);
    }
    let [cat, kitten, tax] = [0, 1, 2].map(|i| embeddings[i].1.as_slice());
    assert!(dot(cat, kitten) > dot(cat, tax), "similar texts are closer");
}

#[test]
fn a_stop_is_noticed_between_batches() {
    let recording = RecordingSink::new().stop_at_poll(2);
    let texts = ["some text"; BATCH + 4];
    let end = worker().execute(job(&texts), recording.sink()).unwrap();

    assert_eq!(end.stop_reason.as_str(), stop_reason::CANCELLED);
    assert_eq!(recording.embeddings().len(), BATCH, "the first batch only");
}

#[test]
fn validate_refuses_other_tasks_and_bad_parameters() {
    let other = Job::new("test", "text-generation", r#"{"input": "a"}"#);
    let error = worker().validate(&other).unwrap_err();
    assert_eq!(error.code.as_str(), error_code::UNSUPPORTED_TASK);
    let error = worker().validate(&job(&[])).unwrap_err();
    assert_eq!(error.field.unwrap().as_str(), embedding::param::INPUT);
    assert!(worker().validate(&job(&["fine"])).is_ok());
}

#[test]
fn loading_reports_progress_and_status() {
    let host = TestHost::default();
    let dir = model_dir();
    let worker = load(LoadRequest::cpu(dir.to_str().unwrap()), host.api()).unwrap();
    assert_eq!(host.progress().last(), Some(&1.0));
    let status = worker.status();
    assert_eq!(status.model.as_str(), dir.to_str().unwrap());
    assert!(status.memory_bytes > 0);
}

#[test]
fn a_directory_without_the_model_fails_the_load_naming_the_files() {
    let empty = std::env::temp_dir().join(format!("rbee-embeddings-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let error = load(
        LoadRequest::cpu(empty.to_str().unwrap()),
        TestHost::default().api(),
    )
    .err()
    .expect("a load error");
    std::fs::remove_dir(&empty).unwrap();
    assert_eq!(error.code.as_str(), error_code::MODEL_LOAD);
    assert!(error.message.contains("config.json"), "{}", error.message);
}
