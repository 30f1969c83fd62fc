//! AVX-512 VNNI kernels: two blocks per 512-bit register, and `vpdpbusd` multiplying and
//! summing unsigned weights with signed activations in one instruction. A row's odd last block
//! goes through the AVX2 code, which these CPUs also have.

use super::{
    Kernels, WeightRow, WeightRows,
    avx2::{
        horizontal_sum, q4_values, q8_values, scale, signed_products, unsigned_products, widen,
    },
    check_lengths,
};
use crate::{BLOCK, activations::ActivationRow};
use std::arch::x86_64::*;

/// # Safety
/// The CPU supports AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
pub(super) unsafe fn kernels() -> Kernels {
    Kernels {
        name: "avx512-vnni",
        // SAFETY (all four): these pointers are only handed out once the features were detected.
        q4_x1: |w, x, out| unsafe { q4_x1_rows(w, x, out) },
        q4_x4: |w, x, out| unsafe { q4_x4_rows(w, x, out) },
        q8_x1: |w, x, out| unsafe { q8_x1_rows(w, x, out) },
        q8_x4: |w, x, out| unsafe { q8_x4_rows(w, x, out) },
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_x1_rows(w: WeightRows<'_>, x: ActivationRow<'_>, out: &mut [f32]) {
    assert_eq!(out.len(), w.len(), "one output per weight row");
    for (r, out) in out.iter_mut().enumerate() {
        // SAFETY: the caller's features are this function's.
        *out = unsafe { q4::<1>(w.row(r, BLOCK / 2), [x])[0] };
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q8_x1_rows(w: WeightRows<'_>, x: ActivationRow<'_>, out: &mut [f32]) {
    assert_eq!(out.len(), w.len(), "one output per weight row");
    for (r, out) in out.iter_mut().enumerate() {
        // SAFETY: as above.
        *out = unsafe { q8::<1>(w.row(r, BLOCK), [x])[0] };
    }
}

/// Four activation rows against every weight row, in tiles of four weight rows by four
/// activation rows (sixteen accumulators), so that each weight block is unpacked once per four
/// activation rows and each activation block loaded once per four weight rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_x4_rows(w: WeightRows<'_>, x: [ActivationRow<'_>; 4], out: &mut [[f32; 4]]) {
    assert_eq!(out.len(), w.len(), "one output per weight row");
    let mut tiles = out.chunks_exact_mut(4);
    for (t, out) in (&mut tiles).enumerate() {
        let rows = [0, 1, 2, 3].map(|i| w.row(4 * t + i, BLOCK / 2));
        // SAFETY: the caller's features are this function's.
        out.copy_from_slice(&unsafe { tile::<true>(rows, x) });
    }
    let rest = tiles.into_remainder();
    let done = w.len() - rest.len();
    for (r, out) in (done..).zip(rest) {
        // SAFETY: as above.
        *out = unsafe { q4::<4>(w.row(r, BLOCK / 2), x) };
    }
}

/// As [`q4_x4_rows`] for 8-bit weights.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q8_x4_rows(w: WeightRows<'_>, x: [ActivationRow<'_>; 4], out: &mut [[f32; 4]]) {
    assert_eq!(out.len(), w.len(), "one output per weight row");
    let mut tiles = out.chunks_exact_mut(4);
    for (t, out) in (&mut tiles).enumerate() {
        let rows = [0, 1, 2, 3].map(|i| w.row(4 * t + i, BLOCK));
        // SAFETY: the caller's features are this function's.
        out.copy_from_slice(&unsafe { tile::<false>(rows, x) });
    }
    let rest = tiles.into_remainder();
    let done = w.len() - rest.len();
    for (r, out) in (done..).zip(rest) {
        // SAFETY: as above.
        *out = unsafe { q8::<4>(w.row(r, BLOCK), x) };
    }
}

/// A 4x4 tile: four weight rows (4-bit with offsets if `FOUR_BIT`, else signed 8-bit) against
/// four activation rows, two blocks at a time. Scales multiply as vectors: each weight row's
/// and each activation row's pair of block scales is built once per block pair.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn tile<const FOUR_BIT: bool>(
    w: [WeightRow<'_>; 4],
    x: [ActivationRow<'_>; 4],
) -> [[f32; 4]; 4] {
    let block_bytes = if FOUR_BIT { BLOCK / 2 } else { BLOCK };
    for w in w {
        for x in x {
            check_lengths(w, x, block_bytes);
        }
    }
    let blocks = x[0].scales.len();
    let mut acc = [[_mm512_setzero_ps(); 4]; 4];
    let mut b = 0;
    while b + 2 <= blocks {
        let mut a = [_mm512_setzero_si512(); 4];
        let mut a_scales = [_mm512_setzero_ps(); 4];
        for i in 0..4 {
            // SAFETY: check_lengths bounds blocks b and b + 1 in every row.
            a[i] = unsafe { activation_pair(x[i], b) };
            a_scales[i] = halves(x[i].scales[b], x[i].scales[b + 1]);
        }
        for r in 0..4 {
            // SAFETY: as above.
            let weights = unsafe {
                if FOUR_BIT {
                    q4_pair(w[r], b)
                } else {
                    _mm512_loadu_si512(w[r].quants.as_ptr().add(b * BLOCK).cast())
                }
            };
            let w_scales = halves(widen(w[r].scales[b]), widen(w[r].scales[b + 1]));
            for i in 0..4 {
                let sums = if FOUR_BIT {
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), weights, a[i])
                } else {
                    signed_dot(weights, a[i])
                };
                let scale = _mm512_mul_ps(w_scales, a_scales[i]);
                acc[r][i] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(sums), acc[r][i]);
            }
        }
        b += 2;
    }
    let mut totals = [[0f32; 4]; 4];
    for r in 0..4 {
        for i in 0..4 {
            totals[r][i] = _mm512_reduce_add_ps(acc[r][i]);
            if FOUR_BIT {
                totals[r][i] += offsets_dot(w[r], x[i]);
            }
            if b < blocks {
                // SAFETY: b < blocks.
                let products = unsafe {
                    if FOUR_BIT {
                        unsigned_products(q4_values(w[r], b), x[i], b)
                    } else {
                        signed_products(q8_values(w[r], b), x[i], b)
                    }
                };
                totals[r][i] += horizontal_sum(_mm256_mul_ps(scale(w[r], x[i], b), products));
            }
        }
    }
    totals
}

/// `first` over the low eight lanes, `second` over the high eight.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
fn halves(first: f32, second: f32) -> __m512 {
    _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(first), _mm512_set1_ps(second))
}

/// `Σ m·sₓ` over a 4-bit row's blocks, sixteen blocks per step.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
fn offsets_dot(w: WeightRow<'_>, x: ActivationRow<'_>) -> f32 {
    let mut acc = _mm512_setzero_ps();
    for (m, s) in w.offsets.chunks(16).zip(x.sums.chunks(16)) {
        let mask = ((1u32 << m.len()) - 1) as __mmask16;
        // SAFETY: the masked loads read only the chunk's `m.len()` elements.
        let (m, s) = unsafe {
            (
                _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, m.as_ptr().cast())),
                _mm512_maskz_loadu_ps(mask, s.as_ptr()),
            )
        };
        acc = _mm512_fmadd_ps(m, s, acc);
    }
    _mm512_reduce_add_ps(acc)
}

/// Signed weights times signed activations, four products summed per 32-bit lane: the
/// weights' signs move onto the activations so that `vpdpbusd` sees unsigned magnitudes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
fn signed_dot(weights: __m512i, a: __m512i) -> __m512i {
    let negative = _mm512_movepi8_mask(weights);
    let signed = _mm512_mask_sub_epi8(a, negative, _mm512_setzero_si512(), a);
    _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(weights), signed)
}

/// The 64 unsigned 4-bit values of blocks `b` and `b + 1`, in activation order.
///
/// # Safety
/// Both blocks lie inside `w.quants`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_pair(w: WeightRow<'_>, b: usize) -> __m512i {
    // SAFETY: guaranteed by the caller.
    let packed = unsafe { _mm256_loadu_si256(w.quants.as_ptr().add(b * BLOCK / 2).cast()) };
    let low_nibbles = _mm256_set1_epi8(0x0F);
    let low = _mm256_and_si256(packed, low_nibbles);
    let high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles);
    // [low b, low b+1, high b, high b+1] -> [low b, high b, low b+1, high b+1]
    let joined = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
    _mm512_shuffle_i64x2(joined, joined, 0b11_01_10_00)
}

/// The 64 activations of blocks `b` and `b + 1`.
///
/// # Safety
/// Both blocks lie inside `x.quants`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn activation_pair(x: ActivationRow<'_>, b: usize) -> __m512i {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm512_loadu_si512(x.quants.as_ptr().add(b * BLOCK).cast()) }
}

/// The two blocks' scales, each over its half of the register.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn pair_scale(w: WeightRow<'_>, x: ActivationRow<'_>, b: usize) -> __m512 {
    halves(
        widen(w.scales[b]) * x.scales[b],
        widen(w.scales[b + 1]) * x.scales[b + 1],
    )
}

/// 4-bit weights against `N` activation rows, two blocks at a time.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn q4<const N: usize>(w: WeightRow<'_>, x: [ActivationRow<'_>; N]) -> [f32; N] {
    for x in x {
        check_lengths(w, x, BLOCK / 2);
    }
    let blocks = w.scales.len();
    let mut acc = [_mm512_setzero_ps(); N];
    let mut b = 0;
    while b + 2 <= blocks {
        // SAFETY: check_lengths bounds blocks b and b + 1 in every row.
        let weights = unsafe { q4_pair(w, b) };
        for i in 0..N {
            let a = unsafe { activation_pair(x[i], b) };
            let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), weights, a);
            acc[i] = _mm512_fmadd_ps(pair_scale(w, x[i], b), _mm512_cvtepi32_ps(sums), acc[i]);
        }
        b += 2;
    }
    // A loop, not a closure: closures do not inherit target features, so nothing called from
    // one would be inlined.
    let mut totals = [0f32; N];
    for i in 0..N {
        totals[i] = _mm512_reduce_add_ps(acc[i]) + offsets_dot(w, x[i]);
        if b < blocks {
            // SAFETY: b < blocks.
            let products = unsafe { unsigned_products(q4_values(w, b), x[i], b) };
            totals[i] += horizontal_sum(_mm256_mul_ps(scale(w, x[i], b), products));
        }
    }
    totals
}

/// Signed 8-bit weights against `N` activation rows, two blocks at a time: the weights' signs
/// move onto the activations so that `vpdpbusd` sees unsigned magnitudes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn q8<const N: usize>(w: WeightRow<'_>, x: [ActivationRow<'_>; N]) -> [f32; N] {
    for x in x {
        check_lengths(w, x, BLOCK);
    }
    let blocks = w.scales.len();
    let mut acc = [_mm512_setzero_ps(); N];
    let mut b = 0;
    while b + 2 <= blocks {
        // SAFETY: check_lengths bounds blocks b and b + 1 in every row.
        let weights = unsafe { _mm512_loadu_si512(w.quants.as_ptr().add(b * BLOCK).cast()) };
        for i in 0..N {
            let a = unsafe { activation_pair(x[i], b) };
            let sums = signed_dot(weights, a);
            acc[i] = _mm512_fmadd_ps(pair_scale(w, x[i], b), _mm512_cvtepi32_ps(sums), acc[i]);
        }
        b += 2;
    }
    let mut totals = [0f32; N];
    for i in 0..N {
        totals[i] = _mm512_reduce_add_ps(acc[i]);
        if b < blocks {
            // SAFETY: b < blocks.
            let products = unsafe { signed_products(q8_values(w, b), x[i], b) };
            totals[i] += horizontal_sum(_mm256_mul_ps(scale(w, x[i], b), products));
        }
    }
    totals
}
