//! SIGTERM: stop taking work, let the running job finish (or cancel it at the timeout), exit 0.

use rbee_tests::{Host, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

#[test]
fn sigterm_drains_running_work_refuses_new_work_and_exits_0() {
    let mut host = Host::start_echo(&[]);
    let running = host.submit(
        "echo",
        json!({"text": "a b c d e f g h i j", "delay_ms": 100}),
    );
    let queued = host.submit("echo", json!({"text": "never runs"}));
    let mut stream = host.stream(&running);
    assert_eq!(stream.next().unwrap().name, "started");
    host.terminate();
    wait_until("/ready to report draining", Duration::from_secs(10), || {
        host.get("/ready").status() == 503
    });

    let ready = host.get("/ready");
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().unwrap()["status"], "draining");
    let refused = host.post(
        "/v1/jobs",
        &json!({"task": "echo", "params": {"text": "late"}}),
    );
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.json::<Value>().unwrap()["error"]["code"],
        "draining"
    );
    assert_eq!(host.job_state(&queued), "cancelled");

    let rest: Vec<_> = stream.collect();
    let end = rest.last().unwrap();
    assert_eq!(
        (end.name.as_str(), end.data["stop_reason"].as_str()),
        ("end", Some("completed"))
    );
    assert_eq!(rest.iter().filter(|e| e.name == "token").count(), 10);
    assert_eq!(host.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn work_still_running_at_the_shutdown_timeout_is_cancelled() {
    let mut host = Host::start_echo(&["--shutdown-timeout", "1"]);
    let id = host.submit("echo", json!({"text": "w ".repeat(100), "delay_ms": 100}));
    let mut stream = host.stream(&id);
    assert_eq!(stream.next().unwrap().name, "started");
    host.terminate();
    let end = stream.last().unwrap();
    assert_eq!(
        (end.name.as_str(), end.data["stop_reason"].as_str()),
        ("end", Some("cancelled"))
    );
    assert_eq!(host.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
