//! The job registry and the bounded queue between HTTP handlers and the engine threads.

use super::queue::{EventReceiver, EventSender, event_queue};
use super::{event::JobEvent, stop::StopFlag};
use crate::services::metrics::Metrics;
use rbee_plugin_api::{Job, tasks::stop_reason};
use serde::Serialize;
use serde_json::json;
use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::Instant,
};

/// How many finished jobs are remembered for `GET /v1/jobs/{id}`.
const FINISHED_KEPT: usize = 1024;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting in the queue.
    Queued,
    /// Executing on an engine thread.
    Running,
    /// Ended normally.
    Completed,
    /// Ended by cancellation.
    Cancelled,
    /// Ended with an error.
    Failed,
}

/// A job as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// The id.
    pub job_id: String,
    /// The task.
    pub task: String,
    /// Where it is.
    pub state: JobState,
    /// Jobs ahead of it, while queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// Why it ended, once ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// The error, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

/// A job handed to an engine thread.
#[derive(Debug)]
pub struct QueuedJob {
    /// The job, as the plugin sees it.
    pub job: Job,
    /// Set when the job is cancelled or expires.
    pub stop: StopFlag,
    /// Where its events go.
    pub events: EventSender,
    /// When it was submitted.
    pub submitted: Instant,
    /// Whether the worker has checked it (a job queued while its model loads is checked by
    /// the engine thread, before it runs).
    pub validated: bool,
}

/// Why a job was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full.
    QueueFull,
    /// The host is shutting down.
    Draining,
}

/// Why a job's stream cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// No such job.
    NotFound,
    /// Another client already holds the stream.
    AlreadyTaken,
}

struct Record {
    task: String,
    submitted: Instant,
    state: JobState,
    stop: StopFlag,
    events: EventSender,
    stream: Option<EventReceiver>,
    job: Option<Job>,
    stop_reason: Option<String>,
    error: Option<serde_json::Value>,
    validated: bool,
}

struct Inner {
    records: HashMap<String, Record>,
    queue: VecDeque<String>,
    finished: VecDeque<String>,
    running: HashSet<String>,
    draining: bool,
    closed: bool,
    /// The engine threads are told to exit (the worker is unloading); queued jobs stay.
    parked: bool,
    /// When a job was last submitted or ended.
    last_activity: Instant,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            records: HashMap::new(),
            queue: VecDeque::new(),
            finished: VecDeque::new(),
            running: HashSet::new(),
            draining: false,
            closed: false,
            parked: false,
            last_activity: Instant::now(),
        }
    }
}

/// All jobs: the queue, the running ones, and recently finished ones.
pub struct Jobs {
    inner: Mutex<Inner>,
    wake: Condvar,
    capacity: usize,
    metrics: Option<Arc<Metrics>>,
}

impl Jobs {
    /// An empty registry whose queue holds at most `capacity` waiting jobs.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::default(),
            wake: Condvar::new(),
            capacity,
            metrics: None,
        }
    }

    /// The registry, counting jobs that end while queued (cancelled, expired, drained) in
    /// `metrics` (the engine counts the ones that ran).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a validated job under a new id; returns the id and how many jobs wait ahead of it.
    pub fn submit(&self, job: Job) -> Result<(String, usize), SubmitError> {
        self.queue(job, true)
    }

    /// Queues a job the worker has not checked yet (its model is not loaded), with `note` as
    /// its stream's first event; the engine thread checks it before running it.
    pub fn submit_unvalidated(
        &self,
        job: Job,
        note: &JobEvent,
    ) -> Result<(String, usize), SubmitError> {
        let queued = self.queue(job, false)?;
        if let Some(record) = self.lock().records.get(&queued.0) {
            record.events.send(note.clone(), || true);
        }
        Ok(queued)
    }

    fn queue(&self, mut job: Job, validated: bool) -> Result<(String, usize), SubmitError> {
        let mut inner = self.lock();
        if inner.draining {
            return Err(SubmitError::Draining);
        }
        if inner.queue.len() >= self.capacity {
            return Err(SubmitError::QueueFull);
        }
        let id = format!("job-{}", uuid::Uuid::new_v4().simple());
        let (events, stream) = event_queue();
        job.id = id.as_str().into();
        let record = Record {
            task: job.task.to_string(),
            submitted: Instant::now(),
            state: JobState::Queued,
            stop: StopFlag::default(),
            events,
            stream: Some(stream),
            job: Some(job),
            stop_reason: None,
            error: None,
            validated,
        };
        inner.last_activity = Instant::now();
        inner.records.insert(id.clone(), record);
        inner.queue.push_back(id.clone());
        let position = inner.queue.len() - 1;
        self.wake.notify_all();
        Ok((id, position))
    }

    /// Blocks until a job is queued and hands it to an engine thread, marked running; `None`
    /// once the registry is closed and the queue is empty, or the engines are parked. Several
    /// engine threads may wait.
    pub fn next_blocking(&self) -> Option<QueuedJob> {
        let mut inner = self.lock();
        loop {
            if inner.parked {
                return None;
            }
            if let Some(id) = inner.queue.pop_front() {
                let record = inner.records.get_mut(&id)?;
                record.state = JobState::Running;
                let job = QueuedJob {
                    job: record.job.take()?,
                    stop: record.stop.clone(),
                    events: record.events.clone(),
                    submitted: record.submitted,
                    validated: record.validated,
                };
                inner.running.insert(id);
                return Some(job);
            }
            if inner.closed {
                return None;
            }
            inner = self.wake.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Records how a job ended, from its terminal event.
    pub fn finish(&self, id: &str, terminal: &JobEvent) {
        let mut inner = self.lock();
        inner.running.remove(id);
        inner.last_activity = Instant::now();
        Self::record_end(&mut inner, id, terminal);
        self.wake.notify_all();
    }

    fn record_end(inner: &mut Inner, id: &str, terminal: &JobEvent) {
        let Some(record) = inner.records.get_mut(id) else {
            return;
        };
        match terminal {
            JobEvent::End { stop_reason, .. } => {
                record.state = match stop_reason.as_str() {
                    stop_reason::CANCELLED | stop_reason::DEADLINE_EXCEEDED => JobState::Cancelled,
                    _ => JobState::Completed,
                };
                record.stop_reason = Some(stop_reason.clone());
            }
            JobEvent::Error { code, message } => {
                record.state = JobState::Failed;
                record.error = Some(json!({"code": code, "message": message}));
            }
            _ => return,
        }
        inner.finished.push_back(id.to_string());
        while inner.finished.len() > FINISHED_KEPT {
            if let Some(old) = inner.finished.pop_front() {
                inner.records.remove(&old);
            }
        }
    }

    /// Whether job `id` exists and nobody has taken its event stream yet.
    pub fn stream_unopened(&self, id: &str) -> bool {
        self.lock()
            .records
            .get(id)
            .is_some_and(|record| record.stream.is_some())
    }

    /// Takes the event stream of a job; only one client may hold it.
    pub fn take_stream(&self, id: &str) -> Result<EventReceiver, StreamError> {
        let mut inner = self.lock();
        let record = inner.records.get_mut(id).ok_or(StreamError::NotFound)?;
        record.stream.take().ok_or(StreamError::AlreadyTaken)
    }

    /// Cancels a job: a queued one ends at once, a running one is told to stop.
    /// Returns the job's view after the request, or `None` if there is no such job.
    pub fn cancel(&self, id: &str) -> Option<JobView> {
        self.stop(id, StopFlag::cancel)
    }

    /// Ends a job whose deadline passed, like [`Jobs::cancel`] but with stop reason
    /// `deadline_exceeded`. A job that already ended is left alone.
    pub fn expire(&self, id: &str) -> Option<JobView> {
        self.stop(id, StopFlag::expire)
    }

    fn stop(&self, id: &str, how: fn(&StopFlag)) -> Option<JobView> {
        let mut inner = self.lock();
        let record = inner.records.get(id)?;
        if matches!(record.state, JobState::Queued | JobState::Running) {
            how(&record.stop);
        }
        if record.state == JobState::Queued {
            self.end_queued(&mut inner, id);
        }
        Self::view_of(&inner, id)
    }

    fn end_queued(&self, inner: &mut Inner, id: &str) {
        inner.queue.retain(|queued| queued != id);
        let Some(record) = inner.records.get(id) else {
            return;
        };
        let stop_reason = record.stop.stop_reason();
        if let Some(metrics) = &self.metrics {
            let waited = record.submitted.elapsed().as_secs_f64();
            metrics.job_finished(stop_reason, waited, 0, 0.0);
        }
        let terminal = JobEvent::End {
            stop_reason: stop_reason.into(),
            details: json!({}),
        };
        record.events.send(terminal.clone(), || true);
        Self::record_end(inner, id, &terminal);
    }

    /// The job's view, if it is known.
    pub fn view(&self, id: &str) -> Option<JobView> {
        Self::view_of(&self.lock(), id)
    }

    fn view_of(inner: &Inner, id: &str) -> Option<JobView> {
        let record = inner.records.get(id)?;
        Some(JobView {
            job_id: id.to_string(),
            task: record.task.clone(),
            state: record.state,
            queue_position: inner.queue.iter().position(|queued| queued == id),
            stop_reason: record.stop_reason.clone(),
            error: record.error.clone(),
        })
    }

    /// Jobs waiting and jobs running.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.queue.len(), inner.running.len())
    }

    /// Starts draining: new jobs are refused and queued ones are cancelled.
    pub fn drain(&self) {
        let mut inner = self.lock();
        inner.draining = true;
        for id in inner.queue.clone() {
            if let Some(record) = inner.records.get(&id) {
                record.stop.cancel();
            }
            self.end_queued(&mut inner, &id);
        }
    }

    /// Asks every running job to stop.
    pub fn cancel_running(&self) {
        let inner = self.lock();
        for record in inner.running.iter().filter_map(|id| inner.records.get(id)) {
            record.stop.cancel();
        }
    }

    /// How long nothing has been queued or running; `None` while something is.
    pub fn idle_for(&self) -> Option<std::time::Duration> {
        let inner = self.lock();
        let idle = inner.queue.is_empty() && inner.running.is_empty();
        idle.then(|| inner.last_activity.elapsed())
    }

    /// Tells the engine threads to exit once their current job ends; queued jobs stay for the
    /// next engines.
    pub fn park_engines(&self) {
        self.lock().parked = true;
        self.wake.notify_all();
    }

    /// Lets engine threads take jobs again, before new ones start; this counts as activity,
    /// so that a model just loaded is not idle.
    pub fn unpark_engines(&self) {
        let mut inner = self.lock();
        inner.parked = false;
        inner.last_activity = Instant::now();
    }

    /// Sends `event` to every queued job's stream, dropping it where the stream is full (load
    /// progress: a later one follows).
    pub fn tell_queued(&self, event: &JobEvent) {
        let inner = self.lock();
        for record in inner.queue.iter().filter_map(|id| inner.records.get(id)) {
            record.events.send(event.clone(), || true);
        }
    }

    /// Ends every queued job with the error `code` (their model failed to load).
    pub fn fail_queued(&self, code: &str, message: &str) {
        let mut inner = self.lock();
        let terminal = JobEvent::Error {
            code: code.into(),
            message: message.into(),
        };
        for id in std::mem::take(&mut inner.queue) {
            if let Some(record) = inner.records.get(&id) {
                if let Some(metrics) = &self.metrics {
                    metrics.job_finished(
                        "failed",
                        record.submitted.elapsed().as_secs_f64(),
                        0,
                        0.0,
                    );
                }
                record.events.send(terminal.clone(), || true);
            }
            Self::record_end(&mut inner, &id, &terminal);
        }
    }

    /// Lets the engine threads exit once the queue is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::metrics::MetricsRegistry;

    fn echo(params: &str) -> Job {
        Job::new("", "echo", params)
    }

    #[test]
    fn a_full_queue_refuses_jobs() {
        let jobs = Jobs::new(2);
        assert_eq!(jobs.submit(echo("{}")).unwrap().1, 0);
        assert_eq!(jobs.submit(echo("{}")).unwrap().1, 1);
        assert_eq!(jobs.submit(echo("{}")), Err(SubmitError::QueueFull));
        assert_eq!(jobs.counts(), (2, 0));
    }

    #[test]
    fn jobs_that_end_while_queued_are_counted_by_outcome() {
        let registry = MetricsRegistry::new(false);
        let metrics = Arc::new(registry.for_model("tiny"));
        let jobs = Jobs::new(8).with_metrics(metrics.clone());
        let ids: Vec<String> = (0..4).map(|_| jobs.submit(echo("{}")).unwrap().0).collect();
        jobs.cancel(&ids[0]);
        jobs.expire(&ids[1]);
        jobs.fail_queued("model_load_failed", "no weights");
        let text = registry.render(&[]);
        for (outcome, count) in [("cancelled", 1), ("deadline_exceeded", 1), ("failed", 2)] {
            let line =
                format!(r#"rbee_jobs_total{{model_name="tiny",outcome="{outcome}"}} {count}"#);
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn parked_engines_leave_the_queue_for_the_next_ones_and_queued_jobs_hear_of_the_load() {
        let jobs = Jobs::new(4);
        let loading = |progress| JobEvent::Custom {
            name: "loading".into(),
            data: json!({"progress": progress}),
        };
        let (id, _) = jobs.submit_unvalidated(echo("{}"), &loading(0.0)).unwrap();
        let mut stream = jobs.take_stream(&id).unwrap();
        jobs.tell_queued(&loading(0.5));
        assert_eq!(stream.try_recv().unwrap(), loading(0.0));
        assert_eq!(stream.try_recv().unwrap(), loading(0.5));
        assert!(jobs.idle_for().is_none(), "a queued job is not idle");
        jobs.park_engines();
        assert!(jobs.next_blocking().is_none());
        jobs.unpark_engines();
        let next = jobs.next_blocking().unwrap();
        assert!(!next.validated);
        jobs.finish(
            &id,
            &JobEvent::End {
                stop_reason: "completed".into(),
                details: json!({}),
            },
        );
        assert!(jobs.idle_for().is_some());
    }

    #[test]
    fn cancelling_a_queued_job_ends_its_stream() {
        let jobs = Jobs::new(4);
        let (id, _) = jobs.submit(echo("{}")).unwrap();
        let mut stream = jobs.take_stream(&id).unwrap();
        assert_eq!(jobs.cancel(&id).unwrap().state, JobState::Cancelled);
        assert!(
            matches!(stream.try_recv(), Ok(JobEvent::End { stop_reason, .. }) if stop_reason == "cancelled")
        );
        assert_eq!(jobs.counts(), (0, 0));
        assert_eq!(
            jobs.take_stream(&id).unwrap_err(),
            StreamError::AlreadyTaken
        );
    }

    #[test]
    fn the_engine_takes_jobs_in_order_and_records_their_end() {
        let jobs = Jobs::new(4);
        let (first, _) = jobs.submit(echo("1")).unwrap();
        let (second, position) = jobs.submit(echo("2")).unwrap();
        assert_eq!(position, 1);
        let job = jobs.next_blocking().unwrap();
        assert_eq!(
            (job.job.id.as_str(), job.job.params_json.as_str()),
            (first.as_str(), "1")
        );
        assert_eq!(jobs.view(&first).unwrap().state, JobState::Running);
        assert_eq!(jobs.view(&second).unwrap().queue_position, Some(0));
        jobs.finish(
            &first,
            &JobEvent::Error {
                code: "x".into(),
                message: "y".into(),
            },
        );
        assert_eq!(jobs.view(&first).unwrap().state, JobState::Failed);
    }

    #[test]
    fn several_engine_threads_run_jobs_at_once_and_all_are_counted() {
        let jobs = Jobs::new(4);
        let (first, _) = jobs.submit(echo("1")).unwrap();
        let (second, _) = jobs.submit(echo("2")).unwrap();
        let running = [jobs.next_blocking().unwrap(), jobs.next_blocking().unwrap()];
        assert_eq!(jobs.counts(), (0, 2));
        jobs.cancel_running();
        assert!(running.iter().all(|job| job.stop.is_set()));
        let end = JobEvent::End {
            stop_reason: "cancelled".into(),
            details: json!({}),
        };
        jobs.finish(&first, &end);
        assert_eq!(jobs.counts(), (0, 1));
        jobs.finish(&second, &end);
        assert_eq!(jobs.counts(), (0, 0));
        assert_eq!(jobs.view(&second).unwrap().state, JobState::Cancelled);
    }

    #[test]
    fn an_expired_job_ends_with_deadline_exceeded_and_a_finished_one_is_left_alone() {
        let jobs = Jobs::new(4);
        let (id, _) = jobs.submit(echo("{}")).unwrap();
        let mut stream = jobs.take_stream(&id).unwrap();
        assert_eq!(
            jobs.expire(&id).unwrap().stop_reason.as_deref(),
            Some("deadline_exceeded")
        );
        assert!(
            matches!(stream.try_recv(), Ok(JobEvent::End { stop_reason, .. }) if stop_reason == "deadline_exceeded")
        );
        jobs.cancel(&id);
        assert_eq!(
            jobs.view(&id).unwrap().stop_reason.as_deref(),
            Some("deadline_exceeded")
        );
    }

    #[test]
    fn draining_cancels_the_queue_and_refuses_new_jobs() {
        let jobs = Jobs::new(4);
        let (id, _) = jobs.submit(echo("{}")).unwrap();
        jobs.drain();
        assert_eq!(jobs.view(&id).unwrap().state, JobState::Cancelled);
        assert_eq!(jobs.submit(echo("{}")), Err(SubmitError::Draining));
        jobs.close();
        assert!(jobs.next_blocking().is_none());
    }
}
