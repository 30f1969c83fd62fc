//! Finding tool calls in the model's output as it streams: text outside calls passes on, a
//! call's text is held until it is complete and parsed.

use super::ToolFormat;
use serde_json::Value;

/// Opens a call in the Hermes format.
pub const HERMES_OPEN: &str = "<tool_call>";
/// Closes a call in the Hermes format.
const HERMES_CLOSE: &str = "</tool_call>";

/// A complete call found in the output.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCall {
    /// The function's name.
    pub name: String,
    /// Its arguments, as compact JSON text.
    pub arguments: String,
}

/// What a piece of output became.
#[derive(Debug, Default, PartialEq)]
pub struct Filtered {
    /// Text to send on.
    pub text: String,
    /// Calls completed by this piece.
    pub calls: Vec<ParsedCall>,
}

/// Where the filter is in the output.
#[derive(Debug, PartialEq)]
enum State {
    /// Nothing but whitespace yet (formats whose calls open the output).
    Start,
    /// Ordinary text.
    Text,
    /// Inside a call (Hermes: until its closing tag; the others: to the end).
    Call,
}

/// Splits a stream of text into text and tool calls of one format, for the tools offered.
#[derive(Debug)]
pub struct ToolCallFilter {
    format: ToolFormat,
    names: Vec<String>,
    state: State,
    held: String,
    /// Whitespace right after a call separates calls; it is not text.
    after_call: bool,
}

impl ToolCallFilter {
    /// A filter for calls written in `format` to the functions `names`; a call of another name
    /// stays text.
    pub fn new(format: ToolFormat, names: Vec<String>) -> Self {
        let state = match format {
            ToolFormat::Hermes => State::Text,
            ToolFormat::Llama3 | ToolFormat::Mistral => State::Start,
        };
        Self {
            format,
            names,
            state,
            held: String::new(),
            after_call: false,
        }
    }

    /// Adds a piece of output.
    pub fn push(&mut self, text: &str) -> Filtered {
        self.held.push_str(text);
        let mut out = Filtered::default();
        loop {
            match self.state {
                State::Start => {
                    let start = self.held.trim_start();
                    if start.is_empty() {
                        return out;
                    }
                    let opens_call = match self.format {
                        ToolFormat::Llama3 => {
                            start.starts_with('{') || start.starts_with("<|python_tag|>")
                        }
                        _ => start.starts_with("[TOOL_CALLS]"),
                    };
                    let could_open =
                        "<|python_tag|>".starts_with(start) || "[TOOL_CALLS]".starts_with(start);
                    if opens_call {
                        self.state = State::Call;
                    } else if could_open {
                        return out;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::Text if self.format != ToolFormat::Hermes => {
                    out.text.push_str(&std::mem::take(&mut self.held));
                    return out;
                }
                State::Text if self.after_call => {
                    let rest = self.held.trim_start().len();
                    self.held.drain(..self.held.len() - rest);
                    if self.held.is_empty() {
                        return out;
                    }
                    self.after_call = false;
                }
                State::Text => match self.held.find(HERMES_OPEN) {
                    Some(at) => {
                        out.text.push_str(&self.held[..at]);
                        self.held.drain(..at + HERMES_OPEN.len());
                        self.state = State::Call;
                    }
                    None => {
                        let keep = held_prefix_start(&self.held, HERMES_OPEN);
                        out.text.push_str(&self.held[..keep]);
                        self.held.drain(..keep);
                        return out;
                    }
                },
                State::Call if self.format != ToolFormat::Hermes => return out,
                State::Call => match self.held.find(HERMES_CLOSE) {
                    Some(at) => {
                        let body = self.held[..at].to_string();
                        self.held.drain(..at + HERMES_CLOSE.len());
                        self.state = State::Text;
                        match self.parse(&body) {
                            Some(calls) => {
                                out.calls.extend(calls);
                                self.after_call = true;
                            }
                            None => out
                                .text
                                .push_str(&format!("{HERMES_OPEN}{body}{HERMES_CLOSE}")),
                        }
                    }
                    None => return out,
                },
            }
        }
    }

    /// Ends the output: an unfinished call is parsed if it can be, or released as text.
    pub fn finish(mut self) -> Filtered {
        let mut out = Filtered::default();
        let held = std::mem::take(&mut self.held);
        match self.state {
            State::Call => match self.parse(&held) {
                Some(calls) => out.calls = calls,
                None if self.format == ToolFormat::Hermes => {
                    out.text = format!("{HERMES_OPEN}{held}");
                }
                None => out.text = held,
            },
            State::Start | State::Text => out.text = held,
        }
        out
    }

    /// The calls in a call's text, or `None` if it does not parse as calls of offered tools.
    fn parse(&self, body: &str) -> Option<Vec<ParsedCall>> {
        let body = body.trim();
        let values: Vec<Value> = match self.format {
            ToolFormat::Hermes => vec![serde_json::from_str(body).ok()?],
            ToolFormat::Llama3 => body
                .trim_start_matches("<|python_tag|>")
                .split(';')
                .map(|call| serde_json::from_str(call.trim()).ok())
                .collect::<Option<_>>()?,
            ToolFormat::Mistral => {
                let list = body.trim_start_matches("[TOOL_CALLS]").trim();
                match serde_json::from_str(list).ok()? {
                    Value::Array(calls) => calls,
                    call @ Value::Object(_) => vec![call],
                    _ => return None,
                }
            }
        };
        values.iter().map(|value| self.call(value)).collect()
    }

    fn call(&self, value: &Value) -> Option<ParsedCall> {
        let name = value.get("name")?.as_str()?;
        if !self.names.iter().any(|known| known == name) {
            return None;
        }
        let arguments = match value
            .get(self.format.arguments_key())
            .or_else(|| value.get("arguments"))
        {
            Some(Value::String(text)) => {
                serde_json::from_str::<Value>(text).ok()?;
                text.clone()
            }
            Some(arguments @ Value::Object(_)) => arguments.to_string(),
            None => "{}".into(),
            Some(_) => return None,
        };
        Some(ParsedCall {
            name: name.into(),
            arguments,
        })
    }
}

/// Where the part of `text` that could begin `tag` starts (`text.len()` if none).
fn held_prefix_start(text: &str, tag: &str) -> usize {
    text.char_indices()
        .map(|(at, _)| at)
        .find(|&at| tag.starts_with(&text[at..]))
        .unwrap_or(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(format: ToolFormat, pieces: &[&str]) -> (String, Vec<ParsedCall>) {
        let mut filter = ToolCallFilter::new(format, vec!["get_weather".into(), "now".into()]);
        let (mut text, mut calls) = (String::new(), Vec::new());
        for piece in pieces {
            let out = filter.push(piece);
            text.push_str(&out.text);
            calls.extend(out.calls);
        }
        let out = filter.finish();
        text.push_str(&out.text);
        calls.extend(out.calls);
        (text, calls)
    }

    fn weather(city: &str) -> ParsedCall {
        ParsedCall {
            name: "get_weather".into(),
            arguments: format!(r#"{{"city":"{city}"}}"#),
        }
    }

    #[test]
    fn hermes_calls_split_over_pieces_are_found_and_text_passes() {
        let (text, calls) = run(
            ToolFormat::Hermes,
            &[
                "Let me check. <tool",
                "_call>\n{\"name\": \"get_weather\", \"argu",
                "ments\": {\"city\": \"Paris\"}}\n</tool_call>",
                "\n",
                "<tool_call>\n",
                "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>",
            ],
        );
        assert_eq!(text, "Let me check. ");
        assert_eq!(calls, [weather("Paris"), weather("Rome")]);
    }

    #[test]
    fn a_lone_angle_bracket_is_released_and_broken_calls_stay_text() {
        let (text, calls) = run(
            ToolFormat::Hermes,
            &["a < b", " and <tool_call>{oops}</tool_call>"],
        );
        assert_eq!(text, "a < b and <tool_call>{oops}</tool_call>");
        assert!(calls.is_empty());
        let (text, calls) = run(ToolFormat::Hermes, &["<tool_call>\n{\"name\": \"get_w"]);
        assert_eq!(text, "<tool_call>\n{\"name\": \"get_w");
        assert!(calls.is_empty());
    }

    #[test]
    fn unknown_functions_are_not_calls() {
        let body = "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>";
        let (text, calls) = run(ToolFormat::Hermes, &[body]);
        assert_eq!((text.as_str(), calls.len()), (body, 0));
    }

    #[test]
    fn llama3_json_calls_with_parameters_are_found() {
        let (text, calls) = run(
            ToolFormat::Llama3,
            &[
                " {\"name\": \"get_weather\", ",
                "\"parameters\": {\"city\": \"Paris\"}}; {\"name\": \"now\", \"parameters\": {}}",
            ],
        );
        assert_eq!(text, "");
        assert_eq!(
            calls,
            [
                weather("Paris"),
                ParsedCall {
                    name: "now".into(),
                    arguments: "{}".into()
                }
            ]
        );
        let (text, calls) = run(
            ToolFormat::Llama3,
            &["<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}"],
        );
        assert_eq!((text.as_str(), calls), ("", vec![weather("Rome")]));
        let (text, calls) = run(ToolFormat::Llama3, &["It is sunny."]);
        assert_eq!((text.as_str(), calls.len()), ("It is sunny.", 0));
    }

    #[test]
    fn mistral_call_lists_are_found() {
        let (text, calls) = run(
            ToolFormat::Mistral,
            &[
                "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, ",
                "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Rome\\\"}\"}]",
            ],
        );
        assert_eq!(text, "");
        assert_eq!(calls[0], weather("Paris"));
        assert_eq!(calls[1].arguments, "{\"city\": \"Rome\"}");
        let (text, calls) = run(ToolFormat::Mistral, &["[Note] plain"]);
        assert_eq!((text.as_str(), calls.len()), ("[Note] plain", 0));
    }
}
