//! The host's `EventSink`: turns a plugin's events into [`JobEvent`]s on the job's bounded
//! channel. Shared by every thread the plugin hands it to, and inert once the job has ended.
//! A `token_logprobs` event is not forwarded: its entries ride on the next `token` event.

use super::queue::EventSender;
use super::{
    StopFlag,
    event::{ArtifactData, JobEvent, parse_object},
};
use crate::services::metrics::Metrics;
use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, ROption, RSlice, RStr},
};
use rbee_plugin_api::{
    Artifact, EventSink, EventSink_TO, Flow, JobSink, StopReason,
    tasks::text_generation::TOKEN_LOGPROBS,
};
use serde_json::{Value, json};
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Instant,
};

/// The most log probability entries held for one `token` event: a plugin that sends more
/// without text cannot grow the host's memory (those beyond are dropped).
const MAX_PENDING_LOGPROBS: usize = 4096;

/// Receives one job's events, from whichever plugin threads hold it. Clones share one state.
#[derive(Clone)]
pub struct HostSink(Arc<SinkState>);

struct SinkState {
    job_id: String,
    events: EventSender,
    stop: StopFlag,
    metrics: Arc<Metrics>,
    submitted: Instant,
    started: Mutex<bool>,
    first_output: AtomicBool,
    tokens: AtomicU64,
    closed: AtomicBool,
    /// Log probability entries waiting for the `token` event they belong to.
    pending_logprobs: Mutex<Vec<Value>>,
}

impl HostSink {
    /// A sink for job `job_id` (submitted at `submitted`), sending into `events`, stopping when
    /// `stop` is set, counting into `metrics`.
    pub fn new(
        job_id: &str,
        events: EventSender,
        stop: StopFlag,
        metrics: Arc<Metrics>,
        submitted: Instant,
    ) -> Self {
        Self(Arc::new(SinkState {
            job_id: job_id.to_string(),
            events,
            stop,
            metrics,
            submitted,
            started: Mutex::new(false),
            first_output: AtomicBool::new(false),
            tokens: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            pending_logprobs: Mutex::new(Vec::new()),
        }))
    }

    /// The handle the plugin's `execute` receives.
    pub fn handle(&self) -> JobSink {
        EventSink_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }

    /// Text tokens streamed so far.
    pub fn tokens(&self) -> u64 {
        self.0.tokens.load(Ordering::Relaxed)
    }

    /// Ends the job: every later event from the plugin is dropped, then `terminal` is sent.
    pub fn close(&self, terminal: JobEvent) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.take_logprobs();
        self.ensure_started(None);
        self.deliver(terminal);
    }

    fn count(&self, event: &JobEvent) {
        let state = &self.0;
        match event {
            JobEvent::Token { .. } => {
                state.tokens.fetch_add(1, Ordering::Relaxed);
                state.metrics.token();
            }
            JobEvent::Progress { .. } => state.metrics.step(),
            _ => {}
        }
        if !state.first_output.swap(true, Ordering::Relaxed) {
            state
                .metrics
                .first_event(state.submitted.elapsed().as_secs_f64());
        }
    }

    /// Sends `started` once, before anything else: the plugin's details if it sent it itself.
    fn ensure_started(&self, details: Option<serde_json::Value>) {
        let mut started = self.0.started.lock().unwrap_or_else(|e| e.into_inner());
        if *started {
            return;
        }
        *started = true;
        let mut details = details.unwrap_or_else(|| json!({}));
        details["job_id"] = self.0.job_id.clone().into();
        self.deliver(JobEvent::Started(details));
    }

    /// Sends a plugin's event (after `started`) and says whether to go on.
    fn send(&self, event: JobEvent) -> Flow {
        if self.0.closed.load(Ordering::SeqCst) {
            return Flow::Stop;
        }
        self.ensure_started(None);
        self.count(&event);
        self.deliver(event);
        self.flow()
    }

    /// Puts an event on the job's queue (see [`EventSender::send`]): a non-terminal one is
    /// given up once the job is stopped.
    fn deliver(&self, event: JobEvent) {
        self.0.events.send(event, || self.0.stop.is_set());
    }

    fn flow(&self) -> Flow {
        match self.0.stop.is_set() {
            true => Flow::Stop,
            false => Flow::Continue,
        }
    }

    /// Parses a plugin's JSON object, or logs why it was dropped.
    fn object(&self, what: &str, text: &str) -> Option<serde_json::Value> {
        let parsed = parse_object(text);
        if parsed.is_none() {
            tracing::warn!(
                job = self.0.job_id,
                "the plugin sent {what} that is not a JSON object; dropped"
            );
        }
        parsed
    }

    /// Keeps the entries of a `token_logprobs` event for the next `token` event, up to
    /// [`MAX_PENDING_LOGPROBS`]; data without a `content` list is dropped.
    fn hold_logprobs(&self, mut data: Value) -> Flow {
        if self.0.closed.load(Ordering::SeqCst) {
            return Flow::Stop;
        }
        let Value::Array(entries) = data["content"].take() else {
            tracing::warn!(
                job = self.0.job_id,
                "the plugin sent {TOKEN_LOGPROBS} without a 'content' list; dropped"
            );
            return self.flow();
        };
        let mut pending = self.pending();
        let room = MAX_PENDING_LOGPROBS.saturating_sub(pending.len());
        if entries.len() > room {
            tracing::warn!(
                job = self.0.job_id,
                "the plugin sent more than {MAX_PENDING_LOGPROBS} {TOKEN_LOGPROBS} entries for one token; dropped the rest"
            );
        }
        pending.extend(entries.into_iter().take(room));
        self.flow()
    }

    /// The entries held for the next `token` event, if any.
    fn take_logprobs(&self) -> Option<Value> {
        let entries = std::mem::take(&mut *self.pending());
        (!entries.is_empty()).then_some(Value::Array(entries))
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<Value>> {
        self.0
            .pending_logprobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn artifact_data(&self, artifact: &Artifact<'_>) -> ArtifactData {
        let metadata = match artifact.metadata_json.is_empty() {
            true => Some(json!({})),
            false => self.object("artifact metadata", artifact.metadata_json.as_str()),
        };
        ArtifactData {
            media_type: artifact.media_type.to_string(),
            data: artifact.data.to_vec(),
            metadata: metadata.unwrap_or_else(|| json!({})),
        }
    }
}

impl EventSink for HostSink {
    fn started(&self, details_json: RStr<'_>) -> Flow {
        if !self.0.closed.load(Ordering::SeqCst) {
            let details = match details_json.is_empty() {
                true => Some(json!({})),
                false => self.object("started details", details_json.as_str()),
            };
            self.ensure_started(details);
        }
        self.flow()
    }

    fn text(&self, index: u64, text: RStr<'_>) -> Flow {
        let logprobs = self.take_logprobs();
        self.send(JobEvent::Token {
            index,
            text: text.to_string(),
            logprobs,
        })
    }

    fn progress(&self, step: u64, total: u64, preview: ROption<Artifact<'_>>) -> Flow {
        let flow = self.send(JobEvent::Progress { step, total });
        match preview {
            ROption::RSome(preview) if !flow.is_stop() => {
                self.send(JobEvent::Preview(self.artifact_data(&preview)))
            }
            _ => flow,
        }
    }

    fn artifact(&self, artifact: Artifact<'_>) -> Flow {
        self.send(JobEvent::Artifact(self.artifact_data(&artifact)))
    }

    fn embedding(&self, index: u64, vector: RSlice<'_, f32>) -> Flow {
        self.send(JobEvent::Embedding {
            index,
            vector: vector.to_vec(),
        })
    }

    fn metrics(&self, metrics_json: RStr<'_>) -> Flow {
        match self.object("metrics", metrics_json.as_str()) {
            Some(metrics) => self.send(JobEvent::Metrics(metrics)),
            None => self.flow(),
        }
    }

    fn custom(&self, event: RStr<'_>, data_json: RStr<'_>) -> Flow {
        let Some(name) = JobEvent::custom_name(event.as_str()) else {
            tracing::warn!(
                job = self.0.job_id,
                event = event.as_str(),
                "the plugin sent a custom event whose name is not a word; dropped"
            );
            return self.flow();
        };
        match self.object("custom event data", data_json.as_str()) {
            Some(data) if name == TOKEN_LOGPROBS => self.hold_logprobs(data),
            Some(data) => self.send(JobEvent::Custom { name, data }),
            None => self.flow(),
        }
    }

    fn stop_reason(&self) -> StopReason {
        match self.0.closed.load(Ordering::SeqCst) {
            true => StopReason::CANCELLED,
            false => self.0.stop.reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{EventReceiver, event_queue};

    fn sink() -> (HostSink, StopFlag, EventReceiver) {
        let (tx, rx) = event_queue();
        let stop = StopFlag::default();
        let metrics =
            Arc::new(crate::services::metrics::MetricsRegistry::new(false).for_model("m"));
        let sink = HostSink::new("job-1", tx, stop.clone(), metrics, Instant::now());
        (sink, stop, rx)
    }

    #[test]
    fn started_comes_first_once_and_cancel_stops() {
        let (sink, stop, mut rx) = sink();
        let handle = sink.handle();
        assert_eq!(handle.text(0, "hi".into()), Flow::Continue);
        handle.started(r#"{"seed": 1}"#.into());
        stop.cancel();
        assert_eq!(handle.text(1, "there".into()), Flow::Stop);
        assert_eq!(handle.stop_reason(), StopReason::CANCELLED);
        assert_eq!(
            rx.try_recv().unwrap(),
            JobEvent::Started(json!({"job_id": "job-1"}))
        );
        assert!(matches!(
            rx.try_recv().unwrap(),
            JobEvent::Token { index: 0, .. }
        ));
        assert!(matches!(
            rx.try_recv().unwrap(),
            JobEvent::Token { index: 1, .. }
        ));
        assert!(rx.try_recv().is_err());
        assert_eq!(sink.tokens(), 2);
    }

    #[test]
    fn bad_plugin_output_is_dropped_not_streamed() {
        let (sink, _, mut rx) = sink();
        let handle = sink.handle();
        handle.custom("seg\nment".into(), "{}".into());
        handle.custom("segment".into(), "[1, 2]".into());
        handle.metrics("not json".into());
        handle.custom("segment".into(), r#"{"text": "ok"}"#.into());
        assert!(matches!(rx.try_recv().unwrap(), JobEvent::Started(_)));
        assert_eq!(
            rx.try_recv().unwrap(),
            JobEvent::Custom {
                name: "segment".into(),
                data: json!({"text": "ok"})
            }
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn logprobs_ride_on_the_next_token_and_leftovers_are_dropped() {
        let (sink, _, mut rx) = sink();
        let handle = sink.handle();
        let entry =
            |token: &str| json!({"token": token, "logprob": -1.0, "bytes": [], "top_logprobs": []});
        let event = |tokens: &[&str]| {
            let content: Vec<Value> = tokens.iter().map(|t| entry(t)).collect();
            json!({"content": content}).to_string()
        };
        handle.custom(TOKEN_LOGPROBS.into(), event(&["He", "llo"]).as_str().into());
        handle.text(0, "Hello".into());
        handle.text(1, " there".into());
        handle.custom(TOKEN_LOGPROBS.into(), event(&["!"]).as_str().into());
        handle.custom(TOKEN_LOGPROBS.into(), r#"{"content": 3}"#.into());
        handle.custom(TOKEN_LOGPROBS.into(), event(&["?"]).as_str().into());
        handle.text(2, "!?".into());
        handle.custom(TOKEN_LOGPROBS.into(), event(&["swallowed"]).as_str().into());
        sink.close(JobEvent::End {
            stop_reason: "stop_sequence".into(),
            details: json!({}),
        });
        assert!(matches!(rx.try_recv().unwrap(), JobEvent::Started(_)));
        let tokens: Vec<(String, Option<Value>)> = std::iter::from_fn(|| rx.try_recv().ok())
            .take_while(|event| !event.is_terminal())
            .map(|event| match event {
                JobEvent::Token { text, logprobs, .. } => (text, logprobs),
                other => panic!("only tokens reach the stream: {other:?}"),
            })
            .collect();
        assert_eq!(
            tokens,
            [
                ("Hello".into(), Some(json!([entry("He"), entry("llo")]))),
                (" there".into(), None),
                ("!?".into(), Some(json!([entry("!"), entry("?")]))),
            ]
        );
        assert!(rx.try_recv().is_err(), "the end came, and nothing after it");
        assert_eq!(
            sink.take_logprobs(),
            None,
            "what no token carried is dropped"
        );
    }

    #[test]
    fn a_plugin_cannot_hold_back_unbounded_logprobs() {
        let (sink, _, _rx) = sink();
        let handle = sink.handle();
        let entries: Vec<Value> = (0..1000).map(|i| json!({"token": i})).collect();
        let event = json!({"content": entries}).to_string();
        for _ in 0..5 {
            handle.custom(TOKEN_LOGPROBS.into(), event.as_str().into());
        }
        let held = sink.take_logprobs().unwrap();
        assert_eq!(held.as_array().map(Vec::len), Some(MAX_PENDING_LOGPROBS));
        assert_eq!(held[0]["token"], 0, "the first are kept");
    }

    #[test]
    fn a_closed_sink_ends_with_the_terminal_event_and_ignores_late_ones() {
        let (sink, _, mut rx) = sink();
        let handle = sink.handle();
        handle.text(0, "a".into());
        sink.close(JobEvent::End {
            stop_reason: "completed".into(),
            details: json!({}),
        });
        assert!(matches!(rx.try_recv().unwrap(), JobEvent::Started(_)));
        assert!(matches!(
            rx.try_recv().unwrap(),
            JobEvent::Token { index: 0, .. }
        ));
        assert!(rx.try_recv().unwrap().is_terminal());
        assert_eq!(
            handle.text(1, "late".into()),
            Flow::Stop,
            "a closed sink ignores events"
        );
        assert!(rx.try_recv().is_err());
    }
}
