//! `GET /v1/jobs/{id}/stream`: a job's events as Server-Sent Events, ending with `end` or
//! `error`; and [`JobEvents`], a job's events for any handler, cancelling the job when dropped
//! before its end (the client went away).

use super::{ApiError, AppState, error::ErrorBody};
use crate::{
    jobs::{EventReceiver, Jobs, StreamError, event::JobEvent},
    worker::WorkerState,
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::{Stream, stream};
use std::{convert::Infallible, sync::Arc, time::Duration};

/// How often an idle stream sends a comment line. Short, because a write is what reveals a
/// client that has gone away (during a long prefill no event may be due for a while).
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Opens the stream of job `id`; one client per job.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/stream",
    operation_id = "stream_job",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job's events, ending with exactly one `end` or `error`", content_type = "text/event-stream", body = ref("#/components/schemas/JobEvent")),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Another client took the job's events", body = ErrorBody),
    ),
)]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let model = state
        .fleet()
        .model_of_job(&id)
        .ok_or_else(|| ApiError::not_found(format!("no job '{id}'")))?;
    let events = open_stream(model, &id)?;
    let sse = stream::unfold(events, |mut events| async move {
        let event = events.next().await?;
        let sse = Event::default()
            .event(event.name())
            .data(event.data().to_string());
        Some((Ok(sse), events))
    });
    Ok(Sse::new(sse).keep_alive(keep_alive()))
}

/// Takes the events of job `id`: 404 if there is no such job, 409 if a client holds them.
pub fn open_stream(worker: &WorkerState, id: &str) -> Result<JobEvents, ApiError> {
    let receiver = worker.jobs.take_stream(id).map_err(|e| match e {
        StreamError::NotFound => ApiError::not_found(format!("no job '{id}'")),
        StreamError::AlreadyTaken => ApiError::new(
            StatusCode::CONFLICT,
            "stream_taken",
            format!(
                "the events of job '{id}' were already taken by a client (each job has one \
                 stream, which is not reopened); GET /v1/jobs/{id} shows its state"
            ),
        ),
    })?;
    Ok(JobEvents::new(
        worker.jobs.clone(),
        id.to_string(),
        receiver,
    ))
}

/// Keep-alive comments for every SSE response of the API.
pub fn keep_alive() -> KeepAlive {
    KeepAlive::new().interval(KEEP_ALIVE)
}

/// A job's events up to and including the terminal one. Dropped before that, it cancels the job.
pub struct JobEvents {
    jobs: Arc<Jobs>,
    id: String,
    receiver: EventReceiver,
    ended: bool,
}

impl JobEvents {
    /// The events of job `id`, read from `receiver`.
    pub fn new(jobs: Arc<Jobs>, id: String, receiver: EventReceiver) -> Self {
        Self {
            jobs,
            id,
            receiver,
            ended: false,
        }
    }

    /// The next event; `None` after the terminal one.
    pub async fn next(&mut self) -> Option<JobEvent> {
        if self.ended {
            return None;
        }
        let event = self.receiver.recv().await?;
        self.ended = event.is_terminal();
        Some(event)
    }
}

impl Drop for JobEvents {
    fn drop(&mut self) {
        if !self.ended {
            tracing::info!(job = self.id, "client went away; cancelling the job");
            self.jobs.cancel(&self.id);
        }
    }
}

/// Jobs and their events for the host's unit tests.
#[cfg(test)]
pub mod testing {
    use super::JobEvents;
    use crate::jobs::{Jobs, QueuedJob};
    use rbee_plugin_api::Job;
    use std::sync::Arc;

    /// A job of `jobs`, taken by an engine thread: the engine's end (to send its events and see
    /// its stop flag) and the client's end.
    pub fn running_job(jobs: &Arc<Jobs>) -> (QueuedJob, JobEvents) {
        let (id, _) = jobs
            .submit(Job::new("", "text-generation", "{}"))
            .expect("room in the queue");
        let running = jobs.next_blocking().expect("the job just queued");
        let receiver = jobs.take_stream(&id).expect("an untaken stream");
        (running, JobEvents::new(jobs.clone(), id, receiver))
    }
}
