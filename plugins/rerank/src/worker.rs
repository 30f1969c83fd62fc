//! The loaded worker: validates `rerank` jobs and scores their documents batch by batch, one
//! `score` event per document.

use crate::{model::Reranker, options::Kind, params::RerankParams};
use rbee_plugin_api::{
    EventSinkExt, Job, JobEnd, JobSink, PluginError, PluginWorker, WorkerStatus,
    tasks::rerank::{SCORE, TASK, end, score},
};
use serde_json::json;

/// A worker holding one loaded reranker.
pub struct RerankWorker {
    model_name: String,
    model: Reranker,
}

impl RerankWorker {
    /// A worker for `model`, loaded from `model_name`.
    pub fn new(model_name: String, model: Reranker) -> Self {
        Self { model_name, model }
    }

    fn params(&self, job: &Job) -> Result<RerankParams, PluginError> {
        if job.task != TASK {
            return Err(PluginError::unsupported_task(&job.task, &[TASK]));
        }
        let params = RerankParams::parse(&job.params_json)?;
        self.model.check_query(&params.query)?;
        Ok(params)
    }
}

impl PluginWorker for RerankWorker {
    fn validate(&self, job: &Job) -> Result<(), PluginError> {
        self.params(job).map(drop)
    }

    fn execute(&self, job: Job, sink: JobSink) -> Result<JobEnd, PluginError> {
        let params = self.params(&job)?;
        let mut emit = |index: usize, relevance: f32| {
            let data = json!({(score::INDEX): index, (score::RELEVANCE_SCORE): relevance});
            !sink
                .custom(SCORE.into(), data.to_string().as_str().into())
                .is_stop()
        };
        let scored = self.model.score(
            &params.query,
            &params.documents,
            &|| sink.is_cancelled(),
            &mut emit,
        )?;
        if scored.stopped {
            return Ok(JobEnd::cancelled());
        }
        let kind = match self.model.kind() {
            Kind::CrossEncoder => "cross-encoder",
            Kind::BiEncoder => "bi-encoder",
        };
        let details = json!({
            (end::PROMPT_TOKENS): scored.tokens,
            (end::TRUNCATED): scored.truncated,
            "kind": kind,
            "window": self.model.window(),
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
