//! The schemas of the answers the handlers build as JSON (`json!`) rather than from a type:
//! the native routes' and the OpenAI routes'. Each mirrors the code that builds it (named on
//! each); the schemathesis test checks every answer against them.

use serde_json::{Value, json};

/// A reference to the component schema `name`.
pub fn component(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Every answer schema, by component name.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let mut schemas = native();
    schemas.extend(openai());
    schemas
}

/// A model's queue, as `jobs.counts()` gives it.
fn queue() -> Value {
    json!({
        "type": "object",
        "required": ["waiting", "running"],
        "properties": {
            "waiting": {"type": "integer", "minimum": 0},
            "running": {"type": "integer", "minimum": 0},
        },
    })
}

/// `worker::readiness::State` as it serializes: `status` and, while loading or failed, more.
fn life_state() -> Value {
    json!({
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["unloaded", "loading", "ready", "unloading", "failed", "draining"]},
            "progress": {"type": "number"},
            "message": {"type": "string"},
        },
    })
}

/// The answers of the native routes.
fn native() -> Vec<(&'static str, Value)> {
    let mut readiness = life_state();
    readiness["properties"]["models"] = json!({
        "type": "object",
        "description": "Each model's state, by id",
        "additionalProperties": {"type": "string"},
    });
    readiness["required"] = json!(["status", "models"]);
    let summary_properties = json!({
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": {"type": "integer", "minimum": 0},
        "owned_by": {"type": "string"},
        "plugin": {"type": "string"},
        "tasks": {"type": "array", "items": {"type": "string"}},
        "state": {"enum": ["unloaded", "loading", "loaded", "unloading", "failed", "draining"]},
        "pinned": {"type": "boolean"},
        "aliases": {"type": "array", "items": {"type": "string"}},
    });
    let summary_required = [
        "id", "object", "created", "owned_by", "plugin", "tasks", "state", "pinned", "aliases",
    ];
    let mut details = json!({
        "type": "object",
        "description": "`WorkerState::details`: the model's summary, device, queue, slots, keep-alive, memory, last load error and plugin-process crashes",
        "required": summary_required.iter().chain(&["model", "device", "queue", "slots", "keep_alive_seconds", "memory_bytes", "last_error", "crashes"]).collect::<Vec<_>>(),
        "properties": summary_properties.clone(),
    });
    let extra = json!({
        "model": {"type": "string"},
        "device": {"type": "string"},
        "queue": queue(),
        "slots": {"type": "integer", "minimum": 0},
        "keep_alive_seconds": {"type": ["number", "null"]},
        "memory_bytes": {"type": "integer", "minimum": 0},
        "last_error": {"type": ["string", "null"]},
        "crashes": {"type": "integer", "minimum": 0, "description": "How often the model's plugin process crashed"},
        "params_schema": {"description": "In `/v1/info`: the plugin's job parameters (JSON Schema)"},
    });
    if let (Some(all), Some(extra)) = (details["properties"].as_object_mut(), extra.as_object()) {
        all.extend(extra.clone());
    }
    vec![
        (
            "Health",
            json!({"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}),
        ),
        ("Readiness", readiness),
        (
            "ModelSummary",
            json!({
                "type": "object",
                "description": "`WorkerState::summary`: an entry of `GET /v1/models`",
                "required": summary_required,
                "properties": summary_properties,
            }),
        ),
        ("ModelDetails", details),
        (
            "ModelList",
            json!({
                "type": "object",
                "required": ["object", "data"],
                "properties": {
                    "object": {"const": "list"},
                    "data": {"type": "array", "items": component("ModelSummary")},
                },
            }),
        ),
        (
            "Info",
            json!({
                "type": "object",
                "description": "`status::info`: the first model's plugin manifest, model, device, state, worker, queue and slots; every model under `models`",
                "required": ["models"],
                "properties": {
                    "id": {"type": "string"},
                    "plugin": {"type": "object", "required": ["id", "tasks", "params_schema"]},
                    "model": {"type": "string"},
                    "device": {"type": "string"},
                    "state": life_state(),
                    "worker": {"type": ["object", "null"]},
                    "queue": queue(),
                    "slots": {"type": "integer", "minimum": 0},
                    "models": {"type": "array", "items": component("ModelDetails")},
                },
            }),
        ),
        (
            "JobView",
            json!({
                "type": "object",
                "description": "`jobs::JobView`: a job's state",
                "additionalProperties": false,
                "required": ["job_id", "task", "state"],
                "properties": {
                    "job_id": {"type": "string"},
                    "task": {"type": "string"},
                    "state": {"enum": ["queued", "running", "completed", "cancelled", "failed"]},
                    "queue_position": {"type": "integer", "minimum": 0},
                    "stop_reason": {"type": "string"},
                    "error": {"type": "object"},
                },
            }),
        ),
        (
            "JobResult",
            json!({
                "type": "object",
                "description": "`Collected::to_json`: the `end` event's fields plus what the job produced",
                "required": ["job_id", "stop_reason"],
                "properties": {
                    "job_id": {"type": "string"},
                    "stop_reason": {"type": "string"},
                    "text": {"type": "string"},
                    "logprobs": {"type": "array", "items": logprob_entry()},
                    "embeddings": {"type": "array", "items": {
                        "type": "object",
                        "required": ["index", "vector"],
                        "properties": {"index": {"type": "integer"}, "vector": {"type": "array", "items": {"type": "number"}}},
                    }},
                    "artifacts": {"type": "array", "items": {
                        "type": "object",
                        "required": ["media_type", "data"],
                        "properties": {"media_type": {"type": "string"}, "data": {"type": "string", "contentEncoding": "base64"}},
                    }},
                    "events": {"type": "object", "additionalProperties": {"type": "array"}},
                },
            }),
        ),
        (
            "JobEvent",
            json!({
                "type": "object",
                "description": "One Server-Sent Event: `event` is its kind (`started`, `token`, `progress`, `end`, `error`, ... or a plugin's own), `data` its JSON",
                "required": ["event", "data"],
                "properties": {
                    "event": {"type": "string", "minLength": 1},
                    "data": {"type": "string", "contentMediaType": "application/json"},
                },
            }),
        ),
    ]
}

/// OpenAI's `usage` of a completion (`openai::usage`).
fn usage() -> Value {
    json!({
        "type": "object",
        "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        "properties": {
            "prompt_tokens": {"type": "integer", "minimum": 0},
            "completion_tokens": {"type": "integer", "minimum": 0},
            "total_tokens": {"type": "integer", "minimum": 0},
            "prompt_tokens_details": {
                "type": "object",
                "required": ["cached_tokens"],
                "properties": {"cached_tokens": {"type": "integer", "minimum": 0}},
            },
        },
    })
}

/// One token's log probability entry as the plugin reports it and chat answers carry it.
fn logprob_entry() -> Value {
    let bytes = json!({"type": ["array", "null"], "items": {"type": "integer", "minimum": 0, "maximum": 255}});
    let alternative = json!({
        "type": "object",
        "required": ["token", "logprob"],
        "properties": {"token": {"type": "string"}, "logprob": {"type": "number"}, "bytes": bytes},
    });
    let mut entry = alternative.clone();
    entry["properties"]["top_logprobs"] = json!({"type": "array", "items": alternative});
    entry
}

/// Chat's `logprobs` (`logprobs::chat`): null unless asked for.
fn chat_logprobs() -> Value {
    json!({"anyOf": [{"type": "null"}, {
        "type": "object",
        "required": ["content"],
        "properties": {
            "content": {"type": "array", "items": logprob_entry()},
            "refusal": {"type": "null"},
        },
    }]})
}

/// Text completions' `logprobs` (`logprobs::text`): null unless asked for.
fn text_logprobs() -> Value {
    json!({"anyOf": [{"type": "null"}, {
        "type": "object",
        "required": ["tokens", "token_logprobs", "top_logprobs", "text_offset"],
        "properties": {
            "tokens": {"type": "array", "items": {"type": "string"}},
            "token_logprobs": {"type": "array", "items": {"type": "number"}},
            "top_logprobs": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "number"}}},
            "text_offset": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        },
    }]})
}

/// A completion answer (`completion::Completion::full`) whose choices are `choice`.
fn completion(object: &str, choice: Value) -> Value {
    json!({
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": object},
            "created": {"type": "integer", "minimum": 0},
            "model": {"type": "string"},
            "choices": {"type": "array", "items": choice},
            "usage": usage(),
        },
    })
}

/// The answer of `POST /v1/rerank` (`openai::rerank::rerank`).
fn rerank() -> Value {
    json!({
        "type": "object",
        "required": ["object", "model", "results", "usage"],
        "properties": {
            "object": {"const": "list"},
            "model": {"type": "string"},
            "results": {"type": "array", "items": {
                "type": "object",
                "required": ["index", "relevance_score", "truncated"],
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "relevance_score": {"type": "number"},
                    "truncated": {"type": "boolean", "description": "Whether the document was cut to fit the model's window"},
                    "document": {
                        "type": "object",
                        "required": ["text"],
                        "properties": {"text": {"type": "string"}},
                    },
                },
            }},
            "usage": input_usage(),
        },
    })
}

/// The `usage` of routes that only read input (embeddings, rerank).
fn input_usage() -> Value {
    json!({
        "type": "object",
        "required": ["prompt_tokens", "total_tokens"],
        "properties": {
            "prompt_tokens": {"type": "integer", "minimum": 0},
            "total_tokens": {"type": "integer", "minimum": 0},
        },
    })
}

/// The answers of the OpenAI routes.
fn openai() -> Vec<(&'static str, Value)> {
    let finish_reason = json!({"enum": ["stop", "length", "tool_calls"]});
    let tool_call = crate::server::openai::tool_call_schema();
    vec![
        ("Rerank", rerank()),
        (
            "ChatCompletion",
            completion(
                "chat.completion",
                json!({
                    "type": "object",
                    "required": ["index", "message", "finish_reason"],
                    "properties": {
                        "index": {"type": "integer"},
                        "message": {
                            "type": "object",
                            "description": "`content` is null when the model only called tools",
                            "required": ["role", "content"],
                            "properties": {
                                "role": {"const": "assistant"},
                                "content": {"type": ["string", "null"]},
                                "tool_calls": {"type": "array", "items": tool_call},
                            },
                        },
                        "finish_reason": finish_reason,
                        "logprobs": chat_logprobs(),
                    },
                }),
            ),
        ),
        (
            "TextCompletion",
            completion(
                "text_completion",
                json!({
                    "type": "object",
                    "required": ["index", "text", "finish_reason"],
                    "properties": {
                        "index": {"type": "integer"},
                        "text": {"type": "string"},
                        "finish_reason": finish_reason,
                        "logprobs": text_logprobs(),
                    },
                }),
            ),
        ),
        (
            "StreamChunk",
            json!({
                "type": "object",
                "description": "One `data:` line of a completion stream: a chunk as JSON, an error, or `[DONE]`",
                "required": ["data"],
                "properties": {"event": {"const": "message"}, "data": {"type": "string"}},
            }),
        ),
        (
            "Embeddings",
            json!({
                "type": "object",
                "required": ["object", "data", "model", "usage"],
                "properties": {
                    "object": {"const": "list"},
                    "data": {"type": "array", "items": {
                        "type": "object",
                        "required": ["object", "index", "embedding"],
                        "properties": {
                            "object": {"const": "embedding"},
                            "index": {"type": "integer", "minimum": 0},
                            "embedding": {"oneOf": [
                                {"type": "array", "items": {"type": "number"}},
                                {"type": "string", "contentEncoding": "base64"},
                            ]},
                        },
                    }},
                    "model": {"type": "string"},
                    "usage": input_usage(),
                },
            }),
        ),
        (
            "Images",
            json!({
                "type": "object",
                "required": ["created", "data"],
                "properties": {
                    "created": {"type": "integer", "minimum": 0},
                    "data": {"type": "array", "items": {
                        "type": "object",
                        "required": ["b64_json", "revised_prompt"],
                        "properties": {
                            "b64_json": {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/png"},
                            "revised_prompt": {"type": "string"},
                        },
                    }},
                },
            }),
        ),
        (
            "Transcription",
            json!({
                "type": "object",
                "description": "`json`: the text; `verbose_json`: also the task, language, duration and segments",
                "required": ["text"],
                "properties": {
                    "text": {"type": "string"},
                    "task": {"enum": ["transcribe", "translate"]},
                    "language": {},
                    "duration": {},
                    "segments": {"type": "array", "items": {"type": "object"}},
                },
            }),
        ),
    ]
}
