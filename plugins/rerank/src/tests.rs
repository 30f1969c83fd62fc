//! The worker tested without a host: cross-encoders on random-weight checkpoints written here
//! (BERT and XLM-RoBERTa; no real reranker can be fetched), and the bi-encoder mode on the real
//! all-MiniLM-L6-v2, whose rankings must be right. plugin-api's recording sink and host
//! services stand in for the host.

use crate::{
    load,
    tiny::{self, TinyKind},
    worker::RerankWorker,
};
use rbee_plugin_api::{
    Job, LoadRequest, PluginWorker, error_code,
    tasks::{rerank, stop_reason},
    testing::{RecordingSink, TestHost},
};
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

/// all-MiniLM-L6-v2 under `$RBEE_MODELS_DIR` (or `~/.cache/rbee/models`); panics with
/// instructions when it is missing, so the tests fail rather than skip.
fn minilm_dir() -> PathBuf {
    let models = std::env::var_os("RBEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
                .join(".cache/rbee/models")
        });
    let dir = models.join("all-MiniLM-L6-v2");
    assert!(
        dir.is_dir(),
        "the test model is missing at {}: run `cargo xtask models` to provision it",
        dir.display()
    );
    dir
}

/// A random-weight checkpoint of `kind`, written once per test process.
fn checkpoint(kind: TinyKind) -> &'static Path {
    static DIRS: OnceLock<tempfile::TempDir> = OnceLock::new();
    let root = DIRS.get_or_init(|| tempfile::tempdir().unwrap()).path();
    let dir = root.join(format!("{kind:?}"));
    static WRITE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = WRITE.lock().unwrap_or_else(|e| e.into_inner());
    if !dir.join("config.json").is_file() {
        tiny::write(&dir, kind, &minilm_dir().join("tokenizer.json")).unwrap();
    }
    Box::leak(dir.into_boxed_path())
}

/// A worker on `model` with load `options`.
fn worker(model: &Path, options: Value) -> RerankWorker {
    let mut request = LoadRequest::cpu(model.to_str().unwrap());
    request.options_json = options.to_string().as_str().into();
    load(request, TestHost::default().api()).unwrap()
}

/// A `rerank` job.
fn job(query: &str, documents: &[&str]) -> Job {
    let params = json!({(rerank::param::QUERY): query, (rerank::param::DOCUMENTS): documents});
    Job::new("test", rerank::TASK, &params.to_string())
}

/// Runs a job: the scores by document index, and the end details.
fn run(worker: &RerankWorker, query: &str, documents: &[&str]) -> (Vec<f32>, Value) {
    let recording = RecordingSink::new();
    let end = worker
        .execute(job(query, documents), recording.sink())
        .unwrap();
    assert_eq!(end.stop_reason.as_str(), stop_reason::COMPLETED);
    let mut scores = vec![f32::NAN; documents.len()];
    for event in recording.custom(rerank::SCORE) {
        let event: Value = serde_json::from_str(&event).unwrap();
        let index = event[rerank::score::INDEX].as_u64().unwrap() as usize;
        assert!(scores[index].is_nan(), "one score per document");
        scores[index] = event[rerank::score::RELEVANCE_SCORE].as_f64().unwrap() as f32;
    }
    assert!(scores.iter().all(|s| s.is_finite()), "{scores:?}");
    (scores, serde_json::from_str(&end.details_json).unwrap())
}

/// Twenty documents of different lengths, one longer than any window.
fn documents() -> Vec<String> {
    let mut documents: Vec<String> = (0..19)
        .map(|i| format!("document {i} says {}", "something more ".repeat(i)))
        .collect();
    documents.insert(7, "a very long document ".repeat(400));
    documents
}

fn batch_independence(kind: TinyKind) {
    let texts = documents();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let query = "which document says the most?";
    let (batched, details) = run(
        &worker(checkpoint(kind), json!({"batch": 16})),
        query,
        &texts,
    );
    let (alone, _) = run(
        &worker(checkpoint(kind), json!({"batch": 1})),
        query,
        &texts,
    );
    for (a, b) in batched.iter().zip(&alone) {
        assert!(
            (a - b).abs() < 1e-4,
            "padding changed a score: {batched:?} vs {alone:?}"
        );
        assert!((0.0..=1.0).contains(a), "a probability: {a}");
    }
    let distinct = batched.iter().any(|s| (s - batched[0]).abs() > 1e-6);
    assert!(distinct, "the scores depend on the text: {batched:?}");
    assert_eq!(details[rerank::end::TRUNCATED], json!([7]), "{details}");
    assert_eq!(details["kind"], "cross-encoder");
    let tokens = details[rerank::end::PROMPT_TOKENS].as_u64().unwrap();
    assert!(tokens > 512 && tokens < 512 * 2 + 20 * 40, "{tokens}");
}

#[test]
fn a_bert_cross_encoder_scores_every_document_the_same_in_any_batch() {
    batch_independence(TinyKind::Bert);
}

#[test]
fn an_xlm_roberta_cross_encoder_scores_every_document_the_same_in_any_batch() {
    batch_independence(TinyKind::XlmRoberta);
}

#[test]
fn the_bi_encoder_ranks_the_obvious_answer_first() {
    let worker = worker(&minilm_dir(), json!({}));
    let cases = [
        (
            "How many legs does a spider have?",
            [
                "Paris is the capital and largest city of France.",
                "Spiders are arachnids with eight legs and two body segments.",
                "Cook the pasta in salted boiling water for ten minutes.",
            ],
            1,
        ),
        (
            "What is the capital of France?",
            [
                "Spiders are arachnids with eight legs and two body segments.",
                "Cook the pasta in salted boiling water for ten minutes.",
                "Paris is the capital and largest city of France.",
            ],
            2,
        ),
        (
            "How long should spaghetti boil?",
            [
                "Cook the pasta in salted boiling water for ten minutes.",
                "Paris is the capital and largest city of France.",
                "Spiders are arachnids with eight legs and two body segments.",
            ],
            0,
        ),
    ];
    for (query, documents, best) in cases {
        let (scores, details) = run(&worker, query, &documents);
        let top = (0..3)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        assert_eq!(top, best, "{query}: {scores:?}");
        assert_eq!(details["kind"], "bi-encoder");
        assert_eq!(details[rerank::end::TRUNCATED], json!([]));
    }
}

#[test]
fn validate_refuses_other_tasks_bad_parameters_and_a_query_that_does_not_fit() {
    let worker = worker(checkpoint(TinyKind::Bert), json!({"max_tokens": 32}));
    let other = Job::new("test", "embedding", r#"{"input": "a"}"#);
    assert_eq!(
        worker.validate(&other).unwrap_err().code.as_str(),
        error_code::UNSUPPORTED_TASK
    );
    let field = |job: &Job| {
        String::from(
            worker
                .validate(job)
                .unwrap_err()
                .field
                .into_option()
                .unwrap(),
        )
    };
    assert_eq!(field(&job("q", &[])), rerank::param::DOCUMENTS);
    let long_query = "word ".repeat(40);
    assert_eq!(field(&job(&long_query, &["d"])), rerank::param::QUERY);
    assert!(worker.validate(&job(&"word ".repeat(20), &["d"])).is_ok());
}

#[test]
fn a_stop_is_noticed_between_batches() {
    let worker = worker(checkpoint(TinyKind::Bert), json!({"batch": 4}));
    let recording = RecordingSink::new().stop_at_poll(2);
    let end = worker
        .execute(job("q", &["some text"; 10]), recording.sink())
        .unwrap();
    assert_eq!(end.stop_reason.as_str(), stop_reason::CANCELLED);
    assert_eq!(
        recording.custom(rerank::SCORE).len(),
        4,
        "the first batch only"
    );
}

#[test]
fn load_options_and_missing_files_fail_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut request = LoadRequest::cpu(dir.path().to_str().unwrap());
    let error = load(request.clone(), TestHost::default().api())
        .err()
        .unwrap();
    assert_eq!(error.code.as_str(), error_code::MODEL_LOAD);
    assert!(error.message.contains("config.json"), "{}", error.message);
    request.model = checkpoint(TinyKind::Bert).to_str().unwrap().into();
    request.options_json = r#"{"kind": "bi-encoder", "batch": 0}"#.into();
    let error = load(request, TestHost::default().api()).err().unwrap();
    assert!(error.message.contains("batch"), "{}", error.message);
}
