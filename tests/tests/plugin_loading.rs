//! Finding, checking and refusing plugins, as a user meets it on the command line.

use rbee_tests::{
    ApiChange, Host, echo_built_against, host_built_against, plugin_file, plugins_dir_with,
    run_host, set_mode, streamed_text,
};
use serde_json::{Value, json};
use std::{path::Path, process::Output, time::Duration};

const SO: &str = std::env::consts::DLL_EXTENSION;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn serve_once(plugin: &str, dir: &Path) -> Output {
    run_host(&[
        "--plugin",
        plugin,
        "--plugins-dir",
        dir.to_str().unwrap(),
        "--port",
        "0",
    ])
}

/// The refusal is one paragraph: one line, no layout dump.
fn assert_one_paragraph(message: &str) {
    let lines: Vec<&str> = message
        .lines()
        .filter(|l| l.starts_with("rbee-host:"))
        .collect();
    assert_eq!(lines.len(), 1, "{message}");
    assert!(lines[0].len() < 1200, "too long: {}", lines[0]);
}

#[test]
fn an_unknown_plugin_id_lists_the_ids_found() {
    let dir = plugins_dir_with(&["echo-cpu"]);
    let output = serve_once("llm-tpu", dir.path());
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("no plugin 'llm-tpu'") && message.contains("echo-cpu"),
        "{message}"
    );
}

#[test]
fn the_same_id_in_two_dirs_is_an_error_naming_both() {
    let (a, b) = (
        plugins_dir_with(&["echo-cpu"]),
        plugins_dir_with(&["echo-cpu"]),
    );
    let output = run_host(&[
        "--plugin",
        "echo-cpu",
        "--plugins-dir",
        a.path().to_str().unwrap(),
        "--plugins-dir",
        b.path().to_str().unwrap(),
    ]);
    let message = stderr(&output);
    assert!(!output.status.success());
    assert!(
        message.contains(a.path().to_str().unwrap())
            && message.contains(b.path().to_str().unwrap()),
        "{message}"
    );
}

#[test]
fn a_world_writable_plugins_dir_is_refused() {
    let dir = plugins_dir_with(&["echo-cpu"]);
    set_mode(dir.path(), 0o777);
    let output = serve_once("echo-cpu", dir.path());
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("writable by group or others"), "{message}");
    assert_one_paragraph(&message);
}

#[test]
fn a_shared_library_that_is_not_a_plugin_is_refused() {
    let dir = plugins_dir_with(&[]);
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("a libm to pose as a plugin");
    let fake = dir.path().join(format!("math-cpu.{SO}"));
    std::fs::copy(libm, &fake).unwrap();
    set_mode(&fake, 0o755);
    let message = stderr(&serve_once("math-cpu", dir.path()));
    assert!(message.contains("is not an rbee plugin"), "{message}");
    assert_one_paragraph(&message);
}

#[test]
fn a_corrupt_file_is_refused() {
    let dir = plugins_dir_with(&[]);
    let broken = dir.path().join(format!("broken-cpu.{SO}"));
    std::fs::write(&broken, b"\x7fELF but not really a library").unwrap();
    set_mode(&broken, 0o644);
    let output = serve_once("broken-cpu", dir.path());
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        message.contains("cannot be opened as a shared library"),
        "{message}"
    );
    assert_one_paragraph(&message);
}

#[test]
fn a_plugin_needing_cpu_features_this_cpu_lacks_is_refused_before_it_runs() {
    let dir = plugins_dir_with(&[]);
    let mut bytes = std::fs::read(plugin_file("echo-cpu")).unwrap();
    let magic = bytes
        .windows(8)
        .position(|w| w == b"RBEEPLG1")
        .expect("the preamble");
    let features = magic + 8 + 32;
    let wish = b"avx2,quantum-tunnelling\0";
    bytes[features..features + wish.len()].copy_from_slice(wish);
    let patched = dir.path().join(format!("echo-cpu.{SO}"));
    std::fs::write(&patched, bytes).unwrap();
    set_mode(&patched, 0o755);
    let message = stderr(&serve_once("echo-cpu", dir.path()));
    assert!(
        message.contains("CPU features this CPU lacks (quantum-tunnelling)"),
        "{message}"
    );
    assert_one_paragraph(&message);
}

#[test]
fn a_plugin_built_against_another_api_major_is_refused_with_both_versions() {
    let plugin = echo_built_against(&ApiChange::echo("api-three", "3.0.0"));
    let message = stderr(&serve_once("echo-cpu", plugin.parent().unwrap()));
    assert!(
        message.contains("plugin-api 3.0.0") && message.contains("plugin-api 2."),
        "{message}"
    );
    assert!(message.contains(plugin.to_str().unwrap()), "{message}");
    assert_one_paragraph(&message);
}

#[test]
fn a_plugin_built_against_plugin_api_1_is_refused_naming_both_majors() {
    let plugin = echo_built_against(&ApiChange {
        source: "tests/fixtures/plugin-api-1.0.0/src",
        version: "1.0.0",
        plugin: "tests/fixtures/plugin-api-1.0.0/echo/lib.rs",
        kit: false,
        ..ApiChange::echo("api-1.0.0", "1.0.0")
    });
    let message = stderr(&serve_once("echo-cpu", plugin.parent().unwrap()));
    assert!(
        message.contains("plugin-api 1.0.0") && message.contains("this host speaks plugin-api 2."),
        "{message}"
    );
    assert_one_paragraph(&message);
}

#[test]
fn a_plugin_whose_api_types_changed_shape_is_refused_with_the_layout_error() {
    let plugin = echo_built_against(&ApiChange {
        edit: Some(("manifest.rs", "pub threads: u32,", "pub threads: i32,")),
        ..ApiChange::echo("api-reshaped", "2.0.0")
    });
    let message = stderr(&serve_once("echo-cpu", plugin.parent().unwrap()));
    assert!(
        message.contains("type layouts differ at load.threads"),
        "{message}"
    );
    assert!(
        message.contains("expects u32, the plugin has i32"),
        "{message}"
    );
    assert!(message.contains(plugin.to_str().unwrap()), "{message}");
    assert_one_paragraph(&message);
}

#[test]
fn a_plugin_for_another_backend_than_the_device_is_refused() {
    let dir = plugins_dir_with(&["echo-cpu"]);
    let output = run_host(&[
        "--plugin",
        "echo-cpu",
        "--plugins-dir",
        dir.path().to_str().unwrap(),
        "--device",
        "cuda:0",
    ]);
    let message = stderr(&output);
    assert!(!output.status.success());
    assert!(
        message.contains("built for the cpu backend") && message.contains("echo-cuda"),
        "{message}"
    );
}

#[test]
fn plugins_list_shows_each_plugin_and_its_verdict() {
    let dir = plugins_dir_with(&["echo-cpu"]);
    std::fs::write(dir.path().join(format!("junk-cpu.{SO}")), b"junk").unwrap();
    set_mode(&dir.path().join(format!("junk-cpu.{SO}")), 0o644);
    let output = run_host(&[
        "plugins",
        "list",
        "--plugins-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    let header = table.lines().next().unwrap();
    for column in [
        "ID",
        "KIND",
        "BACKEND",
        "VERSION",
        "API",
        "PATH",
        "COMPATIBLE",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let echo = table
        .lines()
        .find(|l| l.starts_with("echo-cpu"))
        .expect("an echo row");
    assert!(
        echo.contains(" echo ") && echo.contains(" cpu ") && echo.trim_end().ends_with("yes"),
        "{table}"
    );
    let junk = table
        .lines()
        .find(|l| l.starts_with("junk-cpu"))
        .expect("a junk row");
    assert!(
        junk.contains("no: ") && junk.contains("cannot be opened"),
        "{table}"
    );
}

#[test]
fn ready_answers_503_with_progress_until_the_model_is_loaded() {
    let dir = plugins_dir_with(&["echo-cpu"]);
    let host = Host::start(&[
        "--plugin",
        "echo-cpu",
        "--plugins-dir",
        dir.path().to_str().unwrap(),
        "--plugin-options",
        r#"{"load_delay_ms": 1500}"#,
    ]);
    let loading = host.get("/ready");
    assert_eq!(loading.status(), 503);
    let body: Value = loading.json().unwrap();
    assert_eq!(body["status"], "loading");
    assert!(body["progress"].as_f64().unwrap() < 1.0);
    assert_eq!(host.get("/health").status(), 200);
    let early = host.post(
        "/v1/jobs",
        &json!({"task": "echo", "params": {"text": "x"}}),
    );
    assert_eq!(early.status(), 503);
    assert!(early.headers().contains_key("retry-after"));
    host.wait_ready(Duration::from_secs(20));
    assert_eq!(
        host.get("/ready").json::<Value>().unwrap()["status"],
        "ready"
    );
}

#[test]
fn a_model_that_fails_to_load_stops_the_host_with_the_reason() {
    let dir = plugins_dir_with(&["echo-cpu"]);
    for (options, expected) in [
        (
            r#"{"fail_load": "weights.bin is truncated"}"#,
            "weights.bin is truncated",
        ),
        (r#"{"panic_on_load": true}"#, "panicked"),
    ] {
        let mut host = Host::start(&[
            "--plugin",
            "echo-cpu",
            "--plugins-dir",
            dir.path().to_str().unwrap(),
            "--plugin-options",
            options,
        ]);
        let status = host.wait_exit(Duration::from_secs(20));
        assert_eq!(status.code(), Some(1), "{}", host.log());
        assert!(host.log().contains(expected), "{}", host.log());
    }
}

/// Today's plugin-api plus what a 2.3 minor could add (`tests/fixtures/plugin-api-2.3-additions`).
const API_2_3: ApiChange<'static> = ApiChange {
    name: "api-2.3.0",
    source: "plugin-api/src",
    version: "2.3.0",
    edit: Some(("lib.rs", "pub mod tasks;", "pub mod tasks;\npub mod later;")),
    added: &[(
        "later.rs",
        "tests/fixtures/plugin-api-2.3-additions/later.rs",
    )],
    plugin: "tests/fixtures/plugin-2.3/lib.rs",
    kit: false,
};

#[test]
fn a_plugin_built_against_the_oldest_promised_2x_release_still_loads_and_serves() {
    let plugin = echo_built_against(&ApiChange {
        source: "tests/fixtures/plugin-api-2.0.0/src",
        ..ApiChange::echo("api-2.0.0", "2.0.0")
    });
    let dir = plugin.parent().unwrap().to_str().unwrap().to_string();
    let host = Host::start_ready(&["--plugin", "echo-cpu", "--plugins-dir", &dir]);
    let events = host
        .stream(&host.submit("echo", json!({"text": "still works"})))
        .collect_all();
    assert_eq!(streamed_text(&events), "still works");
    assert_eq!(events.last().unwrap().data["stop_reason"], "completed");
}

#[test]
fn a_plugin_of_a_later_minor_using_a_new_capability_loads_and_falls_back_on_this_host() {
    let plugin = echo_built_against(&API_2_3);
    let dir = plugin.parent().unwrap().to_str().unwrap().to_string();
    let inspected = run_host(&["plugins", "inspect", plugin.to_str().unwrap()]);
    assert!(inspected.status.success(), "{}", stderr(&inspected));
    let report: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(
        (
            report["api_version"].clone(),
            report["capabilities"].clone()
        ),
        (json!("2.3.0"), json!(["rbee.shout/1"]))
    );
    let host = Host::start_ready(&["--plugin", "echo-cpu", "--plugins-dir", &dir]);
    let events = host.stream(&host.submit("echo", json!({}))).collect_all();
    assert_eq!(
        streamed_text(&events),
        "host version unknown (capability absent)"
    );
    assert_eq!(events.last().unwrap().data["stop_reason"], "completed");
}

#[test]
fn a_host_of_a_later_minor_loads_and_serves_todays_plugins() {
    let later_host = host_built_against(&API_2_3);
    let dir = plugins_dir_with(&["echo-cpu"]);
    let inspected = std::process::Command::new(&later_host)
        .args(["plugins", "inspect"])
        .arg(dir.path().join(format!("echo-cpu.{SO}")))
        .output()
        .unwrap();
    assert!(inspected.status.success(), "{}", stderr(&inspected));
    let report: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(
        (
            report["host_api_version"].clone(),
            report["api_version"].clone()
        ),
        (json!("2.3.0"), json!("2.2.0"))
    );
    let host = Host::start_bin(
        &later_host,
        &[
            "--plugin",
            "echo-cpu",
            "--plugins-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    host.wait_ready(Duration::from_secs(20));
    let events = host
        .stream(&host.submit("echo", json!({"text": "across minors"})))
        .collect_all();
    assert_eq!(streamed_text(&events), "across minors");
}

#[test]
fn a_library_whose_static_initialiser_crashes_is_refused_and_the_host_survives() {
    let dir = plugins_dir_with(&["echo-cpu"]);
    let source = dir.path().join("crash.c");
    std::fs::write(
        &source,
        "__attribute__((constructor)) static void boom(void) { *(volatile int *)0 = 1; }\n",
    )
    .unwrap();
    let library = dir.path().join(format!("crash-cpu.{SO}"));
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .expect("a C compiler (cc)");
    assert!(status.success());
    std::fs::remove_file(&source).unwrap();
    set_mode(&library, 0o755);
    let output = serve_once("crash-cpu", dir.path());
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("crashed a probe process"), "{message}");
    assert_one_paragraph(&message);
    let listed = run_host(&[
        "plugins",
        "list",
        "--plugins-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("crash-cpu") && l.contains("no: ")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("echo-cpu") && l.trim_end().ends_with("yes")),
        "{table}"
    );
}

#[test]
fn plugins_inspect_shows_the_manifest_schema_and_verdict() {
    let dir = plugins_dir_with(&["echo-cpu"]);
    let output = run_host(&[
        "plugins",
        "inspect",
        "echo-cpu",
        "--plugins-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["id"], "echo-cpu");
    assert_eq!(report["compatible"], true);
    assert_eq!(report["api_version"], report["host_api_version"]);
    assert_eq!(report["params_schema"]["required"], json!(["text"]));
    let by_path = run_host(&[
        "plugins",
        "inspect",
        dir.path().join(format!("echo-cpu.{SO}")).to_str().unwrap(),
    ]);
    assert!(by_path.status.success(), "{}", stderr(&by_path));
    let reshaped = echo_built_against(&ApiChange::echo("api-three", "3.0.0"));
    let refused = run_host(&["plugins", "inspect", reshaped.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("plugin-api 3.0.0"),
        "{}",
        stderr(&refused)
    );
}
