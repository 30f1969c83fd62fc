//! The parameter layer: a job's JSON parameters read into one type, and the manifest's JSON
//! Schema derived from that same type, so the two cannot drift.
//!
//! The type derives `Deserialize` and `JsonSchema` and carries `#[serde(deny_unknown_fields)]`
//! (the schema then says `"additionalProperties": false`). Fields with a default or of type
//! `Option` are optional; the others are `required`. Range checks serde cannot express stay in
//! the plugin, after [`parse`]; `#[schemars(range(...))]` publishes them.

use rbee_plugin_api::PluginError;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

/// Reads a job's parameters (a JSON object) into `T`. Errors are `invalid_params` naming the
/// field at fault: the unknown or missing field, the path of a badly typed value (`stop[1]`), or
/// `params` when the text is not a JSON object.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, PluginError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json))
        .map_err(|e| field_error(&e))
}

/// The JSON Schema (draft 2020-12) of `T`, as the manifest's `params_schema` text.
pub fn schema<T: JsonSchema>() -> String {
    schemars::schema_for!(T).as_value().to_string()
}

/// Turns a deserialisation error into an `invalid_params` error naming the field at fault.
fn field_error(error: &serde_path_to_error::Error<serde_json::Error>) -> PluginError {
    let message = error.inner().to_string();
    let path = error.path().to_string();
    if path.starts_with('[') {
        return PluginError::invalid_param("params", "the parameters must be a JSON object");
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::Value;

    /// A test job's parameters.
    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Params {
        /// What to say.
        text: String,
        /// How often.
        #[serde(default)]
        #[schemars(range(max = 10))]
        times: u32,
        /// Whether to shout.
        shout: Option<bool>,
    }

    fn field_of(json: &str) -> String {
        let error = parse::<Params>(json).unwrap_err();
        assert_eq!(error.code.as_str(), "invalid_params");
        error.field.into_option().unwrap().into()
    }

    #[test]
    fn parameters_are_read_and_errors_name_the_field() {
        let params: Params = parse(r#"{"text": "hi", "times": 2}"#).unwrap();
        assert_eq!(
            (params.text.as_str(), params.times, params.shout),
            ("hi", 2, None)
        );
        assert_eq!(field_of(r#"{"times": 2}"#), "text");
        assert_eq!(field_of(r#"{"text": "hi", "loud": true}"#), "loud");
        assert_eq!(field_of(r#"{"text": "hi", "times": -1}"#), "times");
        assert_eq!(field_of(r#"{"text": 3}"#), "text");
        assert_eq!(field_of("[1]"), "params");
        assert_eq!(field_of("not json"), "params");
    }

    #[test]
    fn the_schema_is_derived_from_the_type() {
        let schema: Value = serde_json::from_str(&schema::<Params>()).unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], serde_json::json!(["text"]));
        assert_eq!(schema["additionalProperties"], false);
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(properties.len(), 3);
        assert_eq!(properties["text"]["description"], "What to say.");
        assert_eq!(properties["times"]["maximum"], 10);
    }
}
