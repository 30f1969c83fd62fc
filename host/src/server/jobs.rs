//! Submitting, inspecting and cancelling jobs.

use super::{ApiError, AppState};
use crate::{jobs::SubmitError, readiness::State as Life};
use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
};
use rbee_plugin_api::WorkerBox;
use serde_json::{Value, json};
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// `POST /v1/jobs` with `{"task": ..., "params": {...}}`: validates, queues, answers 202 with
/// the job id, its stream URL and its queue position.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(ApiError::rejected)?;
    let (task, params) = parse_submission(&state, &body)?;
    let time_limit = time_limit(&headers, &body)?;
    let (job_id, queue_position) = enqueue(&state, task, params)?;
    if let Some(limit) = time_limit {
        let (jobs, id) = (state.jobs.clone(), job_id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            jobs.expire(&id);
        });
    }
    let stream_url = format!("/v1/jobs/{job_id}/stream");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"job_id": job_id, "stream_url": stream_url, "queue_position": queue_position})),
    ))
}

/// Validates a job with the worker and queues it: its id and queue position.
pub fn enqueue(state: &AppState, task: &str, params: String) -> Result<(String, usize), ApiError> {
    let worker = serving_worker(state)?;
    worker
        .validate(task.into(), params.as_str().into())
        .into_result()
        .map_err(ApiError::from_plugin)?;
    state.jobs.submit(task, params).map_err(|e| match e {
        SubmitError::QueueFull => {
            ApiError::unavailable("queue_full", "the job queue is full; retry later", 1)
        }
        SubmitError::Draining => ApiError::unavailable(
            "draining",
            "this worker is shutting down; retry on another",
            5,
        ),
    })
}

/// How long the job may take: the body's `timeout` (seconds) or the `X-Deadline` header (a Unix
/// time in seconds). When it passes, the job ends with stop reason `deadline_exceeded`.
fn time_limit(headers: &HeaderMap, body: &Value) -> Result<Option<Duration>, ApiError> {
    if let Some(timeout) = body.get("timeout").filter(|t| !t.is_null()) {
        let seconds = timeout.as_f64().filter(|s| *s > 0.0 && s.is_finite());
        let seconds = seconds.ok_or_else(|| {
            ApiError::bad_field("timeout", "'timeout' must be a positive number of seconds")
        })?;
        return Ok(Some(Duration::from_secs_f64(seconds)));
    }
    let Some(deadline) = headers.get("x-deadline") else {
        return Ok(None);
    };
    let at = deadline
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|t| t.is_finite());
    let at = at.ok_or_else(|| {
        ApiError::bad_field("X-Deadline", "X-Deadline must be a Unix time in seconds")
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    match at - now {
        left if left > 0.0 => Ok(Some(Duration::from_secs_f64(left))),
        _ => Err(ApiError::bad_field(
            "X-Deadline",
            "the deadline has already passed",
        )),
    }
}

/// Checks the submission's shape: a served task and a params object.
fn parse_submission<'a>(state: &AppState, body: &'a Value) -> Result<(&'a str, String), ApiError> {
    let task = body
        .get("task")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_field("task", "'task' (a string) is required"))?;
    if !state.tasks.iter().any(|served| served == task) {
        return Err(ApiError::bad_field(
            "task",
            format!(
                "task '{task}' is not served by this worker; it serves: {}",
                state.tasks.join(", ")
            ),
        ));
    }
    let params = match body.get("params") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(params @ Value::Object(_)) => params.to_string(),
        Some(_) => {
            return Err(ApiError::bad_field(
                "params",
                "'params' must be a JSON object",
            ));
        }
    };
    Ok((task, params))
}

/// The worker, if the host is ready to take jobs; a retryable 503 otherwise.
fn serving_worker(state: &AppState) -> Result<&Arc<WorkerBox>, ApiError> {
    match (state.readiness.get(), state.worker.get()) {
        (Life::Ready, Some(worker)) => Ok(worker),
        (Life::Draining, _) => Err(ApiError::unavailable(
            "draining",
            "this worker is shutting down; retry on another",
            5,
        )),
        (Life::Failed { message }, _) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "failed",
            message,
        )),
        _ => Err(ApiError::unavailable(
            "loading",
            "the model is still loading; see /ready",
            2,
        )),
    }
}

/// `GET /v1/jobs/{id}`: the job's state.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state
        .jobs
        .view(&id)
        .ok_or_else(|| ApiError::not_found(format!("no job '{id}'")))?;
    Ok(Json(json!(view)))
}

/// `DELETE /v1/jobs/{id}`: cancels a queued or running job.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state
        .jobs
        .cancel(&id)
        .ok_or_else(|| ApiError::not_found(format!("no job '{id}'")))?;
    Ok(Json(json!(view)))
}
