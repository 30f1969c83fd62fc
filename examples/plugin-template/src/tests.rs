//! The worker tested without a host: plugin-api's recording sink stands in for it.

use crate::worker::{TASK, UppercaseWorker};
use rbee_plugin_api::{Job, PluginWorker, error_code, tasks::stop_reason, testing::RecordingSink};

/// Runs an `uppercase` job on `text` against `recording`, returning its stop reason.
fn run(text: &str, recording: &RecordingSink) -> String {
    let params = serde_json::json!({ "text": text }).to_string();
    let end = UppercaseWorker
        .execute(Job::new("test", TASK, &params), recording.sink())
        .unwrap();
    end.stop_reason.to_string()
}

#[test]
fn streams_each_word_in_upper_case() {
    let recording = RecordingSink::new();
    assert_eq!(run("hello there world", &recording), stop_reason::COMPLETED);
    assert_eq!(
        recording.texts(),
        [
            (0, "HELLO ".into()),
            (1, "THERE ".into()),
            (2, "WORLD".into())
        ]
    );
}

#[test]
fn stops_at_the_first_stop() {
    let recording = RecordingSink::new().stop_after_texts(2);
    assert_eq!(run("a b c d", &recording), stop_reason::CANCELLED);
    assert_eq!(recording.texts().len(), 2);
}

#[test]
fn bad_parameters_name_their_field() {
    let field = |params: &str| {
        UppercaseWorker
            .validate(&Job::new("test", TASK, params))
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
            .validate(&Job::new("test", "echo", r#"{"text": "a"}"#))
            .unwrap_err()
            .code
            .as_str(),
        error_code::UNSUPPORTED_TASK
    );
}
