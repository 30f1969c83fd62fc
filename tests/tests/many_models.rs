//! One host serving several models from one models file (issue #21): the echo plugin, SmolLM2,
//! the tiny Stable Diffusion checkpoint and Whisper tiny.en. Requests reach the worker of the
//! model they name, idle workers unload and load again on demand, a memory budget evicts the
//! least recently used worker, different models run at once, and an unloaded worker's memory
//! goes back to the system.

mod audio_support;

use audio_support::{MODEL_DIR, clip, normalise, provisioned, upload};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use rbee_tests::{
    Host, LLM_TEST_MODEL, ModelsFile, SseEvent, SseStream, models_dir, streamed_text,
    tiny_sd_checkpoint, wait_until,
};
use reqwest::blocking::Response;
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// An entry serving SmolLM2 (the LLM test model) as `id`, on 2 threads.
fn smol(id: &str) -> Value {
    let model = models_dir().join(LLM_TEST_MODEL);
    assert!(
        model.is_file(),
        "the test model is missing at {}: run `cargo xtask models`",
        model.display()
    );
    json!({"id": id, "plugin": "llm-cpu", "model": model, "threads": 2})
}

/// The four test models' entries: `echo` (with `echo_fields` added), `smol`, `tiny-sd` and
/// `whisper`.
fn four_models(echo_fields: Value) -> Vec<Value> {
    let mut echo = json!({"id": "echo", "plugin": "echo-cpu"});
    let added = echo_fields.as_object().expect("fields are a JSON object");
    echo.as_object_mut().unwrap().extend(added.clone());
    vec![
        echo,
        smol("smol"),
        json!({"id": "tiny-sd", "plugin": "sd-cpu", "model": tiny_sd_checkpoint()}),
        json!({"id": "whisper", "plugin": "audio-cpu", "model": provisioned(MODEL_DIR), "threads": 2}),
    ]
}

/// Each entry's state in `GET /v1/models`, by id.
fn states(host: &Host) -> BTreeMap<String, String> {
    let list: Value = host.get("/v1/models").json().expect("JSON");
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no model list: {list}"))
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().into(),
                m["state"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// The states `expected` as [`states`] gives them.
fn expect_states(expected: &[(&str, &str)]) -> BTreeMap<String, String> {
    expected
        .iter()
        .map(|(id, state)| (id.to_string(), state.to_string()))
        .collect()
}

/// A response's JSON body, asserting a 200 (`what` names the request).
fn ok(response: Response, what: &str) -> Value {
    let status = response.status();
    let body: Value = response.json().expect("a JSON body");
    assert_eq!(status, 200, "{what}: {body}");
    body
}

/// `GET /v1/models/{id}`, asserting a 200.
fn model(host: &Host, id: &str) -> Value {
    ok(host.get(&format!("/v1/models/{id}")), id)
}

/// `POST /v1/models/{id}/{action}` (`load` or `unload`), asserting a 200; the model object.
fn load_or_unload(host: &Host, id: &str, action: &str) -> Value {
    let path = format!("/v1/models/{id}/{action}");
    ok(host.post(&path, &json!({})), &path)
}

/// A short chat completion of `model` (none: the host picks), asserting a 200; the answer.
fn chat(host: &Host, model: Option<&str>) -> Value {
    let mut request = json!({
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 8,
    });
    if let Some(model) = model {
        request["model"] = json!(model);
    }
    ok(host.post("/v1/chat/completions", &request), "chat")
}

/// The text of a chat completion's first choice.
fn content(answer: &Value) -> &str {
    answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
}

const MIB: u64 = 1024 * 1024;

#[test]
fn each_route_reaches_the_worker_of_the_model_it_names() {
    let file = ModelsFile::new(&four_models(json!({})));
    let host = file.serve(&[]);
    let echo = host
        .submit_job(&json!({"model": "echo", "task": "echo", "params": {"text": "to the echo"}}));
    assert_eq!(
        streamed_text(&host.stream(&echo).collect_all()),
        "to the echo"
    );

    let answer = chat(&host, Some("smol"));
    assert_eq!(answer["model"], "smol", "{answer}");
    assert!(!content(&answer).trim().is_empty(), "{answer}");

    let request =
        json!({"model": "tiny-sd", "prompt": "a cube", "size": "64x64", "steps": 2, "seed": 4});
    let images = ok(host.post("/v1/images/generations", &request), "images");
    let png = BASE64
        .decode(images["data"][0]["b64_json"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[1..4], b"PNG");

    let (wav, reference) = clip("hello_world");
    let fields = [("model", "whisper"), ("response_format", "json")];
    let transcript = ok(upload(&host, &wav, "clip.wav", &fields), "transcription");
    assert_eq!(
        normalise(transcript["text"].as_str().unwrap()),
        normalise(&reference)
    );

    assert_eq!(
        states(&host),
        expect_states(&[
            ("echo", "loaded"),
            ("smol", "loaded"),
            ("tiny-sd", "loaded"),
            ("whisper", "loaded")
        ])
    );
}

#[test]
fn the_model_list_shows_every_entry_with_its_plugin_tasks_state_and_pinning() {
    let file = ModelsFile::new(&four_models(json!({"pinned": true, "aliases": ["repeat"]})));
    let host = file.serve(&[]);
    let list: Value = host.get("/v1/models").json().unwrap();
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"].as_array().unwrap().len(), 4, "{list}");
    for (id, plugin, task, state, pinned, aliases) in [
        (
            "echo",
            "echo-cpu",
            "echo",
            "loaded",
            true,
            json!(["repeat"]),
        ),
        (
            "smol",
            "llm-cpu",
            "text-generation",
            "unloaded",
            false,
            json!([]),
        ),
        (
            "tiny-sd",
            "sd-cpu",
            "image-generation",
            "unloaded",
            false,
            json!([]),
        ),
        (
            "whisper",
            "audio-cpu",
            "transcription",
            "unloaded",
            false,
            json!([]),
        ),
    ] {
        let listed = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not listed: {list}"));
        let expected = json!({"object": "model", "owned_by": plugin, "plugin": plugin, "state": state, "pinned": pinned, "aliases": aliases});
        for (field, value) in expected.as_object().unwrap() {
            assert_eq!(&listed[field], value, "{field} of {listed}");
        }
        let tasks = listed["tasks"].as_array().unwrap();
        assert!(tasks.contains(&json!(task)), "{listed}");
        let detail = model(&host, id);
        assert_eq!(detail["state"], state, "{detail}");
        if !pinned {
            let keep_alive = detail["keep_alive_seconds"].as_f64();
            assert_eq!(keep_alive, Some(300.0), "the default is 5m: {detail}");
        }
    }
}

#[test]
fn an_unknown_model_is_404_naming_the_models_served_and_an_ambiguous_job_without_one_is_400() {
    let mut entries = four_models(json!({}));
    entries.push(json!({"id": "echo-2", "plugin": "echo-cpu"}));
    let file = ModelsFile::new(&entries);
    let host = file.serve(&[]);
    // OpenAI's errors name the request field `param`, the native API's `field`.
    for (route, request, naming) in [
        (
            "/v1/chat/completions",
            json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
            "param",
        ),
        (
            "/v1/jobs",
            json!({"model": "nope", "task": "echo", "params": {"text": "hi"}}),
            "field",
        ),
    ] {
        let response = host.post(route, &request);
        let status = response.status();
        let body: Value = response.json().unwrap();
        assert_eq!(status, 404, "{route}: {body}");
        let error = &body["error"];
        assert_eq!(
            (&error["code"], &error[naming]),
            (&json!("model_not_found"), &json!("model")),
            "{route}: {body}"
        );
        let message = error["message"].as_str().unwrap();
        for id in ["'nope'", "echo", "echo-2", "smol", "tiny-sd", "whisper"] {
            assert!(message.contains(id), "{route}: {message}");
        }
    }
    let response = host.post(
        "/v1/jobs",
        &json!({"task": "echo", "params": {"text": "hi"}}),
    );
    let status = response.status();
    let body: Value = response.json().unwrap();
    assert_eq!(status, 400, "two entries serve echo: {body}");
    assert_eq!(body["error"]["field"], "model", "{body}");
}

#[test]
fn without_a_model_a_request_goes_to_the_one_entry_serving_its_task_and_aliases_name_entries() {
    let file = ModelsFile::new(&four_models(json!({"aliases": ["repeat"]})));
    let host = file.serve(&[]);
    let unnamed = host.submit("echo", json!({"text": "no model named"}));
    let events = host.stream(&unnamed).collect_all();
    assert_eq!(streamed_text(&events), "no model named");
    let aliased = host
        .submit_job(&json!({"model": "repeat", "task": "echo", "params": {"text": "by alias"}}));
    assert_eq!(
        streamed_text(&host.stream(&aliased).collect_all()),
        "by alias"
    );
    assert!(!content(&chat(&host, None)).trim().is_empty());
    assert_eq!(states(&host)["smol"], "loaded");
}

/// keep_alive 3 s on echo, and a load that takes 1.5 s, so a stream opened right after the
/// submission sees it.
#[test]
fn an_idle_model_unloads_after_its_keep_alive_and_the_next_job_loads_it_again() {
    let echo = json!({"keep_alive": "3s", "options": {"load_delay_ms": 1500}});
    let file = ModelsFile::new(&four_models(echo));
    let host = file.serve(&[]);
    assert_eq!(states(&host)["echo"], "unloaded");
    let job = json!({"model": "echo", "task": "echo", "params": {"text": "first"}});
    let events = host.stream(&host.submit_job(&job)).collect_all();
    let ended = Instant::now();
    assert_eq!(streamed_text(&events), "first");
    assert_eq!(states(&host)["echo"], "loaded");

    wait_until("echo to unload", Duration::from_secs(30), || {
        states(&host)["echo"] == "unloaded"
    });
    let idle = ended.elapsed();
    assert!(
        idle >= Duration::from_secs(2),
        "unloaded {idle:?} after its job, keep_alive is 3 s"
    );
    let log = host.log();
    assert!(
        log.lines()
            .any(|l| l.contains("model unloaded") && l.contains("echo")),
        "{log}"
    );

    let job = json!({"model": "echo", "task": "echo", "params": {"text": "second"}});
    let events = host.stream(&host.submit_job(&job)).collect_all();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    let loading = names.iter().position(|n| *n == "loading");
    let started = names.iter().position(|n| *n == "started");
    assert!(
        matches!((loading, started), (Some(l), Some(s)) if l < s),
        "{names:?}"
    );
    let first_loading = &events[loading.unwrap()].data;
    assert_eq!(first_loading["model"], "echo", "{first_loading}");
    assert_eq!(streamed_text(&events), "second");
    assert_eq!(events.last().unwrap().data["stop_reason"], "completed");
    assert_eq!(states(&host)["echo"], "loaded");
}

/// Three entries of the same SmolLM2 file, so all three are the same size; the budget holds
/// two and a half of them. Loading the third evicts the least recently used of the other two,
/// not the first loaded; a request for the evicted one loads it again and evicts the one now
/// least recently used.
#[test]
fn a_memory_budget_for_two_models_evicts_the_least_recently_used() {
    let file = ModelsFile::new(&[smol("smol-a"), smol("smol-b"), smol("smol-c")]);
    let sizes: Vec<u64> = {
        let unbounded = file.serve(&[]);
        ["smol-a", "smol-b", "smol-c"]
            .iter()
            .map(|id| {
                load_or_unload(&unbounded, id, "load");
                let loaded = model(&unbounded, id);
                let size = loaded["memory_bytes"].as_u64();
                size.unwrap_or_else(|| panic!("no memory_bytes: {loaded}"))
            })
            .collect()
    };
    assert!(
        sizes[0] > 50 * MIB && sizes.iter().all(|s| *s == sizes[0]),
        "{sizes:?}"
    );
    let budget = (sizes[0] * 5 / 2).to_string();
    let host = file.serve(&["--max-memory", &budget]);

    load_or_unload(&host, "smol-a", "load");
    load_or_unload(&host, "smol-b", "load");
    assert!(!content(&chat(&host, Some("smol-a"))).is_empty());
    load_or_unload(&host, "smol-c", "load");
    assert_eq!(
        states(&host),
        expect_states(&[
            ("smol-a", "loaded"),
            ("smol-b", "unloaded"),
            ("smol-c", "loaded")
        ]),
        "budget {budget}, sizes {sizes:?}; log:\n{}",
        host.log()
    );

    assert!(!content(&chat(&host, Some("smol-b"))).is_empty());
    assert_eq!(
        states(&host),
        expect_states(&[
            ("smol-a", "unloaded"),
            ("smol-b", "loaded"),
            ("smol-c", "loaded")
        ]),
        "smol-a was used before smol-c was loaded; log:\n{}",
        host.log()
    );
}

/// A slow echo job (a word every 15 s) runs while SmolLM2 answers a streamed chat: both count
/// as running at the same moment, and the chat's answer is complete while the echo job still
/// runs.
#[test]
fn requests_to_different_models_run_at_the_same_time() {
    let file = ModelsFile::new(&four_models(json!({})));
    let host = file.serve(&[]);
    let slow =
        json!({"model": "echo", "task": "echo", "params": {"text": "a b c d", "delay_ms": 15000}});
    let echo = host.submit_job(&slow);
    wait_until("the echo job to run", Duration::from_secs(60), || {
        host.job_state(&echo) == "running"
    });

    let request = json!({
        "model": "smol",
        "messages": [{"role": "user", "content": "Tell me a story."}],
        "max_tokens": 128,
        "stream": true,
    });
    let response = host.post("/v1/chat/completions", &request);
    assert_eq!(response.status(), 200);
    let mut chunks = SseStream::new(response);
    let first = chunks.next().expect("a first chunk");
    let running = |id: &str| model(&host, id)["queue"]["running"].clone();
    wait_until("both models to run a job", Duration::from_secs(60), || {
        running("smol") == 1 && running("echo") == 1
    });
    let rest: Vec<SseEvent> = chunks.collect();
    let text: String = std::iter::once(&first)
        .chain(&rest)
        .filter_map(|chunk| chunk.data["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!text.trim().is_empty(), "{rest:?}");
    assert_eq!(
        host.job_state(&echo),
        "running",
        "the chat should not wait for the echo job"
    );
    host.delete(&format!("/v1/jobs/{echo}"));
}

/// SmolLM2 adds over 80 MiB to the host when loaded and used. After each unload the host's RSS
/// is back within max(64 MiB, 25% of what that load added) of its figure before the first load.
/// The model is loaded and unloaded twice, so memory held back by each unload cannot pass
/// unseen.
#[test]
fn an_unloaded_worker_gives_its_memory_back() {
    let file = ModelsFile::new(&four_models(json!({})));
    let host = file.serve(&[]);
    let before = host.resident_bytes();
    for round in 1..=2 {
        load_or_unload(&host, "smol", "load");
        assert!(!content(&chat(&host, Some("smol"))).is_empty());
        let loaded = host.resident_bytes();
        let added = loaded.saturating_sub(before);
        assert!(
            added > 80 * MIB,
            "round {round}: loading SmolLM2 added only {} MiB",
            added / MIB
        );

        let unloaded = load_or_unload(&host, "smol", "unload");
        assert_eq!(unloaded["state"], "unloaded", "{unloaded}");
        let allowed = (64 * MIB).max(added / 4);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut after = host.resident_bytes();
        while after > before + allowed && Instant::now() < deadline {
            // Pacing between samples; the loop is bounded by `deadline`.
            std::thread::sleep(Duration::from_millis(100));
            after = host.resident_bytes();
        }
        assert!(
            after <= before + allowed,
            "round {round}: RSS {} MiB before the first load, {} MiB loaded, {} MiB after the \
             unload (allowed: {} MiB over)",
            before / MIB,
            loaded / MIB,
            after / MIB,
            allowed / MIB
        );
    }
}
