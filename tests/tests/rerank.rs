//! The real rerank plugin through a running host: `POST /v1/rerank` (and its aliases `/rerank`
//! and `/v2/rerank`) and the native `rerank` job, as curl would send them. Rankings are checked
//! with the bi-encoder mode on the real all-MiniLM-L6-v2; the cross-encoder path (truncation,
//! batching, probabilities) on a random-weight BERT classifier the test writes, since no real
//! reranker can be fetched here.

use rbee_tests::{Host, models_dir, tiny_rerank_checkpoint};
use serde_json::{Value, json};

const SPIDER: &str = "Spiders are arachnids: they have eight legs and two body segments.";
const PARIS: &str = "Paris is the capital and largest city of France.";
const PASTA: &str = "Cook the pasta in salted boiling water for about ten minutes.";

/// A host serving all-MiniLM-L6-v2 as a bi-encoder (its config names no classifier).
fn bi_encoder_host() -> Host {
    Host::start_rerank(&models_dir().join("all-MiniLM-L6-v2"), &[])
}

/// A host serving the tiny random cross-encoder with a 64-token window.
fn cross_encoder_host() -> Host {
    Host::start_rerank(
        &tiny_rerank_checkpoint("bert"),
        &["--plugin-options", r#"{"max_tokens": 64, "batch": 4}"#],
    )
}

/// POSTs `body` to `path` and returns the 200 answer.
fn ok(host: &Host, path: &str, body: &Value) -> Value {
    let response = host.post(path, body);
    let status = response.status();
    let answer: Value = response.json().unwrap_or(Value::Null);
    assert_eq!(status, 200, "{path}: {answer}\n{}", host.log());
    answer
}

/// The scores of an answer's results, asserting they are best first.
fn scores(answer: &Value) -> Vec<f64> {
    let scores: Vec<f64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["relevance_score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {answer}"
    );
    scores
}

#[test]
fn the_obvious_answer_ranks_first_on_every_route() {
    let host = bi_encoder_host();
    for (path, query, best) in [
        ("/v1/rerank", "How many legs does a spider have?", SPIDER),
        ("/rerank", "What is the capital of France?", PARIS),
        ("/v2/rerank", "How long should spaghetti boil?", PASTA),
    ] {
        let body = json!({
            "model": "all-MiniLM-L6-v2",
            "query": query,
            "documents": [PARIS, {"text": SPIDER}, PASTA],
            "top_n": 2,
            "return_documents": true,
        });
        let answer = ok(&host, path, &body);
        let results = answer["results"].as_array().unwrap();
        assert_eq!(results.len(), 2, "top_n: {answer}");
        assert_eq!(results[0]["document"]["text"], best, "{query}: {answer}");
        let index = results[0]["index"].as_u64().unwrap() as usize;
        let documents = [PARIS, SPIDER, PASTA];
        assert_eq!(documents[index], best);
        assert_eq!(results[0]["truncated"], false);
        scores(&answer);
        assert_eq!(answer["object"], "list");
        assert_eq!(answer["model"], "all-MiniLM-L6-v2");
        let usage = &answer["usage"];
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 20, "{answer}");
        assert_eq!(usage["prompt_tokens"], usage["total_tokens"]);
    }
    let answer = ok(
        &host,
        "/v1/rerank",
        &json!({"query": "spider legs", "documents": [PASTA, SPIDER]}),
    );
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "every document without top_n");
    assert!(results[0].get("document").is_none(), "{answer}");
    assert_eq!(results[0]["index"], 1);
}

#[test]
fn the_native_job_sends_a_score_per_document() {
    let host = bi_encoder_host();
    let answer = ok(
        &host,
        "/v1/jobs?wait=true",
        &json!({"task": "rerank", "params": {
            "query": "How many legs does a spider have?",
            "documents": [PARIS, SPIDER, PASTA],
        }}),
    );
    assert_eq!(answer["stop_reason"], "completed", "{answer}");
    let events = answer["events"]["score"].as_array().unwrap();
    let mut by_index = [f64::NAN; 3];
    for event in events {
        by_index[event["index"].as_u64().unwrap() as usize] =
            event["relevance_score"].as_f64().unwrap();
    }
    assert!(
        by_index[1] > by_index[0] && by_index[1] > by_index[2],
        "{answer}"
    );
    assert!(answer["prompt_tokens"].as_u64().unwrap() > 20);
    assert_eq!(answer["truncated"], json!([]));
    assert_eq!(answer["kind"], "bi-encoder");
}

#[test]
fn a_cross_encoder_scores_in_batches_and_marks_truncated_documents() {
    let host = cross_encoder_host();
    let long = "a very long document about nothing in particular ".repeat(30);
    let mut documents: Vec<String> = (0..9).map(|i| format!("short document {i}")).collect();
    documents.insert(3, long.clone());
    let answer = ok(
        &host,
        "/v1/rerank",
        &json!({"query": "which one?", "documents": documents, "return_documents": true}),
    );
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 10, "{answer}");
    for result in results {
        let score = result["relevance_score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "a probability: {answer}");
        let truncated = result["index"] == 3;
        assert_eq!(result["truncated"], truncated, "{result}");
    }
    scores(&answer);
    let full = results.iter().find(|r| r["index"] == 3).unwrap();
    assert_eq!(full["document"]["text"], long, "the whole text is returned");
    let native = ok(
        &host,
        "/v1/jobs?wait=true",
        &json!({"task": "rerank", "params": {"query": "which one?", "documents": documents}}),
    );
    assert_eq!(native["truncated"], json!([3]));
    assert_eq!(native["kind"], "cross-encoder");
    assert_eq!(native["window"], 64);
}

#[test]
fn bad_requests_are_400_naming_the_field() {
    let host = cross_encoder_host();
    let long_query = "word ".repeat(80);
    for (body, field) in [
        (json!({"query": "q", "documents": []}), "documents"),
        (json!({"documents": ["a"]}), "query"),
        (
            json!({"query": "q", "documents": ["a"], "top_n": "3"}),
            "top_n",
        ),
        (
            json!({"query": "q", "documents": ["a"], "top_n": 1.5}),
            "top_n",
        ),
        (
            json!({"query": "q", "documents": [{"title": "a"}]}),
            "documents",
        ),
        (
            json!({"query": "q", "documents": ["a"], "cache_prompt": true}),
            "cache_prompt",
        ),
        (
            json!({"query": "q", "documents": ["a"], "rank_fields": ["text"]}),
            "rank_fields",
        ),
        (json!({"query": long_query, "documents": ["a"]}), "query"),
    ] {
        for path in ["/v1/rerank", "/rerank"] {
            let response = host.post(path, &body);
            let status = response.status();
            let answer: Value = response.json().unwrap_or(Value::Null);
            assert_eq!(status, 400, "{path} {body}: {answer}");
            assert_eq!(answer["error"]["param"], field, "{path} {body}: {answer}");
        }
    }
    let response = host.post(
        "/v1/jobs?wait=true",
        &json!({"task": "rerank", "params": {"query": "q", "documents": []}}),
    );
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().unwrap();
    assert_eq!(answer["error"]["field"], "documents", "{answer}");
}

#[test]
fn a_host_without_a_reranker_answers_404_naming_what_it_serves() {
    let host = Host::start_echo(&[]);
    let response = host.post("/v1/rerank", &json!({"query": "q", "documents": ["a"]}));
    assert_eq!(response.status(), 404);
    let answer: Value = response.json().unwrap();
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'rerank'") && message.contains("echo"),
        "{message}"
    );
}
