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

/// Per output, Σ over blocks (and over halves of 16 in Q6_K) of `d·dₓ·Σ (u − zero)·qₓ + m·sₓ`.
/// Each block of the group is unpacked once for all activation rows, and the products run over
/// plain arrays, which the compiler vectorises (NEON on aarch64).
fn rows<const N: usize>(w: Group<'_>, x: [ActivationRow<'_>; N]) -> [[f32; GROUP]; N] {
    for x in x {
        check_lengths(w, x);
    }
    let zero = w.format.zero_point();
    let sets = w.format.scales_per_block();
    let bytes = GROUP * w.format.packed_block_bytes();
    let mut out = [[0f32; GROUP]; N];
    for b in 0..w.blocks() {
        let stored =
            interleave::unpack_block(w.format.bits(), &w.quants[b * bytes..(b + 1) * bytes]);
        for (lane, stored) in stored.iter().enumerate() {
            // Every format's values less its zero point fit in 8 signed bits.
            let weights: [i8; BLOCK] = std::array::from_fn(|i| (i32::from(stored[i]) - zero) as i8);
            let [(first_scale, minimum), (second_scale, _)] = [0, 1].map(|h| w.factors(b, h, lane));
            for (x, out) in x.iter().zip(&mut out) {
                let a: &[i8; BLOCK] = x.quants[b * BLOCK..(b + 1) * BLOCK].try_into().unwrap();
                let half = |h: usize| -> i32 {
                    let range = h * BLOCK / 2..(h + 1) * BLOCK / 2;
                    weights[range.clone()]
                        .iter()
                        .zip(&a[range])
                        .map(|(&w, &a)| i32::from(w) * i32::from(a))
                        .sum()
                };
                let (first, second) = (half(0), half(1));
                if sets == 2 {
                    out[lane] +=
                        x.scales[b] * (first_scale * first as f32 + second_scale * second as f32);
                } else {
                    out[lane] += first_scale * x.scales[b] * (first + second) as f32;
                }
                if w.format.has_minimum() {
                    out[lane] += minimum * x.sums[b];
                }
            }
        }
    }
    out
}
