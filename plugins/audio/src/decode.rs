//! Decoding 30-second windows, one or several side by side: the token prompt, the sampling loop
//! with Whisper's timestamp rules, temperature fallback, and splitting the tokens into timed
//! segments.

use crate::{
    compression::compression_ratio, decoder::Windows, error::AudioError, model::LoadedModel,
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

/// Decodes the audio features of one or more windows side by side, retrying a window hotter
/// while its result is poor (unlikely or repetitive text, as Whisper judges it). Returns each
/// window's tokens, or `None` when `cancelled` answered true between two steps.
pub fn decode_with_fallback(
    model: &LoadedModel,
    features: &[Tensor],
    options: &Options<'_>,
    cancelled: &mut dyn FnMut() -> bool,
) -> Result<Option<Vec<Decoded>>, AudioError> {
    let mut windows = model.decoder.windows(features)?;
    let mut decoded: Vec<Option<Decoded>> = features.iter().map(|_| None).collect();
    let mut temperatures = vec![options.temperature; features.len()];
    let mut pending: Vec<usize> = (0..features.len()).collect();
    while !pending.is_empty() {
        let Some(attempts) = decode(
            model,
            windows.as_mut(),
            &pending,
            &temperatures,
            options,
            cancelled,
        )?
        else {
            return Ok(None);
        };
        let mut poor = Vec::new();
        for (index, mut attempt) in pending.into_iter().zip(attempts) {
            attempt.compression_ratio = compression_ratio(text(model, &attempt.tokens)?.trim());
            let unlikely = attempt.avg_logprob < LOGPROB_THRESHOLD
                || attempt.compression_ratio > COMPRESSION_RATIO_THRESHOLD;
            let silent = attempt.no_speech_prob > NO_SPEECH_THRESHOLD;
            let hottest = attempt.temperature + TEMPERATURE_STEP > 1.0 + 1e-9;
            if unlikely && !silent && !hottest {
                temperatures[index] += TEMPERATURE_STEP;
                poor.push(index);
            } else {
                decoded[index] = Some(attempt);
            }
        }
        pending = poor;
    }
    Ok(Some(decoded.into_iter().flatten().collect()))
}

/// The text of a window's tokens, special tokens left out.
fn text(model: &LoadedModel, tokens: &[u32]) -> Result<String, AudioError> {
    let text_tokens: Vec<u32> = tokens
        .iter()
        .copied()
        .filter(|&id| id < model.tokens.eot)
        .collect();
    model
        .tokenizer
        .decode(&text_tokens, true)
        .map_err(|e| AudioError::Tokenizer(e.to_string()))
}

/// One window's sampling: its tokens so far (prompt first) and running figures.
struct Sampling {
    /// The window's index among the windows.
    window: usize,
    tokens: Vec<u32>,
    sampler: LogitsProcessor,
    temperature: f64,
    logprob_sum: f64,
    no_speech_prob: f64,
    finished: bool,
}

/// Decodes windows `which` of `windows` afresh, side by side, each at its temperature.
fn decode(
    model: &LoadedModel,
    windows: &mut dyn Windows,
    which: &[usize],
    temperatures: &[f64],
    options: &Options<'_>,
    cancelled: &mut dyn FnMut() -> bool,
) -> Result<Option<Vec<Decoded>>, AudioError> {
    let t = &model.tokens;
    let max_len = model.config.max_target_positions;
    let (prompt, sot_index) = prompt(model, options);
    let prefix = prompt.len();
    let mut sampling: Vec<Sampling> = which
        .iter()
        .map(|&window| {
            windows.restart(window);
            let temperature = temperatures[window];
            Sampling {
                window,
                tokens: prompt.clone(),
                sampler: LogitsProcessor::new(
                    SEED,
                    (temperature > 0.0).then_some(temperature),
                    None,
                ),
                temperature,
                logprob_sum: 0.0,
                no_speech_prob: 0.0,
                finished: false,
            }
        })
        .collect();
    let width = model.config.d_model;
    for step in 0..max_len / 2 {
        if cancelled() {
            return Ok(None);
        }
        if sampling.iter().all(|s| s.finished) {
            break;
        }
        let mut feed: Vec<&[u32]> = vec![&[]; temperatures.len()];
        for s in sampling.iter().filter(|s| !s.finished) {
            feed[s.window] = &s.tokens[windows.fed(s.window)..];
        }
        let hidden = windows.forward(&feed)?;
        let mut active: Vec<&mut Sampling> = sampling.iter_mut().filter(|s| !s.finished).collect();
        if step == 0 {
            let at_sot: Vec<f32> = active
                .iter()
                .flat_map(|s| &hidden[s.window][sot_index * width..][..width])
                .copied()
                .collect();
            let logits = windows.logits(&at_sot)?;
            let vocabulary = logits.len() / active.len();
            for (s, logits) in active.iter_mut().zip(logits.chunks_exact(vocabulary)) {
                let no_speech = logits[t.no_speech as usize] - log_sum_exp(logits);
                s.no_speech_prob = (no_speech as f64).exp();
            }
        }
        let last: Vec<f32> = active
            .iter()
            .flat_map(|s| &hidden[s.window][hidden[s.window].len() - width..])
            .copied()
            .collect();
        let mut logits = windows.logits(&last)?;
        let vocabulary = logits.len() / active.len();
        for (s, logits) in active.into_iter().zip(logits.chunks_exact_mut(vocabulary)) {
            let suppress = &model.config.suppress_tokens;
            apply_rules(logits, &s.tokens[prefix..], t, suppress, options.timestamps);
            let token = s.sampler.sample(&Tensor::new(&*logits, &Device::Cpu)?)?;
            s.logprob_sum += (logits[token as usize] - log_sum_exp(logits)) as f64;
            if token == t.eot || s.tokens.len() >= max_len {
                s.finished = true;
            } else {
                s.tokens.push(token);
            }
        }
    }
    Ok(Some(
        sampling
            .into_iter()
            .map(|mut s| {
                let sampled = s.tokens.split_off(prefix);
                Decoded {
                    avg_logprob: s.logprob_sum / (sampled.len() + 1) as f64,
                    tokens: sampled,
                    no_speech_prob: s.no_speech_prob,
                    compression_ratio: 0.0,
                    temperature: s.temperature,
                }
            })
            .collect(),
    ))
}

/// The tokens every window's decode starts from, and the index of `<|startoftranscript|>`
/// among them.
fn prompt(model: &LoadedModel, options: &Options<'_>) -> (Vec<u32>, usize) {
    let t = &model.tokens;
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
    (tokens, sot_index)
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
    use crate::{model, test_support};

    /// Three windows decoded side by side, one of which (the same sentences three times)
    /// compresses too well at temperature 0 and is decoded again hotter on its own: each
    /// window's result equals its decode alone, to the last bit of its log-probability.
    #[test]
    fn windows_side_by_side_decode_as_each_alone_fallback_included() {
        let dir = test_support::provisioned(test_support::TEST_MODEL_DIR);
        let mut loaded = model::load(&dir, &Device::Cpu).unwrap();
        let names = ["counting", "hello_world", "quick_brown_fox"];
        let pause = vec![0.0; 8_000];
        let round: Vec<f32> = names
            .iter()
            .flat_map(|name| [test_support::clip_samples(name), pause.clone()].concat())
            .collect();
        let windows = [
            round.repeat(3),
            test_support::clip_samples("counting"),
            round,
        ];
        let features: Vec<Tensor> = windows
            .iter()
            .map(|samples| test_support::first_window_features(&mut loaded, samples))
            .collect();
        let options = Options {
            language: None,
            task: Task::Transcribe,
            timestamps: true,
            temperature: 0.0,
            prompt: &[],
        };
        let decode = |features: &[Tensor]| {
            decode_with_fallback(&loaded, features, &options, &mut || false)
                .unwrap()
                .unwrap()
        };
        let together = decode(&features);
        assert!(
            together[0].temperature > 0.0,
            "the looped window falls back"
        );
        assert!(together[1..].iter().all(|d| d.temperature == 0.0));
        for (index, (together, features)) in together.iter().zip(&features).enumerate() {
            let alone = &decode(std::slice::from_ref(features))[0];
            assert_eq!(together.tokens, alone.tokens, "window {index}");
            assert_eq!(together.avg_logprob, alone.avg_logprob, "window {index}");
            assert_eq!(
                together.no_speech_prob, alone.no_speech_prob,
                "window {index}"
            );
            assert_eq!(together.temperature, alone.temperature, "window {index}");
        }
    }

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
