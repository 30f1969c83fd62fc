//! AVX-512 VNNI kernels: a group's sixteen rows sit in the sixteen 32-bit lanes of a register,
//! and `vpdpbusd` multiplies four unsigned weights of every row by four signed activations
//! (broadcast to every lane) and adds them into the row's lane, eight times per block. A
//! block's integer sums then take one conversion and one multiply-add per activation row (two
//! in Q6_K, whose halves have scales of their own). 5- and 6-bit values are nibbles with their
//! higher bits moved in from planes (see `interleave.rs`).

use super::{Group, Kernels, check_lengths};
use crate::{
    BLOCK, BlockFormat, activations::ActivationRow, format::BLOCKS_PER_SUPER_BLOCK,
    interleave::GROUP,
};
use half::f16;
use std::arch::x86_64::*;

/// # Safety
/// The CPU supports AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
pub(super) unsafe fn kernels() -> Kernels {
    Kernels {
        name: "avx512-vnni",
        // SAFETY (both): these pointers are only handed out once the features were detected.
        x1: |w, x| unsafe { rows(w, [x]) }[0],
        x4: |w, x| unsafe { rows(w, x) },
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn rows<const N: usize>(w: Group<'_>, x: [ActivationRow<'_>; N]) -> [[f32; GROUP]; N] {
    for x in x {
        check_lengths(w, x);
    }
    // SAFETY: the lengths were checked; the caller's features are these functions'.
    let sums = unsafe {
        match w.format {
            BlockFormat::Q4_0 => blocks::<N, 4, 8, false, false, false>(w, x),
            BlockFormat::Q4_1 => blocks::<N, 4, 0, true, false, false>(w, x),
            BlockFormat::Q4_K => blocks::<N, 4, 0, true, false, true>(w, x),
            BlockFormat::Q5_0 => blocks::<N, 5, 16, false, false, false>(w, x),
            BlockFormat::Q5_1 => blocks::<N, 5, 0, true, false, false>(w, x),
            BlockFormat::Q5_K => blocks::<N, 5, 0, true, false, true>(w, x),
            BlockFormat::Q6_K => blocks::<N, 6, 32, false, true, true>(w, x),
            BlockFormat::Q8_0 => blocks::<N, 8, 128, false, false, false>(w, x),
        }
    };
    let mut out = [[0f32; GROUP]; N];
    for i in 0..N {
        // SAFETY: `out[i]` holds sixteen floats.
        unsafe { _mm512_storeu_ps(out[i].as_mut_ptr(), sums[i]) };
    }
    out
}

/// The group's sums for `N` activation rows: `BITS`-bit stored values, `ZERO` the zero point
/// subtracted once per block (through the activations' integer sums), `MINIMUM` whether blocks
/// add a minimum, `HALVES` whether each half of a block has a scale of its own. Two chains of
/// integer sums per row (low and high nibbles, that is the block's halves, or even and odd
/// steps) keep consecutive `vpdpbusd`s from waiting on each other.
///
/// # Safety
/// [`check_lengths`] passed for every activation row.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn blocks<
    const N: usize,
    const BITS: u32,
    const ZERO: i32,
    const MINIMUM: bool,
    const HALVES: bool,
    const SUPER: bool,
>(
    w: Group<'_>,
    x: [ActivationRow<'_>; N],
) -> [__m512; N] {
    let bytes = GROUP * w.format.packed_block_bytes();
    let sets = if HALVES { 2 } else { 1 };
    let nibble = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); N];
    for b in 0..w.blocks() {
        // SAFETY (this block): check_lengths bounds block b of the group and of every row.
        unsafe {
            let q = w.quants.as_ptr().add(b * bytes);
            let mut first = [_mm512_setzero_si512(); N];
            let mut second = [_mm512_setzero_si512(); N];
            if ZERO != 0 {
                for i in 0..N {
                    let sum = *x[i].integer_sums.get_unchecked(b);
                    if HALVES {
                        let half = *x[i].half_sums.get_unchecked(b);
                        first[i] = _mm512_set1_epi32(-ZERO * half);
                        second[i] = _mm512_set1_epi32(-ZERO * (sum - half));
                    } else {
                        first[i] = _mm512_set1_epi32(-ZERO * sum);
                    }
                }
            }
            if BITS < 8 {
                let planes = [0, 1].map(|k| {
                    if BITS as usize > 4 + k {
                        _mm512_loadu_si512(q.add(256 + k * 64).cast())
                    } else {
                        _mm512_setzero_si512()
                    }
                });
                for p in 0..4 {
                    let v = _mm512_loadu_si512(q.add(p * 64).cast());
                    let mut low = _mm512_and_si512(v, nibble);
                    let mut high = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
                    let step = p as u32;
                    if BITS == 5 {
                        low = _mm512_or_si512(low, bits_to_4(planes[0], step, 1));
                        high = _mm512_or_si512(high, bits_to_4(planes[0], 4 + step, 1));
                    } else if BITS == 6 {
                        low = _mm512_or_si512(low, bits_to_4(planes[0], 2 * step, 2));
                        high = _mm512_or_si512(high, bits_to_4(planes[1], 2 * step, 2));
                    }
                    for i in 0..N {
                        let at = b * BLOCK + 4 * p;
                        first[i] = _mm512_dpbusd_epi32(first[i], low, broadcast(x[i], at));
                        second[i] = _mm512_dpbusd_epi32(second[i], high, broadcast(x[i], at + 16));
                    }
                }
            } else {
                for k in (0..8).step_by(2) {
                    let even = _mm512_loadu_si512(q.add(k * 64).cast());
                    let odd = _mm512_loadu_si512(q.add(k * 64 + 64).cast());
                    for i in 0..N {
                        let at = b * BLOCK + 4 * k;
                        first[i] = _mm512_dpbusd_epi32(first[i], even, broadcast(x[i], at));
                        second[i] = _mm512_dpbusd_epi32(second[i], odd, broadcast(x[i], at + 4));
                    }
                }
            }
            // Half `h`'s scales (or, from `w.minimums`, the minimums: their formats have one
            // set per block, so the same indices serve).
            let factors = |f16s: &[f16], integers: &[i8], h: usize| {
                let own = (b * sets + h) * GROUP;
                let at = if SUPER {
                    b / BLOCKS_PER_SUPER_BLOCK * GROUP
                } else {
                    own
                };
                let f = _mm512_cvtph_ps(_mm256_loadu_si256(f16s.as_ptr().add(at).cast()));
                if SUPER {
                    let integers = _mm_loadu_si128(integers.as_ptr().add(own).cast());
                    _mm512_mul_ps(f, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(integers)))
                } else {
                    f
                }
            };
            let scales = factors(w.scales, w.integer_scales, 0);
            let second_scales = if HALVES {
                factors(w.scales, w.integer_scales, 1)
            } else {
                _mm512_setzero_ps()
            };
            let minimums = if MINIMUM {
                factors(w.minimums, w.integer_minimums, 0)
            } else {
                _mm512_setzero_ps()
            };
            for i in 0..N {
                let dx = _mm512_set1_ps(*x[i].scales.get_unchecked(b));
                if HALVES {
                    let (a, b) = (_mm512_cvtepi32_ps(first[i]), _mm512_cvtepi32_ps(second[i]));
                    acc[i] = _mm512_fmadd_ps(a, _mm512_mul_ps(scales, dx), acc[i]);
                    acc[i] = _mm512_fmadd_ps(b, _mm512_mul_ps(second_scales, dx), acc[i]);
                } else {
                    let sums = _mm512_cvtepi32_ps(_mm512_add_epi32(first[i], second[i]));
                    acc[i] = _mm512_fmadd_ps(sums, _mm512_mul_ps(scales, dx), acc[i]);
                }
                if MINIMUM {
                    let sum = _mm512_set1_ps(*x[i].sums.get_unchecked(b));
                    acc[i] = _mm512_fmadd_ps(minimums, sum, acc[i]);
                }
            }
        }
    }
    acc
}

/// The `width` bits from bit `from` of every byte of `plane`, moved to bits `4..4 + width`
/// (others cleared): a 5- or 6-bit value's bits above its nibble.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
fn bits_to_4(plane: __m512i, from: u32, width: u32) -> __m512i {
    // The bits stay within their byte, so shifting 16-bit lanes moves each where it belongs.
    let moved = if from > 4 {
        _mm512_srl_epi16(plane, _mm_cvtsi32_si128((from - 4) as i32))
    } else {
        _mm512_sll_epi16(plane, _mm_cvtsi32_si128((4 - from) as i32))
    };
    _mm512_and_si512(moved, _mm512_set1_epi8((((1u32 << width) - 1) << 4) as i8))
}

/// Activations `at..at + 4` of `x`, in every lane.
///
/// # Safety
/// `at + 4 <= x.quants.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn broadcast(x: ActivationRow<'_>, at: usize) -> __m512i {
    // SAFETY: guaranteed by the caller.
    _mm512_set1_epi32(unsafe { x.quants.as_ptr().add(at).cast::<i32>().read_unaligned() })
}
