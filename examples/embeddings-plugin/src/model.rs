//! The BERT encoder and its tokenizer, loaded from a Hugging Face model directory, and the
//! pooling that turns a batch of texts into sentence vectors.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use rbee_plugin_api::{PluginError, error_code};
use std::path::Path;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// The files a model directory must hold.
const FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// Longest input in tokens; longer texts are truncated (all-MiniLM-L6-v2 was trained on 256).
const MAX_TOKENS: usize = 256;

/// A loaded sentence-embedding model.
pub struct Embedder {
    bert: BertModel,
    tokenizer: Tokenizer,
    dimensions: usize,
    weight_bytes: u64,
}

/// The vectors of one batch of texts, and how many tokens they took.
pub struct Embedded {
    /// One vector per text, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read, special tokens included, padding excluded.
    pub tokens: usize,
}

impl Embedder {
    /// Loads the model in `dir` onto `device`, reporting progress from 0 to 1.
    pub fn load(
        dir: &Path,
        device: &Device,
        progress: &dyn Fn(f32, &str),
    ) -> Result<Self, PluginError> {
        let missing: Vec<&str> = FILES
            .into_iter()
            .filter(|file| !dir.join(file).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(load_error(
                dir,
                format!(
                    "{} missing (a model directory holds {})",
                    missing.join(", "),
                    FILES.join(", ")
                ),
            ));
        }
        progress(0.0, "reading config.json and tokenizer.json");
        let config: Config = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
            .map_err(|e| load_error(dir, format!("config.json: {e}")))?;
        let tokenizer = tokenizer(dir, config.max_position_embeddings.min(MAX_TOKENS))?;
        progress(0.2, "reading model.safetensors");
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| load_error(dir, format!("model.safetensors: {e}")))?;
        let weight_bytes = weights.len() as u64;
        progress(0.6, "building the BERT encoder");
        let vb = VarBuilder::from_buffered_safetensors(weights, DTYPE, device)
            .map_err(|e| load_error(dir, format!("model.safetensors: {e}")))?;
        let bert = BertModel::load(vb, &config)
            .map_err(|e| load_error(dir, format!("not a BERT checkpoint: {e}")))?;
        progress(1.0, "ready");
        Ok(Self {
            bert,
            tokenizer,
            dimensions: config.hidden_size,
            weight_bytes,
        })
    }

    /// The length of every vector.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// Embeds `texts` in one forward pass: the mean of the token states under the attention
    /// mask, scaled to unit length if `normalize`.
    pub fn embed(&self, texts: &[String], normalize: bool) -> Result<Embedded, PluginError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| PluginError::internal(format!("tokenizing: {e}")))?;
        let width = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let ids: Vec<u32> = encodings
            .iter()
            .flat_map(|e| e.get_ids().to_vec())
            .collect();
        let mask: Vec<u32> = encodings
            .iter()
            .flat_map(|e| e.get_attention_mask().to_vec())
            .collect();
        let tokens = mask.iter().filter(|&&m| m == 1).count();
        let vectors = self
            .pool(ids, mask, (texts.len(), width), normalize)
            .map_err(internal)?;
        Ok(Embedded { vectors, tokens })
    }

    fn pool(
        &self,
        ids: Vec<u32>,
        mask: Vec<u32>,
        shape: (usize, usize),
        normalize: bool,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let device = &self.bert.device;
        let ids = Tensor::from_vec(ids, shape, device)?;
        let mask = Tensor::from_vec(mask, shape, device)?;
        let states = self.bert.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        let weights = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = states.broadcast_mul(&weights)?.sum(1)?;
        let mut pooled = summed.broadcast_div(&weights.sum(1)?)?;
        if normalize {
            let norms = pooled
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12, f32::MAX)?;
            pooled = pooled.broadcast_div(&norms)?;
        }
        pooled.to_vec2()
    }
}

/// The tokenizer in `dir`, padding each batch to its longest text and truncating at `max_tokens`
/// (tokenizer.json files often pad every input to a fixed length, which wastes compute).
fn tokenizer(dir: &Path, max_tokens: usize) -> Result<Tokenizer, PluginError> {
    let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| load_error(dir, format!("tokenizer.json: {e}")))?;
    let padding = PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..tokenizer.get_padding().cloned().unwrap_or_default()
    };
    tokenizer.with_padding(Some(padding));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..Default::default()
        }))
        .map_err(|e| load_error(dir, format!("tokenizer.json: {e}")))?;
    Ok(tokenizer)
}

fn load_error(dir: &Path, reason: String) -> PluginError {
    PluginError::new(
        error_code::MODEL_LOAD,
        format!(
            "cannot load the embedding model in {}: {reason}",
            dir.display()
        ),
    )
}

fn internal(error: candle_core::Error) -> PluginError {
    PluginError::internal(format!("inference: {error}"))
}
