//! Renders chat messages into a prompt with the model's own Jinja chat template.

use crate::{
    error::LlmError,
    params::{ChatMessage, ToolDefinition},
    tools::{self, ToolFormat},
};
use minijinja::{
    Environment, Error, ErrorKind, Value, context, syntax::SyntaxConfig, value::Serde,
};

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    renders_tools: bool,
    tool_format: ToolFormat,
}

impl ChatTemplate {
    /// Compiles `source` the way Hugging Face transformers runs chat templates: blocks trimmed,
    /// Python string and dict methods, `raise_exception`.
    pub fn new(source: String, bos_token: String, eos_token: String) -> Result<Self, String> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| e.to_string())?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        let renders_tools = source.contains("tools");
        let tool_format = ToolFormat::detect(&source);
        env.add_template_owned(TEMPLATE_NAME, source)
            .map_err(|e| format!("invalid chat template: {e}"))?;
        Ok(Self {
            env,
            bos_token,
            eos_token,
            renders_tools,
            tool_format,
        })
    }

    /// How the model writes tool calls.
    pub fn tool_format(&self) -> ToolFormat {
        self.tool_format
    }

    /// The prompt for `messages` with `tools` offered, ending with the opening of the
    /// assistant's turn. A template that does not render tools gets them written into the
    /// messages.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[ToolDefinition]>,
    ) -> Result<String, LlmError> {
        let (messages, tools) = tools::render_context(messages, tools, self.renders_tools);
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| LlmError::invalid_param("messages", e))?;
        template
            .render(context! {
                messages => Value::from(Serde(messages)),
                tools => tools.map(|tools| Value::from(Serde(tools))),
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| {
                LlmError::invalid_param("messages", format!("the chat template failed: {e}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: &str, content: &str) -> ChatMessage {
        ChatMessage::new(role, content)
    }

    #[test]
    fn renders_chatml_with_generation_prompt() {
        let source = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n\
                      {% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let template = ChatTemplate::new(source.into(), String::new(), String::new()).unwrap();
        let prompt = template.render(&[message("user", "Hi")], None).unwrap();
        assert_eq!(
            prompt,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_methods_blocks_and_special_tokens_work() {
        let source = "{{ bos_token }}{% for m in messages %}\n{{ m['content'].strip() | upper }}\n  {% endfor %}{{ eos_token }}";
        let template = ChatTemplate::new(source.into(), "<s>".into(), "</s>".into()).unwrap();
        assert_eq!(
            template.render(&[message("user", "  hi ")], None).unwrap(),
            "<s>HI\n</s>"
        );
    }

    #[test]
    fn raise_exception_is_a_messages_error() {
        let source = "{{ raise_exception('Conversation roles must alternate') }}";
        let template = ChatTemplate::new(source.into(), String::new(), String::new()).unwrap();
        let error = template.render(&[message("user", "x")], None).unwrap_err();
        assert!(
            matches!(&error, LlmError::InvalidParam { field, message } if field == "messages" && message.contains("alternate")),
            "{error}"
        );
    }
}
