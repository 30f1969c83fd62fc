//! Causal attention over the key/value cache.
//!
//! The work is cut into pieces: one query row and key/value head over at most [`PIECE`]
//! cached positions. A piece keeps its softmax unnormalised, with the largest score and the
//! weights' sum beside the weighted values, and the pieces of a row are merged in order of
//! position. Merged in the same order whether they ran one after another or side by side,
//! the result is the same to the bit either way, so a decoding step with few rows can spread
//! one long row over every thread.

use super::{
    half_attention,
    kv_cache::Rows,
    math::{LANES, dot, simd_fn, softcap},
};
use rayon::prelude::*;
use rbee_vector_math::exp;
use std::{cell::RefCell, ops::Range};

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

/// Values read per block of cached rows (32 KiB as f32).
const BLOCK_VALUES: usize = 8 * 1024;

/// How many positions of `width` values [`attend`] reads at a time: a block that stays in the
/// L1 cache, so that every query head sharing the rows reads them from there, and whose
/// conversion (of an f16 cache) does too. A multiple of [`STEP`], so that blocking leaves the
/// order of the sums as it is.
fn positions_per_block(width: usize) -> usize {
    (BLOCK_VALUES / width / STEP).max(1) * STEP
}

/// Cached positions of one piece of work.
const PIECE: usize = 256;

/// Below this many query-key pairs, attention runs on the calling thread: splitting it would
/// cost more than it saves.
const PARALLEL_ATTENTION_WORK: usize = 256;

thread_local! {
    /// Buffers of the piece running on this thread, kept between pieces so that attention
    /// run a row at a time allocates nothing once warm.
    static SCRATCH: RefCell<AttentionScratch> = RefCell::new(AttentionScratch::default());
}

/// Buffers of one piece of work.
#[derive(Default)]
struct AttentionScratch {
    /// Weights of the piece's positions, per query head.
    weights: Vec<f32>,
    /// Cached rows converted to f32.
    rows: Vec<f32>,
    /// A row's merged pieces, then its next piece.
    partials: Vec<f32>,
}

/// Causal attention of `queries` (rows of `heads * head_dim`) over the cached `keys` and
/// `values` (per key/value head, rows of `head_dim` for positions `0..first + rows`), into
/// `out`. A task is one query row and key/value head: the query heads sharing that head read
/// each key and value once between them. With fewer tasks than twice the threads, each
/// task's pieces run side by side.
pub(super) fn attention(
    shape: &AttentionShape,
    queries: &[f32],
    keys: &[Rows],
    values: &[Rows],
    out: &mut [f32],
) {
    let tasks = Tasks {
        shape,
        queries,
        keys,
        values,
    };
    let rows = queries.len() / (shape.heads * shape.head_dim);
    let rows_out = out.chunks_exact_mut(tasks.width());
    if rows * (shape.first + rows) * shape.heads < PARALLEL_ATTENTION_WORK {
        rows_out
            .enumerate()
            .for_each(|(task, out)| tasks.in_order(task, out));
    } else if rows * shape.kv_heads >= 2 * rayon::current_num_threads() {
        out.par_chunks_exact_mut(tasks.width())
            .enumerate()
            .for_each(|(task, out)| tasks.in_order(task, out));
    } else {
        tasks.side_by_side(out);
    }
}

/// The operands of one attention call, cut into tasks and pieces.
struct Tasks<'a> {
    shape: &'a AttentionShape,
    queries: &'a [f32],
    keys: &'a [Rows],
    values: &'a [Rows],
}

impl Tasks<'_> {
    /// Query heads sharing a key/value head.
    fn group(&self) -> usize {
        self.shape.heads / self.shape.kv_heads
    }

    /// Values of a task's queries and of its output.
    fn width(&self) -> usize {
        self.group() * self.shape.head_dim
    }

    /// Values of one piece's unnormalised result: see [`Partial`].
    fn partial_len(&self) -> usize {
        self.width() + 2 * self.group()
    }

    /// The pieces of `task`, in order of position.
    fn pieces(&self, task: usize) -> impl Iterator<Item = Range<usize>> {
        let end = self.shape.first + task / self.shape.kv_heads + 1;
        let start = self
            .shape
            .scores
            .window
            .map_or(0, |w| end.saturating_sub(w));
        (start..end)
            .step_by(PIECE)
            .map(move |from| from..(from + PIECE).min(end))
    }

    /// `task`'s result over `positions`, into `partial`.
    fn piece(
        &self,
        task: usize,
        positions: Range<usize>,
        scratch: &mut AttentionScratch,
        partial: &mut [f32],
    ) {
        let kv_head = task % self.shape.kv_heads;
        let queries = &self.queries[task * self.width()..][..self.width()];
        let kv = KvLayout {
            head_dim: self.shape.head_dim,
            positions,
            scores: self.shape.scores,
        };
        let partial = Partial::new(partial, self.group());
        attend(
            queries,
            (&self.keys[kv_head], &self.values[kv_head]),
            &kv,
            scratch,
            partial,
        );
    }

    /// Runs `task`'s pieces one after another, merging each into the last, into `out`.
    fn in_order(&self, task: usize, out: &mut [f32]) {
        let len = self.partial_len();
        SCRATCH.with_borrow_mut(|scratch| {
            let mut partials = std::mem::take(&mut scratch.partials);
            partials.resize(2 * len, 0.0);
            let (merged, next) = partials.split_at_mut(len);
            for (index, positions) in self.pieces(task).enumerate() {
                if index == 0 {
                    self.piece(task, positions, scratch, merged);
                } else {
                    self.piece(task, positions, scratch, next);
                    merge(
                        Partial::new(merged, self.group()),
                        Partial::new(next, self.group()),
                    );
                }
            }
            normalise(Partial::new(merged, self.group()), out);
            scratch.partials = partials;
        });
    }

    /// Runs every piece of every task side by side, then merges each task's pieces in order,
    /// into `out`.
    fn side_by_side(&self, out: &mut [f32]) {
        let tasks = out.len() / self.width();
        let pieces: Vec<(usize, Range<usize>)> = (0..tasks)
            .flat_map(|task| self.pieces(task).map(move |positions| (task, positions)))
            .collect();
        let len = self.partial_len();
        let mut partials = vec![0f32; pieces.len() * len];
        partials
            .par_chunks_exact_mut(len)
            .zip(&pieces)
            .for_each(|(partial, (task, positions))| {
                SCRATCH.with_borrow_mut(|scratch| {
                    self.piece(*task, positions.clone(), scratch, partial)
                })
            });
        let mut partials = partials.chunks_exact_mut(len).zip(&pieces).peekable();
        for (task, out) in out.chunks_exact_mut(self.width()).enumerate() {
            let (merged, _) = partials.next().expect("every task has a piece");
            while let Some((next, _)) = partials.next_if(|(_, (of, _))| *of == task) {
                merge(
                    Partial::new(merged, self.group()),
                    Partial::new(next, self.group()),
                );
            }
            normalise(Partial::new(merged, self.group()), out);
        }
    }
}

/// One piece's result, per query head: `Σₜ e^(score(t) - largest) · value(t)`, the largest
/// score, and `Σₜ e^(score(t) - largest)`.
struct Partial<'a> {
    sums: &'a mut [f32],
    largest: &'a mut [f32],
    totals: &'a mut [f32],
}

impl<'a> Partial<'a> {
    /// The result laid out in `values` as `[sums | largest | totals]`, for `group` heads.
    fn new(values: &'a mut [f32], group: usize) -> Self {
        let (sums, rest) = values.split_at_mut(values.len() - 2 * group);
        let (largest, totals) = rest.split_at_mut(group);
        Self {
            sums,
            largest,
            totals,
        }
    }
}

/// `into` becomes the result over its positions and those of `next`.
fn merge(into: Partial<'_>, next: Partial<'_>) {
    let width = into.sums.len() / into.largest.len();
    for head in 0..into.largest.len() {
        let largest = into.largest[head].max(next.largest[head]);
        let (kept, added) = (
            (into.largest[head] - largest).exp(),
            (next.largest[head] - largest).exp(),
        );
        into.largest[head] = largest;
        into.totals[head] = into.totals[head] * kept + next.totals[head] * added;
        let sums = into.sums[head * width..][..width].iter_mut();
        for (sum, next) in sums.zip(&next.sums[head * width..][..width]) {
            *sum = *sum * kept + next * added;
        }
    }
}

/// The weighted sums of `partial` divided by their weights' total, into `out`.
fn normalise(partial: Partial<'_>, out: &mut [f32]) {
    let width = out.len() / partial.totals.len();
    for ((out, sums), total) in out
        .chunks_exact_mut(width)
        .zip(partial.sums.chunks_exact(width))
        .zip(&*partial.totals)
    {
        let inverse = 1.0 / total;
        for (out, sum) in out.iter_mut().zip(sums) {
            *out = sum * inverse;
        }
    }
}

/// The cached rows of one key/value head a piece sees, and how scores are made.
struct KvLayout {
    head_dim: usize,
    positions: Range<usize>,
    scores: Scores,
}

simd_fn! {
    /// The query heads in `queries` (sharing the key/value head whose rows are `keys` and
    /// `values`) attending over the piece's positions, into `partial`. The rows are read a
    /// block of positions at a time, and each block serves every query head before the next
    /// is read.
    fn attend(
        queries: &[f32],
        kv_rows: (&Rows, &Rows),
        kv: &KvLayout,
        scratch: &mut AttentionScratch,
        partial: Partial<'_>,
    ) {
        let (keys, values) = kv_rows;
        let (positions, head_dim) = (kv.positions.len(), kv.head_dim);
        let half = match (keys.half(), values.half()) {
            (Some(k), Some(v)) if half_attention::available() && head_dim.is_multiple_of(8) => {
                Some((k, v))
            }
            _ => None,
        };
        let block = positions_per_block(head_dim);
        let blocks = (0..positions).step_by(block).map(|from| {
            let count = block.min(positions - from);
            let first = (kv.positions.start + from) * head_dim;
            (from, count, first..first + count * head_dim)
        });
        let at = |t: usize| t * head_dim..(t + 1) * head_dim;
        let AttentionScratch { weights, rows, .. } = scratch;
        weights.resize(queries.len() / head_dim * positions, 0.0);
        let queries = queries.chunks_exact(head_dim);
        for (from, count, seen) in blocks.clone() {
            let weights = weights.chunks_exact_mut(positions).map(|w| &mut w[from..from + count]);
            match half {
                Some((keys, _)) => {
                    for (query, weights) in queries.clone().zip(weights) {
                        half_attention::scores(query, &keys[seen.clone()], kv.scores.scale, weights);
                    }
                }
                None => {
                    let keys = keys.read(seen, rows);
                    for (query, weights) in queries.clone().zip(weights) {
                        scores(query, keys, kv.scores.scale, weights);
                    }
                }
            }
        }
        if let Some(cap) = kv.scores.softcap {
            softcap(weights, cap);
        }
        for ((weights, largest), total) in weights
            .chunks_exact_mut(positions)
            .zip(partial.largest.iter_mut())
            .zip(partial.totals.iter_mut())
        {
            (*largest, *total) = exponentiate(weights);
        }
        let out = partial.sums;
        out.fill(0.0);
        for (from, count, seen) in blocks {
            let outs = out.chunks_exact_mut(head_dim).zip(weights.chunks_exact(positions));
            match half {
                Some((_, values)) => {
                    for (out, weights) in outs {
                        half_attention::weighted_sum(&weights[from..from + count], &values[seen.clone()], out);
                    }
                }
                None => {
                    let values = values.read(seen, rows);
                    for (out, weights) in outs {
                        weighted_sum(&weights[from..from + count], |t| &values[at(t)], out);
                    }
                }
            }
        }
    }
}

/// `x ↦ e^(x - largest)` on every score; returns the largest score and the sum of the results.
#[inline(always)]
fn exponentiate(x: &mut [f32]) -> (f32, f32) {
    let largest = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in x.iter_mut() {
        *v = exp(*v - largest);
    }
    (largest, x.iter().sum())
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

    /// Rows of `positions` cached positions for each of `kv_heads` heads, in `format`.
    fn cached(
        format: KvFormat,
        kv_heads: usize,
        positions: usize,
        head_dim: usize,
        seed: usize,
    ) -> Vec<Rows> {
        let value = |i: usize| (((i + seed) * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.5;
        (0..kv_heads)
            .map(|h| {
                let mut rows = Rows::new(format);
                let first = h * positions * head_dim;
                rows.extend(
                    &(first..first + positions * head_dim)
                        .map(value)
                        .collect::<Vec<_>>(),
                );
                rows
            })
            .collect()
    }

    /// Rows longer than a piece, with and without a window and a cap, in both cache formats:
    /// the pieces run side by side give what they give one after another, to the bit, and
    /// both match softmax attention worked out in f64.
    #[test]
    fn pieces_side_by_side_equal_pieces_in_order_and_the_f64_result() {
        let (heads, kv_heads, head_dim, first, rows) = (4, 2, 32, 3 * PIECE + 17, 2);
        for (format, window, softcap) in [
            (KvFormat::F32, None, None),
            (KvFormat::F16, Some(PIECE + 40), None),
            (KvFormat::F32, Some(2 * PIECE), Some(0.9)),
        ] {
            let positions = first + rows;
            let (keys, values) = (
                cached(format, kv_heads, positions, head_dim, 1),
                cached(format, kv_heads, positions, head_dim, 2),
            );
            let queries: Vec<f32> = (0..rows * heads * head_dim)
                .map(|i| ((i * 31 % 97) as f32 - 48.0) / 24.0)
                .collect();
            let shape = AttentionShape {
                heads,
                kv_heads,
                head_dim,
                first,
                scores: Scores {
                    window,
                    softcap,
                    ..plain(head_dim)
                },
            };
            let tasks = Tasks {
                shape: &shape,
                queries: &queries,
                keys: &keys,
                values: &values,
            };
            assert!(
                tasks.pieces(0).count() > 1,
                "the test needs rows of several pieces"
            );
            let mut in_order = vec![0f32; queries.len()];
            for (task, out) in in_order.chunks_exact_mut(tasks.width()).enumerate() {
                tasks.in_order(task, out);
            }
            let mut side_by_side = vec![0f32; queries.len()];
            tasks.side_by_side(&mut side_by_side);
            assert_eq!(in_order, side_by_side, "{format:?}, window {window:?}");

            let read = |rows: &Rows, t: usize| {
                let mut scratch = Vec::new();
                rows.read(t * head_dim..(t + 1) * head_dim, &mut scratch)
                    .to_vec()
            };
            for (index, got) in in_order.chunks_exact(head_dim).enumerate() {
                let (row, head) = (index / heads, index % heads);
                let kv_head = head / (heads / kv_heads);
                let query = &queries[index * head_dim..][..head_dim];
                let end = first + row + 1;
                let seen = window.map_or(0, |w| end.saturating_sub(w))..end;
                let scores: Vec<f64> = seen
                    .clone()
                    .map(|t| {
                        let key = read(&keys[kv_head], t);
                        let dot: f64 = query
                            .iter()
                            .zip(&key)
                            .map(|(q, k)| *q as f64 * *k as f64)
                            .sum();
                        let score = dot / (head_dim as f64).sqrt();
                        softcap.map_or(score, |cap: f32| cap as f64 * (score / cap as f64).tanh())
                    })
                    .collect();
                let largest = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - largest).exp()).collect();
                let total: f64 = weights.iter().sum();
                for (d, got) in got.iter().enumerate() {
                    let expected: f64 = seen
                        .clone()
                        .zip(&weights)
                        .map(|(t, w)| w * read(&values[kv_head], t)[d] as f64)
                        .sum::<f64>()
                        / total;
                    assert!(
                        (*got as f64 - expected).abs() < 1e-5,
                        "{got} against {expected}"
                    );
                }
            }
        }
    }
}
