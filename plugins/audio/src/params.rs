//! The `transcription` job parameters: one type that validates them and publishes their JSON
//! Schema, defaults and range checks.

use crate::error::AudioError;
use rbee_plugin_api::{Job, PluginError, tasks::transcription::param};
use rbee_plugin_kit::params;
use schemars::JsonSchema;
use serde::Deserialize;

const TEMPERATURE_MAX: f32 = 1.0;
const PROMPT_MAX_CHARS: usize = 2000;

/// What the model does with the speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Text in the spoken language.
    #[default]
    Transcribe,
    /// English text, whatever the spoken language (multilingual models only).
    Translate,
}

/// The parameters as clients send them; the manifest's JSON Schema is derived from this type
/// (its top-level description is the `schemars` attribute's, written for clients). `audio` is
/// base64 in JSON; the host decodes it and hands the plugin its bytes as a binary input, so a
/// plugin never reads it here.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "transcription parameters",
    description = "Parameters of a transcription job: the recording (base64 in JSON) and how to \
                   transcribe it.",
    transform = audio_is_required
)]
struct Wire {
    /// The audio file: wav, flac, mp3 or ogg/vorbis.
    #[schemars(extend("contentEncoding" = "base64"))]
    audio: Option<String>,
    /// Whisper language code (en, fr, ...); omit or 'auto' to detect (multilingual models).
    language: Option<String>,
    /// Transcribe, or translate into English.
    #[schemars(extend("default" = "transcribe"))]
    task: Option<Task>,
    /// 0 is greedy; windows that decode badly are retried hotter.
    #[schemars(range(min = 0, max = TEMPERATURE_MAX), extend("default" = 0))]
    temperature: Option<f32>,
    /// Segments with the model's timestamps; false gives one segment per 30 s window.
    #[schemars(extend("default" = true))]
    timestamps: Option<bool>,
    /// Text that conditions the transcript (names, spelling, style).
    #[schemars(length(max = PROMPT_MAX_CHARS))]
    initial_prompt: Option<String>,
    /// A text event per token rather than per segment (segment events are sent either way).
    #[schemars(extend("default" = false))]
    token_events: Option<bool>,
}

/// Marks `audio` required in the published schema: clients must send it, though the plugin
/// receives it as a binary input rather than in the JSON it parses.
fn audio_is_required(schema: &mut schemars::Schema) {
    schema.insert("required".into(), serde_json::json!([param::AUDIO]));
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
        let wire: Wire = params::parse(&job.params_json).map_err(invalid)?;
        if wire.audio.is_some() {
            return Err(AudioError::invalid_param(
                param::AUDIO,
                "must be sent as a binary input, not inside the JSON parameters",
            ));
        }
        let audio = job.input(param::AUDIO).ok_or_else(|| {
            AudioError::invalid_param(
                param::AUDIO,
                "is required (the recording, as a binary input)",
            )
        })?;
        if audio.is_empty() {
            return Err(AudioError::invalid_param(param::AUDIO, "is empty"));
        }
        let temperature = wire.temperature.unwrap_or(0.0);
        if !(0.0..=TEMPERATURE_MAX).contains(&temperature) {
            return Err(AudioError::invalid_param(
                param::TEMPERATURE,
                format!("must be between 0 and {TEMPERATURE_MAX}"),
            ));
        }
        let initial_prompt = wire.initial_prompt.filter(|p| !p.is_empty());
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
            language: wire
                .language
                .map(|l| l.to_lowercase())
                .filter(|l| !l.is_empty() && l != "auto"),
            task: wire.task.unwrap_or_default(),
            temperature,
            timestamps: wire.timestamps.unwrap_or(true),
            initial_prompt,
            token_events: wire.token_events.unwrap_or(false),
        })
    }
}

/// The JSON Schema of the parameters as clients send them, published in the manifest.
pub fn schema() -> String {
    params::schema::<Wire>()
}

/// The kit's `invalid_params` error as the plugin's own, naming the same field.
fn invalid(error: PluginError) -> AudioError {
    let field = error.field.into_option().map(String::from);
    AudioError::invalid_param(field.as_deref().unwrap_or("params"), error.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbee_plugin_api::tasks::transcription::TASK;
    use serde_json::{Value, json};

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

    #[test]
    fn the_schema_comes_from_the_params_type() {
        let schema: Value = serde_json::from_str(&schema()).unwrap();
        assert_eq!(schema["required"], json!([param::AUDIO]));
        assert_eq!(schema["additionalProperties"], false);
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(properties.len(), 7);
        let spec = rbee_plugin_api::tasks::transcription::SPEC;
        for field in spec.params.iter().chain(spec.binary_params) {
            assert!(properties.contains_key(*field), "{field}");
        }
        assert_eq!(properties[param::TEMPERATURE]["maximum"], 1.0);
        assert_eq!(properties[param::INITIAL_PROMPT]["maxLength"], 2000);
        assert_eq!(properties[param::AUDIO]["contentEncoding"], "base64");
        let description = schema["description"].as_str().unwrap();
        assert!(
            description.starts_with("Parameters of a transcription job"),
            "{description}"
        );
    }
}
