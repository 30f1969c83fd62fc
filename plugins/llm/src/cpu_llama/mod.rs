//! A llama network for CPUs, run on rbee-quant-cpu's SIMD kernels: every weight product is a
//! quantized product with activations quantized once per input (q, k and v share one product,
//! as do gate and up), the key/value cache grows in place, and decoding a token allocates
//! nothing but the copy of its logits it returns. GPUs and formats the kernels lack use
//! candle's models.

mod hparams;
mod math;
mod tensors;

use candle_core::quantized::gguf_file::Content;
use hparams::Hyperparameters;
use math::{AttentionShape, Rope};
use rbee_quant_cpu::{QuantMatrix, QuantizedRows};
use std::io::{Read, Seek};
use tensors::{TensorReader, block_format};

/// Whether `content` is a llama network this implementation runs: all its weight matrices are
/// in a format the CPU kernels have.
pub fn supports(content: &Content) -> bool {
    let Ok(hp) = Hyperparameters::from_gguf(content) else {
        return false;
    };
    let format_ok = |name: &str| {
        content
            .tensor_infos
            .get(name)
            .is_some_and(|info| block_format(info.ggml_dtype).is_some())
    };
    let output_ok = if content.tensor_infos.contains_key("output.weight") {
        format_ok("output.weight")
    } else {
        true
    };
    format_ok("token_embd.weight")
        && output_ok
        && (0..hp.layers).all(|i| {
            [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
            ]
            .iter()
            .all(|t| format_ok(&format!("blk.{i}.{t}.weight")))
        })
}

struct Layer {
    attention_norm: Vec<f32>,
    qkv: QuantMatrix,
    attention_output: QuantMatrix,
    ffn_norm: Vec<f32>,
    gate_up: QuantMatrix,
    down: QuantMatrix,
    /// The cached keys, one run of `head_dim`-wide rows per key/value head, so that attention
    /// reads each head's keys as one sequential stream.
    keys: Vec<Vec<f32>>,
    /// The cached values, laid out as the keys.
    values: Vec<Vec<f32>>,
}

/// Buffers reused from one forward pass to the next.
#[derive(Default)]
struct Scratch {
    residual: Vec<f32>,
    normed: Vec<f32>,
    qkv: Vec<f32>,
    queries: Vec<f32>,
    attended: Vec<f32>,
    projected: Vec<f32>,
    gate_up: Vec<f32>,
    activated: Vec<f32>,
    logits: Vec<f32>,
    quantized: QuantizedRows,
}

/// A loaded llama network with its key/value cache.
pub struct CpuLlama {
    hp: Hyperparameters,
    embedding: QuantMatrix,
    output: Option<QuantMatrix>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    rope: Rope,
    scratch: Scratch,
}

impl CpuLlama {
    /// Reads the network from an open GGUF file whose `content` [`supports`] accepted.
    pub fn load<R: Read + Seek>(content: &Content, file: &mut R) -> Result<Self, String> {
        let hp = Hyperparameters::from_gguf(content)?;
        let mut tensors = TensorReader { content, file };
        let rope_factors = if tensors.has("rope_freqs.weight") {
            Some(tensors.vector("rope_freqs.weight")?)
        } else {
            None
        };
        let mut layers = Vec::with_capacity(hp.layers);
        for i in 0..hp.layers {
            let mut matrix = |name: &str| tensors.matrix(&format!("blk.{i}.{name}.weight"));
            let stack_error = |e| format!("layer {i}: {e}");
            let qkv = QuantMatrix::stack(vec![
                matrix("attn_q")?,
                matrix("attn_k")?,
                matrix("attn_v")?,
            ])
            .map_err(stack_error)?;
            let gate_up = QuantMatrix::stack(vec![matrix("ffn_gate")?, matrix("ffn_up")?])
                .map_err(stack_error)?;
            let attention_output = matrix("attn_output")?;
            let down = matrix("ffn_down")?;
            layers.push(Layer {
                attention_norm: tensors.vector(&format!("blk.{i}.attn_norm.weight"))?,
                qkv,
                attention_output,
                ffn_norm: tensors.vector(&format!("blk.{i}.ffn_norm.weight"))?,
                gate_up,
                down,
                keys: vec![Vec::new(); hp.kv_heads],
                values: vec![Vec::new(); hp.kv_heads],
            });
        }
        let output = if tensors.has("output.weight") {
            Some(tensors.matrix("output.weight")?)
        } else {
            None
        };
        Ok(CpuLlama {
            rope: Rope::new(hp.head_dim, hp.rope_base, rope_factors.as_deref()),
            embedding: tensors.matrix("token_embd.weight")?,
            output,
            output_norm: tensors.vector("output_norm.weight")?,
            layers,
            hp,
            scratch: Scratch::default(),
        })
    }

    /// The context length the model was trained for.
    pub fn context_len(&self) -> usize {
        self.hp.context
    }

    /// Feeds `tokens` at positions `position..` and returns the logits of the last one. The
    /// cache must hold exactly `position` earlier positions (0 after [`CpuLlama::reset`]).
    ///
    /// The pass runs on one of rayon's workers, so that its parallel products split work with
    /// the other workers directly instead of queueing each product from outside the pool and
    /// sleeping until it is done (about 150 times per token).
    pub fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, String> {
        rayon::scope(|_| self.forward_in_pool(tokens, position))
    }

    fn forward_in_pool(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, String> {
        let hp = &self.hp;
        let (m, hidden) = (tokens.len(), hp.hidden);
        let vocab = self.embedding.rows();
        if m == 0 {
            return Err("no tokens to feed".into());
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(format!("token {bad} is outside the vocabulary of {vocab}"));
        }
        if self
            .layers
            .first()
            .is_some_and(|l| l.keys[0].len() != position * hp.head_dim)
        {
            return Err(format!("the cache does not hold {position} positions"));
        }
        let s = &mut self.scratch;
        s.residual.resize(m * hidden, 0.0);
        for (row, &token) in s.residual.chunks_exact_mut(hidden).zip(tokens) {
            self.embedding.dequantize_row(token as usize, row);
        }
        for layer in &mut self.layers {
            layer.forward(hp, &mut self.rope, s, position);
        }
        let last = &s.residual[(m - 1) * hidden..];
        s.normed.resize(hidden, 0.0);
        math::rms_norm(last, &self.output_norm, hp.rms_eps, &mut s.normed);
        s.quantized.quantize(&s.normed, 1, hidden);
        s.logits.resize(vocab, 0.0);
        self.output
            .as_ref()
            .unwrap_or(&self.embedding)
            .matmul(&s.quantized, &mut s.logits);
        Ok(s.logits.clone())
    }

    /// Empties the key/value cache (keeping its memory), so the next call starts at 0.
    pub fn reset(&mut self) {
        for layer in &mut self.layers {
            layer.keys.iter_mut().for_each(Vec::clear);
            layer.values.iter_mut().for_each(Vec::clear);
        }
    }
}

impl Layer {
    fn forward(&mut self, hp: &Hyperparameters, rope: &mut Rope, s: &mut Scratch, first: usize) {
        let (hidden, kv_dim, head_dim) = (hp.hidden, hp.kv_dim(), hp.head_dim);
        let m = s.residual.len() / hidden;

        s.normed.resize(m * hidden, 0.0);
        math::rms_norm(&s.residual, &self.attention_norm, hp.rms_eps, &mut s.normed);
        s.quantized.quantize(&s.normed, m, hidden);
        let qkv_width = self.qkv.rows();
        s.qkv.resize(m * qkv_width, 0.0);
        self.qkv.matmul(&s.quantized, &mut s.qkv);

        s.queries.resize(m * hidden, 0.0);
        for (i, (row, queries)) in s
            .qkv
            .chunks_exact_mut(qkv_width)
            .zip(s.queries.chunks_exact_mut(hidden))
            .enumerate()
        {
            let (q, kv) = row.split_at_mut(hidden);
            let (k, v) = kv.split_at_mut(kv_dim);
            rope.rotate(q, head_dim, first + i);
            rope.rotate(k, head_dim, first + i);
            queries.copy_from_slice(q);
            for (cache, k) in self.keys.iter_mut().zip(k.chunks_exact(head_dim)) {
                cache.extend_from_slice(k);
            }
            for (cache, v) in self.values.iter_mut().zip(v.chunks_exact(head_dim)) {
                cache.extend_from_slice(v);
            }
        }
        s.attended.resize(m * hidden, 0.0);
        let shape = AttentionShape {
            heads: hp.heads,
            kv_heads: hp.kv_heads,
            head_dim,
            first,
        };
        math::attention(
            &shape,
            &s.queries,
            &self.keys,
            &self.values,
            &mut s.attended,
        );
        s.quantized.quantize(&s.attended, m, hidden);
        s.projected.resize(m * hidden, 0.0);
        self.attention_output.matmul(&s.quantized, &mut s.projected);
        add_into(&mut s.residual, &s.projected);

        math::rms_norm(&s.residual, &self.ffn_norm, hp.rms_eps, &mut s.normed);
        s.quantized.quantize(&s.normed, m, hidden);
        s.gate_up.resize(m * 2 * hp.feed_forward, 0.0);
        self.gate_up.matmul(&s.quantized, &mut s.gate_up);
        s.activated.resize(m * hp.feed_forward, 0.0);
        math::silu_gate(&s.gate_up, hp.feed_forward, &mut s.activated);
        s.quantized.quantize(&s.activated, m, hp.feed_forward);
        self.down.matmul(&s.quantized, &mut s.projected);
        add_into(&mut s.residual, &s.projected);
    }
}

fn add_into(into: &mut [f32], add: &[f32]) {
    for (a, b) in into.iter_mut().zip(add) {
        *a += b;
    }
}

#[cfg(test)]
mod tests;
