//! The worker tested without a host, on a random-weight checkpoint written here (no real
//! Parler-TTS can be fetched): the audio is noise, so the tests check its form (chunks per
//! sentence, in order, 16-bit PCM at the asked rate and length), determinism, cancellation and
//! errors. plugin-api's recording sink and host services stand in for the host.

use crate::{
    load,
    tiny::{self, TinyKind},
    worker::SpeechWorker,
};
use rbee_plugin_api::{
    Job, LoadRequest, PluginWorker, error_code,
    tasks::{stop_reason, text_to_speech as tts},
    testing::{RecordedArtifact, RecordingSink, TestHost},
};
use serde_json::{Value, json};
use std::{path::Path, sync::OnceLock};

/// Frames per sentence the tests allow: 0.1 s at 86 frames per second.
const FRAMES: usize = 9;
/// Decoder steps per sentence: 9 codebooks, codebook `k` starting `k` steps late.
const STEPS: usize = FRAMES + 8;

/// The tiny checkpoint, written once per test process.
fn checkpoint() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        tiny::write(dir.path(), TinyKind::Tiny).unwrap();
        dir
    })
    .path()
}

/// A worker on the tiny checkpoint whose sentences last at most [`FRAMES`] frames.
fn worker() -> &'static SpeechWorker {
    static WORKER: OnceLock<SpeechWorker> = OnceLock::new();
    WORKER.get_or_init(|| {
        let mut request = LoadRequest::cpu(checkpoint().to_str().unwrap());
        request.options_json = r#"{"max_seconds_per_sentence": 0.1}"#.into();
        load(request, TestHost::default().api()).unwrap()
    })
}

fn job(params: Value) -> Job {
    Job::new("test", tts::TASK, &params.to_string())
}

/// Runs a job to completion: its chunks and end details.
fn run(params: Value) -> (Vec<RecordedArtifact>, Value) {
    let recording = RecordingSink::new();
    let end = worker().execute(job(params), recording.sink()).unwrap();
    assert_eq!(end.stop_reason.as_str(), stop_reason::COMPLETED);
    let details = serde_json::from_str(end.details_json.as_str()).unwrap();
    (recording.artifacts(), details)
}

fn samples(chunk: &RecordedArtifact) -> Vec<i16> {
    assert_eq!(chunk.data.len() % 2, 0);
    chunk
        .data
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect()
}

#[test]
fn each_sentence_is_a_chunk_of_pcm_in_order() {
    let (chunks, details) = run(json!({
        "input": "Hello world. Is the voice clear? The end",
        "voice": "nova",
    }));
    let texts = ["Hello world.", "Is the voice clear?", "The end"];
    assert_eq!(chunks.len(), texts.len());
    let mut total = 0;
    for (index, (chunk, text)) in chunks.iter().zip(texts).enumerate() {
        assert_eq!(chunk.media_type, tts::MEDIA_TYPE);
        let metadata: Value = serde_json::from_str(&chunk.metadata_json).unwrap();
        assert_eq!(metadata[tts::chunk::INDEX], index);
        assert_eq!(metadata[tts::chunk::TEXT], text);
        assert_eq!(metadata[tts::chunk::SAMPLE_RATE], 44_100);
        let pcm = samples(chunk);
        assert_eq!(
            pcm.len(),
            FRAMES * 512,
            "the codec makes 512 samples a frame"
        );
        assert!(pcm.iter().any(|&x| x != 0), "the audio is not silence");
        total += pcm.len();
    }
    assert_eq!(details[tts::end::SAMPLE_RATE], 44_100);
    let seconds = details[tts::end::AUDIO_SECONDS].as_f64().unwrap();
    assert!((seconds - total as f64 / 44_100.0).abs() < 1e-9);
    assert!(details[tts::end::FIRST_AUDIO_MS].as_f64().unwrap() > 0.0);
    assert!(details[tts::end::INPUT_TOKENS].as_u64().unwrap() > 3);
}

#[test]
fn the_rate_and_the_speed_change_the_length() {
    let length = |params: Value| samples(&run(params).0[0]).len();
    let native = length(json!({"input": "Hello."})) as f64;
    let at_24k = length(json!({"input": "Hello.", "sample_rate": 24_000}));
    assert_eq!(at_24k, (native * 24_000.0 / 44_100.0).round() as usize);
    let fast = length(json!({"input": "Hello.", "sample_rate": 24_000, "speed": 2.0}));
    assert_eq!(fast, (native * 12_000.0 / 44_100.0).round() as usize);
}

#[test]
fn the_seed_fixes_the_audio_and_the_voice_changes_it() {
    let audio = |params: Value| run(params).0[0].data.clone();
    let first = audio(json!({"input": "Hello.", "seed": 7}));
    assert_eq!(first, audio(json!({"input": "Hello.", "seed": 7})));
    assert_ne!(
        first,
        audio(json!({"input": "Hello.", "seed": 7, "voice": "onyx"}))
    );
    assert_ne!(
        first,
        audio(json!({"input": "Hello.", "seed": 7, "instructions": "A deep voice."}))
    );
}

#[test]
fn a_cancelled_job_stops_within_a_frame() {
    let recording = RecordingSink::new().stop_at_poll(STEPS + 3);
    let input = json!({"input": "One. Two. Three."});
    let end = worker().execute(job(input), recording.sink()).unwrap();
    assert_eq!(end.stop_reason.as_str(), stop_reason::CANCELLED);
    assert_eq!(
        recording.artifacts().len(),
        1,
        "only the first sentence was spoken"
    );
    assert!(recording.polls() <= STEPS + 4, "{}", recording.polls());
}

#[test]
fn bad_jobs_are_refused_naming_the_field() {
    let error = worker()
        .validate(&job(json!({"input": "hi", "voice": "hal"})))
        .unwrap_err();
    assert_eq!(error.code.as_str(), error_code::INVALID_PARAMS);
    assert_eq!(error.field.into_option().unwrap().as_str(), "voice");
    let error = worker()
        .validate(&Job::new("t", "transcription", r#"{"input": "hi"}"#))
        .unwrap_err();
    assert_eq!(error.code.as_str(), error_code::UNSUPPORTED_TASK);
    assert!(
        worker()
            .validate(&job(json!({"input": "hi", "voice": "Emily"})))
            .is_ok()
    );
}

#[test]
fn a_directory_that_is_not_parler_tts_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(checkpoint().join(file), dir.path().join(file)).unwrap();
    }
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
    let request = LoadRequest::cpu(dir.path().to_str().unwrap());
    let error = load(request, TestHost::default().api()).err().unwrap();
    assert_eq!(error.code.as_str(), error_code::MODEL_LOAD);
    assert!(
        error.message.contains("not a Parler-TTS config"),
        "{}",
        error.message
    );
}
