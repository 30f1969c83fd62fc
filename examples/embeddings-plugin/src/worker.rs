//! The loaded worker: validates `embedding` jobs and runs them batch by batch.

use crate::{model::Embedder, params::EmbeddingParams};
use rbee_plugin_api::{
    EventSinkExt, Job, JobEnd, JobSink, PluginError, PluginWorker, WorkerStatus,
    tasks::embedding::{TASK, end},
};

/// Texts embedded in one forward pass: cancellation is noticed between batches.
pub const BATCH: usize = 16;

/// A worker holding one loaded embedding model.
pub struct EmbeddingsWorker {
    model_name: String,
    model: Embedder,
}

impl EmbeddingsWorker {
    /// A worker for `model`, loaded from `model_name`.
    pub fn new(model_name: String, model: Embedder) -> Self {
        Self { model_name, model }
    }
}

impl PluginWorker for EmbeddingsWorker {
    fn validate(&self, job: &Job) -> Result<(), PluginError> {
        if job.task != TASK {
            return Err(PluginError::unsupported_task(&job.task, &[TASK]));
        }
        EmbeddingParams::parse(&job.params_json).map(drop)
    }

    fn execute(&self, job: Job, sink: JobSink) -> Result<JobEnd, PluginError> {
        let params = EmbeddingParams::parse(&job.params_json)?;
        let mut prompt_tokens = 0;
        for (batch, texts) in params.inputs.chunks(BATCH).enumerate() {
            if sink.is_cancelled() {
                return Ok(JobEnd::cancelled());
            }
            let embedded = self.model.embed(texts, params.normalize)?;
            prompt_tokens += embedded.tokens;
            for (offset, vector) in embedded.vectors.iter().enumerate() {
                let index = (batch * BATCH + offset) as u64;
                if sink.embedding(index, vector.as_slice().into()).is_stop() {
                    return Ok(JobEnd::cancelled());
                }
            }
        }
        let details = serde_json::json!({
            (end::PROMPT_TOKENS): prompt_tokens,
            "dimensions": self.model.dimensions(),
        });
        Ok(JobEnd::completed().with_details(details.to_string()))
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            model: self.model_name.as_str().into(),
            memory_bytes: self.model.weight_bytes(),
            cache_usage_ratio: 0.0,
        }
    }
}
