//! The f32 arithmetic between the quantized products: norms, rotary embeddings, attention and
//! the gated activation, written so that the compiler vectorises the inner loops.

use rayon::prelude::*;
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

/// Values summed in registers by [`weighted_sum`], per pass over the positions.
const SUM_LANES: usize = 16;

/// `out = Σₜ weights[t] · value(t)`, sixteen dimensions per pass so that the partial sums stay
/// in registers instead of being loaded and stored once per position.
#[inline(always)]
fn weighted_sum<'v>(weights: &[f32], value: impl Fn(usize) -> &'v [f32], out: &mut [f32]) {
    let mut start = 0;
    while start < out.len() {
        let width = SUM_LANES.min(out.len() - start);
        let mut sums = [0f32; SUM_LANES];
        if width == SUM_LANES {
            // Even and odd positions in separate sums, so that consecutive additions do not
            // wait on each other.
            let mut odd = [0f32; SUM_LANES];
            let lanes = |t: usize| -> &[f32; SUM_LANES] {
                value(t)[start..start + SUM_LANES].try_into().unwrap()
            };
            let mut pairs = weights.chunks_exact(2);
            for (p, w) in (&mut pairs).enumerate() {
                let (a, b) = (lanes(2 * p), lanes(2 * p + 1));
                for i in 0..SUM_LANES {
                    sums[i] += w[0] * a[i];
                    odd[i] += w[1] * b[i];
                }
            }
            if let [w] = pairs.remainder() {
                let a = lanes(weights.len() - 1);
                for i in 0..SUM_LANES {
                    sums[i] += w * a[i];
                }
            }
            for (s, o) in sums.iter_mut().zip(odd) {
                *s += o;
            }
        } else {
            for (t, &w) in weights.iter().enumerate() {
                for (s, v) in sums.iter_mut().zip(&value(t)[start..start + width]) {
                    *s += w * v;
                }
            }
        }
        out[start..start + width].copy_from_slice(&sums[..width]);
        start += width;
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

thread_local! {
    /// Attention weights of the task running on this thread, kept between tasks so that
    /// attention allocates nothing once warm.
    static WEIGHTS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Causal attention of `queries` (rows of `heads * head_dim`) over the cached `keys` and
/// `values` (per key/value head, rows of `head_dim` for positions `0..first + rows`), into
/// `out`. One task per query row and key/value head: the query heads sharing that head read
/// each key and value once between them.
pub(super) fn attention(
    shape: &AttentionShape,
    queries: &[f32],
    keys: &[Vec<f32>],
    values: &[Vec<f32>],
    out: &mut [f32],
) {
    let AttentionShape {
        heads,
        kv_heads,
        head_dim,
        first,
    } = *shape;
    let group = heads / kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let task = |(index, out): (usize, &mut [f32])| {
        let (row, kv_head) = (index / kv_heads, index % kv_heads);
        let mut weights = WEIGHTS.take();
        attend(
            &queries[index * group * head_dim..][..group * head_dim],
            &keys[kv_head],
            &values[kv_head],
            &KvLayout {
                head_dim,
                positions: first + row + 1,
                scale,
            },
            &mut weights,
            out,
        );
        WEIGHTS.set(weights);
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

/// The shape of one key/value head's cached rows, and the score scale.
struct KvLayout {
    head_dim: usize,
    positions: usize,
    scale: f32,
}

simd_fn! {
    /// The query heads in `queries` (sharing the key/value head whose rows are `keys` and
    /// `values`) attending over its positions, into `out`.
    fn attend(
        queries: &[f32],
        keys: &[f32],
        values: &[f32],
        kv: &KvLayout,
        weights: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let (positions, head_dim) = (kv.positions, kv.head_dim);
        let at = |t: usize| t * head_dim..(t + 1) * head_dim;
        weights.resize(queries.len() / head_dim * positions, 0.0);
        for t in 0..positions {
            let key = &keys[at(t)];
            for (j, query) in queries.chunks_exact(head_dim).enumerate() {
                weights[j * positions + t] = kv.scale * dot(query, key);
            }
        }
        for (out, weights) in out
            .chunks_exact_mut(head_dim)
            .zip(weights.chunks_exact_mut(positions))
        {
            softmax(weights);
            weighted_sum(weights, |t| &values[at(t)], out);
        }
    }
}

/// Below this many query-key pairs, attention runs on the calling thread: splitting it would
/// cost more than it saves.
const PARALLEL_ATTENTION_WORK: usize = 2 * 1024;

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

simd_fn! {
    /// `out = silu(gate) * up` for rows laid out as `[gate | up]`.
    pub(super) fn silu_gate(gate_up: &[f32], width: usize, out: &mut [f32]) {
        for (gate_up, out) in gate_up
            .chunks_exact(2 * width)
            .zip(out.chunks_exact_mut(width))
        {
            let (gate, up) = gate_up.split_at(width);
            for ((out, g), u) in out.iter_mut().zip(gate).zip(up) {
                *out = g / (1.0 + exp(-g)) * u;
            }
        }
    }
}

/// `eˣ` within about one ulp (Cephes' `expf` polynomial): large inputs clamped to where the
/// result is finite, and 0 below where it would be subnormal. Branch-free, so that loops
/// calling it vectorise; libm's `expf` is a call per element.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // ln 2 in two parts, the first exact in few bits, so that n·ln 2 subtracts without error.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer held in the sum's low bits.
    const ROUNDING: f32 = 12_582_912.0;
    let underflows = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDING;
    let n = shifted - ROUNDING;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let n = shifted.to_bits() as i32 - ROUNDING.to_bits() as i32;
    let e_x = e_r * f32::from_bits(((n + 127) << 23) as u32);
    // Zero rather than the smallest normal float, so that attention weights of far-off
    // positions are exact zeros: products with a tiny normal weight would be subnormal, which
    // costs the CPU dearly.
    if underflows { 0.0 } else { e_x }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm_where_results_are_normal() {
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (got, expected) = (exp(x), x.exp());
            assert!(
                (got - expected).abs() <= 2.0 * f32::EPSILON * expected,
                "exp({x}) = {got}, libm {expected}"
            );
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-87.5), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert!(exp(1000.0).is_finite());
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
        };
        let values = vec![1.0, -2.0, 3.0, 0.5];
        let mut out = [0f32; 8];
        attention(&shape, &[0.3; 8], &[vec![0.7; 4]], &[values], &mut out);
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
        };
        let mut out = [0f32];
        attention(
            &shape,
            &[1.0],
            &[vec![0.0, 3f32.ln()]],
            &[vec![8.0, 4.0]],
            &mut out,
        );
        assert!((out[0] - 5.0).abs() < 1e-5, "{}", out[0]);
    }
}
