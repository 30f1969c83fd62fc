//! The answers of chat and text completions as OpenAI shapes them: the whole response and the
//! pieces of a stream (opening, token, tool call, finish and usage chunks), each choice with its
//! `index`, log probabilities when they were asked for, and tool calls when the model made any.

use super::{logprobs, usage};
use crate::server::collect::Collected;
use rbee_plugin_api::tasks::text_generation::stop_reason;
use serde_json::{Value, json};

/// Chat or plain-text completion: the two differ only in their object shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/completions`.
    Text,
}

impl Flavor {
    /// The route's path.
    pub fn route(self) -> &'static str {
        match self {
            Flavor::Chat => "/v1/chat/completions",
            Flavor::Text => "/v1/completions",
        }
    }

    /// What the completion's id starts with.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Flavor::Chat => "chatcmpl",
            Flavor::Text => "cmpl",
        }
    }
}

/// What every chunk or response of one completion carries, and what it was asked for.
pub struct Completion {
    /// `chatcmpl-...` or `cmpl-...`.
    pub id: String,
    /// The model that answers.
    pub model: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// Chat or text.
    pub flavor: Flavor,
    /// Whether the client asked for log probabilities.
    pub logprobs: bool,
}

impl Completion {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.flavor, chunk) {
            (Flavor::Chat, false) => "chat.completion",
            (Flavor::Chat, true) => "chat.completion.chunk",
            (Flavor::Text, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Value) -> Value {
        json!({"id": self.id, "object": self.object(chunk), "created": self.created, "model": self.model, "choices": choices})
    }

    /// A chunk of one choice: chat's `delta` (text's `text`), its finish reason and logprobs.
    fn chunk(
        &self,
        index: usize,
        delta: Value,
        finish_reason: Option<&str>,
        logprobs: Value,
    ) -> Value {
        let choice = match self.flavor {
            Flavor::Chat => {
                json!({"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": logprobs})
            }
            Flavor::Text => {
                let text = delta["content"].as_str().unwrap_or_default();
                json!({"index": index, "text": text, "finish_reason": finish_reason, "logprobs": logprobs})
            }
        };
        self.envelope(true, json!([choice]))
    }

    /// The first chunk of choice `index` of a chat stream (text streams have none): the role.
    pub fn opening(&self, index: usize) -> Option<Value> {
        let delta = json!({"role": "assistant", "content": ""});
        (self.flavor == Flavor::Chat).then(|| self.chunk(index, delta, None, Value::Null))
    }

    /// The chunk of a `token` event of choice `index`: its text and, when asked for, the log
    /// probabilities of its tokens (`offset`: where they start in the choice's text).
    pub fn token(&self, index: usize, text: &str, entries: &[Value], offset: &mut usize) -> Value {
        let logprobs = match (self.logprobs, self.flavor) {
            (false, _) => Value::Null,
            (true, Flavor::Chat) => logprobs::chat(entries),
            (true, Flavor::Text) => logprobs::text(entries, offset),
        };
        self.chunk(index, json!({"content": text}), None, logprobs)
    }

    /// The chunk of a `tool_call` event of choice `index` (chat only): the whole call at once.
    pub fn tool_call(&self, index: usize, call: &Value) -> Option<Value> {
        if self.flavor != Flavor::Chat {
            return None;
        }
        let mut delta = tool_call(call);
        delta["index"] = call["index"].clone();
        let delta = json!({"tool_calls": [delta]});
        Some(self.chunk(index, delta, None, Value::Null))
    }

    /// The last chunk of choice `index`: why it ended.
    pub fn finish(&self, index: usize, stop_reason: &str) -> Value {
        let finish_reason = Some(finish_reason(stop_reason));
        self.chunk(index, json!({}), finish_reason, Value::Null)
    }

    /// The chunk after every choice ended, when the client asked for usage: no choices.
    pub fn usage(&self, usage: Value) -> Value {
        let mut chunk = self.envelope(true, json!([]));
        chunk["usage"] = usage;
        chunk
    }

    /// The whole response: one choice per job, in order, and their usage.
    pub fn full(&self, choices: &[Collected]) -> Value {
        let shaped = choices.iter().enumerate();
        let shaped: Vec<Value> = shaped.map(|(i, c)| self.choice(i, c)).collect();
        let mut response = self.envelope(false, shaped.into());
        response["usage"] = usage(choices.iter().map(|c| &c.details));
        response
    }

    /// Choice `index` of the whole response.
    fn choice(&self, index: usize, collected: &Collected) -> Value {
        let finish_reason = finish_reason(&collected.stop_reason);
        match self.flavor {
            Flavor::Chat => {
                let logprobs = self.logprobs.then(|| logprobs::chat(&collected.logprobs));
                json!({
                    "index": index,
                    "message": message(collected),
                    "finish_reason": finish_reason,
                    "logprobs": logprobs,
                })
            }
            Flavor::Text => {
                let logprobs = self
                    .logprobs
                    .then(|| logprobs::text(&collected.logprobs, &mut 0));
                json!({"index": index, "text": collected.text, "finish_reason": finish_reason, "logprobs": logprobs})
            }
        }
    }
}

/// The assistant's message: its text, and its tool calls if it made any (then the content is
/// null unless there is text too).
fn message(collected: &Collected) -> Value {
    if collected.tool_calls.is_empty() {
        return json!({"role": "assistant", "content": collected.text});
    }
    let content = match collected.text.is_empty() {
        true => Value::Null,
        false => collected.text.clone().into(),
    };
    let calls: Vec<Value> = collected.tool_calls.iter().map(tool_call).collect();
    json!({"role": "assistant", "content": content, "tool_calls": calls})
}

/// A `tool_call` event's data (`{index, id, name, arguments}`) as OpenAI shapes a call.
fn tool_call(data: &Value) -> Value {
    let arguments = match &data["arguments"] {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    json!({"id": data["id"], "type": "function", "function": {"name": data["name"], "arguments": arguments}})
}

/// OpenAI's finish reasons: `length` when max_tokens ended it, `tool_calls` when the model
/// ended its turn calling tools, `stop` otherwise.
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        stop_reason::MAX_TOKENS => "length",
        stop_reason::TOOL_CALLS => "tool_calls",
        _ => "stop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(flavor: Flavor, logprobs: bool) -> Completion {
        Completion {
            id: "cmpl-1".into(),
            model: "m".into(),
            created: 7,
            flavor,
            logprobs,
        }
    }

    fn collected(text: &str, stop_reason: &str, completion_tokens: u64) -> Collected {
        Collected {
            text: text.into(),
            stop_reason: stop_reason.into(),
            details: json!({"prompt_tokens": 5, "completion_tokens": completion_tokens}),
            ..Collected::default()
        }
    }

    fn entry(token: &str) -> Value {
        json!({"token": token, "logprob": -0.25, "bytes": token.as_bytes(),
               "top_logprobs": [{"token": token, "logprob": -0.25, "bytes": token.as_bytes()}]})
    }

    #[test]
    fn finish_reasons_are_openais() {
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("tool_calls"), "tool_calls");
        for other in ["eos", "stop_sequence", "completed", "cancelled"] {
            assert_eq!(finish_reason(other), "stop", "{other}");
        }
    }

    #[test]
    fn a_chat_answer_that_calls_tools_has_no_content_and_finishes_with_tool_calls() {
        let mut called = collected("", "tool_calls", 9);
        called.tool_calls = vec![
            json!({"index": 0, "id": "call_a", "name": "now", "arguments": "{}"}),
            json!({"index": 1, "id": "call_b", "name": "add", "arguments": {"a": 1}}),
        ];
        let answer = completion(Flavor::Chat, false).full(&[called]);
        assert_eq!(answer["object"], "chat.completion");
        assert_eq!(
            answer["choices"],
            json!([{
                "index": 0,
                "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "now", "arguments": "{}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "add", "arguments": "{\"a\":1}"}},
                ]},
                "finish_reason": "tool_calls",
                "logprobs": null,
            }])
        );
    }

    #[test]
    fn a_chat_answer_of_two_choices_with_logprobs() {
        let mut first = collected("Hi", "eos", 2);
        first.logprobs = vec![entry("H"), entry("i")];
        let second = collected("Yo there", "max_tokens", 3);
        let answer = completion(Flavor::Chat, true).full(&[first, second]);
        assert_eq!(
            answer["choices"],
            json!([
                {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop",
                 "logprobs": {"content": [entry("H"), entry("i")], "refusal": null}},
                {"index": 1, "message": {"role": "assistant", "content": "Yo there"}, "finish_reason": "length",
                 "logprobs": {"content": [], "refusal": null}},
            ])
        );
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10})
        );
    }

    #[test]
    fn a_text_answer_with_logprobs_lists_tokens_alternatives_and_offsets() {
        let mut done = collected("Paris.", "eos", 2);
        done.logprobs = vec![entry("Paris"), entry(".")];
        let answer = completion(Flavor::Text, true).full(&[done]);
        assert_eq!(answer["object"], "text_completion");
        assert_eq!(
            answer["choices"][0],
            json!({"index": 0, "text": "Paris.", "finish_reason": "stop", "logprobs": {
                "tokens": ["Paris", "."],
                "token_logprobs": [-0.25, -0.25],
                "top_logprobs": [{"Paris": -0.25}, {".": -0.25}],
                "text_offset": [0, 5],
            }})
        );
        let plain = completion(Flavor::Text, false).full(&[collected("x", "eos", 1)]);
        assert_eq!(plain["choices"][0]["logprobs"], Value::Null);
    }
}
