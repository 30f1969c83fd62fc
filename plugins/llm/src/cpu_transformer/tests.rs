//! The CPU network against candle's llama on the test model and its Q4_0 and Q8_0 copies: close
//! logits, the same greedy tokens, whether the prompt arrives at once or in chunks.

use super::{CpuTransformer, KvCache, Segment};
use crate::test_support::{model_in_format, model_path};
use candle_core::{
    Device, Tensor,
    quantized::{GgmlDType, gguf_file},
};
use candle_transformers::models::quantized_llama;
use std::{fs::File, path::Path};

// Logits are compared after subtracting their mean (a shift of all logits changes no
// probability). Both implementations quantize activations to 8 bits per block as ggml does, but
// sum in different orders and pair blocks differently, so single logits differ. Measured on this
// prompt against f32 arithmetic on the dequantized weights (largest logit about 16), each is off
// by 0.5 to 1.1 at its worst logit and by about 0.09 on average, in every format. So the two may
// differ by several percent at single logits, must agree closely on average, and must make
// every greedy choice alike.

/// The largest difference allowed at any logit, as a fraction of the largest logit.
const WORST_LOGIT_DIFFERENCE: f32 = 0.08;
/// The largest mean difference allowed, as a fraction of the largest logit.
const MEAN_LOGIT_DIFFERENCE: f32 = 0.01;

/// The formats the kernels run, each tested on a copy of the test model. The K-quant copies
/// are mixes as llama-quantize makes them (see `requantize.rs`): on this model's 576-wide rows
/// mostly Q5_0, Q5_1 and Q8_0, with Q4_K, Q5_K and Q6_K in the 1536-wide `ffn_down`.
const FORMATS: [GgmlDType; 6] = [
    GgmlDType::Q4_1,
    GgmlDType::Q4_0,
    GgmlDType::Q8_0,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
];

/// The prompt's tokens, from the model's own tokenizer.
fn prompt(path: &Path) -> Vec<u32> {
    let mut file = File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let tokenizer = crate::gguf_tokenizer::from_gguf(&content.metadata, path).unwrap();
    tokenizer
        .encode("The capital of France is the city of")
        .unwrap()
}

fn load(path: &Path) -> (CpuTransformer, quantized_llama::ModelWeights) {
    let mut file = File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    assert!(super::supports(&content));
    let mut ours = CpuTransformer::load(&content, &mut file).unwrap();
    // candle's caches are f32: so is ours, for an exact comparison.
    ours.set_kv_format(super::KvFormat::F32);
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

/// In every format: logits close to candle's, the same greedy tokens, and the answer "Paris".
#[test]
fn logits_match_candles_llama_through_prefill_and_decode_in_every_format() {
    for format in FORMATS {
        matches_candle(&model_in_format(format), format);
    }
}

fn matches_candle(path: &Path, format: GgmlDType) {
    let (mut ours, mut candle) = load(path);
    let prompt = prompt(path);
    let mut expected = candle_logits(&mut candle, &prompt, 0);
    let mut cache = ours.new_cache();
    let mut got = ours.forward(&prompt, &mut cache).unwrap();
    let mut greedy = Vec::new();
    for (step, position) in (prompt.len()..prompt.len() + 4).enumerate() {
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
            "{format:?} step {step}: logits differ by {worst} at worst, {mean} on average (scale {scale})"
        );
        let next = argmax(&expected);
        assert_eq!(
            argmax(&got),
            next,
            "{format:?} step {step}: a different greedy token"
        );
        greedy.push(next);
        expected = candle_logits(&mut candle, &[next], position);
        got = ours.forward(&[next], &mut cache).unwrap();
    }
    let mut file = File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let tokenizer = crate::gguf_tokenizer::from_gguf(&content.metadata, path).unwrap();
    let text = tokenizer.decode(&greedy).unwrap();
    assert!(
        text.contains("Paris"),
        "{format:?}: the model went on with {text:?}"
    );
}

#[test]
fn a_prompt_fed_in_chunks_gives_the_same_logits_as_at_once() {
    let (mut model, _) = load(&model_path());
    let prompt = prompt(&model_path());
    let at_once = model.forward(&prompt, &mut model.new_cache()).unwrap();
    let mut cache = model.new_cache();
    model.forward(&prompt[..3], &mut cache).unwrap();
    let chunked = model.forward(&prompt[3..], &mut cache).unwrap();
    assert_eq!(cache.len(), prompt.len());
    assert!(max_difference(&at_once, &chunked) < 1e-3);
}

/// Sequences batched together (one decoding, one prefilling, one starting) get exactly the
/// logits each gets alone: every row is quantized and multiplied on its own, so a sequence's
/// greedy output does not depend on what else runs.
#[test]
fn a_batched_pass_gives_each_sequence_its_logits_alone() {
    let (mut model, _) = load(&model_path());
    let prompt = prompt(&model_path());
    let alone = |model: &mut CpuTransformer, feeds: &[&[u32]]| {
        let mut cache = model.new_cache();
        let mut logits = Vec::new();
        for feed in feeds {
            logits = model.forward(feed, &mut cache).unwrap();
        }
        (logits, cache)
    };
    let (expected_a, mut a) = alone(&mut model, &[&prompt, &[42]]);
    let (expected_b, mut b) = alone(&mut model, &[&prompt[..2], &prompt[2..]]);
    let (expected_c, _) = alone(&mut model, &[&[7, 8, 9, 10, 11]]);
    for cache in [&mut a, &mut b] {
        *cache = cache.prefix(cache.len() - 1);
    }
    let (last_a, last_b) = ([42], [prompt[prompt.len() - 1]]);
    let mut c = model.new_cache();
    let c_tokens = [7, 8, 9, 10, 11];
    let batched = model
        .forward_batch(&mut [
            Segment {
                tokens: &last_a,
                cache: &mut a,
            },
            Segment {
                tokens: &last_b,
                cache: &mut b,
            },
            Segment {
                tokens: &c_tokens,
                cache: &mut c,
            },
        ])
        .unwrap();
    assert_eq!(batched, [expected_a, expected_b, expected_c]);
    assert_eq!(
        (a.len(), b.len(), c.len()),
        (prompt.len() + 1, prompt.len(), 5)
    );
}

#[test]
fn bad_tokens_are_errors_not_panics() {
    let (mut model, _) = load(&model_path());
    let vocabulary = model.embedding.rows() as u32;
    let mut cache = model.new_cache();
    assert_eq!(
        model.forward(&[vocabulary], &mut cache).unwrap_err(),
        format!("token {vocabulary} is outside the vocabulary of {vocabulary}")
    );
    assert!(model.forward(&[], &mut cache).is_err());
    assert!(model.forward(&[1], &mut KvCache::default()).is_err());
    assert_eq!(cache.len(), 0);
}
