//! The OpenAI-compatible API, for the tasks the loaded plugin serves: clients such as the
//! official SDKs work unchanged. Requests become ordinary jobs; responses are built from the
//! job's events.

mod audio;
mod chat;
mod embeddings;
mod images;
mod models;
mod request;

use super::{ApiError, AppState, jobs::enqueue, stream::JobEvents};
use crate::job_event::{ArtifactData, JobEvent};
use axum::{
    Router,
    http::StatusCode,
    routing::{get, post},
};
use serde_json::Value;
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

/// Checks that the plugin serves `task` (404 naming what it does serve), then queues the job
/// and returns its events.
fn start_job(
    state: &Arc<AppState>,
    route: &str,
    task: &str,
    params: Value,
) -> Result<(String, JobEvents), ApiError> {
    if !state.tasks.iter().any(|served| served == task) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unsupported_route",
            format!(
                "{route} needs a plugin serving '{task}'; this worker serves: {}",
                state.tasks.join(", ")
            ),
        )
        .openai());
    }
    let (id, _) = enqueue(state, task, params.to_string()).map_err(ApiError::openai)?;
    let receiver = state
        .jobs
        .take_stream(&id)
        .map_err(|_| ApiError::job_failed("internal", "the job vanished").openai())?;
    Ok((id.clone(), JobEvents::new(state.jobs.clone(), id, receiver)))
}

/// Everything a job produced, for non-streaming answers.
#[derive(Default)]
struct Collected {
    text: String,
    embeddings: Vec<(u64, Vec<f32>)>,
    artifacts: Vec<ArtifactData>,
    stop_reason: String,
    details: Value,
}

/// Reads a job to its end; a job error becomes a 500 in OpenAI's shape.
async fn collect(mut events: JobEvents) -> Result<Collected, ApiError> {
    let mut collected = Collected::default();
    while let Some(event) = events.next().await {
        match event {
            JobEvent::Token { text, .. } => collected.text.push_str(&text),
            JobEvent::Embedding { index, vector } => collected.embeddings.push((index, vector)),
            JobEvent::Artifact(artifact) => collected.artifacts.push(artifact),
            JobEvent::End {
                stop_reason,
                details,
            } => {
                collected.stop_reason = stop_reason;
                collected.details = details;
            }
            JobEvent::Error { code, message } => {
                return Err(ApiError::job_failed(&code, message).openai());
            }
            _ => {}
        }
    }
    Ok(collected)
}

/// The model name answers carry: what the worker reports as loaded.
fn model_name(state: &AppState) -> String {
    state
        .worker
        .get()
        .map(|worker| worker.status().model.into_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| {
            state.manifest["default_model"]
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

/// Token counts from a job's end details, in OpenAI's `usage` shape.
fn usage(details: &Value) -> Value {
    let prompt = details["prompt_tokens"].as_u64().unwrap_or(0);
    let completion = details["completion_tokens"].as_u64().unwrap_or(0);
    serde_json::json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}
