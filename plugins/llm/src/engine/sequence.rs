//! One job inside the engine: its tokens, its cache, how it samples and streams, and how it
//! ends.

use super::Request;
use crate::{
    error::LlmError, model::SequenceCache, sampling::Sampler, stream_text::TextStream,
    tokenizer::TextTokenizer,
};
use rbee_plugin_api::{
    EventSinkExt, JobEnd, JobSink,
    tasks::text_generation::{end, stop_reason},
};
use serde_json::json;
use std::{sync::mpsc::Sender, time::Instant};

/// What a job is told when it ends: its end, or why it failed.
pub type Outcome = Result<JobEnd, LlmError>;

/// A running job.
pub struct Sequence<'t> {
    sink: JobSink,
    reply: Sender<Outcome>,
    /// The prompt, then each sampled token.
    tokens: Vec<u32>,
    prompt_len: usize,
    max_tokens: usize,
    /// Positions reserved in the pool.
    pub reservation: usize,
    cache: SequenceCache,
    cached_tokens: usize,
    sampler: Sampler,
    stream: TextStream<'t>,
    texts: u64,
    seed: u64,
    admitted: Instant,
    prompt_done: Option<Instant>,
}

/// How a step left a sequence.
pub enum Step {
    /// It goes on.
    Running,
    /// It ended with this stop reason.
    Ended(&'static str),
    /// Its client went away or cancelled.
    Cancelled,
}

impl<'t> Sequence<'t> {
    /// Starts `request` with `cache`, which already holds the prompt's first `cached_tokens`.
    pub fn start(
        request: Request,
        reservation: usize,
        cache: SequenceCache,
        tokenizer: &'t TextTokenizer,
    ) -> Self {
        let Request {
            prompt,
            params,
            seed,
            sink,
            reply,
        } = request;
        Self {
            sink,
            reply,
            prompt_len: prompt.len(),
            max_tokens: params.max_tokens as usize,
            cached_tokens: cache.len(),
            tokens: prompt,
            reservation,
            cache,
            sampler: Sampler::new(&params.sampling, seed),
            stream: TextStream::new(tokenizer.inner(), params.stop),
            texts: 0,
            seed,
            admitted: Instant::now(),
            prompt_done: None,
        }
    }

    /// The tokens the next pass must feed: the rest of the prompt, or the last sampled token.
    pub fn pending(&self) -> &[u32] {
        &self.tokens[self.cache.len()..]
    }

    /// Whether the prompt is still being fed.
    pub fn is_prefilling(&self) -> bool {
        self.cache.len() < self.prompt_len
    }

    /// Positions in its cache.
    pub fn positions(&self) -> usize {
        self.cache.len()
    }

    /// The next `take` pending tokens and the cache they go into, for the forward pass.
    pub fn feed(&mut self, take: usize) -> (&[u32], &mut SequenceCache) {
        let fed = self.cache.len();
        (&self.tokens[fed..fed + take], &mut self.cache)
    }

    /// Whether its client cancelled (or its deadline passed).
    pub fn is_cancelled(&self) -> bool {
        self.sink.is_cancelled()
    }

    /// Takes the logits of a pass that fed the sequence's pending tokens (or the first part of
    /// them): once the whole prompt is in, samples a token and streams its text.
    pub fn advance(
        &mut self,
        logits: &mut [f32],
        tokenizer: &TextTokenizer,
    ) -> Result<Step, LlmError> {
        if !self.pending().is_empty() {
            return Ok(Step::Running);
        }
        self.prompt_done.get_or_insert_with(Instant::now);
        let token = self.sampler.sample(logits, &self.tokens);
        if tokenizer.is_end_of_generation(token) {
            return Ok(Step::Ended(stop_reason::EOS));
        }
        self.tokens.push(token);
        let step = self.stream.push(token)?;
        let stop = if step.text.is_empty() {
            self.sink.is_cancelled()
        } else {
            self.texts += 1;
            self.sink
                .text(self.texts - 1, step.text.as_str().into())
                .is_stop()
        };
        Ok(if stop {
            Step::Cancelled
        } else if step.stopped {
            Step::Ended(stop_reason::STOP_SEQUENCE)
        } else if self.completion_tokens() == self.max_tokens {
            Step::Ended(stop_reason::MAX_TOKENS)
        } else {
            Step::Running
        })
    }

    fn completion_tokens(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    /// Ends the sequence as `step` says (or with `failure`), tells its job, and returns its
    /// reservation, its fed tokens and their cache for the pool.
    pub fn end(self, outcome: Result<Step, LlmError>) -> (usize, Vec<u32>, SequenceCache) {
        let details = self.usage();
        let result = match outcome {
            Ok(Step::Ended(reason)) => {
                let rest = self.stream.finish();
                let cut =
                    !rest.is_empty() && self.sink.text(self.texts, rest.as_str().into()).is_stop();
                let end = if cut {
                    JobEnd::cancelled()
                } else {
                    JobEnd::new(reason)
                };
                Ok(end.with_details(details))
            }
            Ok(Step::Cancelled | Step::Running) => Ok(JobEnd::cancelled().with_details(details)),
            Err(error) => Err(error),
        };
        // The job may have gone already (its thread panicked); nobody is left to tell.
        let _ = self.reply.send(result);
        let mut tokens = self.tokens;
        tokens.truncate(self.cache.len());
        (self.reservation, tokens, self.cache)
    }

    /// The `end` details: token counts, the cached part of the prompt, speeds and the seed.
    fn usage(&self) -> String {
        let now = Instant::now();
        let prompt_done = self.prompt_done.unwrap_or(now);
        let prefill_seconds = (prompt_done - self.admitted).as_secs_f64();
        let decode_seconds = (now - prompt_done).as_secs_f64();
        let rate = |tokens: usize, seconds: f64| {
            if seconds > 0.0 {
                tokens as f64 / seconds
            } else {
                0.0
            }
        };
        let computed = self.prompt_len - self.cached_tokens;
        let completion = self.completion_tokens();
        json!({
            (end::PROMPT_TOKENS): self.prompt_len,
            (end::COMPLETION_TOKENS): completion,
            (end::CACHED_PROMPT_TOKENS): self.cached_tokens,
            "total_tokens": self.prompt_len + completion,
            "seed": self.seed,
            "prompt_seconds": prefill_seconds,
            "decode_seconds": decode_seconds,
            "prompt_tokens_per_second": rate(computed, prefill_seconds),
            "decode_tokens_per_second": rate(completion, decode_seconds),
        })
        .to_string()
    }
}
