//! The `uppercase` task's parameters: their JSON Schema and their checks.

use rbee_plugin_api::PluginError;
use serde_json::Value;

/// JSON Schema of the job parameters, published in the manifest (`GET /v1/info`).
pub const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["text"],
  "additionalProperties": false,
  "properties": {
    "text": {"type": "string", "minLength": 1, "description": "The text to stream back in upper case"}
  }
}"#;

/// The parameters of one `uppercase` job.
pub struct UppercaseParams {
    /// The text to transform.
    pub text: String,
}

impl UppercaseParams {
    /// Parses and checks the parameters; an error names the field at fault, so the client gets
    /// a 400 saying which parameter to fix.
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| PluginError::invalid_param("params", format!("not JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(PluginError::invalid_param(
                "params",
                "must be a JSON object",
            ));
        };
        if let Some(unknown) = object.keys().find(|key| key.as_str() != "text") {
            return Err(PluginError::invalid_param(
                unknown,
                format!("unknown field '{unknown}'"),
            ));
        }
        match object.get("text") {
            Some(Value::String(text)) if !text.is_empty() => Ok(Self { text: text.clone() }),
            Some(Value::String(_)) => Err(PluginError::invalid_param("text", "text is empty")),
            Some(_) => Err(PluginError::invalid_param("text", "text must be a string")),
            None => Err(PluginError::invalid_param("text", "text is required")),
        }
    }
}
