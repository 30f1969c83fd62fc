//! `POST /v1/audio/transcriptions` and `POST /v1/audio/translations` on the `transcription`
//! task: a multipart upload becomes a job (the file as base64 `audio`, translation as the native
//! `task: "translate"`), answered as json, text, verbose_json, srt or vtt.

use super::{fields, request, require_task, start_job};
use crate::server::openai::errors::FormRouteErrors;
use crate::{
    jobs::event::JobEvent,
    server::{ApiError, AppState, stream::JobEvents},
};
use axum::{
    Json,
    extract::{Multipart, State, multipart::MultipartRejection},
    http::header::CONTENT_TYPE,
    response::{IntoResponse, Response},
};
use rbee_plugin_api::{
    Input,
    tasks::transcription::{SEGMENT, TASK, end, mode, param, segment as key},
};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Which of OpenAI's two audio routes a request came by: both run the `transcription` task.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Mode {
    /// Text in the spoken language.
    Transcribe,
    /// English text, whatever the spoken language.
    Translate,
}

impl Mode {
    /// The route's fields, which give its path too.
    fn fields(self) -> &'static fields::Route {
        match self {
            Mode::Transcribe => &fields::TRANSCRIPTIONS,
            Mode::Translate => &fields::TRANSLATIONS,
        }
    }

    fn route(self) -> &'static str {
        self.fields().path
    }

    /// The native `task` param, which verbose_json reports too.
    fn task(self) -> &'static str {
        match self {
            Mode::Transcribe => mode::TRANSCRIBE,
            Mode::Translate => mode::TRANSLATE,
        }
    }
}

/// A read form: the job's params, the audio, and the answer format.
type ReadForm = (Map<String, Value>, Vec<u8>, Format, Option<String>);

/// The answer formats OpenAI defines.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Format {
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

/// Transcribes the uploaded `file`; `language`, `prompt`, `temperature` and `response_format`
/// as OpenAI defines them; `model` picks the model.
#[utoipa::path(
    post,
    path = "/v1/audio/transcriptions",
    operation_id = "create_transcription",
    tag = "openai",
    request_body(content = ref("#/components/schemas/TranscriptionRequest"), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The text, in the `response_format` asked for", content(
            (ref("#/components/schemas/Transcription") = "application/json"),
            (String = "text/plain"),
            (String = "application/x-subrip"),
            (String = "text/vtt"),
        )),
        FormRouteErrors,
    ),
)]
pub async fn transcriptions(
    State(state): State<Arc<AppState>>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    answer(&state, Mode::Transcribe, form).await
}

/// Translates the speech in the uploaded `file` into English; the fields are transcriptions'
/// without `language`.
#[utoipa::path(
    post,
    path = "/v1/audio/translations",
    operation_id = "create_translation",
    tag = "openai",
    request_body(content = ref("#/components/schemas/TranslationRequest"), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The text, in the `response_format` asked for", content(
            (ref("#/components/schemas/Transcription") = "application/json"),
            (String = "text/plain"),
            (String = "application/x-subrip"),
            (String = "text/vtt"),
        )),
        FormRouteErrors,
    ),
)]
pub async fn translations(
    State(state): State<Arc<AppState>>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    answer(&state, Mode::Translate, form).await
}

/// Either route: the form becomes a `transcription` job, and its events the answer.
async fn answer(
    state: &Arc<AppState>,
    mode: Mode,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    require_task(state, mode.route(), &[TASK])?;
    let form = form.map_err(|e| request::bad("file", e.body_text()))?;
    let (params, audio, format, model) = read_form(form, mode).await?;
    let inputs = vec![Input {
        name: param::AUDIO.into(),
        data: audio.into(),
    }];
    let started = start_job(state, mode.route(), model.as_deref(), TASK, params, inputs).await?;
    let (text, segments, details) = gather(started.events).await?;
    Ok(respond(format, mode, text.trim(), &segments, &details))
}

pub(super) async fn read_form(mut multipart: Multipart, mode: Mode) -> Result<ReadForm, ApiError> {
    let mut form = Form::new(mode);
    while let Some(field) = multipart
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
            form.audio = Some(bytes.to_vec());
        } else {
            let value = field
                .text()
                .await
                .map_err(|e| request::bad(&name, e.body_text()))?;
            form.text(&name, &value)?;
        }
    }
    form.finish()
}

/// A form as its fields arrive, mapped onto the job's params and the answer format.
struct Form {
    mode: Mode,
    params: Map<String, Value>,
    audio: Option<Vec<u8>>,
    format: Format,
    model: Option<String>,
}

impl Form {
    fn new(mode: Mode) -> Self {
        let mut params = Map::new();
        params.insert(param::TASK.into(), mode.task().into());
        Self {
            mode,
            params,
            audio: None,
            format: Format::Json,
            model: None,
        }
    }

    /// A text field under OpenAI's name, checked against the route's fields first.
    fn text(&mut self, name: &str, value: &str) -> Result<(), ApiError> {
        self.mode.fields().check(name, &fields::form_value(value))?;
        match name {
            "language" => {
                self.params.insert(param::LANGUAGE.into(), value.into());
            }
            "prompt" => {
                self.params
                    .insert(param::INITIAL_PROMPT.into(), value.into());
            }
            "temperature" => {
                let temperature: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| request::bad("temperature", "'temperature' must be a number"))?;
                self.params
                    .insert(param::TEMPERATURE.into(), temperature.into());
            }
            "response_format" => self.format = parse_format(value)?,
            "model" => self.model = Some(value.to_string()),
            _ => {}
        }
        Ok(())
    }

    /// The job's params and the answer format, once the form is read; 400 without a file.
    fn finish(self) -> Result<ReadForm, ApiError> {
        let audio = self
            .audio
            .ok_or_else(|| request::bad("file", "'file' (the audio) is required"))?;
        Ok((self.params, audio, self.format, self.model))
    }
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
            JobEvent::Custom { name, data } if name == SEGMENT => segments.push(Segment {
                start: data[key::START].as_f64().unwrap_or(0.0),
                end: data[key::END].as_f64().unwrap_or(0.0),
                text: data[key::TEXT].as_str().unwrap_or_default().to_string(),
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

fn respond(
    format: Format,
    mode: Mode,
    text: &str,
    segments: &[Segment],
    details: &Value,
) -> Response {
    let plain = |body: String, media: &'static str| ([(CONTENT_TYPE, media)], body).into_response();
    match format {
        Format::Json => Json(json!({"text": text})).into_response(),
        Format::Text => plain(format!("{text}\n"), "text/plain; charset=utf-8"),
        Format::VerboseJson => Json(verbose(mode, text, segments, details)).into_response(),
        Format::Srt => plain(subtitles(segments, ',', true), "application/x-subrip"),
        Format::Vtt => plain(
            format!("WEBVTT\n\n{}", subtitles(segments, '.', false)),
            "text/vtt",
        ),
    }
}

/// The verbose_json answer: the task, the language the plugin reports, the audio's length, the
/// text and its segments.
fn verbose(mode: Mode, text: &str, segments: &[Segment], details: &Value) -> Value {
    json!({
        "task": mode.task(),
        "language": details[end::LANGUAGE],
        "duration": details[end::AUDIO_SECONDS],
        "text": text,
        "segments": segments.iter().enumerate().map(|(id, s)| verbose_segment(id, s)).collect::<Vec<_>>(),
    })
}

/// A verbose_json segment: times and text, with the tokens, seek and statistics the plugin
/// reported (zero or empty where it reported none).
fn verbose_segment(id: usize, segment: &Segment) -> Value {
    let mut out = json!({
        "id": id,
        "seek": segment.event[key::SEEK].as_u64().unwrap_or(0),
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": segment.event.get(key::TOKENS).filter(|t| t.is_array()).cloned().unwrap_or_else(|| json!([])),
    });
    for name in key::STATS {
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

    /// The form `fields` make, read by `mode` with a file.
    fn form(mode: Mode, fields: &[(&str, &str)]) -> Result<ReadForm, ApiError> {
        let mut form = Form::new(mode);
        form.audio = Some(b"RIFF".to_vec());
        for (name, value) in fields {
            form.text(name, value)?;
        }
        form.finish()
    }

    #[test]
    fn the_translations_form_asks_for_the_translate_task() {
        let fields = [
            ("model", "whisper-1"),
            ("prompt", "Hi."),
            ("temperature", "0.2"),
        ];
        let (params, audio, format, model) = form(Mode::Translate, &fields).unwrap();
        assert_eq!(model.as_deref(), Some("whisper-1"));
        assert_eq!(
            Value::Object(params),
            json!({"task": "translate", "initial_prompt": "Hi.", "temperature": 0.2})
        );
        assert_eq!((audio.as_slice(), format), (&b"RIFF"[..], Format::Json));
        let (params, _, _, _) = form(Mode::Transcribe, &[("language", "fr")]).unwrap();
        assert_eq!(
            (params["task"].clone(), params["language"].clone()),
            (json!("transcribe"), json!("fr"))
        );
    }

    #[test]
    fn the_translations_form_refuses_language_and_needs_a_file() {
        let error = format!(
            "{:?}",
            form(Mode::Translate, &[("language", "en")]).unwrap_err()
        );
        assert!(
            error.contains("status: 400") && error.contains(r#"field: Some("language")"#),
            "{error}"
        );
        let error = format!("{:?}", Form::new(Mode::Translate).finish().unwrap_err());
        assert!(error.contains(r#"field: Some("file")"#), "{error}");
    }

    #[test]
    fn verbose_json_names_the_task_the_route_ran() {
        let details = json!({"language": "en", "audio_seconds": 3.5});
        for mode in [Mode::Transcribe, Mode::Translate] {
            let body = verbose(mode, "Hello.", &segments()[..1], &details);
            assert_eq!(body["task"], mode.task());
            assert_eq!(
                (
                    body["duration"].clone(),
                    body["segments"][0]["text"].clone()
                ),
                (json!(3.5), json!("Hello."))
            );
        }
        assert_eq!(Mode::Translate.task(), "translate");
    }

    #[test]
    fn unknown_formats_are_refused() {
        assert!(parse_format("vtt").is_ok());
        assert!(parse_format("mp3").is_err());
    }
}
