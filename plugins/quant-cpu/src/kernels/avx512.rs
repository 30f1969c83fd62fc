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

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4_x4_rows(w: WeightRows<'_>, x: [ActivationRow<'_>; 4], out: &mut [[f32; 4]]) {
    assert_eq!(out.len(), w.len(), "one output per weight row");
    for (r, out) in out.iter_mut().enumerate() {
        // SAFETY: the caller's features are this function's.
        *out = unsafe { q4::<4>(w.row(r, BLOCK / 2), x) };
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q8_x4_rows(w: WeightRows<'_>, x: [ActivationRow<'_>; 4], out: &mut [[f32; 4]]) {
    assert_eq!(out.len(), w.len(), "one output per weight row");
    for (r, out) in out.iter_mut().enumerate() {
        // SAFETY: as above.
        *out = unsafe { q8::<4>(w.row(r, BLOCK), x) };
    }
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
    let first = _mm512_set1_ps(widen(w.scales[b]) * x.scales[b]);
    let second = _mm512_set1_ps(widen(w.scales[b + 1]) * x.scales[b + 1]);
    _mm512_mask_blend_ps(0xFF00, first, second)
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
