//! The loaded worker: validates jobs and runs them (chunked prefill, then the decode loop).

use crate::{
    error::LlmError,
    model::LoadedModel,
    params::{GenerationParams, PromptInput},
    sampling::Sampler,
    stream_text::TextStream,
};
use rbee_plugin_api::{
    EventSinkExt, Job, JobEnd, JobSink, PluginError, PluginWorker, WorkerStatus,
    tasks::text_generation::{self, end, param, stop_reason},
};
use serde_json::json;
use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

/// The only task this worker serves.
pub const TASK: &str = text_generation::TASK;

/// Prompt tokens fed to the model per forward pass; cancellation is checked between chunks.
pub const PREFILL_CHUNK: usize = 128;

/// A text-generation worker holding one model.
pub struct LlmWorker {
    loaded: Mutex<LoadedModel>,
    model_name: String,
    memory_bytes: u64,
    context_len: usize,
    tokens_in_cache: AtomicU64,
}

/// Counts and timings of one job.
struct Usage {
    seed: u64,
    prompt_tokens: usize,
    completion_tokens: usize,
    prefill_seconds: f64,
    decode_seconds: f64,
}

impl Usage {
    fn details(&self) -> String {
        let rate = |tokens: usize, seconds: f64| {
            if seconds > 0.0 {
                tokens as f64 / seconds
            } else {
                0.0
            }
        };
        json!({
            (end::PROMPT_TOKENS): self.prompt_tokens,
            (end::COMPLETION_TOKENS): self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "seed": self.seed,
            "prompt_seconds": self.prefill_seconds,
            "decode_seconds": self.decode_seconds,
            "prompt_tokens_per_second": rate(self.prompt_tokens, self.prefill_seconds),
            "decode_tokens_per_second": rate(self.completion_tokens, self.decode_seconds),
        })
        .to_string()
    }
}

impl LlmWorker {
    /// Wraps a loaded model; `model_name` is what [`PluginWorker::status`] reports.
    pub fn new(loaded: LoadedModel, model_name: String) -> Self {
        Self {
            memory_bytes: loaded.memory_bytes,
            context_len: loaded.model.context_len(),
            loaded: Mutex::new(loaded),
            model_name,
            tokens_in_cache: AtomicU64::new(0),
        }
    }

    /// The most tokens (prompt and completion) one job may hold.
    pub fn context_len(&self) -> usize {
        self.context_len
    }

    fn run(&self, params: &GenerationParams, sink: &JobSink) -> Result<JobEnd, LlmError> {
        let mut guard = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let LoadedModel {
            model,
            tokenizer,
            chat_template,
            ..
        } = &mut *guard;

        let prompt_text = match &params.input {
            PromptInput::Text(text) => text.clone(),
            PromptInput::Chat(messages) => chat_template
                .as_ref()
                .ok_or_else(|| {
                    LlmError::invalid_param(
                        param::MESSAGES,
                        "this model has no chat template; send a prompt instead",
                    )
                })?
                .render(messages)?,
        };
        let prompt = tokenizer.encode(&prompt_text)?;
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
        let seed = params.sampling.seed.unwrap_or_else(random_seed);
        let mut usage = Usage {
            seed,
            prompt_tokens: prompt.len(),
            completion_tokens: 0,
            prefill_seconds: 0.0,
            decode_seconds: 0.0,
        };
        let started = json!({"seed": seed, (end::PROMPT_TOKENS): prompt.len()}).to_string();
        if sink.started(started.as_str().into()).is_stop() {
            return Ok(cancelled(&usage));
        }

        model.reset()?;
        let prefill_start = Instant::now();
        let mut logits = Vec::new();
        for (i, chunk) in prompt.chunks(PREFILL_CHUNK).enumerate() {
            if sink.is_cancelled() {
                return Ok(cancelled(&usage));
            }
            logits = model.forward(chunk, i * PREFILL_CHUNK)?;
            self.set_cache_tokens(i * PREFILL_CHUNK + chunk.len());
        }
        usage.prefill_seconds = prefill_start.elapsed().as_secs_f64();

        let decode_start = Instant::now();
        let mut sampler = Sampler::new(&params.sampling, seed);
        let mut history = prompt;
        let mut stream = TextStream::new(tokenizer.inner(), params.stop.clone());
        let mut segment = 0;
        let reason = loop {
            let token = sampler.sample(&mut logits, &history);
            if tokenizer.is_end_of_generation(token) {
                break stop_reason::EOS;
            }
            history.push(token);
            usage.completion_tokens += 1;
            let step = stream.push(token)?;
            let flow = if step.text.is_empty() {
                sink.is_cancelled()
            } else {
                segment += 1;
                sink.text(segment - 1, step.text.as_str().into()).is_stop()
            };
            if flow {
                usage.decode_seconds = decode_start.elapsed().as_secs_f64();
                return Ok(cancelled(&usage));
            }
            if step.stopped {
                break stop_reason::STOP_SEQUENCE;
            }
            if usage.completion_tokens == max_tokens {
                break stop_reason::MAX_TOKENS;
            }
            logits = model.forward(&[token], history.len() - 1)?;
            self.set_cache_tokens(history.len());
        };
        usage.decode_seconds = decode_start.elapsed().as_secs_f64();
        let rest = stream.finish();
        if !rest.is_empty() && sink.text(segment, rest.as_str().into()).is_stop() {
            return Ok(cancelled(&usage));
        }
        Ok(JobEnd::new(reason).with_details(usage.details()))
    }

    fn set_cache_tokens(&self, tokens: usize) {
        self.tokens_in_cache.store(tokens as u64, Ordering::Relaxed);
    }
}

impl PluginWorker for LlmWorker {
    fn validate(&self, job: &Job) -> Result<(), PluginError> {
        parse(job)?;
        Ok(())
    }

    fn execute(&self, job: Job, sink: JobSink) -> Result<JobEnd, PluginError> {
        let params = parse(&job)?;
        let end = self.run(&params, &sink);
        self.set_cache_tokens(0);
        Ok(end?)
    }

    fn status(&self) -> WorkerStatus {
        let in_cache = self.tokens_in_cache.load(Ordering::Relaxed) as f32;
        WorkerStatus {
            model: self.model_name.as_str().into(),
            memory_bytes: self.memory_bytes,
            cache_usage_ratio: in_cache / self.context_len.max(1) as f32,
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

fn cancelled(usage: &Usage) -> JobEnd {
    JobEnd::cancelled().with_details(usage.details())
}

/// A random seed below 2^53, so that it survives a round trip through JSON numbers in any client.
fn random_seed() -> u64 {
    rand::random::<u64>() >> 11
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{details, run};
    use rbee_plugin_api::{tasks, testing::RecordingSink};
    use serde_json::{Value, json};
    use std::time::Duration;

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
        let worker = crate::test_support::worker();
        let loaded = worker.loaded.lock().unwrap();
        let ids = loaded.tokenizer.encode(&text).unwrap();
        assert_eq!(loaded.tokenizer.decode(&ids).unwrap(), text);
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
