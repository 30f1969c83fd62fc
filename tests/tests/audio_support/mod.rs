//! What the audio tests share: the provisioned model and clips, a host serving them, transcript
//! comparison and OpenAI's multipart upload.
#![allow(dead_code, reason = "each audio test file uses a part of it")]

use base64::{Engine, engine::general_purpose::STANDARD};
use rbee_tests::{Host, models_dir, plugins_dir};
use reqwest::blocking::Response;
use std::path::PathBuf;

/// The test model: Whisper tiny.en in CTranslate2 layout, under the models dir.
pub const MODEL_DIR: &str = "whisper-tiny.en-ct2";

/// A file or dir `cargo xtask models` provisions; fails the test if it is missing.
pub fn provisioned(relative: &str) -> PathBuf {
    let path = models_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models`",
        path.display()
    );
    path
}

/// A ready host running audio-cpu on the test model.
pub fn audio_host() -> Host {
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
pub fn clip(name: &str) -> (Vec<u8>, String) {
    let wav = std::fs::read(provisioned(&format!("speech/{name}.wav"))).unwrap();
    let text = std::fs::read_to_string(provisioned(&format!("speech/{name}.txt"))).unwrap();
    (wav, text)
}

/// Standard base64, as the native job API takes audio.
pub fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Lower case, punctuation dropped: transcripts compare on words.
pub fn normalise(text: &str) -> String {
    let kept: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `POST /v1/audio/transcriptions` with `file` (sent as `filename`) and the other form fields,
/// as multipart.
pub fn upload(host: &Host, file: &[u8], filename: &str, fields: &[(&str, &str)]) -> Response {
    upload_to(host, "/v1/audio/transcriptions", file, filename, fields)
}

/// `POST` to `route` with `file` (sent as `filename`) and the other form fields, as multipart.
pub fn upload_to(
    host: &Host,
    route: &str,
    file: &[u8],
    filename: &str,
    fields: &[(&str, &str)],
) -> Response {
    let fields: Vec<(&str, String)> = fields.iter().map(|(k, v)| (*k, v.to_string())).collect();
    rbee_tests::openai_fields::post_form(host, route, &fields, &[("file", filename, file)])
}
