//! The `embedding` task's parameters: their JSON Schema and their checks.

use rbee_plugin_api::{PluginError, tasks::embedding::param::INPUT};
use serde_json::{Map, Value};

/// This plugin's own parameter: whether to scale each vector to unit length.
const NORMALIZE: &str = "normalize";

/// The most inputs one job may embed.
pub const MAX_INPUTS: usize = 256;

/// JSON Schema of the job parameters, published in the manifest.
pub const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["input"],
  "additionalProperties": false,
  "properties": {
    "input": {
      "description": "The text to embed, or a list of texts (one embedding event each, in order)",
      "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "minItems": 1, "maxItems": 256, "items": {"type": "string", "minLength": 1}}
      ]
    },
    "normalize": {"type": "boolean", "default": true, "description": "Scale each vector to unit length"}
  }
}"#;

/// The parameters of one `embedding` job.
#[derive(Debug, PartialEq)]
pub struct EmbeddingParams {
    /// The texts to embed, in order.
    pub inputs: Vec<String>,
    /// Whether to L2-normalise each vector.
    pub normalize: bool,
}

impl EmbeddingParams {
    /// Parses and checks the parameters (a JSON object), naming the field at fault.
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| PluginError::invalid_param("params", format!("not JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(PluginError::invalid_param(
                "params",
                "must be a JSON object",
            ));
        };
        if let Some(unknown) = object
            .keys()
            .find(|key| ![INPUT, NORMALIZE].contains(&key.as_str()))
        {
            return Err(PluginError::invalid_param(
                unknown,
                format!("unknown field '{unknown}' (expected input, normalize)"),
            ));
        }
        Ok(Self {
            inputs: inputs(&object)?,
            normalize: normalize(&object)?,
        })
    }
}

fn inputs(object: &Map<String, Value>) -> Result<Vec<String>, PluginError> {
    let invalid = |message: String| PluginError::invalid_param(INPUT, message);
    let texts = match object.get(INPUT) {
        None => {
            return Err(invalid(
                "input is required: a string or a list of strings".into(),
            ));
        }
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(text) => Ok(text.clone()),
                other => Err(invalid(format!(
                    "input[{index}] must be a string, not {}",
                    kind(other)
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(format!(
                "input must be a string or a list of strings, not {}",
                kind(other)
            )));
        }
    };
    if texts.is_empty() {
        return Err(invalid(
            "input is an empty list: give at least one text".into(),
        ));
    }
    if texts.len() > MAX_INPUTS {
        return Err(invalid(format!(
            "input has {} texts; at most {MAX_INPUTS} are allowed per job",
            texts.len()
        )));
    }
    if let Some(index) = texts.iter().position(|text| text.trim().is_empty()) {
        return Err(invalid(format!("input[{index}] is empty")));
    }
    Ok(texts)
}

fn normalize(object: &Map<String, Value>) -> Result<bool, PluginError> {
    match object.get(NORMALIZE) {
        None => Ok(true),
        Some(Value::Bool(normalize)) => Ok(*normalize),
        Some(other) => Err(PluginError::invalid_param(
            NORMALIZE,
            format!("normalize must be true or false, not {}", kind(other)),
        )),
    }
}

/// The JSON type of `value`, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(json: &str) -> String {
        let error = EmbeddingParams::parse(json).unwrap_err();
        assert_eq!(error.code.as_str(), "invalid_params");
        error.field.unwrap().to_string()
    }

    #[test]
    fn a_string_or_a_list_is_accepted() {
        let one = EmbeddingParams::parse(r#"{"input": "a cat"}"#).unwrap();
        assert_eq!(
            one,
            EmbeddingParams {
                inputs: vec!["a cat".into()],
                normalize: true
            }
        );
        let two = EmbeddingParams::parse(r#"{"input": ["a", "b"], "normalize": false}"#).unwrap();
        assert_eq!(two.inputs, ["a", "b"]);
        assert!(!two.normalize);
    }

    #[test]
    fn bad_parameters_name_their_field() {
        assert_eq!(field_of(r#"{}"#), "input");
        assert_eq!(field_of(r#"{"input": 3}"#), "input");
        assert_eq!(field_of(r#"{"input": ["a", 3]}"#), "input");
        assert_eq!(field_of(r#"{"input": []}"#), "input");
        assert_eq!(field_of(r#"{"input": ["a", " "]}"#), "input");
        assert_eq!(
            field_of(r#"{"input": "a", "normalize": "yes"}"#),
            "normalize"
        );
        assert_eq!(field_of(r#"{"input": "a", "dimensions": 3}"#), "dimensions");
        assert_eq!(field_of(r#"["a"]"#), "params");
    }

    #[test]
    fn too_many_inputs_are_refused() {
        let list = serde_json::json!({"input": vec!["x"; MAX_INPUTS + 1]}).to_string();
        assert_eq!(field_of(&list), "input");
        let most = serde_json::json!({"input": vec!["x"; MAX_INPUTS]}).to_string();
        assert_eq!(
            EmbeddingParams::parse(&most).unwrap().inputs.len(),
            MAX_INPUTS
        );
    }
}
