//! `plain_message`, and both routes end to end through the router on a fake text-generation
//! worker ([`Words`]) loaded in the host's process.

use super::*;
use crate::{
    config::HttpSettings,
    fleet::Fleet,
    server::app,
    services::metrics::MetricsRegistry,
    worker::{WorkerState, testing::in_process_model},
};
use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr},
};
use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use rbee_plugin_api::{
    ExtensionRef, HostApiRef, Job, JobEnd, JobSink, LoadRequest, Manifest, PluginError, Worker,
    WorkerBox, WorkerStatus,
    tasks::text_generation::{TASK, TOKEN_LOGPROBS, TOOL_CALL},
};
use std::time::Duration;
use tower::ServiceExt;

#[test]
fn messages_keep_their_tool_calls_tool_call_ids_and_names() {
    let call = json!([{"id": "call_1", "type": "function",
                       "function": {"name": "now", "arguments": "{}"}}]);
    let assistant = json!({"role": "assistant", "content": null, "tool_calls": call});
    assert_eq!(plain_message(0, &assistant).unwrap(), assistant);
    let absent = json!({"role": "assistant", "tool_calls": call});
    assert_eq!(plain_message(0, &absent).unwrap(), assistant);
    let result = json!({"role": "tool", "tool_call_id": "call_1", "content": "12:00"});
    assert_eq!(plain_message(1, &result).unwrap(), result);
    let named = json!({"role": "user", "name": "ann", "content": [{"type": "text", "text": "a"},
                                                                  {"type": "text", "text": "b"}]});
    assert_eq!(
        plain_message(2, &named).unwrap(),
        json!({"role": "user", "name": "ann", "content": "ab"})
    );
}

#[test]
fn only_a_message_calling_tools_keeps_a_null_content() {
    let plain = json!({"role": "assistant", "content": null, "tool_calls": [], "name": null});
    assert_eq!(
        plain_message(0, &plain).unwrap(),
        json!({"role": "assistant", "content": ""})
    );
    let image = json!({"role": "user", "content": [{"type": "image_url", "image_url": {}}]});
    assert!(plain_message(0, &image).is_err());
}

/// A text-generation worker that answers with the words of its prompt (or of the last
/// message), then `#<seed>` when it has one; a word's log probability entry comes just before
/// it when asked for (`top_logprobs` alternatives, each a less likely spelling). Given tools,
/// it only calls the first. The word `slow` takes 200 ms. It refuses seed 13, naming it.
struct Words;

impl Words {
    fn params(job: &Job) -> Value {
        serde_json::from_str(job.params_json.as_str()).unwrap_or_default()
    }

    fn entry(word: &str, index: usize, top: u64) -> Value {
        let logprob = -(index as f64) - 0.5;
        let alternatives: Vec<Value> = (0..top)
            .map(|k| json!({"token": format!("{word}{k}"), "logprob": logprob - k as f64, "bytes": []}))
            .collect();
        json!({"content": [{"token": word, "logprob": logprob, "bytes": word.as_bytes(),
                            "top_logprobs": alternatives}]})
    }
}

impl Worker for Words {
    fn max_concurrent_jobs(&self) -> u32 {
        4
    }

    fn validate(&self, job: &Job) -> RResult<(), PluginError> {
        match Self::params(job)["seed"].as_u64() {
            Some(13) => RResult::RErr(PluginError::invalid_param("seed", "13 is unlucky")),
            _ => RResult::ROk(()),
        }
    }

    fn execute(&self, job: Job, sink: JobSink) -> RResult<JobEnd, PluginError> {
        let params = Self::params(&job);
        let prompt = match params["prompt"].as_str() {
            Some(prompt) => prompt.to_string(),
            None => params["messages"]
                .as_array()
                .and_then(|m| m.last())
                .map_or(String::new(), |last| {
                    last["content"].as_str().unwrap_or_default().to_string()
                }),
        };
        let details =
            |words: usize| json!({"prompt_tokens": 3, "completion_tokens": words}).to_string();
        if let Some(tool) = params["tools"][0]["function"]["name"].as_str() {
            let call = json!({"index": 0, "id": "call_0", "name": tool, "arguments": "{\"at\":1}"});
            sink.custom(TOOL_CALL.into(), call.to_string().as_str().into());
            return RResult::ROk(JobEnd::new("tool_calls").with_details(details(1)));
        }
        let mut words: Vec<String> = prompt.split_inclusive(' ').map(str::to_string).collect();
        words.extend(params["seed"].as_u64().map(|seed| format!(" #{seed}")));
        let top = params["top_logprobs"].as_u64().unwrap_or(0);
        for (index, word) in words.iter().enumerate() {
            if params["logprobs"] == true {
                let entry = Self::entry(word, index, top).to_string();
                sink.custom(TOKEN_LOGPROBS.into(), entry.as_str().into());
            }
            if word.trim() == "slow" {
                std::thread::sleep(Duration::from_millis(200));
            }
            if sink.text(index as u64, word.as_str().into()).is_stop() {
                return RResult::ROk(JobEnd::cancelled());
            }
        }
        RResult::ROk(JobEnd::new("eos").with_details(details(words.len())))
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus::default()
    }

    fn extension(&self, _name: RStr<'_>) -> ROption<ExtensionRef> {
        ROption::RNone
    }
}

extern "C" fn load_words(_: LoadRequest, _: HostApiRef) -> RResult<WorkerBox, PluginError> {
    RResult::ROk(WorkerBox::from_value(Words, TD_Opaque))
}

/// A host of one [`Words`] model, loaded on the first request, and its router.
fn words_host() -> (Arc<WorkerState>, Router) {
    let registry = MetricsRegistry::new(false);
    let manifest = Manifest::new("words", "cpu", "0.1.0", &[TASK]);
    let model = Arc::new(in_process_model(
        "words", false, &manifest, load_words, &registry,
    ));
    let fleet = Fleet::new(vec![model.clone()], None, ".".into(), registry);
    let http = HttpSettings {
        api_key: None,
        cors_origins: Vec::new(),
        max_body_bytes: 1 << 20,
        unread_timeout: None,
        header_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(60),
    };
    (model, app(Arc::new(AppState::new(Arc::new(fleet), http))))
}

/// POSTs `body` to `path`: the status and the body's text.
async fn post(router: &Router, path: &str, body: Value) -> (StatusCode, String) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The `data:` lines of a stream, as JSON (`[DONE]` as a string).
fn data_lines(stream: &str) -> Vec<Value> {
    stream
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap_or_else(|_| Value::from(data)))
        .collect()
}

#[tokio::test]
async fn n_choices_are_answered_together_each_with_the_seed_moved_on() {
    let (_, router) = words_host();
    let body = json!({"prompt": "one two", "n": 3, "seed": 20, "logprobs": 1});
    let (status, answer) = post(&router, "/v1/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let choices = answer["choices"].as_array().unwrap();
    let texts: Vec<&str> = choices
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one two #20", "one two #21", "one two #22"]);
    for (index, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], index);
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(
            choice["logprobs"]["tokens"],
            json!(["one ", "two", format!(" #{}", 20 + index)])
        );
        assert_eq!(choice["logprobs"]["text_offset"], json!([0, 4, 7]));
        assert_eq!(choice["logprobs"]["top_logprobs"][1], json!({"two0": -1.5}));
    }
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12})
    );
}

#[tokio::test]
async fn a_stream_of_n_chat_choices_merges_them_and_ends_once() {
    let (_, router) = words_host();
    let body = json!({"messages": [{"role": "user", "content": "hi there"}], "n": 2, "seed": 5,
                      "stream": true, "stream_options": {"include_usage": true},
                      "logprobs": true, "top_logprobs": 2});
    let (status, stream) = post(&router, "/v1/chat/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{stream}");
    let lines = data_lines(&stream);
    assert_eq!(lines.last().unwrap(), "[DONE]");
    assert_eq!(lines.iter().filter(|l| *l == "[DONE]").count(), 1);
    let usage = &lines[lines.len() - 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 6);
    let choices: Vec<&Value> = lines.iter().filter_map(|l| l["choices"].get(0)).collect();
    for index in 0..2 {
        let mine: Vec<&&Value> = choices.iter().filter(|c| c["index"] == index).collect();
        assert_eq!(
            mine[0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        let text: String = mine[1..]
            .iter()
            .filter_map(|c| c["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, format!("hi there #{}", 5 + index));
        let entries = &mine[1]["logprobs"]["content"];
        assert_eq!(entries[0]["token"], "hi ");
        assert_eq!(entries[0]["top_logprobs"].as_array().map(Vec::len), Some(2));
        assert_eq!(mine.last().unwrap()["finish_reason"], "stop");
    }
}

#[tokio::test]
async fn a_chat_that_calls_a_tool_answers_with_the_call_whole_or_streamed() {
    let (_, router) = words_host();
    let body = json!({"messages": [{"role": "user", "content": "what time is it"}],
                      "tools": [{"type": "function", "function": {"name": "now"}}]});
    let (status, answer) = post(&router, "/v1/chat/completions", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let call = json!({"id": "call_0", "type": "function", "function": {"name": "now", "arguments": "{\"at\":1}"}});
    assert_eq!(
        answer["choices"][0],
        json!({"index": 0, "finish_reason": "tool_calls", "logprobs": null,
               "message": {"role": "assistant", "content": null, "tool_calls": [call]}})
    );
    let mut streamed = body;
    streamed["stream"] = true.into();
    let (_, stream) = post(&router, "/v1/chat/completions", streamed).await;
    let lines = data_lines(&stream);
    let mut call = call;
    call["index"] = 0.into();
    assert_eq!(
        lines[1]["choices"][0]["delta"],
        json!({"tool_calls": [call]})
    );
    assert_eq!(lines[2]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(lines[3], "[DONE]");
}

#[tokio::test]
async fn refusals_come_before_any_choice_runs() {
    let (model, router) = words_host();
    let chat = |extra: Value| {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    for (extra, field) in [
        (json!({"n": 0}), "n"),
        (json!({"n": 9}), "n"),
        (json!({"top_logprobs": 2}), "top_logprobs"),
        (
            json!({"logprobs": true, "top_logprobs": 21}),
            "top_logprobs",
        ),
        (json!({"functions": [{"name": "now"}]}), "functions"),
    ] {
        let (status, answer) = post(&router, "/v1/chat/completions", chat(extra.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["error"]["param"], field, "{extra}: {answer}");
    }
    let (status, answer) = post(
        &router,
        "/v1/completions",
        json!({"prompt": "a", "logprobs": 21}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(model.jobs.counts(), (0, 0), "nothing was queued");
}

#[tokio::test]
async fn a_choice_refused_by_the_plugin_cancels_the_choices_queued_before_it() {
    let (model, router) = words_host();
    let slow = "slow ".repeat(20);
    let body = json!({"prompt": slow, "n": 3, "seed": 11, "stream": true});
    let (status, answer) = post(&router, "/v1/completions", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["error"]["param"], "seed",
        "choice 2's seed is 13: {answer}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while model.jobs.counts() != (0, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "choices 0 and 1 (4 s each) still run: {:?}",
            model.jobs.counts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
