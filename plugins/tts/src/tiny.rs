//! Random-weight Parler-TTS checkpoints on disk, for tests and benchmarks where no real model
//! can be fetched: `config.json`, `tokenizer.json` (a small T5-style unigram tokenizer) and
//! `model.safetensors` (float16) in Parler-TTS's layout. They load through the same code as a
//! real checkpoint; the weights are deterministic noise, so the audio is noise too.
//!
//! candle's DAC codec has its channel counts built in (the 44.1 kHz model's), so even the tiny
//! checkpoint carries a full-size codec, about 120 MB; the T5 encoder and the audio-token
//! decoder are what [`TinyKind`] shrinks.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::parler_tts::{Config, Model};
use serde::Deserialize;
use serde_json::{Value, json};
use std::{collections::HashMap, path::Path};

/// The shape of the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinyKind {
    /// 2-layer, 32-wide T5 encoder and decoder: every step costs next to nothing, the codec
    /// is most of the time.
    Tiny,
    /// The audio-token decoder of Parler-TTS mini v1 (24 layers, 1024 wide, 16 heads, about
    /// 1.6 GB as float32) and its codec, behind a 2-layer T5 encoder (which runs once per job):
    /// for measuring speed.
    MiniDecoder,
}

/// Words the tokenizer knows whole (the rest is spelt letter by letter).
const WORDS: &[&str] = &[
    "the", "a", "is", "and", "of", "to", "in", "voice", "speaker", "hello", "world", "clear",
];

/// Characters the tokenizer knows.
const CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?;:'\"-()";

/// The tokenizer's `tokenizer.json`: `<pad>` 0, `</s>` 1 (appended to every text), `<unk>` 2.
fn tokenizer() -> (Value, usize) {
    let mut vocab = vec![
        json!(["<pad>", 0.0]),
        json!(["</s>", 0.0]),
        json!(["<unk>", 0.0]),
        json!(["\u{2581}", -2.0]),
    ];
    vocab.extend(
        WORDS
            .iter()
            .map(|word| json!([format!("\u{2581}{word}"), -1.0])),
    );
    vocab.extend(CHARS.chars().map(|c| json!([c.to_string(), -3.0])));
    let special = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    let metaspace = json!({"type": "Metaspace", "replacement": "\u{2581}",
                           "prepend_scheme": "always", "split": true});
    let size = vocab.len();
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, "<pad>"), special(1, "</s>"), special(2, "<unk>")],
        "normalizer": null,
        "pre_tokenizer": metaspace,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}
        },
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": 2, "vocab": vocab, "byte_fallback": false}
    });
    (tokenizer, size)
}

/// The `config.json` of `kind`, for a tokenizer of `vocab` tokens.
fn config(kind: TinyKind, vocab: usize) -> Value {
    let (hidden, layers, heads) = match kind {
        TinyKind::Tiny => (32, 2, 2),
        TinyKind::MiniDecoder => (1024, 24, 16),
    };
    let latent = match kind {
        TinyKind::Tiny => 64,
        TinyKind::MiniDecoder => 1024,
    };
    json!({
        "decoder_start_token_id": 1025,
        "pad_token_id": 1024,
        "vocab_size": vocab,
        "decoder": {
            "vocab_size": 1088,
            "max_position_embeddings": 4096,
            "num_hidden_layers": layers,
            "ffn_dim": hidden * 4,
            "num_attention_heads": heads,
            "num_key_value_heads": heads,
            "num_cross_attention_key_value_heads": heads,
            "activation_function": "gelu",
            "hidden_size": hidden,
            "scale_embedding": false,
            "num_codebooks": 9,
            "pad_token_id": 1024,
            "bos_token_id": 1025,
            "eos_token_id": 1024,
            "tie_word_embeddings": false,
            "rope_embeddings": false,
            "rope_theta": 10_000.0
        },
        "text_encoder": {
            "vocab_size": vocab,
            "d_model": 32,
            "d_kv": 16,
            "d_ff": 64,
            "num_layers": 2,
            "num_heads": 2,
            "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128,
            "dropout_rate": 0.1,
            "layer_norm_epsilon": 1e-6,
            "initializer_factor": 1.0,
            "feed_forward_proj": "gated-gelu",
            "is_encoder_decoder": true,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "decoder_start_token_id": 0
        },
        "audio_encoder": {
            "num_codebooks": 9,
            "model_bitrate": 8,
            "codebook_size": 1024,
            "latent_dim": latent,
            "frame_rate": 86,
            "sampling_rate": 44_100
        }
    })
}

/// Writes a checkpoint of `kind` into `dir` (created if needed).
pub fn write(dir: &Path, kind: TinyKind) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let (tokenizer, vocab) = tokenizer();
    let config = config(kind, vocab);
    let parsed = Config::deserialize(&config).map_err(|e| e.to_string())?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    drop(Model::new(&parsed, vb).map_err(|e| e.to_string())?);
    let tensors = noise(&varmap).map_err(|e| e.to_string())?;
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("config.json"), config.to_string()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).map_err(|e| e.to_string())
}

/// Every weight of `varmap` as deterministic float16 noise: small values scaled by the fan-in
/// (so the codec's deep stacks stay finite), near 1 for layer-norm scales.
fn noise(varmap: &VarMap) -> candle_core::Result<HashMap<String, Tensor>> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut tensors = HashMap::with_capacity(names.len());
    for (seed, name) in names.into_iter().enumerate() {
        let var = &vars[name];
        let dims = var.dims();
        let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
        let (base, scale) = if name.ends_with("layer_norm.weight") {
            (1.0, 0.1)
        } else if name.ends_with(".alpha") || name.ends_with("weight_g") {
            (1.0, 0.2)
        } else {
            (0.0, 1.7 / (fan_in as f32).sqrt())
        };
        let values: Vec<f32> = (0..var.elem_count())
            .map(|i| {
                let x = ((i as f32 * 12.9898 + seed as f32 * 78.233).sin() * 43_758.547).fract();
                base + scale * x
            })
            .collect();
        let tensor = Tensor::from_vec(values, var.shape(), &Device::Cpu)?.to_dtype(DType::F16)?;
        tensors.insert(name.clone(), tensor);
    }
    Ok(tensors)
}
