//! A real `rbee-host` process on a free port, and one-shot runs of the CLI.

use crate::{SseStream, host_bin};
use reqwest::blocking::{Client, Response};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The LLM test model's file name in the models dir.
pub const LLM_TEST_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// A running `rbee-host`, killed when dropped.
pub struct Host {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: Arc<Mutex<String>>,
    client: Client,
}

impl Host {
    /// Runs a Python `script` that talks to this host through the official `openai` package
    /// (`BASE_URL` in its environment) and prints one JSON object; returns that object.
    pub fn run_openai_client(&self, script: &str) -> Value {
        let output = Command::new("python3")
            .args(["-c", script])
            .env("BASE_URL", &self.url)
            .output()
            .expect("python3");
        assert!(
            output.status.success(),
            "the openai client failed (is the `openai` package installed? `cargo xtask test` installs it):\n{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        serde_json::from_slice(&output.stdout).expect("the client prints one JSON object")
    }

    /// Starts `rbee-host` with `args` on a free port and waits until it listens.
    pub fn start(args: &[&str]) -> Host {
        Self::start_with_env(args, &[])
    }

    /// Like [`Host::start`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Host {
        Self::start_bin(host_bin(), args, env)
    }

    /// Like [`Host::start_with_env`], running another build of the host: `bin`.
    pub fn start_bin(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Host {
        let mut child = Command::new(bin)
            .args(args)
            .args(["--port", "0"])
            .envs(env.iter().copied())
            .env("RBEE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting rbee-host");
        let log = Arc::new(Mutex::new(String::new()));
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on ".len()..];
                    let url = rest
                        .split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .unwrap_or_default();
                    let _ = url_tx.send(url.to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = url_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "rbee-host did not start listening; log:\n{}",
                    log.lock().unwrap()
                )
            });
        let client = Client::builder()
            .timeout(None)
            .build()
            .expect("an HTTP client");
        Host {
            child,
            url,
            log,
            client,
        }
    }

    /// Starts `rbee-host` serving the installed echo test plugin, with `extra` flags, and waits
    /// until it is ready.
    pub fn start_echo(extra: &[&str]) -> Host {
        let dir = crate::plugins_dir()
            .to_str()
            .expect("a UTF-8 path")
            .to_string();
        let mut args = vec!["--plugin", "echo-cpu", "--plugins-dir", dir.as_str()];
        args.extend_from_slice(extra);
        Self::start_ready(&args)
    }

    /// Starts `rbee-host` serving the installed llm plugin on the provisioned test model
    /// (SmolLM2-135M-Instruct, Q4_1 GGUF) with 2 threads and `extra` flags, and waits until it
    /// is ready.
    pub fn start_llm(extra: &[&str]) -> Host {
        let dir = crate::plugins_dir()
            .to_str()
            .expect("a UTF-8 path")
            .to_string();
        let model = crate::models_dir().join(LLM_TEST_MODEL);
        assert!(
            model.is_file(),
            "the test model is missing at {}: run `cargo xtask models`",
            model.display()
        );
        let model = model.to_str().expect("a UTF-8 path").to_string();
        let mut args = vec![
            "--plugin",
            "llm-cpu",
            "--plugins-dir",
            dir.as_str(),
            "--model",
            model.as_str(),
            "--threads",
            "2",
        ];
        args.extend_from_slice(extra);
        Self::start_ready(&args)
    }

    /// Starts `rbee-host` serving the installed SD plugin on the tiny random-weight checkpoint
    /// (written once per test process), with `extra` flags, and waits until it is ready.
    pub fn start_sd(extra: &[&str]) -> Host {
        let dir = crate::plugins_dir()
            .to_str()
            .expect("a UTF-8 path")
            .to_string();
        let model = crate::tiny_sd_checkpoint()
            .to_str()
            .expect("a UTF-8 path")
            .to_string();
        let mut args = vec![
            "--plugin",
            "sd-cpu",
            "--plugins-dir",
            &dir,
            "--model",
            &model,
        ];
        args.extend_from_slice(extra);
        Self::start_ready(&args)
    }

    /// Starts `rbee-host` serving the installed rerank plugin on the model directory `model`,
    /// with `extra` flags, and waits until it is ready.
    pub fn start_rerank(model: &Path, extra: &[&str]) -> Host {
        let dir = crate::plugins_dir()
            .to_str()
            .expect("a UTF-8 path")
            .to_string();
        let model = model.to_str().expect("a UTF-8 path");
        let mut args = vec![
            "--plugin",
            "rerank-cpu",
            "--plugins-dir",
            &dir,
            "--model",
            model,
        ];
        args.extend_from_slice(extra);
        Self::start_ready(&args)
    }

    /// Starts `rbee-host` and waits until `/ready` answers 200.
    pub fn start_ready(args: &[&str]) -> Host {
        let host = Self::start(args);
        host.wait_ready(Duration::from_secs(120));
        host
    }

    /// Waits for `/ready` to answer 200.
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.get("/ready").status() != 200 {
            assert!(
                Instant::now() < deadline,
                "not ready in time; log:\n{}",
                self.log()
            );
            // Pacing between polls; the loop is bounded by `deadline`.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The host process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The resident memory (`VmRSS`) of the host and its plugin processes, in bytes.
    pub fn resident_bytes(&self) -> u64 {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid()));
        let children: u64 = tasks
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|pids| {
                let pids: Vec<u32> = pids
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect();
                pids
            })
            .map(resident_bytes)
            .sum();
        resident_bytes(self.pid()) + children
    }

    /// Everything the host wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .expect("GET")
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .expect("POST")
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Response {
        self.client
            .delete(format!("{}{path}", self.url))
            .send()
            .expect("DELETE")
    }

    /// Submits a job and returns its id, asserting a 202.
    pub fn submit(&self, task: &str, params: Value) -> String {
        self.submit_job(&serde_json::json!({"task": task, "params": params}))
    }

    /// Submits a job given its whole body (`task`, `params`, and `model` or other fields) and
    /// returns its id, asserting a 202.
    pub fn submit_job(&self, body: &Value) -> String {
        let response = self.post("/v1/jobs", body);
        let status = response.status();
        let body: Value = response.json().expect("a JSON body");
        assert_eq!(status, 202, "submit failed: {body}");
        body["job_id"].as_str().expect("a job id").to_string()
    }

    /// Opens a job's event stream.
    pub fn stream(&self, job_id: &str) -> SseStream {
        let response = self.get(&format!("/v1/jobs/{job_id}/stream"));
        assert_eq!(response.status(), 200, "stream failed");
        SseStream::new(response)
    }

    /// The job's state, from `GET /v1/jobs/{id}`.
    pub fn job_state(&self, job_id: &str) -> String {
        let body: Value = self
            .get(&format!("/v1/jobs/{job_id}"))
            .json()
            .expect("JSON");
        body["state"].as_str().unwrap_or_default().to_string()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    /// Waits for the process to exit, failing after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for rbee-host") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "rbee-host did not exit; log:\n{}",
                self.log()
            );
            // Pacing between polls; the loop is bounded by `deadline`.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `rbee-host args` to completion (for commands and start-up failures), with a time limit.
pub fn run_host(args: &[&str]) -> Output {
    let mut child = Command::new(host_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting rbee-host");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rbee-host {args:?} did not finish in 60 s");
        }
        // Pacing between polls; the loop is bounded by `deadline`.
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collecting output")
}

/// Process `pid`'s resident memory (`VmRSS`), in bytes; 0 if it cannot be read.
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// How many files process `pid` has open.
pub fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}
