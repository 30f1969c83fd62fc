//! The CPU network against candle's llama on the test model: same logits within the error of
//! float summation order, whether the prompt arrives at once or in chunks.

use super::CpuLlama;
use crate::test_support::model_path;
use candle_core::{Device, Tensor, quantized::gguf_file};
use candle_transformers::models::quantized_llama;
use std::fs::File;

// Logits are compared after subtracting their mean (a shift of all logits changes no
// probability). Two valid 8-bit activation quantizations differ: candle rounds each block's scale
// and sum to f16, these kernels keep f32. Measured on the prompt below against f32 arithmetic on
// the dequantized weights, candle's centred logits are off by 0.54 at worst and 0.085 on
// average (largest logit 16.7), these kernels' by 0.52 and 0.088: equally close. So the two may
// differ by a few percent at single logits, must agree closely on average, and must make every
// greedy choice alike.

/// The largest difference allowed at any logit, as a fraction of the largest logit.
const WORST_LOGIT_DIFFERENCE: f32 = 0.05;
/// The largest mean difference allowed, as a fraction of the largest logit.
const MEAN_LOGIT_DIFFERENCE: f32 = 0.01;

/// A prompt's tokens in SmolLM2's vocabulary ("The capital of France is" and a little more).
const PROMPT: [u32; 12] = [
    504, 3575, 282, 4649, 314, 1072, 30, 378, 3575, 282, 5335, 314,
];

fn load() -> (CpuLlama, quantized_llama::ModelWeights) {
    let mut file = File::open(model_path()).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    assert!(super::supports(&content));
    let ours = CpuLlama::load(&content, &mut file).unwrap();
    let candle =
        quantized_llama::ModelWeights::from_gguf(content, &mut file, &Device::Cpu).unwrap();
    (ours, candle)
}

fn candle_logits(
    model: &mut quantized_llama::ModelWeights,
    tokens: &[u32],
    position: usize,
) -> Vec<f32> {
    let input = Tensor::new(tokens, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    model
        .forward(&input, position)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn centred(logits: &[f32]) -> Vec<f32> {
    let mean = logits.iter().sum::<f32>() / logits.len() as f32;
    logits.iter().map(|l| l - mean).collect()
}

fn argmax(logits: &[f32]) -> u32 {
    (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap() as u32
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn logits_match_candles_llama_through_prefill_and_decode() {
    let (mut ours, mut candle) = load();
    let mut expected = candle_logits(&mut candle, &PROMPT, 0);
    let mut got = ours.forward(&PROMPT, 0).unwrap();
    for (step, position) in (PROMPT.len()..PROMPT.len() + 6).enumerate() {
        let (ours_centred, candle_centred) = (centred(&got), centred(&expected));
        let scale = candle_centred.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = max_difference(&ours_centred, &candle_centred);
        let mean = ours_centred
            .iter()
            .zip(&candle_centred)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / got.len() as f32;
        assert!(
            worst < WORST_LOGIT_DIFFERENCE * scale && mean < MEAN_LOGIT_DIFFERENCE * scale,
            "step {step}: logits differ by {worst} at worst, {mean} on average (scale {scale})"
        );
        let next = argmax(&expected);
        assert_eq!(argmax(&got), next, "step {step}: a different greedy token");
        expected = candle_logits(&mut candle, &[next], position);
        got = ours.forward(&[next], position).unwrap();
    }
}

#[test]
fn a_prompt_fed_in_chunks_gives_the_same_logits_as_at_once() {
    let (mut model, _) = load();
    let at_once = model.forward(&PROMPT, 0).unwrap();
    model.reset();
    model.forward(&PROMPT[..5], 0).unwrap();
    let chunked = model.forward(&PROMPT[5..], 5).unwrap();
    assert!(max_difference(&at_once, &chunked) < 1e-3);
}

#[test]
fn bad_tokens_and_positions_are_errors_not_panics() {
    let (mut model, _) = load();
    let vocabulary = model.embedding.rows() as u32;
    assert_eq!(
        model.forward(&[vocabulary], 0).unwrap_err(),
        format!("token {vocabulary} is outside the vocabulary of {vocabulary}")
    );
    assert!(
        model
            .forward(&[1], 3)
            .unwrap_err()
            .contains("does not hold 3 positions")
    );
    assert!(model.forward(&[], 0).is_err());
}
