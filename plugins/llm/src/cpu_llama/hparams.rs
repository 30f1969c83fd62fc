//! The shape of a llama network, read from GGUF metadata.

use candle_core::quantized::gguf_file::{Content, Value};

/// Sizes and constants of a llama network.
#[derive(Clone, Debug)]
pub(super) struct Hyperparameters {
    pub layers: usize,
    pub hidden: usize,
    pub feed_forward: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    pub context: usize,
}

impl Hyperparameters {
    /// Reads `llama.*` metadata; `Err` names what this implementation does not run.
    pub fn from_gguf(content: &Content) -> Result<Self, String> {
        let metadata = &content.metadata;
        let value = |key: &str| metadata.get(&format!("llama.{key}"));
        let required = |key: &str| -> Result<usize, String> {
            value(key)
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .ok_or_else(|| format!("the metadata has no llama.{key}"))
        };
        if value("expert_count").is_some_and(|v| v.to_u32().is_ok_and(|n| n > 0)) {
            return Err("mixture-of-experts llama models are not supported".into());
        }
        let hidden = required("embedding_length")?;
        let heads = required("attention.head_count")?;
        if heads == 0 || hidden % heads != 0 {
            return Err(format!("{heads} heads do not divide {hidden} dimensions"));
        }
        let head_dim = hidden / heads;
        let kv_heads = required("attention.head_count_kv").unwrap_or(heads);
        if kv_heads == 0 || heads % kv_heads != 0 {
            return Err(format!(
                "{kv_heads} key/value heads do not divide {heads} heads"
            ));
        }
        let rope_dims = required("rope.dimension_count").unwrap_or(head_dim);
        if rope_dims != head_dim || head_dim % 2 != 0 {
            return Err(format!(
                "rotary embeddings over {rope_dims} of {head_dim} dimensions are not supported"
            ));
        }
        let float = |key: &str, default: f32| value(key).and_then(to_f32).unwrap_or(default);
        Ok(Hyperparameters {
            layers: required("block_count")?,
            hidden,
            feed_forward: required("feed_forward_length")?,
            heads,
            kv_heads,
            head_dim,
            rms_eps: float("attention.layer_norm_rms_epsilon", 1e-5),
            rope_base: float("rope.freq_base", 10_000.0),
            context: required("context_length")?,
        })
    }

    /// Width of the keys (and of the values) of one position.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

fn to_f32(value: &Value) -> Option<f32> {
    value
        .to_f32()
        .ok()
        .or_else(|| value.to_f64().ok().map(|v| v as f32))
}
