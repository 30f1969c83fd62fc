//! The f32 arithmetic between the quantized products: norms, rotary embeddings, attention and
//! the gated activation, written so that the compiler vectorises the inner loops.

use rayon::prelude::*;

/// Lanes of the partial sums in [`dot`]: independent accumulators let the loop vectorise.
const LANES: usize = 8;

/// `Σ a·b`.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut partial = [0f32; LANES];
    let (a_body, a_tail) = a.split_at(a.len() - a.len() % LANES);
    let (b_body, b_tail) = b.split_at(a_body.len());
    for (a, b) in a_body.chunks_exact(LANES).zip(b_body.chunks_exact(LANES)) {
        for lane in 0..LANES {
            partial[lane] += a[lane] * b[lane];
        }
    }
    partial.iter().sum::<f32>() + a_tail.iter().zip(b_tail).map(|(a, b)| a * b).sum::<f32>()
}

/// `out += scale * x`.
fn add_scaled(out: &mut [f32], scale: f32, x: &[f32]) {
    for (o, x) in out.iter_mut().zip(x) {
        *o += scale * x;
    }
}

/// `out = x / rms(x) * weight`, row by row.
pub(super) fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let width = weight.len();
    for (x, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let mean_square = dot(x, x) / width as f32;
        let inverse = 1.0 / (mean_square + eps).sqrt();
        for ((out, x), w) in out.iter_mut().zip(x).zip(weight) {
            *out = x * inverse * w;
        }
    }
}

/// Rotary position embedding angles, one (cos, sin) pair per dimension pair and position.
pub(super) struct Rope {
    inverse_frequencies: Vec<f32>,
    table: Vec<(f32, f32)>,
}

impl Rope {
    /// Frequencies `base^(-2j/head_dim)`, each divided by its factor when the model has them.
    pub fn new(head_dim: usize, base: f32, factors: Option<&[f32]>) -> Self {
        let inverse_frequencies = (0..head_dim / 2)
            .map(|j| {
                let factor = factors.and_then(|f| f.get(j)).copied().unwrap_or(1.0);
                base.powf(-2.0 * j as f32 / head_dim as f32) / factor
            })
            .collect();
        Rope {
            inverse_frequencies,
            table: Vec::new(),
        }
    }

    /// Rotates each head of `row` (heads of adjacent pairs, as GGUF llama stores them) to
    /// `position`.
    pub fn rotate(&mut self, row: &mut [f32], head_dim: usize, position: usize) {
        let pairs = self.inverse_frequencies.len();
        while self.table.len() < (position + 1) * pairs {
            let p = (self.table.len() / pairs) as f32;
            let angles = self.inverse_frequencies.iter().map(|f| (p * f).sin_cos());
            self.table.extend(angles.map(|(sin, cos)| (cos, sin)));
        }
        let angles = &self.table[position * pairs..(position + 1) * pairs];
        for head in row.chunks_exact_mut(head_dim) {
            for (pair, &(cos, sin)) in head.chunks_exact_mut(2).zip(angles) {
                let (x0, x1) = (pair[0], pair[1]);
                pair[0] = x0 * cos - x1 * sin;
                pair[1] = x0 * sin + x1 * cos;
            }
        }
    }
}

/// The shape of one attention call.
pub(super) struct AttentionShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Absolute position of the first query row.
    pub first: usize,
}

/// Causal attention of `queries` (rows of `heads * head_dim`) over the cached `keys` and
/// `values` (rows of `kv_heads * head_dim`, positions `0..first + rows`), into `out`.
pub(super) fn attention(
    shape: &AttentionShape,
    queries: &[f32],
    keys: &[f32],
    values: &[f32],
    out: &mut [f32],
) {
    let AttentionShape {
        heads,
        kv_heads,
        head_dim,
        first,
    } = *shape;
    let kv_dim = kv_heads * head_dim;
    let group = heads / kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let one_head = |(index, out): (usize, &mut [f32])| {
        let (row, head) = (index / heads, index % heads);
        let query = &queries[index * head_dim..(index + 1) * head_dim];
        let offset = (head / group) * head_dim;
        let positions = first + row + 1;
        let mut weights: Vec<f32> = (0..positions)
            .map(|t| scale * dot(query, &keys[t * kv_dim + offset..][..head_dim]))
            .collect();
        let max = weights.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for w in &mut weights {
            *w = (*w - max).exp();
            total += *w;
        }
        out.fill(0.0);
        for (t, w) in weights.iter().enumerate() {
            add_scaled(out, w / total, &values[t * kv_dim + offset..][..head_dim]);
        }
    };
    let rows = queries.len() / (heads * head_dim);
    if rows * (first + rows) * heads < PARALLEL_ATTENTION_WORK {
        out.chunks_exact_mut(head_dim)
            .enumerate()
            .for_each(one_head);
    } else {
        out.par_chunks_exact_mut(head_dim)
            .enumerate()
            .for_each(one_head);
    }
}

/// Below this many query-key pairs, attention runs on the calling thread: splitting it would
/// cost more than it saves.
const PARALLEL_ATTENTION_WORK: usize = 2 * 1024;

/// `out = silu(gate) * up` for rows laid out as `[gate | up]`.
pub(super) fn silu_gate(gate_up: &[f32], width: usize, out: &mut [f32]) {
    for (gate_up, out) in gate_up
        .chunks_exact(2 * width)
        .zip(out.chunks_exact_mut(width))
    {
        let (gate, up) = gate_up.split_at(width);
        for ((out, g), u) in out.iter_mut().zip(gate).zip(up) {
            *out = g / (1.0 + (-g).exp()) * u;
        }
    }
}
