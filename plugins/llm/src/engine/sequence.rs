//! One job inside the engine: its tokens, its cache, how it samples and streams, and how it
//! ends.

use super::{Guidance, Request};
use crate::{
    error::LlmError,
    model::SequenceCache,
    sampling::Sampler,
    stream_text::TextStream,
    tokenizer::TextTokenizer,
    tools::{self, ParsedCall},
};
use rbee_plugin_api::{
    EventSinkExt, JobEnd, JobSink,
    tasks::text_generation::{TOKEN_LOGPROBS, TOOL_CALL, end, stop_reason},
};
use serde_json::json;
use std::{borrow::Cow, sync::mpsc::Sender, time::Instant};

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
    guidance: Guidance,
    texts: u64,
    calls: u64,
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
            guidance,
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
            guidance,
            texts: 0,
            calls: 0,
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
    /// them): once the whole prompt is in, samples a token (within the grammar, if any),
    /// records its log probability if asked, and streams its text and tool calls.
    pub fn advance(
        &mut self,
        logits: &mut [f32],
        tokenizer: &TextTokenizer,
    ) -> Result<Step, LlmError> {
        if !self.pending().is_empty() {
            return Ok(Step::Running);
        }
        self.prompt_done.get_or_insert_with(Instant::now);
        let raw_logits = self.guidance.logprobs.as_ref().map(|_| logits.to_vec());
        if let Some(constraint) = &mut self.guidance.constraint {
            constraint.mask(logits)?;
        }
        let token = self.sampler.sample(logits, &self.tokens);
        if let (Some(recorder), Some(raw)) = (&mut self.guidance.logprobs, raw_logits) {
            recorder.record(&raw, token);
        }
        if tokenizer.is_end_of_generation(token) {
            return Ok(Step::Ended(stop_reason::EOS));
        }
        if let Some(constraint) = &mut self.guidance.constraint {
            constraint.consume(token)?;
        }
        self.tokens.push(token);
        let mut step = self.stream.push(token)?;
        if let Some((trigger, text)) = self.guidance.special_trigger
            && trigger == token
        {
            step.text.insert_str(0, text);
        }
        let stop =
            self.send(&step.text, false) || (step.text.is_empty() && self.sink.is_cancelled());
        let grammar_done = self
            .guidance
            .constraint
            .as_ref()
            .is_some_and(|constraint| constraint.is_finished());
        Ok(if stop {
            Step::Cancelled
        } else if step.stopped {
            Step::Ended(stop_reason::STOP_SEQUENCE)
        } else if grammar_done {
            Step::Ended(stop_reason::EOS)
        } else if self.completion_tokens() == self.max_tokens {
            Step::Ended(stop_reason::MAX_TOKENS)
        } else {
            Step::Running
        })
    }

    /// Sends final text through the tool-call filter (if any), its log probabilities before
    /// it; `last` ends the filter. Returns whether the client asked to stop.
    fn send(&mut self, text: &str, last: bool) -> bool {
        let (text, calls): (Cow<'_, str>, _) = match self.guidance.tool_calls.as_mut() {
            None => (text.into(), Vec::new()),
            Some(filter) => {
                let mut out = filter.push(text);
                if last {
                    let rest = self.guidance.tool_calls.take().map(|f| f.finish());
                    if let Some(rest) = rest {
                        out.text.push_str(&rest.text);
                        out.calls.extend(rest.calls);
                    }
                }
                (out.text.into(), out.calls)
            }
        };
        let mut stop = false;
        if !text.is_empty() {
            if let Some(report) = self.guidance.logprobs.as_mut().and_then(|r| r.take()) {
                stop |= self
                    .sink
                    .custom(TOKEN_LOGPROBS.into(), report.as_str().into())
                    .is_stop();
            }
            self.texts += 1;
            stop |= self
                .sink
                .text(self.texts - 1, text.as_ref().into())
                .is_stop();
        }
        for call in calls {
            stop |= self.send_call(call);
        }
        stop
    }

    fn send_call(&mut self, call: ParsedCall) -> bool {
        if let Some(recorder) = self.guidance.logprobs.as_mut() {
            recorder.discard();
        }
        let data = json!({
            "index": self.calls,
            "id": tools::new_call_id(),
            "name": call.name,
            "arguments": call.arguments,
        })
        .to_string();
        self.calls += 1;
        self.sink
            .custom(TOOL_CALL.into(), data.as_str().into())
            .is_stop()
    }

    fn completion_tokens(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    /// Ends the sequence as `step` says (or with `failure`), tells its job, and returns its
    /// reservation, its fed tokens and their cache for the pool.
    pub fn end(mut self, outcome: Result<Step, LlmError>) -> (usize, Vec<u32>, SequenceCache) {
        let details = self.usage();
        let result = match outcome {
            Ok(Step::Ended(reason)) => {
                let rest = self.stream.finish();
                let cut = self.send(&rest, true);
                let reason = match reason {
                    stop_reason::EOS if self.calls > 0 => stop_reason::TOOL_CALLS,
                    reason => reason,
                };
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
