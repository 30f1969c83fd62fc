//! `POST /v1/audio/speech` on the `text-to-speech` task, as OpenAI shapes it: `input`, `voice`,
//! `instructions`, `response_format` (wav, pcm, flac), `speed` and `stream_format`. The audio is
//! 24 kHz mono, 16-bit, as OpenAI's is. With `stream_format: "audio"` (the default) pcm is sent
//! chunk by chunk as each sentence is spoken, and wav and flac whole once the last is (with
//! their exact sizes); with `"sse"` every chunk is a `speech.audio.delta` event as soon as it is
//! spoken (wav's first one carries a header of unknown length, flac comes in one delta at the
//! end), then `speech.audio.done` with the usage.

mod encode;

use super::{fields, request, requested_model, start_job};
use crate::jobs::event::JobEvent;
use crate::server::openai::errors::JsonRouteErrors;
use crate::server::{ApiError, AppState, stream::JobEvents, stream::keep_alive};
use axum::{
    Json,
    body::{Body, Bytes},
    extract::{State, rejection::JsonRejection},
    http::header::CONTENT_TYPE,
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use encode::Format;
use futures_util::stream;
use rbee_plugin_api::tasks::text_to_speech::{MEDIA_TYPE, TASK, end, param};
use serde_json::{Map, Value, json};
use std::{convert::Infallible, sync::Arc};

/// The route's path.
const ROUTE: &str = "/v1/audio/speech";
/// The sample rate of every answer (OpenAI's).
const SAMPLE_RATE: u32 = 24_000;
/// The longest input, in characters (OpenAI's limit).
const MAX_INPUT_CHARS: usize = 4096;

/// Speaks `input` in `voice` (or as `instructions` describe), at `speed`, as `response_format`
/// audio (24 kHz mono): streamed as it is spoken, raw or as server-sent events.
#[utoipa::path(
    post,
    path = "/v1/audio/speech",
    operation_id = "create_speech",
    tag = "openai",
    request_body(content = ref("#/components/schemas/SpeechRequest")),
    responses(
        (status = 200, description = "The audio in the `response_format` asked for, or its `speech.audio.delta` events", content(
            (String = "audio/wav"),
            (String = "audio/flac"),
            (String = "audio/pcm"),
            (String = "text/event-stream"),
        )),
        JsonRouteErrors,
    ),
)]
pub async fn speech(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = request::object(body)?;
    let asked = Asked::read(&body)?;
    let started = start_job(
        &state,
        ROUTE,
        requested_model(&body)?,
        TASK,
        asked.params.clone(),
        Vec::new(),
    )
    .await?;
    let mut events = started.events;
    // Wait for the first chunk, so that a job failing before any audio gets an error status.
    let first = match next_piece(&mut events).await {
        Some(Piece::Failed { code, message }) => {
            return Err(ApiError::job_failed(&code, message).openai());
        }
        first => first,
    };
    let pieces = Pieces { events, first };
    Ok(match (asked.sse, asked.format) {
        (true, format) => sse(pieces, format).into_response(),
        (false, Format::Pcm) => streamed_pcm(pieces),
        (false, format) => whole(pieces, format).await?,
    })
}

/// What a speech request asks for.
#[derive(Debug)]
struct Asked {
    /// The job's parameters.
    params: Map<String, Value>,
    format: Format,
    sse: bool,
}

impl Asked {
    /// Reads and checks a request body; a 400 names the field at fault.
    fn read(body: &Map<String, Value>) -> Result<Self, ApiError> {
        fields::SPEECH.check_all(body)?;
        let input = match body.get("input") {
            Some(Value::String(input)) if input.trim().is_empty() => {
                return Err(request::bad(
                    "input",
                    "'input' is empty: give the text to speak",
                ));
            }
            Some(Value::String(input)) if input.chars().count() > MAX_INPUT_CHARS => {
                return Err(request::bad(
                    "input",
                    format!("'input' is longer than {MAX_INPUT_CHARS} characters"),
                ));
            }
            Some(Value::String(input)) => input.clone(),
            None | Some(Value::Null) => return Err(request::bad("input", "'input' is required")),
            Some(_) => return Err(request::bad("input", "'input' must be a string")),
        };
        let mut params = Map::from_iter([
            (param::INPUT.to_string(), Value::String(input)),
            (param::SAMPLE_RATE.to_string(), SAMPLE_RATE.into()),
        ]);
        match body.get("voice") {
            None | Some(Value::Null) => {}
            Some(Value::String(voice)) => {
                params.insert(param::VOICE.into(), voice.clone().into());
            }
            Some(_) => {
                return Err(request::bad(
                    "voice",
                    "'voice' must be a voice name (custom voice objects are not supported)",
                ));
            }
        }
        if let Some(instructions) = request::text(body, "instructions")? {
            params.insert(param::INSTRUCTIONS.into(), instructions.into());
        }
        match body.get("speed") {
            None | Some(Value::Null) => {}
            Some(speed) => match speed.as_f64().filter(|s| (0.25..=4.0).contains(s)) {
                Some(speed) => {
                    params.insert(param::SPEED.into(), speed.into());
                }
                None => {
                    return Err(request::bad(
                        "speed",
                        "'speed' must be a number from 0.25 to 4.0",
                    ));
                }
            },
        }
        let format = match request::text(body, "response_format")? {
            None => Format::Wav,
            Some(name) => Format::named(name).ok_or_else(|| {
                request::bad(
                    "response_format",
                    format!(
                        "'response_format' {} is not supported: {}",
                        crate::server::clipped(name),
                        encode::REFUSED
                    ),
                )
            })?,
        };
        let sse = match request::text(body, "stream_format")? {
            None | Some("audio") => false,
            Some("sse") => true,
            Some(_) => {
                return Err(request::bad(
                    "stream_format",
                    "'stream_format' must be \"audio\" or \"sse\"",
                ));
            }
        };
        Ok(Self {
            params,
            format,
            sse,
        })
    }
}

/// What the job sent, as the route reads it.
enum Piece {
    /// A chunk of 16-bit PCM.
    Audio(Vec<u8>),
    /// The job ended; its `end` details.
    End(Value),
    /// The job failed.
    Failed { code: String, message: String },
}

/// The next chunk, end or failure of the job (`None` once it is over).
async fn next_piece(events: &mut JobEvents) -> Option<Piece> {
    while let Some(event) = events.next().await {
        match event {
            JobEvent::Artifact(artifact) if artifact.media_type == MEDIA_TYPE => {
                return Some(Piece::Audio(artifact.data));
            }
            JobEvent::End { details, .. } => return Some(Piece::End(details)),
            JobEvent::Error { code, message } => return Some(Piece::Failed { code, message }),
            _ => {}
        }
    }
    None
}

/// The job's pieces from the first one, already read, on.
struct Pieces {
    events: JobEvents,
    first: Option<Piece>,
}

impl Pieces {
    async fn next(&mut self) -> Option<Piece> {
        match self.first.take() {
            Some(piece) => Some(piece),
            None => next_piece(&mut self.events).await,
        }
    }
}

/// The whole audio in `format`, once the job has ended.
async fn whole(mut pieces: Pieces, format: Format) -> Result<Response, ApiError> {
    let mut pcm = Vec::new();
    while let Some(piece) = pieces.next().await {
        match piece {
            Piece::Audio(data) => pcm.extend_from_slice(&data),
            Piece::End(_) => break,
            Piece::Failed { code, message } => {
                return Err(ApiError::job_failed(&code, message).openai());
            }
        }
    }
    let audio = tokio::task::spawn_blocking(move || encode::whole(format, pcm, SAMPLE_RATE))
        .await
        .map_err(|e| ApiError::job_failed("internal", e.to_string()).openai())?
        .map_err(|e| ApiError::job_failed("internal", e).openai())?;
    Ok(([(CONTENT_TYPE, format.media_type())], audio).into_response())
}

/// Raw PCM, each chunk sent as soon as it is spoken. A job failing midway cuts the body off,
/// so the client sees a broken transfer rather than a short file.
fn streamed_pcm(pieces: Pieces) -> Response {
    let chunks = stream::unfold(Some(pieces), |pieces| async move {
        let mut pieces = pieces?;
        match pieces.next().await? {
            Piece::Audio(data) => Some((Ok(Bytes::from(data)), Some(pieces))),
            Piece::End(_) => None,
            Piece::Failed { code, message } => Some((
                Err(std::io::Error::other(format!("{code}: {message}"))),
                None,
            )),
        }
    });
    (
        [(CONTENT_TYPE, Format::Pcm.media_type())],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// OpenAI's speech events: a `speech.audio.delta` per chunk, then `speech.audio.done` with the
/// usage (or an `error` event when the job fails).
fn sse(
    pieces: Pieces,
    format: Format,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let state = SseState {
        pieces,
        format,
        sent_header: false,
        held: Vec::new(),
    };
    let events = stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            let piece = state.pieces.next().await?;
            match piece {
                Piece::Audio(data) => {
                    if let Some(delta) = state.delta(data) {
                        return Some((events_of(vec![delta]), Some(state)));
                    }
                }
                Piece::End(details) => {
                    let mut data: Vec<Value> = state.flush().into_iter().collect();
                    data.push(done(&details));
                    return Some((events_of(data), None));
                }
                Piece::Failed { code, message } => {
                    let error =
                        json!({"type": "error", "error": {"code": code, "message": message}});
                    return Some((events_of(vec![error]), None));
                }
            }
        }
    });
    Sse::new(stream::StreamExt::flat_map(events, stream::iter)).keep_alive(keep_alive())
}

/// What an SSE answer has sent so far.
struct SseState {
    pieces: Pieces,
    format: Format,
    sent_header: bool,
    /// FLAC's PCM, held to the end.
    held: Vec<u8>,
}

impl SseState {
    /// The delta event of chunk `data`, if one is sent now.
    fn delta(&mut self, data: Vec<u8>) -> Option<Value> {
        let bytes = match self.format {
            Format::Pcm => data,
            Format::Wav if !self.sent_header => {
                self.sent_header = true;
                let mut bytes = encode::wav_header(SAMPLE_RATE, None);
                bytes.extend_from_slice(&data);
                bytes
            }
            Format::Wav => data,
            Format::Flac => {
                self.held.extend_from_slice(&data);
                return None;
            }
        };
        Some(delta(&bytes))
    }

    /// The last delta: FLAC's whole file.
    fn flush(&mut self) -> Option<Value> {
        if self.format != Format::Flac {
            return None;
        }
        let pcm = std::mem::take(&mut self.held);
        match encode::whole(Format::Flac, pcm, SAMPLE_RATE) {
            Ok(flac) => Some(delta(&flac)),
            Err(message) => {
                Some(json!({"type": "error", "error": {"code": "internal", "message": message}}))
            }
        }
    }
}

/// A `speech.audio.delta` event's data.
fn delta(bytes: &[u8]) -> Value {
    json!({"type": "speech.audio.delta", "audio": BASE64.encode(bytes)})
}

/// The `speech.audio.done` event's data, with the usage from the job's end `details`.
fn done(details: &Value) -> Value {
    let input = details[end::INPUT_TOKENS].as_u64().unwrap_or(0);
    json!({
        "type": "speech.audio.done",
        "usage": {"input_tokens": input, "output_tokens": 0, "total_tokens": input},
    })
}

/// SSE events of `data`, in order.
fn events_of(data: Vec<Value>) -> Vec<Result<Event, Infallible>> {
    data.into_iter()
        .map(|data| Ok(Event::default().data(data.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: Value) -> Result<Asked, String> {
        Asked::read(body.as_object().expect("an object")).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn a_request_becomes_the_jobs_parameters_at_24_khz() {
        let asked = read(
            json!({"input": "Hi.", "voice": "nova", "instructions": "Calm.",
                                "speed": 1.5, "response_format": "flac", "stream_format": "sse"}),
        )
        .unwrap();
        assert_eq!(
            Value::Object(asked.params),
            json!({"input": "Hi.", "voice": "nova", "instructions": "Calm.", "speed": 1.5,
                   "sample_rate": 24_000})
        );
        assert_eq!((asked.format, asked.sse), (Format::Flac, true));
        let plain = read(json!({"input": "Hi.", "stream_format": "audio"})).unwrap();
        assert_eq!((plain.format, plain.sse), (Format::Wav, false));
        assert_eq!(plain.params.len(), 2);
    }

    #[test]
    fn bad_fields_are_400_naming_them() {
        for (body, field) in [
            (json!({}), "input"),
            (json!({"input": 3}), "input"),
            (json!({"input": "Hi.", "speed": 0.2}), "speed"),
            (
                json!({"input": "Hi.", "response_format": "opus"}),
                "response_format",
            ),
            (
                json!({"input": "Hi.", "stream_format": true}),
                "stream_format",
            ),
            (json!({"input": "Hi.", "voice": 1}), "voice"),
            (json!({"input": "Hi.", "instructions": 1}), "instructions"),
        ] {
            let error = read(body.clone()).unwrap_err();
            assert!(error.contains("status: 400"), "{body}: {error}");
            assert!(error.contains(&format!("\"{field}\"")), "{body}: {error}");
        }
    }
}
