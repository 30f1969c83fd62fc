//! Activations quantized to 8 bits per block of 32, the right-hand side of every product.

use crate::format::BLOCK;
use half::f16;
use rayon::prelude::*;

/// Rows of activations quantized to signed 8 bits, block by block, with each block's scale,
/// the scaled sum of its values (which a minimum multiplies), their exact integer sum (which the
/// weights' zero point multiplies) and that of its first 16 values (for Q6_K, whose halves of 16
/// have scales of their own). Reused across products so that decoding
/// allocates nothing per token.
#[derive(Debug, Default)]
pub struct QuantizedRows {
    rows: usize,
    cols: usize,
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
}

impl QuantizedRows {
    /// An empty set of rows; [`QuantizedRows::quantize`] fills it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Quantizes `x`, `rows` rows of `cols` values each (`cols` a multiple of 32).
    ///
    /// # Panics
    /// If `x.len() != rows * cols` or `cols` is not a multiple of 32.
    pub fn quantize(&mut self, x: &[f32], rows: usize, cols: usize) {
        assert_eq!(x.len(), rows * cols, "activations are not {rows}x{cols}");
        assert!(
            cols > 0 && cols.is_multiple_of(BLOCK),
            "{cols} columns are not whole blocks"
        );
        self.rows = rows;
        self.cols = cols;
        let blocks = x.len() / BLOCK;
        self.quants.resize(x.len(), 0);
        self.scales.resize(blocks, 0.0);
        self.sums.resize(blocks, 0.0);
        self.integer_sums.resize(blocks, 0);
        self.half_sums.resize(blocks, 0);
        let row_blocks = cols / BLOCK;
        let rows_of = |x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [f32], n: Sums<'_>| {
            for ((((x, q), d), s), n) in x
                .chunks_exact(BLOCK)
                .zip(q.chunks_exact_mut(BLOCK))
                .zip(d.iter_mut())
                .zip(s.iter_mut())
                .zip(n.0.iter_mut().zip(n.1.iter_mut()))
            {
                quantize_block(x, q, d, s, n);
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
        }
    }
}

/// Symmetric 8-bit quantization of one block: `x ≈ d * q`, `q` in -127..=127, as ggml's x86
/// code quantizes (multiplying by `127 / amax`, rounding half to even). The scale and the
/// scaled sum are rounded to f16 as ggml's Q8_1 stores them, so that products round like
/// llama.cpp's; the integer sums `n` (of the block, and of its first half) are exact. Written in
/// lanes so that it vectorises.
fn quantize_block(x: &[f32], q: &mut [i8], d: &mut f32, s: &mut f32, n: (&mut i32, &mut i32)) {
    let (x, q): (&[f32; BLOCK], &mut [i8; BLOCK]) = (
        x.try_into().expect("a block of activations"),
        q.try_into().expect("a block of quantized values"),
    );
    let mut lanes = [0f32; LANES];
    for chunk in x.chunks_exact(LANES) {
        for (m, v) in lanes.iter_mut().zip(chunk) {
            *m = m.max(v.abs());
        }
    }
    let amax = lanes.iter().fold(0f32, |m, &v| m.max(v));
    let scale = amax / 127.0;
    let inverse = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let mut values = [0i32; BLOCK];
    for (r, &v) in values.iter_mut().zip(x) {
        // Adding 1.5·2²³ rounds |v| < 2²² to the nearest integer (ties to even) and leaves it in
        // the low bits of the sum, which the sum's bits minus the constant's read out.
        *r = (v * inverse + ROUNDING).to_bits() as i32 - ROUNDING.to_bits() as i32;
    }
    for (q, &r) in q.iter_mut().zip(&values) {
        *q = r as i8;
    }
    let half = values[..BLOCK / 2].iter().sum::<i32>();
    let sum = half + values[BLOCK / 2..].iter().sum::<i32>();
    *d = f16::from_f32(scale).to_f32();
    *s = f16::from_f32(scale * sum as f32).to_f32();
    *n.0 = sum;
    *n.1 = half;
}

/// A row's integer sums per block: of all values, and of the first half.
type Sums<'a> = (&'a mut [i32], &'a mut [i32]);

/// Lanes of the partial maxima in [`quantize_block`].
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
        rows.quantize(&x, 1, BLOCK);
        let row = rows.row(0);
        assert_eq!(row.quants[..6], [127, 0, 2, 2, -2, -4]);
        assert!(row.quants[6..].iter().all(|&q| q == 0));
        assert_eq!(row.scales, [1.0]);
        assert_eq!(row.integer_sums, [125]);
        assert_eq!(row.half_sums, [125]);
        assert_eq!(row.sums, [125.0]);
    }

    #[test]
    fn a_zero_block_quantizes_to_zeros() {
        let mut rows = QuantizedRows::new();
        rows.quantize(&[0.0; 2 * BLOCK], 2, BLOCK);
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
