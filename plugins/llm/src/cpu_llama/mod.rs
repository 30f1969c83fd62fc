//! A llama network for CPUs, run on rbee-quant-cpu's SIMD kernels: every weight product is a
//! quantized product with activations quantized once per input (q, k and v share one product,
//! as do gate and up). One forward pass runs any number of sequences at once, each with its
//! own [`KvCache`]: their rows go through every weight product together (the kernels read each
//! weight block once per four rows), and only attention is per sequence. GPUs and formats the
//! kernels lack use candle's models.

mod hparams;
mod math;
mod tensors;

use candle_core::quantized::gguf_file::Content;
use hparams::Hyperparameters;
use math::{AttentionShape, Rope};
use rayon::prelude::*;
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
}

/// One sequence's keys and values, layer by layer: what a forward pass over its earlier
/// tokens left for the tokens after them.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
}

/// One layer's part of a [`KvCache`].
#[derive(Clone, Debug)]
struct LayerCache {
    /// The cached keys, one run of `head_dim`-wide rows per key/value head, so that attention
    /// reads each head's keys as one sequential stream.
    keys: Vec<Vec<f32>>,
    /// The cached values, laid out as the keys.
    values: Vec<Vec<f32>>,
    /// Values per cached row (`head_dim`).
    width: usize,
}

impl KvCache {
    /// The positions held.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| Some(l.keys.first()?.len() / l.width))
            .unwrap_or(0)
    }

    /// A copy of the first `positions` positions.
    pub fn prefix(&self, positions: usize) -> KvCache {
        let cut = |rows: &Vec<Vec<f32>>, width: usize| {
            rows.iter()
                .map(|r| r[..(positions * width).min(r.len())].to_vec())
                .collect()
        };
        KvCache {
            layers: self
                .layers
                .iter()
                .map(|l| LayerCache {
                    keys: cut(&l.keys, l.width),
                    values: cut(&l.values, l.width),
                    width: l.width,
                })
                .collect(),
        }
    }
}

/// One sequence's part of a batched forward pass: the tokens it feeds at the positions after
/// those its cache holds.
pub struct Segment<'a> {
    /// The tokens to feed.
    pub tokens: &'a [u32],
    /// The sequence's cache; the pass appends the tokens' keys and values.
    pub cache: &'a mut KvCache,
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

    /// Bytes of keys and values one cached position takes.
    pub fn kv_bytes_per_token(&self) -> usize {
        2 * self.hp.layers * self.hp.kv_dim() * std::mem::size_of::<f32>()
    }

    /// An empty cache for a new sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: (0..self.hp.layers)
                .map(|_| LayerCache {
                    keys: vec![Vec::new(); self.hp.kv_heads],
                    values: vec![Vec::new(); self.hp.kv_heads],
                    width: self.hp.head_dim,
                })
                .collect(),
        }
    }

    /// Feeds `tokens` to one sequence and returns the logits of the last one.
    #[cfg(test)]
    pub fn forward(&mut self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, String> {
        let mut logits = self.forward_batch(&mut [Segment { tokens, cache }])?;
        Ok(logits.remove(0))
    }

    /// Feeds every segment's tokens to its sequence in one pass and returns, per segment, the
    /// logits of its last token. A sequence's results do not depend on the other segments.
    ///
    /// The pass runs on one of rayon's workers, so that its parallel products split work with
    /// the other workers directly instead of queueing each product from outside the pool and
    /// sleeping until it is done (about 150 times per token).
    pub fn forward_batch(&mut self, segments: &mut [Segment<'_>]) -> Result<Vec<Vec<f32>>, String> {
        rayon::scope(|_| self.forward_in_pool(segments))
    }

    fn forward_in_pool(&mut self, segments: &mut [Segment<'_>]) -> Result<Vec<Vec<f32>>, String> {
        let hp = &self.hp;
        let hidden = hp.hidden;
        let vocab = self.embedding.rows();
        for segment in segments.iter() {
            if segment.tokens.is_empty() {
                return Err("no tokens to feed".into());
            }
            if let Some(&bad) = segment.tokens.iter().find(|&&t| t as usize >= vocab) {
                return Err(format!("token {bad} is outside the vocabulary of {vocab}"));
            }
            if segment.cache.layers.len() != hp.layers {
                return Err("the cache was not made for this model".into());
            }
        }
        if segments.is_empty() {
            return Ok(Vec::new());
        }
        let s = &mut self.scratch;
        let tokens = segments.iter().flat_map(|segment| segment.tokens);
        s.residual.resize(tokens.clone().count() * hidden, 0.0);
        for (row, &token) in s.residual.chunks_exact_mut(hidden).zip(tokens) {
            self.embedding.dequantize_row(token as usize, row);
        }
        let firsts: Vec<usize> = segments.iter().map(|s| s.cache.len()).collect();
        for (index, layer) in self.layers.iter().enumerate() {
            layer.forward(hp, &mut self.rope, s, (segments, &firsts), index);
        }
        let mut last_row = 0;
        let last_rows: Vec<usize> = segments
            .iter()
            .map(|segment| {
                last_row += segment.tokens.len();
                last_row - 1
            })
            .collect();
        s.attended.resize(segments.len() * hidden, 0.0);
        for (out, &row) in s.attended.chunks_exact_mut(hidden).zip(&last_rows) {
            math::rms_norm(
                &s.residual[row * hidden..][..hidden],
                &self.output_norm,
                hp.rms_eps,
                out,
            );
        }
        s.quantized.quantize(&s.attended, segments.len(), hidden);
        s.logits.resize(segments.len() * vocab, 0.0);
        self.output
            .as_ref()
            .unwrap_or(&self.embedding)
            .matmul(&s.quantized, &mut s.logits);
        Ok(s.logits.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
    }
}

impl Layer {
    /// Runs the layer over the rows of every segment (stacked in `s.residual`; each segment's
    /// first position in `firsts`), appending each segment's keys and values to layer `index`
    /// of its cache.
    fn forward(
        &self,
        hp: &Hyperparameters,
        rope: &mut Rope,
        s: &mut Scratch,
        (segments, firsts): (&mut [Segment<'_>], &[usize]),
        index: usize,
    ) {
        let (hidden, kv_dim, head_dim) = (hp.hidden, hp.kv_dim(), hp.head_dim);
        let m = s.residual.len() / hidden;

        s.normed.resize(m * hidden, 0.0);
        math::rms_norm(&s.residual, &self.attention_norm, hp.rms_eps, &mut s.normed);
        s.quantized.quantize(&s.normed, m, hidden);
        let qkv_width = self.qkv.rows();
        s.qkv.resize(m * qkv_width, 0.0);
        self.qkv.matmul(&s.quantized, &mut s.qkv);

        s.queries.resize(m * hidden, 0.0);
        let mut rows = s
            .qkv
            .chunks_exact_mut(qkv_width)
            .zip(s.queries.chunks_exact_mut(hidden));
        for (segment, &first) in segments.iter_mut().zip(firsts) {
            let cache = &mut segment.cache.layers[index];
            for (position, (row, queries)) in
                (first..).zip(rows.by_ref().take(segment.tokens.len()))
            {
                let (q, kv) = row.split_at_mut(hidden);
                let (k, v) = kv.split_at_mut(kv_dim);
                rope.rotate(q, head_dim, position);
                rope.rotate(k, head_dim, position);
                queries.copy_from_slice(q);
                for (cache, k) in cache.keys.iter_mut().zip(k.chunks_exact(head_dim)) {
                    cache.extend_from_slice(k);
                }
                for (cache, v) in cache.values.iter_mut().zip(v.chunks_exact(head_dim)) {
                    cache.extend_from_slice(v);
                }
            }
        }
        s.attended.resize(m * hidden, 0.0);
        let mut outputs = Vec::with_capacity(segments.len());
        let (mut queries, mut attended) = (&s.queries[..], &mut s.attended[..]);
        for (segment, &first) in segments.iter().zip(firsts) {
            let rows = segment.tokens.len() * hidden;
            let (q, rest_q) = queries.split_at(rows);
            let (out, rest_out) = attended.split_at_mut(rows);
            (queries, attended) = (rest_q, rest_out);
            let shape = AttentionShape {
                heads: hp.heads,
                kv_heads: hp.kv_heads,
                head_dim,
                first,
            };
            outputs.push((shape, q, &segment.cache.layers[index], out));
        }
        if outputs.len() > 1 {
            outputs.par_iter_mut().for_each(attend);
        } else {
            outputs.iter_mut().for_each(attend);
        }
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

/// One segment's attention: its shape, queries, cache layer and output rows.
type AttentionPart<'a> = (AttentionShape, &'a [f32], &'a LayerCache, &'a mut [f32]);

fn attend((shape, queries, cache, out): &mut AttentionPart<'_>) {
    math::attention(shape, queries, &cache.keys, &cache.values, out);
}

fn add_into(into: &mut [f32], add: &[f32]) {
    for (a, b) in into.iter_mut().zip(add) {
        *a += b;
    }
}

#[cfg(test)]
mod tests;
