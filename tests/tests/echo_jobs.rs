//! Jobs through a real host and the real echo plugin: streaming, validation, cancellation,
//! queue limits, and a plugin that fails or panics.

use rbee_tests::{Host, SseEvent, wait_until};
use serde_json::{Value, json};
use std::{
    io::Read,
    time::{Duration, Instant},
};

fn names(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn a_job_streams_started_then_tokens_then_end() {
    let host = Host::start_echo(&[]);
    let response = host.post(
        "/v1/jobs",
        &json!({"task": "echo", "params": {"text": "one two three"}}),
    );
    assert_eq!(response.status(), 202);
    let body: Value = response.json().unwrap();
    let id = body["job_id"].as_str().unwrap();
    assert_eq!(body["stream_url"], format!("/v1/jobs/{id}/stream"));
    assert_eq!(body["queue_position"], 0);

    let events = host.stream(id).collect_all();
    assert_eq!(
        names(&events),
        ["started", "token", "token", "token", "end"]
    );
    assert_eq!(events[0].data["job_id"], id);
    let text: String = events[1..4]
        .iter()
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "one two three");
    assert_eq!(events[3].data["index"], 2);
    assert_eq!(events[4].data["stop_reason"], "completed");
    assert_eq!(host.job_state(id), "completed");
}

#[test]
fn bad_requests_get_400_with_the_field_named() {
    let host = Host::start_echo(&[]);
    let cases = [
        (json!({"task": "echo", "params": {"text": 5}}), "text"),
        (
            json!({"task": "echo", "params": {"text": "x", "colour": "red"}}),
            "colour",
        ),
        (json!({"task": "echo", "params": {}}), "text"),
        (
            json!({"task": "echo", "params": {"text": "x", "delay_ms": 999999}}),
            "delay_ms",
        ),
        (json!({"task": "paint", "params": {"text": "x"}}), "task"),
        (json!({"params": {"text": "x"}}), "task"),
        (json!({"task": "echo", "params": [1, 2]}), "params"),
    ];
    for (body, field) in cases {
        let response = host.post("/v1/jobs", &body);
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().unwrap();
        assert_eq!(error["error"]["field"], field, "{body} -> {error}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
    let raw = reqwest::blocking::Client::new()
        .post(format!("{}/v1/jobs", host.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.json::<Value>().unwrap()["error"]["field"], "body");
    let unknown = host.get("/v1/jobs/job-nope");
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().unwrap()["error"]["code"],
        "not_found"
    );
}

#[test]
fn delete_cancels_a_running_job_within_one_token() {
    let host = Host::start_echo(&[]);
    let text = "w ".repeat(200);
    let id = host.submit("echo", json!({"text": text, "delay_ms": 50}));
    let mut stream = host.stream(&id);
    assert_eq!(stream.next().unwrap().name, "started");
    assert_eq!(stream.next().unwrap().name, "token");
    let asked = Instant::now();
    assert_eq!(host.delete(&format!("/v1/jobs/{id}")).status(), 200);
    let rest: Vec<SseEvent> = stream.collect();
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "cancel took {:?}",
        asked.elapsed()
    );
    let end = rest.last().unwrap();
    assert_eq!(
        (end.name.as_str(), &end.data["stop_reason"]),
        ("end", &json!("cancelled"))
    );
    assert!(rest.len() < 5, "{} more events after cancel", rest.len());
    assert_eq!(host.job_state(&id), "cancelled");
}

#[test]
fn delete_cancels_a_queued_job() {
    let host = Host::start_echo(&[]);
    let running = host.submit("echo", json!({"text": "a b c d e f", "delay_ms": 300}));
    let queued = host.submit("echo", json!({"text": "never"}));
    assert_eq!(host.job_state(&queued), "queued");
    assert_eq!(
        host.delete(&format!("/v1/jobs/{queued}"))
            .json::<Value>()
            .unwrap()["state"],
        "cancelled"
    );
    let events = host.stream(&queued).collect_all();
    assert_eq!(names(&events), ["end"]);
    assert_eq!(events[0].data["stop_reason"], "cancelled");
    host.delete(&format!("/v1/jobs/{running}"));
}

#[test]
fn a_client_that_goes_away_cancels_its_job() {
    let host = Host::start_echo(&[]);
    let id = host.submit("echo", json!({"text": "w ".repeat(500), "delay_ms": 20}));
    let mut response = host.get(&format!("/v1/jobs/{id}/stream"));
    let mut first = [0u8; 64];
    response.read_exact(&mut first).unwrap();
    drop(response);
    let deadline = Instant::now() + Duration::from_secs(5);
    while host.job_state(&id) != "cancelled" {
        assert!(
            Instant::now() < deadline,
            "job still {} after the client left",
            host.job_state(&id)
        );
        // Pacing between polls; the loop is bounded by `deadline`.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let host = Host::start_echo(&["--queue-size", "1"]);
    let running = host.submit("echo", json!({"text": "a b c d e f g h", "delay_ms": 200}));
    wait_until("the first job to run", Duration::from_secs(10), || {
        host.job_state(&running) == "running"
    });
    let waiting = host.submit("echo", json!({"text": "x"}));
    let refused = host.post(
        "/v1/jobs",
        &json!({"task": "echo", "params": {"text": "y"}}),
    );
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        refused.json::<Value>().unwrap()["error"]["code"],
        "queue_full"
    );
    host.delete(&format!("/v1/jobs/{running}"));
    host.delete(&format!("/v1/jobs/{waiting}"));
}

#[test]
fn a_panicking_or_failing_plugin_fails_the_job_and_the_next_job_works() {
    let host = Host::start_echo(&[]);
    let panicked = host
        .stream(&host.submit("echo", json!({"text": "a b c", "panic_after": 1})))
        .collect_all();
    assert_eq!(names(&panicked), ["started", "token", "error"]);
    assert_eq!(panicked[2].data["code"], "plugin_panic");
    assert!(
        panicked[2].data["message"]
            .as_str()
            .unwrap()
            .contains("asked to panic")
    );

    let failed = host
        .stream(&host.submit("echo", json!({"text": "a b c", "fail_after": 2})))
        .collect_all();
    assert_eq!(names(&failed), ["started", "token", "token", "error"]);
    assert_eq!(failed[3].data["code"], "internal");

    let fine = host
        .stream(&host.submit("echo", json!({"text": "still alive"})))
        .collect_all();
    assert_eq!(fine.last().unwrap().data["stop_reason"], "completed");
    assert_eq!(host.get("/health").status(), 200);
}

#[test]
fn info_describes_the_plugin_model_and_device() {
    let host = Host::start_echo(&["--model", "parrot"]);
    let info: Value = host.get("/v1/info").json().unwrap();
    assert_eq!(info["plugin"]["id"], "echo-cpu");
    assert_eq!(info["plugin"]["tasks"], json!(["echo"]));
    assert_eq!(info["plugin"]["params_schema"]["required"], json!(["text"]));
    assert_eq!(info["device"], "cpu");
    assert_eq!(info["worker"]["model"], "parrot");
    assert_eq!(info["state"]["status"], "ready");
}

#[test]
fn a_job_past_its_timeout_or_deadline_ends_with_deadline_exceeded() {
    let host = Host::start_echo(&[]);
    let body = json!({"task": "echo", "timeout": 0.3, "params": {"text": "w ".repeat(100), "delay_ms": 50}});
    let response = host.post("/v1/jobs", &body);
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let events = host.stream(&id).collect_all();
    assert_eq!(
        events.last().unwrap().data["stop_reason"],
        "deadline_exceeded"
    );
    assert!(events.iter().filter(|e| e.name == "token").count() < 20);
    assert_eq!(host.job_state(&id), "cancelled");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let client = reqwest::blocking::Client::new();
    let with_header = |deadline: f64| {
        client
            .post(format!("{}/v1/jobs", host.url))
            .header("x-deadline", deadline.to_string())
            .json(&json!({"task": "echo", "params": {"text": "w ".repeat(100), "delay_ms": 50}}))
            .send()
            .unwrap()
    };
    let accepted = with_header(now + 0.3);
    assert_eq!(accepted.status(), 202);
    let id = accepted.json::<Value>().unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        host.stream(&id).collect_all().last().unwrap().data["stop_reason"],
        "deadline_exceeded"
    );
    let late = with_header(now - 10.0);
    assert_eq!(late.status(), 400);
    assert_eq!(
        late.json::<Value>().unwrap()["error"]["field"],
        "X-Deadline"
    );
    let bad = host.post(
        "/v1/jobs",
        &json!({"task": "echo", "timeout": -1, "params": {"text": "x"}}),
    );
    assert_eq!(bad.json::<Value>().unwrap()["error"]["field"], "timeout");
}

#[test]
fn a_job_whose_stream_nobody_opens_is_cancelled_after_the_unread_timeout() {
    let host = Host::start_echo(&["--unread-timeout", "1", "--parallel", "2"]);
    let text = "word ".repeat(40);
    let params = json!({"text": text, "delay_ms": 100});
    let unread = host.submit("echo", params.clone());
    let read = host.submit("echo", params);
    let events = host.stream(&read).collect_all();
    assert_eq!(events.last().unwrap().data["stop_reason"], "completed");
    let view: Value = host.get(&format!("/v1/jobs/{unread}")).json().unwrap();
    assert_eq!(view["stop_reason"], "cancelled", "{view}");
}
