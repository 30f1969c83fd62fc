//! The `text-generation` job parameters: defaults, ranges, validation and their JSON Schema.

use crate::error::LlmError;
use rbee_plugin_api::tasks::text_generation::param;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

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

/// One chat message: who said it and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text of the message.
    pub content: String,
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
}

impl GenerationParams {
    /// Parses and validates a job's parameters (a JSON object). Errors name the field.
    pub fn parse(params_json: &str) -> Result<Self, LlmError> {
        let value: Value = serde_json::from_str(params_json).map_err(|e| {
            LlmError::invalid_param("params", format!("the parameters are not valid JSON: {e}"))
        })?;
        let Value::Object(object) = value else {
            return Err(LlmError::invalid_param(
                "params",
                "the parameters must be a JSON object",
            ));
        };
        reject_unknown_fields(&object)?;
        let params = Self {
            input: prompt_input(&object)?,
            max_tokens: field(&object, param::MAX_TOKENS)?.unwrap_or(MAX_TOKENS_DEFAULT),
            sampling: SamplingParams {
                temperature: field(&object, param::TEMPERATURE)?.unwrap_or(TEMPERATURE_DEFAULT),
                top_k: field(&object, param::TOP_K)?.unwrap_or(TOP_K_DEFAULT),
                top_p: field(&object, param::TOP_P)?.unwrap_or(TOP_P_DEFAULT),
                min_p: field(&object, param::MIN_P)?.unwrap_or(MIN_P_DEFAULT),
                repeat_penalty: field(&object, param::REPEAT_PENALTY)?
                    .unwrap_or(REPEAT_PENALTY_DEFAULT),
                repeat_last_n: field(&object, param::REPEAT_LAST_N)?
                    .unwrap_or(REPEAT_LAST_N_DEFAULT),
                seed: field(&object, param::SEED)?,
            },
            stop: match field::<StopParam>(&object, param::STOP)? {
                None => Vec::new(),
                Some(StopParam::One(stop)) => vec![stop],
                Some(StopParam::Many(stops)) => stops,
            },
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

/// The JSON Schema of the parameters, as published in the manifest.
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "text-generation parameters",
        "type": "object",
        "additionalProperties": false,
        "oneOf": [{"required": [param::PROMPT]}, {"required": [param::MESSAGES]}],
        "properties": {
            (param::PROMPT): {"type": "string", "minLength": 1, "description": "Text to continue as it is."},
            (param::MESSAGES): {
                "type": "array",
                "minItems": 1,
                "description": "A chat, rendered with the model's chat template.",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["role", "content"],
                    "properties": {
                        "role": {"enum": ROLES},
                        "content": {"type": "string"}
                    }
                }
            },
            (param::MAX_TOKENS): {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_LIMIT, "default": MAX_TOKENS_DEFAULT},
            (param::TEMPERATURE): {"type": "number", "minimum": 0, "maximum": TEMPERATURE_MAX, "default": TEMPERATURE_DEFAULT, "description": "0 is greedy."},
            (param::TOP_K): {"type": "integer", "minimum": 0, "default": TOP_K_DEFAULT, "description": "0 keeps every token."},
            (param::TOP_P): {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": TOP_P_DEFAULT},
            (param::MIN_P): {"type": "number", "minimum": 0, "maximum": 1, "default": MIN_P_DEFAULT},
            (param::REPEAT_PENALTY): {"type": "number", "minimum": 1, "maximum": REPEAT_PENALTY_MAX, "default": REPEAT_PENALTY_DEFAULT},
            (param::REPEAT_LAST_N): {"type": "integer", "minimum": 0, "maximum": REPEAT_LAST_N_MAX, "default": REPEAT_LAST_N_DEFAULT},
            (param::SEED): {"type": "integer", "minimum": 0, "description": "Omit for a random seed (reported back)."},
            (param::STOP): {
                "oneOf": [
                    {"type": "string", "minLength": 1, "maxLength": STOP_MAX_CHARS},
                    {"type": "array", "maxItems": MAX_STOP_SEQUENCES, "items": {"type": "string", "minLength": 1, "maxLength": STOP_MAX_CHARS}}
                ]
            }
        }
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StopParam {
    One(String),
    Many(Vec<String>),
}

fn reject_unknown_fields(object: &Map<String, Value>) -> Result<(), LlmError> {
    let schema = schema();
    let known = schema["properties"]
        .as_object()
        .expect("the schema lists its properties");
    match object.keys().find(|key| !known.contains_key(*key)) {
        Some(key) => Err(LlmError::invalid_param(key, "unknown parameter")),
        None => Ok(()),
    }
}

fn prompt_input(object: &Map<String, Value>) -> Result<PromptInput, LlmError> {
    let prompt: Option<String> = field(object, param::PROMPT)?;
    let messages: Option<Vec<ChatMessage>> = field(object, param::MESSAGES)?;
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
            None => Ok(PromptInput::Chat(messages)),
        },
    }
}

/// Reads one optional field; `null` counts as absent. A type error names the field.
fn field<T: DeserializeOwned>(
    object: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, LlmError> {
    object
        .get(name)
        .filter(|value| !value.is_null())
        .map(|value| {
            T::deserialize(value)
                .map_err(|e| LlmError::invalid_param(name, format!("invalid value: {e}")))
        })
        .transpose()
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
        ];
        for (params, field) in cases {
            assert_eq!(error_field(params.clone()), field, "{params}");
        }
    }

    #[test]
    fn non_objects_are_refused() {
        assert!(GenerationParams::parse("[1]").is_err());
        assert!(GenerationParams::parse("not json").is_err());
    }

    #[test]
    fn the_schema_lists_every_parameter_the_task_defines() {
        let schema = schema();
        let properties = schema["properties"].as_object().unwrap();
        for field in text_generation::SPEC.params {
            assert!(properties.contains_key(*field), "{field}");
        }
        assert_eq!(properties.len(), text_generation::SPEC.params.len());
        assert_eq!(schema["additionalProperties"], false);
    }
}
