//! The `text-generation` job parameters: one type that validates them and publishes their JSON
//! Schema, defaults and range checks.

use crate::{constraint::GrammarSpec, error::LlmError};
use rbee_plugin_api::{PluginError, tasks::text_generation::param};
use rbee_plugin_kit::params;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most stop sequences a job may give.
pub const MAX_STOP_SEQUENCES: usize = 4;

const MAX_TOKENS_DEFAULT: u32 = 256;
const MAX_TOKENS_LIMIT: u32 = 32_768;
const TEMPERATURE_DEFAULT: f32 = 0.8;
const TEMPERATURE_MAX: f32 = 2.0;
const TOP_K_DEFAULT: u32 = 40;
const TOP_P_DEFAULT: f32 = 0.95;
const MIN_P_DEFAULT: f32 = 0.05;
const REPEAT_PENALTY_DEFAULT: f32 = 1.0;
const REPEAT_PENALTY_MAX: f32 = 2.0;
const REPEAT_LAST_N_DEFAULT: u32 = 64;
const REPEAT_LAST_N_MAX: u32 = 4096;
const STOP_MAX_CHARS: usize = 256;
const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];
/// The most alternatives a `top_logprobs` request may ask for, as OpenAI allows.
pub const TOP_LOGPROBS_MAX: u32 = 20;

/// One chat message: who said it and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
pub struct ChatMessage {
    /// Who said it: `system`, `user`, `assistant` or `tool`.
    #[schemars(extend("enum" = ROLES))]
    pub role: String,
    /// The text of the message; an assistant message with `tool_calls` may have none.
    #[serde(default)]
    pub content: Option<String>,
    /// The tools an assistant message called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The speaker's or the tool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    /// A message of `role` saying `content`.
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: Some(content.into()),
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }

    /// The text, empty when there is none.
    pub fn text(&self) -> &str {
        self.content.as_deref().unwrap_or("")
    }
}

/// A call of a tool, as OpenAI shapes it in chat history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(inline)]
pub struct ToolCall {
    /// The call's id, which the `tool` message answering it repeats.
    #[serde(default)]
    pub id: Option<String>,
    /// Always `function`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The function called.
    pub function: FunctionCall,
}

/// A function name and its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(inline)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments, as JSON text.
    pub arguments: String,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
pub struct ToolDefinition {
    /// Always `function`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["function"]))]
    pub kind: String,
    /// The function.
    pub function: FunctionDefinition,
}

/// A function's name, purpose and parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
pub struct FunctionDefinition {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema of its arguments object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Accepted; arguments always follow `parameters` when calls are constrained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    /// Text or calls, as the model decides (unconstrained, parsed).
    Auto,
    /// Text only; the tools are not shown to the model.
    None,
    /// At least one call, constrained to the tools' schemas.
    Required,
    /// A call of this function, constrained to its schema.
    Function(String),
}

/// The tools of a job and how they may be called.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolsParams {
    /// The functions offered.
    pub tools: Vec<ToolDefinition>,
    /// Whether and which one must be called.
    pub choice: ToolChoice,
    /// Whether more than one call may be made in the turn.
    pub parallel: bool,
}

/// What the output must follow, and which parameter asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputConstraint {
    /// The grammar.
    pub spec: GrammarSpec,
    /// `response_format` or `grammar`, for error messages.
    pub field: &'static str,
}

/// What the model continues: a raw prompt or a chat rendered with the model's template.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    /// Text given to the model as it is.
    Text(String),
    /// Messages rendered with the model's chat template.
    Chat(Vec<ChatMessage>),
}

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 keeps all.
    pub top_k: u32,
    /// Keep the smallest set of tokens whose probabilities add up to `top_p`.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one.
    pub min_p: f32,
    /// Divide the logits of recently seen tokens by this (1 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens `repeat_penalty` looks at.
    pub repeat_last_n: u32,
    /// The random seed; `None` picks one (reported back).
    pub seed: Option<u64>,
}

/// The validated parameters of one `text-generation` job.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationParams {
    /// The prompt or the chat.
    pub input: PromptInput,
    /// Exactly how many tokens to generate at most.
    pub max_tokens: u32,
    /// Token selection.
    pub sampling: SamplingParams,
    /// Texts that end generation; they are not emitted.
    pub stop: Vec<String>,
    /// A grammar the output must follow.
    pub constraint: Option<OutputConstraint>,
    /// Tools the model may call.
    pub tools: Option<ToolsParams>,
    /// Report the sampled tokens' log probabilities with this many alternatives each.
    pub top_logprobs: Option<u32>,
}

/// The parameters as clients send them; [`GenerationParams::parse`] reads and checks them and
/// [`schema`] publishes their JSON Schema. Absent and `null` fields take their defaults.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "text-generation parameters",
    description = "Parameters of a text-generation job: a prompt or a chat (give exactly one), \
                   and how to sample the reply.",
    transform = prompt_or_messages
)]
struct Wire {
    /// Text to continue as it is.
    #[schemars(length(min = 1))]
    prompt: Option<String>,
    /// A chat, rendered with the model's chat template.
    #[schemars(length(min = 1))]
    messages: Option<Vec<ChatMessage>>,
    /// The most tokens to generate.
    #[schemars(
        range(min = 1, max = MAX_TOKENS_LIMIT),
        extend("default" = MAX_TOKENS_DEFAULT)
    )]
    max_tokens: Option<u32>,
    /// Softmax temperature; 0 is greedy.
    #[schemars(
        range(min = 0, max = TEMPERATURE_MAX),
        extend("default" = decimal(TEMPERATURE_DEFAULT))
    )]
    temperature: Option<f32>,
    /// Keep only this many of the most likely tokens; 0 keeps every token.
    #[schemars(extend("default" = TOP_K_DEFAULT))]
    top_k: Option<u32>,
    /// Keep the smallest set of tokens whose probabilities add up to this.
    #[schemars(
        range(max = 1),
        extend("exclusiveMinimum" = 0, "default" = decimal(TOP_P_DEFAULT))
    )]
    top_p: Option<f32>,
    /// Drop tokens less likely than this fraction of the most likely one.
    #[schemars(range(min = 0, max = 1), extend("default" = decimal(MIN_P_DEFAULT)))]
    min_p: Option<f32>,
    /// Penalise recently seen tokens; 1 is off.
    #[schemars(
        range(min = 1, max = REPEAT_PENALTY_MAX),
        extend("default" = decimal(REPEAT_PENALTY_DEFAULT))
    )]
    repeat_penalty: Option<f32>,
    /// How many recent tokens repeat_penalty looks at.
    #[schemars(
        range(max = REPEAT_LAST_N_MAX),
        extend("default" = REPEAT_LAST_N_DEFAULT)
    )]
    repeat_last_n: Option<u32>,
    /// Omit for a random seed (reported back).
    seed: Option<u64>,
    /// Text that ends generation (not emitted): one string or a list.
    stop: Option<StopParam>,
    /// Constrain the output: `{"type": "json_object"}`, `{"type": "json_schema", "json_schema":
    /// {"name", "schema"}}` as OpenAI shapes it, or `{"type": "regex", "pattern"}`.
    response_format: Option<ResponseFormat>,
    /// A grammar in llguidance's Lark syntax the output must follow (not with response_format).
    #[schemars(length(min = 1))]
    grammar: Option<String>,
    /// Functions the model may call, as OpenAI shapes them.
    tools: Option<Vec<ToolDefinition>>,
    /// `auto` (default with tools), `none`, `required`, or `{"type": "function", "function":
    /// {"name"}}`.
    tool_choice: Option<ToolChoiceWire>,
    /// Whether the model may call several tools in one turn; default true.
    parallel_tool_calls: Option<bool>,
    /// Report each sampled token's log probability (`token_logprobs` events).
    logprobs: Option<bool>,
    /// How many of the most likely alternatives to list per token (needs logprobs).
    #[schemars(range(max = TOP_LOGPROBS_MAX))]
    top_logprobs: Option<u32>,
}

/// OpenAI's `response_format`, plus a regular expression.
#[derive(Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schemars(inline)]
enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON following a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
    /// Text matching a regular expression (Rust syntax; `\d` matches any Unicode digit).
    Regex {
        /// The expression the whole output matches.
        pattern: String,
    },
}

/// The `json_schema` of a `response_format`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
struct JsonSchemaFormat {
    /// The schema's name.
    #[serde(rename = "name")]
    _name: Option<String>,
    /// What the schema describes (for the client; the model does not see it).
    #[serde(rename = "description")]
    _description: Option<String>,
    /// The JSON Schema; absent means any JSON value.
    schema: Option<Value>,
    /// Accepted; the schema is always enforced.
    #[serde(rename = "strict")]
    _strict: Option<bool>,
}

/// `tool_choice` as clients send it.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(inline)]
enum ToolChoiceWire {
    Mode(#[schemars(extend("enum" = ["auto", "none", "required"]))] String),
    Function {
        #[serde(rename = "type")]
        #[schemars(extend("enum" = ["function"]))]
        kind: String,
        function: NamedFunction,
    },
}

/// The function a `tool_choice` names.
#[derive(Deserialize, JsonSchema)]
#[schemars(inline)]
struct NamedFunction {
    name: String,
}

/// One stop sequence or several.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(inline)]
enum StopParam {
    One(#[schemars(length(min = 1, max = STOP_MAX_CHARS))] String),
    Many(
        #[schemars(
            length(max = MAX_STOP_SEQUENCES),
            inner(length(min = 1, max = STOP_MAX_CHARS))
        )]
        Vec<String>,
    ),
}

/// `value` as the decimal it is written as, for the schema: widened to `f64` as it is, 0.8 would
/// be published as 0.800000011920929.
fn decimal(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

/// Publishes that a job gives exactly one of `prompt` and `messages`.
fn prompt_or_messages(schema: &mut schemars::Schema) {
    schema.insert(
        "oneOf".into(),
        serde_json::json!([{"required": [param::PROMPT]}, {"required": [param::MESSAGES]}]),
    );
}

impl GenerationParams {
    /// Parses and validates a job's parameters (a JSON object). Errors name the field.
    pub fn parse(params_json: &str) -> Result<Self, LlmError> {
        let wire: Wire = params::parse(params_json).map_err(invalid)?;
        let params = Self {
            input: prompt_input(wire.prompt, wire.messages)?,
            max_tokens: wire.max_tokens.unwrap_or(MAX_TOKENS_DEFAULT),
            sampling: SamplingParams {
                temperature: wire.temperature.unwrap_or(TEMPERATURE_DEFAULT),
                top_k: wire.top_k.unwrap_or(TOP_K_DEFAULT),
                top_p: wire.top_p.unwrap_or(TOP_P_DEFAULT),
                min_p: wire.min_p.unwrap_or(MIN_P_DEFAULT),
                repeat_penalty: wire.repeat_penalty.unwrap_or(REPEAT_PENALTY_DEFAULT),
                repeat_last_n: wire.repeat_last_n.unwrap_or(REPEAT_LAST_N_DEFAULT),
                seed: wire.seed,
            },
            stop: match wire.stop {
                None => Vec::new(),
                Some(StopParam::One(stop)) => vec![stop],
                Some(StopParam::Many(stops)) => stops,
            },
            constraint: constraint(wire.response_format, wire.grammar)?,
            tools: tools(wire.tools, wire.tool_choice, wire.parallel_tool_calls)?,
            top_logprobs: logprobs(wire.logprobs, wire.top_logprobs)?,
        };
        params.check_ranges()?;
        Ok(params)
    }

    fn check_ranges(&self) -> Result<(), LlmError> {
        let s = &self.sampling;
        check(
            (1..=MAX_TOKENS_LIMIT).contains(&self.max_tokens),
            param::MAX_TOKENS,
            format!("must be between 1 and {MAX_TOKENS_LIMIT}"),
        )?;
        check(
            (0.0..=TEMPERATURE_MAX).contains(&s.temperature),
            param::TEMPERATURE,
            format!("must be between 0 and {TEMPERATURE_MAX}"),
        )?;
        check(
            s.top_p > 0.0 && s.top_p <= 1.0,
            param::TOP_P,
            "must be greater than 0 and at most 1",
        )?;
        check(
            (0.0..=1.0).contains(&s.min_p),
            param::MIN_P,
            "must be between 0 and 1",
        )?;
        check(
            (1.0..=REPEAT_PENALTY_MAX).contains(&s.repeat_penalty),
            param::REPEAT_PENALTY,
            format!("must be between 1 (off) and {REPEAT_PENALTY_MAX}"),
        )?;
        check(
            s.repeat_last_n <= REPEAT_LAST_N_MAX,
            param::REPEAT_LAST_N,
            format!("must be at most {REPEAT_LAST_N_MAX}"),
        )?;
        check(
            self.stop.len() <= MAX_STOP_SEQUENCES,
            param::STOP,
            format!("at most {MAX_STOP_SEQUENCES} stop sequences are allowed"),
        )?;
        check(
            self.stop
                .iter()
                .all(|stop| !stop.is_empty() && stop.chars().count() <= STOP_MAX_CHARS),
            param::STOP,
            format!("stop sequences must be non-empty and at most {STOP_MAX_CHARS} characters"),
        )
    }
}

/// The JSON Schema of the parameters as clients send them, published in the manifest.
pub fn schema() -> String {
    params::schema::<Wire>()
}

/// The kit's `invalid_params` error as the plugin's own. The field is the parameter at fault
/// (`messages` for `messages[0].role`); the message keeps the full path.
fn invalid(error: PluginError) -> LlmError {
    let path = error.field.into_option().map(String::from);
    let path = path.as_deref().unwrap_or("params");
    let field = path.split(['[', '.']).next().unwrap_or(path);
    LlmError::InvalidParam {
        field: field.to_string(),
        message: format!("{path}: {}", error.message),
    }
}

fn prompt_input(
    prompt: Option<String>,
    messages: Option<Vec<ChatMessage>>,
) -> Result<PromptInput, LlmError> {
    match (prompt, messages) {
        (Some(_), Some(_)) => Err(LlmError::invalid_param(
            param::PROMPT,
            "give either prompt or messages, not both",
        )),
        (None, None) => Err(LlmError::invalid_param(
            param::PROMPT,
            "give either prompt or messages",
        )),
        (Some(prompt), None) if prompt.is_empty() => {
            Err(LlmError::invalid_param(param::PROMPT, "must not be empty"))
        }
        (Some(prompt), None) => Ok(PromptInput::Text(prompt)),
        (None, Some(messages)) if messages.is_empty() => Err(LlmError::invalid_param(
            param::MESSAGES,
            "must hold at least one message",
        )),
        (None, Some(messages)) => match messages.iter().find(|m| !ROLES.contains(&m.role.as_str()))
        {
            Some(bad) => Err(LlmError::invalid_param(
                param::MESSAGES,
                format!(
                    "unknown role '{}' (expected one of {})",
                    bad.role,
                    ROLES.join(", ")
                ),
            )),
            None => match messages.iter().position(|m| {
                m.content.is_none() && !(m.role == "assistant" && m.tool_calls.is_some())
            }) {
                Some(at) => Err(LlmError::invalid_param(
                    param::MESSAGES,
                    format!(
                        "messages[{at}] needs content (only an assistant message with tool_calls may omit it)"
                    ),
                )),
                None => Ok(PromptInput::Chat(messages)),
            },
        },
    }
}

/// The grammar asked for by `response_format` or `grammar` (not both).
fn constraint(
    format: Option<ResponseFormat>,
    grammar: Option<String>,
) -> Result<Option<OutputConstraint>, LlmError> {
    let from_format = |spec| {
        Some(OutputConstraint {
            spec,
            field: param::RESPONSE_FORMAT,
        })
    };
    let from_format = match format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => from_format(GrammarSpec::JsonObject),
        Some(ResponseFormat::JsonSchema { json_schema }) => from_format(GrammarSpec::JsonSchema(
            json_schema.schema.unwrap_or_else(|| serde_json::json!({})),
        )),
        Some(ResponseFormat::Regex { pattern }) => from_format(GrammarSpec::Regex(pattern)),
    };
    match (from_format, grammar) {
        (Some(_), Some(_)) => Err(LlmError::invalid_param(
            param::GRAMMAR,
            "give either grammar or response_format, not both",
        )),
        (_, Some(grammar)) if grammar.contains("::=") => Err(LlmError::invalid_param(
            param::GRAMMAR,
            "GBNF grammars are not supported; write it in Lark syntax (`rule: ...`, see \
             llguidance's syntax guide)",
        )),
        (_, Some(grammar)) => Ok(Some(OutputConstraint {
            spec: GrammarSpec::Lark(grammar),
            field: param::GRAMMAR,
        })),
        (constraint, None) => Ok(constraint),
    }
}

/// The tools and how to call them; `tool_choice` must name an offered function.
fn tools(
    tools: Option<Vec<ToolDefinition>>,
    choice: Option<ToolChoiceWire>,
    parallel: Option<bool>,
) -> Result<Option<ToolsParams>, LlmError> {
    let tools = tools.unwrap_or_default();
    let choice = match choice {
        None => ToolChoice::Auto,
        Some(ToolChoiceWire::Mode(mode)) => match mode.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(LlmError::invalid_param(
                    param::TOOL_CHOICE,
                    format!("unknown mode '{other}' (expected auto, none, required or a function)"),
                ));
            }
        },
        Some(ToolChoiceWire::Function { kind, function }) => {
            check(
                kind == "function",
                param::TOOL_CHOICE,
                "type must be \"function\"",
            )?;
            ToolChoice::Function(function.name)
        }
    };
    if let Some(bad) = tools.iter().find(|tool| tool.kind != "function") {
        return Err(LlmError::invalid_param(
            param::TOOLS,
            format!("tool type '{}' is not supported (only function)", bad.kind),
        ));
    }
    if let ToolChoice::Function(name) = &choice
        && !tools.iter().any(|tool| tool.function.name == *name)
    {
        return Err(LlmError::invalid_param(
            param::TOOL_CHOICE,
            format!("no tool named '{name}' is in tools"),
        ));
    }
    if tools.is_empty() {
        return match choice {
            ToolChoice::Auto | ToolChoice::None => Ok(None),
            _ => Err(LlmError::invalid_param(
                param::TOOL_CHOICE,
                "a tool call is required but no tools are given",
            )),
        };
    }
    if choice == ToolChoice::None {
        return Ok(None);
    }
    Ok(Some(ToolsParams {
        tools,
        choice,
        parallel: parallel.unwrap_or(true),
    }))
}

/// How many alternatives each reported token lists, when log probabilities are asked for.
fn logprobs(logprobs: Option<bool>, top: Option<u32>) -> Result<Option<u32>, LlmError> {
    let top = top.unwrap_or(0);
    check(
        top <= TOP_LOGPROBS_MAX,
        param::TOP_LOGPROBS,
        format!("must be between 0 and {TOP_LOGPROBS_MAX}"),
    )?;
    match logprobs {
        Some(true) => Ok(Some(top)),
        _ if top > 0 => Err(LlmError::invalid_param(
            param::TOP_LOGPROBS,
            "needs logprobs: true",
        )),
        _ => Ok(None),
    }
}

fn check(ok: bool, field: &str, message: impl std::fmt::Display) -> Result<(), LlmError> {
    if ok {
        Ok(())
    } else {
        Err(LlmError::invalid_param(field, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbee_plugin_api::tasks::text_generation;
    use serde_json::{Value, json};

    fn error_field(params: Value) -> String {
        match GenerationParams::parse(&params.to_string()) {
            Err(LlmError::InvalidParam { field, message }) => {
                assert!(message.starts_with(&field), "{message}");
                field
            }
            other => panic!("expected an invalid_params error for {params}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_apply_to_a_bare_prompt() {
        let params = GenerationParams::parse(r#"{"prompt": "hi"}"#).unwrap();
        assert_eq!(params.input, PromptInput::Text("hi".into()));
        assert_eq!(params.max_tokens, MAX_TOKENS_DEFAULT);
        assert_eq!(params.sampling.temperature, TEMPERATURE_DEFAULT);
        assert_eq!(params.sampling.seed, None);
        assert!(params.stop.is_empty());
    }

    #[test]
    fn every_field_is_read() {
        let params = GenerationParams::parse(
            &json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9, "temperature": 0,
                    "top_k": 5, "top_p": 0.5, "min_p": 0.1, "repeat_penalty": 1.2, "repeat_last_n": 8,
                    "seed": 3, "stop": "END"})
            .to_string(),
        )
        .unwrap();
        let expected = SamplingParams {
            temperature: 0.0,
            top_k: 5,
            top_p: 0.5,
            min_p: 0.1,
            repeat_penalty: 1.2,
            repeat_last_n: 8,
            seed: Some(3),
        };
        assert_eq!(params.sampling, expected);
        assert_eq!(
            (params.max_tokens, params.stop),
            (9, vec!["END".to_string()])
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"prompt": "x", "temperature": 2.5}), "temperature"),
            (json!({"prompt": "x", "temperature": "hot"}), "temperature"),
            (json!({"prompt": "x", "max_tokens": 0}), "max_tokens"),
            (json!({"prompt": "x", "max_tokens": -1}), "max_tokens"),
            (json!({"prompt": "x", "top_p": 0}), "top_p"),
            (json!({"prompt": "x", "min_p": 1.5}), "min_p"),
            (json!({"prompt": "x", "top_k": -3}), "top_k"),
            (
                json!({"prompt": "x", "repeat_penalty": 0.5}),
                "repeat_penalty",
            ),
            (
                json!({"prompt": "x", "repeat_last_n": 100_000}),
                "repeat_last_n",
            ),
            (json!({"prompt": "x", "seed": -1}), "seed"),
            (
                json!({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}),
                "stop",
            ),
            (json!({"prompt": "x", "stop": [""]}), "stop"),
            (json!({"prompt": "x", "stop": 3}), "stop"),
            (json!({"prompt": ""}), "prompt"),
            (json!({}), "prompt"),
            (json!({"prompt": "x", "messages": []}), "prompt"),
            (json!({"messages": []}), "messages"),
            (
                json!({"messages": [{"role": "robot", "content": "x"}]}),
                "messages",
            ),
            (json!({"messages": [{"role": "user"}]}), "messages"),
            (
                json!({"prompt": "x", "frequency_penalty": 1}),
                "frequency_penalty",
            ),
            (
                json!({"prompt": "x", "response_format": {"type": "xml"}}),
                "response_format",
            ),
            (
                json!({"prompt": "x", "response_format": {"type": "json_object"}, "grammar": "start: \"a\""}),
                "grammar",
            ),
            (
                json!({"prompt": "x", "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (
                json!({"prompt": "x", "tool_choice": "required"}),
                "tool_choice",
            ),
            (
                json!({"prompt": "x", "tools": [{"type": "retrieval", "function": {"name": "f"}}]}),
                "tools",
            ),
            (json!({"prompt": "x", "top_logprobs": 1}), "top_logprobs"),
            (json!({"prompt": "x", "logprobs": 1}), "logprobs"),
            (
                json!({"messages": [{"role": "user", "content": null}]}),
                "messages",
            ),
        ];
        for (params, field) in cases {
            assert_eq!(error_field(params.clone()), field, "{params}");
        }
    }

    #[test]
    fn constraints_tools_and_logprobs_are_read() {
        let params = GenerationParams::parse(
            &json!({"messages": [{"role": "user", "content": "hi"},
                                 {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                                  "function": {"name": "f", "arguments": "{}"}}]},
                                 {"role": "tool", "tool_call_id": "call_1", "content": "42"}],
                    "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required",
                    "parallel_tool_calls": false, "logprobs": true, "top_logprobs": 5,
                    "response_format": {"type": "regex", "pattern": "a+"}})
            .to_string(),
        )
        .unwrap();
        let tools = params.tools.unwrap();
        assert_eq!(
            (tools.choice, tools.parallel),
            (ToolChoice::Required, false)
        );
        assert_eq!(params.top_logprobs, Some(5));
        assert_eq!(
            params.constraint.unwrap().spec,
            GrammarSpec::Regex("a+".into())
        );
        let none = GenerationParams::parse(
            &json!({"prompt": "x", "tools": [{"type": "function", "function": {"name": "f"}}],
                    "tool_choice": "none", "response_format": {"type": "text"}, "logprobs": false})
            .to_string(),
        )
        .unwrap();
        assert_eq!(
            (none.tools, none.constraint, none.top_logprobs),
            (None, None, None)
        );
    }

    #[test]
    fn non_objects_are_refused() {
        assert!(GenerationParams::parse("[1]").is_err());
        assert!(GenerationParams::parse("not json").is_err());
    }

    #[test]
    fn the_schema_lists_every_parameter_the_task_defines() {
        let schema: Value = serde_json::from_str(&schema()).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        for field in text_generation::SPEC.params {
            assert!(properties.contains_key(*field), "{field}");
        }
        assert_eq!(properties.len(), text_generation::SPEC.params.len());
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["oneOf"],
            json!([{"required": [param::PROMPT]}, {"required": [param::MESSAGES]}])
        );
        assert_eq!(properties[param::MAX_TOKENS]["maximum"], MAX_TOKENS_LIMIT);
        assert_eq!(properties[param::TEMPERATURE]["maximum"], 2.0);
        assert_eq!(properties[param::TEMPERATURE]["default"], 0.8);
        assert_eq!(properties[param::TOP_P]["exclusiveMinimum"], 0);
        assert_eq!(
            properties[param::REPEAT_LAST_N]["maximum"],
            REPEAT_LAST_N_MAX
        );
        assert_eq!(
            properties[param::MESSAGES]["items"]["properties"]["role"]["enum"],
            json!(ROLES)
        );
        let description = schema["description"].as_str().unwrap();
        assert!(
            description.starts_with("Parameters of a text-generation job"),
            "{description}"
        );
    }
}
