//! README.md's table of the OpenAI routes' fields, walked over HTTP: every refused field gets 400
//! naming it on every JSON route, and so does a field no route knows; on the text routes, with
//! the real LLM plugin, every harmless field and every refused field at its neutral value gets
//! 200. (The multipart routes answer 404 before reading an upload when the plugin does not
//! serve them, so their fields, and the harmless fields of the embedding and image routes, are
//! walked in `third_party_plugin.rs`, `sd.rs` and `audio.rs`, beside their plugins.)

use rbee_tests::{
    Host,
    openai_fields::{assert_refuses_all, field_table, harmless_value, route_fields, send_field},
};
use serde_json::{Value, json};

#[test]
fn every_refused_or_unknown_field_gets_400_naming_it_on_every_json_route() {
    let host = Host::start_echo(&[]);
    let table = field_table();
    assert_eq!(table.len(), 7);
    for route in table.iter().filter(|route| !route.is_multipart()) {
        assert!(!route.refused.is_empty());
        assert_refuses_all(&host, route);
    }
}

/// Refused fields at the values that ask for nothing beyond what is implemented.
fn neutral_values(path: &str) -> Value {
    let chat = path == "/v1/chat/completions";
    let mut values = json!({"n": 1, "frequency_penalty": 0, "presence_penalty": 0,
                            "logit_bias": {}});
    let extra = if chat {
        json!({"logprobs": false, "top_logprobs": 0, "response_format": {"type": "text"},
               "tools": [], "tool_choice": "none", "functions": [], "function_call": "none",
               "modalities": ["text"], "audio": null, "prediction": null})
    } else {
        json!({"best_of": 1, "echo": false, "logprobs": 0, "suffix": ""})
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
