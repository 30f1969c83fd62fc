//! Random-weight cross-encoders on disk, for tests and benchmarks where no real reranker can be
//! fetched: `config.json` and `model.safetensors` (written by candle) in Hugging Face layout,
//! beside a copy of a real `tokenizer.json`. They load through the same code as a real
//! checkpoint; the weights are deterministic noise, so the scores mean nothing.

use crate::cross::CrossEncoder;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::{bert, xlm_roberta};
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::Path;

/// The shape of the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinyKind {
    /// A 2-layer BERT classifier with 32-wide states (about 4 MB).
    Bert,
    /// The architecture of ms-marco-MiniLM-L-6-v2: 6 layers, 384-wide states (about 90 MB).
    MiniLm,
    /// A 2-layer XLM-RoBERTa classifier with 32-wide states.
    XlmRoberta,
}

/// The `config.json` of `kind`, for a tokenizer of `vocab` tokens.
fn config(kind: TinyKind, vocab: usize) -> Value {
    let (hidden, layers, heads) = match kind {
        TinyKind::MiniLm => (384, 6, 12),
        TinyKind::Bert | TinyKind::XlmRoberta => (32, 2, 2),
    };
    let (architecture, model_type, positions) = match kind {
        TinyKind::XlmRoberta => ("XLMRobertaForSequenceClassification", "xlm-roberta", 514),
        _ => ("BertForSequenceClassification", "bert", 512),
    };
    json!({
        "architectures": [architecture],
        "model_type": model_type,
        "id2label": {"0": "LABEL_0"},
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": hidden * 4,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": positions,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
    })
}

/// Writes a checkpoint of `kind` into `dir` (created if needed), with a copy of `tokenizer` (a
/// BERT `tokenizer.json`, e.g. all-MiniLM-L6-v2's).
pub fn write(dir: &Path, kind: TinyKind, tokenizer: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let text =
        std::fs::read_to_string(tokenizer).map_err(|e| format!("{}: {e}", tokenizer.display()))?;
    let vocab = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|t| Some(t["model"]["vocab"].as_object()?.len()))
        .ok_or("the tokenizer has no WordPiece vocabulary")?;
    let config = config(kind, vocab);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let built = match kind {
        TinyKind::XlmRoberta => xlm_roberta::Config::deserialize(&config)
            .map_err(|e| e.to_string())
            .and_then(|cfg| CrossEncoder::xlm_roberta(&cfg, 1, vb).map_err(|e| e.to_string())),
        _ => bert::Config::deserialize(&config)
            .map_err(|e| e.to_string())
            .and_then(|cfg| CrossEncoder::bert(&cfg, 1, vb).map_err(|e| e.to_string())),
    };
    drop(built?);
    fill_with_noise(&varmap).map_err(|e| e.to_string())?;
    varmap
        .save(dir.join("model.safetensors"))
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("config.json"), config.to_string()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("tokenizer.json"), text).map_err(|e| e.to_string())
}

/// Sets every weight to deterministic noise: small values, near 1 for layer-norm scales.
fn fill_with_noise(varmap: &VarMap) -> candle_core::Result<()> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for (seed, name) in names.into_iter().enumerate() {
        let var = &vars[name];
        let count = var.elem_count();
        let base = if name.ends_with("LayerNorm.weight") || name.ends_with("layer_norm.weight") {
            1.0
        } else {
            0.0
        };
        let values: Vec<f32> = (0..count)
            .map(|i| {
                let x = ((i as f32 * 12.9898 + seed as f32 * 78.233).sin() * 43_758.547).fract();
                base + 0.2 * x
            })
            .collect();
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu)?)?;
    }
    Ok(())
}
