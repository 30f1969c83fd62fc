//! The loaded worker: checks jobs, renders and tokenizes their prompts on the host's job
//! threads, and hands them to the engine thread, which runs them batched.

use crate::{
    chat_template::ChatTemplate,
    constraint::{Constraint, GrammarSpec},
    engine::{Engine, EngineConfig, Guidance},
    error::LlmError,
    logprobs::LogprobRecorder,
    model::LoadedModel,
    params::{GenerationParams, PromptInput},
    token_tables::TokenTables,
    tokenizer::TextTokenizer,
    tools::{self, ToolCallFilter, ToolFormat},
};
use rbee_plugin_api::{
    Job, JobEnd, JobSink, PluginError, PluginWorker, WorkerStatus,
    tasks::text_generation::{self, end, param},
};
use serde_json::json;
use std::sync::{Arc, OnceLock};

/// The only task this worker serves.
pub const TASK: &str = text_generation::TASK;

pub use crate::engine::PREFILL_CHUNK;

/// A text-generation worker holding one model, run by its engine thread.
pub struct LlmWorker {
    engine: Engine,
    tokenizer: Arc<TextTokenizer>,
    chat_template: Option<ChatTemplate>,
    tables: OnceLock<TokenTables>,
    model_name: String,
    memory_bytes: u64,
    context_len: usize,
}

impl LlmWorker {
    /// Starts the engine on a loaded model; `model_name` is what [`PluginWorker::status`]
    /// reports.
    pub fn new(loaded: LoadedModel, model_name: String, config: EngineConfig) -> Self {
        let LoadedModel {
            model,
            tokenizer,
            chat_template,
            memory_bytes,
        } = loaded;
        let context_len = model.context_len();
        let tokenizer = Arc::new(tokenizer);
        Self {
            engine: Engine::start(model, tokenizer.clone(), config),
            tokenizer,
            chat_template,
            tables: OnceLock::new(),
            model_name,
            memory_bytes,
            context_len,
        }
    }

    /// The most tokens (prompt and completion) one job may hold.
    pub fn context_len(&self) -> usize {
        self.context_len
    }

    /// How the engine runs: its slots and key/value budget.
    pub fn engine_config(&self) -> EngineConfig {
        self.engine.config()
    }

    /// The prompt's tokens, checked against the context and the key/value budget.
    fn prompt(&self, params: &GenerationParams) -> Result<Vec<u32>, LlmError> {
        let prompt_text = match &params.input {
            PromptInput::Text(text) => text.clone(),
            PromptInput::Chat(messages) => self
                .chat_template
                .as_ref()
                .ok_or_else(|| {
                    LlmError::invalid_param(
                        param::MESSAGES,
                        "this model has no chat template; send a prompt instead",
                    )
                })?
                .render(messages, params.tools.as_ref().map(|t| t.tools.as_slice()))?,
        };
        let prompt = self.tokenizer.encode(&prompt_text)?;
        let max_tokens = params.max_tokens as usize;
        if prompt.is_empty() {
            return Err(LlmError::invalid_param(
                param::PROMPT,
                "the prompt encodes to no tokens",
            ));
        }
        if prompt.len() + max_tokens > self.context_len {
            return Err(LlmError::invalid_param(
                param::MAX_TOKENS,
                format!(
                    "the prompt ({} tokens) plus max_tokens ({max_tokens}) exceeds the model's context of {} tokens",
                    prompt.len(),
                    self.context_len
                ),
            ));
        }
        let budget = self.engine.config().kv_tokens;
        if prompt.len() + max_tokens > budget {
            return Err(LlmError::invalid_param(
                param::MAX_TOKENS,
                format!(
                    "the prompt ({} tokens) plus max_tokens ({max_tokens}) exceeds this worker's key/value cache of {budget} tokens (load option kv_cache_tokens)",
                    prompt.len()
                ),
            ));
        }
        Ok(prompt)
    }

    /// How the model writes tool calls.
    fn tool_format(&self) -> ToolFormat {
        self.chat_template
            .as_ref()
            .map_or(ToolFormat::Hermes, ChatTemplate::tool_format)
    }

    /// The grammar, tool-call parser and log-probability recorder a job asks for; a grammar
    /// that does not compile is an error naming its parameter.
    fn guidance(&self, params: &GenerationParams) -> Result<Guidance, LlmError> {
        let tools = params.tools.as_ref();
        if tools.is_some() && matches!(params.input, PromptInput::Text(_)) {
            return Err(LlmError::invalid_param(
                param::TOOLS,
                "tools need a chat (messages), not a prompt",
            ));
        }
        let format = self.tool_format();
        let special_trigger = format
            .trigger()
            .and_then(|text| Some((self.tokenizer.special_token(text)?, text)));
        let constraint = match self.grammar(params, format, special_trigger.map(|t| t.0))? {
            None => None,
            Some((spec, field)) => Some(Constraint::new(self.compile(&spec, field)?)),
        };
        Ok(Guidance {
            constraint,
            tool_calls: tools.map(|tools| {
                let names = tools.tools.iter().map(|t| t.function.name.clone());
                ToolCallFilter::new(format, names.collect())
            }),
            special_trigger,
            logprobs: params
                .top_logprobs
                .map(|top| LogprobRecorder::new(self.tables().texts.clone(), top)),
        })
    }

    /// The grammar of a job's reply and the parameter it comes from: its `response_format` or
    /// `grammar`, its forced tool calls, or (with `tool_choice` auto) a JSON answer or calls.
    fn grammar(
        &self,
        params: &GenerationParams,
        format: ToolFormat,
        special_trigger: Option<u32>,
    ) -> Result<Option<(GrammarSpec, &'static str)>, LlmError> {
        let constraint = params.constraint.as_ref();
        let Some(tools) = params.tools.as_ref() else {
            return Ok(constraint.map(|c| (c.spec.clone(), c.field)));
        };
        let answer = match constraint {
            None => None,
            Some(constraint) => {
                self.compile(&constraint.spec, constraint.field)?;
                match &constraint.spec {
                    GrammarSpec::JsonSchema(schema) => Some(schema.clone()),
                    GrammarSpec::JsonObject => Some(json!({"type": "object"})),
                    GrammarSpec::Regex(_) | GrammarSpec::Lark(_) => {
                        return Err(LlmError::invalid_param(
                            constraint.field,
                            "with tools, only a JSON response_format can constrain the reply \
                             (it is then that JSON or tool calls); set tool_choice to \"none\" \
                             or send one of the two",
                        ));
                    }
                }
            }
        };
        let calls = tools::call_grammar(tools, format, special_trigger, answer);
        Ok(calls.map(|calls| (GrammarSpec::Lark(calls), param::TOOLS)))
    }

    /// The vocabulary's tables, built on first use.
    fn tables(&self) -> &TokenTables {
        self.tables
            .get_or_init(|| TokenTables::new(&self.tokenizer))
    }

    /// Compiles `spec`; errors name `field`.
    fn compile(
        &self,
        spec: &GrammarSpec,
        field: &str,
    ) -> Result<crate::constraint::CompiledGrammar, LlmError> {
        let grammars = self
            .tables()
            .grammars
            .as_ref()
            .map_err(|reason| LlmError::invalid_param(field, reason))?;
        grammars.compile(spec, field)
    }

    fn run(&self, params: GenerationParams, sink: JobSink) -> Result<JobEnd, LlmError> {
        let guidance = self.guidance(&params)?;
        let prompt = self.prompt(&params)?;
        let seed = params.sampling.seed.unwrap_or_else(random_seed);
        let started = json!({"seed": seed, (end::PROMPT_TOKENS): prompt.len()}).to_string();
        if sink.started(started.as_str().into()).is_stop() {
            return Ok(JobEnd::cancelled());
        }
        self.engine.run(prompt, params, seed, sink, guidance)
    }
}

impl PluginWorker for LlmWorker {
    fn max_concurrent_jobs(&self) -> u32 {
        u32::try_from(self.engine.config().slots).unwrap_or(u32::MAX)
    }

    fn validate(&self, job: &Job) -> Result<(), PluginError> {
        self.guidance(&parse(job)?)?;
        Ok(())
    }

    fn execute(&self, job: Job, sink: JobSink) -> Result<JobEnd, PluginError> {
        let params = parse(&job)?;
        Ok(self.run(params, sink)?)
    }

    fn status(&self) -> WorkerStatus {
        let in_use = self.engine.positions_in_use() as f32;
        WorkerStatus {
            model: self.model_name.as_str().into(),
            memory_bytes: self.memory_bytes,
            cache_usage_ratio: in_use / self.engine.config().kv_tokens.max(1) as f32,
        }
    }
}

#[cfg(test)]
impl LlmWorker {
    /// The tokenizer, for the tests of the modules using it.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The grammar compiler, for the tests of the modules using it.
    pub fn grammars(&self) -> &crate::constraint::Grammars {
        self.tables()
            .grammars
            .as_ref()
            .expect("the test model has grammars")
    }
}

/// The parameters of a job of the one task served.
fn parse(job: &Job) -> Result<GenerationParams, PluginError> {
    if job.task.as_str() != TASK {
        return Err(PluginError::unsupported_task(&job.task, &[TASK]));
    }
    Ok(GenerationParams::parse(&job.params_json)?)
}

/// A random seed below 2^53, so that it survives a round trip through JSON numbers in any client.
fn random_seed() -> u64 {
    rand::random::<u64>() >> 11
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{details, run};
    use rbee_plugin_api::{
        tasks::{
            self,
            text_generation::{self, stop_reason},
        },
        testing::RecordingSink,
    };
    use serde_json::{Value, json};
    use std::time::{Duration, Instant};

    /// A greedy chat with a plain system prompt. (With SmolLM2's built-in system prompt the first
    /// answer token is a near tie: "The" leads "L" by 0.08 logits in f32, and quantized
    /// activations flip it.)
    fn ask(question: &str) -> Value {
        json!({"messages": [{"role": "system", "content": "You are a helpful assistant."},
                            {"role": "user", "content": question}],
               "temperature": 0, "max_tokens": 24})
    }

    fn generate(params: Value) -> (String, JobEnd) {
        let sink = RecordingSink::new();
        let end = run(params, &sink).unwrap();
        (sink.text(), end)
    }

    #[test]
    fn greedy_chat_knows_the_capital_of_france() {
        let (text, end) = generate(ask("What is the capital of France?"));
        assert!(text.contains("Paris"), "{text:?}");
        assert!(
            [stop_reason::EOS, stop_reason::MAX_TOKENS].contains(&end.stop_reason.as_str()),
            "{end:?}"
        );
    }

    #[test]
    fn started_and_end_report_the_seed_and_usage() {
        let sink = RecordingSink::new();
        let end = run(
            json!({"prompt": "Once upon a time", "max_tokens": 4}),
            &sink,
        )
        .unwrap();
        let started: Value = serde_json::from_str(&sink.started()[0]).unwrap();
        let details = details(&end);
        assert!(started["seed"].is_u64());
        assert_eq!(started["seed"], details["seed"]);
        assert_eq!(started[end::PROMPT_TOKENS], details[end::PROMPT_TOKENS]);
        assert_eq!(details[end::PROMPT_TOKENS], 4);
        for key in ["prompt_tokens_per_second", "decode_tokens_per_second"] {
            assert!(details[key].as_f64().unwrap() > 0.0, "{key}: {details}");
        }
        let indices: Vec<u64> = sink.texts().iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, (0..indices.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn the_same_seed_gives_the_same_text_and_other_seeds_differ() {
        let params = |seed: u64| {
            json!({"prompt": "My favourite animal is", "temperature": 1.0, "top_k": 0, "top_p": 1.0,
                   "min_p": 0.0, "seed": seed, "max_tokens": 24})
        };
        let (first, _) = generate(params(7));
        let (again, _) = generate(params(7));
        assert_eq!(first, again);
        let others: Vec<String> = (8..11).map(|seed| generate(params(seed)).0).collect();
        assert!(
            others.iter().all(|other| *other != first),
            "{first:?} vs {others:?}"
        );
    }

    #[test]
    fn a_stop_sequence_ends_generation_and_is_not_emitted() {
        let prompt = json!({"prompt": "The days of the week are Monday,", "temperature": 0, "max_tokens": 30});
        let (full, _) = generate(prompt.clone());
        let words: Vec<&str> = full.split_whitespace().collect();
        assert!(words.len() > 4, "{full:?}");
        let stop = words[3];
        let mut with_stop = prompt;
        with_stop["stop"] = json!(["NEVER-SEEN", stop]);
        let (text, end) = generate(with_stop);
        assert_eq!(end.stop_reason.as_str(), stop_reason::STOP_SEQUENCE);
        assert_eq!(text, full[..full.find(stop).unwrap()]);
        assert!(!text.contains(stop));
    }

    #[test]
    fn max_tokens_is_exact() {
        let (_, end) =
            generate(json!({"prompt": "1, 2, 3, 4,", "temperature": 0, "max_tokens": 7}));
        assert_eq!(end.stop_reason.as_str(), stop_reason::MAX_TOKENS);
        assert_eq!(details(&end)[end::COMPLETION_TOKENS], 7);
    }

    #[test]
    fn streamed_text_equals_the_decoded_completion() {
        let params = json!({"prompt": "Write Grüße, 你好 and 🎉 in a sentence:", "temperature": 0.0, "max_tokens": 40});
        let (text, end) = generate(params);
        assert_eq!(end.stop_reason.as_str(), stop_reason::MAX_TOKENS);
        let tokenizer = crate::test_support::worker().tokenizer();
        let ids = tokenizer.encode(&text).unwrap();
        assert_eq!(tokenizer.decode(&ids).unwrap(), text);
        assert!(!text.contains('\u{FFFD}'), "{text:?}");
    }

    #[test]
    fn the_kv_cache_is_reset_between_jobs() {
        let short = ask("Name a colour.");
        let (before, _) = generate(short.clone());
        generate(
            json!({"prompt": "A long unrelated text about ships and the sea. ".repeat(20), "max_tokens": 5}),
        );
        let (after, _) = generate(short);
        assert_eq!(before, after);
    }

    #[test]
    fn cancelling_in_decode_stops_within_one_token() {
        let sink = RecordingSink::new().stop_after_texts(3);
        let end = run(
            json!({"prompt": "Tell me a long story.", "max_tokens": 50, "seed": 1}),
            &sink,
        )
        .unwrap();
        assert_eq!(
            end,
            JobEnd {
                details_json: end.details_json.clone(),
                ..JobEnd::cancelled()
            }
        );
        assert_eq!(sink.texts().len(), 3);
        assert!(details(&end)[end::COMPLETION_TOKENS].as_u64().unwrap() < 50);
    }

    #[test]
    fn cancelling_in_prefill_stops_within_one_chunk() {
        let long_prompt = "The quick brown fox jumps over the lazy dog. ".repeat(60);
        let sink = RecordingSink::new().stop_at_poll(2);
        let started = Instant::now();
        let end = run(json!({"prompt": long_prompt, "max_tokens": 5}), &sink).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(end.stop_reason.as_str(), tasks::stop_reason::CANCELLED);
        let prompt_tokens = details(&end)[end::PROMPT_TOKENS].as_u64().unwrap() as usize;
        assert!(prompt_tokens > 4 * PREFILL_CHUNK, "{prompt_tokens}");
        // Polled before chunk 1 (go on) and before chunk 2 (cancelled): one chunk ran.
        assert_eq!(sink.polls(), 2);
        assert!(sink.texts().is_empty());
        assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    }

    #[test]
    fn a_chat_that_does_not_fit_the_context_names_max_tokens() {
        let error = run(
            json!({"prompt": "Hi", "max_tokens": 32_000}),
            &RecordingSink::new(),
        )
        .unwrap_err();
        assert_eq!(
            error.field.into_option().unwrap().as_str(),
            param::MAX_TOKENS
        );
    }

    #[test]
    fn validate_rejects_other_tasks_and_bad_params() {
        let worker = crate::test_support::worker();
        let validate =
            |task: &str, params_json: &str| worker.validate(&Job::new("v", task, params_json));
        assert_eq!(
            validate(tasks::image::GENERATION, "{}")
                .unwrap_err()
                .code
                .as_str(),
            rbee_plugin_api::error_code::UNSUPPORTED_TASK
        );
        let error = validate(TASK, r#"{"prompt": "x", "top_p": 0}"#).unwrap_err();
        assert_eq!(error.field.into_option().unwrap().as_str(), param::TOP_P);
        assert!(validate(TASK, r#"{"prompt": "x"}"#).is_ok());
    }

    fn chat(question: &str, extra: Value) -> Value {
        let mut params = ask(question);
        params["max_tokens"] = json!(80);
        params
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        params
    }

    #[test]
    fn a_json_schema_constrains_the_answer() {
        let schema = json!({"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 20},
            "country": {"enum": ["France", "Italy"]},
            "population_millions": {"type": "integer", "minimum": 0, "maximum": 100}},
            "required": ["city", "country", "population_millions"], "additionalProperties": false});
        let (text, end) = generate(chat(
            "What is the capital of France? Answer in JSON.",
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": schema}}}),
        ));
        assert_eq!(end.stop_reason.as_str(), stop_reason::EOS, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(
            ["France", "Italy"].contains(&answer["country"].as_str().unwrap()),
            "{answer}"
        );
        assert!(answer["population_millions"].is_u64(), "{answer}");
        assert_eq!(answer.as_object().unwrap().len(), 3, "{answer}");
    }

    #[test]
    fn a_regex_constrains_the_answer_and_max_tokens_still_cuts_it() {
        let (text, end) = generate(chat(
            "Give me a phone number.",
            json!({"response_format": {"type": "regex", "pattern": "[0-9]{3}-[0-9]{4}"}}),
        ));
        assert_eq!(end.stop_reason.as_str(), stop_reason::EOS);
        assert_eq!(text.len(), 8, "{text}");
        assert!(
            text.chars().enumerate().all(|(i, c)| if i == 3 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }),
            "{text}"
        );
        let (_, end) = generate(chat(
            "Tell me about Paris.",
            json!({"max_tokens": 3, "response_format": {"type": "json_schema", "json_schema": {"name": "long",
                   "schema": {"type": "object", "properties": {"story": {"type": "string", "minLength": 100}},
                              "required": ["story"]}}}}),
        ));
        assert_eq!(end.stop_reason.as_str(), stop_reason::MAX_TOKENS);
    }

    #[test]
    fn grammars_that_do_not_compile_are_refused_before_the_job_runs() {
        let worker = crate::test_support::worker();
        let cases = [
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}}),
                param::RESPONSE_FORMAT,
            ),
            (
                json!({"response_format": {"type": "regex", "pattern": "(ab"}}),
                param::RESPONSE_FORMAT,
            ),
            (json!({"grammar": "start: missing_rule"}), param::GRAMMAR),
            (json!({"grammar": "root ::= \"a\""}), param::GRAMMAR),
            (
                json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "integer", "minimum": 3, "maximum": 1}}}], "tool_choice": "required"}),
                param::TOOLS,
            ),
            (
                json!({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}),
                param::TOOL_CHOICE,
            ),
            (json!({"top_logprobs": 2}), param::TOP_LOGPROBS),
            (
                json!({"logprobs": true, "top_logprobs": 21}),
                param::TOP_LOGPROBS,
            ),
        ];
        for (extra, field) in cases {
            let job = Job::new("v", TASK, &chat("Hi", extra.clone()).to_string());
            let Err(error) = worker.validate(&job) else {
                panic!("accepted: {extra}");
            };
            assert_eq!(
                error.field.into_option().unwrap().as_str(),
                field,
                "{extra}"
            );
        }
    }

    fn weather_tools() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "description": "The current weather in a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                "unit": {"enum": ["celsius", "fahrenheit"]}},
                                "required": ["city", "unit"], "additionalProperties": false}}},
               {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}])
    }

    #[test]
    fn a_named_tool_choice_makes_a_call_whose_arguments_follow_the_schema() {
        let sink = RecordingSink::new();
        let end = run(
            chat(
                "What is the weather in Paris?",
                json!({"tools": weather_tools(),
                 "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
            ),
            &sink,
        )
        .unwrap();
        assert_eq!(end.stop_reason.as_str(), stop_reason::TOOL_CALLS);
        let calls = sink.custom(text_generation::TOOL_CALL);
        assert_eq!(calls.len(), 1, "{calls:?} {:?}", sink.text());
        let call: Value = serde_json::from_str(&calls[0]).unwrap();
        assert_eq!(
            (call["index"].clone(), call["name"].clone()),
            (json!(0), json!("get_weather"))
        );
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
        let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert!(
            arguments["city"].is_string() && arguments["unit"].is_string(),
            "{arguments}"
        );
        assert_eq!(sink.text(), "", "a call's text is not sent as text");
    }

    #[test]
    fn required_tool_calls_may_be_parallel_and_take_only_declared_arguments() {
        let sink = RecordingSink::new();
        let question = "Call get_weather twice: once for Paris and once for London.";
        let end = run(
            chat(
                question,
                json!({"tools": weather_tools(), "tool_choice": "required", "max_tokens": 120}),
            ),
            &sink,
        )
        .unwrap();
        assert_eq!(end.stop_reason.as_str(), stop_reason::TOOL_CALLS);
        let calls: Vec<Value> = sink
            .custom(text_generation::TOOL_CALL)
            .iter()
            .map(|c| serde_json::from_str(c).unwrap())
            .collect();
        assert_eq!(calls.len(), 2, "{calls:?}");
        let indices: Vec<&Value> = calls.iter().map(|c| &c["index"]).collect();
        assert_eq!(indices, [&json!(0), &json!(1)]);
        assert_ne!(calls[0]["id"], calls[1]["id"]);
        assert_eq!(sink.text(), "", "nothing but the calls: {:?}", sink.text());
        let sink = RecordingSink::new();
        run(
            chat(
                "What time is it?",
                json!({"tools": weather_tools(),
                 "tool_choice": {"type": "function", "function": {"name": "get_time"}}}),
            ),
            &sink,
        )
        .unwrap();
        let call: Value =
            serde_json::from_str(&sink.custom(text_generation::TOOL_CALL)[0]).unwrap();
        assert_eq!(call["arguments"], "{}", "get_time declares no arguments");
    }

    #[test]
    fn with_tools_and_a_json_response_format_the_reply_is_that_json_or_calls() {
        let format = json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {
            "type": "object", "properties": {"answer": {"type": "string", "maxLength": 40}},
            "required": ["answer"], "additionalProperties": false}}});
        for question in [
            "What is the capital of France?",
            "Call get_weather for Paris.",
        ] {
            let sink = RecordingSink::new();
            let end = run(
                chat(
                    question,
                    json!({"tools": weather_tools(), "response_format": format}),
                ),
                &sink,
            )
            .unwrap();
            let calls = sink.custom(text_generation::TOOL_CALL);
            if calls.is_empty() {
                assert_eq!(end.stop_reason.as_str(), stop_reason::EOS);
                let answer: Value = serde_json::from_str(&sink.text()).unwrap();
                assert!(answer["answer"].is_string(), "{answer}");
            } else {
                assert_eq!(end.stop_reason.as_str(), stop_reason::TOOL_CALLS);
                assert_eq!(sink.text(), "");
            }
        }
    }

    #[test]
    fn logprobs_come_before_each_text_and_cover_every_token() {
        let sink = RecordingSink::new();
        let end = run(
            json!({"prompt": "The capital of France is", "temperature": 0, "max_tokens": 6,
                   "logprobs": true, "top_logprobs": 3}),
            &sink,
        )
        .unwrap();
        let reports: Vec<Value> = sink
            .custom(text_generation::TOKEN_LOGPROBS)
            .iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect();
        let entries: Vec<&Value> = reports
            .iter()
            .flat_map(|r| r["content"].as_array().unwrap())
            .collect();
        assert_eq!(
            entries.len() as u64,
            details(&end)[end::COMPLETION_TOKENS].as_u64().unwrap()
        );
        let joined: String = entries
            .iter()
            .map(|e| e["token"].as_str().unwrap())
            .collect();
        assert_eq!(joined, sink.text());
        for entry in entries {
            let top = entry["top_logprobs"].as_array().unwrap();
            assert_eq!(top.len(), 3);
            assert_eq!(
                top[0]["token"], entry["token"],
                "greedy picks the most likely"
            );
            assert!(entry["logprob"].as_f64().unwrap() <= 0.0);
        }
        assert_eq!(reports.len(), sink.texts().len());
    }

    #[test]
    fn status_reports_the_model_and_its_size() {
        let status = crate::test_support::worker().status();
        assert!(status.model.contains(crate::test_support::TEST_MODEL_FILE));
        assert!(status.memory_bytes > 50_000_000);
    }
}
