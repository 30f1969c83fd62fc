//! `POST /v1/chat/completions` and `POST /v1/completions` on the `text-generation` task.

use super::{
    choices, chunks,
    completion::{Completion, Flavor},
    errors::JsonRouteErrors,
    fields, now, request, requested_model,
};
use crate::server::{ApiError, AppState};
use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    response::{IntoResponse, Response},
};
use rbee_plugin_api::tasks::text_generation::param;
use serde_json::{Map, Value, json};
use std::sync::Arc;

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
    let logprobs = request::chat_logprobs(&body)?;
    let mut params = request::sampling(&body)?;
    params.insert(param::MESSAGES.into(), Value::Array(messages));
    respond(&state, Flavor::Chat, params, logprobs, &body).await
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
    let logprobs = request::completion_logprobs(&body)?;
    let mut params = request::sampling(&body)?;
    params.insert(param::PROMPT.into(), prompt.into());
    respond(&state, Flavor::Text, params, logprobs, &body).await
}

/// What a message may carry beside its role and content, passed on as it is: an assistant's
/// `tool_calls`, a tool result's `tool_call_id`, a participant's `name`.
const MESSAGE_EXTRAS: [&str; 3] = ["tool_calls", "tool_call_id", "name"];

/// A message with its content as plain text (text parts joined; other parts are refused) and
/// its [`MESSAGE_EXTRAS`]. An assistant message that calls tools may have no content.
fn plain_message(index: usize, message: &Value) -> Result<Value, ApiError> {
    let field = format!("messages[{index}]");
    let role = message["role"]
        .as_str()
        .ok_or_else(|| request::bad(&field, "each message needs a 'role'"))?;
    let calls_tools = message["tool_calls"]
        .as_array()
        .is_some_and(|c| !c.is_empty());
    let content = match &message["content"] {
        Value::Null if calls_tools => Value::Null,
        content => plain_text(&field, content)?.into(),
    };
    let mut plain = json!({"role": role, "content": content});
    for extra in MESSAGE_EXTRAS {
        let given = message
            .get(extra)
            .filter(|v| !v.is_null() && **v != json!([]));
        if let Some(value) = given {
            plain[extra] = value.clone();
        }
    }
    Ok(plain)
}

/// A message's content as plain text: a string, null (empty) or text parts joined.
fn plain_text(field: &str, content: &Value) -> Result<String, ApiError> {
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => parts
            .iter()
            .map(
                |part| match (part["type"].as_str(), part["text"].as_str()) {
                    (Some("text"), Some(text)) => Ok(text),
                    _ => Err(request::bad(field, "only text content parts are supported")),
                },
            )
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| parts.join("")),
        _ => Err(request::bad(
            field,
            "'content' must be a string or a list of text parts",
        )),
    }
}

/// Answers a completion of `params` for `flavor`'s route: queues one job per choice, then
/// answers with all of them at once or streams them.
async fn respond(
    state: &Arc<AppState>,
    flavor: Flavor,
    mut params: Map<String, Value>,
    logprobs: Option<u64>,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let stream = request::stream(body)?;
    let n = request::choices(body)?;
    request::pass_on(body, &mut params);
    request::ask_logprobs(&mut params, logprobs);
    let started = choices::start(state, flavor, requested_model(body)?, &params, n).await?;
    let completion = Completion {
        id: format!("{}-{}", flavor.id_prefix(), started[0].id),
        model: started[0].model.clone(),
        created: now(),
        flavor,
        logprobs: logprobs.is_some(),
    };
    let events = started.into_iter().map(|job| job.events).collect();
    match stream {
        Some(include_usage) => Ok(chunks::sse(completion, events, include_usage).into_response()),
        None => {
            let collected = choices::collect_all(events).await?;
            Ok(Json(completion.full(&collected)).into_response())
        }
    }
}

#[cfg(test)]
mod tests;
