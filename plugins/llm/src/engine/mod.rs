//! The engine thread: continuous batching over every running job. Jobs arrive from the host's
//! threads (`LlmWorker::execute`), wait while the key/value pool has no room for them, and then
//! share forward passes: each step feeds one token of every decoding sequence and a budget of
//! prompt tokens of the prefilling ones, all in one pass over the weights. Jobs join and leave
//! between steps; sampling, stop sequences and cancellation stay per job.

mod pool;
mod sequence;

use crate::{
    constraint::Constraint, error::LlmError, logprobs::LogprobRecorder, model::Model,
    params::GenerationParams, tokenizer::TextTokenizer, tools::ToolCallFilter,
};
use pool::KvPool;
use rbee_plugin_api::{EventSinkExt, JobEnd, JobSink};
use sequence::{Outcome, Sequence, Step};
use serde_json::json;
use std::{
    collections::VecDeque,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, Sender},
    },
    thread::JoinHandle,
};

/// Prompt tokens fed per step at most, shared by the sequences prefilling, so that a long
/// prompt delays the decoding sequences by one such chunk per token, not by its whole length.
pub const PREFILL_CHUNK: usize = 128;

/// The custom event a job waiting for room in the key/value pool receives, with its place in
/// the line: `{"queue_position": n, "reason": ...}`.
pub const QUEUED_EVENT: &str = "queued";

/// How the engine runs.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// The most sequences decoded together.
    pub slots: usize,
    /// Key/value positions all sequences share (running ones and kept prefixes).
    pub kv_tokens: usize,
}

/// What steers and reports a job's sampling beyond its parameters.
#[derive(Default)]
pub struct Guidance {
    /// The grammar the output follows.
    pub constraint: Option<Constraint>,
    /// Finds tool calls in the output.
    pub tool_calls: Option<ToolCallFilter>,
    /// The special token that opens tool calls, and its text (which detokenizing drops).
    pub special_trigger: Option<(u32, &'static str)>,
    /// Records log probabilities.
    pub logprobs: Option<LogprobRecorder>,
}

/// A job for the engine: the prompt's tokens and how to continue it.
pub struct Request {
    /// The prompt, tokenized.
    pub prompt: Vec<u32>,
    /// The job's parameters.
    pub params: GenerationParams,
    /// The sampling seed.
    pub seed: u64,
    /// Where the job's events go.
    pub sink: JobSink,
    /// Grammar, tool calls and log probabilities.
    pub guidance: Guidance,
    reply: Sender<Outcome>,
}

/// The handle of the engine thread, shared by the host's job threads.
pub struct Engine {
    sender: Mutex<Option<Sender<Request>>>,
    thread: Option<JoinHandle<()>>,
    positions_in_use: Arc<AtomicU64>,
    config: EngineConfig,
}

impl Engine {
    /// Starts the engine thread, which owns `model` from now on. It runs as one of a pool of
    /// as many threads as rayon's global pool has, which the model's parallel work uses: the
    /// engine works on its own steps' products instead of sleeping until others finish them.
    pub fn start(model: Model, tokenizer: Arc<TextTokenizer>, config: EngineConfig) -> Self {
        let (sender, receiver) = mpsc::channel();
        let positions_in_use = Arc::new(AtomicU64::new(0));
        let in_use = positions_in_use.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .thread_name(|index| format!("rbee-llm-{index}"))
            .build()
            .expect("cannot start the engine's threads");
        let thread = std::thread::Builder::new()
            .name("rbee-llm-engine".into())
            .spawn(move || {
                pool.install(move || {
                    Batcher::new(model, &tokenizer, config, in_use).serve(&receiver)
                })
            })
            .expect("cannot start the engine thread");
        Self {
            sender: Mutex::new(Some(sender)),
            thread: Some(thread),
            positions_in_use,
            config,
        }
    }

    /// How the engine runs.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// Key/value positions held by running sequences.
    pub fn positions_in_use(&self) -> u64 {
        self.positions_in_use.load(Ordering::Relaxed)
    }

    /// Runs a job to its end: waits for room, joins the batch, streams to `sink`.
    pub fn run(
        &self,
        prompt: Vec<u32>,
        params: GenerationParams,
        seed: u64,
        sink: JobSink,
        guidance: Guidance,
    ) -> Outcome {
        let (reply, outcome) = mpsc::channel();
        let request = Request {
            prompt,
            params,
            seed,
            sink,
            guidance,
            reply,
        };
        let sent = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|sender| sender.send(request).is_ok());
        if !sent {
            return Err(LlmError::Inference("the engine has stopped".into()));
        }
        outcome
            .recv()
            .map_err(|_| LlmError::Inference("the engine stopped during the job".into()))?
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A job waiting for room, and the queue position it was last told.
struct Waiting {
    request: Request,
    told: Option<usize>,
}

/// The engine thread's state.
struct Batcher<'t> {
    model: Model,
    tokenizer: &'t TextTokenizer,
    pool: KvPool,
    slots: usize,
    waiting: VecDeque<Waiting>,
    running: Vec<Sequence<'t>>,
    positions_in_use: Arc<AtomicU64>,
}

impl<'t> Batcher<'t> {
    fn new(
        model: Model,
        tokenizer: &'t TextTokenizer,
        config: EngineConfig,
        positions_in_use: Arc<AtomicU64>,
    ) -> Self {
        let keep_prefixes = model.kv_bytes_per_token().is_some();
        Self {
            slots: config.slots.min(model.max_batch()).max(1),
            model,
            tokenizer,
            pool: KvPool::new(config.kv_tokens, keep_prefixes),
            waiting: VecDeque::new(),
            running: Vec::new(),
            positions_in_use,
        }
    }

    /// Steps until every job handle is gone and no job is left.
    fn serve(mut self, requests: &Receiver<Request>) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                match requests.recv() {
                    Ok(request) => self.enqueue(request),
                    Err(_) => return,
                }
            }
            requests.try_iter().for_each(|r| self.enqueue(r));
            self.admit();
            self.tell_or_drop_waiting();
            if self.running.is_empty() {
                continue;
            }
            if catch_unwind(AssertUnwindSafe(|| self.step())).is_err() {
                self.fail_running("the model panicked during a forward pass");
            }
            let in_use: usize = self.running.iter().map(Sequence::positions).sum();
            self.positions_in_use
                .store(in_use as u64, Ordering::Relaxed);
        }
    }

    fn enqueue(&mut self, request: Request) {
        self.waiting.push_back(Waiting {
            request,
            told: None,
        });
    }

    /// Positions a request reserves: all it may grow to.
    fn reservation(request: &Request) -> usize {
        request.prompt.len() + request.params.max_tokens as usize
    }

    /// Starts waiting jobs, first come first served, while slots and pool room last.
    fn admit(&mut self) {
        while self.running.len() < self.slots {
            let Some(front) = self.waiting.front() else {
                return;
            };
            let reservation = Self::reservation(&front.request);
            if !self.pool.reserve(reservation) {
                return;
            }
            let request = self.waiting.pop_front().expect("the front exists").request;
            let cache = match self.pool.lookup(&request.prompt) {
                Some((_, cache)) => cache,
                None => self.model.new_sequence(),
            };
            self.running
                .push(Sequence::start(request, reservation, cache, self.tokenizer));
        }
    }

    /// Tells each waiting job its place when it changed, and ends the cancelled ones.
    fn tell_or_drop_waiting(&mut self) {
        let mut position = 0;
        self.waiting.retain_mut(|waiting| {
            let sink = &waiting.request.sink;
            if sink.is_cancelled() {
                let _ = waiting.request.reply.send(Ok(JobEnd::cancelled()));
                return false;
            }
            if waiting.told != Some(position) {
                let data = json!({
                    "queue_position": position,
                    "reason": "waiting for room in the key/value cache",
                })
                .to_string();
                let _ = sink.custom(QUEUED_EVENT.into(), data.as_str().into());
                waiting.told = Some(position);
            }
            position += 1;
            true
        });
    }

    /// One forward pass over every running sequence, then sampling, streaming and ending.
    fn step(&mut self) {
        let mut index = 0;
        while index < self.running.len() {
            if self.running[index].is_cancelled() {
                self.finish(index, Ok(Step::Cancelled));
            } else {
                index += 1;
            }
        }
        let mut prefill_left = PREFILL_CHUNK;
        let mut feeds: Vec<(usize, usize)> = Vec::with_capacity(self.running.len());
        for (index, sequence) in self.running.iter().enumerate() {
            let pending = sequence.pending().len();
            let take = if sequence.is_prefilling() {
                pending.min(prefill_left)
            } else {
                pending
            };
            if take > 0 {
                if sequence.is_prefilling() {
                    prefill_left -= take;
                }
                feeds.push((index, take));
            }
        }
        if feeds.is_empty() {
            return;
        }
        let result = {
            let mut segments: Vec<(&[u32], &mut _)> = Vec::with_capacity(feeds.len());
            let mut feed = feeds.iter().peekable();
            for (index, sequence) in self.running.iter_mut().enumerate() {
                let Some(&(_, take)) = feed.next_if(|(i, _)| *i == index) else {
                    continue;
                };
                let (pending, cache) = sequence.feed(take);
                segments.push((pending, cache));
            }
            self.model.forward_batch(&mut segments)
        };
        let logits = match result {
            Ok(logits) => logits,
            Err(error) => {
                self.fail_running(&error.to_string());
                return;
            }
        };
        let mut steps: Vec<(usize, Result<Step, LlmError>)> = feeds
            .iter()
            .zip(logits)
            .map(|(&(index, _), mut logits)| {
                (
                    index,
                    self.running[index].advance(&mut logits, self.tokenizer),
                )
            })
            .collect();
        steps.retain(|(_, step)| !matches!(step, Ok(Step::Running)));
        for (index, step) in steps.into_iter().rev() {
            self.finish(index, step);
        }
    }

    /// Ends running sequence `index` and returns its room to the pool.
    fn finish(&mut self, index: usize, step: Result<Step, LlmError>) {
        let sequence = self.running.remove(index);
        let (reservation, tokens, cache) = sequence.end(step);
        self.pool.release(reservation, tokens, cache);
    }

    /// Ends every running sequence with an error (their caches are dropped: a failed pass may
    /// have left them half written).
    fn fail_running(&mut self, message: &str) {
        for sequence in std::mem::take(&mut self.running) {
            let (reservation, ..) = sequence.end(Err(LlmError::Inference(message.into())));
            self.pool
                .release(reservation, Vec::new(), self.model.new_sequence());
        }
    }
}
