//! The engine thread: runs queued jobs one at a time on the loaded worker.
//!
//! Inference never runs on the async runtime: the worker blocks this thread, and events reach
//! HTTP clients through each job's channel.

use crate::{
    job_event::{JobEvent, parse_object},
    jobs::{Jobs, QueuedJob},
    metrics::Metrics,
    sink::HostSink,
};
use abi_stable::{sabi_trait::TD_Opaque, sabi_types::RMut, std_types::RResult};
use rbee_plugin_api::{EventSink_TO, Job, WorkerBox, error_code};
use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
    thread::JoinHandle,
};

/// Starts the engine thread; it exits when `jobs` is closed and empty.
pub fn spawn(worker: Arc<WorkerBox>, jobs: Arc<Jobs>, metrics: Arc<Metrics>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("rbee-engine".into())
        .spawn(move || {
            while let Some(job) = jobs.next_blocking() {
                let terminal = run(&worker, &job, &metrics);
                jobs.finish(&job.id, &terminal);
            }
        })
        .expect("spawning the engine thread")
}

/// Runs one job, sends its terminal event, and returns it.
fn run(worker: &WorkerBox, queued: &QueuedJob, metrics: &Arc<Metrics>) -> JobEvent {
    let mut sink = HostSink::new(
        &queued.id,
        queued.events.clone(),
        queued.stop.clone(),
        metrics.clone(),
        queued.submitted,
    );
    if queued.stop.is_set() {
        let terminal = JobEvent::End {
            stop_reason: queued.stop.stop_reason().into(),
            details: serde_json::json!({}),
        };
        sink.send(terminal.clone());
        return terminal;
    }
    let job = Job {
        id: queued.id.as_str().into(),
        task: queued.task.as_str().into(),
        params_json: queued.params_json.as_str().into(),
    };
    let started = std::time::Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        worker.execute(
            &job,
            EventSink_TO::from_ptr(RMut::new(&mut sink), TD_Opaque),
        )
    }));
    let terminal = match outcome {
        Ok(RResult::ROk(end)) => JobEvent::End {
            stop_reason: match end.stop_reason.as_str() {
                "cancelled" => queued.stop.stop_reason().to_string(),
                reason => reason.to_string(),
            },
            details: parse_object(end.details_json.as_str()),
        },
        Ok(RResult::RErr(error)) => JobEvent::Error {
            code: error.code.into_string(),
            message: error.message.into_string(),
        },
        Err(_) => JobEvent::Error {
            code: error_code::PANIC.into(),
            message: "the worker panicked".into(),
        },
    };
    let outcome = match &terminal {
        JobEvent::End { stop_reason, .. } if stop_reason == "cancelled" => "cancelled",
        JobEvent::End { stop_reason, .. } if stop_reason == "deadline_exceeded" => {
            "deadline_exceeded"
        }
        JobEvent::End { .. } => "completed",
        _ => "failed",
    };
    let running = started.elapsed().as_secs_f64();
    metrics.job_finished(
        outcome,
        queued.submitted.elapsed().as_secs_f64(),
        sink.tokens(),
        running,
    );
    tracing::info!(
        job = queued.id,
        outcome,
        tokens = sink.tokens(),
        seconds = running,
        "job finished"
    );
    sink.send(terminal.clone());
    terminal
}
