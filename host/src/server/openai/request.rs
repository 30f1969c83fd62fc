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

/// Whether the client asked for a stream.
pub fn wants_stream(body: &Map<String, Value>) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

/// The sampling fields shared by chat and text completions, mapped onto `text-generation`
/// parameters (what is refused, [`super::fields`] has refused before).
pub fn sampling(body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let mut params = Map::new();
    let renamed = [
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
    for (from, to) in renamed {
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
    fn a_stop_that_is_neither_text_nor_a_list_is_refused() {
        assert!(sampling(&map(json!({"stop": 3}))).is_err());
    }
}
