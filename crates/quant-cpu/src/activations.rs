//! Activations quantized to 8 bits, the right-hand side of every product: one scale per block
//! of 32 values, or per super-block of 256 for the K-quants.

use crate::format::{BLOCK, SUPER_BLOCK};
use half::f16;
use rayon::prelude::*;

/// How many activations share one scale. [`crate::QuantMatrix::activation_scales`] says which
/// a matrix takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActivationScales {
    /// One f16-rounded scale per block of 32, as ggml's Q8_0 and Q8_1: for the formats with
    /// blocks of 32.
    #[default]
    PerBlock,
    /// One f32 scale per super-block of 256, as ggml's Q8_K: for the K-quants, whose kernels
    /// then add up a super-block's integer sums before a single float multiply.
    PerSuperBlock,
}

impl ActivationScales {
    /// Values that share one scale.
    fn values(self) -> usize {
        match self {
            ActivationScales::PerBlock => BLOCK,
            ActivationScales::PerSuperBlock => SUPER_BLOCK,
        }
    }
}

/// Rows of activations quantized to signed 8 bits, with, per block of 32, its scale (shared
/// by a super-block's blocks when quantized [`ActivationScales::PerSuperBlock`]), the scaled sum
/// of its values (which a minimum multiplies), their exact integer sum (which the weights' zero
/// point multiplies) and that of its first 16 values (for Q6_K, whose halves of 16 have scales
/// of their own). Reused across products so that decoding allocates nothing per token.
#[derive(Debug, Default)]
pub struct QuantizedRows {
    rows: usize,
    cols: usize,
    per: ActivationScales,
    quants: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<f32>,
    integer_sums: Vec<i32>,
    half_sums: Vec<i32>,
}

/// One quantized row, as the kernels read it.
#[derive(Clone, Copy)]
pub(crate) struct ActivationRow<'a> {
    pub quants: &'a [i8],
    pub scales: &'a [f32],
    pub sums: &'a [f32],
    pub integer_sums: &'a [i32],
    /// Per block, the integer sum of its first 16 values.
    pub half_sums: &'a [i32],
    /// Whether a super-block's blocks share one scale.
    pub per_super_block: bool,
}

impl QuantizedRows {
    /// An empty set of rows; [`QuantizedRows::quantize`] fills it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Quantizes `x`, `rows` rows of `cols` values each, with one scale per group of values
    /// that `per` names (`cols` a multiple of that group).
    ///
    /// # Panics
    /// If `x.len() != rows * cols` or `cols` is not a multiple of the group.
    pub fn quantize(&mut self, x: &[f32], rows: usize, cols: usize, per: ActivationScales) {
        assert_eq!(x.len(), rows * cols, "activations are not {rows}x{cols}");
        let group = per.values();
        assert!(
            cols > 0 && cols.is_multiple_of(group),
            "{cols} columns are not whole groups of {group} values"
        );
        self.rows = rows;
        self.cols = cols;
        self.per = per;
        let blocks = x.len() / BLOCK;
        self.quants.resize(x.len(), 0);
        self.scales.resize(blocks, 0.0);
        self.sums.resize(blocks, 0.0);
        self.integer_sums.resize(blocks, 0);
        self.half_sums.resize(blocks, 0);
        let row_blocks = cols / BLOCK;
        let groups = group / BLOCK;
        let rows_of = |x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [f32], n: Sums<'_>| {
            for ((((x, q), d), s), n) in x
                .chunks_exact(group)
                .zip(q.chunks_exact_mut(group))
                .zip(d.chunks_exact_mut(groups))
                .zip(s.chunks_exact_mut(groups))
                .zip(
                    n.0.chunks_exact_mut(groups)
                        .zip(n.1.chunks_exact_mut(groups)),
                )
            {
                quantize_group(x, per, q, d, s, n);
            }
        };
        if rows > 1 {
            x.par_chunks(cols)
                .zip(self.quants.par_chunks_mut(cols))
                .zip(self.scales.par_chunks_mut(row_blocks))
                .zip(self.sums.par_chunks_mut(row_blocks))
                .zip(self.integer_sums.par_chunks_mut(row_blocks))
                .zip(self.half_sums.par_chunks_mut(row_blocks))
                .for_each(|(((((x, q), d), s), n), h)| rows_of(x, q, d, s, (n, h)));
        } else {
            rows_of(
                x,
                &mut self.quants,
                &mut self.scales,
                &mut self.sums,
                (&mut self.integer_sums, &mut self.half_sums),
            );
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    pub(crate) fn row(&self, i: usize) -> ActivationRow<'_> {
        let blocks = self.cols / BLOCK;
        ActivationRow {
            quants: &self.quants[i * self.cols..(i + 1) * self.cols],
            scales: &self.scales[i * blocks..(i + 1) * blocks],
            sums: &self.sums[i * blocks..(i + 1) * blocks],
            integer_sums: &self.integer_sums[i * blocks..(i + 1) * blocks],
            half_sums: &self.half_sums[i * blocks..(i + 1) * blocks],
            per_super_block: self.per == ActivationScales::PerSuperBlock,
        }
    }
}

/// Symmetric 8-bit quantization of one group of values sharing a scale (a block, or a
/// super-block of them): `x ≈ d * q`, `q` in -127..=127, as ggml's x86 code quantizes
/// (multiplying by `127 / amax`, rounding half to even). Per block, the scale and the scaled
/// sum are rounded to f16 as ggml's Q8_1 stores them, so that products round like llama.cpp's;
/// a super-block's scale stays f32, as in ggml's Q8_K. The integer sums `n` (of each block, and
/// of its first half) are exact. Written in lanes so that it vectorises.
fn quantize_group(
    x: &[f32],
    per: ActivationScales,
    q: &mut [i8],
    d: &mut [f32],
    s: &mut [f32],
    n: Sums<'_>,
) {
    let mut lanes = [0f32; LANES];
    for chunk in x.chunks_exact(LANES) {
        for (m, v) in lanes.iter_mut().zip(chunk) {
            *m = m.max(v.abs());
        }
    }
    let amax = lanes.iter().fold(0f32, |m, &v| m.max(v));
    let scale = amax / 127.0;
    let inverse = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let stored = |v: f32| match per {
        ActivationScales::PerBlock => f16::from_f32(v).to_f32(),
        ActivationScales::PerSuperBlock => v,
    };
    for ((((x, q), d), s), n) in x
        .chunks_exact(BLOCK)
        .zip(q.chunks_exact_mut(BLOCK))
        .zip(d)
        .zip(s)
        .zip(n.0.iter_mut().zip(n.1.iter_mut()))
    {
        let mut values = [0i32; BLOCK];
        for (r, &v) in values.iter_mut().zip(x) {
            // Adding 1.5·2²³ rounds |v| < 2²² to the nearest integer (ties to even) and leaves
            // it in the low bits of the sum, which the sum's bits minus the constant's read out.
            *r = (v * inverse + ROUNDING).to_bits() as i32 - ROUNDING.to_bits() as i32;
        }
        for (q, &r) in q.iter_mut().zip(&values) {
            *q = r as i8;
        }
        let half = values[..BLOCK / 2].iter().sum::<i32>();
        let sum = half + values[BLOCK / 2..].iter().sum::<i32>();
        *d = stored(scale);
        *s = stored(scale * sum as f32);
        *n.0 = sum;
        *n.1 = half;
    }
}

/// A row's integer sums per block: of all values, and of the first half.
type Sums<'a> = (&'a mut [i32], &'a mut [i32]);

/// Lanes of the partial maxima in [`quantize_group`].
const LANES: usize = 8;

/// `1.5 · 2²³`: floats near it are one apart, so adding it drops the fraction.
const ROUNDING: f32 = 12_582_912.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_half_to_even_with_exact_sums() {
        // amax = 127, so the scale is 1 and the values round as they are.
        let mut x = [0f32; BLOCK];
        x[..6].copy_from_slice(&[127.0, 0.5, 1.5, 2.5, -2.5, -3.7]);
        let mut rows = QuantizedRows::new();
        rows.quantize(&x, 1, BLOCK, ActivationScales::PerBlock);
        let row = rows.row(0);
        assert_eq!(row.quants[..6], [127, 0, 2, 2, -2, -4]);
        assert!(row.quants[6..].iter().all(|&q| q == 0));
        assert_eq!(row.scales, [1.0]);
        assert_eq!(row.integer_sums, [125]);
        assert_eq!(row.half_sums, [125]);
        assert_eq!(row.sums, [125.0]);
    }

    #[test]
    fn a_super_block_shares_one_unrounded_scale() {
        // amax = 254 in the second block, so every block's step is 2 (the first block's own
        // amax, 1.3, would have given it a finer one); the scaled sums are not rounded to f16.
        let mut x = [0f32; SUPER_BLOCK];
        x[..3].copy_from_slice(&[1.3, -0.9, 3.0]);
        x[BLOCK] = -254.0;
        x[SUPER_BLOCK - 1] = 2001.0 / 1000.0;
        let mut rows = QuantizedRows::new();
        rows.quantize(&x, 1, SUPER_BLOCK, ActivationScales::PerSuperBlock);
        let row = rows.row(0);
        assert!(row.per_super_block);
        assert_eq!(row.quants[..3], [1, 0, 2]);
        assert_eq!((row.quants[BLOCK], row.quants[SUPER_BLOCK - 1]), (-127, 1));
        assert_eq!(row.scales, [2.0; SUPER_BLOCK / BLOCK]);
        assert_eq!(row.integer_sums[..2], [3, -127]);
        assert_eq!(row.sums[..2], [6.0, -254.0]);
    }

    #[test]
    #[should_panic(expected = "288 columns are not whole groups of 256 values")]
    fn super_blocks_need_whole_super_blocks() {
        let mut rows = QuantizedRows::new();
        rows.quantize(&[0.0; 288], 1, 288, ActivationScales::PerSuperBlock);
    }

    #[test]
    fn a_zero_block_quantizes_to_zeros() {
        let mut rows = QuantizedRows::new();
        rows.quantize(&[0.0; 2 * BLOCK], 2, BLOCK, ActivationScales::PerBlock);
        for i in 0..2 {
            let row = rows.row(i);
            assert!(row.quants.iter().all(|&q| q == 0));
            assert_eq!(
                (row.scales, row.sums, row.integer_sums),
                (&[0.0][..], &[0.0][..], &[0][..])
            );
        }
    }
}
