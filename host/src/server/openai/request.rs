//! Reading OpenAI request bodies into job parameters.

use crate::server::ApiError;
use axum::{Json, extract::rejection::JsonRejection};
use rbee_plugin_api::tasks::text_generation::param;
use serde_json::{Map, Value, json};

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

/// The most choices one request may ask for (`n`).
pub const MAX_CHOICES: u64 = 8;

/// The most alternatives per token a request may ask for (`top_logprobs`, completions'
/// `logprobs`).
pub const MAX_TOP_LOGPROBS: u64 = 20;

/// How many choices the client asked for (`n`): 1 when absent or null, a 400 naming `n`
/// outside 1 to [`MAX_CHOICES`].
pub fn choices(body: &Map<String, Value>) -> Result<u64, ApiError> {
    match body.get("n") {
        None | Some(Value::Null) => Ok(1),
        Some(n) => n
            .as_u64()
            .filter(|n| (1..=MAX_CHOICES).contains(n))
            .ok_or_else(|| {
                bad(
                    "n",
                    format!("'n' must be an integer from 1 to {MAX_CHOICES}"),
                )
            }),
    }
}

/// The fields the plugin checks itself, passed on as they are (a constraint it cannot
/// compile is a 400 naming the field, before any token): output constraints and tools.
pub const PASSED_ON: [&str; 5] = [
    param::RESPONSE_FORMAT,
    param::GRAMMAR,
    param::TOOLS,
    param::TOOL_CHOICE,
    param::PARALLEL_TOOL_CALLS,
];

/// Adds the [`PASSED_ON`] fields of `body` to `params`, but not those that ask for nothing: a
/// `text` response format, an empty list of tools, `tool_choice: "none"` without tools.
pub fn pass_on(body: &Map<String, Value>, params: &mut Map<String, Value>) {
    let no_tools = body
        .get(param::TOOLS)
        .is_none_or(|tools| tools.is_null() || *tools == json!([]));
    for name in PASSED_ON {
        let Some(value) = body.get(name).filter(|value| !value.is_null()) else {
            continue;
        };
        let asks_nothing = match name {
            param::RESPONSE_FORMAT => *value == json!({"type": "text"}),
            param::TOOLS => no_tools,
            param::TOOL_CHOICE => no_tools && value == "none",
            _ => false,
        };
        if !asks_nothing {
            params.insert(name.into(), value.clone());
        }
    }
}

/// Chat's log probability fields: `None` unless `logprobs` is true, else how many alternatives
/// per token (`top_logprobs`, default 0). As OpenAI, 400 naming `top_logprobs` when it is given
/// without `logprobs: true` or outside 0 to 20.
pub fn chat_logprobs(body: &Map<String, Value>) -> Result<Option<u64>, ApiError> {
    let asked = flag(body, "logprobs")?;
    let top = match body.get("top_logprobs") {
        None | Some(Value::Null) => None,
        Some(top) => Some(alternatives("top_logprobs", top)?),
    };
    match (asked, top) {
        (false, Some(_)) => Err(bad("top_logprobs", "'top_logprobs' needs 'logprobs': true")),
        (false, None) => Ok(None),
        (true, top) => Ok(Some(top.unwrap_or(0))),
    }
}

/// Text completions' `logprobs`: `None` when absent or null, else how many alternatives per
/// token (0 to 20; 0 reports the chosen tokens alone).
pub fn completion_logprobs(body: &Map<String, Value>) -> Result<Option<u64>, ApiError> {
    match body.get("logprobs") {
        None | Some(Value::Null) => Ok(None),
        Some(top) => alternatives("logprobs", top).map(Some),
    }
}

/// A count of alternatives per token in `field`: 0 to [`MAX_TOP_LOGPROBS`], or a 400 naming it.
fn alternatives(field: &str, value: &Value) -> Result<u64, ApiError> {
    value
        .as_u64()
        .filter(|top| *top <= MAX_TOP_LOGPROBS)
        .ok_or_else(|| {
            bad(
                field,
                format!("'{field}' must be an integer from 0 to {MAX_TOP_LOGPROBS}"),
            )
        })
}

/// Asks the plugin for log probabilities with `top` alternatives per token, if asked for.
pub fn ask_logprobs(params: &mut Map<String, Value>, top: Option<u64>) {
    if let Some(top) = top {
        params.insert(param::LOGPROBS.into(), true.into());
        params.insert(param::TOP_LOGPROBS.into(), top.into());
    }
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

    /// The field a refusal names.
    fn refused_field(error: ApiError) -> String {
        let error = format!("{error:?}");
        assert!(error.contains("status: 400"), "{error}");
        let field = error.split("field: Some(\"").nth(1).expect("a field");
        field.split('"').next().unwrap_or_default().to_string()
    }

    #[test]
    fn n_is_one_to_eight_choices() {
        assert_eq!(choices(&map(json!({}))).unwrap(), 1);
        assert_eq!(choices(&map(json!({"n": null}))).unwrap(), 1);
        assert_eq!(choices(&map(json!({"n": 8}))).unwrap(), 8);
        for n in [json!(0), json!(9), json!(-1), json!(2.5), json!("2")] {
            let error = choices(&map(json!({ "n": n }))).unwrap_err();
            assert_eq!(refused_field(error), "n", "{n}");
        }
    }

    #[test]
    fn chat_logprobs_follow_openais_rules() {
        let asked = |body: Value| chat_logprobs(&map(body));
        assert_eq!(asked(json!({})).unwrap(), None);
        assert_eq!(asked(json!({"logprobs": false})).unwrap(), None);
        assert_eq!(asked(json!({"logprobs": true})).unwrap(), Some(0));
        let top = json!({"logprobs": true, "top_logprobs": 20});
        assert_eq!(asked(top).unwrap(), Some(20));
        for body in [
            json!({"top_logprobs": 2}),
            json!({"logprobs": false, "top_logprobs": 0}),
            json!({"logprobs": true, "top_logprobs": 21}),
            json!({"logprobs": true, "top_logprobs": -1}),
        ] {
            let error = asked(body.clone()).unwrap_err();
            assert_eq!(refused_field(error), "top_logprobs", "{body}");
        }
        let error = asked(json!({"logprobs": 1})).unwrap_err();
        assert_eq!(refused_field(error), "logprobs");
    }

    #[test]
    fn completion_logprobs_count_the_alternatives() {
        let asked = |body: Value| completion_logprobs(&map(body));
        assert_eq!(asked(json!({"logprobs": null})).unwrap(), None);
        assert_eq!(asked(json!({"logprobs": 0})).unwrap(), Some(0));
        assert_eq!(asked(json!({"logprobs": 5})).unwrap(), Some(5));
        for bad in [json!(21), json!(true), json!(-2)] {
            let error = asked(json!({ "logprobs": bad })).unwrap_err();
            assert_eq!(refused_field(error), "logprobs", "{bad}");
        }
        let mut params = Map::new();
        ask_logprobs(&mut params, Some(0));
        assert_eq!(
            Value::Object(params),
            json!({"logprobs": true, "top_logprobs": 0})
        );
        let mut params = Map::new();
        ask_logprobs(&mut params, None);
        assert!(params.is_empty());
    }

    #[test]
    fn constraints_and_tools_are_passed_on_unless_they_ask_for_nothing() {
        let passed = |body: Value| {
            let mut params = Map::new();
            pass_on(&map(body), &mut params);
            Value::Object(params)
        };
        let schema = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}});
        let tools = json!([{"type": "function", "function": {"name": "now"}}]);
        assert_eq!(
            passed(
                json!({"response_format": schema, "tools": tools, "tool_choice": "required",
                          "parallel_tool_calls": false, "grammar": "start: \"a\"", "user": "x"})
            ),
            json!({"response_format": schema, "tools": tools, "tool_choice": "required",
                   "parallel_tool_calls": false, "grammar": "start: \"a\""})
        );
        assert_eq!(
            passed(
                json!({"response_format": {"type": "text"}, "tools": [], "tool_choice": "none",
                          "grammar": null})
            ),
            json!({})
        );
        assert_eq!(
            passed(json!({"tools": tools, "tool_choice": "none"})),
            json!({"tools": tools, "tool_choice": "none"})
        );
        assert_eq!(
            passed(json!({"tool_choice": "auto"})),
            json!({"tool_choice": "auto"}),
            "what the plugin refuses, it refuses naming the field"
        );
    }
}
