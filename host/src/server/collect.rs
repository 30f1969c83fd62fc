//! Reading a job's events to its end, for answers given in one response (OpenAI's
//! non-streaming routes and `POST /v1/jobs?wait=true`).

use super::stream::JobEvents;
use crate::jobs::event::{ArtifactData, JobEvent};
use rbee_plugin_api::tasks::text_generation::TOOL_CALL;
use serde_json::{Map, Value, json};

/// Everything a job produced.
#[derive(Default)]
pub struct Collected {
    /// The text events, joined.
    pub text: String,
    /// The log probability entries the text events carried, in order.
    pub logprobs: Vec<Value>,
    /// The data of the `tool_call` events, in order (they are in `custom` too).
    pub tool_calls: Vec<Value>,
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
            JobEvent::Token { text, logprobs, .. } => {
                collected.text.push_str(&text);
                if let Some(Value::Array(entries)) = logprobs {
                    collected.logprobs.extend(entries);
                }
            }
            JobEvent::Embedding { index, vector } => collected.embeddings.push((index, vector)),
            JobEvent::Artifact(artifact) => collected.artifacts.push(artifact),
            JobEvent::Custom { name, data } => {
                if name == TOOL_CALL {
                    collected.tool_calls.push(data.clone());
                }
                collected.custom.push((name, data));
            }
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
    /// produced (only the kinds it produced): `text`, `logprobs` (the entries of its tokens),
    /// `embeddings`, `artifacts` (base64) and `events` (custom events by name).
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
        if !self.logprobs.is_empty() {
            answer.insert("logprobs".into(), self.logprobs.clone().into());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{jobs::Jobs, server::stream::testing::running_job};
    use std::sync::Arc;

    #[tokio::test]
    async fn logprobs_are_flattened_in_order_and_tool_calls_kept() {
        let jobs = Arc::new(Jobs::new(1));
        let (job, events) = running_job(&jobs);
        let token = |text: &str, logprobs: Option<Value>| JobEvent::Token {
            index: 0,
            text: text.into(),
            logprobs,
        };
        let call = json!({"index": 0, "id": "call_1", "name": "now", "arguments": "{}"});
        for event in [
            token("a", Some(json!([{"token": "a"}]))),
            token("bc", Some(json!([{"token": "b"}, {"token": "c"}]))),
            JobEvent::Custom {
                name: TOOL_CALL.into(),
                data: call.clone(),
            },
            JobEvent::End {
                stop_reason: "tool_calls".into(),
                details: json!({}),
            },
        ] {
            job.events.send(event, || false);
        }
        let collected = collect(events).await.ok().expect("an end");
        assert_eq!(collected.text, "abc");
        let tokens: Vec<&Value> = collected.logprobs.iter().map(|e| &e["token"]).collect();
        assert_eq!(tokens, ["a", "b", "c"]);
        assert_eq!(collected.tool_calls, std::slice::from_ref(&call));
        let answer = collected.to_json("job-1");
        assert_eq!(answer["logprobs"].as_array().map(Vec::len), Some(3));
        assert_eq!(answer["events"]["tool_call"], json!([call]));
    }
}
