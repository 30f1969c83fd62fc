//! Reading a job's events to its end, for answers given in one response (OpenAI's
//! non-streaming routes and `POST /v1/jobs?wait=true`).

use super::stream::JobEvents;
use crate::jobs::event::{ArtifactData, JobEvent};
use serde_json::{Map, Value, json};

/// Everything a job produced.
#[derive(Default)]
pub struct Collected {
    /// The text events, joined.
    pub text: String,
    /// The embeddings, by input index.
    pub embeddings: Vec<(u64, Vec<f32>)>,
    /// The finished files.
    pub artifacts: Vec<ArtifactData>,
    /// Custom events, in order: name and data.
    pub custom: Vec<(String, Value)>,
    /// Why the job ended.
    pub stop_reason: String,
    /// The `end` event's details.
    pub details: Value,
}

/// A job that ended with an `error` event: its code and message.
pub struct JobFailed {
    /// The error code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// Reads a job to its end.
pub async fn collect(mut events: JobEvents) -> Result<Collected, JobFailed> {
    let mut collected = Collected::default();
    while let Some(event) = events.next().await {
        match event {
            JobEvent::Token { text, .. } => collected.text.push_str(&text),
            JobEvent::Embedding { index, vector } => collected.embeddings.push((index, vector)),
            JobEvent::Artifact(artifact) => collected.artifacts.push(artifact),
            JobEvent::Custom { name, data } => collected.custom.push((name, data)),
            JobEvent::End {
                stop_reason,
                details,
            } => {
                collected.stop_reason = stop_reason;
                collected.details = details;
            }
            JobEvent::Error { code, message } => return Err(JobFailed { code, message }),
            _ => {}
        }
    }
    Ok(collected)
}

impl Collected {
    /// The native API's one-response answer: the `end` event's fields, and what the job
    /// produced (only the kinds it produced): `text`, `embeddings`, `artifacts` (base64) and
    /// `events` (custom events by name).
    pub fn to_json(&self, job_id: &str) -> Value {
        let mut answer = match &self.details {
            Value::Object(details) => details.clone(),
            _ => Map::new(),
        };
        answer.insert("job_id".into(), job_id.into());
        answer.insert("stop_reason".into(), self.stop_reason.clone().into());
        if !self.text.is_empty() {
            answer.insert("text".into(), self.text.clone().into());
        }
        if !self.embeddings.is_empty() {
            let embeddings = self
                .embeddings
                .iter()
                .map(|(index, vector)| json!({"index": index, "vector": vector}));
            answer.insert("embeddings".into(), embeddings.collect());
        }
        if !self.artifacts.is_empty() {
            let artifacts = self.artifacts.iter().map(ArtifactData::to_json);
            answer.insert("artifacts".into(), artifacts.collect());
        }
        if !self.custom.is_empty() {
            let mut events = Map::new();
            for (name, data) in &self.custom {
                let list = events.entry(name.clone()).or_insert_with(|| json!([]));
                if let Value::Array(list) = list {
                    list.push(data.clone());
                }
            }
            answer.insert("events".into(), Value::Object(events));
        }
        Value::Object(answer)
    }
}
