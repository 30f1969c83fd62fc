//! The grammar that makes the model call a tool: the format's framing around JSON that follows
//! the called function's parameter schema, so the arguments always parse.

use super::ToolFormat;
use crate::params::{ToolChoice, ToolsParams};
use serde_json::{Value, json};

/// The Lark grammar of a reply with tools, or `None` when it is free:
/// - `tool_choice` `required` or a named function: calls only, their arguments following the
///   function's parameter schema (properties it does not declare are not allowed, as in
///   OpenAI's strict mode, unless the schema says otherwise);
/// - `auto` with `answer` (the JSON Schema of `response_format`): either such an answer or
///   calls; `auto` without one is free (its output is only parsed).
///
/// `special_trigger` is the token id of the format's opening marker when the vocabulary has it
/// as a special token.
pub fn call_grammar(
    tools: &ToolsParams,
    format: ToolFormat,
    special_trigger: Option<u32>,
    answer: Option<Value>,
) -> Option<String> {
    let offered: Vec<_> = match &tools.choice {
        ToolChoice::None => return None,
        ToolChoice::Auto if answer.is_none() => return None,
        ToolChoice::Auto | ToolChoice::Required => tools.tools.iter().collect(),
        ToolChoice::Function(name) => tools
            .tools
            .iter()
            .filter(|tool| tool.function.name == *name)
            .collect(),
    };
    let key = format.arguments_key();
    let variants: Vec<Value> = offered
        .iter()
        .map(|tool| {
            let mut parameters = tool
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object"}));
            if let Some(schema) = parameters.as_object_mut() {
                schema.entry("additionalProperties").or_insert(false.into());
            }
            json!({
                "type": "object",
                "properties": {"name": {"const": tool.function.name}, key: parameters},
                "required": ["name", key],
                "additionalProperties": false,
            })
        })
        .collect();
    let one_call = json!({"anyOf": variants});
    let several = tools.parallel && !matches!(tools.choice, ToolChoice::Function(_));
    let calls = match format {
        ToolFormat::Hermes => {
            let repeat = if several { " (\"\\n\" call)*" } else { "" };
            format!(
                "start: call{repeat}\ncall: \"<tool_call>\\n\" %json {} \"\\n</tool_call>\"",
                strict(one_call)
            )
        }
        ToolFormat::Llama3 => {
            let repeat = if several { " (\"; \" call)*" } else { "" };
            format!("start: call{repeat}\ncall: %json {}", strict(one_call))
        }
        ToolFormat::Mistral => {
            let trigger = match special_trigger {
                Some(id) => format!("<[{id}]>"),
                None => "\"[TOOL_CALLS]\"".into(),
            };
            let mut list = json!({"type": "array", "items": one_call, "minItems": 1});
            if !several {
                list["maxItems"] = json!(1);
            }
            format!("start: {trigger} %json {}", strict(list))
        }
    };
    Some(match answer {
        None => calls,
        Some(answer) => format!(
            "{}\nstart: answer | calls\nanswer: %json {}",
            calls.replacen("start:", "calls:", 1),
            strict(answer)
        ),
    })
}

/// A schema for `%json` with no free whitespace, so sampling cannot loop on blanks.
fn strict(mut schema: Value) -> Value {
    schema["x-guidance"] = json!({"whitespace_flexible": false});
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{FunctionDefinition, ToolDefinition};

    fn tools(choice: ToolChoice, parallel: bool) -> ToolsParams {
        let tool = |name: &str| ToolDefinition {
            kind: "function".into(),
            function: FunctionDefinition {
                name: name.into(),
                description: None,
                parameters: Some(
                    json!({"type": "object", "properties": {"city": {"type": "string"}}}),
                ),
                strict: None,
            },
        };
        ToolsParams {
            tools: vec![tool("get_weather"), tool("now")],
            choice,
            parallel,
        }
    }

    #[test]
    fn auto_is_free_and_a_named_function_is_the_only_one_allowed() {
        assert_eq!(
            call_grammar(
                &tools(ToolChoice::Auto, true),
                ToolFormat::Hermes,
                None,
                None
            ),
            None
        );
        let named = call_grammar(
            &tools(ToolChoice::Function("now".into()), true),
            ToolFormat::Hermes,
            None,
            None,
        )
        .unwrap();
        assert!(named.contains(r#""const":"now""#), "{named}");
        assert!(!named.contains("get_weather"), "{named}");
        assert!(
            !named.contains("call)*"),
            "a named function is called once: {named}"
        );
    }

    #[test]
    fn required_allows_several_calls_only_when_parallel() {
        let parallel = call_grammar(
            &tools(ToolChoice::Required, true),
            ToolFormat::Hermes,
            None,
            None,
        )
        .unwrap();
        assert!(parallel.contains("(\"\\n\" call)*"), "{parallel}");
        let single = call_grammar(
            &tools(ToolChoice::Required, false),
            ToolFormat::Mistral,
            Some(5),
            None,
        )
        .unwrap();
        assert!(single.starts_with("start: <[5]> %json"), "{single}");
        assert!(single.contains(r#""maxItems":1"#), "{single}");
        let llama = call_grammar(
            &tools(ToolChoice::Required, false),
            ToolFormat::Llama3,
            None,
            None,
        )
        .unwrap();
        assert!(llama.contains(r#""parameters""#), "{llama}");
    }

    #[test]
    fn auto_with_a_response_format_is_that_answer_or_calls() {
        let answer = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});
        let either = call_grammar(
            &tools(ToolChoice::Auto, true),
            ToolFormat::Hermes,
            None,
            Some(answer),
        )
        .unwrap();
        assert!(
            either.starts_with("calls: call (\"\\n\" call)*"),
            "{either}"
        );
        assert!(
            either.contains("start: answer | calls\nanswer: %json {"),
            "{either}"
        );
        assert!(either.contains(r#""ok""#), "{either}");
    }
}
