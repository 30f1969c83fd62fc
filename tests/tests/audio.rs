//! The audio plugin (Whisper tiny.en, CTranslate2) through a running host over HTTP: native
//! jobs with segment events, and OpenAI's multipart transcription route.

use rbee_tests::{Host, SseEvent, models_dir, plugins_dir};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

const MODEL_DIR: &str = "whisper-tiny.en-ct2";

fn provisioned(relative: &str) -> std::path::PathBuf {
    let path = models_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models`",
        path.display()
    );
    path
}

fn audio_host() -> Host {
    let dir = plugins_dir().to_str().unwrap().to_string();
    let model = provisioned(MODEL_DIR).to_str().unwrap().to_string();
    Host::start_ready(&[
        "--plugin",
        "audio-cpu",
        "--plugins-dir",
        &dir,
        "--model",
        &model,
        "--threads",
        "2",
    ])
}

/// A clip's wav bytes and its reference transcript.
fn clip(name: &str) -> (Vec<u8>, String) {
    let wav = std::fs::read(provisioned(&format!("speech/{name}.wav"))).unwrap();
    let text = std::fs::read_to_string(provisioned(&format!("speech/{name}.txt"))).unwrap();
    (wav, text)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(match i <= chunk.len() {
                true => ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char,
                false => '=',
            });
        }
    }
    out
}

/// Lower case, punctuation dropped: transcripts compare on words.
fn normalise(text: &str) -> String {
    let kept: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `POST /v1/audio/transcriptions` with `file` and the other form fields, as multipart.
fn upload(host: &Host, file: &[u8], fields: &[(&str, &str)]) -> Response {
    const BOUNDARY: &str = "rbee-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\ncontent-type: audio/wav\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Client::new()
        .post(format!("{}/v1/audio/transcriptions", host.url))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .expect("POST")
}

#[test]
fn a_native_job_streams_segments_with_the_right_text() {
    let host = audio_host();
    let (wav, reference) = clip("quick_brown_fox");
    let events: Vec<SseEvent> = host
        .stream(&host.submit("transcription", json!({"audio": base64(&wav)})))
        .collect_all();
    assert_eq!(events[0].name, "started");
    let text: String = events
        .iter()
        .filter(|e| e.name == "token")
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(normalise(&text), normalise(&reference));
    let segments: Vec<&Value> = events
        .iter()
        .filter(|e| e.name == "segment")
        .map(|e| &e.data)
        .collect();
    assert!(!segments.is_empty(), "{events:?}");
    for (i, segment) in segments.iter().enumerate() {
        assert_eq!(segment["index"], i as u64);
        assert!(
            segment["end"].as_f64().unwrap() > segment["start"].as_f64().unwrap(),
            "{segment}"
        );
    }
    let end = events.last().unwrap();
    assert_eq!(
        (end.name.as_str(), end.data["stop_reason"].as_str()),
        ("end", Some("completed"))
    );
    assert_eq!(end.data["segments"], segments.len() as u64);
    assert_eq!(end.data["language"], "en");
    assert!(end.data["real_time_factor"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_openai_route_answers_json_and_srt() {
    let host = audio_host();
    let (wav, reference) = clip("hello_world");
    let response = upload(
        &host,
        &wav,
        &[("model", "whisper-1"), ("response_format", "json")],
    );
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(
        normalise(body["text"].as_str().unwrap()),
        normalise(&reference),
        "{body}"
    );

    let (wav, reference) = clip("quick_brown_fox");
    let response = upload(
        &host,
        &wav,
        &[
            ("model", "whisper-1"),
            ("response_format", "srt"),
            ("language", "en"),
        ],
    );
    assert_eq!(response.status(), 200);
    let srt = response.text().unwrap();
    let mut lines = srt.lines();
    assert_eq!(lines.next(), Some("1"), "{srt}");
    let times = lines.next().unwrap();
    assert!(
        times.starts_with("00:00:0") && times.contains(" --> 00:00:0"),
        "{srt}"
    );
    assert!(
        times.contains(','),
        "SRT puts a comma before the milliseconds: {times}"
    );
    let cue_text: Vec<&str> = srt
        .lines()
        .filter(|l| l.chars().any(char::is_alphabetic))
        .collect();
    assert_eq!(normalise(&cue_text.join(" ")), normalise(&reference));
}

#[test]
fn undecodable_audio_gets_400_naming_audio() {
    let host = audio_host();
    let response = host.post(
        "/v1/jobs",
        &json!({"task": "transcription", "params": {"audio": base64(b"this is not sound")}}),
    );
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().unwrap()["error"]["field"], "audio");

    let response = upload(
        &host,
        b"this is not sound either",
        &[("response_format", "json")],
    );
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().unwrap()["error"]["param"], "audio");

    let response = upload(&host, &clip("hello_world").0, &[("response_format", "mp3")]);
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().unwrap()["error"]["param"],
        "response_format"
    );
}
