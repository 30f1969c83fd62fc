//! `GET /openapi.json`, checked by schemathesis against the running host for the echo, llm,
//! tiny-SD and tiny rerank plugins: generated requests (valid and invalid) on every route, and
//! chains that follow the document's links (submit a job, then stream, get and cancel it). A run
//! fails on a 5xx, a crash, an answer the document does not describe (status, content type,
//! body, headers), an error body outside the promised shape, or an invalid request that is
//! accepted.
//!
//! The settings and hooks are in `tests/schemathesis/`. `RBEE_FUZZ_EXAMPLES` sets the examples
//! per operation (default 12), `RBEE_FUZZ_SEED` the seed (default fixed; `random` for a new one
//! each run): `cargo xtask fuzz-api` runs the same tests at length.

use rbee_tests::{Host, workspace_root};
use serde_json::{Value, json};
use std::{process::Command, sync::Mutex};

/// The schemathesis runs one at a time: each already keeps the host busy.
static ONE_RUN: Mutex<()> = Mutex::new(());

/// The seed of the bounded run, so that CI draws the same cases every time.
const SEED: &str = "20261202";

/// Runs schemathesis against `host` and fails with its report if it finds anything.
fn schemathesis(host: &Host) {
    let _one = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = workspace_root().join("tests").join("schemathesis");
    let installed = Command::new("python3")
        .args(["-c", "import schemathesis"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        installed,
        "schemathesis is not installed: `cargo xtask test` installs it (the version pinned as \
         SCHEMATHESIS in xtask/src/run.rs), or `python3 -m pip install schemathesis`"
    );
    let examples = std::env::var("RBEE_FUZZ_EXAMPLES").unwrap_or_else(|_| "12".into());
    let seed = std::env::var("RBEE_FUZZ_SEED").unwrap_or_else(|_| SEED.into());
    let mut command = Command::new("python3");
    command
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/openapi.json", host.url))
        .args(["--max-examples", &examples]);
    if seed != "random" {
        command.args(["--seed", &seed]);
    }
    let output = command.current_dir(&dir).output().expect("running python3");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}\nhost log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        host.log()
    );
    assert!(
        report.contains("Stateful (in"),
        "no stateful phase ran:\n{report}"
    );
    eprintln!("{report}");
}

#[test]
fn schemathesis_finds_nothing_on_the_echo_plugin() {
    schemathesis(&Host::start_echo(&["--queue-size", "10000"]));
}

#[test]
fn schemathesis_finds_nothing_on_the_llm() {
    schemathesis(&Host::start_llm(&["--queue-size", "10000"]));
}

#[test]
fn schemathesis_finds_nothing_on_tiny_stable_diffusion() {
    schemathesis(&Host::start_sd(&["--queue-size", "10000"]));
}

#[test]
fn schemathesis_finds_nothing_on_the_reranker() {
    let model = rbee_tests::tiny_rerank_checkpoint("bert");
    schemathesis(&Host::start_rerank(&model, &["--queue-size", "10000"]));
}

#[test]
fn the_document_is_openapi_3_1_with_each_model_s_job_parameters() {
    let host = Host::start_echo(&[]);
    let document: Value = host.get("/openapi.json").json().unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let schemas = &document["components"]["schemas"];
    let info: Value = host.get("/v1/info").json().unwrap();
    let mut params = info["plugin"]["params_schema"].clone();
    params.as_object_mut().unwrap().remove("$schema");
    assert_eq!(schemas["Params.echo"], params);
    let job = &schemas["JobRequest"];
    assert_eq!(
        job["properties"]["params"]["$ref"],
        "#/components/schemas/Params.echo"
    );
    assert_eq!(job["properties"]["task"]["enum"], json!(["echo"]));
}

/// Found by schemathesis: a job waited for (`?wait=true`) while its model was not loaded was
/// queued unchecked, so bad parameters came back as a failed job's 500 instead of a 400.
#[test]
fn a_job_waited_for_while_its_model_is_unloaded_is_checked_before_it_runs() {
    let host = Host::start_echo(&[]);
    assert_eq!(
        host.post("/v1/models/echo/unload", &json!({})).status(),
        200
    );
    let response = host.post(
        "/v1/jobs?wait=true",
        &json!({"task": "echo", "params": {"text": "hi", "delay_ms": 1.5}}),
    );
    let status = response.status();
    let body: Value = response.json().unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "delay_ms", "{body}");
}

/// Found by schemathesis: OpenAI fields of the wrong type were taken for absent
/// (`stream_options: false` gave a normal answer).
#[test]
fn openai_fields_of_the_wrong_type_are_400_naming_them() {
    let host = Host::start_llm(&[]);
    let messages = json!([{"role": "user", "content": "Hi"}]);
    for (field, value) in [
        ("stream_options", json!(false)),
        ("stream", json!("yes")),
        ("model", json!(5)),
    ] {
        let mut body = json!({"messages": messages, "max_tokens": 1});
        body[field] = value;
        let response = host.post("/v1/chat/completions", &body);
        let status = response.status();
        let answer: Value = response.json().unwrap();
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["error"]["param"], field, "{answer}");
    }
}
