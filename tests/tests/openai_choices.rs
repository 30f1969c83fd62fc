//! `n` choices on the OpenAI text routes, with the real LLM plugin: one job per choice, each
//! sampling with the client's seed moved on by its index, so that the choices differ and the
//! same request gives the same choices again, whole or streamed.

use rbee_tests::{Host, SseStream};
use serde_json::{Value, json};

/// A sampled request for `n` choices (of at most 10 tokens) with `seed`, on `path`.
fn request(path: &str, n: u64, seed: u64) -> Value {
    let mut body = json!({"n": n, "seed": seed, "temperature": 1.0, "max_tokens": 10});
    if path == "/v1/chat/completions" {
        body["messages"] = json!([{"role": "user", "content": "Tell me a story about a dragon."}]);
    } else {
        body["prompt"] = json!("Once upon a time, a dragon");
    }
    body
}

/// The text of a choice of a whole answer or of a chunk.
fn choice_text(choice: &Value) -> &str {
    choice["message"]["content"]
        .as_str()
        .or_else(|| choice["delta"]["content"].as_str())
        .or_else(|| choice["text"].as_str())
        .unwrap_or_default()
}

/// The whole answer's choices' texts, in order, and its usage.
fn whole(host: &Host, path: &str, body: &Value) -> (Vec<String>, Value) {
    let response = host.post(path, body);
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().unwrap();
    let choices = answer["choices"].as_array().unwrap();
    for (index, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], index, "{answer}");
    }
    let texts = choices.iter().map(|c| choice_text(c).to_string()).collect();
    (texts, answer["usage"].clone())
}

/// The streamed answer's choices' texts, by index, and its usage chunk's usage.
fn streamed(host: &Host, path: &str, body: &Value, n: usize) -> (Vec<String>, Value) {
    let mut body = body.clone();
    body["stream"] = true.into();
    body["stream_options"] = json!({"include_usage": true});
    let response = host.post(path, &body);
    assert_eq!(response.status(), 200);
    let data: Vec<Value> = SseStream::new(response).map(|event| event.data).collect();
    assert_eq!(data.last(), Some(&json!("[DONE]")), "{data:?}");
    assert_eq!(data.iter().filter(|d| **d == "[DONE]").count(), 1);
    let mut texts = vec![String::new(); n];
    let mut finished = vec![0; n];
    for choice in data.iter().filter_map(|d| d["choices"].get(0)) {
        let index = choice["index"].as_u64().unwrap() as usize;
        texts[index].push_str(choice_text(choice));
        finished[index] += usize::from(!choice["finish_reason"].is_null());
    }
    assert_eq!(finished, vec![1; n], "one finish per choice: {data:?}");
    let usage = data[data.len() - 2]["usage"].clone();
    (texts, usage)
}

#[test]
fn n_seeded_choices_differ_repeat_and_stream_alike_and_n_is_one_to_eight() {
    let host = Host::start_llm(&[]);
    for path in ["/v1/chat/completions", "/v1/completions"] {
        let body = request(path, 3, 1234);
        let (texts, usage) = whole(&host, path, &body);
        assert_eq!(texts.len(), 3);
        assert!(
            texts[0] != texts[1] && texts[1] != texts[2] && texts[0] != texts[2],
            "{path}: three seeds, three answers: {texts:?}"
        );
        let completion_tokens = usage["completion_tokens"].as_u64().unwrap();
        assert!((3..=30).contains(&completion_tokens), "{usage}");
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + completion_tokens,
            "the prompt counted once: {usage}"
        );
        assert_eq!(whole(&host, path, &body).0, texts, "{path}: the same seed");
        let (streamed_texts, streamed_usage) = streamed(&host, path, &body, 3);
        assert_eq!(streamed_texts, texts, "{path}: streamed as whole");
        for count in ["prompt_tokens", "completion_tokens", "total_tokens"] {
            assert_eq!(streamed_usage[count], usage[count], "{path}: {count}");
        }
        let first = whole(&host, path, &request(path, 1, 1234)).0;
        assert_eq!(first[0], texts[0], "{path}: choice 0 has the client's seed");
        let second = whole(&host, path, &request(path, 1, 1235)).0;
        assert_eq!(
            second[0], texts[1],
            "{path}: choice 1 has the seed plus one"
        );
        for n in [0, 9] {
            let response = host.post(path, &request(path, n, 1));
            assert_eq!(response.status(), 400, "{path} n={n}");
            let error: Value = response.json().unwrap();
            assert_eq!(error["error"]["param"], "n", "{error}");
        }
    }
}
