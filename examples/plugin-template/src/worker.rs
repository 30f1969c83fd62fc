//! The worker: validates `uppercase` jobs and streams each word back as a text event.

use crate::params::UppercaseParams;
use rbee_plugin_api::{Job, JobEnd, JobSink, PluginError, PluginWorker, WorkerStatus};

/// The one task this worker serves: a task of its own, not one of `rbee_plugin_api::tasks`, so
/// it is reached through the native `POST /v1/jobs` only.
pub const TASK: &str = "uppercase";

/// The worker. A real one holds its loaded model; it must be `Send + Sync`, because the host
/// calls `validate` and `status` from other threads while a job executes.
pub struct UppercaseWorker;

impl PluginWorker for UppercaseWorker {
    fn validate(&self, job: &Job) -> Result<(), PluginError> {
        if job.task != TASK {
            return Err(PluginError::unsupported_task(&job.task, &[TASK]));
        }
        UppercaseParams::parse(&job.params_json).map(drop)
    }

    fn execute(&self, job: Job, sink: JobSink) -> Result<JobEnd, PluginError> {
        let params = UppercaseParams::parse(&job.params_json)?;
        let words: Vec<&str> = params.text.split_inclusive(' ').collect();
        for (index, word) in words.iter().enumerate() {
            if sink
                .text(index as u64, word.to_uppercase().as_str().into())
                .is_stop()
            {
                return Ok(JobEnd::cancelled());
            }
        }
        Ok(JobEnd::completed().with_details(format!("{{\"words\":{}}}", words.len())))
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            model: "none".into(),
            memory_bytes: 0,
            cache_usage_ratio: 0.0,
        }
    }
}
