//! The `transcription` job parameters: defaults, ranges, validation and their JSON Schema.

use crate::error::AudioError;
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

const TEMPERATURE_MAX: f32 = 1.0;
const PROMPT_MAX_CHARS: usize = 2000;

/// What the model does with the speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Text in the spoken language.
    Transcribe,
    /// English text, whatever the spoken language (multilingual models only).
    Translate,
}

/// The validated parameters of one `transcription` job.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptionParams {
    /// The audio file's bytes (wav, flac, mp3 or ogg), decoded from base64.
    pub audio: Vec<u8>,
    /// The spoken language as a Whisper code (`en`, `fr`, ...); `None` detects it.
    pub language: Option<String>,
    /// Transcribe or translate.
    pub task: Task,
    /// The first sampling temperature; 0 is greedy. Windows that decode badly are retried
    /// hotter, up to 1.
    pub temperature: f32,
    /// Whether segments carry the model's own timestamps (else one segment per 30 s window).
    pub timestamps: bool,
    /// Text that conditions the model (spelling of names, style), as Whisper's prompt.
    pub initial_prompt: Option<String>,
    /// A text event per token rather than per segment.
    pub token_events: bool,
}

impl TranscriptionParams {
    /// Parses and validates a job's parameters (a JSON object). Errors name the field. The
    /// audio is checked for base64 only; decoding it is the worker's.
    pub fn parse(params_json: &str) -> Result<Self, AudioError> {
        let value: Value = serde_json::from_str(params_json).map_err(|e| {
            AudioError::invalid_param("params", format!("the parameters are not valid JSON: {e}"))
        })?;
        let Value::Object(object) = value else {
            return Err(AudioError::invalid_param(
                "params",
                "the parameters must be a JSON object",
            ));
        };
        reject_unknown_fields(&object)?;
        let audio: String = field(&object, "audio")?
            .ok_or_else(|| AudioError::invalid_param("audio", "is required (base64 audio)"))?;
        let audio = BASE64
            .decode(audio.trim())
            .map_err(|e| AudioError::invalid_param("audio", format!("is not valid base64: {e}")))?;
        if audio.is_empty() {
            return Err(AudioError::invalid_param("audio", "is empty"));
        }
        let task = match field::<String>(&object, "task")?.as_deref() {
            None | Some("transcribe") => Task::Transcribe,
            Some("translate") => Task::Translate,
            Some(other) => {
                return Err(AudioError::invalid_param(
                    "task",
                    format!("unknown task '{other}' (expected transcribe or translate)"),
                ));
            }
        };
        let temperature = field(&object, "temperature")?.unwrap_or(0.0);
        if !(0.0..=TEMPERATURE_MAX).contains(&temperature) {
            return Err(AudioError::invalid_param(
                "temperature",
                format!("must be between 0 and {TEMPERATURE_MAX}"),
            ));
        }
        let initial_prompt: Option<String> =
            field(&object, "initial_prompt")?.filter(|p: &String| !p.is_empty());
        if initial_prompt
            .as_ref()
            .is_some_and(|p| p.chars().count() > PROMPT_MAX_CHARS)
        {
            return Err(AudioError::invalid_param(
                "initial_prompt",
                format!("must be at most {PROMPT_MAX_CHARS} characters"),
            ));
        }
        Ok(Self {
            audio,
            language: field::<String>(&object, "language")?
                .map(|l| l.to_lowercase())
                .filter(|l| !l.is_empty() && l != "auto"),
            task,
            temperature,
            timestamps: field(&object, "timestamps")?.unwrap_or(true),
            initial_prompt,
            token_events: field(&object, "token_events")?.unwrap_or(false),
        })
    }
}

/// The JSON Schema of the parameters, as published in the manifest.
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "transcription parameters",
        "type": "object",
        "additionalProperties": false,
        "required": ["audio"],
        "properties": {
            "audio": {"type": "string", "contentEncoding": "base64", "description": "The audio file: wav, flac, mp3 or ogg/vorbis."},
            "language": {"type": "string", "description": "Spoken language as a Whisper code (en, fr, ...); omit or 'auto' to detect (multilingual models)."},
            "task": {"enum": ["transcribe", "translate"], "default": "transcribe"},
            "temperature": {"type": "number", "minimum": 0, "maximum": TEMPERATURE_MAX, "default": 0, "description": "0 is greedy; windows that decode badly are retried hotter."},
            "timestamps": {"type": "boolean", "default": true, "description": "Segments with the model's timestamps; false gives one segment per 30 s window."},
            "initial_prompt": {"type": "string", "maxLength": PROMPT_MAX_CHARS, "description": "Text that conditions the transcript (names, spelling, style)."},
            "token_events": {"type": "boolean", "default": false, "description": "A text event per token (sent as each 30 s window is decoded) rather than one per segment; segment events are sent either way."}
        }
    })
}

fn reject_unknown_fields(object: &Map<String, Value>) -> Result<(), AudioError> {
    let schema = schema();
    let known = schema["properties"]
        .as_object()
        .expect("the schema lists its properties");
    match object.keys().find(|key| !known.contains_key(*key)) {
        Some(key) => Err(AudioError::invalid_param(key, "unknown parameter")),
        None => Ok(()),
    }
}

/// Reads one optional field; `null` counts as absent. A type error names the field.
fn field<T: DeserializeOwned>(
    object: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, AudioError> {
    object
        .get(name)
        .filter(|value| !value.is_null())
        .map(|value| {
            T::deserialize(value)
                .map_err(|e| AudioError::invalid_param(name, format!("invalid value: {e}")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIO: &str = "UklGRg=="; // "RIFF"

    fn error_field(params: Value) -> String {
        match TranscriptionParams::parse(&params.to_string()) {
            Err(AudioError::InvalidParam { field, message }) => {
                assert!(message.starts_with(&field), "{message}");
                field
            }
            other => panic!("expected an invalid_params error for {params}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_apply_to_bare_audio() {
        let params = TranscriptionParams::parse(&json!({"audio": AUDIO}).to_string()).unwrap();
        assert_eq!(params.audio, b"RIFF");
        assert_eq!(params.language, None);
        assert_eq!(params.task, Task::Transcribe);
        assert_eq!(params.temperature, 0.0);
        assert!(params.timestamps);
        assert_eq!(params.initial_prompt, None);
        assert!(!params.token_events);
    }

    #[test]
    fn every_field_is_read() {
        let params = TranscriptionParams::parse(
            &json!({"audio": AUDIO, "language": "FR", "task": "translate", "temperature": 0.4,
                    "timestamps": false, "initial_prompt": "Bonjour.", "token_events": true})
            .to_string(),
        )
        .unwrap();
        assert_eq!(params.language.as_deref(), Some("fr"));
        assert_eq!(params.task, Task::Translate);
        assert_eq!(params.temperature, 0.4);
        assert!(!params.timestamps);
        assert_eq!(params.initial_prompt.as_deref(), Some("Bonjour."));
        assert!(params.token_events);
        let auto = json!({"audio": AUDIO, "language": "auto"}).to_string();
        assert_eq!(TranscriptionParams::parse(&auto).unwrap().language, None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "audio"),
            (json!({"audio": ""}), "audio"),
            (json!({"audio": "%%% not base64"}), "audio"),
            (json!({"audio": 3}), "audio"),
            (json!({"audio": AUDIO, "task": "summarise"}), "task"),
            (json!({"audio": AUDIO, "temperature": 1.5}), "temperature"),
            (
                json!({"audio": AUDIO, "temperature": "warm"}),
                "temperature",
            ),
            (json!({"audio": AUDIO, "timestamps": "word"}), "timestamps"),
            (json!({"audio": AUDIO, "token_events": 1}), "token_events"),
            (
                json!({"audio": AUDIO, "initial_prompt": "x".repeat(3000)}),
                "initial_prompt",
            ),
            (json!({"audio": AUDIO, "beam_size": 5}), "beam_size"),
        ];
        for (params, field) in cases {
            assert_eq!(error_field(params.clone()), field, "{params}");
        }
        assert!(TranscriptionParams::parse("[1]").is_err());
    }
}
