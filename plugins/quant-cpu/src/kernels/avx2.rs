//! AVX2/FMA/F16C kernels: 32 products per block in one `maddubs` (unsigned weights times signed
//! activations), widened to 32 bits, converted and scaled with one fused multiply-add. With one
//! activation row, two blocks go into separate accumulators so that consecutive blocks do not
//! wait on each other's multiply-add.

use super::{Kernels, WeightRow, WeightRows, check_lengths};
use crate::{BLOCK, activations::ActivationRow};
use std::arch::x86_64::*;

/// # Safety
/// The CPU supports AVX2, FMA and F16C.
pub(super) unsafe fn kernels() -> Kernels {
    Kernels {
        name: "avx2",
        // SAFETY (all four): these pointers are only handed out once the features were detected.
        q4_x1: |w, x, out| unsafe { q4_x1_rows(w, x, out) },
        q4_x4: |w, x, out| unsafe { q4_x4_rows(w, x, out) },
        q8_x1: |w, x, out| unsafe { q8_x1_rows(w, x, out) },
        q8_x4: |w, x, out| unsafe { q8_x4_rows(w, x, out) },
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_x1_rows(w: WeightRows<'_>, x: ActivationRow<'_>, out: &mut [f32]) {
    assert_eq!(out.len(), w.len(), "one output per weight row");
    for (r, out) in out.iter_mut().enumerate() {
        // SAFETY: the caller's features are this function's.
        *out = unsafe { q4_x1(w.row(r, BLOCK / 2), x) };
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_x4_rows(w: WeightRows<'_>, x: [ActivationRow<'_>; 4], out: &mut [[f32; 4]]) {
    assert_eq!(out.len(), w.len(), "one output per weight row");
    for (r, out) in out.iter_mut().enumerate() {
        // SAFETY: as above.
        *out = unsafe { q4_x4(w.row(r, BLOCK / 2), x) };
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_x1_rows(w: WeightRows<'_>, x: ActivationRow<'_>, out: &mut [f32]) {
    assert_eq!(out.len(), w.len(), "one output per weight row");
    for (r, out) in out.iter_mut().enumerate() {
        // SAFETY: as above.
        *out = unsafe { q8_x1(w.row(r, BLOCK), x) };
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_x4_rows(w: WeightRows<'_>, x: [ActivationRow<'_>; 4], out: &mut [[f32; 4]]) {
    assert_eq!(out.len(), w.len(), "one output per weight row");
    for (r, out) in out.iter_mut().enumerate() {
        // SAFETY: as above.
        *out = unsafe { q8_x4(w.row(r, BLOCK), x) };
    }
}

/// The 32 unsigned 4-bit values of block `b`: low nibbles first, then high nibbles.
///
/// # Safety
/// Block `b` lies inside `w.quants`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q4_values(w: WeightRow<'_>, b: usize) -> __m256i {
    // SAFETY: guaranteed by the caller.
    let packed = unsafe { _mm_loadu_si128(w.quants.as_ptr().add(b * BLOCK / 2).cast()) };
    let low_nibbles = _mm_set1_epi8(0x0F);
    let low = _mm_and_si128(packed, low_nibbles);
    let high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibbles);
    _mm256_set_m128i(high, low)
}

/// The 32 signed 8-bit values of block `b`.
///
/// # Safety
/// Block `b` lies inside `w.quants`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q8_values(w: WeightRow<'_>, b: usize) -> __m256i {
    // SAFETY: guaranteed by the caller.
    unsafe { _mm256_loadu_si256(w.quants.as_ptr().add(b * BLOCK).cast()) }
}

/// Block `b`'s 32 activations times unsigned `weights`, summed to eight 32-bit lanes, as floats.
///
/// # Safety
/// Block `b` lies inside `x.quants`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn unsigned_products(weights: __m256i, x: ActivationRow<'_>, b: usize) -> __m256 {
    // SAFETY: guaranteed by the caller.
    let a = unsafe { _mm256_loadu_si256(x.quants.as_ptr().add(b * BLOCK).cast()) };
    let pairs = _mm256_maddubs_epi16(weights, a);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// As [`unsigned_products`] for signed `weights`: their signs move onto the activations so that
/// `maddubs` sees unsigned magnitudes.
///
/// # Safety
/// Block `b` lies inside `x.quants`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn signed_products(weights: __m256i, x: ActivationRow<'_>, b: usize) -> __m256 {
    // SAFETY: guaranteed by the caller.
    let a = unsafe { _mm256_loadu_si256(x.quants.as_ptr().add(b * BLOCK).cast()) };
    let pairs = _mm256_maddubs_epi16(
        _mm256_sign_epi8(weights, weights),
        _mm256_sign_epi8(a, weights),
    );
    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// An f16 as f32, in one instruction.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn widen(half: half::f16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(half.to_bits()))))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn scale(w: WeightRow<'_>, x: ActivationRow<'_>, b: usize) -> __m256 {
    _mm256_set1_ps(widen(w.scales[b]) * x.scales[b])
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn offset_term(w: WeightRow<'_>, x: ActivationRow<'_>, b: usize) -> f32 {
    widen(w.offsets[b]) * x.sums[b]
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_x1(w: WeightRow<'_>, x: ActivationRow<'_>) -> f32 {
    check_lengths(w, x, BLOCK / 2);
    let blocks = w.scales.len();
    let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut offsets = 0f32;
    let mut b = 0;
    // SAFETY (loads): check_lengths bounds every block index below `blocks`.
    while b + 2 <= blocks {
        let p0 = unsafe { unsigned_products(q4_values(w, b), x, b) };
        let p1 = unsafe { unsigned_products(q4_values(w, b + 1), x, b + 1) };
        even = _mm256_fmadd_ps(scale(w, x, b), p0, even);
        odd = _mm256_fmadd_ps(scale(w, x, b + 1), p1, odd);
        offsets += offset_term(w, x, b) + offset_term(w, x, b + 1);
        b += 2;
    }
    if b < blocks {
        let p = unsafe { unsigned_products(q4_values(w, b), x, b) };
        even = _mm256_fmadd_ps(scale(w, x, b), p, even);
        offsets += offset_term(w, x, b);
    }
    horizontal_sum(_mm256_add_ps(even, odd)) + offsets
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_x4(w: WeightRow<'_>, x: [ActivationRow<'_>; 4]) -> [f32; 4] {
    for x in x {
        check_lengths(w, x, BLOCK / 2);
    }
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut offsets = [0f32; 4];
    for b in 0..w.scales.len() {
        // SAFETY: check_lengths bounds block `b` in every row.
        let weights = unsafe { q4_values(w, b) };
        for i in 0..4 {
            let products = unsafe { unsigned_products(weights, x[i], b) };
            acc[i] = _mm256_fmadd_ps(scale(w, x[i], b), products, acc[i]);
            offsets[i] += offset_term(w, x[i], b);
        }
    }
    // A loop, not a closure: closures do not inherit target features.
    let mut totals = offsets;
    for i in 0..4 {
        totals[i] += horizontal_sum(acc[i]);
    }
    totals
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_x1(w: WeightRow<'_>, x: ActivationRow<'_>) -> f32 {
    check_lengths(w, x, BLOCK);
    let blocks = w.scales.len();
    let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut b = 0;
    // SAFETY (loads): check_lengths bounds every block index below `blocks`.
    while b + 2 <= blocks {
        let p0 = unsafe { signed_products(q8_values(w, b), x, b) };
        let p1 = unsafe { signed_products(q8_values(w, b + 1), x, b + 1) };
        even = _mm256_fmadd_ps(scale(w, x, b), p0, even);
        odd = _mm256_fmadd_ps(scale(w, x, b + 1), p1, odd);
        b += 2;
    }
    if b < blocks {
        let p = unsafe { signed_products(q8_values(w, b), x, b) };
        even = _mm256_fmadd_ps(scale(w, x, b), p, even);
    }
    horizontal_sum(_mm256_add_ps(even, odd))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_x4(w: WeightRow<'_>, x: [ActivationRow<'_>; 4]) -> [f32; 4] {
    for x in x {
        check_lengths(w, x, BLOCK);
    }
    let mut acc = [_mm256_setzero_ps(); 4];
    for b in 0..w.scales.len() {
        // SAFETY: check_lengths bounds block `b` in every row.
        let weights = unsafe { q8_values(w, b) };
        for i in 0..4 {
            let products = unsafe { signed_products(weights, x[i], b) };
            acc[i] = _mm256_fmadd_ps(scale(w, x[i], b), products, acc[i]);
        }
    }
    let mut totals = [0f32; 4];
    for i in 0..4 {
        totals[i] = horizontal_sum(acc[i]);
    }
    totals
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn horizontal_sum(v: __m256) -> f32 {
    let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
    _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
}
