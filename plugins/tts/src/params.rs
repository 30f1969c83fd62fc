//! The `text-to-speech` task's parameters: read into one type, whose JSON Schema the manifest
//! publishes.

use rbee_plugin_api::{PluginError, tasks::text_to_speech::param};
use schemars::JsonSchema;
use serde::Deserialize;

/// The longest input, in characters (OpenAI's limit).
pub const MAX_INPUT_CHARS: usize = 4096;
/// The slowest and the fastest speed.
pub const SPEEDS: (f32, f32) = (0.25, 4.0);
/// The lowest and the highest output sample rate, in Hz.
pub const SAMPLE_RATES: (u32, u32) = (8_000, 96_000);

/// The parameters of one `text-to-speech` job.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "text-to-speech parameters")]
pub struct SpeechParams {
    /// The text to speak, at most 4096 characters; it is spoken sentence by sentence, one audio
    /// chunk each.
    #[schemars(length(min = 1, max = MAX_INPUT_CHARS))]
    pub input: String,
    /// The voice: one of OpenAI's names (alloy, ash, ballad, coral, echo, fable, nova, onyx,
    /// sage, shimmer, verse) or one of the model's named speakers (Jon, Laura, Gary, ...).
    #[serde(default)]
    pub voice: Option<String>,
    /// The voice described in words, e.g. "A female speaker with a calm, low-pitched voice,
    /// recorded close up." Overrides `voice`.
    #[serde(default)]
    #[schemars(length(max = MAX_INPUT_CHARS))]
    pub instructions: Option<String>,
    /// How fast to speak, 0.25 to 4 (1 is the model's pace); done by resampling, so the pitch
    /// moves with the pace.
    #[serde(default)]
    #[schemars(range(min = 0.25, max = 4.0))]
    pub speed: Option<f32>,
    /// The sample rate of the audio chunks in Hz, 8000 to 96000; default the model's own.
    #[serde(default)]
    #[schemars(range(min = 8000, max = 96000))]
    pub sample_rate: Option<u32>,
    /// Sampling temperature of the audio tokens, 0 (greedy) to 2; default 1.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    /// The random seed; the same seed, text and voice give the same audio.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl SpeechParams {
    /// Reads and checks a job's parameters, naming the field at fault.
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        let params: Self = rbee_plugin_kit::params::parse(json)?;
        let chars = params.input.chars().count();
        if params.input.trim().is_empty() {
            return Err(PluginError::invalid_param(
                param::INPUT,
                "input is empty: give the text to speak",
            ));
        }
        if chars > MAX_INPUT_CHARS {
            return Err(PluginError::invalid_param(
                param::INPUT,
                format!("input has {chars} characters; at most {MAX_INPUT_CHARS} are allowed"),
            ));
        }
        if let Some(speed) = params.speed
            && !(SPEEDS.0..=SPEEDS.1).contains(&speed)
        {
            return Err(PluginError::invalid_param(
                param::SPEED,
                format!("speed {speed} is outside {} to {}", SPEEDS.0, SPEEDS.1),
            ));
        }
        if let Some(rate) = params.sample_rate
            && !(SAMPLE_RATES.0..=SAMPLE_RATES.1).contains(&rate)
        {
            return Err(PluginError::invalid_param(
                param::SAMPLE_RATE,
                format!(
                    "sample_rate {rate} is outside {} to {} Hz",
                    SAMPLE_RATES.0, SAMPLE_RATES.1
                ),
            ));
        }
        if let Some(temperature) = params.temperature
            && !(0.0..=2.0).contains(&temperature)
        {
            return Err(PluginError::invalid_param(
                "temperature",
                "temperature must be between 0 and 2",
            ));
        }
        if params
            .instructions
            .as_ref()
            .is_some_and(|text| text.chars().count() > MAX_INPUT_CHARS)
        {
            return Err(PluginError::invalid_param(
                param::INSTRUCTIONS,
                format!("instructions are longer than {MAX_INPUT_CHARS} characters"),
            ));
        }
        Ok(params)
    }

    /// The speed, 1 when not given.
    pub fn speed(&self) -> f32 {
        self.speed.unwrap_or(1.0)
    }
}

/// The manifest's parameters schema.
pub fn schema() -> String {
    rbee_plugin_kit::params::schema::<SpeechParams>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn field_of(params: Value) -> String {
        let error = SpeechParams::parse(&params.to_string()).unwrap_err();
        assert_eq!(error.code.as_str(), "invalid_params");
        error.field.into_option().unwrap().into()
    }

    #[test]
    fn bad_parameters_name_their_field() {
        assert_eq!(field_of(json!({"voice": "nova"})), "input");
        assert_eq!(field_of(json!({"input": "  "})), "input");
        assert_eq!(field_of(json!({"input": "x".repeat(4097)})), "input");
        assert_eq!(field_of(json!({"input": "hi", "speed": 4.5})), "speed");
        assert_eq!(field_of(json!({"input": "hi", "speed": 0.2})), "speed");
        assert_eq!(
            field_of(json!({"input": "hi", "sample_rate": 100})),
            "sample_rate"
        );
        assert_eq!(
            field_of(json!({"input": "hi", "temperature": 3})),
            "temperature"
        );
        assert_eq!(field_of(json!({"input": "hi", "voice": 3})), "voice");
        assert_eq!(field_of(json!({"input": "hi", "format": "wav"})), "format");
        let fine = SpeechParams::parse(r#"{"input": "hi", "speed": 4.0}"#).unwrap();
        assert_eq!((fine.input.as_str(), fine.speed()), ("hi", 4.0));
        assert_eq!(
            SpeechParams::parse(r#"{"input": "x"}"#).unwrap().speed(),
            1.0
        );
    }

    #[test]
    fn the_schema_requires_input() {
        let schema: Value = serde_json::from_str(&schema()).unwrap();
        assert_eq!(schema["required"], json!(["input"]));
        assert_eq!(schema["properties"]["input"]["maxLength"], MAX_INPUT_CHARS);
    }
}
