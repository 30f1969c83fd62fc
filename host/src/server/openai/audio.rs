//! `POST /v1/audio/transcriptions` on the `transcription` task: a multipart upload becomes a
//! job (the file as base64 `audio`), answered as json, text, verbose_json, srt or vtt.

use super::{request, start_job};
use crate::{
    job_event::JobEvent,
    server::{ApiError, AppState, stream::JobEvents},
};
use axum::{
    Json,
    extract::{Multipart, State, multipart::MultipartRejection},
    http::header::CONTENT_TYPE,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde_json::{Map, Value, json};
use std::sync::Arc;

const ROUTE: &str = "/v1/audio/transcriptions";

/// The answer formats OpenAI defines.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Text,
    VerboseJson,
    Srt,
    Vtt,
}

/// One timed piece of the transcript, from the plugin's `segment` events.
struct Segment {
    start: f64,
    end: f64,
    text: String,
    /// The whole event, for verbose_json's per-segment statistics.
    event: Value,
}

/// The statistics verbose_json gives per segment (0 when a plugin sends none).
const SEGMENT_STATS: [&str; 4] = [
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
];

/// Transcribes the uploaded `file`; `language`, `prompt`, `temperature` and `response_format`
/// as OpenAI defines them (`model` is accepted and ignored: the worker has one model).
pub async fn transcriptions(
    State(state): State<Arc<AppState>>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let (params, format) =
        read_form(form.map_err(|e| request::bad("file", e.body_text()))?).await?;
    let (_, events) = start_job(&state, ROUTE, "transcription", Value::Object(params))?;
    let (text, segments, details) = gather(events).await?;
    Ok(respond(format, text.trim(), &segments, &details))
}

async fn read_form(mut form: Multipart) -> Result<(Map<String, Value>, Format), ApiError> {
    let mut params = Map::new();
    let mut format = Format::Json;
    let mut has_file = false;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| request::bad("file", e.body_text()))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            let bytes = field
                .bytes()
                .await
                .map_err(|e| request::bad("file", e.body_text()))?;
            params.insert("audio".into(), BASE64.encode(&bytes).into());
            has_file = true;
            continue;
        }
        let value = field
            .text()
            .await
            .map_err(|e| request::bad(&name, e.body_text()))?;
        match name.as_str() {
            "language" => {
                params.insert("language".into(), value.into());
            }
            "prompt" => {
                params.insert("initial_prompt".into(), value.into());
            }
            "temperature" => {
                let temperature: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| request::bad("temperature", "'temperature' must be a number"))?;
                params.insert("temperature".into(), temperature.into());
            }
            "response_format" => format = parse_format(&value)?,
            _ => {}
        }
    }
    if !has_file {
        return Err(request::bad("file", "'file' (the audio) is required"));
    }
    Ok((params, format))
}

fn parse_format(value: &str) -> Result<Format, ApiError> {
    Ok(match value {
        "json" => Format::Json,
        "text" => Format::Text,
        "verbose_json" => Format::VerboseJson,
        "srt" => Format::Srt,
        "vtt" => Format::Vtt,
        other => {
            return Err(request::bad(
                "response_format",
                format!(
                    "unknown response_format '{other}' (expected json, text, verbose_json, srt or vtt)"
                ),
            ));
        }
    })
}

/// Reads the job to its end: the text, the segments and the end details.
async fn gather(mut events: JobEvents) -> Result<(String, Vec<Segment>, Value), ApiError> {
    let (mut text, mut segments, mut details) = (String::new(), Vec::new(), Value::Null);
    while let Some(event) = events.next().await {
        match event {
            JobEvent::Token { text: piece, .. } => text.push_str(&piece),
            JobEvent::Custom { name, data } if name == "segment" => segments.push(Segment {
                start: data["start"].as_f64().unwrap_or(0.0),
                end: data["end"].as_f64().unwrap_or(0.0),
                text: data["text"].as_str().unwrap_or_default().to_string(),
                event: data,
            }),
            JobEvent::End { details: end, .. } => details = end,
            JobEvent::Error { code, message } => {
                return Err(ApiError::job_failed(&code, message).openai());
            }
            _ => {}
        }
    }
    Ok((text, segments, details))
}

fn respond(format: Format, text: &str, segments: &[Segment], details: &Value) -> Response {
    let plain = |body: String, media: &'static str| ([(CONTENT_TYPE, media)], body).into_response();
    match format {
        Format::Json => Json(json!({"text": text})).into_response(),
        Format::Text => plain(format!("{text}\n"), "text/plain; charset=utf-8"),
        Format::VerboseJson => Json(json!({
            "task": "transcribe",
            "language": details["language"],
            "duration": details["audio_seconds"],
            "text": text,
            "segments": segments.iter().enumerate().map(|(id, s)| verbose_segment(id, s)).collect::<Vec<_>>(),
        }))
        .into_response(),
        Format::Srt => plain(subtitles(segments, ',', true), "application/x-subrip"),
        Format::Vtt => plain(format!("WEBVTT\n\n{}", subtitles(segments, '.', false)), "text/vtt"),
    }
}

/// A verbose_json segment: times and text, with the tokens, seek and statistics the plugin
/// reported (zero or empty where it reported none).
fn verbose_segment(id: usize, segment: &Segment) -> Value {
    let mut out = json!({
        "id": id,
        "seek": segment.event["seek"].as_u64().unwrap_or(0),
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": segment.event.get("tokens").filter(|t| t.is_array()).cloned().unwrap_or_else(|| json!([])),
    });
    for name in SEGMENT_STATS {
        out[name] = segment.event[name].as_f64().unwrap_or(0.0).into();
    }
    out
}

/// SRT (numbered cues, comma before milliseconds) or WebVTT cues (a dot).
fn subtitles(segments: &[Segment], separator: char, numbered: bool) -> String {
    segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let number = if numbered {
                format!("{}\n", i + 1)
            } else {
                String::new()
            };
            format!(
                "{number}{} --> {}\n{}\n\n",
                clock(s.start, separator),
                clock(s.end, separator),
                s.text
            )
        })
        .collect()
}

/// `hh:mm:ss,mmm` (or with a dot).
fn clock(seconds: f64, separator: char) -> String {
    let millis = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000,
    );
    format!("{h:02}:{m:02}:{s:02}{separator}{ms:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments() -> Vec<Segment> {
        vec![
            Segment {
                start: 0.0,
                end: 2.56,
                text: "Hello.".into(),
                event: json!({"seek": 0, "tokens": [15947, 13], "avg_logprob": -0.25, "temperature": 0.2}),
            },
            Segment {
                start: 3661.5,
                end: 3662.0,
                text: "Later.".into(),
                event: json!({}),
            },
        ]
    }

    #[test]
    fn srt_and_vtt_cues_are_numbered_and_timed_in_their_own_style() {
        assert_eq!(
            subtitles(&segments(), ',', true),
            "1\n00:00:00,000 --> 00:00:02,560\nHello.\n\n2\n01:01:01,500 --> 01:01:02,000\nLater.\n\n"
        );
        assert_eq!(
            subtitles(&segments()[..1], '.', false),
            "00:00:00.000 --> 00:00:02.560\nHello.\n\n"
        );
    }

    #[test]
    fn verbose_segments_carry_the_plugin_s_statistics_or_zeros() {
        let [reported, bare] = [0, 1].map(|i| verbose_segment(i, &segments()[i]));
        assert_eq!(reported["tokens"], json!([15947, 13]));
        assert_eq!(reported["avg_logprob"], -0.25);
        assert_eq!(reported["temperature"], 0.2);
        assert_eq!(reported["no_speech_prob"], 0.0);
        assert_eq!(
            (
                bare["id"].clone(),
                bare["seek"].clone(),
                bare["tokens"].clone()
            ),
            (json!(1), json!(0), json!([]))
        );
        assert_eq!(bare["compression_ratio"], 0.0);
    }

    #[test]
    fn unknown_formats_are_refused() {
        assert!(parse_format("vtt").is_ok());
        assert!(parse_format("mp3").is_err());
    }
}
