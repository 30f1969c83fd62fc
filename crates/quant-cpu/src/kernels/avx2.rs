//! AVX2/FMA/F16C kernels: the layout of the AVX-512 ones, eight rows of a group at a time.
//! Without VNNI, four products per lane take `maddubs` (unsigned weights times signed
//! activations, in pairs) and `madd` (pairs summed, or in the K-quants multiplied by the
//! blocks' integer scales). 8-bit weights get their sign back and move it onto the activations,
//! since `maddubs` pairs of 255·127 would saturate. 5- and 6-bit values are nibbles with their
//! higher bits moved in from planes (see `interleave.rs`).

use super::{Group, Kernels, check_lengths};
use crate::{
    BLOCK, BlockFormat, activations::ActivationRow, format::BLOCKS_PER_SUPER_BLOCK,
    interleave::GROUP,
};
use std::arch::x86_64::*;

/// Rows of a group one register holds.
const HALF: usize = GROUP / 2;

/// # Safety
/// The CPU supports AVX2, FMA and F16C.
pub(super) unsafe fn kernels() -> Kernels {
    Kernels {
        name: "avx2",
        // SAFETY (both): these pointers are only handed out once the features were detected.
        x1: |w, x| unsafe { rows(w, [x]) }[0],
        x4: |w, x| unsafe { rows(w, x) },
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows<const N: usize>(w: Group<'_>, x: [ActivationRow<'_>; N]) -> [[f32; GROUP]; N] {
    for x in x {
        check_lengths(w, x);
    }
    let mut out = [[0f32; GROUP]; N];
    let mut store = |half: usize, sums: [__m256; N]| {
        for i in 0..N {
            // SAFETY: `out[i]` holds two halves of eight floats.
            unsafe { _mm256_storeu_ps(out[i].as_mut_ptr().add(half * HALF), sums[i]) };
        }
    };
    // SAFETY (both): the lengths were checked; the caller's features are these functions'.
    if N == 1 {
        let [first, second] = unsafe { by_format::<N, 2>(w, x, 0) };
        store(0, first);
        store(1, second);
    } else {
        for half in 0..2 {
            let [sums] = unsafe { by_format::<N, 1>(w, x, half) };
            store(half, sums);
        }
    }
    out
}

/// [`blocks`] or [`super_blocks`] for the group's format: `H` halves of the group from
/// `first_half` on.
///
/// # Safety
/// As for [`blocks`].
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn by_format<const N: usize, const H: usize>(
    w: Group<'_>,
    x: [ActivationRow<'_>; N],
    first_half: usize,
) -> [[__m256; N]; H] {
    // SAFETY: guaranteed by the caller.
    unsafe {
        match w.format {
            BlockFormat::Q4_0 => blocks::<N, H, 4, 8, false>(w, x, first_half),
            BlockFormat::Q4_1 => blocks::<N, H, 4, 0, true>(w, x, first_half),
            BlockFormat::Q5_0 => blocks::<N, H, 5, 16, false>(w, x, first_half),
            BlockFormat::Q5_1 => blocks::<N, H, 5, 0, true>(w, x, first_half),
            BlockFormat::Q8_0 => blocks::<N, H, 8, 0, false>(w, x, first_half),
            BlockFormat::Q4_K => super_blocks::<N, H, 4, true, false>(w, x, first_half),
            BlockFormat::Q5_K => super_blocks::<N, H, 5, true, false>(w, x, first_half),
            BlockFormat::Q6_K => super_blocks::<N, H, 6, false, true>(w, x, first_half),
        }
    }
}

/// Halves `first_half..first_half + H` of the group (rows `8·half..8·half + 8` each) against
/// `N` activation rows, in a format with blocks of 32; with both halves at once, each block's
/// bytes are read in one pass. Values below 8 bits are unsigned with zero point `ZERO`
/// (subtracted once per block through the activations' integer sums); 8-bit ones are turned
/// back into signed bytes, so they need none.
///
/// # Safety
/// [`check_lengths`] passed for every activation row, and `first_half + H <= 2`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn blocks<
    const N: usize,
    const H: usize,
    const BITS: u32,
    const ZERO: i32,
    const MINIMUM: bool,
>(
    w: Group<'_>,
    x: [ActivationRow<'_>; N],
    first_half: usize,
) -> [[__m256; N]; H] {
    let bytes = GROUP * w.format.packed_block_bytes();
    let sign_bit = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); N]; H];
    for b in 0..w.blocks() {
        for (half, acc) in (first_half..).zip(&mut acc) {
            // SAFETY (this block): check_lengths bounds block b of the group and of every row.
            unsafe {
                let q = w.quants.as_ptr().add(b * bytes + half * 32);
                let mut sums = [_mm256_setzero_si256(); N];
                if BITS < 8 {
                    for i in 0..N {
                        let sum = *x[i].integer_sums.get_unchecked(b);
                        sums[i] = _mm256_set1_epi32(-ZERO * sum);
                    }
                    narrow_products::<N, BITS, false>(q, x, b * BLOCK, [ones; 2], &mut sums);
                } else {
                    for k in 0..8 {
                        let signed =
                            _mm256_xor_si256(_mm256_loadu_si256(q.add(k * 64).cast()), sign_bit);
                        let magnitude = _mm256_abs_epi8(signed);
                        for i in 0..N {
                            let a = _mm256_sign_epi8(broadcast(x[i], b * BLOCK + 4 * k), signed);
                            let pairs = _mm256_maddubs_epi16(magnitude, a);
                            sums[i] = _mm256_add_epi32(sums[i], _mm256_madd_epi16(pairs, ones));
                        }
                    }
                }
                // The block's scales and minimums: one set per block, so the same indices serve.
                let at = b * GROUP + half * HALF;
                let scales = _mm256_cvtph_ps(_mm_loadu_si128(w.scales.as_ptr().add(at).cast()));
                let minimums = if MINIMUM {
                    _mm256_cvtph_ps(_mm_loadu_si128(w.minimums.as_ptr().add(at).cast()))
                } else {
                    _mm256_setzero_ps()
                };
                for i in 0..N {
                    let dx = _mm256_set1_ps(*x[i].scales.get_unchecked(b));
                    let scale = _mm256_mul_ps(scales, dx);
                    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[i]), scale, acc[i]);
                    if MINIMUM {
                        let sum = _mm256_set1_ps(*x[i].sums.get_unchecked(b));
                        acc[i] = _mm256_fmadd_ps(minimums, sum, acc[i]);
                    }
                }
            }
        }
    }
    acc
}

/// As [`blocks`] for the K-quants, whose activations share one scale per super-block (checked
/// by [`check_lengths`]): each block's 16-bit pair sums are widened by `madd` with the block's
/// integer scales (of each half of 16 values when `HALVES`, as in Q6_K, whose zero point is
/// 32) instead of ones, so a super-block's sums, minimums' sums included (`MINIMUM`), add up
/// in integers and take one float multiply-add per activation row. The largest super-block
/// sum, Q6_K's 8·32·63·127·128, fits 31 bits.
///
/// # Safety
/// As for [`blocks`].
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn super_blocks<
    const N: usize,
    const H: usize,
    const BITS: u32,
    const MINIMUM: bool,
    const HALVES: bool,
>(
    w: Group<'_>,
    x: [ActivationRow<'_>; N],
    first_half: usize,
) -> [[__m256; N]; H] {
    let bytes = GROUP * w.format.packed_block_bytes();
    let sets = if HALVES { 2 } else { 1 };
    let mut acc = [[_mm256_setzero_ps(); N]; H];
    for s in 0..w.blocks() / BLOCKS_PER_SUPER_BLOCK {
        for (half, acc) in (first_half..).zip(&mut acc) {
            // SAFETY (this super-block): check_lengths bounds its blocks in the group and in
            // every row.
            unsafe {
                let mut sums = [_mm256_setzero_si256(); N];
                let mut minimum_sums = [_mm256_setzero_si256(); N];
                for b in s * BLOCKS_PER_SUPER_BLOCK..(s + 1) * BLOCKS_PER_SUPER_BLOCK {
                    let integers = |values: &[i8], h: usize| {
                        let at = (b * sets + h) * GROUP + half * HALF;
                        _mm_loadl_epi64(values.as_ptr().add(at).cast())
                    };
                    let first = integers(w.integer_scales, 0);
                    let second = if HALVES {
                        integers(w.integer_scales, 1)
                    } else {
                        first
                    };
                    // Each row's scale in both 16-bit halves of its lane, as `madd` pairs them.
                    let doubled = [first, second]
                        .map(|scales| _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(scales, scales)));
                    let q = w.quants.as_ptr().add(b * bytes + half * 32);
                    narrow_products::<N, BITS, HALVES>(q, x, b * BLOCK, doubled, &mut sums);
                    if HALVES {
                        // Less 32 · Σₕ scaleₕ · (the half's activation sum), one `madd` per row.
                        let scales = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(first, second));
                        for i in 0..N {
                            let first_half = *x[i].half_sums.get_unchecked(b);
                            let second_half = *x[i].integer_sums.get_unchecked(b) - first_half;
                            let halves = (first_half & 0xFFFF) | (second_half << 16);
                            let zero = _mm256_madd_epi16(scales, _mm256_set1_epi32(halves));
                            sums[i] = _mm256_sub_epi32(sums[i], _mm256_slli_epi32(zero, 5));
                        }
                    }
                    if MINIMUM {
                        // Minimums are 6-bit, so each lane's upper 16 bits are zero and `madd`
                        // multiplies the lower ones by the block's sum (which fits 16 bits).
                        let minimums = _mm256_cvtepi8_epi32(integers(w.integer_minimums, 0));
                        for i in 0..N {
                            let sum = _mm256_set1_epi32(*x[i].integer_sums.get_unchecked(b));
                            let product = _mm256_madd_epi16(minimums, sum);
                            minimum_sums[i] = _mm256_add_epi32(minimum_sums[i], product);
                        }
                    }
                }
                let at = s * GROUP + half * HALF;
                let scales = _mm256_cvtph_ps(_mm_loadu_si128(w.scales.as_ptr().add(at).cast()));
                let minimums = if MINIMUM {
                    _mm256_cvtph_ps(_mm_loadu_si128(w.minimums.as_ptr().add(at).cast()))
                } else {
                    _mm256_setzero_ps()
                };
                for i in 0..N {
                    let dx = _mm256_set1_ps(*x[i].scales.get_unchecked(s * BLOCKS_PER_SUPER_BLOCK));
                    let scale = _mm256_mul_ps(scales, dx);
                    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[i]), scale, acc[i]);
                    if MINIMUM {
                        let sums = _mm256_cvtepi32_ps(minimum_sums[i]);
                        acc[i] = _mm256_fmadd_ps(sums, _mm256_mul_ps(minimums, dx), acc[i]);
                    }
                }
            }
        }
    }
    acc
}

/// Adds one block's products of `BITS`-bit values (below 8: nibbles plus bit planes) with `N`
/// activation rows (from value `at` of each) to `sums`, eight rows of a group per register.
/// `maddubs`'s 16-bit pair sums are added up over several steps before `madd` widens them,
/// multiplied by `widen[0]` (the pairs of the block's first 16 values) and `widen[1]` (of the
/// last 16), which `SPLIT` keeps apart; else both take `widen[0]`. A nibble pair's products
/// (2·15·127) over four steps of both nibbles fit 16 bits, a 5- or 6-bit pair's (at most
/// 2·63·127) over two steps of one half or (5-bit) both.
///
/// # Safety
/// `q` points at the block's bytes for these eight rows, and every row has values
/// `at..at + 32`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn narrow_products<const N: usize, const BITS: u32, const SPLIT: bool>(
    q: *const u8,
    x: [ActivationRow<'_>; N],
    at: usize,
    widen: [__m256i; 2],
    sums: &mut [__m256i; N],
) {
    let nibble = _mm256_set1_epi8(0x0F);
    let steps_in_16_bits = if BITS == 4 { 4 } else { 2 };
    // SAFETY: guaranteed by the caller.
    unsafe {
        let planes = [0, 1].map(|k| {
            if BITS as usize > 4 + k {
                _mm256_loadu_si256(q.add(256 + k * 64).cast())
            } else {
                _mm256_setzero_si256()
            }
        });
        let mut pairs = [_mm256_setzero_si256(); N];
        let mut second_pairs = [_mm256_setzero_si256(); N];
        for p in 0..4 {
            let v = _mm256_loadu_si256(q.add(p * 64).cast());
            let mut low = _mm256_and_si256(v, nibble);
            let mut high = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
            let step = p as u32;
            if BITS == 5 {
                low = _mm256_or_si256(low, bits_to_4(planes[0], step, 1));
                high = _mm256_or_si256(high, bits_to_4(planes[0], 4 + step, 1));
            } else if BITS == 6 {
                low = _mm256_or_si256(low, bits_to_4(planes[0], 2 * step, 2));
                high = _mm256_or_si256(high, bits_to_4(planes[1], 2 * step, 2));
            }
            for i in 0..N {
                let low = _mm256_maddubs_epi16(low, broadcast(x[i], at + 4 * p));
                let high = _mm256_maddubs_epi16(high, broadcast(x[i], at + 16 + 4 * p));
                if SPLIT {
                    pairs[i] = _mm256_add_epi16(pairs[i], low);
                    second_pairs[i] = _mm256_add_epi16(second_pairs[i], high);
                } else {
                    pairs[i] = _mm256_add_epi16(pairs[i], _mm256_add_epi16(low, high));
                }
                if (p + 1) % steps_in_16_bits == 0 {
                    let widened = _mm256_madd_epi16(pairs[i], widen[0]);
                    sums[i] = _mm256_add_epi32(sums[i], widened);
                    pairs[i] = _mm256_setzero_si256();
                    if SPLIT {
                        let widened = _mm256_madd_epi16(second_pairs[i], widen[1]);
                        sums[i] = _mm256_add_epi32(sums[i], widened);
                        second_pairs[i] = _mm256_setzero_si256();
                    }
                }
            }
        }
    }
}

/// The `width` bits from bit `from` of every byte of `plane`, moved to bits `4..4 + width`
/// (others cleared): a 5- or 6-bit value's bits above its nibble.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn bits_to_4(plane: __m256i, from: u32, width: u32) -> __m256i {
    // The bits stay within their byte, so shifting 16-bit lanes moves each where it belongs.
    let moved = if from > 4 {
        _mm256_srl_epi16(plane, _mm_cvtsi32_si128((from - 4) as i32))
    } else {
        _mm256_sll_epi16(plane, _mm_cvtsi32_si128((4 - from) as i32))
    };
    _mm256_and_si256(moved, _mm256_set1_epi8((((1u32 << width) - 1) << 4) as i8))
}

/// Activations `at..at + 4` of `x`, in every lane.
///
/// # Safety
/// `at + 4 <= x.quants.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn broadcast(x: ActivationRow<'_>, at: usize) -> __m256i {
    // SAFETY: guaranteed by the caller.
    _mm256_set1_epi32(unsafe { x.quants.as_ptr().add(at).cast::<i32>().read_unaligned() })
}
