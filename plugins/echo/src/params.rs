//! The echo worker's job parameters and load options.

use rbee_plugin_api::PluginError;
use serde::Deserialize;

/// JSON Schema of [`EchoParams`], published in the manifest.
pub const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["text"],
  "additionalProperties": false,
  "properties": {
    "text": {"type": "string", "description": "Text to stream back, word by word"},
    "delay_ms": {"type": "integer", "minimum": 0, "maximum": 60000, "description": "Pause before each word"},
    "fail_after": {"type": "integer", "minimum": 0, "description": "Return an error after this many words"},
    "panic_after": {"type": "integer", "minimum": 0, "description": "Panic after this many words"},
    "from_thread": {"type": "boolean", "description": "Stream from a thread of the plugin's own instead of the host's"}
  }
}"#;

/// Parameters of an `echo` job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoParams {
    /// Text to stream back.
    pub text: String,
    /// Pause before each word, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Return an error after this many words.
    pub fail_after: Option<usize>,
    /// Panic after this many words.
    pub panic_after: Option<usize>,
    /// Stream from a thread of the plugin's own.
    #[serde(default)]
    pub from_thread: bool,
}

impl EchoParams {
    /// Parses and checks the parameters, naming the field at fault.
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        let params: Self =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json))
                .map_err(|e| field_error(&e))?;
        if params.delay_ms > 60_000 {
            return Err(PluginError::invalid_param(
                "delay_ms",
                "must be at most 60000",
            ));
        }
        Ok(params)
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

/// Turns a deserialisation error into an `invalid_params` error naming the field at fault.
fn field_error(error: &serde_path_to_error::Error<serde_json::Error>) -> PluginError {
    let message = error.inner().to_string();
    let path = error.path().to_string();
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|marker| message.split(marker).nth(1))
        .and_then(|rest| rest.split('`').next());
    let field = match (path.as_str(), named) {
        (".", Some(name)) => name.to_string(),
        (".", None) => "params".to_string(),
        (path, _) => path.to_string(),
    };
    PluginError::invalid_param(&field, message)
}
