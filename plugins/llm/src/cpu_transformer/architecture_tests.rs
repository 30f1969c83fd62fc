//! The CPU network on a tiny random model of each architecture against an independent
//! implementation: candle's quantized llama, Qwen 2, Qwen 3 and Phi-3 on the same file, and
//! candle's float Gemma 2 and Gemma 3 on its dequantized weights (candle's quantized Gemma
//! lacks soft-capping and uses the wrong activation).
//!
//! Logits are compared centred (a shift of all logits changes no probability), as fractions
//! of the largest. With Q8_0 weights, candle's quantized models quantize activations exactly
//! as the CPU kernels do, and the two agree to f32 rounding (measured: 1e-7 at worst). Where
//! the activations are rounded differently (Q4_1, whose products candle takes on Q8_1
//! activations; candle's float Gemma, which rounds none), or far out (position 4300, where
//! candle's rotary frequencies, computed in f64 and rounded, differ from ours in their last
//! bits), the worst logit differed by up to 1.8% and the mean by up to 0.4%; [`NEAR`] allows
//! about twice that.

use super::{
    CpuTransformer, KvFormat,
    tiny_gguf::{Tiny, dequantized},
};
use candle_core::{
    DType, Device, Tensor,
    quantized::{GgmlDType, gguf_file},
};
use candle_nn::VarBuilder;
use candle_transformers::models::{
    gemma2, gemma3, quantized_llama, quantized_phi3, quantized_qwen2, quantized_qwen3,
};
use std::{fs::File, path::Path};

/// The largest differences allowed, at any logit and on average, as fractions of the largest
/// logit.
#[derive(Clone, Copy)]
struct Bound {
    worst: f32,
    mean: f32,
}

/// Implementations that round activations alike: f32 rounding alone.
const EXACT: Bound = Bound {
    worst: 1e-5,
    mean: 1e-6,
};

/// Implementations that round activations differently.
const NEAR: Bound = Bound {
    worst: 0.04,
    mean: 0.008,
};

/// An independent implementation of one architecture.
enum Reference {
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
    Gemma2(gemma2::Model),
    Gemma3(gemma3::Model),
}

impl Reference {
    /// Candle's model of `tiny`'s architecture on the file at `path`.
    fn load(tiny: &Tiny, path: &Path) -> Self {
        let mut file = File::open(path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        let device = &Device::Cpu;
        match tiny.architecture {
            "llama" => Reference::Llama(
                quantized_llama::ModelWeights::from_gguf(content, &mut file, device).unwrap(),
            ),
            "qwen2" => Reference::Qwen2(
                quantized_qwen2::ModelWeights::from_gguf(content, &mut file, device).unwrap(),
            ),
            "qwen3" => Reference::Qwen3(
                quantized_qwen3::ModelWeights::from_gguf(content, &mut file, device).unwrap(),
            ),
            "phi3" => Reference::Phi3(
                quantized_phi3::ModelWeights::from_gguf(false, content, &mut file, device).unwrap(),
            ),
            "gemma2" => {
                let config = serde_json::from_value(gemma_config(tiny)).unwrap();
                let vb = gemma_weights(path);
                Reference::Gemma2(gemma2::Model::new(false, &config, vb).unwrap())
            }
            "gemma3" => {
                let config = serde_json::from_value(gemma_config(tiny)).unwrap();
                let vb = gemma_weights(path);
                Reference::Gemma3(gemma3::Model::new(false, &config, vb).unwrap())
            }
            other => panic!("no reference for {other}"),
        }
    }

    /// The logits of the last of `tokens`, fed at `position`.
    fn forward(&mut self, tokens: &[u32], position: usize) -> Vec<f32> {
        let input = Tensor::new(tokens, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = match self {
            Reference::Llama(m) => m.forward(&input, position),
            Reference::Qwen2(m) => m.forward(&input, position),
            Reference::Qwen3(m) => m.forward(&input, position),
            Reference::Phi3(m) => m.forward(&input, position),
            Reference::Gemma2(m) => m.forward(&input, position),
            // candle's Gemma 3 takes one token at a time (it appends a strided tensor
            // to its cache otherwise).
            Reference::Gemma3(m) => {
                let mut logits = None;
                for (offset, &token) in tokens.iter().enumerate() {
                    let input = Tensor::new(&[[token]], &Device::Cpu).unwrap();
                    logits = Some(m.forward(&input, position + offset));
                }
                logits.unwrap()
            }
        };
        logits.unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }
}

/// The Hugging Face configuration of a tiny Gemma, as candle reads it.
fn gemma_config(tiny: &Tiny) -> serde_json::Value {
    // candle's Gemma 2 masks let a query see one position more than llama.cpp's and Hugging
    // Face's; its Gemma 3, fed a token at a time, keeps the window's positions.
    let window = tiny.sliding_window.unwrap() as usize - usize::from(tiny.architecture == "gemma2");
    let (attention_cap, output_cap) = tiny.softcaps.unzip();
    serde_json::json!({
        "attention_bias": false,
        "head_dim": tiny.head_dim,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": tiny.hidden,
        "intermediate_size": tiny.feed_forward,
        "num_attention_heads": tiny.heads,
        "num_hidden_layers": tiny.layers,
        "num_key_value_heads": tiny.kv_heads,
        "rms_norm_eps": 1e-6,
        "rope_theta": tiny.rope_base,
        "rope_local_base_freq": 10_000.0,
        "vocab_size": tiny.vocab,
        "final_logit_softcapping": output_cap,
        "attn_logit_softcapping": attention_cap,
        "query_pre_attn_scalar": tiny.head_dim,
        "sliding_window": window,
        "sliding_window_pattern": 6,
        "max_position_embeddings": tiny.context,
    })
}

/// The dequantized weights of a Gemma GGUF under Hugging Face's names. GGUF norms hold
/// `1 + w` (llama.cpp's converter adds the one that Hugging Face's Gemma adds at run time).
fn gemma_weights(path: &Path) -> VarBuilder<'static> {
    let renamed = dequantized(path).into_iter().map(|(name, tensor)| {
        let (hf, is_norm) = match name.split_once('.') {
            Some(("token_embd", _)) => ("model.embed_tokens.weight".to_string(), false),
            Some(("output_norm", _)) => ("model.norm.weight".to_string(), true),
            _ => {
                let rest = name.strip_prefix("blk.").unwrap();
                let (layer, tensor_name) = rest.split_once('.').unwrap();
                let base = tensor_name.strip_suffix(".weight").unwrap();
                let hf = match base {
                    "attn_norm" => "input_layernorm",
                    "post_attention_norm" => "post_attention_layernorm",
                    "ffn_norm" => "pre_feedforward_layernorm",
                    "post_ffw_norm" => "post_feedforward_layernorm",
                    "attn_q" => "self_attn.q_proj",
                    "attn_k" => "self_attn.k_proj",
                    "attn_v" => "self_attn.v_proj",
                    "attn_output" => "self_attn.o_proj",
                    "attn_q_norm" => "self_attn.q_norm",
                    "attn_k_norm" => "self_attn.k_norm",
                    "ffn_gate" => "mlp.gate_proj",
                    "ffn_up" => "mlp.up_proj",
                    "ffn_down" => "mlp.down_proj",
                    other => panic!("no Hugging Face name for {other}"),
                };
                (
                    format!("model.layers.{layer}.{hf}.weight"),
                    base.ends_with("norm"),
                )
            }
        };
        let tensor = if is_norm {
            (tensor - 1.0).unwrap()
        } else {
            tensor
        };
        (hf, tensor)
    });
    VarBuilder::from_tensors(renamed.collect(), DType::F32, &Device::Cpu)
}

fn load_ours(path: &Path) -> CpuTransformer {
    let mut file = File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    assert!(
        super::supports(&content),
        "{} is not supported",
        path.display()
    );
    let mut ours = CpuTransformer::load(&content, &mut file).unwrap();
    // candle's caches are f32: so is ours, for an exact comparison.
    ours.set_kv_format(KvFormat::F32);
    ours
}

/// Worst and mean differences of the centred logits, as fractions of the largest one.
fn differences(ours: &[f32], reference: &[f32]) -> (f32, f32) {
    let centred = |l: &[f32]| {
        let mean = l.iter().sum::<f32>() / l.len() as f32;
        l.iter().map(|v| v - mean).collect::<Vec<_>>()
    };
    let (a, b) = (centred(ours), centred(reference));
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let gaps = a.iter().zip(&b).map(|(a, b)| (a - b).abs());
    let worst = gaps.clone().fold(0f32, f32::max);
    let mean = gaps.sum::<f32>() / a.len() as f32;
    (worst / scale, mean / scale)
}

fn assert_close(ours: &[f32], reference: &[f32], bound: Bound, what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}: vocabulary sizes");
    let (worst, mean) = differences(ours, reference);
    assert!(
        worst < bound.worst && mean < bound.mean,
        "{what}: logits differ by {worst} at worst and {mean} on average (of the largest)"
    );
}

fn argmax(logits: &[f32]) -> u32 {
    (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap() as u32
}

fn prompt(tiny: &Tiny, length: usize) -> Vec<u32> {
    (0..length)
        .map(|i| ((i * 37 + 11) % tiny.vocab) as u32)
        .collect()
}

/// Writes `tiny` in `format` and compares a prompt and `steps` decoded tokens with candle.
fn matches_reference(tiny: &Tiny, format: GgmlDType, lengths: (usize, usize), bound: Bound) {
    matches_reference_with(tiny, format, lengths, bound, KvFormat::F32);
}

/// [`matches_reference`] with our keys and values cached in `kv`.
fn matches_reference_with(
    tiny: &Tiny,
    format: GgmlDType,
    (prompt_length, steps): (usize, usize),
    bound: Bound,
    kv: KvFormat,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{}.gguf", tiny.architecture));
    tiny.write(&path, format);
    let mut ours = load_ours(&path);
    ours.set_kv_format(kv);
    let mut reference = Reference::load(tiny, &path);
    let prompt = prompt(tiny, prompt_length);
    let mut cache = ours.new_cache();
    let mut got = ours.forward(&prompt, &mut cache).unwrap();
    let mut expected = reference.forward(&prompt, 0);
    for step in 0..=steps {
        let what = format!("{} {format:?} step {step}", tiny.architecture);
        assert_close(&got, &expected, bound, &what);
        let next = argmax(&expected);
        got = ours.forward(&[next], &mut cache).unwrap();
        expected = reference.forward(&[next], prompt_length + step);
    }
}

#[test]
fn llama_matches_candle() {
    matches_reference(&Tiny::llama(), GgmlDType::Q8_0, (9, 4), EXACT);
    matches_reference(&Tiny::llama(), GgmlDType::Q4_1, (9, 4), NEAR);
}

/// The default f16 cache rounds keys and values, so the logits stay near candle's, not equal.
#[test]
fn llama_with_an_f16_cache_stays_near_candle() {
    matches_reference_with(&Tiny::llama(), GgmlDType::Q8_0, (9, 4), NEAR, KvFormat::F16);
}

#[test]
fn qwen2_with_attention_biases_matches_candle() {
    matches_reference(&Tiny::qwen2(), GgmlDType::Q8_0, (9, 4), EXACT);
}

#[test]
fn qwen3_with_query_and_key_norms_matches_candle() {
    matches_reference(&Tiny::qwen3(), GgmlDType::Q8_0, (9, 4), EXACT);
}

#[test]
fn phi3_with_fused_projections_matches_candle() {
    matches_reference(&Tiny::phi3(), GgmlDType::Q8_0, (9, 4), EXACT);
}

/// The tiny Gemma 2's attention cap is low enough to change its logits well beyond the
/// bounds, so that the comparison shows it applied as candle applies it.
#[test]
fn gemma2_with_soft_caps_matches_candle() {
    let capped = Tiny::gemma2(4096);
    matches_reference(&capped, GgmlDType::Q8_0, (9, 4), NEAR);
    let dir = tempfile::tempdir().unwrap();
    let last_logits = |tiny: &Tiny| {
        let path = dir.path().join("gemma2.gguf");
        tiny.write(&path, GgmlDType::Q8_0);
        let mut model = load_ours(&path);
        model
            .forward(&prompt(tiny, 9), &mut model.new_cache())
            .unwrap()
    };
    let (attention_cap, output_cap) = capped.softcaps.unwrap();
    let uncapped = Tiny {
        softcaps: Some((1e6, output_cap)),
        ..capped.clone()
    };
    let (worst, _) = differences(&last_logits(&capped), &last_logits(&uncapped));
    assert!(
        worst > 3.0 * NEAR.worst,
        "a cap of {attention_cap} changes little: {worst}"
    );
}

#[test]
fn gemma3_matches_candle() {
    matches_reference(&Tiny::gemma3(4096), GgmlDType::Q8_0, (9, 4), NEAR);
}

/// Sliding windows shorter than the prompt: Gemma 3's five sliding layers and one global
/// through the prompt and decoding, and a one-layer Gemma 2 over a prompt (its first layer
/// slides; candle's Gemma 2 slides every layer, and applies no window when decoding).
#[test]
fn gemma_sliding_windows_match_candle_over_a_longer_prompt() {
    matches_reference(&Tiny::gemma3(4), GgmlDType::Q8_0, (12, 3), NEAR);
    let one_layer = Tiny {
        layers: 1,
        ..Tiny::gemma2(4)
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gemma2.gguf");
    one_layer.write(&path, GgmlDType::Q8_0);
    let mut ours = load_ours(&path);
    let mut cache = ours.new_cache();
    let got = ours.forward(&prompt(&one_layer, 12), &mut cache).unwrap();
    let expected = Reference::load(&one_layer, &path).forward(&prompt(&one_layer, 12), 0);
    assert_close(&got, &expected, NEAR, "one-layer gemma2, window 4");
}

/// A sliding layer sees its window's positions and no earlier one: with one sliding layer,
/// the last token's logits do not depend on tokens before the window, and do depend on the
/// first token inside it.
#[test]
fn a_sliding_layer_sees_exactly_its_window() {
    let window = 5;
    let tiny = Tiny {
        layers: 1,
        ..Tiny::gemma2(window as u32)
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gemma2.gguf");
    tiny.write(&path, GgmlDType::Q8_0);
    let mut model = load_ours(&path);
    let mut last = |tokens: &[u32]| model.forward(tokens, &mut model.new_cache()).unwrap();
    let tail: Vec<u32> = (20..20 + window as u32).collect();
    let with = |head: &[u32], tail: &[u32]| [head, tail].concat();
    assert_eq!(
        last(&with(&[1, 2, 3], &tail)),
        last(&with(&[4, 5, 6], &tail))
    );
    let inside = &tail[1..];
    assert_ne!(
        last(&with(&[1, 2, 3, 9], inside)),
        last(&with(&[4, 5, 6, 7], inside))
    );
}

/// Llama 3's long-context rope scaling, stored as per-pair factors in `rope_freqs.weight`,
/// divides each frequency by its factor: factors turning base 10⁴'s frequencies into base
/// 5·10⁵'s give candle's logits for base 5·10⁵ (candle's llama ignores the factors).
#[test]
fn llama3_rope_factors_divide_the_frequencies() {
    let (base, target) = (10_000f64, 500_000f64);
    let pairs = Tiny::llama().rope_dims / 2;
    let factors = (0..pairs)
        .map(|j| {
            let exponent = -2.0 * j as f64 / (2 * pairs) as f64;
            (base.powf(exponent) / target.powf(exponent)) as f32
        })
        .collect();
    let scaled = Tiny {
        rope_factors: Some(factors),
        ..Tiny::llama()
    };
    let plain = Tiny {
        rope_base: target as f32,
        ..Tiny::llama()
    };
    let dir = tempfile::tempdir().unwrap();
    let (scaled_path, plain_path) = (
        dir.path().join("scaled.gguf"),
        dir.path().join("plain.gguf"),
    );
    scaled.write(&scaled_path, GgmlDType::Q8_0);
    plain.write(&plain_path, GgmlDType::Q8_0);
    let tokens = prompt(&scaled, 40);
    let mut ours = load_ours(&scaled_path);
    let got = ours.forward(&tokens, &mut ours.new_cache()).unwrap();
    let expected = Reference::load(&plain, &plain_path).forward(&tokens, 0);
    assert_close(&got, &expected, EXACT, "llama with rope factors");
}

/// Past candle's fixed 4096 positions of llama and Qwen 3: a Qwen 3 of 40960 positions keeps
/// matching candle's at position 4300 (prompt fed in chunks, as the engine feeds it).
#[test]
fn qwen3_matches_candle_past_4096_positions() {
    let tiny = Tiny::qwen3();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qwen3.gguf");
    tiny.write(&path, GgmlDType::Q8_0);
    let mut ours = load_ours(&path);
    assert_eq!(ours.context_len(), 40_960);
    let mut reference = Reference::load(&tiny, &path);
    let tokens = prompt(&tiny, 4300);
    let mut cache = ours.new_cache();
    let (mut got, mut expected) = (Vec::new(), Vec::new());
    for (i, chunk) in tokens.chunks(512).enumerate() {
        got = ours.forward(chunk, &mut cache).unwrap();
        expected = reference.forward(chunk, i * 512);
    }
    assert_close(&got, &expected, NEAR, "qwen3 at position 4300");
}
