//! The host's `EventSink`: turns a plugin's events into [`JobEvent`]s on the job's channel.

use crate::{
    job_event::{ArtifactData, JobEvent, parse_object},
    jobs::StopFlag,
    metrics::Metrics,
};
use abi_stable::std_types::{ROption, RSlice, RStr};
use rbee_plugin_api::{Artifact, EventSink, Flow};
use serde_json::json;
use std::{sync::Arc, time::Instant};
use tokio::sync::mpsc::UnboundedSender;

/// Receives one job's events on the engine thread.
pub struct HostSink {
    events: UnboundedSender<JobEvent>,
    stop: StopFlag,
    started: bool,
    job_id: String,
    metrics: Arc<Metrics>,
    submitted: Instant,
    first_output: bool,
    tokens: u64,
}

impl HostSink {
    /// A sink for job `job_id` (submitted at `submitted`), sending into `events`, stopping when
    /// `cancel` is set, counting into `metrics`.
    pub fn new(
        job_id: &str,
        events: UnboundedSender<JobEvent>,
        stop: StopFlag,
        metrics: Arc<Metrics>,
        submitted: Instant,
    ) -> Self {
        Self {
            events,
            stop,
            started: false,
            job_id: job_id.to_string(),
            metrics,
            submitted,
            first_output: false,
            tokens: 0,
        }
    }

    /// Text tokens streamed so far.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    fn count(&mut self, event: &JobEvent) {
        match event {
            JobEvent::Started(_) => return,
            JobEvent::Token { .. } => {
                self.tokens += 1;
                self.metrics.token();
            }
            JobEvent::Progress { .. } => self.metrics.step(),
            _ => {}
        }
        if !self.first_output && !event.is_terminal() {
            self.first_output = true;
            self.metrics
                .first_event(self.submitted.elapsed().as_secs_f64());
        }
    }

    /// Sends an event, first `started` if the plugin did not send one, and says whether to go on.
    pub fn send(&mut self, event: JobEvent) -> Flow {
        if !self.started {
            self.started = true;
            let mut details = match &event {
                JobEvent::Started(details) => details.clone(),
                _ => json!({}),
            };
            details["job_id"] = self.job_id.clone().into();
            let _ = self.events.send(JobEvent::Started(details));
            if let JobEvent::Started(_) = event {
                return self.flow();
            }
        }
        if let JobEvent::Started(_) = event {
            return self.flow();
        }
        self.count(&event);
        let _ = self.events.send(event);
        self.flow()
    }

    fn flow(&self) -> Flow {
        match self.stop.is_set() {
            true => Flow::Stop,
            false => Flow::Continue,
        }
    }
}

fn artifact_data(artifact: &Artifact<'_>) -> ArtifactData {
    ArtifactData {
        media_type: artifact.media_type.to_string(),
        data: artifact.data.to_vec(),
        metadata: parse_object(artifact.metadata_json.as_str()),
    }
}

impl EventSink for HostSink {
    fn started(&mut self, details_json: RStr<'_>) -> Flow {
        self.send(JobEvent::Started(parse_object(details_json.as_str())))
    }

    fn text(&mut self, index: u64, text: RStr<'_>) -> Flow {
        self.send(JobEvent::Token {
            index,
            text: text.to_string(),
        })
    }

    fn progress(&mut self, step: u64, total: u64, preview: ROption<Artifact<'_>>) -> Flow {
        self.send(JobEvent::Progress { step, total });
        match preview {
            ROption::RSome(preview) => self.send(JobEvent::Preview(artifact_data(&preview))),
            ROption::RNone => self.flow(),
        }
    }

    fn artifact(&mut self, artifact: Artifact<'_>) -> Flow {
        self.send(JobEvent::Artifact(artifact_data(&artifact)))
    }

    fn embedding(&mut self, index: u64, vector: RSlice<'_, f32>) -> Flow {
        self.send(JobEvent::Embedding {
            index,
            vector: vector.to_vec(),
        })
    }

    fn metrics(&mut self, metrics_json: RStr<'_>) -> Flow {
        self.send(JobEvent::Metrics(parse_object(metrics_json.as_str())))
    }

    fn custom(&mut self, event: RStr<'_>, data_json: RStr<'_>) -> Flow {
        let data = serde_json::from_str(data_json.as_str()).unwrap_or(serde_json::Value::Null);
        self.send(JobEvent::custom(event.as_str(), data))
    }

    fn is_cancelled(&self) -> bool {
        self.stop.is_set()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    #[test]
    fn started_comes_first_once_and_cancel_stops() {
        let (tx, mut rx) = unbounded_channel();
        let stop = StopFlag::default();
        let metrics = Arc::new(Metrics::new("m", false));
        let mut sink = HostSink::new("job-1", tx, stop.clone(), metrics, Instant::now());
        assert_eq!(sink.text(0, "hi".into()), Flow::Continue);
        sink.started(r#"{"seed": 1}"#.into());
        stop.cancel();
        assert_eq!(sink.text(1, "there".into()), Flow::Stop);
        assert_eq!(
            rx.try_recv().unwrap(),
            JobEvent::Started(json!({"job_id": "job-1"}))
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            JobEvent::Token {
                index: 0,
                text: "hi".into()
            }
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            JobEvent::Token {
                index: 1,
                text: "there".into()
            }
        );
        assert!(rx.try_recv().is_err());
        assert_eq!(sink.tokens(), 2);
    }
}
