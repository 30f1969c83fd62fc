//! Random-weight GGUF files of each architecture, written through candle's GGUF writer with
//! the metadata keys and tensor names llama.cpp's converter gives real ones: tiny ones for the
//! tests, and one of Qwen3-0.6B's shape for the benchmark.

use candle_core::{
    Device, Tensor,
    quantized::{GgmlDType, QTensor, gguf_file},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::{cell::RefCell, path::Path};

/// The shape and parts of a random-weight model.
#[derive(Clone)]
pub struct Tiny {
    /// `general.architecture`.
    pub architecture: &'static str,
    /// Transformer layers.
    pub layers: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of each head.
    pub head_dim: usize,
    /// Width of the feed-forward layer.
    pub feed_forward: usize,
    /// Rows of the embeddings.
    pub vocab: usize,
    /// The context length the metadata gives.
    pub context: u32,
    /// Dimensions rotated per head.
    pub rope_dims: usize,
    /// `rope.freq_base`.
    pub rope_base: f32,
    /// Written as `attention.key_length` and `value_length`.
    pub key_length: bool,
    /// `attention.sliding_window`, in positions.
    pub sliding_window: Option<u32>,
    /// The attention and final logit soft-caps.
    pub softcaps: Option<(f32, f32)>,
    /// `attn_qkv` and a fused `ffn_up` (Phi-3), instead of separate matrices.
    pub fused: bool,
    /// Biases on q, k and v (Qwen 2).
    pub qkv_bias: bool,
    /// Per-head norms of q and k (Qwen 3, Gemma 3).
    pub qk_norms: bool,
    /// `post_attention_norm` and `post_ffw_norm` (Gemma).
    pub post_norms: bool,
    /// No `output.weight`: the embeddings are the output.
    pub tied: bool,
    /// `rope_freqs.weight`, one factor per rotated pair.
    pub rope_factors: Option<Vec<f32>>,
    /// The RNG seed of the weights.
    pub seed: u64,
}

impl Tiny {
    /// A two-layer llama with grouped keys and values.
    pub fn llama() -> Self {
        Tiny {
            architecture: "llama",
            layers: 2,
            hidden: 64,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            feed_forward: 128,
            vocab: 256,
            context: 8192,
            rope_dims: 16,
            rope_base: 10_000.0,
            key_length: false,
            sliding_window: None,
            softcaps: None,
            fused: false,
            qkv_bias: false,
            qk_norms: false,
            post_norms: false,
            tied: false,
            rope_factors: None,
            seed: 1,
        }
    }

    /// Qwen 2: biases on q, k and v, tied embeddings.
    pub fn qwen2() -> Self {
        Tiny {
            architecture: "qwen2",
            qkv_bias: true,
            tied: true,
            rope_base: 1_000_000.0,
            ..Self::llama()
        }
    }

    /// Qwen 3: per-head q/k norms, heads wider than `hidden / heads`.
    pub fn qwen3() -> Self {
        Tiny {
            architecture: "qwen3",
            head_dim: 32,
            rope_dims: 32,
            key_length: true,
            qk_norms: true,
            context: 40_960,
            rope_base: 1_000_000.0,
            ..Self::llama()
        }
    }

    /// Qwen3-0.6B's shape (28 layers, 1024 wide, 16 query and 8 key/value heads of 128, a
    /// 3072-wide feed-forward layer, tied embeddings) with `vocab` embeddings.
    pub fn qwen3_0_6b(vocab: usize) -> Self {
        Tiny {
            layers: 28,
            hidden: 1024,
            heads: 16,
            kv_heads: 8,
            head_dim: 128,
            feed_forward: 3072,
            vocab,
            rope_dims: 128,
            tied: true,
            ..Self::qwen3()
        }
    }

    /// Phi-3: fused q/k/v and gate/up.
    pub fn phi3() -> Self {
        Tiny {
            architecture: "phi3",
            kv_heads: 4,
            fused: true,
            ..Self::llama()
        }
    }

    /// Gemma 2: soft-capping, post-norms, scaled embeddings, sliding window on even layers.
    pub fn gemma2(window: u32) -> Self {
        Tiny {
            architecture: "gemma2",
            head_dim: 32,
            rope_dims: 32,
            key_length: true,
            sliding_window: Some(window),
            softcaps: Some((1.0, 10.0)),
            post_norms: true,
            tied: true,
            ..Self::llama()
        }
    }

    /// Gemma 3: q/k norms and six layers, the last global (the first five slide).
    pub fn gemma3(window: u32) -> Self {
        Tiny {
            architecture: "gemma3",
            layers: 6,
            qk_norms: true,
            softcaps: None,
            rope_base: 1_000_000.0,
            ..Self::gemma2(window)
        }
    }

    /// Writes the model to `path`: matrices in `format`, except the values (Q4_0, so that a
    /// layer's q, k and v mix formats where they are separate), vectors in f32.
    #[cfg(test)]
    pub fn write(&self, path: &Path, format: GgmlDType) {
        let values_in_q4_0 = |name: &str| match name.contains("attn_v.") {
            true => GgmlDType::Q4_0,
            false => format,
        };
        self.write_file_with(path, values_in_q4_0, Vec::new());
    }

    /// Writes the model to `path` with every matrix in `format` and vectors in f32, carrying
    /// the `tokenizer.*` metadata of `tokenizer` (whose vocabulary must be [`Tiny::vocab`]).
    pub fn write_with_tokenizer(
        &self,
        path: &Path,
        format: GgmlDType,
        tokenizer: &gguf_file::Content,
    ) {
        let metadata = tokenizer
            .metadata
            .iter()
            .filter(|(key, _)| key.starts_with("tokenizer."))
            .map(|(key, value)| (key.clone(), value.clone()));
        self.write_file_with(path, |_| format, metadata.collect());
    }

    /// Writes the model with each matrix in `format(name)` and `extra` metadata.
    fn write_file_with(
        &self,
        path: &Path,
        format: impl Fn(&str) -> GgmlDType,
        extra: Vec<(String, gguf_file::Value)>,
    ) {
        let arch = self.architecture;
        let u32_value = |v: usize| gguf_file::Value::U32(v as u32);
        let mut metadata: Vec<(String, gguf_file::Value)> = vec![
            (
                "general.architecture".into(),
                gguf_file::Value::String(arch.into()),
            ),
            ("general.dtype".into(), u32_value(0)),
            (format!("{arch}.block_count"), u32_value(self.layers)),
            (format!("{arch}.embedding_length"), u32_value(self.hidden)),
            (
                format!("{arch}.feed_forward_length"),
                u32_value(self.feed_forward),
            ),
            (
                format!("{arch}.attention.head_count"),
                u32_value(self.heads),
            ),
            (
                format!("{arch}.attention.head_count_kv"),
                u32_value(self.kv_heads),
            ),
            (
                format!("{arch}.context_length"),
                gguf_file::Value::U32(self.context),
            ),
            (
                format!("{arch}.rope.dimension_count"),
                u32_value(self.rope_dims),
            ),
            (
                format!("{arch}.rope.freq_base"),
                gguf_file::Value::F32(self.rope_base),
            ),
            (
                format!("{arch}.attention.layer_norm_rms_epsilon"),
                gguf_file::Value::F32(1e-6),
            ),
        ];
        if self.key_length {
            for key in ["key_length", "value_length"] {
                metadata.push((format!("{arch}.attention.{key}"), u32_value(self.head_dim)));
            }
        }
        if let Some(window) = self.sliding_window {
            metadata.push((
                format!("{arch}.attention.sliding_window"),
                gguf_file::Value::U32(window),
            ));
        }
        if let Some((attention, output)) = self.softcaps {
            metadata.push((
                format!("{arch}.attn_logit_softcapping"),
                gguf_file::Value::F32(attention),
            ));
            metadata.push((
                format!("{arch}.final_logit_softcapping"),
                gguf_file::Value::F32(output),
            ));
        }
        metadata.extend(extra);
        let quantized: Vec<(String, QTensor)> = self
            .tensors()
            .into_iter()
            .map(|(name, tensor)| {
                let dtype = match tensor.rank() {
                    1 => GgmlDType::F32,
                    _ => format(&name),
                };
                let quantized = QTensor::quantize(&tensor, dtype).unwrap();
                (name, quantized)
            })
            .collect();
        let metadata: Vec<(&str, &gguf_file::Value)> =
            metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensors: Vec<(&str, &QTensor)> =
            quantized.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut file = std::fs::File::create(path).unwrap();
        gguf_file::write(&mut file, &metadata, &tensors).unwrap();
    }

    /// Random tensors by GGUF name: matrices of about unit gain, norms near one, small biases.
    fn tensors(&self) -> Vec<(String, Tensor)> {
        let device = Device::Cpu;
        let rng = RefCell::new(StdRng::seed_from_u64(self.seed));
        // Normal values by Box-Muller, with mean `mean` and deviation `deviation`.
        let normal = |shape: &[usize], mean: f32, deviation: f32| {
            let count = shape.iter().product::<usize>();
            let mut rng = rng.borrow_mut();
            let values = (0..count)
                .map(|_| {
                    let (u, v) = (1.0 - rng.random::<f32>(), rng.random::<f32>());
                    let z = (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos();
                    mean + deviation * z
                })
                .collect::<Vec<_>>();
            Tensor::from_vec(values, shape, &device).unwrap()
        };
        let matrix =
            |rows: usize, cols: usize| normal(&[rows, cols], 0.0, 1.0 / (cols as f32).sqrt());
        let near_one = |n: usize| normal(&[n], 1.0, 0.2);
        let small = |n: usize| normal(&[n], 0.0, 0.2);
        let (q_dim, kv_dim) = (self.heads * self.head_dim, self.kv_heads * self.head_dim);
        let mut tensors = vec![
            (
                "token_embd.weight".to_string(),
                normal(&[self.vocab, self.hidden], 0.0, 1.0),
            ),
            ("output_norm.weight".into(), near_one(self.hidden)),
        ];
        if !self.tied {
            tensors.push(("output.weight".into(), matrix(self.vocab, self.hidden)));
        }
        if let Some(factors) = &self.rope_factors {
            tensors.push((
                "rope_freqs.weight".into(),
                Tensor::new(factors.as_slice(), &device).unwrap(),
            ));
        }
        for i in 0..self.layers {
            let mut add =
                |name: &str, tensor: Tensor| tensors.push((format!("blk.{i}.{name}"), tensor));
            add("attn_norm.weight", near_one(self.hidden));
            add("ffn_norm.weight", near_one(self.hidden));
            if self.fused {
                add("attn_qkv.weight", matrix(q_dim + 2 * kv_dim, self.hidden));
                add("ffn_up.weight", matrix(2 * self.feed_forward, self.hidden));
            } else {
                add("attn_q.weight", matrix(q_dim, self.hidden));
                add("attn_k.weight", matrix(kv_dim, self.hidden));
                add("attn_v.weight", matrix(kv_dim, self.hidden));
                add("ffn_gate.weight", matrix(self.feed_forward, self.hidden));
                add("ffn_up.weight", matrix(self.feed_forward, self.hidden));
            }
            add("attn_output.weight", matrix(self.hidden, q_dim));
            add("ffn_down.weight", matrix(self.hidden, self.feed_forward));
            if self.qkv_bias {
                add("attn_q.bias", small(q_dim));
                add("attn_k.bias", small(kv_dim));
                add("attn_v.bias", small(kv_dim));
            }
            if self.qk_norms {
                add("attn_q_norm.weight", near_one(self.head_dim));
                add("attn_k_norm.weight", near_one(self.head_dim));
            }
            if self.post_norms {
                add("post_attention_norm.weight", near_one(self.hidden));
                add("post_ffw_norm.weight", near_one(self.hidden));
            }
        }
        tensors
    }
}

/// The tensors of the GGUF file at `path`, dequantized, by name.
#[cfg(test)]
pub(crate) fn dequantized(path: &Path) -> std::collections::HashMap<String, Tensor> {
    let mut file = std::fs::File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    names
        .into_iter()
        .map(|name| {
            let tensor = content.tensor(&mut file, &name, &Device::Cpu).unwrap();
            (name, tensor.dequantize(&Device::Cpu).unwrap())
        })
        .collect()
}
