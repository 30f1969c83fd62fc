//! The portable kernels, and the reference the SIMD ones are tested against.

use super::{Kernels, WeightRow, WeightRows, check_lengths};
use crate::{BLOCK, activations::ActivationRow};

pub(super) fn kernels() -> Kernels {
    Kernels {
        name: "scalar",
        q4_x1: |w, x, out| each_row(w, BLOCK / 2, out, |w| q4_x1(w, x)),
        q4_x4: |w, x, out| each_row(w, BLOCK / 2, out, |w| x.map(|x| q4_x1(w, x))),
        q8_x1: |w, x, out| each_row(w, BLOCK, out, |w| q8_x1(w, x)),
        q8_x4: |w, x, out| each_row(w, BLOCK, out, |w| x.map(|x| q8_x1(w, x))),
    }
}

fn each_row<T>(
    w: WeightRows<'_>,
    block_bytes: usize,
    out: &mut [T],
    dot: impl Fn(WeightRow<'_>) -> T,
) {
    assert_eq!(out.len(), w.len(), "one output per weight row");
    for (r, out) in out.iter_mut().enumerate() {
        *out = dot(w.row(r, block_bytes));
    }
}

/// Σ over blocks of `d·dₓ·Σ q·qₓ + m·sₓ`, with the block's low nibbles holding values 0..16
/// and its high nibbles values 16..32.
pub(super) fn q4_x1(w: WeightRow<'_>, x: ActivationRow<'_>) -> f32 {
    check_lengths(w, x, BLOCK / 2);
    let mut total = 0f32;
    for b in 0..w.scales.len() {
        let q = &w.quants[b * BLOCK / 2..(b + 1) * BLOCK / 2];
        let a = &x.quants[b * BLOCK..(b + 1) * BLOCK];
        let mut sum = 0i32;
        for (j, &byte) in q.iter().enumerate() {
            sum += i32::from(byte & 0x0F) * i32::from(a[j]);
            sum += i32::from(byte >> 4) * i32::from(a[j + BLOCK / 2]);
        }
        total +=
            w.scales[b].to_f32() * x.scales[b] * sum as f32 + w.offsets[b].to_f32() * x.sums[b];
    }
    total
}

/// Σ over blocks of `d·dₓ·Σ q·qₓ` with signed 8-bit weights.
pub(super) fn q8_x1(w: WeightRow<'_>, x: ActivationRow<'_>) -> f32 {
    check_lengths(w, x, BLOCK);
    let mut total = 0f32;
    for b in 0..w.scales.len() {
        let q = &w.quants[b * BLOCK..(b + 1) * BLOCK];
        let a = &x.quants[b * BLOCK..(b + 1) * BLOCK];
        let sum: i32 = q
            .iter()
            .zip(a)
            .map(|(&q, &a)| i32::from(q as i8) * i32::from(a))
            .sum();
        total += w.scales[b].to_f32() * x.scales[b] * sum as f32;
    }
    total
}
