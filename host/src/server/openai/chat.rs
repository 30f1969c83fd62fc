//! `POST /v1/chat/completions` and `POST /v1/completions` on the `text-generation` task.

use super::{Collected, collect, fields, now, request, requested_model, start_job, usage};
use crate::server::openai::errors::JsonRouteErrors;
use crate::{
    jobs::event::JobEvent,
    server::{
        ApiError, AppState,
        stream::{JobEvents, keep_alive},
    },
};
use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
};
use futures_util::{StreamExt, stream};
use rbee_plugin_api::tasks::text_generation::{TASK, param, stop_reason};
use serde_json::{Map, Value, json};
use std::{convert::Infallible, sync::Arc};

/// Chat completions: `messages` rendered with the model's chat template by the plugin.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    operation_id = "create_chat_completion",
    tag = "openai",
    request_body(content = ref("#/components/schemas/ChatCompletionRequest")),
    responses(
        (status = 200, description = "The completion; with `stream: true`, its chunks then `[DONE]`", content(
            (ref("#/components/schemas/ChatCompletion") = "application/json"),
            (ref("#/components/schemas/StreamChunk") = "text/event-stream"),
        )),
        JsonRouteErrors,
    ),
)]
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = request::object(body)?;
    fields::CHAT.check_all(&body)?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            request::bad(
                "messages",
                "'messages' (a list of {role, content}) is required",
            )
        })?;
    let messages = messages
        .iter()
        .enumerate()
        .map(|(i, m)| plain_message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let mut params = request::sampling(&body)?;
    params.insert(param::MESSAGES.into(), Value::Array(messages));
    respond(&state, Flavor::Chat, params, &body).await
}

/// Text completions: a plain `prompt`.
#[utoipa::path(
    post,
    path = "/v1/completions",
    operation_id = "create_completion",
    tag = "openai",
    request_body(content = ref("#/components/schemas/CompletionRequest")),
    responses(
        (status = 200, description = "The completion; with `stream: true`, its chunks then `[DONE]`", content(
            (ref("#/components/schemas/TextCompletion") = "application/json"),
            (ref("#/components/schemas/StreamChunk") = "text/event-stream"),
        )),
        JsonRouteErrors,
    ),
)]
pub async fn completions(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = request::object(body)?;
    fields::COMPLETIONS.check_all(&body)?;
    let prompt = match body.get("prompt") {
        Some(Value::String(prompt)) => prompt.clone(),
        Some(Value::Array(prompts)) if prompts.len() == 1 && prompts[0].is_string() => {
            prompts[0].as_str().unwrap_or_default().to_string()
        }
        _ => {
            return Err(request::bad(
                "prompt",
                "'prompt' must be a string (one prompt per request)",
            ));
        }
    };
    let mut params = request::sampling(&body)?;
    params.insert(param::PROMPT.into(), prompt.into());
    respond(&state, Flavor::Text, params, &body).await
}

/// A message with its content as plain text (text parts joined); other parts are refused.
fn plain_message(index: usize, message: &Value) -> Result<Value, ApiError> {
    let field = format!("messages[{index}]");
    let role = message["role"]
        .as_str()
        .ok_or_else(|| request::bad(&field, "each message needs a 'role'"))?;
    let content = match &message["content"] {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        Value::Array(parts) => parts
            .iter()
            .map(
                |part| match (part["type"].as_str(), part["text"].as_str()) {
                    (Some("text"), Some(text)) => Ok(text),
                    _ => Err(request::bad(
                        &field,
                        "only text content parts are supported",
                    )),
                },
            )
            .collect::<Result<Vec<_>, _>>()?
            .join(""),
        _ => {
            return Err(request::bad(
                &field,
                "'content' must be a string or a list of text parts",
            ));
        }
    };
    Ok(json!({"role": role, "content": content}))
}

/// Chat or plain-text completion: the two differ only in their object shapes.
#[derive(Clone, Copy)]
enum Flavor {
    Chat,
    Text,
}

/// What every chunk or response of one completion carries.
struct Completion {
    id: String,
    model: String,
    created: u64,
    flavor: Flavor,
}

impl Completion {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.flavor, chunk) {
            (Flavor::Chat, false) => "chat.completion",
            (Flavor::Chat, true) => "chat.completion.chunk",
            (Flavor::Text, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Value) -> Value {
        json!({"id": self.id, "object": self.object(chunk), "created": self.created, "model": self.model, "choices": choices})
    }

    fn chunk(&self, text: Option<&str>, finish_reason: Option<&str>) -> Value {
        let choice = match self.flavor {
            Flavor::Chat => {
                let delta = text.map_or(json!({}), |text| json!({"content": text}));
                json!({"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null})
            }
            Flavor::Text => {
                json!({"index": 0, "text": text.unwrap_or(""), "finish_reason": finish_reason, "logprobs": null})
            }
        };
        self.envelope(true, json!([choice]))
    }

    fn full(&self, collected: &Collected) -> Value {
        let finish_reason = finish_reason(&collected.stop_reason);
        let choice = match self.flavor {
            Flavor::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": collected.text},
                "finish_reason": finish_reason,
                "logprobs": null,
            }),
            Flavor::Text => {
                json!({"index": 0, "text": collected.text, "finish_reason": finish_reason, "logprobs": null})
            }
        };
        let mut response = self.envelope(false, json!([choice]));
        response["usage"] = usage(&collected.details);
        response
    }
}

/// OpenAI's finish reasons: `length` when max_tokens ended it, `stop` otherwise.
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        stop_reason::MAX_TOKENS => "length",
        _ => "stop",
    }
}

async fn respond(
    state: &Arc<AppState>,
    flavor: Flavor,
    params: Map<String, Value>,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let route = match flavor {
        Flavor::Chat => "/v1/chat/completions",
        Flavor::Text => "/v1/completions",
    };
    let stream = request::stream(body)?;
    let started = start_job(
        state,
        route,
        requested_model(body)?,
        TASK,
        params,
        Vec::new(),
    )
    .await?;
    let events = started.events;
    let prefix = match flavor {
        Flavor::Chat => "chatcmpl",
        Flavor::Text => "cmpl",
    };
    let completion = Completion {
        id: format!("{prefix}-{}", started.id),
        model: started.model,
        created: now(),
        flavor,
    };
    let Some(include_usage) = stream else {
        let collected = collect(events).await?;
        return Ok(Json(completion.full(&collected)).into_response());
    };
    Ok(stream_chunks(completion, events, include_usage).into_response())
}

/// OpenAI's streaming form: `data:` chunks, then `data: [DONE]`.
fn stream_chunks(
    completion: Completion,
    events: JobEvents,
    include_usage: bool,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let opening = match completion.flavor {
        Flavor::Chat => {
            let mut first = completion.chunk(None, None);
            first["choices"][0]["delta"] = json!({"role": "assistant", "content": ""});
            vec![first.to_string()]
        }
        Flavor::Text => vec![],
    };
    let body = stream::unfold(Some((events, completion)), move |running| async move {
        let (mut events, completion) = running?;
        loop {
            match events.next().await? {
                JobEvent::Token { text, .. } => {
                    let chunk = completion.chunk(Some(&text), None).to_string();
                    return Some((vec![chunk], Some((events, completion))));
                }
                JobEvent::End {
                    stop_reason,
                    details,
                } => {
                    let mut last = vec![
                        completion
                            .chunk(None, Some(finish_reason(&stop_reason)))
                            .to_string(),
                    ];
                    if include_usage {
                        let mut usage_chunk = completion.envelope(true, json!([]));
                        usage_chunk["usage"] = usage(&details);
                        last.push(usage_chunk.to_string());
                    }
                    last.push("[DONE]".into());
                    return Some((last, None));
                }
                JobEvent::Error { code, message } => {
                    let error = json!({"error": {"message": message, "type": "server_error", "code": code}});
                    return Some((vec![error.to_string(), "[DONE]".into()], None));
                }
                _ => continue,
            }
        }
    });
    let chunks = stream::iter(opening)
        .chain(body.flat_map(stream::iter))
        .map(|data| Ok(Event::default().data(data)));
    Sse::new(chunks).keep_alive(keep_alive())
}
