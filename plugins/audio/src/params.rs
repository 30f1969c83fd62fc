//! The `transcription` job parameters: defaults, ranges, validation and their JSON Schema.

use crate::error::AudioError;
use rbee_plugin_api::{
    Job,
    tasks::transcription::{mode, param},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// This plugin's own parameter: a text event per token rather than per segment.
const TOKEN_EVENTS: &str = "token_events";
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
pub struct TranscriptionParams<'a> {
    /// The audio file's bytes (wav, flac, mp3 or ogg): the job's `audio` input.
    pub audio: &'a [u8],
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

impl<'a> TranscriptionParams<'a> {
    /// Parses and validates a job's parameters (a JSON object) and finds its `audio` input.
    /// Errors name the field. The audio is checked for presence only; decoding it is the
    /// worker's.
    pub fn parse(job: &'a Job) -> Result<Self, AudioError> {
        let value: Value = serde_json::from_str(&job.params_json).map_err(|e| {
            AudioError::invalid_param("params", format!("the parameters are not valid JSON: {e}"))
        })?;
        let Value::Object(object) = value else {
            return Err(AudioError::invalid_param(
                "params",
                "the parameters must be a JSON object",
            ));
        };
        if object.contains_key(param::AUDIO) {
            return Err(AudioError::invalid_param(
                param::AUDIO,
                "must be sent as a binary input, not inside the JSON parameters",
            ));
        }
        reject_unknown_fields(&object)?;
        let audio = job.input(param::AUDIO).ok_or_else(|| {
            AudioError::invalid_param(
                param::AUDIO,
                "is required (the recording, as a binary input)",
            )
        })?;
        if audio.is_empty() {
            return Err(AudioError::invalid_param(param::AUDIO, "is empty"));
        }
        let task = match field::<String>(&object, param::TASK)?.as_deref() {
            None | Some(mode::TRANSCRIBE) => Task::Transcribe,
            Some(mode::TRANSLATE) => Task::Translate,
            Some(other) => {
                return Err(AudioError::invalid_param(
                    param::TASK,
                    format!(
                        "unknown task '{other}' (expected {} or {})",
                        mode::TRANSCRIBE,
                        mode::TRANSLATE
                    ),
                ));
            }
        };
        let temperature = field(&object, param::TEMPERATURE)?.unwrap_or(0.0);
        if !(0.0..=TEMPERATURE_MAX).contains(&temperature) {
            return Err(AudioError::invalid_param(
                param::TEMPERATURE,
                format!("must be between 0 and {TEMPERATURE_MAX}"),
            ));
        }
        let initial_prompt: Option<String> =
            field(&object, param::INITIAL_PROMPT)?.filter(|p: &String| !p.is_empty());
        if initial_prompt
            .as_ref()
            .is_some_and(|p| p.chars().count() > PROMPT_MAX_CHARS)
        {
            return Err(AudioError::invalid_param(
                param::INITIAL_PROMPT,
                format!("must be at most {PROMPT_MAX_CHARS} characters"),
            ));
        }
        Ok(Self {
            audio,
            language: field::<String>(&object, param::LANGUAGE)?
                .map(|l| l.to_lowercase())
                .filter(|l| !l.is_empty() && l != "auto"),
            task,
            temperature,
            timestamps: field(&object, param::TIMESTAMPS)?.unwrap_or(true),
            initial_prompt,
            token_events: field(&object, TOKEN_EVENTS)?.unwrap_or(false),
        })
    }
}

/// The JSON Schema of the parameters as clients send them, published in the manifest. `audio`
/// is base64 in JSON; the host decodes it and hands the plugin its bytes.
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "transcription parameters",
        "type": "object",
        "additionalProperties": false,
        "required": [param::AUDIO],
        "properties": {
            (param::AUDIO): {"type": "string", "contentEncoding": "base64", "description": "The audio file: wav, flac, mp3 or ogg/vorbis."},
            (param::LANGUAGE): {"type": "string", "description": "Spoken language as a Whisper code (en, fr, ...); omit or 'auto' to detect (multilingual models)."},
            (param::TASK): {"enum": [mode::TRANSCRIBE, mode::TRANSLATE], "default": mode::TRANSCRIBE},
            (param::TEMPERATURE): {"type": "number", "minimum": 0, "maximum": TEMPERATURE_MAX, "default": 0, "description": "0 is greedy; windows that decode badly are retried hotter."},
            (param::TIMESTAMPS): {"type": "boolean", "default": true, "description": "Segments with the model's timestamps; false gives one segment per 30 s window."},
            (param::INITIAL_PROMPT): {"type": "string", "maxLength": PROMPT_MAX_CHARS, "description": "Text that conditions the transcript (names, spelling, style)."},
            TOKEN_EVENTS: {"type": "boolean", "default": false, "description": "A text event per token (sent as each 30 s window is decoded) rather than one per segment; segment events are sent either way."}
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
    use rbee_plugin_api::tasks::transcription::TASK;

    const AUDIO: &[u8] = b"RIFF";

    /// A job with `params` and the `audio` input.
    fn job(params: Value) -> Job {
        Job::new("test", TASK, &params.to_string()).with_input(param::AUDIO, AUDIO)
    }

    fn error_field(job: Job) -> String {
        match TranscriptionParams::parse(&job) {
            Err(AudioError::InvalidParam { field, message }) => {
                assert!(message.starts_with(&field), "{message}");
                field
            }
            other => panic!("expected an invalid_params error for {job:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_apply_to_bare_audio() {
        let bare = job(json!({}));
        let params = TranscriptionParams::parse(&bare).unwrap();
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
        let full = job(
            json!({"language": "FR", "task": "translate", "temperature": 0.4,
                   "timestamps": false, "initial_prompt": "Bonjour.", "token_events": true}),
        );
        let params = TranscriptionParams::parse(&full).unwrap();
        assert_eq!(params.language.as_deref(), Some("fr"));
        assert_eq!(params.task, Task::Translate);
        assert_eq!(params.temperature, 0.4);
        assert!(!params.timestamps);
        assert_eq!(params.initial_prompt.as_deref(), Some("Bonjour."));
        assert!(params.token_events);
        let auto = job(json!({"language": "auto"}));
        assert_eq!(TranscriptionParams::parse(&auto).unwrap().language, None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (Job::new("test", TASK, "{}"), "audio"),
            (
                Job::new("test", TASK, "{}").with_input(param::AUDIO, b""),
                "audio",
            ),
            (job(json!({"audio": "UklGRg=="})), "audio"),
            (job(json!({"audio": 3})), "audio"),
            (job(json!({"task": "summarise"})), "task"),
            (job(json!({"temperature": 1.5})), "temperature"),
            (job(json!({"temperature": "warm"})), "temperature"),
            (job(json!({"timestamps": "word"})), "timestamps"),
            (job(json!({"token_events": 1})), "token_events"),
            (
                job(json!({"initial_prompt": "x".repeat(3000)})),
                "initial_prompt",
            ),
            (job(json!({"beam_size": 5})), "beam_size"),
        ];
        for (job, field) in cases {
            assert_eq!(error_field(job.clone()), field, "{job:?}");
        }
        assert!(TranscriptionParams::parse(&Job::new("test", TASK, "[1]")).is_err());
    }

    #[test]
    fn audio_inside_the_json_parameters_is_refused_as_such() {
        let in_json = job(json!({"audio": "UklGRg=="}));
        let error = TranscriptionParams::parse(&in_json)
            .unwrap_err()
            .to_string();
        assert!(error.contains("binary input"), "{error}");
    }
}
