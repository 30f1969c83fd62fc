//! What orchestrators and operators rely on, for any plugin: auth, metrics, request ids,
//! limits, CORS, $PORT, heartbeats.

use rbee_tests::{FakeHive, Host, plugins_dir, run_host, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

fn echo_args(extra: &[&'static str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--plugin",
        "echo-cpu",
        "--plugins-dir",
        plugins_dir().to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

#[test]
fn an_api_key_guards_everything_but_the_probes_and_metrics() {
    let host = Host::start_echo(&["--api-key", "s3cret"]);
    for open in ["/health", "/ready", "/metrics"] {
        assert_eq!(host.get(open).status(), 200, "{open}");
    }
    let refused = host.get("/v1/info");
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    let body: Value = refused.json().unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    let wrong = client()
        .get(format!("{}/v1/info", host.url))
        .bearer_auth("s3cre")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = client()
        .get(format!("{}/v1/info", host.url))
        .bearer_auth("s3cret")
        .send()
        .unwrap();
    assert_eq!(right.status(), 200);
    let job = client()
        .post(format!("{}/v1/jobs", host.url))
        .bearer_auth("s3cret")
        .json(&json!({"task": "echo", "params": {"text": "hi"}}))
        .send()
        .unwrap();
    assert_eq!(job.status(), 202);
}

#[test]
fn a_public_address_needs_a_key_or_an_explicit_opt_out() {
    let args = echo_args(&["--host", "0.0.0.0", "--port", "0"]);
    let output = run_host(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs an API key"));
    let host = Host::start_echo(&["--host", "0.0.0.0", "--insecure-no-auth"]);
    assert_eq!(host.get("/health").status(), 200);
}

#[test]
fn metrics_show_the_queue_jobs_and_tokens_labelled_with_the_model() {
    let host = Host::start_echo(&["--model", "parrot", "--metrics-compat", "vllm"]);
    let done = host.submit("echo", json!({"text": "one two three"}));
    host.stream(&done).collect_all();
    let slow = host.submit("echo", json!({"text": "a b c d e f g h", "delay_ms": 5000}));
    let queued = host.submit("echo", json!({"text": "x"}));
    wait_until("the slow job to run", Duration::from_secs(10), || {
        host.job_state(&slow) == "running"
    });
    let response = host.get("/metrics");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let text = response.text().unwrap();
    for series in [
        r#"rbee_num_requests_waiting{model_name="parrot"} 1"#,
        r#"rbee_num_requests_running{model_name="parrot"} 1"#,
        r#"vllm:num_requests_waiting{model_name="parrot"} 1"#,
        r#"rbee_kv_cache_usage_ratio{model_name="parrot"} 0"#,
        r#"rbee_jobs_total{model_name="parrot",outcome="completed"} 1"#,
        r#"rbee_tokens_generated_total{model_name="parrot"} 3"#,
        r#"rbee_job_duration_seconds_count{model_name="parrot"} 1"#,
        r#"rbee_time_to_first_event_seconds_count{model_name="parrot"} 1"#,
        r#"rbee_model_load_seconds{model_name="parrot"}"#,
        r#"rbee_plugin_load_seconds{model_name="parrot"}"#,
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    host.delete(&format!("/v1/jobs/{queued}"));
    host.delete(&format!("/v1/jobs/{slow}"));
}

#[test]
fn request_ids_are_honoured_or_made() {
    let host = Host::start_echo(&[]);
    let given = client()
        .get(format!("{}/health", host.url))
        .header("x-request-id", "abc-123")
        .send()
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "abc-123");
    let made = host.get("/health");
    assert!(made.headers()["x-request-id"].len() >= 32);
}

#[test]
fn oversized_bodies_get_413_in_json() {
    let host = Host::start_echo(&["--max-body-bytes", "1000"]);
    let response = host.post(
        "/v1/jobs",
        &json!({"task": "echo", "params": {"text": "x".repeat(2000)}}),
    );
    assert_eq!(response.status(), 413);
    assert_eq!(response.json::<Value>().unwrap()["error"]["field"], "body");

    // A Content-Length over the limit is answered at once, without waiting for the body.
    use std::io::{Read, Write};
    let address = host.url.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        socket,
        "POST /v1/jobs HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: 73400320\r\n\r\n"
    )
    .unwrap();
    let mut answer = [0u8; 512];
    let read = socket.read(&mut answer).expect("an answer before the body");
    let head = String::from_utf8_lossy(&answer[..read]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

#[test]
fn cors_allows_the_listed_origins() {
    let host = Host::start_echo(&["--cors-origin", "http://ui.example"]);
    let preflight = client()
        .request(reqwest::Method::OPTIONS, format!("{}/v1/jobs", host.url))
        .header("origin", "http://ui.example")
        .header("access-control-request-method", "POST")
        .send()
        .unwrap();
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://ui.example"
    );
    let other = client()
        .get(format!("{}/health", host.url))
        .header("origin", "http://evil.example")
        .send()
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[test]
fn the_port_may_come_from_the_environment() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = [
        "--plugin",
        "echo-cpu",
        "--plugins-dir",
        plugins_dir().to_str().unwrap(),
    ];
    let mut child = std::process::Command::new(rbee_tests::host_bin())
        .args(args)
        .env("PORT", port.to_string())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/health");
    wait_until(
        &format!("an answer on $PORT {port}"),
        Duration::from_secs(20),
        || reqwest::blocking::get(&url).is_ok_and(|r| r.status() == 200),
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn heartbeats_reach_the_hive_back_off_while_it_is_down_and_resume() {
    let hive = FakeHive::start(0);
    let (port, record, hive_url) = (hive.port, hive.received(), hive.url());
    let mut host = Host::start_echo(&[
        "--heartbeat-interval",
        "1",
        "--worker-id",
        "w-1",
        "--hive-url",
        &hive_url,
    ]);

    let ready = hive.wait_for("/v1/workers/ready", 1, Duration::from_secs(10), |_| true);
    assert_eq!(ready[0].body["state"], "ready");
    assert_eq!(ready[0].body["worker_id"], "w-1");
    assert_eq!(ready[0].body["plugin_id"], "echo-cpu");
    assert_eq!(ready[0].body["url"], host.url);
    assert_eq!(ready[0].body["slots"], 1, "{}", ready[0].body);
    for field in [
        "model",
        "device",
        "queue_depth",
        "jobs_running",
        "memory_bytes",
        "plugin_version",
    ] {
        assert!(
            !ready[0].body[field].is_null(),
            "{field} missing: {}",
            ready[0].body
        );
    }
    let beats = hive.wait_for("/v1/workers/heartbeat", 2, Duration::from_secs(10), |b| {
        b["state"] == "ready"
    });
    let gap = beats[1].at - beats[0].at;
    assert!(
        gap >= Duration::from_millis(700) && gap <= Duration::from_millis(2500),
        "interval {gap:?}"
    );

    drop(hive);
    wait_until(
        "the host to log that the hive is unreachable",
        Duration::from_secs(10),
        || host.log().contains("the hive is unreachable"),
    );
    // Fixed on purpose: retries (at most 1 s apart) fail meanwhile and must not log again.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        host.log().matches("the hive is unreachable").count(),
        1,
        "{}",
        host.log()
    );
    assert_eq!(host.get("/health").status(), 200);
    let before = record.lock().unwrap().len();
    let hive = FakeHive::start_recording(port, record.clone());
    hive.wait_for(
        "/v1/workers/heartbeat",
        before + 1,
        Duration::from_secs(10),
        |_| true,
    );
    wait_until(
        "the host to log that the hive is reachable again",
        Duration::from_secs(10),
        || host.log().contains("reachable again"),
    );

    host.terminate();
    assert_eq!(host.wait_exit(Duration::from_secs(15)).code(), Some(0));
    hive.wait_for("/v1/workers/heartbeat", 1, Duration::from_secs(5), |b| {
        b["state"] == "stopping"
    });
}

#[test]
fn load_progress_is_a_bar_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let transcript = dir.path().join("terminal.txt");
    let command = format!(
        "{} --plugin echo-cpu --plugins-dir {} --port 0 --plugin-options '{{\"load_delay_ms\": 1200}}'",
        rbee_tests::host_bin().display(),
        plugins_dir().display()
    );
    let mut terminal = std::process::Command::new("script")
        .args(["-qfec", &command])
        .arg(&transcript)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("script (util-linux) runs the host under a pseudo-terminal");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    while !seen.contains("model loaded; ready") {
        assert!(
            std::time::Instant::now() < deadline,
            "the host never became ready:\n{seen}"
        );
        // Pacing between reads of the transcript; the loop is bounded by `deadline`.
        std::thread::sleep(Duration::from_millis(100));
        seen = std::fs::read_to_string(&transcript).unwrap_or_default();
    }
    let _ = terminal.kill();
    let _ = std::process::Command::new("pkill")
        .args(["-f", "load_delay_ms\": 1200"])
        .status();
    let _ = terminal.wait();
    assert!(
        seen.contains('█') && seen.contains("% pretending to load"),
        "no progress bar:\n{seen}"
    );
}

#[test]
fn json_logs_carry_request_ids_and_plugin_lines_with_the_plugin_id() {
    let host = Host::start_echo(&["--log-format", "json"]);
    let response = client()
        .post(format!("{}/v1/jobs", host.url))
        .header("x-request-id", "trace-me-42")
        .json(&json!({"task": "echo", "params": {"text": "hi"}}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 202);
    wait_until(
        "a log line with the request id",
        Duration::from_secs(10),
        || host.log().contains("trace-me-42"),
    );
    let log = host.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let request = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "trace-me-42")
        .unwrap_or_else(|| panic!("no line carries the request id:\n{log}"));
    assert_eq!(request["span"]["path"], "/v1/jobs");
    let plugin_line = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("loaded model"))
        })
        .unwrap_or_else(|| panic!("the plugin's log line is missing:\n{log}"));
    assert_eq!(plugin_line["fields"]["plugin"], "echo-cpu");

    let panicking = host.submit("echo", json!({"text": "a b c", "panic_after": 1}));
    assert_eq!(
        host.stream(&panicking).collect_all().last().unwrap().name,
        "error"
    );
    wait_until("the panic's log line", Duration::from_secs(10), || {
        host.log().contains("panicked")
    });
    for line in host.log().lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}
