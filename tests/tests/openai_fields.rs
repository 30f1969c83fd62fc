//! README.md's table of the OpenAI routes' fields, walked over HTTP: every refused field gets 400
//! naming it on every JSON route, and so does a field no route knows; on the text routes, with
//! the real LLM plugin, every harmless field, every refused field at its neutral value and the
//! implemented fields that ask for nothing at their defaults get 200. (The multipart routes answer 404 before reading an upload when the plugin does not
//! serve them, so their fields, and the harmless fields of the embedding and image routes, are
//! walked in `third_party_plugin.rs`, `sd.rs` and `audio.rs`, beside their plugins.)

use rbee_tests::{
    Host, LLM_TEST_MODEL,
    openai_fields::{assert_refuses_all, field_table, harmless_value, route_fields, send_field},
};
use serde_json::{Value, json};

#[test]
fn every_refused_or_unknown_field_gets_400_naming_it_on_every_json_route() {
    let host = Host::start_echo(&[]);
    let table = field_table();
    assert_eq!(table.len(), 9);
    for route in table.iter().filter(|route| !route.is_multipart()) {
        // Every field OpenAI defines for speech is implemented: only unknown ones are refused.
        assert!(!route.refused.is_empty() || route.path == "/v1/audio/speech");
        assert_refuses_all(&host, route);
    }
}

/// Refused fields at the values that ask for nothing beyond what is implemented, and
/// implemented fields at the values that ask for nothing (the host does not pass those on).
fn neutral_values(path: &str) -> Value {
    let chat = path == "/v1/chat/completions";
    let mut values = json!({"n": 1, "frequency_penalty": 0, "presence_penalty": 0,
                            "logit_bias": {}, "response_format": {"type": "text"},
                            "grammar": null, "logprobs": null});
    let extra = if chat {
        json!({"logprobs": false, "tools": [], "tool_choice": "none", "functions": [],
               "function_call": "none", "modalities": ["text"], "audio": null,
               "prediction": null})
    } else {
        json!({"best_of": 1, "echo": false, "suffix": ""})
    };
    values
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    values
}

#[test]
fn harmless_fields_and_neutral_values_are_accepted_on_the_text_routes() {
    let host = Host::start_llm(&[]);
    for (path, base) in [
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}),
        ),
        (
            "/v1/completions",
            json!({"prompt": "Hello", "max_tokens": 2}),
        ),
    ] {
        let route = route_fields(path);
        for field in &route.harmless {
            let response = send_field(&host, &route, &base, &[], field, &harmless_value(field));
            let status = response.status();
            assert_eq!(status, 200, "{path} {field}: {}", response.text().unwrap());
        }
        let mut neutral = base.clone();
        neutral
            .as_object_mut()
            .unwrap()
            .extend(neutral_values(path).as_object().unwrap().clone());
        let response = host.post(path, &neutral);
        let status = response.status();
        assert_eq!(status, 200, "{path}: {}", response.text().unwrap());
    }
}

/// One chat completion's text, finish reason and completion tokens.
fn chat(host: &Host, extra: Value) -> (String, String, u64) {
    let mut body = json!({"messages": [{"role": "system", "content": "You are a helpful assistant."},
                                       {"role": "user", "content": "Tell me a story about a dragon."}],
                          "max_tokens": 12, "temperature": 0});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let response = host.post("/v1/chat/completions", &body);
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().unwrap();
    (
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string(),
        answer["choices"][0]["finish_reason"]
            .as_str()
            .unwrap()
            .to_string(),
        answer["usage"]["completion_tokens"].as_u64().unwrap(),
    )
}

/// Every field README.md lists as implemented on the chat route has its effect, checked on the
/// real model; a field added to the table without a check here fails the test.
#[test]
fn implemented_chat_fields_have_their_effect() {
    let host = Host::start_llm(&[]);
    let (greedy, _, _) = chat(&host, json!({}));
    let sampled = |extra: Value| chat(&host, extra).0;
    let mut checked = Vec::new();
    let mut check = |field: &'static str, holds: bool, what: &str| {
        assert!(holds, "{field}: {what}");
        checked.push(field);
    };
    check("messages", !greedy.is_empty(), "an answer");
    let named: Value = host
        .post(
            "/v1/chat/completions",
            &json!({"model": "any-name", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}),
        )
        .json()
        .unwrap();
    check(
        "model",
        named["model"] == LLM_TEST_MODEL.trim_end_matches(".gguf"),
        "a host of one model serves any name, as that model",
    );
    check(
        "temperature",
        sampled(json!({"temperature": 1.5, "seed": 3})) != greedy,
        "1.5 differs from greedy",
    );
    check(
        "top_k",
        sampled(json!({"temperature": 1.5, "top_k": 1, "seed": 1})) == greedy,
        "1 is greedy at any temperature",
    );
    check(
        "top_p",
        sampled(json!({"temperature": 1.5, "top_k": 0, "top_p": 0.000001, "seed": 2})) == greedy,
        "a tiny nucleus is greedy",
    );
    check(
        "min_p",
        sampled(json!({"temperature": 1.5, "top_k": 0, "top_p": 1.0, "min_p": 1.0, "seed": 4}))
            == greedy,
        "1.0 keeps only the likeliest token",
    );
    let seeded = json!({"temperature": 1.2, "seed": 77});
    check(
        "seed",
        sampled(seeded.clone()) == sampled(seeded),
        "the same seed repeats",
    );
    let penalised = sampled(json!({"repeat_penalty": 2.0, "max_tokens": 40}));
    check(
        "repeat_penalty",
        penalised != sampled(json!({"max_tokens": 40})),
        "2.0 changes a greedy story",
    );
    check(
        "repeat_last_n",
        sampled(json!({"repeat_penalty": 2.0, "repeat_last_n": 0, "max_tokens": 40}))
            == sampled(json!({"max_tokens": 40})),
        "a window of 0 turns the penalty off",
    );
    check(
        "max_tokens",
        chat(&host, json!({"max_tokens": 3})).2 == 3,
        "3 tokens",
    );
    check(
        "max_completion_tokens",
        chat(
            &host,
            json!({"max_tokens": null, "max_completion_tokens": 4}),
        )
        .2 == 4,
        "4 tokens",
    );
    let word = greedy.split_whitespace().nth(2).unwrap().to_string();
    let (stopped, reason, _) = chat(&host, json!({"stop": [word.clone()]}));
    check(
        "stop",
        reason == "stop" && !stopped.contains(&word),
        "ends before the stop text",
    );
    let streamed = host
        .post(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
                    "stream": true, "stream_options": {"include_usage": true}}),
        )
        .text()
        .unwrap();
    check(
        "stream",
        streamed.contains("data: [DONE]"),
        "server-sent chunks",
    );
    check(
        "stream_options",
        streamed.contains("\"completion_tokens\":3"),
        "include_usage adds the usage chunk",
    );
    let choices: Value = host
        .post(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "Tell me a story."}], "n": 2,
                    "max_tokens": 8, "temperature": 1.2, "seed": 9}),
        )
        .json()
        .unwrap();
    check(
        "n",
        choices["choices"][0]["message"] != choices["choices"][1]["message"],
        "two choices, sampled with seeds 9 and 10",
    );
    let route = route_fields("/v1/chat/completions");
    for field in &route.implemented {
        assert!(
            checked.contains(&field.as_str()) || CHECKED_WITH_THE_PLUGIN.contains(&field.as_str()),
            "{field} is in README's table but not checked here"
        );
    }
}

/// Implemented fields whose effect is the plugin's constraints, tools and log probabilities:
/// checked beside them, in the llm plugin's black-box tests (`tests/tests/llm*.rs`).
const CHECKED_WITH_THE_PLUGIN: [&str; 7] = [
    "grammar",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
];
