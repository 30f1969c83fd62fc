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

/// Per output, Σ over blocks of `d·dₓ·Σ (u − zero)·qₓ + m·sₓ`. Each block of the group is
/// unpacked once for all activation rows, and the products run over plain arrays, which the
/// compiler vectorises (NEON on aarch64).
fn rows<const N: usize>(w: Group<'_>, x: [ActivationRow<'_>; N]) -> [[f32; GROUP]; N] {
    for x in x {
        check_lengths(w, x);
    }
    let zero = w.format.zero_point();
    let bytes = GROUP * w.format.packed_block_bytes();
    let mut out = [[0f32; GROUP]; N];
    for b in 0..w.blocks() {
        let stored =
            interleave::unpack_block(w.format.four_bit(), &w.quants[b * bytes..(b + 1) * bytes]);
        for (lane, stored) in stored.iter().enumerate() {
            // Every format's values less its zero point fit in 8 signed bits.
            let weights: [i8; BLOCK] = std::array::from_fn(|i| (i32::from(stored[i]) - zero) as i8);
            let d = w.scales[b * GROUP + lane].to_f32();
            for (x, out) in x.iter().zip(&mut out) {
                let a: &[i8; BLOCK] = x.quants[b * BLOCK..(b + 1) * BLOCK].try_into().unwrap();
                let sum: i32 = weights
                    .iter()
                    .zip(a)
                    .map(|(&w, &a)| i32::from(w) * i32::from(a))
                    .sum();
                out[lane] += d * x.scales[b] * sum as f32;
                if w.format.has_minimum() {
                    out[lane] += w.minimums[b * GROUP + lane].to_f32() * x.sums[b];
                }
            }
        }
    }
    out
}
