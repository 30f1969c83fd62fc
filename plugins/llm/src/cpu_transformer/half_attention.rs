//! Attention's two passes read straight from an f16 key/value cache. The portable path
//! converts a block of cached rows into an f32 buffer and reads that back; here F16C widens
//! each row inside the sums, so the cache is read once and nothing is written out. The sums are
//! added up in the portable path's order, so the results are the same to the bit.

use half::f16;

/// Whether this CPU has AVX2, FMA and F16C, checked once.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            use std::is_x86_feature_detected as has;
            has!("avx2") && has!("fma") && has!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `weights[t] = scale · query·key(t)` for the `query.len()`-wide rows of `keys`.
///
/// # Panics
/// Unless [`available`], or unless the width is a multiple of eight and `keys` holds
/// `weights.len()` rows.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub(super) fn scores(query: &[f32], keys: &[f16], scale: f32, weights: &mut [f32]) {
    check(query.len(), keys.len(), weights.len());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `check` asserted the features and the lengths.
    unsafe {
        x86::scores(query, keys, scale, weights)
    }
}

/// `out += Σₜ weights[t] · value(t)` for the `out.len()`-wide rows of `values`.
///
/// # Panics
/// As [`scores`].
pub(super) fn weighted_sum(weights: &[f32], values: &[f16], out: &mut [f32]) {
    check(out.len(), values.len(), weights.len());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `check` asserted the features and the lengths.
    unsafe {
        x86::weighted_sum(weights, values, out)
    }
}

fn check(width: usize, values: usize, positions: usize) {
    assert!(available(), "f16 attention needs AVX2, FMA and F16C");
    assert!(
        width.is_multiple_of(8) && values == width * positions,
        "{positions} rows {width} wide in {values} values"
    );
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use half::f16;
    use std::arch::x86_64::*;

    /// Cached positions taken together, as the portable path takes them.
    const STEP: usize = 4;

    /// Eight cached values from `at`, widened.
    ///
    /// # Safety
    /// `at..at + 8` lies in `rows`; the CPU has F16C.
    #[inline(always)]
    unsafe fn load(rows: &[f16], at: usize) -> __m256 {
        // SAFETY: guaranteed by the caller.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(rows.as_ptr().add(at).cast())) }
    }

    /// The lanes of `sum` added first to last, as an `[f32; 8]` sums.
    #[inline(always)]
    unsafe fn lanes_in_order(sum: __m256) -> f32 {
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds eight floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        lanes.iter().sum()
    }

    /// # Safety
    /// AVX2, FMA and F16C; `keys` holds `weights.len()` rows of `query.len()`, a multiple of
    /// eight.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores(query: &[f32], keys: &[f16], scale: f32, weights: &mut [f32]) {
        let width = query.len();
        let mut start = 0;
        while start < weights.len() {
            let count = STEP.min(weights.len() - start);
            let mut partial = [_mm256_setzero_ps(); STEP];
            for c in (0..width).step_by(8) {
                // SAFETY: `c + 8 <= width`; row `start + s` is inside `keys`.
                unsafe {
                    let q = _mm256_loadu_ps(query.as_ptr().add(c));
                    for (s, partial) in partial.iter_mut().enumerate().take(count) {
                        let k = load(keys, (start + s) * width + c);
                        *partial = _mm256_add_ps(*partial, _mm256_mul_ps(q, k));
                    }
                }
            }
            for (s, partial) in partial.iter().enumerate().take(count) {
                // SAFETY: AVX is enabled.
                weights[start + s] = scale * unsafe { lanes_in_order(*partial) };
            }
            start += count;
        }
    }

    /// # Safety
    /// AVX2, FMA and F16C; `values` holds `weights.len()` rows of `out.len()`, a multiple of
    /// eight.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn weighted_sum(weights: &[f32], values: &[f16], out: &mut [f32]) {
        let width = out.len();
        let whole = weights.len() / STEP * STEP;
        for t in (0..whole).step_by(STEP) {
            let w: [__m256; STEP] = std::array::from_fn(|s| _mm256_set1_ps(weights[t + s]));
            for d in (0..width).step_by(8) {
                // SAFETY: `d + 8 <= width`; rows `t..t + 4` are inside `values`.
                unsafe {
                    let v = |s: usize| _mm256_mul_ps(w[s], load(values, (t + s) * width + d));
                    let sum = _mm256_add_ps(_mm256_add_ps(v(0), v(1)), _mm256_add_ps(v(2), v(3)));
                    let o = out.as_mut_ptr().add(d);
                    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), sum));
                }
            }
        }
        for (t, &weight) in weights.iter().enumerate().skip(whole) {
            let w = _mm256_set1_ps(weight);
            for d in (0..width).step_by(8) {
                // SAFETY: as above, for row `t`.
                unsafe {
                    let o = out.as_mut_ptr().add(d);
                    let v = _mm256_mul_ps(w, load(values, t * width + d));
                    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), v));
                }
            }
        }
    }
}
