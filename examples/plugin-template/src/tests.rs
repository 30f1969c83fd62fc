//! The worker tested without a host: a recording event sink stands in for it.

use crate::worker::{TASK, UppercaseWorker};
use rbee_plugin_api::{
    Artifact, EventSink, EventSink_TO, Flow, Job, PluginWorker,
    abi_stable::{
        sabi_trait::TD_Opaque,
        std_types::{ROption, RSlice, RStr},
    },
};

/// Records text events; answers [`Flow::Stop`] once it holds `stop_after` of them.
struct RecordingSink {
    texts: Vec<String>,
    stop_after: usize,
}

impl EventSink for RecordingSink {
    fn started(&mut self, _details_json: RStr<'_>) -> Flow {
        Flow::Continue
    }

    fn text(&mut self, index: u64, text: RStr<'_>) -> Flow {
        assert_eq!(index as usize, self.texts.len(), "text events out of order");
        self.texts.push(text.to_string());
        if self.texts.len() >= self.stop_after {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn progress(&mut self, _step: u64, _total: u64, _preview: ROption<Artifact<'_>>) -> Flow {
        unreachable!("the template sends no progress")
    }

    fn artifact(&mut self, _artifact: Artifact<'_>) -> Flow {
        unreachable!("the template sends no artifact")
    }

    fn embedding(&mut self, _index: u64, _vector: RSlice<'_, f32>) -> Flow {
        unreachable!("the template sends no embedding")
    }

    fn metrics(&mut self, _metrics_json: RStr<'_>) -> Flow {
        Flow::Continue
    }

    fn custom(&mut self, _event: RStr<'_>, _data_json: RStr<'_>) -> Flow {
        Flow::Continue
    }

    fn is_cancelled(&self) -> bool {
        self.texts.len() >= self.stop_after
    }
}

/// Runs an `uppercase` job on `text`, stopping after `stop_after` events.
fn run(text: &str, stop_after: usize) -> (String, RecordingSink) {
    let job = Job {
        id: "test".into(),
        task: TASK.into(),
        params_json: serde_json::json!({ "text": text }).to_string().into(),
    };
    let mut sink = RecordingSink {
        texts: Vec::new(),
        stop_after,
    };
    let end = UppercaseWorker
        .execute(&job, &mut EventSink_TO::from_ptr(&mut sink, TD_Opaque))
        .unwrap();
    (end.stop_reason.to_string(), sink)
}

#[test]
fn streams_each_word_in_upper_case() {
    let (reason, sink) = run("hello there world", usize::MAX);
    assert_eq!(reason, "completed");
    assert_eq!(sink.texts, ["HELLO ", "THERE ", "WORLD"]);
}

#[test]
fn stops_at_the_first_stop() {
    let (reason, sink) = run("a b c d", 2);
    assert_eq!(reason, "cancelled");
    assert_eq!(sink.texts.len(), 2);
}

#[test]
fn bad_parameters_name_their_field() {
    let field = |params: &str| {
        UppercaseWorker
            .validate(TASK, params)
            .unwrap_err()
            .field
            .unwrap()
            .to_string()
    };
    assert_eq!(field(r#"{}"#), "text");
    assert_eq!(field(r#"{"text": 1}"#), "text");
    assert_eq!(field(r#"{"text": "a", "loud": true}"#), "loud");
    assert_eq!(
        UppercaseWorker
            .validate("echo", r#"{"text": "a"}"#)
            .unwrap_err()
            .code
            .as_str(),
        "unsupported_task"
    );
}
