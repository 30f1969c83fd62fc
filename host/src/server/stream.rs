//! `GET /v1/jobs/{id}/stream`: a job's events as Server-Sent Events, ending with `end` or
//! `error`. A client that goes away cancels its job.

use super::{ApiError, AppState};
use crate::{
    job_event::JobEvent,
    jobs::{Jobs, StreamError},
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::{Stream, stream};
use std::{convert::Infallible, sync::Arc, time::Duration};
use tokio::sync::mpsc::UnboundedReceiver;

/// How often an idle stream sends a comment line. Short, because a write is what reveals a
/// client that has gone away (during a long prefill no event may be due for a while).
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Opens the stream of job `id`; one client per job.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let receiver = state.jobs.take_stream(&id).map_err(|e| match e {
        StreamError::NotFound => ApiError::not_found(format!("no job '{id}'")),
        StreamError::AlreadyTaken => {
            ApiError::new(StatusCode::CONFLICT, "stream_taken", format!("another client is reading job '{id}'"))
        }
    })?;
    let watch = ClientWatch { jobs: state.jobs.clone(), id, ended: false };
    let events = stream::unfold((receiver, watch), next_event);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

async fn next_event(
    (mut receiver, mut watch): (UnboundedReceiver<JobEvent>, ClientWatch),
) -> Option<(Result<Event, Infallible>, (UnboundedReceiver<JobEvent>, ClientWatch))> {
    if watch.ended {
        return None;
    }
    let event = receiver.recv().await?;
    watch.ended = event.is_terminal();
    let sse = Event::default().event(event.name()).data(event.data().to_string());
    Some((Ok(sse), (receiver, watch)))
}

/// Cancels the job if the stream is dropped (the client went away) before its terminal event.
struct ClientWatch {
    jobs: Arc<Jobs>,
    id: String,
    ended: bool,
}

impl Drop for ClientWatch {
    fn drop(&mut self) {
        if !self.ended {
            tracing::info!(job = self.id, "client went away; cancelling the job");
            self.jobs.cancel(&self.id);
        }
    }
}
