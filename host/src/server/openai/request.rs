//! Reading OpenAI request bodies into job parameters.

use crate::server::ApiError;
use axum::{Json, extract::rejection::JsonRejection};
use rbee_plugin_api::tasks::text_generation::param;
use serde_json::{Map, Value};

/// The request body as a JSON object, or a 400 in OpenAI's shape.
pub fn object(body: Result<Json<Value>, JsonRejection>) -> Result<Map<String, Value>, ApiError> {
    match body {
        Ok(Json(Value::Object(map))) => Ok(map),
        Ok(_) => Err(bad("body", "the body must be a JSON object")),
        Err(rejection) => Err(ApiError::rejected(rejection).openai()),
    }
}

/// A 400 naming the request field at fault, in OpenAI's shape.
pub fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_field(field, message).openai()
}

/// The text of an optional string field: `None` when absent or null, a 400 naming it when it
/// is not a string.
pub fn text<'a>(body: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(bad(field, format!("'{field}' must be a string"))),
    }
}

/// An optional boolean field: `false` when absent or null, a 400 naming it when it is not a
/// boolean.
fn flag(body: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(bad(field, format!("'{field}' must be true or false"))),
    }
}

/// Whether the client asked for a stream (`stream`), and then whether for usage in it
/// (`stream_options.include_usage`): `None` for one answer, `Some(include_usage)` for a stream.
pub fn stream(body: &Map<String, Value>) -> Result<Option<bool>, ApiError> {
    let include_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(options)) => flag(options, "include_usage")
            .map_err(|_| bad("stream_options", "'include_usage' must be true or false"))?,
        Some(_) => return Err(bad("stream_options", "'stream_options' must be an object")),
    };
    Ok(flag(body, "stream")?.then_some(include_usage))
}

/// The sampling fields of chat and text completions, and the `text-generation` parameter each
/// becomes.
pub const SAMPLING: [(&str, &str); 9] = [
    ("temperature", param::TEMPERATURE),
    ("top_p", param::TOP_P),
    ("top_k", param::TOP_K),
    ("min_p", param::MIN_P),
    ("repeat_penalty", param::REPEAT_PENALTY),
    ("repeat_last_n", param::REPEAT_LAST_N),
    ("seed", param::SEED),
    ("max_tokens", param::MAX_TOKENS),
    ("max_completion_tokens", param::MAX_TOKENS),
];

/// The sampling fields shared by chat and text completions ([`SAMPLING`]), mapped onto
/// `text-generation` parameters (what is refused, [`super::fields`] has refused before).
pub fn sampling(body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let mut params = Map::new();
    for (from, to) in SAMPLING {
        if let Some(value) = body.get(from).filter(|v| !v.is_null()) {
            params.insert(to.into(), value.clone());
        }
    }
    match body.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(stop)) => {
            params.insert(param::STOP.into(), Value::Array(vec![stop.clone().into()]));
        }
        Some(stop @ Value::Array(_)) => {
            params.insert(param::STOP.into(), stop.clone());
        }
        Some(_) => return Err(bad("stop", "'stop' must be a string or a list of strings")),
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn sampling_fields_are_mapped_and_stop_becomes_a_list() {
        let params = sampling(&map(json!({
            "temperature": 0.5, "max_completion_tokens": 9, "stop": "\n", "top_k": 3, "user": "x"
        })))
        .unwrap();
        assert_eq!(
            Value::Object(params),
            json!({"temperature": 0.5, "max_tokens": 9, "stop": ["\n"], "top_k": 3})
        );
    }

    #[test]
    fn stream_flags_of_the_wrong_type_are_refused_not_taken_for_absent() {
        assert_eq!(stream(&map(json!({}))).unwrap(), None);
        assert_eq!(stream(&map(json!({"stream": null}))).unwrap(), None);
        let with_usage = json!({"stream": true, "stream_options": {"include_usage": true}});
        assert_eq!(stream(&map(with_usage)).unwrap(), Some(true));
        for bad in [
            json!({"stream": "yes"}),
            json!({"stream": true, "stream_options": false}),
            json!({"stream": true, "stream_options": {"include_usage": 1}}),
        ] {
            assert!(stream(&map(bad.clone())).is_err(), "{bad}");
        }
        assert!(text(&map(json!({"model": 5})), "model").is_err());
    }

    #[test]
    fn a_stop_that_is_neither_text_nor_a_list_is_refused() {
        assert!(sampling(&map(json!({"stop": 3}))).is_err());
    }
}
