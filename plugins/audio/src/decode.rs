//! Decoding one 30-second window: the token prompt, the sampling loop with Whisper's timestamp
//! rules, temperature fallback, and splitting the tokens into timed segments.

use crate::{
    compression::compression_ratio, decoder::Window, error::AudioError, model::LoadedModel,
    params::Task, vector_math::log_sum_exp,
};
use candle_core::{Device, Tensor};
use candle_transformers::generation::LogitsProcessor;

/// Seconds per timestamp token step.
pub const TIMESTAMP_STEP: f64 = 0.02;
/// A window whose average log-probability is below this is decoded again, hotter.
pub const LOGPROB_THRESHOLD: f64 = -1.0;
/// A window whose text compresses better than this (it repeats itself) is decoded again, hotter.
const COMPRESSION_RATIO_THRESHOLD: f64 = 2.4;
/// A window more likely silent than this (and decoded badly) yields no text.
pub const NO_SPEECH_THRESHOLD: f64 = 0.6;
/// The latest timestamp the first token may take, in seconds.
const MAX_INITIAL_TIMESTAMP: f64 = 1.0;
/// How much hotter each fallback decode is.
const TEMPERATURE_STEP: f64 = 0.2;
/// The sampler's seed: transcripts at a temperature above 0 are reproducible.
const SEED: u64 = 299_792_458;

/// How to decode: fixed for a whole job.
pub struct Options<'a> {
    /// The language token, if the model takes one.
    pub language: Option<u32>,
    /// Transcribe or translate.
    pub task: Task,
    /// Whether the model emits timestamps.
    pub timestamps: bool,
    /// The first temperature tried.
    pub temperature: f64,
    /// Prompt tokens (text), placed after `<|startofprev|>`.
    pub prompt: &'a [u32],
}

/// The tokens of one window and how sure the model was of them.
pub struct Decoded {
    /// Sampled tokens, without the end of text.
    pub tokens: Vec<u32>,
    /// Mean log-probability of the sampled tokens.
    pub avg_logprob: f64,
    /// The probability of the no-speech token at the first decoding step.
    pub no_speech_prob: f64,
    /// The compression ratio of the window's text (see [`compression_ratio`]).
    pub compression_ratio: f64,
    /// The temperature these tokens were sampled at.
    pub temperature: f64,
}

/// A piece of transcript, times in seconds from the start of the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Start time.
    pub start: f64,
    /// End time.
    pub end: f64,
    /// Text tokens.
    pub tokens: Vec<u32>,
}

/// Decodes the window's audio features, retrying hotter while the result is poor (unlikely or
/// repetitive text, as Whisper judges it). Returns `None` when `cancelled` answered true
/// between two tokens.
pub fn decode_with_fallback(
    model: &LoadedModel,
    features: &Tensor,
    options: &Options<'_>,
    cancelled: &mut dyn FnMut() -> bool,
) -> Result<Option<Decoded>, AudioError> {
    let mut window = model.decoder.window(features)?;
    let mut temperature = options.temperature;
    loop {
        let Some(mut decoded) = decode(model, window.as_mut(), options, temperature, cancelled)?
        else {
            return Ok(None);
        };
        let text_tokens: Vec<u32> = decoded
            .tokens
            .iter()
            .copied()
            .filter(|&id| id < model.tokens.eot)
            .collect();
        let text = model
            .tokenizer
            .decode(&text_tokens, true)
            .map_err(|e| AudioError::Tokenizer(e.to_string()))?;
        decoded.compression_ratio = compression_ratio(text.trim());
        let poor = decoded.avg_logprob < LOGPROB_THRESHOLD
            || decoded.compression_ratio > COMPRESSION_RATIO_THRESHOLD;
        let silent = decoded.no_speech_prob > NO_SPEECH_THRESHOLD;
        if !poor || silent || temperature + TEMPERATURE_STEP > 1.0 + 1e-9 {
            return Ok(Some(decoded));
        }
        temperature += TEMPERATURE_STEP;
    }
}

fn decode(
    model: &LoadedModel,
    window: &mut dyn Window,
    options: &Options<'_>,
    temperature: f64,
    cancelled: &mut dyn FnMut() -> bool,
) -> Result<Option<Decoded>, AudioError> {
    let t = model.tokens.clone();
    let max_len = model.config.max_target_positions;
    let mut tokens = Vec::new();
    if !options.prompt.is_empty() {
        tokens.push(t.start_of_prev);
        tokens.extend_from_slice(options.prompt);
    }
    let sot_index = tokens.len();
    tokens.push(t.sot);
    if model.multilingual {
        tokens.extend(options.language);
        tokens.push(match options.task {
            Task::Transcribe => t.transcribe,
            Task::Translate => t.translate,
        });
    }
    if !options.timestamps {
        tokens.push(t.no_timestamps);
    }
    let prefix = tokens.len();
    let sample_len = max_len / 2;
    let mut sampler = LogitsProcessor::new(SEED, (temperature > 0.0).then_some(temperature), None);
    let (mut logprob_sum, mut no_speech_prob) = (0.0, 0.0);
    let width = model.config.d_model;
    window.restart();
    for step in 0..sample_len {
        if cancelled() {
            return Ok(None);
        }
        let hidden = window.forward(&tokens[window.fed()..])?;
        if step == 0 {
            let at_sot = window.logits(&hidden[sot_index * width..][..width])?;
            let no_speech = at_sot[t.no_speech as usize] - log_sum_exp(&at_sot);
            no_speech_prob = (no_speech as f64).exp();
        }
        let last = &hidden[hidden.len() - width..];
        let mut logits = window.logits(last)?;
        let suppress = &model.config.suppress_tokens;
        apply_rules(
            &mut logits,
            &tokens[prefix..],
            &t,
            suppress,
            options.timestamps,
        );
        let token = sampler.sample(&Tensor::new(logits.as_slice(), &Device::Cpu)?)?;
        logprob_sum += (logits[token as usize] - log_sum_exp(&logits)) as f64;
        if token == t.eot || tokens.len() >= max_len {
            break;
        }
        tokens.push(token);
    }
    let sampled = tokens.split_off(prefix);
    Ok(Some(Decoded {
        avg_logprob: logprob_sum / (sampled.len() + 1) as f64,
        tokens: sampled,
        no_speech_prob,
        compression_ratio: 0.0,
        temperature,
    }))
}

/// Masks the logits of tokens that may not come next: suppressed tokens, special tokens, and
/// Whisper's timestamp rules (pairs, never going back, a timestamp first, a timestamp when
/// the timestamps together are likelier than any text token).
fn apply_rules(
    logits: &mut [f32],
    sampled: &[u32],
    t: &crate::model::SpecialTokens,
    suppress: &[u32],
    timestamps: bool,
) {
    for &id in suppress {
        ban(id as usize..id as usize + 1, logits);
    }
    if sampled.is_empty() {
        for &id in &t.begin_suppress {
            ban(id as usize..id as usize + 1, logits);
        }
    }
    let (eot, ts) = (t.eot as usize, t.timestamp_begin as usize);
    ban(eot + 1..ts, logits);
    if !timestamps {
        ban(ts..logits.len(), logits);
        return;
    }
    let is_ts = |id: &u32| *id >= t.timestamp_begin;
    let last_ts = sampled.last().is_some_and(is_ts);
    let penultimate_ts = sampled.len() < 2 || is_ts(&sampled[sampled.len() - 2]);
    if last_ts {
        if penultimate_ts {
            ban(ts..logits.len(), logits);
        } else {
            ban(0..eot, logits);
        }
    }
    if let Some(&latest) = sampled.iter().rev().find(|id| is_ts(id)) {
        let floor = if last_ts && !penultimate_ts {
            latest
        } else {
            latest + 1
        };
        ban(ts..(floor as usize).max(ts), logits);
    }
    if sampled.is_empty() {
        ban(0..ts, logits);
        let last_allowed = ts + (MAX_INITIAL_TIMESTAMP / TIMESTAMP_STEP) as usize;
        ban(last_allowed + 1..logits.len(), logits);
    }
    let log_z = log_sum_exp(logits);
    let ts_mass = log_sum_exp(&logits[ts.min(logits.len())..]) - log_z;
    let best_text = logits[..ts.min(logits.len())]
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
        - log_z;
    if ts_mass > best_text {
        ban(0..ts, logits);
    }
}

/// Sets the logits of `range` (clipped to the vocabulary) to minus infinity.
fn ban(range: std::ops::Range<usize>, logits: &mut [f32]) {
    let end = range.end.min(logits.len());
    logits[range.start.min(end)..end].fill(f32::NEG_INFINITY);
}

/// Splits a window's tokens into timed pieces. Returns the pieces and how many seconds of the
/// window they consumed, as OpenAI Whisper seeks: `window_seconds` when the window ended on a
/// single timestamp (no speech after it) or had no timestamp pair; else up to the last
/// timestamp pair, so that speech after it (an unfinished tail, or a segment opened but not
/// written) is decoded again in the next window.
pub fn split(
    tokens: &[u32],
    timestamp_begin: u32,
    timestamps: bool,
    window_seconds: f64,
) -> (Vec<Piece>, f64) {
    let text: Vec<u32> = tokens
        .iter()
        .copied()
        .filter(|&id| id < timestamp_begin)
        .collect();
    if !timestamps {
        let pieces = (!text.is_empty()).then_some(Piece {
            start: 0.0,
            end: window_seconds,
            tokens: text,
        });
        return (pieces.into_iter().collect(), window_seconds);
    }
    let time = |id: u32| (id - timestamp_begin) as f64 * TIMESTAMP_STEP;
    let is_ts = |id: &u32| *id >= timestamp_begin;
    let mut pieces = Vec::new();
    let (mut start, mut last_time, mut current) = (None::<f64>, 0.0, Vec::new());
    for &id in tokens {
        if id < timestamp_begin {
            start.get_or_insert(last_time);
            current.push(id);
            continue;
        }
        last_time = time(id);
        match start {
            Some(s) if !current.is_empty() => {
                pieces.push(Piece {
                    start: s,
                    end: last_time,
                    tokens: std::mem::take(&mut current),
                });
                start = None;
            }
            _ => start = Some(last_time),
        }
    }
    if current.is_empty() {
        let ends_with_pair = tokens.len() >= 2 && tokens[tokens.len() - 2..].iter().all(is_ts);
        let consumed = match ends_with_pair && last_time > 0.0 {
            true => last_time,
            false => window_seconds,
        };
        return (pieces, consumed);
    }
    match pieces.last() {
        Some(last) if last.end > 0.0 => {
            let consumed = last.end;
            (pieces, consumed)
        }
        _ => {
            let s = start.unwrap_or(0.0);
            pieces.push(Piece {
                start: s,
                end: window_seconds.max(s),
                tokens: current,
            });
            (pieces, window_seconds)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: u32 = 1000;

    fn piece(start: f64, end: f64, tokens: &[u32]) -> Piece {
        Piece {
            start,
            end,
            tokens: tokens.to_vec(),
        }
    }

    #[test]
    fn timestamp_pairs_make_pieces() {
        let tokens = [TS, 1, 2, TS + 50, TS + 50, 3, TS + 120];
        let (pieces, consumed) = split(&tokens, TS, true, 30.0);
        assert_eq!(pieces, [piece(0.0, 1.0, &[1, 2]), piece(1.0, 2.4, &[3])]);
        assert_eq!(consumed, 30.0);
    }

    #[test]
    fn an_unfinished_tail_is_left_for_the_next_window() {
        let tokens = [TS, 1, TS + 100, TS + 100, 2, 3];
        let (pieces, consumed) = split(&tokens, TS, true, 30.0);
        assert_eq!(pieces, [piece(0.0, 2.0, &[1])]);
        assert_eq!(consumed, 2.0);
        let (alone, consumed) = split(&[TS + 5, 7, 8], TS, true, 12.0);
        assert_eq!(alone, [piece(0.1, 12.0, &[7, 8])]);
        assert_eq!(consumed, 12.0);
    }

    #[test]
    fn a_window_ending_on_a_timestamp_pair_is_decoded_again_from_it() {
        let tokens = [TS, 1, TS + 1300, TS + 1300];
        let (pieces, consumed) = split(&tokens, TS, true, 30.0);
        assert_eq!(pieces, [piece(0.0, 26.0, &[1])]);
        assert_eq!(consumed, 26.0);
    }

    #[test]
    fn without_timestamps_the_window_is_one_piece() {
        let (pieces, consumed) = split(&[5, 6], TS, false, 7.5);
        assert_eq!(pieces, [piece(0.0, 7.5, &[5, 6])]);
        assert_eq!(consumed, 7.5);
        assert!(split(&[], TS, false, 7.5).0.is_empty());
    }
}
