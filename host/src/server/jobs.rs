//! Submitting, inspecting and cancelling jobs.

use super::{
    ApiError, AppState, clipped, collect::collect, error::ErrorBody, models, stream::open_stream,
};
use crate::{
    fleet::{Fleet, LOAD_FAILED},
    isolate::PLUGIN_CRASHED,
    jobs::SubmitError,
    services::host_services::loading_event,
    worker::{WorkerState, readiness::State as Life},
};
use abi_stable::std_types::ROption;
use axum::{
    Json,
    extract::{
        Path, Query, State,
        rejection::{JsonRejection, QueryRejection},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use rbee_plugin_api::{Input, Job, WorkerBox, error_code, tasks};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use utoipa::{IntoParams, ToSchema};

/// The query of `POST /v1/jobs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubmitQuery {
    /// Answer with the collected result once the job ends, instead of 202 and a stream URL.
    #[serde(default)]
    wait: bool,
}

/// The 202 answer to `POST /v1/jobs`: where the job's events are.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The job's id.
    job_id: String,
    /// `/v1/jobs/{job_id}/stream`.
    stream_url: String,
    /// Jobs ahead of it in its model's queue.
    queue_position: usize,
}

/// `POST /v1/jobs` with `{"model": ..., "task": ..., "params": {...}}` (`model` may be left out
/// when one model serves the task): validates, queues, answers 202 with the job id, its stream
/// URL and its queue position; with `?wait=true`, answers 200 with the collected result when
/// the job ends (for short jobs: embeddings, rerank). A job for a model that is not loaded
/// waits in its queue while the model loads, and its stream tells of the load; with
/// `?wait=true` the request waits for the load instead, and the job is checked before it is
/// queued.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    operation_id = "submit_job",
    tag = "jobs",
    params(
        SubmitQuery,
        ("X-Deadline" = Option<String>, Header, description = "A Unix time in seconds by which the job must end (instead of `timeout`)"),
    ),
    request_body(content = ref("#/components/schemas/JobRequest"), description = "The job: its model, task and parameters (each model's parameters are its plugin's schema)"),
    responses(
        (status = 202, description = "Queued", body = Accepted, links(
            ("GetJob" = (operation_id = "get_job", parameters(("id" = "$response.body#/job_id")))),
            ("StreamJob" = (operation_id = "stream_job", parameters(("id" = "$response.body#/job_id")))),
            ("CancelJob" = (operation_id = "cancel_job", parameters(("id" = "$response.body#/job_id")))),
        )),
        (status = 200, description = "With `?wait=true`: the job's collected result", body = ref("#/components/schemas/JobResult")),
        (status = 400, description = "A field at fault", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 408, description = "The body was sent too slowly", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "The body is not valid JSON of the right shape", body = ErrorBody),
        (status = 500, description = "With `?wait=true`: the job failed", body = ErrorBody),
        (status = 503, description = "The queue is full, the model is loading at start-up, or the host drains; retry after `Retry-After` seconds", body = ErrorBody),
    ),
)]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    query: Result<Query<SubmitQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_field("wait", e.body_text()))?;
    let Json(body) = body.map_err(ApiError::rejected)?;
    let time_limit = time_limit(&headers, &body)?;
    let (model, job) = parse_submission(state.fleet(), &body, time_limit)?;
    // Whoever waits for the result may as well wait for the load: the job is then checked
    // before it is queued, and bad parameters are a 400 rather than a failed job's 500.
    let while_loading = match query.wait {
        true => WhileLoading::Wait,
        false => WhileLoading::Queue,
    };
    let (job_id, queue_position) = enqueue(&state, &model, job, while_loading).await?;
    if let Some(limit) = time_limit {
        let (jobs, id) = (model.jobs.clone(), job_id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            jobs.expire(&id);
        });
    }
    if let (Some(limit), false) = (state.http().unread_timeout, query.wait) {
        let (jobs, id) = (model.jobs.clone(), job_id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            if jobs.stream_unopened(&id) {
                tracing::info!(job = id, "nobody opened the job's stream; cancelling it");
                jobs.cancel(&id);
            }
        });
    }
    if query.wait {
        let events = open_stream(&model, &job_id)?;
        let collected = collect(events)
            .await
            .map_err(|failed| ApiError::job_failed(&failed.code, failed.message))?;
        return Ok(Json(collected.to_json(&job_id)).into_response());
    }
    let accepted = Accepted {
        stream_url: format!("/v1/jobs/{job_id}/stream"),
        job_id,
        queue_position,
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// How often a job whose check met a crashed plugin process looks again: the model is about
/// to restart, and the job waits for it like any job for a load.
const RESTART_POLL: std::time::Duration = std::time::Duration::from_millis(25);

/// What a request for a model that is not loaded does while the model loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhileLoading {
    /// Waits for the load, then queues the job checked (the OpenAI routes).
    Wait,
    /// Queues the job at once, to be checked when the model is loaded; its stream tells of
    /// the load (the native route).
    Queue,
}

/// Validates a job with the model's worker, on a blocking thread (a plugin may decode an
/// upload), and queues it: its id and queue position. A model that is not loaded is loaded
/// first (see [`WhileLoading`]).
pub async fn enqueue(
    state: &AppState,
    model: &Arc<WorkerState>,
    mut job: Job,
    while_loading: WhileLoading,
) -> Result<(String, usize), ApiError> {
    let fleet = state.fleet();
    loop {
        if let Some(serving) = serving_worker(model, state)? {
            let checked = tokio::task::spawn_blocking(move || {
                let outcome = serving.validate(&job).into_result();
                (job, outcome)
            })
            .await
            .map_err(|_| ApiError::job_failed(error_code::PANIC, "validating the job crashed"))?;
            let outcome;
            (job, outcome) = checked;
            match outcome {
                Ok(()) => return model.jobs.submit(job).map_err(submit_error),
                Err(error) if error.code.as_str() == PLUGIN_CRASHED => {
                    tokio::time::sleep(RESTART_POLL).await;
                    continue;
                }
                Err(error) => return Err(ApiError::from_plugin(error)),
            }
        }
        if while_loading == WhileLoading::Queue {
            let note = match model.readiness.state() {
                Life::Loading { progress, message } => {
                    loading_event(model.id(), progress, &message)
                }
                _ => loading_event(model.id(), 0.0, "queued for loading"),
            };
            let queued = model
                .jobs
                .submit_unvalidated(job, &note)
                .map_err(submit_error)?;
            fleet.request_load(model);
            return Ok(queued);
        }
        fleet
            .load_and_wait(model)
            .await
            .map_err(|message| ApiError::job_failed(LOAD_FAILED, message))?;
    }
}

fn submit_error(error: SubmitError) -> ApiError {
    match error {
        SubmitError::QueueFull => {
            ApiError::unavailable("queue_full", "the job queue is full; retry later", 1)
        }
        SubmitError::Draining => ApiError::unavailable(
            "draining",
            "this worker is shutting down; retry on another",
            5,
        ),
    }
}

/// The job for `task` with `params`: the task's binary parameters
/// ([`tasks::TaskSpec::binary_params`]) move out of the JSON into the job's inputs.
pub fn job_for(
    task: &str,
    mut params: Map<String, Value>,
    inputs: Vec<Input>,
) -> Result<Job, ApiError> {
    let mut inputs = inputs;
    for name in tasks::spec(task).map_or(&[][..], |spec| spec.binary_params) {
        match params.remove(*name) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => inputs.push(Input {
                name: (*name).into(),
                data: decode_base64(name, &text)?.into(),
            }),
            Some(_) => {
                return Err(ApiError::bad_field(
                    name,
                    format!("'{name}' must be a base64 string (or a data: URL)"),
                ));
            }
        }
    }
    let mut job = Job::new("", task, &Value::Object(params).to_string());
    job.inputs = inputs.into();
    Ok(job)
}

/// Base64 text, or a `data:` URL holding it, as bytes.
fn decode_base64(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    let payload = match text.split_once(";base64,") {
        Some((prefix, payload)) if prefix.starts_with("data:") => payload,
        _ => text,
    };
    BASE64
        .decode(payload.trim())
        .map_err(|e| ApiError::bad_field(field, format!("'{field}' is not valid base64: {e}")))
}

/// The longest time limit a job may have: 30 days.
pub const MAX_TIME_LIMIT_SECS: f64 = 30.0 * 24.0 * 3600.0;

/// The top-level fields of a `POST /v1/jobs` body.
pub const SUBMISSION_FIELDS: [&str; 4] = ["model", "task", "params", "timeout"];

/// How long the job may take: the body's `timeout` (seconds) or the `X-Deadline` header (a Unix
/// time in seconds), at most [`MAX_TIME_LIMIT_SECS`] ahead. When it passes, the job ends with
/// stop reason `deadline_exceeded`.
fn time_limit(headers: &HeaderMap, body: &Value) -> Result<Option<Duration>, ApiError> {
    let too_far = || format!("at most {MAX_TIME_LIMIT_SECS} seconds ahead (30 days)");
    if let Some(timeout) = body.get("timeout").filter(|t| !t.is_null()) {
        let seconds = timeout.as_f64().filter(|s| *s > 0.0 && s.is_finite());
        let seconds = seconds.ok_or_else(|| {
            ApiError::bad_field("timeout", "'timeout' must be a positive number of seconds")
        })?;
        if seconds > MAX_TIME_LIMIT_SECS {
            return Err(ApiError::bad_field(
                "timeout",
                format!("'timeout' must be {}", too_far()),
            ));
        }
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
        left if left > MAX_TIME_LIMIT_SECS => Err(ApiError::bad_field(
            "X-Deadline",
            format!("the deadline must be {}", too_far()),
        )),
        left if left > 0.0 => Ok(Some(Duration::from_secs_f64(left))),
        _ => Err(ApiError::bad_field(
            "X-Deadline",
            "the deadline has already passed",
        )),
    }
}

/// Checks the submission's shape (a served task, the model, a params object) and makes it a
/// job for that model, ending after `time_limit` if one was set.
fn parse_submission(
    fleet: &Fleet,
    body: &Value,
    time_limit: Option<Duration>,
) -> Result<(Arc<WorkerState>, Job), ApiError> {
    if let Some(unknown) = body.as_object().and_then(|fields| {
        fields
            .keys()
            .find(|k| !SUBMISSION_FIELDS.contains(&k.as_str()))
    }) {
        let name = clipped(unknown);
        return Err(ApiError::bad_field(
            &name,
            format!(
                "unknown field '{name}' (known: {}; job parameters go in 'params')",
                SUBMISSION_FIELDS.join(", ")
            ),
        ));
    }
    let task = body
        .get("task")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_field("task", "'task' (a string) is required"))?;
    let name = match body.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.as_str()),
        Some(_) => return Err(ApiError::bad_field("model", "'model' must be a string")),
    };
    let model = models::pick(fleet, name, task)?;
    let params = match body.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params.clone(),
        Some(_) => {
            return Err(ApiError::bad_field(
                "params",
                "'params' must be a JSON object",
            ));
        }
    };
    let mut job = job_for(task, params, Vec::new())?;
    job.deadline_unix_ms = ROption::from(time_limit.map(|limit| {
        let deadline = SystemTime::now() + limit;
        deadline
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }));
    Ok((model, job))
}

/// The loaded worker if the model takes jobs; `None` if it is to be loaded on demand; a
/// retryable 503 while the host drains or a pinned model is still loading at start-up.
fn serving_worker(
    model: &WorkerState,
    state: &AppState,
) -> Result<Option<Arc<WorkerBox>>, ApiError> {
    match model.readiness.serving() {
        Ok(worker) => {
            // Seen serving: a later load of a pinned model (a restart after a crash) is not
            // the start-up's, and queues jobs instead of refusing them.
            state.started();
            Ok(Some(worker))
        }
        Err(Life::Draining) => Err(ApiError::unavailable(
            "draining",
            "this worker is shutting down; retry on another",
            5,
        )),
        Err(Life::Failed { message }) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "failed",
            message,
        )),
        Err(Life::Loading { .. }) if model.config.pinned && !state.started() => Err(
            ApiError::unavailable("loading", "the model is still loading; see /ready", 2),
        ),
        Err(_) => Ok(None),
    }
}

/// `GET /v1/jobs/{id}`: the job's state.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = ref("#/components/schemas/JobView")),
        (status = 404, description = "No such job", body = ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state
        .fleet()
        .model_of_job(&id)
        .and_then(|model| model.jobs.view(&id))
        .ok_or_else(|| ApiError::not_found(format!("no job '{id}'")))?;
    Ok(Json(json!(view)))
}

/// `DELETE /v1/jobs/{id}`: cancels a queued or running job.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    operation_id = "cancel_job",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job, cancelled (or as it ended)", body = ref("#/components/schemas/JobView")),
        (status = 404, description = "No such job", body = ErrorBody),
    ),
)]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state
        .fleet()
        .model_of_job(&id)
        .and_then(|model| model.jobs.cancel(&id))
        .ok_or_else(|| ApiError::not_found(format!("no job '{id}'")))?;
    Ok(Json(json!(view)))
}
