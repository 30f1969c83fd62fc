//! The echo worker's job parameters and load options.

use rbee_plugin_api::PluginError;
use rbee_plugin_kit::params;
use schemars::JsonSchema;
use serde::Deserialize;

/// The longest pause before a word, in milliseconds.
const MAX_DELAY_MS: u64 = 60_000;

/// Parameters of an echo job: text to stream back word by word, with optional misbehaviour.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "echo parameters")]
pub struct EchoParams {
    /// Text to stream back, word by word.
    pub text: String,
    /// Pause before each word, in milliseconds.
    #[serde(default)]
    #[schemars(range(max = MAX_DELAY_MS))]
    pub delay_ms: u64,
    /// Return an error after this many words.
    pub fail_after: Option<usize>,
    /// Panic after this many words.
    pub panic_after: Option<usize>,
    /// Stream from a thread of the plugin's own instead of the host's.
    #[serde(default)]
    pub from_thread: bool,
}

impl EchoParams {
    /// Parses and checks the parameters, naming the field at fault.
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        let params: Self = params::parse(json)?;
        if params.delay_ms > MAX_DELAY_MS {
            return Err(PluginError::invalid_param(
                "delay_ms",
                format!("must be at most {MAX_DELAY_MS}"),
            ));
        }
        Ok(params)
    }

    /// The JSON Schema of the parameters, published in the manifest: derived from this type, so
    /// it cannot drift from what [`EchoParams::parse`] accepts. The type's doc comment is its
    /// top-level description, written for clients.
    pub fn schema() -> String {
        params::schema::<Self>()
    }
}

/// Options for loading the echo "model", from `--plugin-options`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadOptions {
    /// How long loading takes, in milliseconds.
    #[serde(default)]
    pub load_delay_ms: u64,
    /// Fail loading with this message.
    pub fail_load: Option<String>,
    /// Panic while loading.
    #[serde(default)]
    pub panic_on_load: bool,
    /// How many jobs to run at once.
    #[serde(default = "one")]
    pub parallel: u32,
    /// Crash the whole process, as `crash_with` says, when a job's text reaches this word
    /// (for testing the host's crash isolation).
    pub crash_at_word: Option<String>,
    /// How to crash at `crash_at_word`.
    #[serde(default)]
    pub crash_with: Crash,
}

/// The ways echo can crash its process, none of which a panic handler can catch.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crash {
    /// Write to an unmapped address (SIGSEGV).
    #[default]
    Segfault,
    /// `abort()` (SIGABRT).
    Abort,
    /// Recurse until the stack overflows.
    StackOverflow,
}

fn one() -> u32 {
    1
}

impl LoadOptions {
    /// Parses the options; empty means defaults.
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        let json = match json.trim() {
            "" => "{}",
            json => json,
        };
        serde_json::from_str(json)
            .map_err(|e| PluginError::internal(format!("bad echo load options: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_schema_comes_from_the_params_type() {
        let schema: Value = serde_json::from_str(&EchoParams::schema()).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["text"]));
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["delay_ms"]["maximum"], MAX_DELAY_MS);
        assert_eq!(schema["properties"].as_object().unwrap().len(), 5);
        assert_eq!(schema["title"], "echo parameters");
        let description = schema["description"].as_str().unwrap();
        assert!(
            description.starts_with("Parameters of an echo job"),
            "{description}"
        );
    }

    #[test]
    fn errors_name_the_field() {
        for (json, field) in [
            (r#"{}"#, "text"),
            (r#"{"text": "a", "delay_ms": 60001}"#, "delay_ms"),
            (r#"{"text": "a", "delay_ms": "slow"}"#, "delay_ms"),
            (r#"{"text": "a", "loud": true}"#, "loud"),
        ] {
            let error = EchoParams::parse(json).unwrap_err();
            assert_eq!(error.field.into_option().unwrap().as_str(), field, "{json}");
        }
    }
}
