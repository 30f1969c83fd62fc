//! The f32 arithmetic between the quantized products: norms, rotary embeddings, attention and
//! the gated activation, written so that the compiler vectorises the inner loops.

use super::{
    half_attention,
    hparams::{Activation, RopeConfig, RopeStyle},
    kv_cache::Rows,
};
use rayon::prelude::*;
use rbee_vector_math::exp;
use std::cell::RefCell;

/// Defines a function whose body is compiled twice on x86-64: for AVX2 and FMA, taken at run
/// time when the CPU has them, and for the build's target otherwise. A plugin built for
/// baseline x86-64 then still runs these loops eight floats wide. What the body calls is
/// `#[inline(always)]`, so that it is compiled into both (a closure or a call that is not
/// inlined loses the features).
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                // SAFETY: the features were just detected.
                return unsafe { avx2($($arg),*) };
            }
            body($($arg),*)
        }
    };
}

/// Lanes of the partial sums in [`dot`]: independent accumulators let the loop vectorise.
const LANES: usize = 8;

/// `Σ a·b`.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// Cached positions taken together by [`scores`] and [`weighted_sum`]: each reads a query or
/// an output row once per this many key or value rows, and keeps that many sums in flight.
const STEP: usize = 4;

/// `weights[t] = scale · query·key(t)` for the `head_dim`-wide rows of `keys`, [`STEP`] rows
/// at a time: one query load serves them all, and their sums do not wait on each other. Each
/// sum is added up as [`dot`] adds it, so the scores are the same.
#[inline(always)]
fn scores(query: &[f32], keys: &[f32], scale: f32, weights: &mut [f32]) {
    let head_dim = query.len();
    let mut done = 0;
    if head_dim.is_multiple_of(LANES) {
        let blocks = keys.chunks_exact(STEP * head_dim);
        for (block, out) in blocks.zip(weights.chunks_exact_mut(STEP)) {
            let mut partial = [[0f32; LANES]; STEP];
            for (c, q) in query.chunks_exact(LANES).enumerate() {
                for (s, partial) in partial.iter_mut().enumerate() {
                    let k = &block[s * head_dim + c * LANES..][..LANES];
                    for lane in 0..LANES {
                        partial[lane] += q[lane] * k[lane];
                    }
                }
            }
            for (out, partial) in out.iter_mut().zip(partial) {
                *out = scale * partial.iter().sum::<f32>();
            }
            done += STEP;
        }
    }
    for (t, weight) in weights.iter_mut().enumerate().skip(done) {
        *weight = scale * dot(query, &keys[t * head_dim..][..head_dim]);
    }
}

/// `out += Σₜ weights[t] · value(t)`, [`STEP`] positions at a time, so that each pass over
/// `out` adds that many rows.
#[inline(always)]
fn weighted_sum<'v>(weights: &[f32], value: impl Fn(usize) -> &'v [f32], out: &mut [f32]) {
    let width = out.len();
    let mut blocks = weights.chunks_exact(STEP);
    for (b, w) in (&mut blocks).enumerate() {
        let t = b * STEP;
        let (v0, v1) = (&value(t)[..width], &value(t + 1)[..width]);
        let (v2, v3) = (&value(t + 2)[..width], &value(t + 3)[..width]);
        for d in 0..width {
            out[d] += (w[0] * v0[d] + w[1] * v1[d]) + (w[2] * v2[d] + w[3] * v3[d]);
        }
    }
    let done = weights.len() - blocks.remainder().len();
    for (t, &w) in weights.iter().enumerate().skip(done) {
        for (o, v) in out.iter_mut().zip(&value(t)[..width]) {
            *o += w * v;
        }
    }
}

simd_fn! {
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
}

/// Rotary position embedding angles, one (cos, sin) pair per rotated dimension pair and
/// position.
pub(super) struct Rope {
    config: RopeConfig,
    inverse_frequencies: Vec<f32>,
    table: Vec<(f32, f32)>,
}

impl Rope {
    /// Frequencies `base^(-2j/dims) / scale`, each also divided by its factor when the model
    /// has them (Llama 3's long-context scaling, stored as `rope_freqs.weight`).
    pub fn new(config: RopeConfig, factors: Option<&[f32]>) -> Self {
        let inverse_frequencies = (0..config.dims / 2)
            .map(|j| {
                let factor = factors.and_then(|f| f.get(j)).copied().unwrap_or(1.0);
                let exponent = -2.0 * j as f32 / config.dims as f32;
                config.base.powf(exponent) / (factor * config.scale)
            })
            .collect();
        Rope {
            config,
            inverse_frequencies,
            table: Vec::new(),
        }
    }

    /// Rotates each head of `row` to `position`, in f32 as Hugging Face's and candle's
    /// implementations compute the angles.
    pub fn rotate(&mut self, row: &mut [f32], head_dim: usize, position: usize) {
        let pairs = self.inverse_frequencies.len();
        while self.table.len() < (position + 1) * pairs {
            let p = (self.table.len() / pairs) as f32;
            let angles = self.inverse_frequencies.iter().map(|f| (p * f).sin_cos());
            self.table.extend(angles.map(|(sin, cos)| (cos, sin)));
        }
        let angles = &self.table[position * pairs..(position + 1) * pairs];
        let rotate =
            |x0: f32, x1: f32, (cos, sin): (f32, f32)| (x0 * cos - x1 * sin, x0 * sin + x1 * cos);
        for head in row.chunks_exact_mut(head_dim) {
            let rotated = &mut head[..2 * pairs];
            match self.config.style {
                RopeStyle::Pairs => {
                    for (pair, &angle) in rotated.chunks_exact_mut(2).zip(angles) {
                        (pair[0], pair[1]) = rotate(pair[0], pair[1], angle);
                    }
                }
                RopeStyle::Halves => {
                    let (first, second) = rotated.split_at_mut(pairs);
                    for ((x0, x1), &angle) in first.iter_mut().zip(second).zip(angles) {
                        (*x0, *x1) = rotate(*x0, *x1, angle);
                    }
                }
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
    /// How each query attends.
    pub scores: Scores,
}

/// How a query's scores are made and which positions it sees.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scores {
    /// Factor of `q·k`.
    pub scale: f32,
    /// Scores become `cap * tanh(score / cap)`.
    pub softcap: Option<f32>,
    /// The positions seen, the query's own included (all earlier ones when `None`).
    pub window: Option<usize>,
}

thread_local! {
    /// Attention weights and converted cache rows of the task running on this thread, kept
    /// between tasks so that attention allocates nothing once warm.
    static SCRATCH: RefCell<AttentionScratch> = RefCell::new(AttentionScratch::default());
}

/// Buffers of one attention task.
#[derive(Default)]
struct AttentionScratch {
    weights: Vec<f32>,
    rows: Vec<f32>,
}

/// Causal attention of `queries` (rows of `heads * head_dim`) over the cached `keys` and
/// `values` (per key/value head, rows of `head_dim` for positions `0..first + rows`), into
/// `out`. One task per query row and key/value head: the query heads sharing that head read
/// each key and value once between them.
pub(super) fn attention(
    shape: &AttentionShape,
    queries: &[f32],
    keys: &[Rows],
    values: &[Rows],
    out: &mut [f32],
) {
    let AttentionShape {
        heads,
        kv_heads,
        head_dim,
        first,
        scores,
    } = *shape;
    let group = heads / kv_heads;
    let task = |(index, out): (usize, &mut [f32])| {
        let (row, kv_head) = (index / kv_heads, index % kv_heads);
        let end = first + row + 1;
        let start = scores.window.map_or(0, |w| end.saturating_sub(w));
        SCRATCH.with_borrow_mut(|scratch| {
            attend(
                &queries[index * group * head_dim..][..group * head_dim],
                (&keys[kv_head], &values[kv_head]),
                &KvLayout {
                    head_dim,
                    start,
                    positions: end - start,
                    scores,
                },
                scratch,
                out,
            )
        });
    };
    let rows = queries.len() / (heads * head_dim);
    let chunks = out.chunks_exact_mut(group * head_dim).enumerate();
    if rows * (first + rows) * heads < PARALLEL_ATTENTION_WORK {
        chunks.for_each(task);
    } else {
        out.par_chunks_exact_mut(group * head_dim)
            .enumerate()
            .for_each(task);
    }
}

/// The cached rows of one key/value head a query sees, and how scores are made.
struct KvLayout {
    head_dim: usize,
    /// The first position seen.
    start: usize,
    positions: usize,
    scores: Scores,
}

simd_fn! {
    /// The query heads in `queries` (sharing the key/value head whose rows are `keys` and
    /// `values`) attending over its positions, into `out`. The rows are read a block of
    /// positions at a time (one block when they need no conversion).
    fn attend(
        queries: &[f32],
        kv_rows: (&Rows, &Rows),
        kv: &KvLayout,
        scratch: &mut AttentionScratch,
        out: &mut [f32],
    ) {
        let (keys, values) = kv_rows;
        let (positions, head_dim) = (kv.positions, kv.head_dim);
        let seen = kv.start * head_dim..(kv.start + positions) * head_dim;
        let half = match (keys.half(), values.half()) {
            (Some(k), Some(v)) if half_attention::available() && head_dim.is_multiple_of(8) => {
                Some((&k[seen.clone()], &v[seen]))
            }
            _ => None,
        };
        let block = keys.positions_per_read(head_dim, positions);
        let at = |t: usize| t * head_dim..(t + 1) * head_dim;
        let AttentionScratch { weights, rows } = scratch;
        weights.resize(queries.len() / head_dim * positions, 0.0);
        let queries = queries.chunks_exact(head_dim);
        match half {
            Some((keys, _)) => {
                for (query, weights) in queries.zip(weights.chunks_exact_mut(positions)) {
                    half_attention::scores(query, keys, kv.scores.scale, weights);
                }
            }
            None => {
                for from in (0..positions).step_by(block) {
                    let count = block.min(positions - from);
                    let first = (kv.start + from) * head_dim;
                    let keys = keys.read(first..first + count * head_dim, rows);
                    for (j, query) in queries.clone().enumerate() {
                        let weights = &mut weights[j * positions + from..][..count];
                        scores(query, keys, kv.scores.scale, weights);
                    }
                }
            }
        }
        if let Some(cap) = kv.scores.softcap {
            softcap(weights, cap);
        }
        weights.chunks_exact_mut(positions).for_each(softmax);
        out.fill(0.0);
        match half {
            Some((_, values)) => {
                for (out, weights) in out.chunks_exact_mut(head_dim).zip(weights.chunks_exact(positions)) {
                    half_attention::weighted_sum(weights, values, out);
                }
            }
            None => {
                for from in (0..positions).step_by(block) {
                    let count = block.min(positions - from);
                    let first = (kv.start + from) * head_dim;
                    let values = values.read(first..first + count * head_dim, rows);
                    for (out, weights) in out.chunks_exact_mut(head_dim).zip(weights.chunks_exact(positions)) {
                        weighted_sum(&weights[from..from + count], |t| &values[at(t)], out);
                    }
                }
            }
        }
    }
}

/// Below this many query-key pairs, attention runs on the calling thread: splitting it would
/// cost more than it saves.
const PARALLEL_ATTENTION_WORK: usize = 256;

/// Turns scores into weights that sum to one.
#[inline(always)]
fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in x.iter_mut() {
        *v = exp(*v - max);
    }
    let inverse = 1.0 / x.iter().sum::<f32>();
    for v in x {
        *v *= inverse;
    }
}

/// `x ↦ cap * tanh(x / cap)` on every value.
#[inline(always)]
fn softcap(x: &mut [f32], cap: f32) {
    let inverse = 1.0 / cap;
    for v in x {
        *v = cap * tanh(*v * inverse);
    }
}

simd_fn! {
    /// `cap * tanh(x / cap)` on every value of `x`.
    pub(super) fn soft_cap(x: &mut [f32], cap: f32) {
        softcap(x, cap)
    }
}

simd_fn! {
    /// `out = act(gate) * up` for rows laid out as `[gate | up]`.
    pub(super) fn gated(gate_up: &[f32], width: usize, activation: Activation, out: &mut [f32]) {
        for (gate_up, out) in gate_up
            .chunks_exact(2 * width)
            .zip(out.chunks_exact_mut(width))
        {
            let (gate, up) = gate_up.split_at(width);
            match activation {
                Activation::Silu => {
                    for ((out, g), u) in out.iter_mut().zip(gate).zip(up) {
                        *out = g / (1.0 + exp(-g)) * u;
                    }
                }
                Activation::GeluTanh => {
                    for ((out, g), u) in out.iter_mut().zip(gate).zip(up) {
                        *out = gelu_tanh(*g) * u;
                    }
                }
            }
        }
    }
}

/// GELU by its tanh approximation, `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
}

/// `tanh x` as `1 - 2/(e^{2x} + 1)`, branch-free on [`exp`] (whose clamping keeps it finite).
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_transformer::KvFormat;

    fn plain(head_dim: usize) -> Scores {
        Scores {
            scale: 1.0 / (head_dim as f32).sqrt(),
            softcap: None,
            window: None,
        }
    }

    /// The f16 cache read straight by F16C gives what converting it to f32 first gives, to the
    /// bit: scores over a count of positions that is not a multiple of four, and the weighted
    /// sums of the values.
    #[test]
    fn f16_rows_read_in_place_equal_the_converted_path() {
        if !half_attention::available() {
            return;
        }
        let head_dim = 64;
        let value = |i: usize| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3;
        for positions in [1, 4, 11] {
            let mut rows = Rows::new(KvFormat::F16);
            rows.extend(&(0..positions * head_dim).map(value).collect::<Vec<_>>());
            let stored = rows.half().unwrap();
            let mut scratch = Vec::new();
            let converted = rows.read(0..positions * head_dim, &mut scratch).to_vec();
            let query: Vec<f32> = (0..head_dim).map(|i| value(i * 3 + 1)).collect();
            let (mut ours, mut expected) = (vec![0.0; positions], vec![0.0; positions]);
            half_attention::scores(&query, stored, 0.125, &mut ours);
            scores(&query, &converted, 0.125, &mut expected);
            assert_eq!(ours, expected);
            let weights: Vec<f32> = (0..positions).map(|t| value(t * 13 + 5)).collect();
            let (mut ours, mut expected) = (vec![0.5; head_dim], vec![0.5; head_dim]);
            half_attention::weighted_sum(&weights, stored, &mut ours);
            let at = |t: usize| &converted[t * head_dim..(t + 1) * head_dim];
            weighted_sum(&weights, at, &mut expected);
            assert_eq!(ours, expected);
        }
    }

    #[test]
    fn attention_over_one_position_returns_its_value() {
        // Two query heads share one key/value head; with one cached position the weights are
        // 1 whatever the scores, so each head's output is that position's value.
        let shape = AttentionShape {
            heads: 2,
            kv_heads: 1,
            head_dim: 4,
            first: 0,
            scores: plain(4),
        };
        let values = vec![1.0, -2.0, 3.0, 0.5];
        let mut out = [0f32; 8];
        attention(
            &shape,
            &[0.3; 8],
            &[Rows::F32(vec![0.7; 4])],
            &[Rows::F32(values)],
            &mut out,
        );
        assert_eq!(out, [1.0, -2.0, 3.0, 0.5, 1.0, -2.0, 3.0, 0.5]);
    }

    #[test]
    fn attention_weighs_positions_by_softmax_of_scaled_scores() {
        // One head of dimension 1 over two positions: scores q·k/√1 = 0 and ln 3, so the
        // weights are 1/4 and 3/4.
        let shape = AttentionShape {
            heads: 1,
            kv_heads: 1,
            head_dim: 1,
            first: 1,
            scores: plain(1),
        };
        let mut out = [0f32];
        attention(
            &shape,
            &[1.0],
            &[Rows::F32(vec![0.0, 3f32.ln()])],
            &[Rows::F32(vec![8.0, 4.0])],
            &mut out,
        );
        assert!((out[0] - 5.0).abs() < 1e-5, "{}", out[0]);
    }

    /// An f16 cache is read in blocks of positions; over several blocks, with and without a
    /// window, attention matches the f32 cache's within f16's rounding.
    #[test]
    fn attention_over_an_f16_cache_in_blocks_matches_f32() {
        let (head_dim, positions) = (64, 300);
        let value = |i: usize| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.5;
        let keys: Vec<f32> = (0..head_dim * positions).map(value).collect();
        let values: Vec<f32> = (0..head_dim * positions).map(|i| value(i + 17)).collect();
        let queries: Vec<f32> = (0..2 * head_dim).map(|i| value(i + 3) * 4.0).collect();
        let in_format = |format, data: &[f32]| {
            let mut rows = Rows::new(format);
            rows.extend(data);
            rows
        };
        for window in [None, Some(200)] {
            let shape = AttentionShape {
                heads: 2,
                kv_heads: 1,
                head_dim,
                first: positions - 1,
                scores: Scores {
                    window,
                    ..plain(head_dim)
                },
            };
            let mut outs = [vec![0f32; 2 * head_dim], vec![0f32; 2 * head_dim]];
            for (format, out) in [KvFormat::F32, KvFormat::F16].into_iter().zip(&mut outs) {
                let (k, v) = (in_format(format, &keys), in_format(format, &values));
                attention(&shape, &queries, &[k], &[v], out);
            }
            for (exact, half) in outs[0].iter().zip(&outs[1]) {
                assert!((exact - half).abs() < 2e-3, "{exact} against {half}");
            }
        }
    }

    #[test]
    fn a_window_hides_the_positions_before_it_and_a_cap_bounds_the_scores() {
        // One head of dimension 1 over three positions with values 100, 8 and 4. A window of
        // two leaves positions 1 and 2 (scores 0 and ln 3: weights 1/4, 3/4); capped at 0.5,
        // the score ln 3 becomes c = 0.5 tanh(2 ln 3) = 20/41: weights 1/(1 + eᶜ) and the rest.
        let scores = Scores {
            window: Some(2),
            ..plain(1)
        };
        let shape = AttentionShape {
            heads: 1,
            kv_heads: 1,
            head_dim: 1,
            first: 2,
            scores,
        };
        let (keys, values) = (
            [Rows::F32(vec![9.0, 0.0, 3f32.ln()])],
            [Rows::F32(vec![100.0, 8.0, 4.0])],
        );
        let mut out = [0f32];
        attention(&shape, &[1.0], &keys, &values, &mut out);
        assert!((out[0] - 5.0).abs() < 1e-5, "{}", out[0]);
        let capped = AttentionShape {
            scores: Scores {
                softcap: Some(0.5),
                ..scores
            },
            ..shape
        };
        attention(&capped, &[1.0], &keys, &values, &mut out);
        let w = 1.0 / (1.0 + (20f32 / 41.0).exp());
        assert!(
            (out[0] - (8.0 * w + 4.0 * (1.0 - w))).abs() < 1e-4,
            "{}",
            out[0]
        );
    }

    #[test]
    fn rope_rotates_adjacent_pairs_or_halves_of_the_rotated_dimensions() {
        // Six dimensions, four rotated, base 1 (every angle is the position): at position 1,
        // each rotated pair turns by one radian; the last two dimensions pass unchanged.
        let config = |style| RopeConfig {
            style,
            dims: 4,
            base: 1.0,
            scale: 1.0,
        };
        let (cos, sin) = (1f32.cos(), 1f32.sin());
        let mut row = [1.0, 0.0, 0.0, 1.0, 5.0, 6.0];
        Rope::new(config(RopeStyle::Pairs), None).rotate(&mut row, 6, 1);
        let expected = [cos, sin, -sin, cos, 5.0, 6.0];
        assert!(
            row.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6),
            "{row:?}"
        );
        let mut row = [1.0, 0.0, 0.0, 1.0, 5.0, 6.0];
        Rope::new(config(RopeStyle::Halves), None).rotate(&mut row, 6, 1);
        // Pairs (0, 2) = (1, 0) and (1, 3) = (0, 1).
        let expected = [cos, -sin, sin, cos, 5.0, 6.0];
        assert!(
            row.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6),
            "{row:?}"
        );
        // Linear scaling by 2 at position 2 is position 1 unscaled.
        let mut scaled = [1.0, 0.0, 0.0, 1.0, 5.0, 6.0];
        let stretched = RopeConfig {
            scale: 2.0,
            ..config(RopeStyle::Halves)
        };
        Rope::new(stretched, None).rotate(&mut scaled, 6, 2);
        assert!(
            scaled.iter().zip(row).all(|(a, b)| (a - b).abs() < 1e-6),
            "{scaled:?}"
        );
    }

    #[test]
    fn gelu_and_soft_cap_follow_their_formulas() {
        let mut x = -12.0f32;
        while x <= 12.0 {
            let inner =
                (2.0 / std::f64::consts::PI).sqrt() * (x as f64 + 0.044715 * (x as f64).powi(3));
            let expected = 0.5 * x as f64 * (1.0 + inner.tanh());
            let mut out = [0f32];
            gated(&[x, 1.0], 1, Activation::GeluTanh, &mut out);
            assert!(
                (out[0] as f64 - expected).abs() < 1e-6 * (1.0 + expected.abs()),
                "gelu({x})"
            );
            let mut capped = [x];
            soft_cap(&mut capped, 5.0);
            let expected = 5.0 * (x as f64 / 5.0).tanh();
            assert!((capped[0] as f64 - expected).abs() < 1e-6, "cap({x})");
            x += 0.173;
        }
    }
}
