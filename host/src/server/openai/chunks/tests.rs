use super::*;
use crate::{
    jobs::Jobs,
    server::{openai::completion::Flavor, stream::testing::running_job},
};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use std::sync::Arc;

fn completion(flavor: Flavor, logprobs: bool) -> Completion {
    Completion {
        id: "chatcmpl-1".into(),
        model: "m".into(),
        created: 7,
        flavor,
        logprobs,
    }
}

fn token(text: &str, logprobs: Option<Value>) -> JobEvent {
    JobEvent::Token {
        index: 0,
        text: text.into(),
        logprobs,
    }
}

fn end(stop_reason: &str, completion_tokens: u64) -> JobEvent {
    JobEvent::End {
        stop_reason: stop_reason.into(),
        details: json!({"prompt_tokens": 4, "completion_tokens": completion_tokens}),
    }
}

fn entry(token: &str) -> Value {
    json!({"token": token, "logprob": -0.5, "bytes": token.as_bytes(), "top_logprobs": []})
}

/// The chunks `events` (choice index, event) give, as JSON (`[DONE]` as a string), and
/// whether the stream was over after the last one.
fn run(chunks: &mut Chunks, events: Vec<(usize, JobEvent)>) -> (Vec<Value>, bool) {
    let mut lines = Vec::new();
    let mut over = false;
    for (index, event) in events {
        assert!(!over, "an event after the end");
        let (more, ended) = chunks.on(index, event);
        lines.extend(more);
        over = ended;
    }
    let parsed = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| Value::from(line.as_str())))
        .collect();
    (parsed, over)
}

#[test]
fn a_chat_stream_of_two_choices_opens_each_and_ends_once_both_ended() {
    let mut chunks = Chunks::new(completion(Flavor::Chat, true), 2, true);
    let opening: Vec<Value> = chunks
        .opening()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(opening.len(), 2);
    for (index, chunk) in opening.iter().enumerate() {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(
            chunk["choices"],
            json!([{"index": index, "delta": {"role": "assistant", "content": ""},
                    "finish_reason": null, "logprobs": null}])
        );
    }
    let call = json!({"index": 0, "id": "call_9", "name": "now", "arguments": "{\"tz\":\"UTC\"}"});
    let (lines, over) = run(
        &mut chunks,
        vec![
            (1, token("Hi", Some(json!([entry("H"), entry("i")])))),
            (
                0,
                JobEvent::Custom {
                    name: TOOL_CALL.into(),
                    data: call,
                },
            ),
            (0, end("tool_calls", 6)),
            (1, JobEvent::Metrics(json!({"tokens_per_second": 9}))),
        ],
    );
    assert!(!over, "choice 1 is still running");
    assert_eq!(
        lines
            .iter()
            .map(|l| l["choices"][0].clone())
            .collect::<Vec<_>>(),
        [
            json!({"index": 1, "delta": {"content": "Hi"}, "finish_reason": null,
                   "logprobs": {"content": [entry("H"), entry("i")], "refusal": null}}),
            json!({"index": 0, "finish_reason": null, "logprobs": null, "delta": {"tool_calls": [
                {"index": 0, "id": "call_9", "type": "function",
                 "function": {"name": "now", "arguments": "{\"tz\":\"UTC\"}"}}]}}),
            json!({"index": 0, "delta": {}, "finish_reason": "tool_calls", "logprobs": null}),
        ]
    );
    let (lines, over) = run(&mut chunks, vec![(1, end("max_tokens", 2))]);
    assert!(over);
    assert_eq!(
        lines[0]["choices"][0],
        json!({"index": 1, "delta": {}, "finish_reason": "length", "logprobs": null})
    );
    assert_eq!(lines[1]["choices"], json!([]));
    assert_eq!(
        lines[1]["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 8, "total_tokens": 12})
    );
    assert_eq!(lines[2], "[DONE]");
}

#[test]
fn a_text_stream_carries_each_chunks_logprobs_with_offsets_that_run_on() {
    let mut chunks = Chunks::new(completion(Flavor::Text, true), 1, false);
    assert!(chunks.opening().is_empty());
    let (lines, over) = run(
        &mut chunks,
        vec![
            (0, token("Hel", Some(json!([entry("Hel")])))),
            (
                0,
                token("lo you", Some(json!([entry("lo"), entry(" you")]))),
            ),
            (0, token("!", None)),
            (0, end("eos", 4)),
        ],
    );
    assert!(over);
    let choices: Vec<Value> = lines[..4].iter().map(|l| l["choices"][0].clone()).collect();
    assert_eq!(choices[0]["text"], "Hel");
    assert_eq!(choices[0]["logprobs"]["text_offset"], json!([0]));
    assert_eq!(
        choices[1]["logprobs"],
        json!({"tokens": ["lo", " you"], "token_logprobs": [-0.5, -0.5],
               "top_logprobs": [{}, {}], "text_offset": [3, 5]})
    );
    assert_eq!(choices[2]["logprobs"]["tokens"], json!([]));
    assert_eq!(
        choices[3],
        json!({"index": 0, "text": "", "finish_reason": "stop", "logprobs": null})
    );
    assert_eq!(lines[4], "[DONE]", "no usage chunk unless asked");
}

#[test]
fn without_logprobs_asked_chunks_carry_none_and_an_error_ends_the_stream() {
    let mut chunks = Chunks::new(completion(Flavor::Chat, false), 2, true);
    let error = JobEvent::Error {
        code: "plugin_panic".into(),
        message: "boom".into(),
    };
    let (lines, over) = run(&mut chunks, vec![(0, token("a", None)), (1, error)]);
    assert!(over);
    assert_eq!(lines[0]["choices"][0]["logprobs"], Value::Null);
    assert_eq!(lines[1]["error"]["code"], "plugin_panic");
    assert_eq!(lines[2], "[DONE]");
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_every_choice() {
    let jobs = Arc::new(Jobs::new(4));
    let (first, first_events) = running_job(&jobs);
    let (second, second_events) = running_job(&jobs);
    first.events.send(token("hello", None), || false);
    let sse = sse(
        completion(Flavor::Chat, false),
        vec![first_events, second_events],
        false,
    );
    let mut body = sse.into_response().into_body();
    let mut seen = String::new();
    while !seen.contains("hello") {
        let frame = body.frame().await.expect("a frame").expect("no error");
        seen.push_str(&String::from_utf8_lossy(
            &frame.into_data().unwrap_or_default(),
        ));
    }
    assert!(!first.stop.is_set() && !second.stop.is_set());
    drop(body);
    assert!(first.stop.is_set(), "the choice that streamed is cancelled");
    assert!(second.stop.is_set(), "so is the one that had not begun");
}

#[test]
fn the_usage_chunk_reads_the_choices_in_order_whichever_ended_first() {
    let mut chunks = Chunks::new(completion(Flavor::Text, false), 2, true);
    let cached = |cached: u64| JobEvent::End {
        stop_reason: "eos".into(),
        details: json!({"prompt_tokens": 4, "completion_tokens": 1, "cached_prompt_tokens": cached}),
    };
    let (lines, over) = run(&mut chunks, vec![(1, cached(0)), (0, cached(3))]);
    assert!(over);
    assert_eq!(
        lines[2]["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6,
               "prompt_tokens_details": {"cached_tokens": 3}})
    );
}
