//! Kubernetes, played on loopback: rbee-host is started exactly as deploy/k8s/base/deployment.yaml
//! starts it (its args and env, `$PORT`, the API key from the environment, `--host 0.0.0.0`),
//! with the echo test plugin in place of the model. The test then does what the kubelet does
//! (startup, readiness and liveness probes, SIGTERM within the grace period) and what the
//! inference gateway's endpoint picker does (scrape /metrics for the gauges named in
//! deploy/k8s/components/gaie/epp-config.yaml).
//!
//! The manifest is read with a small line-based reader (no YAML dependency), so the manifest
//! and this test cannot drift apart.

use rbee_tests::{SseStream, host_bin, plugins_dir, wait_until, workspace_root};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

// ---- the manifest -----------------------------------------------------------------------------

/// What the base Deployment says about the rbee-host container.
#[derive(Debug)]
struct Manifest {
    args: Vec<String>,
    /// (name, literal value, or None when it comes from a Secret).
    env: Vec<(String, Option<String>)>,
    container_port: u16,
    /// Probe kind (`startupProbe`, ...) → (path, period seconds, failure threshold).
    probes: Vec<(String, String, u64, u64)>,
    pre_stop_seconds: u64,
    grace_seconds: u64,
    pod_labels: Vec<(String, String)>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn unquote(value: &str) -> String {
    let value = value.trim();
    let value = value.split(" #").next().unwrap_or(value).trim();
    value.trim_matches('"').trim_matches('\'').to_string()
}

/// The lines nested under the first line `key:` at or after `from`.
fn block<'a>(lines: &[&'a str], key: &str) -> Vec<&'a str> {
    let start = lines
        .iter()
        .position(|l| l.trim() == format!("{key}:") || l.trim() == format!("- {key}:"))
        .unwrap_or_else(|| panic!("`{key}:` not found in the manifest"));
    let level = indent(lines[start])
        + if lines[start].trim().starts_with("- ") {
            2
        } else {
            0
        };
    lines[start + 1..]
        .iter()
        .copied()
        .filter(|l| !l.trim().starts_with('#'))
        .take_while(|l| l.trim().is_empty() || indent(l) > level)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The value of the first `key: value` line in `lines`.
fn field(lines: &[&str], key: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        let l = l.trim().trim_start_matches("- ");
        l.strip_prefix(&format!("{key}:"))
            .map(unquote)
            .filter(|v| !v.is_empty())
    })
}

fn number(lines: &[&str], key: &str) -> u64 {
    field(lines, key)
        .unwrap_or_else(|| panic!("`{key}` missing"))
        .parse()
        .expect("a number")
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(workspace_root().join("deploy/k8s/base/deployment.yaml"))
        .expect("reading deploy/k8s/base/deployment.yaml");
    let lines: Vec<&str> = text.lines().collect();
    let template = block(&lines, "template");
    let pod_labels = block(&block(&template, "metadata"), "labels")
        .iter()
        .filter_map(|l| {
            l.trim()
                .split_once(": ")
                .map(|(k, v)| (k.to_string(), unquote(v)))
        })
        .collect();
    let container = block(&template, "containers");
    let args = block(&container, "args")
        .iter()
        .map(|l| unquote(l.trim().trim_start_matches("- ")))
        .collect();
    let mut env = Vec::new();
    let env_lines = block(&container, "env");
    let item_indent = indent(env_lines[0]);
    for (at, line) in env_lines.iter().enumerate() {
        if indent(line) == item_indent && line.trim().starts_with("- name:") {
            let item: Vec<&str> = env_lines[at + 1..]
                .iter()
                .copied()
                .take_while(|l| indent(l) > item_indent)
                .collect();
            env.push((field(&[line], "name").unwrap(), field(&item, "value")));
        }
    }
    let probes = ["startupProbe", "readinessProbe", "livenessProbe"]
        .iter()
        .map(|kind| {
            let probe = block(&container, kind);
            let path = field(&probe, "path").expect("an httpGet path");
            (
                kind.to_string(),
                path,
                number(&probe, "periodSeconds"),
                number(&probe, "failureThreshold"),
            )
        })
        .collect();
    Manifest {
        args,
        env,
        container_port: number(&block(&container, "ports"), "containerPort") as u16,
        probes,
        pre_stop_seconds: number(&block(&container, "preStop"), "seconds"),
        grace_seconds: number(&lines, "terminationGracePeriodSeconds"),
        pod_labels,
    }
}

impl Manifest {
    fn flag(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.args.get(i + 1))
            .map(String::as_str)
    }

    fn env(&self, name: &str) -> Option<&Option<String>> {
        self.env.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn probe(&self, kind: &str) -> (&str, u64, u64) {
        let (_, path, period, threshold) =
            self.probes.iter().find(|p| p.0 == kind).expect("the probe");
        (path, *period, *threshold)
    }

    fn shutdown_timeout(&self) -> u64 {
        self.flag("--shutdown-timeout")
            .map_or(30, |s| s.parse().expect("a number"))
    }
}

/// The metric names the endpoint picker reads for rbee pods, from the gaie overlay's config.
fn picker_metric_names() -> [String; 3] {
    let text = std::fs::read_to_string(
        workspace_root().join("deploy/k8s/components/gaie/epp-config.yaml"),
    )
    .expect("reading the endpoint-picker config");
    let lines: Vec<&str> = text.lines().collect();
    let engine = block(&lines, "engineConfigs");
    assert_eq!(
        field(&engine, "name").as_deref(),
        Some("rbee"),
        "the picker config maps engine `rbee`"
    );
    ["queuedRequestsSpec", "runningRequestsSpec", "kvUsageSpec"].map(|key| {
        field(&engine, key).unwrap_or_else(|| panic!("{key} missing in the picker config"))
    })
}

#[test]
fn the_manifest_starts_rbee_host_as_kubernetes_needs() {
    let m = manifest();
    assert_eq!(m.flag("--host"), Some("0.0.0.0"), "reachable on the pod IP");
    assert!(
        !m.args.iter().any(|a| a.starts_with("--port")),
        "the port comes from $PORT"
    );
    assert!(
        !m.args
            .iter()
            .any(|a| a.starts_with("--api-key") || a == "--insecure-no-auth")
    );
    assert!(m.flag("--plugin").is_some());
    assert_eq!(
        m.env("PORT"),
        Some(&Some(m.container_port.to_string())),
        "$PORT is the container port"
    );
    assert_eq!(
        m.env("RBEE_API_KEY"),
        Some(&None),
        "the API key comes from a Secret"
    );
    assert!(m.env("RBEE_CACHE_DIR").is_some_and(Option::is_some));
    assert_eq!(m.probe("startupProbe").0, "/ready");
    assert_eq!(m.probe("readinessProbe").0, "/ready");
    assert_eq!(m.probe("livenessProbe").0, "/health");
    let (_, period, threshold) = m.probe("startupProbe");
    assert!(
        period * threshold >= 120,
        "the startup probe leaves time to load a model"
    );
    assert!(
        m.grace_seconds >= m.pre_stop_seconds + m.shutdown_timeout() + 15,
        "terminationGracePeriodSeconds {} < preStop {} + --shutdown-timeout {} + 15",
        m.grace_seconds,
        m.pre_stop_seconds,
        m.shutdown_timeout()
    );
    assert!(
        m.pod_labels
            .contains(&("llm-d.ai/engine-type".into(), "rbee".into())),
        "{:?}",
        m.pod_labels
    );
    assert_eq!(
        picker_metric_names(),
        [
            "rbee_num_requests_waiting",
            "rbee_num_requests_running",
            "rbee_kv_cache_usage_ratio"
        ]
    );
}

// ---- the pod ----------------------------------------------------------------------------------

/// rbee-host started like the container, killed when dropped.
struct Pod {
    child: Child,
    url: String,
    key: String,
    log: Arc<Mutex<String>>,
}

impl Pod {
    fn start(m: &Manifest) -> (Pod, tempfile::TempDir) {
        // The args of the manifest, with the echo test worker (1.5 s to "load") for the model.
        let mut args = m.args.clone();
        let at = |args: &[String], flag: &str| {
            args.iter().position(|a| a == flag).expect("the flag") + 1
        };
        let plugin = at(&args, "--plugin");
        args[plugin] = "echo-cpu".into();
        if let Some(model) = args.iter().position(|a| a == "--model") {
            args[model + 1] = "parrot".into();
        }
        for device_specific in ["--device", "--threads"] {
            if let Some(i) = args.iter().position(|a| a == device_specific) {
                args.drain(i..i + 2);
            }
        }
        args.extend([
            "--plugins-dir".into(),
            plugins_dir().to_str().unwrap().into(),
        ]);
        args.extend([
            "--plugin-options".into(),
            r#"{"load_delay_ms": 1500}"#.into(),
        ]);

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let key = format!("k8s-test-{}", std::process::id());
        let cache = tempfile::tempdir().unwrap();
        let mut command = Command::new(host_bin());
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in &m.env {
            let value = match name.as_str() {
                "PORT" => port.to_string(),
                "RBEE_API_KEY" => key.clone(),
                "RBEE_CACHE_DIR" => cache.path().to_str().unwrap().to_string(),
                _ => value
                    .clone()
                    .unwrap_or_else(|| panic!("no test value for secret env {name}")),
            };
            command.env(name, value);
        }
        let mut child = command.spawn().expect("starting rbee-host");
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        (
            Pod {
                child,
                url: format!("http://127.0.0.1:{port}"),
                key,
                log,
            },
            cache,
        )
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A probe as the kubelet sends it: no credentials, a short timeout; None if nothing answered.
    fn probe(&self, path: &str) -> Option<(u16, Value)> {
        let client = Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let response = client.get(format!("{}{path}", self.url)).send().ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().unwrap_or(Value::Null)))
    }

    fn authed(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        Client::builder()
            .timeout(None)
            .build()
            .unwrap()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key)
    }

    fn submit(&self, params: Value) -> Response {
        self.authed(reqwest::Method::POST, "/v1/jobs")
            .json(&json!({"task": "echo", "params": params}))
            .send()
            .unwrap()
    }

    fn job_state(&self, id: &str) -> String {
        let body: Value = self
            .authed(reqwest::Method::GET, &format!("/v1/jobs/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        body["state"].as_str().unwrap_or_default().to_string()
    }

    fn terminate(&self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the series `name{...}` in a Prometheus text exposition.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let metric = series.split('{').next()?;
        (metric == name).then(|| value.parse().ok()).flatten()
    })
}

#[test]
fn kubelet_and_endpoint_picker_drive_rbee_host_as_the_manifest_starts_it() {
    let m = manifest();
    let (mut pod, _cache) = Pod::start(&m);

    // Startup: the process answers /health at once; /ready is 503 while the model loads, then
    // 200, within the startup probe's budget. Liveness never fails meanwhile.
    let (_, period, threshold) = m.probe("startupProbe");
    let budget = Duration::from_secs((period * threshold).min(60));
    let started = Instant::now();
    let (mut loading_seen, mut ready) = (false, false);
    while started.elapsed() < budget {
        let health = pod.probe(m.probe("livenessProbe").0);
        if let Some(health) = health {
            assert_eq!(
                health.0, 200,
                "/health must stay 200 while loading: {health:?}"
            );
            match pod.probe(m.probe("startupProbe").0) {
                Some((503, body)) => {
                    assert_eq!(body["status"], "loading", "{body}");
                    loading_seen = true;
                }
                Some((200, body)) => {
                    assert_eq!(body["status"], "ready");
                    ready = true;
                    break;
                }
                other => panic!("unexpected /ready answer {other:?}"),
            }
        }
        // The probe period; the loop is bounded by the startup budget.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        ready,
        "not ready within the startup budget; log:\n{}",
        pod.log()
    );
    assert!(
        loading_seen,
        "/ready never answered 503 while loading; log:\n{}",
        pod.log()
    );
    assert_eq!(pod.probe(m.probe("readinessProbe").0).unwrap().0, 200);

    // On 0.0.0.0 the API needs the key from the Secret; probes and metrics do not.
    let anonymous = Client::new()
        .get(format!("{}/v1/info", pod.url))
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        pod.authed(reqwest::Method::GET, "/v1/info")
            .send()
            .unwrap()
            .status(),
        200
    );

    // Load: one job running, one waiting. The picker scrapes /metrics without credentials.
    let submit = |params: Value| -> String {
        let response = pod.submit(params);
        assert_eq!(response.status(), 202);
        response.json::<Value>().unwrap()["job_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let running = submit(json!({"text": "a b c d e f g h i j", "delay_ms": 150}));
    let queued = submit(json!({"text": "waits"}));
    wait_until("the job to run", Duration::from_secs(10), || {
        pod.job_state(&running) == "running"
    });
    let metrics = Client::new()
        .get(format!("{}/metrics", pod.url))
        .send()
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().unwrap();
    let [queued_name, running_name, kv_name] = picker_metric_names();
    assert_eq!(
        gauge(&text, &queued_name),
        Some(1.0),
        "{queued_name} in\n{text}"
    );
    assert_eq!(
        gauge(&text, &running_name),
        Some(1.0),
        "{running_name} in\n{text}"
    );
    let kv = gauge(&text, &kv_name).unwrap_or_else(|| panic!("{kv_name} missing in\n{text}"));
    assert!((0.0..=1.0).contains(&kv), "{kv_name} = {kv}");
    if m.flag("--metrics-compat") == Some("vllm") {
        // What a picker without rbee's mapping reads through its default (vllm) mapping.
        assert_eq!(gauge(&text, "vllm:num_requests_waiting"), Some(1.0));
        assert_eq!(gauge(&text, "vllm:num_requests_running"), Some(1.0));
        assert!(gauge(&text, "vllm:kv_cache_usage_perc").is_some());
    }

    // Termination: (the preStop sleep has passed) SIGTERM with a stream open.
    let response = pod
        .authed(reqwest::Method::GET, &format!("/v1/jobs/{running}/stream"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = SseStream::new(response);
    assert_eq!(stream.next().expect("an event").name, "started");
    let terminated = Instant::now();
    pod.terminate();
    wait_until("/ready to report draining", Duration::from_secs(10), || {
        pod.probe(m.probe("readinessProbe").0)
            .is_some_and(|(status, _)| status == 503)
    });

    let ready = pod
        .probe(m.probe("readinessProbe").0)
        .expect("answers while draining");
    assert_eq!(
        (ready.0, ready.1["status"].as_str()),
        (503, Some("draining")),
        "{ready:?}"
    );
    assert_eq!(
        pod.probe(m.probe("livenessProbe").0).map(|h| h.0),
        Some(200),
        "draining is alive"
    );
    let refused = pod.submit(json!({"text": "too late"}));
    assert_eq!(refused.status(), 503);
    let retry_after = refused
        .headers()
        .get("retry-after")
        .expect("Retry-After on 503");
    assert!(
        retry_after.to_str().unwrap().parse::<u64>().is_ok(),
        "{retry_after:?}"
    );
    assert_eq!(pod.job_state(&queued), "cancelled");

    let rest: Vec<_> = stream.collect();
    let end = rest.last().expect("the stream ends with an event");
    assert_eq!(
        (end.name.as_str(), end.data["stop_reason"].as_str()),
        ("end", Some("completed")),
        "{rest:?}"
    );
    assert_eq!(rest.iter().filter(|e| e.name == "token").count(), 10);

    // Exit 0 before the kubelet would SIGKILL: grace period less the preStop sleep.
    let limit = Duration::from_secs(m.grace_seconds - m.pre_stop_seconds);
    let status = loop {
        if let Some(status) = pod.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            terminated.elapsed() < limit,
            "still running after {limit:?}; log:\n{}",
            pod.log()
        );
        // Pacing between polls; the loop is bounded by `limit`.
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "log:\n{}", pod.log());
    assert!(
        terminated.elapsed() < Duration::from_secs(m.shutdown_timeout()),
        "the drain waited for nothing"
    );
}
