//! The OpenAI-compatible API, for the tasks the loaded plugin serves: clients such as the
//! official SDKs work unchanged. Requests become ordinary jobs; responses are built from the
//! job's events.

mod audio;
mod chat;
mod choices;
mod chunks;
mod completion;
mod embeddings;
mod errors;
mod fields;
mod images;
mod logprobs;
mod models;
mod request;
mod rerank;
mod schemas;
mod speech;
pub mod untrusted;

use super::{
    ApiError, AppState,
    collect::Collected,
    jobs::{WhileLoading, enqueue, job_for},
    models as native_models,
    stream::{JobEvents, open_stream},
};
use axum::{
    Router,
    http::StatusCode,
    routing::{get, post},
};
use rbee_plugin_api::{Input, tasks::text_generation::end};
use serde_json::{Map, Value, json};
use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};
use utoipa::OpenApi;

/// The OpenAI routes' part of the OpenAPI document (their request bodies: [`schemas`]).
#[derive(OpenApi)]
#[openapi(paths(
    models::list,
    chat::chat_completions,
    chat::completions,
    embeddings::embeddings,
    rerank::rerank,
    images::generations,
    images::edits::edits,
    audio::transcriptions,
    audio::translations,
    speech::speech,
))]
pub struct Doc;

pub use schemas::{requests as request_schemas, tool_call as tool_call_schema};

/// The OpenAI routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(chat::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/rerank", post(rerank::rerank))
        .route("/v2/rerank", post(rerank::rerank))
        .route("/rerank", post(rerank::rerank))
        .route("/v1/images/generations", post(images::generations))
        .route("/v1/images/edits", post(images::edits))
        .route("/v1/audio/transcriptions", post(audio::transcriptions))
        .route("/v1/audio/translations", post(audio::translations))
        .route("/v1/audio/speech", post(speech::speech))
}

/// 404 naming the tasks that are served, unless some model serves one of `tasks` (checked
/// before a route reads an upload, so that nothing is read for a route that cannot answer).
fn require_task(state: &AppState, route: &str, tasks: &[&str]) -> Result<(), ApiError> {
    if state.fleet().serves_any(tasks) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "unsupported_route",
        format!(
            "{route} needs a plugin serving '{}'; this host serves: {}",
            tasks.join("' or '"),
            state.fleet().served_tasks().join(", ")
        ),
    )
    .openai())
}

/// A job an OpenAI route started: its id, its events, and the id of the model running it
/// (what answers carry as `model`).
struct Started {
    id: String,
    events: JobEvents,
    model: String,
}

/// Picks the model `model` names for `task` (404 naming what is served or available), loads it
/// if needed and waits, then queues the job (its binary `inputs` as bytes) and returns its
/// events.
async fn start_job(
    state: &Arc<AppState>,
    route: &str,
    model: Option<&str>,
    task: &str,
    params: Map<String, Value>,
    inputs: Vec<Input>,
) -> Result<Started, ApiError> {
    require_task(state, route, &[task])?;
    let fleet = state.fleet();
    let served = fleet
        .pick(model, task)
        .cloned()
        .map_err(|error| native_models::pick_error(error).openai())?;
    let job = job_for(task, params, inputs).map_err(ApiError::openai)?;
    let (id, _) = enqueue(state, &served, job, WhileLoading::Wait)
        .await
        .map_err(ApiError::openai)?;
    let events = open_stream(&served, &id).map_err(ApiError::openai)?;
    Ok(Started {
        id,
        events,
        model: served.id().to_string(),
    })
}

/// The `model` a JSON request body names, if any; 400 if it is not a string.
fn requested_model(body: &Map<String, Value>) -> Result<Option<&str>, ApiError> {
    request::text(body, "model")
}

/// Reads a job to its end; a job error becomes a 500 in OpenAI's shape.
async fn collect(events: JobEvents) -> Result<Collected, ApiError> {
    super::collect::collect(events)
        .await
        .map_err(|failed| ApiError::job_failed(&failed.code, failed.message).openai())
}

/// Seconds since the epoch, for `created` fields.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Token counts from the end details of a completion's text-generation jobs (one per choice),
/// in OpenAI's `usage` shape: the prompt counted once, the completions summed; prompt tokens
/// served from the plugin's prefix cache become `prompt_tokens_details.cached_tokens`.
fn usage<'a>(choices: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut choices = choices.into_iter();
    let first = choices.next().unwrap_or(&Value::Null);
    let prompt = first[end::PROMPT_TOKENS].as_u64().unwrap_or(0);
    let tokens = |details: &Value| details[end::COMPLETION_TOKENS].as_u64().unwrap_or(0);
    let completion = tokens(first) + choices.map(tokens).sum::<u64>();
    let mut usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    if let Some(cached) = first[end::CACHED_PROMPT_TOKENS].as_u64() {
        usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::{embeddings, usage};
    use serde_json::json;

    #[test]
    fn usage_reports_prompt_tokens_from_the_prefix_cache_as_openai_does() {
        let plain = json!({"prompt_tokens": 12, "completion_tokens": 5});
        assert_eq!(
            usage([&plain]),
            json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17})
        );
        let cached =
            json!({"prompt_tokens": 12, "completion_tokens": 5, "cached_prompt_tokens": 8});
        assert_eq!(
            usage([&cached]),
            json!({
                "prompt_tokens": 12,
                "completion_tokens": 5,
                "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 8},
            })
        );
        let none_cached = json!({"prompt_tokens": 3, "cached_prompt_tokens": 0});
        assert_eq!(
            usage([&none_cached])["prompt_tokens_details"],
            json!({"cached_tokens": 0})
        );
    }

    #[test]
    fn usage_of_several_choices_counts_the_prompt_once_and_sums_the_completions() {
        let choices = [
            json!({"prompt_tokens": 12, "completion_tokens": 5}),
            json!({"prompt_tokens": 12, "completion_tokens": 7}),
        ];
        assert_eq!(
            usage(&choices),
            json!({"prompt_tokens": 12, "completion_tokens": 12, "total_tokens": 24})
        );
    }

    #[test]
    fn embedding_usage_has_only_prompt_and_total_tokens() {
        let details = json!({"prompt_tokens": 7, "cached_prompt_tokens": 7});
        assert_eq!(
            embeddings::usage(&details),
            json!({"prompt_tokens": 7, "total_tokens": 7})
        );
    }
}
