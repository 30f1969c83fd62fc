//! The portable kernels, and the reference the SIMD ones are tested against.

use super::{Group, Kernels, check_lengths};
use crate::{
    BLOCK,
    activations::ActivationRow,
    interleave::{self, GROUP},
};

pub(super) fn kernels() -> Kernels {
    Kernels {
        name: "scalar",
        x1: |w, x| rows(w, [x])[0],
        x4: rows,
    }
}

/// Per output, Σ over blocks of `d·dₓ·Σ (u − zero)·qₓ + m·sₓ`.
fn rows<const N: usize>(w: Group<'_>, x: [ActivationRow<'_>; N]) -> [[f32; GROUP]; N] {
    for x in x {
        check_lengths(w, x);
    }
    let (four_bit, zero) = (w.format.four_bit(), w.format.zero_point());
    let bytes = GROUP * w.format.packed_block_bytes();
    let mut out = [[0f32; GROUP]; N];
    for b in 0..w.blocks() {
        let block = &w.quants[b * bytes..(b + 1) * bytes];
        for lane in 0..GROUP {
            let weights: [i32; BLOCK] = std::array::from_fn(|i| {
                i32::from(interleave::value(four_bit, block, lane, i)) - zero
            });
            let d = w.scales[b * GROUP + lane].to_f32();
            for (x, out) in x.iter().zip(&mut out) {
                let a = &x.quants[b * BLOCK..(b + 1) * BLOCK];
                let sum: i32 = weights.iter().zip(a).map(|(&w, &a)| w * i32::from(a)).sum();
                out[lane] += d * x.scales[b] * sum as f32;
                if w.format.has_minimum() {
                    out[lane] += w.minimums[b * GROUP + lane].to_f32() * x.sums[b];
                }
            }
        }
    }
    out
}
