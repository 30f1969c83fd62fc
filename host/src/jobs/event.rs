//! The events of a job as the host carries them, and their wire form (SSE event name + JSON).

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use rbee_plugin_api::tasks::event;
use serde_json::{Map, Value, json};

/// A produced file or preview, copied out of the plugin's memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactData {
    /// IANA media type.
    pub media_type: String,
    /// The file's bytes.
    pub data: Vec<u8>,
    /// Details from the plugin (a JSON object, or null).
    pub metadata: Value,
}

impl ArtifactData {
    /// Its wire form: the metadata's fields, `media_type`, and `data` in base64.
    pub fn to_json(&self) -> Value {
        let mut data = object(&self.metadata);
        data.insert("media_type".into(), self.media_type.clone().into());
        data.insert("data".into(), BASE64.encode(&self.data).into());
        Value::Object(data)
    }
}

/// One event of a job's stream. Exactly one terminal event ([`JobEvent::End`] or
/// [`JobEvent::Error`]) ends every stream.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// The job began.
    Started(Value),
    /// A piece of text.
    Token {
        /// Its position in the output.
        index: u64,
        /// The text.
        text: String,
        /// The log probabilities of the tokens that make it, when the client asked for them:
        /// the `content` list of the plugin's `token_logprobs` event sent just before it.
        logprobs: Option<Value>,
    },
    /// A step of `total` done.
    Progress {
        /// Steps done.
        step: u64,
        /// Steps in all.
        total: u64,
    },
    /// An intermediate picture of the output.
    Preview(ArtifactData),
    /// A finished output file.
    Artifact(ArtifactData),
    /// An embedding vector.
    Embedding {
        /// Which input it belongs to.
        index: u64,
        /// The vector.
        vector: Vec<f32>,
    },
    /// Figures from the plugin.
    Metrics(Value),
    /// An event kind the host does not name.
    Custom {
        /// Its SSE event name.
        name: String,
        /// Its payload.
        data: Value,
    },
    /// The job ended (completed, stopped or cancelled).
    End {
        /// Why it ended.
        stop_reason: String,
        /// Details merged into the event (usage, speeds, ...).
        details: Value,
    },
    /// The job failed.
    Error {
        /// Machine-readable code.
        code: String,
        /// What went wrong.
        message: String,
    },
}

/// The longest custom event name accepted.
const CUSTOM_NAME_MAX: usize = 64;

impl JobEvent {
    /// The SSE name of a plugin's custom event: `None` unless it is a word (letters, digits,
    /// `-`, `_`, `.`; at most 64), and a name the host uses itself gets an `x-` prefix.
    pub fn custom_name(name: &str) -> Option<String> {
        let word = !name.is_empty()
            && name.len() <= CUSTOM_NAME_MAX
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        match (word, event::RESERVED.contains(&name)) {
            (false, _) => None,
            (true, true) => Some(format!("x-{name}")),
            (true, false) => Some(name.to_string()),
        }
    }

    /// The SSE event name.
    pub fn name(&self) -> &str {
        match self {
            JobEvent::Started(_) => event::STARTED,
            JobEvent::Token { .. } => event::TOKEN,
            JobEvent::Progress { .. } => event::PROGRESS,
            JobEvent::Preview(_) => event::PREVIEW,
            JobEvent::Artifact(_) => event::ARTIFACT,
            JobEvent::Embedding { .. } => event::EMBEDDING,
            JobEvent::Metrics(_) => event::METRICS,
            JobEvent::Custom { name, .. } => name,
            JobEvent::End { .. } => event::END,
            JobEvent::Error { .. } => event::ERROR,
        }
    }

    /// Whether this event ends the stream.
    pub fn is_terminal(&self) -> bool {
        matches!(self, JobEvent::End { .. } | JobEvent::Error { .. })
    }

    /// The JSON payload.
    pub fn data(&self) -> Value {
        match self {
            JobEvent::Started(details) | JobEvent::Metrics(details) => details.clone(),
            JobEvent::Token {
                index,
                text,
                logprobs,
            } => {
                let mut data = json!({"index": index, "text": text});
                if let Some(logprobs) = logprobs {
                    data["logprobs"] = logprobs.clone();
                }
                data
            }
            JobEvent::Progress { step, total } => json!({"step": step, "total": total}),
            JobEvent::Preview(artifact) | JobEvent::Artifact(artifact) => artifact.to_json(),
            JobEvent::Embedding { index, vector } => json!({"index": index, "vector": vector}),
            JobEvent::Custom { data, .. } => data.clone(),
            JobEvent::End {
                stop_reason,
                details,
            } => {
                let mut data = object(details);
                data.insert("stop_reason".into(), stop_reason.clone().into());
                Value::Object(data)
            }
            JobEvent::Error { code, message } => json!({"code": code, "message": message}),
        }
    }
}

/// Parses a plugin's JSON object text; `None` if it is not one.
pub fn parse_object(text: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Some(value),
        _ => None,
    }
}

fn object(value: &Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_events_cannot_pose_as_terminal_ones_or_break_the_stream() {
        assert_eq!(JobEvent::custom_name("end").as_deref(), Some("x-end"));
        assert_eq!(JobEvent::custom_name("segment").as_deref(), Some("segment"));
        for bad in ["", "two\nlines", "data: x", &"long".repeat(20)] {
            assert_eq!(JobEvent::custom_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn end_carries_details_and_stop_reason() {
        let end = JobEvent::End {
            stop_reason: "eos".into(),
            details: json!({"completion_tokens": 3}),
        };
        assert_eq!(
            end.data(),
            json!({"stop_reason": "eos", "completion_tokens": 3})
        );
    }

    #[test]
    fn a_token_carries_logprobs_only_when_it_has_them() {
        let plain = JobEvent::Token {
            index: 2,
            text: "hi".into(),
            logprobs: None,
        };
        assert_eq!(plain.data(), json!({"index": 2, "text": "hi"}));
        let entries =
            json!([{"token": "hi", "logprob": -0.5, "bytes": [104, 105], "top_logprobs": []}]);
        let with = JobEvent::Token {
            index: 2,
            text: "hi".into(),
            logprobs: Some(entries.clone()),
        };
        assert_eq!(
            with.data(),
            json!({"index": 2, "text": "hi", "logprobs": entries})
        );
    }

    #[test]
    fn artifacts_are_base64_with_their_metadata() {
        let artifact = JobEvent::Artifact(ArtifactData {
            media_type: "image/png".into(),
            data: vec![1, 2, 3],
            metadata: json!({"seed": 7}),
        });
        assert_eq!(
            artifact.data(),
            json!({"media_type": "image/png", "data": "AQID", "seed": 7})
        );
    }
}
