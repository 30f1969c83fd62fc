//! A decoder transformer for CPUs, run on rbee-quant-cpu's SIMD kernels: llama, Qwen 2 and 3,
//! Gemma 2 and 3 and Phi-3, their differences read from the file as data ([`hparams`] for
//! the metadata, [`layer`] for which tensors a layer has). Every weight product is a quantized
//! product with activations quantized once per input (q, k and v share one product, as do
//! gate and up). One forward pass runs any number of sequences at once, each with its own
//! [`KvCache`]: their rows go through every weight product together (the kernels read each
//! weight block once per four rows), and only attention is per sequence. GPUs and formats the
//! kernels lack use candle's models.

mod attention;
mod awake;
mod half_attention;
mod hparams;
mod kv_cache;
mod layer;
mod math;
mod tensors;

pub use hparams::ARCHITECTURES;
pub use kv_cache::{KvCache, KvFormat};

use attention::{AttentionShape, Scores};
use candle_core::quantized::gguf_file::Content;
use hparams::Hyperparameters;
use layer::{Layer, LayerShape};
use math::Rope;
use rayon::prelude::*;
use rbee_quant_cpu::{QuantMatrix, QuantizedRows};
use std::io::{Read, Seek};
use tensors::TensorReader;

/// Whether this network runs `content`: an architecture it knows, metadata it understands,
/// only tensors it computes with, and every weight matrix in a format the CPU kernels have.
pub fn supports(content: &Content) -> bool {
    check(content).is_ok()
}

/// [`supports`], with `Err` saying why not.
pub fn check(content: &Content) -> Result<(), String> {
    Hyperparameters::from_gguf(content)?;
    layer::check_tensors(content)
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
    /// The outputs of a product's parts in different formats.
    parts: Vec<f32>,
    /// One row's queries or keys before their norm.
    unnormed: Vec<f32>,
    quantized: QuantizedRows,
}

/// A loaded decoder network, and the buffers of its forward passes (the key/value caches are
/// the sequences').
pub struct CpuTransformer {
    hp: Hyperparameters,
    embedding: QuantMatrix,
    output: Option<QuantMatrix>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    /// Rotary embeddings of global layers and of sliding-window layers.
    ropes: (Rope, Rope),
    scratch: Scratch,
    /// How new caches store keys and values.
    kv_format: KvFormat,
}

impl CpuTransformer {
    /// Reads the network from an open GGUF file whose `content` [`supports`] accepted.
    pub fn load<R: Read + Seek>(content: &Content, file: &mut R) -> Result<Self, String> {
        let hp = Hyperparameters::from_gguf(content)?;
        let mut tensors = TensorReader { content, file };
        let rope_factors = if tensors.has("rope_freqs.weight") {
            Some(tensors.vector("rope_freqs.weight")?)
        } else {
            None
        };
        let shape = LayerShape {
            hidden: hp.hidden,
            head_dim: hp.head_dim,
            qkv: hp.q_dim() + 2 * hp.kv_dim(),
            q_dim: hp.q_dim(),
            feed_forward: hp.feed_forward,
        };
        let layers = (0..hp.layers)
            .map(|i| Layer::load(&mut tensors, i, &shape))
            .collect::<Result<Vec<_>, _>>()?;
        let output = if tensors.has("output.weight") {
            Some(tensors.matrix("output.weight")?)
        } else {
            None
        };
        let embedding = tensors.matrix("token_embd.weight")?;
        let output_norm = tensors.vector("output_norm.weight")?;
        let vocab = embedding.rows();
        let fits = |m: &QuantMatrix| m.cols() == hp.hidden && m.rows() == vocab;
        if !fits(&embedding) || !output.as_ref().is_none_or(fits) || output_norm.len() != hp.hidden
        {
            return Err("the embeddings or the output do not fit the metadata".into());
        }
        let factors = rope_factors.as_deref();
        Ok(CpuTransformer {
            ropes: (
                Rope::new(hp.rope, factors),
                Rope::new(hp.local_rope, factors),
            ),
            embedding,
            output,
            output_norm,
            layers,
            hp,
            scratch: Scratch::default(),
            kv_format: KvFormat::default(),
        })
    }

    /// Stores the keys and values of caches made from now on in `format`.
    pub fn set_kv_format(&mut self, format: KvFormat) {
        self.kv_format = format;
    }

    /// The context length the model was trained for.
    pub fn context_len(&self) -> usize {
        self.hp.context
    }

    /// Bytes of keys and values one cached position takes.
    pub fn kv_bytes_per_token(&self) -> usize {
        2 * self.hp.layers * self.hp.kv_dim() * self.kv_format.bytes()
    }

    /// An empty cache for a new sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(
            self.hp.layers,
            self.hp.kv_heads,
            self.hp.head_dim,
            self.kv_format,
        )
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
    /// sleeping until it is done (about 150 times per token). In a pass of a few rows (decoding),
    /// whose products are short, the other workers stay awake for the pass ([`awake`]).
    pub fn forward_batch(&mut self, segments: &mut [Segment<'_>]) -> Result<Vec<Vec<f32>>, String> {
        let rows: usize = segments.iter().map(|s| s.tokens.len()).sum();
        rayon::scope(|_| match rows <= awake::FEW_ROWS {
            true => awake::with_helpers_awake(|| self.forward_in_pool(segments)),
            false => self.forward_in_pool(segments),
        })
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
            if let Some(scale) = hp.embedding_scale {
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
        let firsts: Vec<usize> = segments.iter().map(|s| s.cache.len()).collect();
        for (index, layer) in self.layers.iter().enumerate() {
            let rope = match hp.window(index) {
                Some(_) => &mut self.ropes.1,
                None => &mut self.ropes.0,
            };
            layer.forward(hp, rope, s, (segments, &firsts), index);
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
        let output = self.output.as_ref().unwrap_or(&self.embedding);
        let per = output.activation_scales();
        s.quantized
            .quantize(&s.attended, segments.len(), hidden, per);
        s.logits.resize(segments.len() * vocab, 0.0);
        output.matmul(&s.quantized, &mut s.logits);
        if let Some(cap) = hp.output_softcap {
            math::soft_cap(&mut s.logits, cap);
        }
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
        let (hidden, q_dim, kv_dim, head_dim) = (hp.hidden, hp.q_dim(), hp.kv_dim(), hp.head_dim);
        let m = s.residual.len() / hidden;

        s.normed.resize(m * hidden, 0.0);
        math::rms_norm(&s.residual, &self.attention_norm, hp.rms_eps, &mut s.normed);
        let per = self.qkv.activation_scales();
        s.quantized.quantize(&s.normed, m, hidden, per);
        let qkv_width = self.qkv.rows();
        s.qkv.resize(m * qkv_width, 0.0);
        self.qkv.matmul(&s.quantized, &mut s.qkv, &mut s.parts);
        if let Some(bias) = &self.qkv_bias {
            s.qkv
                .chunks_exact_mut(qkv_width)
                .for_each(|row| add_into(row, bias));
        }
        if let Some((q_norm, k_norm)) = &self.qk_norms {
            for row in s.qkv.chunks_exact_mut(qkv_width) {
                let (q, k) = row[..q_dim + kv_dim].split_at_mut(q_dim);
                for (x, norm) in [(q, q_norm), (k, k_norm)] {
                    s.unnormed.clear();
                    s.unnormed.extend_from_slice(x);
                    math::rms_norm(&s.unnormed, norm, hp.rms_eps, x);
                }
            }
        }

        s.queries.resize(m * q_dim, 0.0);
        let mut rows = s
            .qkv
            .chunks_exact_mut(qkv_width)
            .zip(s.queries.chunks_exact_mut(q_dim));
        for (segment, &first) in segments.iter_mut().zip(firsts) {
            let cache = &mut segment.cache.layers[index];
            for (position, (row, queries)) in
                (first..).zip(rows.by_ref().take(segment.tokens.len()))
            {
                let (q, kv) = row.split_at_mut(q_dim);
                let (k, v) = kv.split_at_mut(kv_dim);
                rope.rotate(q, head_dim, position);
                rope.rotate(k, head_dim, position);
                queries.copy_from_slice(q);
                for (cache, k) in cache.keys.iter_mut().zip(k.chunks_exact(head_dim)) {
                    cache.extend(k);
                }
                for (cache, v) in cache.values.iter_mut().zip(v.chunks_exact(head_dim)) {
                    cache.extend(v);
                }
            }
        }
        s.attended.resize(m * q_dim, 0.0);
        let scores = Scores {
            scale: hp.attention_scale,
            softcap: hp.attention_softcap,
            window: hp.window(index),
        };
        let mut outputs = Vec::with_capacity(segments.len());
        let (mut queries, mut attended) = (&s.queries[..], &mut s.attended[..]);
        for (segment, &first) in segments.iter().zip(firsts) {
            let rows = segment.tokens.len() * q_dim;
            let (q, rest_q) = queries.split_at(rows);
            let (out, rest_out) = attended.split_at_mut(rows);
            (queries, attended) = (rest_q, rest_out);
            let shape = AttentionShape {
                heads: hp.heads,
                kv_heads: hp.kv_heads,
                head_dim,
                first,
                scores,
            };
            outputs.push((shape, q, &segment.cache.layers[index], out));
        }
        if outputs.len() > 1 {
            outputs.par_iter_mut().for_each(attend);
        } else {
            outputs.iter_mut().for_each(attend);
        }
        let per = self.attention_output.activation_scales();
        s.quantized.quantize(&s.attended, m, q_dim, per);
        s.projected.resize(m * hidden, 0.0);
        self.attention_output.matmul(&s.quantized, &mut s.projected);
        add_normed(s, self.post_attention_norm.as_deref(), hp.rms_eps);

        math::rms_norm(&s.residual, &self.ffn_norm, hp.rms_eps, &mut s.normed);
        let per = self.gate_up.activation_scales();
        s.quantized.quantize(&s.normed, m, hidden, per);
        s.gate_up.resize(m * 2 * hp.feed_forward, 0.0);
        self.gate_up
            .matmul(&s.quantized, &mut s.gate_up, &mut s.parts);
        s.activated.resize(m * hp.feed_forward, 0.0);
        math::gated(&s.gate_up, hp.feed_forward, hp.activation, &mut s.activated);
        let per = self.down.activation_scales();
        s.quantized.quantize(&s.activated, m, hp.feed_forward, per);
        self.down.matmul(&s.quantized, &mut s.projected);
        add_normed(s, self.post_ffn_norm.as_deref(), hp.rms_eps);
    }
}

/// Adds `s.projected` to the residual, through `norm` when the layer has one there.
fn add_normed(s: &mut Scratch, norm: Option<&[f32]>, eps: f32) {
    match norm {
        Some(norm) => {
            math::rms_norm(&s.projected, norm, eps, &mut s.normed);
            add_into(&mut s.residual, &s.normed);
        }
        None => add_into(&mut s.residual, &s.projected),
    }
}

/// One segment's attention: its shape, queries, cache layer and output rows.
type AttentionPart<'a> = (
    AttentionShape,
    &'a [f32],
    &'a kv_cache::LayerCache,
    &'a mut [f32],
);

fn attend((shape, queries, cache, out): &mut AttentionPart<'_>) {
    attention::attention(shape, queries, &cache.keys, &cache.values, out);
}

fn add_into(into: &mut [f32], add: &[f32]) {
    for (a, b) in into.iter_mut().zip(add) {
        *a += b;
    }
}

#[cfg(test)]
mod architecture_tests;
#[cfg(test)]
mod tests;
#[cfg(any(test, feature = "test-support"))]
pub mod tiny_gguf;
