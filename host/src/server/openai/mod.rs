//! The OpenAI-compatible API, for the tasks the loaded plugin serves: clients such as the
//! official SDKs work unchanged. Requests become ordinary jobs; responses are built from the
//! job's events.

mod audio;
mod chat;
mod embeddings;
mod fields;
mod images;
mod models;
mod request;

use super::{
    ApiError, AppState,
    collect::Collected,
    jobs::{enqueue, job_for},
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

/// The OpenAI routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(chat::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/images/generations", post(images::generations))
        .route("/v1/images/edits", post(images::edits))
        .route("/v1/audio/transcriptions", post(audio::transcriptions))
        .route("/v1/audio/translations", post(audio::translations))
}

/// 404 naming the tasks the plugin does serve, unless it serves one of `tasks` (checked before
/// a route reads an upload, so that nothing is read for a route that cannot answer).
fn require_task(state: &AppState, route: &str, tasks: &[&str]) -> Result<(), ApiError> {
    let worker = state.worker();
    if tasks
        .iter()
        .any(|task| worker.tasks.iter().any(|served| served == task))
    {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "unsupported_route",
        format!(
            "{route} needs a plugin serving '{}'; this worker serves: {}",
            tasks.join("' or '"),
            worker.tasks.join(", ")
        ),
    )
    .openai())
}

/// Checks that the plugin serves `task` (404 naming what it does serve), then queues the job
/// (its binary `inputs` as bytes) and returns its events.
async fn start_job(
    state: &Arc<AppState>,
    route: &str,
    task: &str,
    params: Map<String, Value>,
    inputs: Vec<Input>,
) -> Result<(String, JobEvents), ApiError> {
    require_task(state, route, &[task])?;
    let worker = state.worker();
    let job = job_for(task, params, inputs).map_err(ApiError::openai)?;
    let (id, _) = enqueue(worker, job).await.map_err(ApiError::openai)?;
    let events = open_stream(worker, &id).map_err(ApiError::openai)?;
    Ok((id, events))
}

/// Reads a job to its end; a job error becomes a 500 in OpenAI's shape.
async fn collect(events: JobEvents) -> Result<Collected, ApiError> {
    super::collect::collect(events)
        .await
        .map_err(|failed| ApiError::job_failed(&failed.code, failed.message).openai())
}

/// The model name answers carry: what the worker reports as loaded.
fn model_name(state: &AppState) -> String {
    let served = state.worker();
    served
        .readiness
        .worker()
        .map(|worker| worker.status().model.into_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| {
            served.manifest["default_model"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
}

/// Seconds since the epoch, for `created` fields.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Token counts from a text-generation job's end details, in OpenAI's `usage` shape; prompt
/// tokens served from the plugin's prefix cache become `prompt_tokens_details.cached_tokens`.
fn usage(details: &Value) -> Value {
    let prompt = details[end::PROMPT_TOKENS].as_u64().unwrap_or(0);
    let completion = details[end::COMPLETION_TOKENS].as_u64().unwrap_or(0);
    let mut usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    if let Some(cached) = details[end::CACHED_PROMPT_TOKENS].as_u64() {
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
            usage(&plain),
            json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17})
        );
        let cached =
            json!({"prompt_tokens": 12, "completion_tokens": 5, "cached_prompt_tokens": 8});
        assert_eq!(
            usage(&cached),
            json!({
                "prompt_tokens": 12,
                "completion_tokens": 5,
                "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 8},
            })
        );
        let none_cached = json!({"prompt_tokens": 3, "cached_prompt_tokens": 0});
        assert_eq!(
            usage(&none_cached)["prompt_tokens_details"],
            json!({"cached_tokens": 0})
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
