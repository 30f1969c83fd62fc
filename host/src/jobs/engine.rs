//! The engine threads: run queued jobs on the loaded worker, as many at once as it allows.
//!
//! Inference never runs on the async runtime: each engine thread blocks in the worker's
//! `execute`, and events reach HTTP clients through each job's bounded channel.

use super::{
    Jobs, QueuedJob,
    event::{JobEvent, parse_object},
    sink::HostSink,
};
use crate::services::metrics::Metrics;
use abi_stable::std_types::RResult;
use rbee_plugin_api::{WorkerBox, error_code, tasks::stop_reason};
use serde_json::json;
use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
    thread::JoinHandle,
};

/// How many jobs run at once: what the worker can do, capped by `--parallel` (0: no cap).
pub fn concurrency(worker_max: u32, parallel: u32) -> usize {
    let worker_max = worker_max.max(1);
    match parallel {
        0 => worker_max,
        cap => worker_max.min(cap),
    }
    .try_into()
    .unwrap_or(1)
}

/// Starts `threads` engine threads; they exit when `jobs` is closed and empty.
pub fn spawn(
    worker: Arc<WorkerBox>,
    jobs: Arc<Jobs>,
    metrics: Arc<Metrics>,
    threads: usize,
) -> Vec<JoinHandle<()>> {
    (0..threads)
        .map(|slot| {
            let (worker, jobs, metrics) = (worker.clone(), jobs.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("rbee-engine-{slot}"))
                .spawn(move || {
                    while let Some(job) = jobs.next_blocking() {
                        run(&worker, job, &jobs, &metrics);
                    }
                })
                .expect("spawning an engine thread")
        })
        .collect()
}

/// Runs one job, records how it ended, then sends its terminal event (so a client that has
/// seen the end finds the job ended too).
fn run(worker: &WorkerBox, queued: QueuedJob, jobs: &Jobs, metrics: &Arc<Metrics>) {
    let QueuedJob {
        job,
        stop,
        events,
        submitted,
        validated,
    } = queued;
    let id = job.id.to_string();
    let sink = HostSink::new(&id, events, stop.clone(), metrics.clone(), submitted);
    if stop.is_set() {
        let terminal = JobEvent::End {
            stop_reason: stop.stop_reason().into(),
            details: json!({}),
        };
        jobs.finish(&id, &terminal);
        sink.close(terminal);
        return;
    }
    let started = std::time::Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| match validated {
        true => worker.execute(job, sink.handle()),
        false => match worker.validate(&job) {
            RResult::ROk(()) => worker.execute(job, sink.handle()),
            RResult::RErr(error) => RResult::RErr(error),
        },
    }));
    let terminal = match outcome {
        Ok(RResult::ROk(end)) => JobEvent::End {
            stop_reason: match end.stop_reason.as_str() {
                stop_reason::CANCELLED => stop.stop_reason().to_string(),
                reason => reason.to_string(),
            },
            details: parse_object(end.details_json.as_str()).unwrap_or_else(|| json!({})),
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
        JobEvent::End { stop_reason, .. } => match stop_reason.as_str() {
            stop_reason::CANCELLED | stop_reason::DEADLINE_EXCEEDED => stop_reason.as_str(),
            _ => "completed",
        },
        _ => "failed",
    };
    let running = started.elapsed().as_secs_f64();
    metrics.job_finished(
        outcome,
        submitted.elapsed().as_secs_f64(),
        sink.tokens(),
        running,
    );
    tracing::info!(
        job = id,
        outcome,
        tokens = sink.tokens(),
        seconds = running,
        "job finished"
    );
    jobs.finish(&id, &terminal);
    sink.close(terminal);
}

#[cfg(test)]
mod tests {
    use super::concurrency;

    #[test]
    fn parallel_caps_what_the_worker_can_do_and_never_raises_it() {
        assert_eq!(concurrency(4, 0), 4);
        assert_eq!(concurrency(4, 2), 2);
        assert_eq!(concurrency(1, 8), 1);
        assert_eq!(concurrency(0, 0), 1);
    }
}
