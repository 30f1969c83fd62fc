//! The loaded worker: checks jobs, renders and tokenizes their prompts on the host's job
//! threads, and hands them to the engine thread, which runs them batched.

use crate::{
    chat_template::ChatTemplate,
    engine::{Engine, EngineConfig},
    error::LlmError,
    model::LoadedModel,
    params::{GenerationParams, PromptInput},
    tokenizer::TextTokenizer,
};
use rbee_plugin_api::{
    Job, JobEnd, JobSink, PluginError, PluginWorker, WorkerStatus,
    tasks::text_generation::{self, end, param},
};
use serde_json::json;
use std::sync::Arc;

/// The only task this worker serves.
pub const TASK: &str = text_generation::TASK;

pub use crate::engine::PREFILL_CHUNK;

/// A text-generation worker holding one model, run by its engine thread.
pub struct LlmWorker {
    engine: Engine,
    tokenizer: Arc<TextTokenizer>,
    chat_template: Option<ChatTemplate>,
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
                .render(messages)?,
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

    fn run(&self, params: GenerationParams, sink: JobSink) -> Result<JobEnd, LlmError> {
        let prompt = self.prompt(&params)?;
        let seed = params.sampling.seed.unwrap_or_else(random_seed);
        let started = json!({"seed": seed, (end::PROMPT_TOKENS): prompt.len()}).to_string();
        if sink.started(started.as_str().into()).is_stop() {
            return Ok(JobEnd::cancelled());
        }
        self.engine.run(prompt, params, seed, sink)
    }
}

impl PluginWorker for LlmWorker {
    fn max_concurrent_jobs(&self) -> u32 {
        u32::try_from(self.engine.config().slots).unwrap_or(u32::MAX)
    }

    fn validate(&self, job: &Job) -> Result<(), PluginError> {
        parse(job)?;
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
        tasks::{self, text_generation::stop_reason},
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
        let tokenizer = &crate::test_support::worker().tokenizer;
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

    #[test]
    fn status_reports_the_model_and_its_size() {
        let status = crate::test_support::worker().status();
        assert!(status.model.contains(crate::test_support::TEST_MODEL_FILE));
        assert!(status.memory_bytes > 50_000_000);
    }
}
