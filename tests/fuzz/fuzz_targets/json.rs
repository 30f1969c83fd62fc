//! Client JSON: a request body as every JSON route of the host reads it (the OpenAI routes'
//! field checks and mappings, the native job's base64 inputs), and as job parameters as the
//! plugins read them (`rbee_plugin_kit::params::parse`, into a type of the shapes they take).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbee_host::server::untrusted;
use serde::Deserialize;

/// Job parameters of the shapes plugins take: text, numbers, options, lists, nested objects.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    prompt: String,
    #[serde(default)]
    max_tokens: u32,
    temperature: Option<f32>,
    #[serde(default)]
    stop: Vec<String>,
    seed: Option<u64>,
    #[serde(default)]
    messages: Vec<Message>,
}

/// A chat message.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    role: String,
    content: String,
}

fuzz_target!(|body: &[u8]| {
    let _ = untrusted::read_json(body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = rbee_plugin_kit::params::parse::<Params>(text);
    }
});
