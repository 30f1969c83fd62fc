//! plugin-api 2.0 through a real host and the real echo plugin: several jobs at once, the
//! `--parallel` cap, answers in one request, and a slow client that slows only its own job.

use rbee_tests::{Host, SseEvent, streamed_text};
use serde_json::{Value, json};
use std::{
    thread,
    time::{Duration, Instant},
};

/// A job of four words, 250 ms before each: one second.
fn one_second_job() -> Value {
    json!({"text": "one two three four", "delay_ms": 250})
}

/// `rbee_num_requests_running` from `/metrics`.
fn running(host: &Host) -> u64 {
    let text = host.get("/metrics").text().unwrap();
    text.lines()
        .find(|line| line.starts_with("rbee_num_requests_running"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no running gauge in:\n{text}"))
}

/// The largest value `running` shows while `jobs` finish, sampled every 50 ms.
fn most_running_while(host: &Host, jobs: &[String]) -> u64 {
    let mut most = 0;
    while jobs
        .iter()
        .any(|id| host.job_state(id) == "running" || host.job_state(id) == "queued")
    {
        most = most.max(running(host));
        // The sampling period of the gauge; the loop itself ends when the jobs do.
        thread::sleep(Duration::from_millis(50));
    }
    most
}

/// Reads every job's stream to its end on a thread of its own.
fn read_in_background(host: &Host, ids: &[String]) -> Vec<thread::JoinHandle<Vec<SseEvent>>> {
    ids.iter()
        .map(|id| {
            let stream = host.stream(id);
            thread::spawn(move || stream.collect_all())
        })
        .collect()
}

#[test]
fn four_one_second_jobs_run_at_once_on_a_worker_that_takes_four() {
    let host = Host::start_echo(&["--plugin-options", r#"{"parallel": 4}"#]);
    let started = Instant::now();
    let ids: Vec<String> = (0..4)
        .map(|_| host.submit("echo", one_second_job()))
        .collect();
    let streams = read_in_background(&host, &ids);
    let most = most_running_while(&host, &ids);
    for stream in streams {
        let events = stream.join().unwrap();
        assert_eq!(streamed_text(&events), "one two three four");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "4 jobs took {took:?}");
    assert_eq!(most, 4, "/metrics should show 4 running");
}

#[test]
fn parallel_caps_how_many_run_and_a_one_job_worker_is_not_raised() {
    for (flags, expected) in [
        (
            vec!["--plugin-options", r#"{"parallel": 4}"#, "--parallel", "2"],
            2,
        ),
        (vec!["--parallel", "8"], 1),
    ] {
        let host = Host::start_echo(&flags);
        let ids: Vec<String> = (0..4)
            .map(|_| host.submit("echo", json!({"text": "a b", "delay_ms": 150})))
            .collect();
        let streams = read_in_background(&host, &ids);
        assert_eq!(most_running_while(&host, &ids), expected, "{flags:?}");
        for stream in streams {
            assert_eq!(streamed_text(&stream.join().unwrap()), "a b");
        }
    }
}

#[test]
fn wait_true_answers_with_the_collected_result() {
    let host = Host::start_echo(&[]);
    let response = host.post(
        "/v1/jobs?wait=true",
        &json!({"task": "echo", "params": {"text": "in one go"}}),
    );
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(
        (
            body["text"].clone(),
            body["stop_reason"].clone(),
            body["words"].clone()
        ),
        (json!("in one go"), json!("completed"), json!(3))
    );
    assert_eq!(
        host.job_state(body["job_id"].as_str().unwrap()),
        "completed"
    );
    let failed = host.post(
        "/v1/jobs?wait=true",
        &json!({"task": "echo", "params": {"text": "a b", "fail_after": 1}}),
    );
    assert_eq!(failed.status(), 500);
    let error: Value = failed.json().unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fail after 1"),
        "{error}"
    );
    let bad = host.post(
        "/v1/jobs?wait=maybe",
        &json!({"task": "echo", "params": {"text": "x"}}),
    );
    assert_eq!(bad.status(), 400);
}

#[test]
fn a_client_that_does_not_read_holds_its_job_back_and_loses_nothing() {
    let host = Host::start_echo(&["--plugin-options", r#"{"parallel": 2}"#]);
    let words: Vec<String> = (0..2000).map(|i| format!("w{i} ")).collect();
    let text = words.concat();
    let slow = host.submit("echo", json!({"text": text}));
    // Fixed on purpose: an unread job that ran ahead would finish well within 700 ms.
    thread::sleep(Duration::from_millis(700));
    assert_eq!(
        host.job_state(&slow),
        "running",
        "an unread job should wait for its client, not run ahead into memory"
    );
    let other = host.post(
        "/v1/jobs?wait=true",
        &json!({"task": "echo", "params": {"text": "not held up"}}),
    );
    assert_eq!(other.json::<Value>().unwrap()["text"], "not held up");
    let events = host.stream(&slow).collect_all();
    assert_eq!(streamed_text(&events), text);
    assert_eq!(events.last().unwrap().data["stop_reason"], "completed");
}

#[test]
fn a_plugin_may_stream_from_a_thread_of_its_own() {
    let host = Host::start_echo(&[]);
    let events = host
        .stream(&host.submit(
            "echo",
            json!({"text": "from elsewhere", "from_thread": true}),
        ))
        .collect_all();
    assert_eq!(streamed_text(&events), "from elsewhere");
    assert_eq!(events.last().unwrap().data["stop_reason"], "completed");
    let panicking = host
        .stream(&host.submit(
            "echo",
            json!({"text": "a b", "from_thread": true, "panic_after": 1}),
        ))
        .collect_all();
    assert_eq!(panicking.last().unwrap().name, "error");
    assert_eq!(panicking.last().unwrap().data["code"], "plugin_panic");
}

#[test]
fn the_plugin_reads_the_deadline_and_why_it_was_stopped() {
    let host = Host::start_echo(&[]);
    for (body, reason) in [
        (
            json!({"task": "echo", "timeout": 0.3, "params": {"text": "a b c d e", "delay_ms": 200}}),
            "deadline_exceeded",
        ),
        (
            json!({"task": "echo", "params": {"text": "a b c d e", "delay_ms": 200, "from_thread": true}}),
            "cancelled",
        ),
    ] {
        let response = host.post("/v1/jobs", &body);
        let id = response.json::<Value>().unwrap()["job_id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut stream = host.stream(&id);
        let started = stream.next().unwrap();
        if reason == "cancelled" {
            assert!(started.data["deadline_unix_ms"].is_null());
            assert_eq!(host.delete(&format!("/v1/jobs/{id}")).status(), 200);
        } else {
            let deadline = started.data["deadline_unix_ms"].as_u64().unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            assert!(
                deadline > now && deadline <= now + 300,
                "{deadline} vs {now}"
            );
        }
        let end = stream.collect_all().pop().unwrap();
        assert_eq!(
            (
                end.data["stop_reason"].clone(),
                end.data["stop_reason_seen"].clone()
            ),
            (json!(reason), json!(reason))
        );
    }
}
