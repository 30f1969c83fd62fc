//! NEON kernels for aarch64: the interleaved layout read four rows to a register (each 64-byte
//! step is four registers of four rows times four values). With the dot-product extension,
//! `sdot` multiplies four weights of each row by four activations and adds them into the row's
//! lane; without it, widening multiplies and pairwise adds compute the same sums. Weights and
//! activations are both signed here: values below 8 bits are small enough as they are, and
//! Q8_0's stored bytes get their sign back. 5- and 6-bit values are nibbles with their higher
//! bits moved in from planes (see `interleave.rs`).

use super::{Group, Kernels, check_lengths};
use crate::{
    BLOCK, BlockFormat, activations::ActivationRow, format::BLOCKS_PER_SUPER_BLOCK,
    interleave::GROUP,
};
use half::f16;
use std::arch::aarch64::*;
use std::arch::asm;

/// Rows of a group one register holds.
const QUAD: usize = 4;

/// Registers of a group's rows.
const QUADS: usize = GROUP / QUAD;

/// The kernels for every aarch64 CPU (NEON is part of the base architecture).
pub(super) fn kernels() -> Kernels {
    Kernels {
        name: "neon",
        // SAFETY (both): widening products are base NEON.
        x1: |w, x| unsafe { rows::<1, Widening>(w, [x]) }[0],
        x4: |w, x| unsafe { rows::<4, Widening>(w, x) },
    }
}

/// The kernels that use `sdot`.
///
/// # Safety
/// The CPU has the dot-product extension.
pub(super) unsafe fn dot_kernels() -> Kernels {
    Kernels {
        name: "neon-dotprod",
        // SAFETY (both): these pointers are only handed out once the extension was detected.
        x1: |w, x| unsafe { rows_with_sdot(w, [x]) }[0],
        x4: |w, x| unsafe { rows_with_sdot(w, x) },
    }
}

#[target_feature(enable = "dotprod")]
unsafe fn rows_with_sdot<const N: usize>(
    w: Group<'_>,
    x: [ActivationRow<'_>; N],
) -> [[f32; GROUP]; N] {
    // SAFETY: the caller's CPU has the extension, and this function enables it.
    unsafe { rows::<N, Sdot>(w, x) }
}

/// Four signed 8-bit products per 32-bit lane, added into the lane.
trait Products {
    /// `acc[j] += Σₜ w[4j + t] · a[4j + t]`.
    ///
    /// # Safety
    /// The CPU runs the instructions the implementation uses.
    unsafe fn dot(acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t;
}

/// `sdot`, from the dot-product extension (its intrinsic is not stable in Rust yet).
struct Sdot;

impl Products for Sdot {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: the caller's CPU has the extension; the instruction touches registers only.
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {w:v}.16b, {a:v}.16b",
                acc = inout(vreg) acc,
                w = in(vreg) w,
                a = in(vreg) a,
                options(pure, nomem, nostack),
            );
        }
        acc
    }
}

/// Base NEON: widening multiplies into 16 bits, then pairwise adds. A pair of products is at
/// most 2·128·127, which 16 bits hold.
struct Widening;

impl Products for Widening {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t {
        // SAFETY: NEON is part of aarch64's base architecture.
        unsafe {
            let low = vmull_s8(vget_low_s8(w), vget_low_s8(a));
            let high = vmull_high_s8(w, a);
            vpadalq_s16(acc, vpaddq_s16(low, high))
        }
    }
}

/// The group's outputs for `N` activation rows. One row takes all of the group's rows in one
/// pass over its blocks; four take one register of rows at a time, which leaves their sums
/// room in the 32 registers.
///
/// # Safety
/// The CPU runs `P`'s instructions.
#[inline(always)]
unsafe fn rows<const N: usize, P: Products>(
    w: Group<'_>,
    x: [ActivationRow<'_>; N],
) -> [[f32; GROUP]; N] {
    for x in x {
        check_lengths(w, x);
    }
    let mut out = [[0f32; GROUP]; N];
    let mut store = |i: usize, quad: usize, sums: float32x4_t| {
        // SAFETY: row i's sixteen floats hold the quad's four.
        unsafe { vst1q_f32(out[i].as_mut_ptr().add(quad * QUAD), sums) };
    };
    // SAFETY (both): the lengths were checked; the caller's CPU runs `P`'s instructions.
    if N == 1 {
        let [sums] = unsafe { by_format::<1, QUADS, P>(w, [x[0]], 0) };
        for (quad, sums) in sums.into_iter().enumerate() {
            store(0, quad, sums);
        }
    } else {
        for quad in 0..QUADS {
            let sums = unsafe { by_format::<N, 1, P>(w, x, quad) };
            for (i, [sums]) in sums.into_iter().enumerate() {
                store(i, quad, sums);
            }
        }
    }
    out
}

/// [`blocks`] for the group's format: `Q` registers of rows from register `first` on.
///
/// # Safety
/// As for [`blocks`].
#[inline(always)]
unsafe fn by_format<const N: usize, const Q: usize, P: Products>(
    w: Group<'_>,
    x: [ActivationRow<'_>; N],
    first: usize,
) -> [[float32x4_t; Q]; N] {
    // SAFETY: guaranteed by the caller.
    unsafe {
        match w.format {
            BlockFormat::Q4_0 => blocks::<N, Q, P, 4, 8, false, false, false>(w, x, first),
            BlockFormat::Q4_1 => blocks::<N, Q, P, 4, 0, true, false, false>(w, x, first),
            BlockFormat::Q4_K => blocks::<N, Q, P, 4, 0, true, false, true>(w, x, first),
            BlockFormat::Q5_0 => blocks::<N, Q, P, 5, 16, false, false, false>(w, x, first),
            BlockFormat::Q5_1 => blocks::<N, Q, P, 5, 0, true, false, false>(w, x, first),
            BlockFormat::Q5_K => blocks::<N, Q, P, 5, 0, true, false, true>(w, x, first),
            BlockFormat::Q6_K => blocks::<N, Q, P, 6, 32, false, true, true>(w, x, first),
            BlockFormat::Q8_0 => blocks::<N, Q, P, 8, 0, false, false, false>(w, x, first),
        }
    }
}

/// Registers `first..first + Q` of the group's rows against `N` activation rows: `BITS`-bit
/// values with zero point `ZERO` (subtracted once per block through the activations' integer
/// sums, or per half when `HALVES`: each half of a block then has a scale of its own),
/// `MINIMUM` whether blocks add a minimum.
///
/// # Safety
/// [`check_lengths`] passed for every activation row, `first + Q <= 4`, and the CPU runs
/// `P`'s instructions.
#[inline(always)]
unsafe fn blocks<
    const N: usize,
    const Q: usize,
    P: Products,
    const BITS: u32,
    const ZERO: i32,
    const MINIMUM: bool,
    const HALVES: bool,
    const SUPER: bool,
>(
    w: Group<'_>,
    x: [ActivationRow<'_>; N],
    first: usize,
) -> [[float32x4_t; Q]; N] {
    let bytes = GROUP * w.format.packed_block_bytes();
    let sets = if HALVES { 2 } else { 1 };
    // SAFETY: NEON is part of aarch64's base architecture.
    let mut acc = [[unsafe { vdupq_n_f32(0.0) }; Q]; N];
    for b in 0..w.blocks() {
        // SAFETY (this block): check_lengths bounds block b of the group and of every row.
        unsafe {
            let block = w.quants.as_ptr().add(b * bytes);
            let rows_at = |offset: usize, k: usize| vld1q_u8(block.add(offset + (first + k) * 16));
            let mut sums = [[vdupq_n_s32(0); Q]; N];
            let mut second = [[vdupq_n_s32(0); Q]; N];
            if ZERO != 0 {
                for i in 0..N {
                    let sum = *x[i].integer_sums.get_unchecked(b);
                    if HALVES {
                        let first_half = *x[i].half_sums.get_unchecked(b);
                        sums[i] = [vdupq_n_s32(-ZERO * first_half); Q];
                        second[i] = [vdupq_n_s32(-ZERO * (sum - first_half)); Q];
                    } else {
                        sums[i] = [vdupq_n_s32(-ZERO * sum); Q];
                    }
                }
            }
            if BITS < 8 {
                for p in 0..4 {
                    let at = b * BLOCK + 4 * p;
                    let a = x.map(|x| (broadcast(x, at), broadcast(x, at + 16)));
                    for k in 0..Q {
                        let v = rows_at(p * 64, k);
                        let mut low = vandq_u8(v, vdupq_n_u8(0x0F));
                        let mut high = vshrq_n_u8::<4>(v);
                        let step = p as i8;
                        if BITS == 5 {
                            let plane = rows_at(256, k);
                            low = vorrq_u8(low, bits_to_4(plane, step, 1));
                            high = vorrq_u8(high, bits_to_4(plane, 4 + step, 1));
                        } else if BITS == 6 {
                            low = vorrq_u8(low, bits_to_4(rows_at(256, k), 2 * step, 2));
                            high = vorrq_u8(high, bits_to_4(rows_at(320, k), 2 * step, 2));
                        }
                        let (low, high) = (vreinterpretq_s8_u8(low), vreinterpretq_s8_u8(high));
                        for i in 0..N {
                            sums[i][k] = P::dot(sums[i][k], low, a[i].0);
                            if HALVES {
                                second[i][k] = P::dot(second[i][k], high, a[i].1);
                            } else {
                                sums[i][k] = P::dot(sums[i][k], high, a[i].1);
                            }
                        }
                    }
                }
            } else {
                for step in 0..8 {
                    let a = x.map(|x| broadcast(x, b * BLOCK + 4 * step));
                    for k in 0..Q {
                        let stored = rows_at(step * 64, k);
                        let signed = vreinterpretq_s8_u8(veorq_u8(stored, vdupq_n_u8(0x80)));
                        for (sums, &a) in sums.iter_mut().zip(&a) {
                            sums[k] = P::dot(sums[k], signed, a);
                        }
                    }
                }
            }
            for k in 0..Q {
                let row = (first + k) * QUAD;
                // Half `h`'s scales (or, from `w.minimums`, the minimums: their formats have
                // one set per block, so the same indices serve).
                let factors = |f16s: &[f16], integers: &[i8], h: usize| {
                    let own = (b * sets + h) * GROUP + row;
                    let shared = b / BLOCKS_PER_SUPER_BLOCK * GROUP + row;
                    let f = widen(f16s.as_ptr().add(if SUPER { shared } else { own }));
                    if SUPER {
                        let integers: [f32; QUAD] =
                            std::array::from_fn(|r| f32::from(*integers.get_unchecked(own + r)));
                        vmulq_f32(f, vld1q_f32(integers.as_ptr()))
                    } else {
                        f
                    }
                };
                let scales = factors(w.scales, w.integer_scales, 0);
                let second_scales = if HALVES {
                    factors(w.scales, w.integer_scales, 1)
                } else {
                    vdupq_n_f32(0.0)
                };
                let minimums = if MINIMUM {
                    factors(w.minimums, w.integer_minimums, 0)
                } else {
                    vdupq_n_f32(0.0)
                };
                for i in 0..N {
                    let dx = vdupq_n_f32(*x[i].scales.get_unchecked(b));
                    let scale = vmulq_f32(scales, dx);
                    acc[i][k] = vfmaq_f32(acc[i][k], vcvtq_f32_s32(sums[i][k]), scale);
                    if HALVES {
                        let scale = vmulq_f32(second_scales, dx);
                        acc[i][k] = vfmaq_f32(acc[i][k], vcvtq_f32_s32(second[i][k]), scale);
                    }
                    if MINIMUM {
                        let sum = vdupq_n_f32(*x[i].sums.get_unchecked(b));
                        acc[i][k] = vfmaq_f32(acc[i][k], minimums, sum);
                    }
                }
            }
        }
    }
    acc
}

/// The `width` bits from bit `from` of every byte of `plane`, moved to bits `4..4 + width`
/// (others cleared): a 5- or 6-bit value's bits above its nibble.
#[inline(always)]
fn bits_to_4(plane: uint8x16_t, from: i8, width: u32) -> uint8x16_t {
    // SAFETY: NEON is part of aarch64's base architecture.
    unsafe {
        // A negative count shifts right.
        let moved = vshlq_u8(plane, vdupq_n_s8(4 - from));
        vandq_u8(moved, vdupq_n_u8((((1u32 << width) - 1) << 4) as u8))
    }
}

/// Activations `at..at + 4` of `x`, repeated four times.
///
/// # Safety
/// `at + 4 <= x.quants.len()`.
#[inline(always)]
unsafe fn broadcast(x: ActivationRow<'_>, at: usize) -> int8x16_t {
    // SAFETY: guaranteed by the caller; NEON is part of aarch64's base architecture.
    unsafe {
        let four = x.quants.as_ptr().add(at).cast::<i32>().read_unaligned();
        vreinterpretq_s8_s32(vdupq_n_s32(four))
    }
}

/// Four f16s from `halves`, widened to f32 by `fcvtl` (base NEON, though its intrinsic is not
/// stable in Rust yet).
///
/// # Safety
/// `halves` points at four readable f16s.
#[inline(always)]
unsafe fn widen(halves: *const f16) -> float32x4_t {
    // SAFETY: guaranteed by the caller; f16 and u16 share size and alignment.
    let bits = unsafe { vld1_u16(halves.cast()) };
    let out: float32x4_t;
    // SAFETY: the instruction touches registers only.
    unsafe {
        asm!(
            "fcvtl {out:v}.4s, {bits:v}.4h",
            out = lateout(vreg) out,
            bits = in(vreg) bits,
            options(pure, nomem, nostack),
        );
    }
    out
}
