//! AVX2/FMA kernels: 32 products per block in one `maddubs` (unsigned weights times signed
//! activations), widened to 32 bits, converted and scaled with one fused multiply-add.

use super::{Kernels, WeightRow, check_lengths};
use crate::{BLOCK, activations::ActivationRow};
use std::arch::x86_64::*;

/// # Safety
/// The CPU supports AVX2 and FMA.
pub(super) unsafe fn kernels() -> Kernels {
    Kernels {
        name: "avx2",
        // SAFETY (all four): these pointers are only handed out after AVX2 and FMA were detected.
        q4_x1: |w, x| unsafe { q4::<1>(w, [x])[0] },
        q4_x4: |w, x| unsafe { q4::<4>(w, x) },
        q8_x1: |w, x| unsafe { q8::<1>(w, [x])[0] },
        q8_x4: |w, x| unsafe { q8::<4>(w, x) },
    }
}

/// 4-bit weights against `N` activation rows; the weights are unpacked once per block.
#[target_feature(enable = "avx2,fma")]
unsafe fn q4<const N: usize>(w: WeightRow<'_>, x: [ActivationRow<'_>; N]) -> [f32; N] {
    for x in x {
        check_lengths(w, x, BLOCK / 2);
    }
    let low_nibbles = _mm_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..w.scales.len() {
        // SAFETY: check_lengths bounds every load below by the rows' block counts.
        let packed = unsafe { _mm_loadu_si128(w.quants.as_ptr().add(b * BLOCK / 2).cast()) };
        let low = _mm_and_si128(packed, low_nibbles);
        let high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibbles);
        let weights = _mm256_set_m128i(high, low);
        for (acc, x) in acc.iter_mut().zip(&x) {
            let a = unsafe { _mm256_loadu_si256(x.quants.as_ptr().add(b * BLOCK).cast()) };
            let products = _mm256_madd_epi16(_mm256_maddubs_epi16(weights, a), ones);
            let scale = _mm256_set1_ps(w.scales[b] * x.scales[b]);
            *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(products), *acc);
        }
    }
    std::array::from_fn(|i| {
        let offsets: f32 = w.offsets.iter().zip(x[i].sums).map(|(m, s)| m * s).sum();
        horizontal_sum(acc[i]) + offsets
    })
}

/// Signed 8-bit weights against `N` activation rows: the weights' signs move onto the
/// activations so that `maddubs` sees unsigned magnitudes.
#[target_feature(enable = "avx2,fma")]
unsafe fn q8<const N: usize>(w: WeightRow<'_>, x: [ActivationRow<'_>; N]) -> [f32; N] {
    for x in x {
        check_lengths(w, x, BLOCK);
    }
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..w.scales.len() {
        // SAFETY: check_lengths bounds every load below by the rows' block counts.
        let weights = unsafe { _mm256_loadu_si256(w.quants.as_ptr().add(b * BLOCK).cast()) };
        let magnitudes = _mm256_sign_epi8(weights, weights);
        for (acc, x) in acc.iter_mut().zip(&x) {
            let a = unsafe { _mm256_loadu_si256(x.quants.as_ptr().add(b * BLOCK).cast()) };
            let signed = _mm256_sign_epi8(a, weights);
            let products = _mm256_madd_epi16(_mm256_maddubs_epi16(magnitudes, signed), ones);
            let scale = _mm256_set1_ps(w.scales[b] * x.scales[b]);
            *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(products), *acc);
        }
    }
    acc.map(|acc| horizontal_sum(acc))
}

#[target_feature(enable = "avx2,fma")]
fn horizontal_sum(v: __m256) -> f32 {
    let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
    _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
}
