//! Crash isolation (the default): the echo plugin runs in a child process and is told to
//! segfault, abort or overflow its stack at a given word. The host never dies: the running
//! jobs end with `plugin_crashed`, the plugin process restarts with a growing back-off, and
//! queued jobs run once it is back. Jobs through the child stream, stop and end as in-process.

use rbee_tests::{Host, SseEvent, streamed_text, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

/// An isolated echo host whose plugin crashes `how` at the word `boom`, running `parallel`
/// jobs at once. Loading takes a second, so that the restart can be watched.
fn crashing_host(how: &str, parallel: u32) -> Host {
    let options = json!({
        "crash_at_word": "boom", "crash_with": how, "parallel": parallel, "load_delay_ms": 1000
    });
    Host::start_echo(&["--plugin-options", &options.to_string()])
}

fn events(host: &Host, params: Value) -> Vec<SseEvent> {
    host.stream(&host.submit("echo", params)).collect_all()
}

/// The job's last event, which must be its only terminal one.
fn terminal(events: &[SseEvent]) -> &SseEvent {
    let terminals: Vec<&SseEvent> = events
        .iter()
        .filter(|e| e.name == "end" || e.name == "error")
        .collect();
    assert_eq!(terminals.len(), 1, "{events:?}");
    assert_eq!(events.last().map(|e| &e.name), Some(&terminals[0].name));
    terminals[0]
}

fn crashes(host: &Host) -> u64 {
    let model: Value = host.get("/v1/models/echo").json().unwrap();
    model["crashes"].as_u64().unwrap()
}

/// The id of the newest plugin process, from the host's log.
fn plugin_pids(host: &Host) -> Vec<u32> {
    host.log()
        .lines()
        .filter_map(|line| {
            line.split("the plugin runs in a process of its own, pid ")
                .nth(1)
        })
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.split_whitespace()
            .nth(2)
            .is_none_or(|state| state != "Z")
    })
}

#[test]
fn a_segfault_fails_the_running_jobs_and_the_plugin_restarts_for_the_queued_ones() {
    let host = crashing_host("segfault", 3);
    let first_pid = plugin_pids(&host)[0];
    let slow = json!({"text": "one two three four five six seven eight", "delay_ms": 300});
    let running: Vec<String> = (0..2).map(|_| host.submit("echo", slow.clone())).collect();
    wait_until("two jobs run", Duration::from_secs(10), || {
        running.iter().all(|id| host.job_state(id) == "running")
    });
    let crashing = host.submit("echo", json!({"text": "a boom b"}));
    let queued = host.submit("echo", json!({"text": "after the restart"}));
    for id in running.iter().chain([&crashing]) {
        let events = host.stream(id).collect_all();
        let end = terminal(&events);
        assert_eq!(end.name, "error", "{events:?}");
        assert_eq!(end.data["code"], "plugin_crashed");
        let message = end.data["message"].as_str().unwrap();
        assert!(message.contains("SIGSEGV"), "{message}");
    }
    wait_until("/ready shows the reload", Duration::from_secs(10), || {
        let ready: Value = host.get("/ready").json().unwrap();
        ready["models"]["echo"] == "loading"
    });
    assert!(
        host.log().contains("restarting it in 0.5 s"),
        "{}",
        host.log()
    );
    let during = host.submit("echo", json!({"text": "during the restart"}));
    for (id, text) in [
        (&queued, "after the restart"),
        (&during, "during the restart"),
    ] {
        let after = host.stream(id).collect_all();
        assert_eq!(
            terminal(&after).data["stop_reason"],
            "completed",
            "{after:?}"
        );
        assert_eq!(streamed_text(&after), text);
    }
    host.wait_ready(Duration::from_secs(10));
    assert_eq!(crashes(&host), 1);
    assert!(!is_running(first_pid), "the crashed process is gone");
    assert!(is_running(*plugin_pids(&host).last().unwrap()));
}

#[test]
fn an_abort_is_named_and_crashes_in_a_row_wait_longer_before_the_restart() {
    let host = crashing_host("abort", 1);
    for (crash, delay) in [(1, "0.5"), (2, "1.0")] {
        let events = events(&host, json!({"text": "boom"}));
        let message = terminal(&events).data["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains("SIGABRT"), "{message}");
        let logged = format!("restarting it in {delay} s");
        wait_until("the restart is logged", Duration::from_secs(10), || {
            host.log().matches("restarting it in").count() == crash
        });
        assert!(
            host.log().contains(&logged),
            "crash {crash}: {}",
            host.log()
        );
        host.wait_ready(Duration::from_secs(10));
        assert_eq!(crashes(&host), crash as u64);
    }
}

#[test]
fn a_stack_overflow_is_a_crash_too_and_the_host_keeps_answering() {
    let host = crashing_host("stack_overflow", 1);
    let events = events(&host, json!({"text": "deep boom"}));
    let end = terminal(&events);
    assert_eq!(end.data["code"], "plugin_crashed");
    let message = end.data["message"].as_str().unwrap();
    assert!(message.contains("stack overflow"), "{message}");
    assert_eq!(host.get("/health").status(), 200);
    host.wait_ready(Duration::from_secs(10));
    let again = events_after_restart(&host);
    assert_eq!(streamed_text(&again), "still here");
}

fn events_after_restart(host: &Host) -> Vec<SseEvent> {
    events(host, json!({"text": "still here"}))
}

#[test]
fn isolated_jobs_stream_stop_and_end_as_in_process() {
    let host = Host::start_echo(&["--plugin-options", r#"{"parallel": 2}"#]);
    let done = events(&host, json!({"text": "the quick brown fox"}));
    assert_eq!(streamed_text(&done), "the quick brown fox");
    assert_eq!(terminal(&done).data["words"], 4);

    let slow = json!({"text": "a b c d e f g h", "delay_ms": 500});
    let cancelled = host.submit("echo", slow.clone());
    wait_until("the job runs", Duration::from_secs(10), || {
        host.job_state(&cancelled) == "running"
    });
    assert_eq!(host.delete(&format!("/v1/jobs/{cancelled}")).status(), 200);
    let events = host.stream(&cancelled).collect_all();
    let end = terminal(&events);
    assert_eq!(end.data["stop_reason"], "cancelled", "{events:?}");
    assert_eq!(
        end.data["stop_reason_seen"], "cancelled",
        "the plugin saw the stop"
    );

    let late = host.submit_job(&json!({"task": "echo", "params": slow, "timeout": 0.3}));
    let events = host.stream(&late).collect_all();
    assert_eq!(terminal(&events).data["stop_reason"], "deadline_exceeded");
    assert_eq!(
        terminal(&events).data["stop_reason_seen"],
        "deadline_exceeded"
    );
    assert_eq!(crashes(&host), 0);
}

#[test]
fn the_plugin_process_ends_with_the_host() {
    let mut host = Host::start_echo(&[]);
    let pid = plugin_pids(&host)[0];
    assert!(is_running(pid));
    host.terminate();
    assert!(host.wait_exit(Duration::from_secs(20)).success());
    wait_until("the plugin process ends", Duration::from_secs(10), || {
        !is_running(pid)
    });
}

#[test]
fn an_isolated_image_job_returns_its_png() {
    let host = Host::start_sd(&[]);
    let params = json!({"prompt": "a red cube", "steps": 2, "seed": 3, "width": 64, "height": 64});
    let events = host
        .stream(&host.submit("image-generation", params))
        .collect_all();
    assert_eq!(events.iter().filter(|e| e.name == "progress").count(), 2);
    let artifact = events
        .iter()
        .find(|e| e.name == "artifact")
        .expect("an image");
    assert_eq!(artifact.data["media_type"], "image/png");
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        artifact.data["data"].as_str().unwrap(),
    )
    .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG crossed the pipe whole");
    assert_eq!(terminal(&events).data["stop_reason"], "completed");
}
