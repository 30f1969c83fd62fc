//! The shape of a decoder network, read from GGUF metadata: sizes, and what sets each
//! architecture apart (rotary layout, activation, scales, soft-capping, sliding windows)
//! described as data, so that one forward pass runs them all.

use candle_core::quantized::gguf_file::{Content, Value};

/// How rotary embeddings pair a head's dimensions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum RopeStyle {
    /// Adjacent pairs `(2i, 2i + 1)`: llama as GGUF stores it (its q and k rows permuted).
    Pairs,
    /// Dimension `i` with `i + d/2` of the `d` rotated ones (GPT-NeoX's layout).
    Halves,
}

/// The gate's activation in the feed-forward block `act(gate) * up`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Activation {
    /// `x * sigmoid(x)`.
    Silu,
    /// GELU by its tanh approximation.
    GeluTanh,
}

/// What an architecture does beyond what its metadata says.
struct Family {
    rope_style: RopeStyle,
    activation: Activation,
    /// Embeddings are multiplied by `sqrt(hidden)`.
    scaled_embedding: bool,
    /// With a sliding window, layer `i` slides unless `i % pattern == pattern - 1` (as
    /// llama.cpp assigns them); 1: every layer slides.
    sliding_pattern: usize,
    /// The rotary base of sliding layers when the metadata gives none, if it differs from
    /// the global one.
    local_rope_base: Option<f32>,
    /// The rotary base when the metadata gives none.
    default_rope_base: f32,
    /// Layer count of the variant whose queries are scaled by `1/sqrt(hidden/heads)` instead
    /// of `1/sqrt(head_dim)` (Gemma's 27B models; GGUF does not record the scalar).
    hidden_scaled_queries_at: Option<usize>,
}

/// The decoder architectures this network runs, by `general.architecture`.
pub const ARCHITECTURES: [&str; 6] = ["llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"];

fn family(architecture: &str) -> Option<Family> {
    let plain = Family {
        rope_style: RopeStyle::Halves,
        activation: Activation::Silu,
        scaled_embedding: false,
        sliding_pattern: 1,
        local_rope_base: None,
        default_rope_base: 10_000.0,
        hidden_scaled_queries_at: None,
    };
    let gemma = Family {
        activation: Activation::GeluTanh,
        scaled_embedding: true,
        ..plain
    };
    Some(match architecture {
        "llama" => Family {
            rope_style: RopeStyle::Pairs,
            ..plain
        },
        "qwen2" | "qwen3" | "phi3" => plain,
        "gemma2" => Family {
            sliding_pattern: 2,
            hidden_scaled_queries_at: Some(46),
            ..gemma
        },
        "gemma3" => Family {
            sliding_pattern: 6,
            local_rope_base: Some(10_000.0),
            default_rope_base: 1_000_000.0,
            hidden_scaled_queries_at: Some(62),
            ..gemma
        },
        _ => return None,
    })
}

/// Rotary embeddings of one kind of layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct RopeConfig {
    /// How dimensions pair.
    pub style: RopeStyle,
    /// Dimensions rotated at the start of each head (the rest pass unchanged).
    pub dims: usize,
    /// The frequency base.
    pub base: f32,
    /// Linear scaling: positions are divided by this.
    pub scale: f32,
}

/// Sizes and constants of a decoder network.
#[derive(Clone, Debug)]
pub(super) struct Hyperparameters {
    pub layers: usize,
    pub hidden: usize,
    pub feed_forward: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rms_eps: f32,
    pub context: usize,
    /// Rotary embeddings of global-attention layers.
    pub rope: RopeConfig,
    /// Rotary embeddings of sliding-window layers.
    pub local_rope: RopeConfig,
    /// Positions a sliding layer attends to (its own included), if any layer slides.
    pub sliding_window: Option<usize>,
    sliding_pattern: usize,
    /// Factor of the scores `q·k`.
    pub attention_scale: f32,
    /// Scores become `cap * tanh(score / cap)`.
    pub attention_softcap: Option<f32>,
    /// Logits become `cap * tanh(logit / cap)`.
    pub output_softcap: Option<f32>,
    /// Factor of the token embeddings.
    pub embedding_scale: Option<f32>,
    pub activation: Activation,
}

impl Hyperparameters {
    /// Reads `<architecture>.*` metadata; `Err` names what this implementation does not run.
    pub fn from_gguf(content: &Content) -> Result<Self, String> {
        let metadata = &content.metadata;
        let architecture = metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or("the metadata has no general.architecture")?;
        let family = family(architecture)
            .ok_or_else(|| format!("architecture '{architecture}' is not supported"))?;
        let value = |key: &str| metadata.get(&format!("{architecture}.{key}"));
        let optional = |key: &str| value(key).and_then(|v| v.to_u32().ok()).map(|v| v as usize);
        let required = |key: &str| -> Result<usize, String> {
            optional(key).ok_or_else(|| format!("the metadata has no {architecture}.{key}"))
        };
        let float = |key: &str| value(key).and_then(to_f32);
        if optional("expert_count").is_some_and(|n| n > 0) {
            return Err("mixture-of-experts models are not supported".into());
        }
        let hidden = required("embedding_length")?;
        let heads = required("attention.head_count")?;
        if heads == 0 {
            return Err("the model has no attention heads".into());
        }
        let head_dim = optional("attention.key_length").unwrap_or(hidden / heads);
        if optional("attention.value_length").is_some_and(|v| v != head_dim) || head_dim == 0 {
            return Err("keys and values of different widths are not supported".into());
        }
        let kv_heads = optional("attention.head_count_kv").unwrap_or(heads);
        if kv_heads == 0 || heads % kv_heads != 0 {
            return Err(format!(
                "{kv_heads} key/value heads do not divide {heads} heads"
            ));
        }
        let rope_dims = optional("rope.dimension_count").unwrap_or(head_dim);
        if rope_dims > head_dim || rope_dims % 2 != 0 {
            return Err(format!(
                "rotary embeddings over {rope_dims} of {head_dim} dimensions are not supported"
            ));
        }
        let scaling = value("rope.scaling.type").and_then(|v| v.to_string().ok());
        let scale = match scaling.map(String::as_str) {
            None | Some("none") => 1.0,
            Some("linear") => float("rope.scaling.factor").unwrap_or(1.0),
            Some(other) => return Err(format!("rope scaling '{other}' is not supported")),
        };
        let rope = RopeConfig {
            style: family.rope_style,
            dims: rope_dims,
            base: float("rope.freq_base").unwrap_or(family.default_rope_base),
            scale,
        };
        // Sliding layers keep the unscaled frequencies of their own base (llama.cpp's choice
        // for Gemma 3, whose global layers alone are stretched).
        let local_rope = match family.local_rope_base {
            Some(base) => RopeConfig {
                base: float("rope.local_freq_base").unwrap_or(base),
                scale: 1.0,
                ..rope
            },
            None => rope,
        };
        let layers = required("block_count")?;
        let query_scalar = match family.hidden_scaled_queries_at {
            Some(n) if n == layers => hidden / heads,
            _ => head_dim,
        };
        let positive = |cap: Option<f32>| cap.filter(|c| *c > 0.0);
        Ok(Hyperparameters {
            layers,
            hidden,
            feed_forward: required("feed_forward_length")?,
            heads,
            kv_heads,
            head_dim,
            rms_eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            context: required("context_length")?,
            rope,
            local_rope,
            // llama.cpp leaves Phi-3's window off: its GGUF files record it wrongly.
            sliding_window: optional("attention.sliding_window")
                .filter(|&w| w > 0 && architecture != "phi3"),
            sliding_pattern: optional("attention.sliding_window_pattern")
                .filter(|&p| p > 0)
                .unwrap_or(family.sliding_pattern),
            attention_scale: 1.0 / (query_scalar as f32).sqrt(),
            attention_softcap: positive(float("attn_logit_softcapping")),
            output_softcap: positive(float("final_logit_softcapping")),
            embedding_scale: family.scaled_embedding.then(|| (hidden as f32).sqrt()),
            activation: family.activation,
        })
    }

    /// Width of one position's queries.
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Width of the keys (and of the values) of one position.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// The window of layer `index`, if it slides.
    pub fn window(&self, index: usize) -> Option<usize> {
        let pattern = self.sliding_pattern;
        self.sliding_window
            .filter(|_| pattern == 1 || index % pattern < pattern - 1)
    }
}

fn to_f32(value: &Value) -> Option<f32> {
    value
        .to_f32()
        .ok()
        .or_else(|| value.to_f64().ok().map(|v| v as f32))
}
