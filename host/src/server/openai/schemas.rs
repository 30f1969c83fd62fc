//! The request bodies of the OpenAI routes for the OpenAPI document, generated from the field
//! tables the routes check requests against ([`super::fields`]): every field a route lists, and
//! no other. Refused fields accept only what asks for nothing; fields that become job
//! parameters take their schema from the plugins serving the route's task.

use super::{
    fields::{self, Field, Handling, Route},
    request::{MAX_CHOICES, MAX_TOP_LOGPROBS, PASSED_ON, SAMPLING},
};
use crate::{fleet::Fleet, server::openapi::params};
use rbee_plugin_api::tasks::{
    image::{self, param::STRENGTH},
    text_generation,
};
use serde_json::{Map, Value, json};

/// Every OpenAI request body, by component name.
pub fn requests(fleet: &Fleet) -> Vec<(&'static str, Value)> {
    let routes: [(&str, &Route, &[&str]); 9] = [
        ("ChatCompletionRequest", &fields::CHAT, &["messages"]),
        ("CompletionRequest", &fields::COMPLETIONS, &["prompt"]),
        ("EmbeddingsRequest", &fields::EMBEDDINGS, &["input"]),
        ("RerankRequest", &fields::RERANK, &["query", "documents"]),
        (
            "ImageGenerationRequest",
            &fields::IMAGE_GENERATIONS,
            &["prompt"],
        ),
        ("ImageEditRequest", &fields::IMAGE_EDITS, &["prompt"]),
        ("TranscriptionRequest", &fields::TRANSCRIPTIONS, &["file"]),
        ("TranslationRequest", &fields::TRANSLATIONS, &["file"]),
        ("SpeechRequest", &fields::SPEECH, &["input"]),
    ];
    routes
        .into_iter()
        .map(|(name, route, required)| (name, body(fleet, route, required)))
        .collect()
}

/// The object a route takes: its fields, `required`, and nothing else.
fn body(fleet: &Fleet, route: &Route, required: &[&str]) -> Value {
    let properties: Map<String, Value> = route
        .fields
        .iter()
        .map(|field| (field.name.to_string(), field_schema(fleet, route, field)))
        .collect();
    let mut body = json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": properties,
    });
    if route.path == fields::IMAGE_EDITS.path {
        // Not a `oneOf` of the two: schemathesis 4.32 cannot mutate one holding files.
        body["description"] = "One image, as `image` or `image[]`".into();
    }
    body
}

/// What `field` of `route` accepts.
fn field_schema(fleet: &Fleet, route: &Route, field: &Field) -> Value {
    match field.handling {
        Handling::Implemented => implemented(fleet, route, field.name),
        Handling::Harmless => json!({"description": "Accepted; it changes nothing here"}),
        Handling::Refused { neutral, instead } => {
            let mut allowed = vec![Value::Null];
            allowed.extend(neutral.and_then(|n| serde_json::from_str::<Value>(n).ok()));
            json!({"enum": allowed, "description": format!("Not supported: {instead}")})
        }
    }
}

/// The schema of an implemented field: a job parameter's as its plugins declare it, or the
/// shape the route reads.
fn implemented(fleet: &Fleet, route: &Route, name: &str) -> Value {
    let text = text_generation::TASK;
    if let Some((_, to)) = SAMPLING.iter().find(|(from, _)| *from == name) {
        return params::of_task(fleet, text, to);
    }
    let text_route = [fields::CHAT.path, fields::COMPLETIONS.path].contains(&route.path);
    if text_route && PASSED_ON.contains(&name) {
        return json!({"anyOf": [{"type": "null"}, params::of_task(fleet, text, name)]});
    }
    let file =
        |media: &str| json!({"type": "string", "format": "binary", "contentMediaType": media});
    let string = json!({"type": "string"});
    match (route.path, name) {
        (_, "model") => json!({"type": ["string", "null"]}),
        (_, "stream") => json!({"type": ["boolean", "null"]}),
        (_, "stream_options") => json!({
            "type": ["object", "null"],
            "properties": {"include_usage": {"type": ["boolean", "null"]}},
        }),
        (_, "stop") => {
            json!({"anyOf": [string, {"type": "null"}, params::of_task(fleet, text, "stop")]})
        }
        (_, "messages") => json!({
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role"],
                "properties": {
                    "role": {"allOf": [
                        {"type": "string"},
                        params::of_task(fleet, text, "messages/items/properties/role"),
                    ]},
                    "content": {"anyOf": [
                        {"type": ["string", "null"]},
                        {"type": "array", "items": {
                            "type": "object",
                            "required": ["type", "text"],
                            "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                        }},
                    ]},
                    "tool_calls": {
                        "description": "An assistant's calls (its content may then be null)",
                        "type": ["array", "null"],
                        "items": tool_call(),
                    },
                    "tool_call_id": {"description": "The call a `tool` message answers", "type": ["string", "null"]},
                    "name": {"type": ["string", "null"]},
                },
            },
        }),
        ("/v1/chat/completions" | "/v1/completions", "n") => {
            json!({"type": ["integer", "null"], "minimum": 1, "maximum": MAX_CHOICES})
        }
        ("/v1/chat/completions", "logprobs") => json!({"type": ["boolean", "null"]}),
        ("/v1/completions", "logprobs") | (_, "top_logprobs") => json!({
            "description": "How many alternatives each token lists",
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": MAX_TOP_LOGPROBS,
        }),
        ("/v1/completions", "prompt") => json!({"anyOf": [
            string,
            {"type": "array", "items": string, "minItems": 1, "maxItems": 1},
        ]}),
        ("/v1/audio/speech", _) => speech_field(name),
        (_, "input") => json!({"anyOf": [string, {"type": "array", "items": string}]}),
        (_, "encoding_format") => json!({"enum": ["float", "base64", null]}),
        ("/v1/rerank", _) => rerank_field(name),
        ("/v1/images/generations" | "/v1/images/edits", _) => image_field(fleet, name),
        (_, "file") => file("application/octet-stream"),
        (_, "response_format") => json!({"enum": ["json", "text", "verbose_json", "srt", "vtt"]}),
        (_, "temperature") => json!({"type": "number"}),
        _ => string,
    }
}

/// An implemented field of the speech route.
fn speech_field(name: &str) -> Value {
    match name {
        "input" => json!({"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "\\S"}),
        "speed" => json!({"type": ["number", "null"], "minimum": 0.25, "maximum": 4.0}),
        "response_format" => json!({
            "description": "wav (the default), pcm (16-bit little-endian mono) or flac; 24 kHz",
            "enum": ["wav", "pcm", "flac", null],
        }),
        "stream_format" => json!({"enum": ["audio", "sse", null]}),
        _ => json!({"type": ["string", "null"]}),
    }
}

/// An implemented field of the rerank route.
fn rerank_field(name: &str) -> Value {
    match name {
        "query" => json!({"type": "string", "minLength": 1}),
        "documents" => json!({
            "type": "array",
            "minItems": 1,
            "items": {"anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "required": ["text"],
                    "additionalProperties": false,
                    "properties": {"text": {"type": "string"}},
                },
            ]},
        }),
        "top_n" => json!({"type": ["integer", "null"], "minimum": 1}),
        _ => json!({"type": ["boolean", "null"]}),
    }
}

/// An implemented field of the image routes.
fn image_field(fleet: &Fleet, name: &str) -> Value {
    match name {
        "image" | "image[]" | "mask" => {
            json!({"type": "string", "format": "binary", "contentMediaType": "image/png"})
        }
        "size" => json!({"type": ["string", "null"], "pattern": "^[0-9]+x[0-9]+$"}),
        "response_format" => json!({"enum": ["b64_json", null]}),
        STRENGTH => params::of_task(fleet, image::TO_IMAGE, STRENGTH),
        _ => params::of_task(fleet, image::GENERATION, name),
    }
}

/// One tool call as OpenAI shapes it, in chat history and in answers: `arguments` is JSON text.
pub fn tool_call() -> Value {
    json!({
        "type": "object",
        "required": ["id", "type", "function"],
        "properties": {
            "id": {"type": "string"},
            "type": {"const": "function"},
            "function": {
                "type": "object",
                "required": ["name", "arguments"],
                "properties": {
                    "name": {"type": "string"},
                    "arguments": {"type": "string", "contentMediaType": "application/json"},
                },
            },
        },
    })
}
