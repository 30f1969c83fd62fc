//! The real tts plugin through a running host: `POST /v1/audio/speech` with the official
//! `openai` Python SDK (every format, both stream formats) and the native `text-to-speech` job.
//! No real text-to-speech model can be fetched here, so the host serves a random-weight
//! Parler-TTS checkpoint the test writes: its speech is noise, and the tests check the audio's
//! form, that every format carries the same samples, the streaming order and the errors.

use rbee_tests::{Host, tiny_tts_checkpoint};
use serde_json::{Value, json};
use std::time::Duration;

/// Samples a sentence becomes: 9 codec frames of 512 samples at 44.1 kHz, resampled to 24 kHz.
const SENTENCE_SAMPLES: u64 = 2508;

/// A host serving the tiny checkpoint, each sentence cut at 0.1 s of audio.
fn host() -> Host {
    let model = tiny_tts_checkpoint()
        .to_str()
        .expect("a UTF-8 path")
        .to_string();
    let plugins = rbee_tests::plugins_dir().to_str().unwrap().to_string();
    Host::start_ready(&[
        "--plugin",
        "tts-cpu",
        "--plugins-dir",
        &plugins,
        "--model",
        &model,
        "--plugin-options",
        r#"{"max_seconds_per_sentence": 0.1}"#,
    ])
}

/// The SDK's answers: every format of one input (same seed, so the same samples), decoded.
const SDK_FORMATS: &str = r#"
import io, json, os, wave
import numpy as np, soundfile
from openai import OpenAI
client = OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key="none")
def speak(**extra):
    return client.audio.speech.create(model="tts", input="Hello world. The end.", voice="nova", **extra)
pcm = np.frombuffer(speak(response_format="pcm").content, dtype="<i2")
with wave.open(io.BytesIO(speak(response_format="wav").content)) as w:
    wav = dict(rate=w.getframerate(), channels=w.getnchannels(), width=w.getsampwidth(),
               same=bool((np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") == pcm).all()))
flac_bytes = speak(response_format="flac").read()
flac, rate = soundfile.read(io.BytesIO(flac_bytes), dtype="int16")
fast = np.frombuffer(speak(response_format="pcm", speed=2.0).content, dtype="<i2")
default = speak()
print(json.dumps(dict(samples=len(pcm), nonzero=int((pcm != 0).sum()), wav=wav,
    flac=dict(rate=rate, same=bool((flac == pcm).all()), magic=flac_bytes[:4].decode()),
    fast=len(fast), default_type=default.response.headers["content-type"],
    default_is_wav=default.content[:4] == b"RIFF")))
"#;

#[test]
fn the_openai_sdk_gets_the_same_samples_as_wav_flac_and_pcm() {
    let host = host();
    let answer = host.run_openai_client(SDK_FORMATS);
    assert_eq!(answer["samples"], 2 * SENTENCE_SAMPLES, "{answer}");
    assert!(answer["nonzero"].as_u64().unwrap() > 1000, "{answer}");
    assert_eq!(
        answer["wav"],
        json!({"rate": 24_000, "channels": 1, "width": 2, "same": true})
    );
    assert_eq!(
        answer["flac"],
        json!({"rate": 24_000, "same": true, "magic": "fLaC"})
    );
    assert_eq!(answer["fast"], 2 * SENTENCE_SAMPLES.div_ceil(2), "{answer}");
    assert_eq!(answer["default_type"], "audio/wav");
    assert_eq!(answer["default_is_wav"], true);
}

/// The SDK streaming: `sse` events decoded, and raw `audio` bytes with the time of the first.
const SDK_STREAMS: &str = r#"
import base64, json, os, time
from openai import OpenAI
client = OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key="none")
text = "One. Two. Three."
whole = client.audio.speech.create(model="tts", input=text, voice="alloy", response_format="pcm").content
events = []
with client.audio.speech.with_streaming_response.create(
        model="tts", input=text, voice="alloy", response_format="pcm", stream_format="sse") as response:
    content_type = response.headers["content-type"]
    for line in response.iter_lines():
        if line.startswith("data:"):
            events.append(json.loads(line[5:]))
deltas = [e for e in events if e["type"] == "speech.audio.delta"]
sse_audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
started = time.monotonic()
first = None
raw = b""
with client.audio.speech.with_streaming_response.create(
        model="tts", input=text, voice="alloy", response_format="pcm", stream_format="audio") as response:
    raw_type = response.headers["content-type"]
    for chunk in response.iter_bytes():
        if first is None:
            first = time.monotonic() - started
        raw += chunk
total = time.monotonic() - started
wav_deltas = []
with client.audio.speech.with_streaming_response.create(
        model="tts", input=text, voice="alloy", response_format="wav", stream_format="sse") as response:
    for line in response.iter_lines():
        if line.startswith("data:") and '"speech.audio.delta"' in line:
            wav_deltas.append(base64.b64decode(json.loads(line[5:])["audio"]))
print(json.dumps(dict(content_type=content_type, types=[e["type"] for e in events],
    done=events[-1], sse_same=sse_audio == whole, raw_type=raw_type, raw_same=raw == whole,
    first=first, total=total, wav_header=wav_deltas[0][:4].decode(),
    wav_same=b"".join(wav_deltas)[44:] == whole)))
"#;

#[test]
fn the_openai_sdk_streams_sse_deltas_and_raw_audio() {
    let host = host();
    let answer = host.run_openai_client(SDK_STREAMS);
    assert!(
        answer["content_type"]
            .as_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let delta = "speech.audio.delta";
    assert_eq!(
        answer["types"],
        json!([delta, delta, delta, "speech.audio.done"])
    );
    let usage = &answer["done"]["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{answer}");
    assert_eq!(usage["total_tokens"], usage["input_tokens"]);
    assert_eq!(answer["sse_same"], true);
    assert_eq!(answer["raw_type"], "audio/pcm");
    assert_eq!(answer["raw_same"], true);
    assert!(answer["first"].as_f64().unwrap() < answer["total"].as_f64().unwrap());
    assert_eq!(answer["wav_header"], "RIFF");
    assert_eq!(answer["wav_same"], true);
}

#[test]
fn the_native_job_sends_each_sentence_before_the_next_is_spoken() {
    let host = host();
    let sentences = ["One.", "Two.", "Three.", "Four.", "Five.", "Six."];
    let id = host.submit(
        "text-to-speech",
        json!({"input": sentences.join(" "), "sample_rate": 16_000}),
    );
    let mut stream = host.stream(&id);
    let first = stream
        .by_ref()
        .find(|event| event.name == "artifact")
        .expect("a first chunk");
    // The other five sentences take a decoder run and a codec pass each: the job is still
    // running when the first chunk has arrived.
    assert_eq!(host.job_state(&id), "running");
    let mut chunks = vec![first];
    let mut end = Value::Null;
    for event in stream {
        match event.name.as_str() {
            "artifact" => chunks.push(event),
            "end" => end = event.data,
            _ => {}
        }
    }
    assert_eq!(chunks.len(), sentences.len());
    for (index, (chunk, text)) in chunks.iter().zip(sentences).enumerate() {
        assert_eq!(chunk.data["media_type"], "audio/pcm");
        assert_eq!(chunk.data["index"], index);
        assert_eq!(chunk.data["text"], text);
        assert_eq!(chunk.data["sample_rate"], 16_000);
    }
    assert_eq!(end["stop_reason"], "completed");
    assert_eq!(end["sample_rate"], 16_000);
    assert!(end["first_audio_ms"].as_f64().unwrap() > 0.0, "{end}");
    assert!(end["audio_seconds"].as_f64().unwrap() > 0.5, "{end}");
}

#[test]
fn bad_requests_get_400_naming_the_field() {
    let host = host();
    let long = "a".repeat(4097);
    for (body, param, says) in [
        (json!({"voice": "nova"}), "input", "required"),
        (json!({"input": " "}), "input", "empty"),
        (json!({"input": long}), "input", "4096"),
        (json!({"input": "Hi.", "speed": 5}), "speed", "0.25"),
        (json!({"input": "Hi.", "speed": "fast"}), "speed", "0.25"),
        (
            json!({"input": "Hi.", "response_format": "mp3"}),
            "response_format",
            "wav, pcm or flac",
        ),
        (
            json!({"input": "Hi.", "stream_format": "chunks"}),
            "stream_format",
            "sse",
        ),
        (
            json!({"input": "Hi.", "voice": {"id": "x"}}),
            "voice",
            "voice name",
        ),
        (
            json!({"input": "Hi.", "voice": "hal9000"}),
            "voice",
            "alloy",
        ),
        (
            json!({"input": "Hi.", "pitch": 2}),
            "pitch",
            "unknown field",
        ),
    ] {
        let response = host.post("/v1/audio/speech", &body);
        let status = response.status();
        let answer: Value = response.json().unwrap_or(Value::Null);
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["param"], param, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }
}

#[test]
fn a_client_that_goes_away_cancels_the_speech() {
    let host = host();
    let long: Vec<String> = (0..40).map(|i| format!("Sentence {i}.")).collect();
    let id = host.submit("text-to-speech", json!({"input": long.join(" ")}));
    let mut stream = host.stream(&id);
    assert!(stream.by_ref().any(|event| event.name == "artifact"));
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while host.job_state(&id) == "running" {
        assert!(
            std::time::Instant::now() < deadline,
            "the job was not cancelled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(host.job_state(&id), "cancelled");
}
