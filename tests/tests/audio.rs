//! The audio plugin (Whisper tiny.en, CTranslate2) through a running host over HTTP: native
//! jobs with segment events, OpenAI's multipart transcription and translation routes, and every
//! input format.

mod audio_support;

use audio_support::{audio_host, base64, clip, normalise, upload, upload_to};
use rbee_tests::{SseEvent, streamed_text};
use serde_json::{Value, json};
use std::process::Command;

#[test]
fn a_native_job_streams_segments_with_the_right_text() {
    let host = audio_host();
    let (wav, reference) = clip("quick_brown_fox");
    let events: Vec<SseEvent> = host
        .stream(&host.submit("transcription", json!({"audio": base64(&wav)})))
        .collect_all();
    assert_eq!(events[0].name, "started");
    assert_eq!(normalise(&streamed_text(&events)), normalise(&reference));
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
        "clip.wav",
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
        "clip.wav",
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
        "clip.wav",
        &[("response_format", "json")],
    );
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().unwrap()["error"]["param"], "audio");

    let response = upload(
        &host,
        &clip("hello_world").0,
        "clip.wav",
        &[("response_format", "mp3")],
    );
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().unwrap()["error"]["param"],
        "response_format"
    );
}

/// Re-encodes a wav clip as stereo FLAC, Ogg Vorbis and MP3 with libsndfile (the `soundfile`
/// Python package, which `cargo xtask test` installs): `<out>/clip.flac`, `.ogg` and `.mp3`.
/// Prints the clip's length in seconds.
const ENCODE: &str = r#"
import sys, numpy, soundfile
samples, rate = soundfile.read(sys.argv[1], dtype="float32")
stereo = numpy.column_stack([samples, samples])
for ext, fmt, subtype in [("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")]:
    soundfile.write(f"{sys.argv[2]}/clip.{ext}", stereo, rate, format=fmt, subtype=subtype)
print(len(samples) / rate)
"#;

/// Whether `bytes` start the way a file of format `ext` does (so no test passes on a wav that
/// only carries another name).
fn has_signature(ext: &str, bytes: &[u8]) -> bool {
    match ext {
        "flac" => bytes.starts_with(b"fLaC"),
        "ogg" => bytes.starts_with(b"OggS") && bytes.windows(6).any(|w| w == b"vorbis"),
        "mp3" => {
            bytes.starts_with(b"ID3") || (bytes.len() > 1 && bytes[0] == 0xFF && bytes[1] >= 0xE0)
        }
        _ => false,
    }
}

#[test]
fn flac_ogg_vorbis_and_mp3_uploads_transcribe_like_the_wav() {
    let (_, reference) = clip("quick_brown_fox");
    let wav = audio_support::provisioned("speech/quick_brown_fox.wav");
    let out = tempfile::tempdir().unwrap();
    let encoded = Command::new("python3")
        .args(["-c", ENCODE])
        .arg(&wav)
        .arg(out.path())
        .output()
        .expect("python3");
    assert!(
        encoded.status.success(),
        "encoding the clip failed (is the `soundfile` package installed? `cargo xtask test` installs it):\n{}",
        String::from_utf8_lossy(&encoded.stderr)
    );
    let wav_seconds: f64 = String::from_utf8_lossy(&encoded.stdout)
        .trim()
        .parse()
        .unwrap();
    let host = audio_host();
    for ext in ["flac", "ogg", "mp3"] {
        let bytes = std::fs::read(out.path().join(format!("clip.{ext}"))).unwrap();
        assert!(has_signature(ext, &bytes), "clip.{ext} is not {ext}");
        let response = upload(
            &host,
            &bytes,
            &format!("clip.{ext}"),
            &[("response_format", "verbose_json")],
        );
        assert_eq!(
            response.status(),
            200,
            "{ext}: {}",
            response.text().unwrap()
        );
        let body: Value = response.json().unwrap();
        assert_eq!(
            normalise(body["text"].as_str().unwrap()),
            normalise(&reference),
            "{ext}: {body}"
        );
        let duration = body["duration"].as_f64().unwrap();
        assert!(
            (duration - wav_seconds).abs() < 0.2,
            "{ext}: {duration} s decoded, the wav is {wav_seconds} s"
        );
    }
}

#[test]
fn verbose_json_reports_each_segment_s_statistics() {
    let host = audio_host();
    let (wav, reference) = clip("quick_brown_fox");
    let response = upload(
        &host,
        &wav,
        "clip.wav",
        &[("response_format", "verbose_json")],
    );
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(body["language"], "en");
    let segments = body["segments"].as_array().unwrap();
    assert!(!segments.is_empty(), "{body}");
    let texts: Vec<&str> = segments
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    assert_eq!(normalise(&texts.join(" ")), normalise(&reference));
    for segment in segments {
        let stat = |name: &str| segment[name].as_f64().unwrap();
        assert!(
            (-2.0..0.0).contains(&stat("avg_logprob")) && stat("avg_logprob") < -0.001,
            "{segment}"
        );
        assert!((0.5..3.0).contains(&stat("compression_ratio")), "{segment}");
        assert!(
            (0.0..0.3).contains(&stat("no_speech_prob")),
            "clear speech: {segment}"
        );
        assert_eq!(stat("temperature"), 0.0, "{segment}");
        assert!(
            !segment["tokens"].as_array().unwrap().is_empty(),
            "{segment}"
        );
    }
}

#[test]
fn an_english_only_model_refuses_other_languages_and_translation() {
    let host = audio_host();
    let wav = clip("hello_world").0;
    let response = upload(&host, &wav, "clip.wav", &[("language", "fr")]);
    assert_eq!(response.status(), 400);
    let error = &response.json::<Value>().unwrap()["error"];
    assert_eq!(error["param"], "language", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("English-only"),
        "{error}"
    );
    let response = host.post(
        "/v1/jobs",
        &json!({"task": "transcription", "params": {"audio": base64(&wav), "task": "translate"}}),
    );
    assert_eq!(response.status(), 400);
    let error = &response.json::<Value>().unwrap()["error"];
    assert_eq!(error["field"], "task", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("cannot translate"),
        "{error}"
    );
}

#[test]
fn the_translations_route_asks_the_plugin_to_translate() {
    let host = audio_host();
    let (wav, reference) = clip("hello_world");
    let translate = |fields: &[(&str, &str)]| {
        let response = upload_to(&host, "/v1/audio/translations", &wav, "clip.wav", fields);
        let status = response.status();
        (status, response.json::<Value>().unwrap()["error"].clone())
    };
    // tiny.en is English-only: the plugin refuses task=translate, which proves the route asked.
    let (status, error) = translate(&[("model", "whisper-1"), ("response_format", "verbose_json")]);
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["param"], "task", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("cannot translate"),
        "{error}"
    );
    // Translations are always into English: OpenAI's form has no `language`.
    let (status, error) = translate(&[("language", "en")]);
    assert_eq!(
        (status.as_u16(), error["param"].as_str()),
        (400, Some("language")),
        "{error}"
    );

    let response = upload(
        &host,
        &wav,
        "clip.wav",
        &[("response_format", "verbose_json")],
    );
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(body["task"], "transcribe", "{body}");
    assert_eq!(
        normalise(body["text"].as_str().unwrap()),
        normalise(&reference),
        "{body}"
    );
}

#[test]
fn token_events_stream_a_text_event_per_token() {
    let host = audio_host();
    let (wav, reference) = clip("quick_brown_fox");
    let params = json!({"audio": base64(&wav), "token_events": true});
    let events: Vec<SseEvent> = host
        .stream(&host.submit("transcription", params))
        .collect_all();
    let pieces: Vec<&str> = events
        .iter()
        .filter(|e| e.name == "token")
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(normalise(&pieces.concat()), normalise(&reference));
    let tokens: usize = events
        .iter()
        .filter(|e| e.name == "segment")
        .map(|e| e.data["tokens"].as_array().unwrap().len())
        .sum();
    assert_eq!(pieces.len(), tokens, "{pieces:?}");
    assert!(pieces.len() > 5, "{pieces:?}");
}

/// README.md's fields of both audio routes, walked with the real plugin: refused and unknown
/// ones get 400 naming them. They have no harmless field: `model` picks the model, and a host of
/// one model takes any name.
#[test]
fn the_audio_routes_refuse_what_they_do_not_implement_and_take_any_model_name() {
    use rbee_tests::openai_fields::{assert_refuses_all, route_fields};
    let host = audio_host();
    assert_refuses_all(&host, &route_fields("/v1/audio/translations"));
    let route = route_fields("/v1/audio/transcriptions");
    assert!(route.harmless.is_empty(), "{:?}", route.harmless);
    assert_refuses_all(&host, &route);
    let (wav, _) = clip("hello_world");
    let response = upload(&host, &wav, "clip.wav", &[("model", "any-name")]);
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
}
