//! The chat history and tools as a chat template receives them: as transformers passes them to
//! templates that render tools, or written into the messages (Hermes style) for templates
//! that know nothing of tools.

use crate::params::{ChatMessage, ToolDefinition};
use serde_json::{Map, Value, json};

/// The `messages` (and `tools`, for a template that renders them) to render.
pub fn render_context(
    messages: &[ChatMessage],
    tools: Option<&[ToolDefinition]>,
    template_renders_tools: bool,
) -> (Value, Option<Value>) {
    if template_renders_tools {
        let messages = messages.iter().map(as_transformers_message).collect();
        let tools = tools.map(|tools| json!(tools));
        return (Value::Array(messages), tools);
    }
    (Value::Array(written_into_messages(messages, tools)), None)
}

/// A message as transformers gives it to templates: call arguments as objects, not text.
fn as_transformers_message(message: &ChatMessage) -> Value {
    let mut value = json!(message);
    if let Some(calls) = value.get_mut("tool_calls").and_then(Value::as_array_mut) {
        for call in calls {
            let arguments = &mut call["function"]["arguments"];
            if let Some(parsed) = arguments
                .as_str()
                .and_then(|t| serde_json::from_str(t).ok())
            {
                *arguments = parsed;
            }
        }
    }
    value
}

/// Tools described in the system message, calls written as `<tool_call>` text and tool
/// results as user turns in `<tool_response>`: the Hermes convention, which small instruct
/// models trained on ChatML follow best.
fn written_into_messages(messages: &[ChatMessage], tools: Option<&[ToolDefinition]>) -> Vec<Value> {
    let mut out: Vec<Map<String, Value>> = Vec::new();
    if let Some(tools) = tools {
        let block = tools_block(tools);
        match messages.first() {
            Some(first) if first.role == "system" => {
                out.push(text_message(
                    "system",
                    &format!("{}\n\n{block}", first.text()),
                ));
            }
            _ => out.push(text_message("system", &block)),
        }
    }
    let skip = usize::from(tools.is_some() && messages.first().is_some_and(|m| m.role == "system"));
    for message in &messages[skip..] {
        match message.role.as_str() {
            "tool" => {
                let response = format!("<tool_response>\n{}\n</tool_response>", message.text());
                match out.last_mut() {
                    Some(last) if last.get("tool_turn").is_some() => {
                        let content = last["content"].as_str().unwrap_or_default();
                        last["content"] = format!("{content}\n{response}").into();
                    }
                    _ => {
                        let mut turn = text_message("user", &response);
                        turn.insert("tool_turn".into(), true.into());
                        out.push(turn);
                    }
                }
            }
            "assistant" if message.tool_calls.is_some() => {
                let calls = message.tool_calls.iter().flatten().map(|call| {
                    let arguments: Value = serde_json::from_str(&call.function.arguments)
                        .unwrap_or_else(|_| call.function.arguments.clone().into());
                    let body = json!({"name": call.function.name, "arguments": arguments});
                    format!("<tool_call>\n{body}\n</tool_call>")
                });
                let text = std::iter::once(message.text().to_string())
                    .filter(|text| !text.is_empty())
                    .chain(calls)
                    .collect::<Vec<_>>()
                    .join("\n");
                out.push(text_message("assistant", &text));
            }
            role => out.push(text_message(role, message.text())),
        }
    }
    out.into_iter()
        .map(|mut message| {
            message.remove("tool_turn");
            Value::Object(message)
        })
        .collect()
}

fn text_message(role: &str, content: &str) -> Map<String, Value> {
    let mut message = Map::new();
    message.insert("role".into(), role.into());
    message.insert("content".into(), content.into());
    message
}

/// The system prompt's description of the tools and of how to call them.
fn tools_block(tools: &[ToolDefinition]) -> String {
    let signatures: Vec<String> = tools.iter().map(|tool| json!(tool).to_string()).collect();
    format!(
        "You can call functions. Their signatures, as JSON, are listed between <tools> and \
         </tools>:\n<tools>\n{}\n</tools>\n\nTo call a function, answer with one JSON object per \
         call, holding its name and arguments, between <tool_call> and </tool_call>:\n\
         <tool_call>\n{{\"name\": \"function name\", \"arguments\": {{\"argument\": \"value\"}}}}\n\
         </tool_call>",
        signatures.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{FunctionCall, FunctionDefinition, ToolCall};

    fn weather_tool() -> ToolDefinition {
        ToolDefinition {
            kind: "function".into(),
            function: FunctionDefinition {
                name: "get_weather".into(),
                description: Some("The weather in a city".into()),
                parameters: Some(json!({"type": "object"})),
                strict: None,
            },
        }
    }

    fn history() -> Vec<ChatMessage> {
        let mut call = ChatMessage::new("assistant", "");
        call.content = None;
        call.tool_calls = Some(vec![ToolCall {
            id: Some("call_1".into()),
            kind: Some("function".into()),
            function: FunctionCall {
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            },
        }]);
        let mut result = ChatMessage::new("tool", "18 C");
        result.tool_call_id = Some("call_1".into());
        vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Weather in Paris?"),
            call,
            result.clone(),
            result,
        ]
    }

    #[test]
    fn templates_without_tools_get_them_written_into_the_messages() {
        let (messages, tools) = render_context(&history(), Some(&[weather_tool()]), false);
        assert_eq!(tools, None);
        let system = messages[0]["content"].as_str().unwrap();
        assert!(
            system.starts_with("Be brief.\n\nYou can call functions."),
            "{system}"
        );
        assert!(system.contains(r#""name":"get_weather""#), "{system}");
        assert_eq!(
            messages[1],
            json!({"role": "user", "content": "Weather in Paris?"})
        );
        assert_eq!(
            messages[2]["content"],
            "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n</tool_call>"
        );
        assert_eq!(
            messages[3],
            json!({"role": "user", "content": "<tool_response>\n18 C\n</tool_response>\n<tool_response>\n18 C\n</tool_response>"})
        );
        assert_eq!(messages.as_array().unwrap().len(), 4);
    }

    #[test]
    fn templates_with_tools_get_them_as_transformers_passes_them() {
        let (messages, tools) = render_context(&history(), Some(&[weather_tool()]), true);
        assert_eq!(tools.unwrap()[0]["function"]["name"], "get_weather");
        assert_eq!(
            messages[2]["tool_calls"][0]["function"]["arguments"],
            json!({"city": "Paris"})
        );
        assert_eq!(messages[2]["content"], Value::Null);
        assert_eq!(messages[3]["tool_call_id"], "call_1");
    }
}
