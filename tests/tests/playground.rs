//! The playground in a real browser (issue #18): `tests/playground/check.py` drives headless
//! Chromium (Debian's `chromium`, through the `playwright` Python package) on the page the host
//! serves at `/`, for each worker type: the echo plugin's generated form and raw events, a chat
//! on SmolLM2 stopped with the stop button, Stable Diffusion's progress, previews and images on
//! the tiny checkpoint, a transcribed clip, the API key prompt, and a models file's picker.

mod audio_support;

use audio_support::{MODEL_DIR, audio_host, provisioned};
use rbee_tests::{
    Host, LLM_TEST_MODEL, ModelsFile, models_dir, tiny_sd_checkpoint, workspace_root,
};
use serde_json::json;
use std::{
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// The longest one check may take; each takes seconds.
const CHECK_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `check.py <url> <scenario> <args>` and fails with its output (and the host's log)
/// unless it exits 0. Without Chromium or playwright it fails saying how to install them.
fn browse(host: &Host, scenario: &str, args: &[&str]) {
    let script = workspace_root().join("tests/playground/check.py");
    let child = Command::new("python3")
        .arg("-B") // no __pycache__ in the work tree
        .arg(&script)
        .arg(&host.url)
        .arg(scenario)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running python3 {}: {e}", script.display()));
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let (output, timed_out) = match finished.recv_timeout(CHECK_TIMEOUT) {
        Ok(output) => (output, false),
        Err(_) => {
            // SAFETY: kill(2) has no memory preconditions; the id is our child's, not yet reaped
            // unless it exited this very moment.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            (finished.recv().expect("check.py's output"), true)
        }
    };
    let output = output.expect("collecting check.py's output");
    assert!(
        output.status.success() && !timed_out,
        "the playground's {scenario} check {}:\n{}{}\nhost log:\n{}",
        if timed_out { "timed out" } else { "failed" },
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        host.log()
    );
}

#[test]
fn the_echo_plugin_s_generated_form_submits_and_shows_the_raw_events() {
    browse(&Host::start_echo(&[]), "echo", &[]);
}

#[test]
fn a_chat_on_smollm2_streams_and_the_stop_button_ends_the_job_as_cancelled() {
    browse(&Host::start_llm(&[]), "llm", &[]);
}

#[test]
fn stable_diffusion_shows_progress_previews_and_the_final_image_and_inpaints() {
    browse(&Host::start_sd(&[]), "sd", &[]);
}

#[test]
fn an_uploaded_speech_clip_shows_its_transcript_and_timed_segments() {
    let wav = provisioned("speech/hello_world.wav");
    let text = provisioned("speech/hello_world.txt");
    browse(
        &audio_host(),
        "audio",
        &[wav.to_str().unwrap(), text.to_str().unwrap()],
    );
}

#[test]
fn with_an_api_key_the_page_asks_for_it_and_works_once_it_is_entered() {
    let host = Host::start_echo(&["--api-key", "sesame"]);
    let page = host.get("/");
    assert_eq!(page.status(), 200, "the page itself needs no key");
    assert!(page.text().unwrap().contains("API key required"));
    assert_eq!(host.get("/ui/app.js").status(), 200);
    assert_eq!(host.get("/v1/info").status(), 401, "the API still does");
    browse(&host, "key", &["sesame"]);
}

#[test]
fn the_model_picker_reaches_every_model_of_a_models_file() {
    let smol = models_dir().join(LLM_TEST_MODEL);
    let file = ModelsFile::new(&[
        json!({"id": "echo", "plugin": "echo-cpu"}),
        json!({"id": "smol", "plugin": "llm-cpu", "model": smol}),
        json!({"id": "tiny-sd", "plugin": "sd-cpu", "model": tiny_sd_checkpoint()}),
        json!({"id": "whisper", "plugin": "audio-cpu", "model": provisioned(MODEL_DIR)}),
    ]);
    browse(&file.serve(&[]), "models", &[]);
}
