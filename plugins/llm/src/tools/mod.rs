//! Tool calling: how a model family writes its calls, how the tools reach its prompt, the
//! grammar that forces a call, and the parser that finds calls in its output.

mod grammar;
mod parse;
mod prompt;

pub use grammar::call_grammar;
pub use parse::{ParsedCall, ToolCallFilter};
pub use prompt::render_context;

/// How a model family writes tool calls, chosen from its chat template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// Hermes / Qwen: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` per call.
    /// Also the fallback for templates that know no tools.
    Hermes,
    /// Llama 3.x: a bare `{"name": ..., "parameters": {...}}` object (calls separated by `;`),
    /// optionally after `<|python_tag|>`.
    Llama3,
    /// Mistral: `[TOOL_CALLS]` then a JSON list of `{"name", "arguments"}`.
    Mistral,
}

impl ToolFormat {
    /// The format a chat template's source writes, as llama.cpp's chat code tells them apart.
    pub fn detect(template_source: &str) -> Self {
        if template_source.contains("[TOOL_CALLS]") {
            Self::Mistral
        } else if template_source.contains("<|python_tag|>") || template_source.contains("ipython")
        {
            Self::Llama3
        } else {
            Self::Hermes
        }
    }

    /// The text (often a special token) that starts the calls in formats that mark them.
    pub fn trigger(self) -> Option<&'static str> {
        match self {
            Self::Hermes => Some(parse::HERMES_OPEN),
            Self::Llama3 => Some("<|python_tag|>"),
            Self::Mistral => Some("[TOOL_CALLS]"),
        }
    }

    /// The key holding a call's arguments object.
    fn arguments_key(self) -> &'static str {
        match self {
            Self::Llama3 => "parameters",
            Self::Hermes | Self::Mistral => "arguments",
        }
    }
}

/// A new call id as OpenAI writes them: `call_` and 24 letters and digits.
pub fn new_call_id() -> String {
    use rand::{Rng, distr::Alphanumeric};
    let suffix: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("call_{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_template() {
        assert_eq!(
            ToolFormat::detect("{{ '<tool_call>' }}{{ tools }}"),
            ToolFormat::Hermes
        );
        assert_eq!(
            ToolFormat::detect("{% if m.role == 'ipython' %}"),
            ToolFormat::Llama3
        );
        assert_eq!(
            ToolFormat::detect("{{ '[TOOL_CALLS]' }}"),
            ToolFormat::Mistral
        );
        assert_eq!(
            ToolFormat::detect("<|im_start|>{{ m.content }}"),
            ToolFormat::Hermes
        );
    }

    #[test]
    fn call_ids_look_like_openai_ones() {
        let id = new_call_id();
        assert_eq!(id.len(), 29);
        assert!(id.starts_with("call_"));
        assert!(id[5..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(id, new_call_id());
    }
}
