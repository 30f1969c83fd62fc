//! Kernels: one group of sixteen interleaved weight rows against one or four quantized
//! activation rows, chosen once per process for the CPU it runs on.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;

use crate::{
    BLOCK, BlockFormat, activations::ActivationRow, format::BLOCKS_PER_SUPER_BLOCK,
    interleave::GROUP,
};
use half::f16;
use std::sync::OnceLock;

/// One group of [`GROUP`] interleaved weight rows, all blocks of a row, as
/// [`crate::QuantMatrix`] stores it.
#[derive(Clone, Copy)]
pub(crate) struct Group<'a> {
    pub format: BlockFormat,
    /// Per block, the rows' stored values, interleaved.
    pub quants: &'a [u8],
    /// Per block, the rows' scales (in Q6_K, those of the rows' first halves, then of their
    /// second halves); in the K-quants, per super-block, the one scale its blocks share.
    pub scales: &'a [f16],
    /// Per block (super-block in the K-quants), the rows' minimums (formats with a minimum
    /// only; empty otherwise).
    pub minimums: &'a [f16],
    /// K-quants only: per block, the rows' integer scales, which multiply the super-block's (in
    /// Q6_K, those of the first halves, then of the second halves).
    pub integer_scales: &'a [i8],
    /// Q4_K and Q5_K only: per block, the rows' integer minimums.
    pub integer_minimums: &'a [i8],
}

impl Group<'_> {
    /// Blocks per row.
    pub fn blocks(&self) -> usize {
        self.quants.len() / (GROUP * self.format.packed_block_bytes())
    }

    /// Index of block `b`'s row `lane` in [`Group::scales`] and [`Group::minimums`].
    pub fn scale_index(&self, b: usize, lane: usize) -> usize {
        match self.format.k_quant() {
            true => b / BLOCKS_PER_SUPER_BLOCK * GROUP + lane,
            false => b * self.format.scales_per_block() * GROUP + lane,
        }
    }

    /// Row `lane`'s scale of half `h` of block `b`, and its minimum (zero without one).
    pub fn factors(&self, b: usize, h: usize, lane: usize) -> (f32, f32) {
        let sets = self.format.scales_per_block();
        let h = h % sets;
        let at = self.scale_index(b, lane);
        let minimum = self.minimums.get(at).map_or(0.0, |m| m.to_f32());
        if !self.format.k_quant() {
            return (self.scales[at + h * GROUP].to_f32(), minimum);
        }
        let integer = |values: &[i8], at: usize| values.get(at).map_or(0.0, |&v| f32::from(v));
        (
            self.scales[at].to_f32() * integer(self.integer_scales, (b * sets + h) * GROUP + lane),
            minimum * integer(self.integer_minimums, b * GROUP + lane),
        )
    }
}

/// The kernel set for this CPU: a group's [`GROUP`] outputs for one activation row (`x1`), or
/// for four (`x4`, which unpacks each weight block once for the four).
pub(crate) struct Kernels {
    pub name: &'static str,
    /// One activation row.
    pub x1: fn(Group<'_>, ActivationRow<'_>) -> [f32; GROUP],
    /// Four activation rows.
    pub x4: fn(Group<'_>, [ActivationRow<'_>; 4]) -> [[f32; GROUP]; 4],
}

/// The environment variable that names a kernel set to use instead of the fastest
/// (`avx512-vnni`, `avx2`, `neon-dotprod`, `neon`, `scalar`): for benchmarks, or to rule a
/// kernel out.
pub const KERNELS_VARIABLE: &str = "RBEE_CPU_KERNELS";

/// The kernels in use, chosen on first use: the set [`KERNELS_VARIABLE`] names if this CPU runs
/// it, else the fastest.
pub(crate) fn kernels() -> &'static Kernels {
    static CHOSEN: OnceLock<Kernels> = OnceLock::new();
    CHOSEN.get_or_init(|| {
        let mut sets = available();
        let named = requested().and_then(|name| sets.iter().position(|k| k.name == name));
        sets.swap_remove(named.unwrap_or(0))
    })
}

/// The kernel set [`KERNELS_VARIABLE`] asks for, if set.
fn requested() -> Option<String> {
    std::env::var(KERNELS_VARIABLE)
        .ok()
        .filter(|name| !name.is_empty())
}

/// Every kernel set this CPU runs, fastest first (the scalar one always last).
pub(crate) fn available() -> Vec<Kernels> {
    let mut sets = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
        if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni") {
            // SAFETY: every feature the AVX-512 kernels use was just detected.
            sets.push(unsafe { avx512::kernels() });
        }
        if avx2 {
            // SAFETY: AVX2, FMA and F16C were just detected.
            sets.push(unsafe { avx2::kernels() });
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            // SAFETY: the dot-product extension was just detected.
            sets.push(unsafe { neon::dot_kernels() });
        }
        sets.push(neon::kernels());
    }
    sets.push(scalar::kernels());
    sets
}

/// The name of the kernel set in use (one of those [`KERNELS_VARIABLE`] names), for logs and
/// benchmarks; an error naming the sets this CPU runs if [`KERNELS_VARIABLE`] asks for another.
pub fn kernel_name() -> Result<&'static str, String> {
    if let Some(name) = requested() {
        let names: Vec<&str> = available().iter().map(|k| k.name).collect();
        if !names.contains(&name.as_str()) {
            return Err(format!(
                "{KERNELS_VARIABLE}={name}: this CPU runs the kernel sets {}",
                names.join(", ")
            ));
        }
    }
    Ok(kernels().name)
}

/// Checks that a group and an activation row describe the same number of blocks, so that the
/// kernels' unchecked loads stay in bounds, and that K-quant rows get activations with one
/// scale per super-block, which their kernels rely on.
fn check_lengths(w: Group<'_>, x: ActivationRow<'_>) {
    let blocks = w.blocks();
    let sets = w.format.scales_per_block();
    let (k_quant, minimum) = (w.format.k_quant(), w.format.has_minimum());
    let (scaled, scale_sets, integers) = match k_quant {
        true => (blocks.div_ceil(BLOCKS_PER_SUPER_BLOCK), 1, blocks),
        false => (blocks, sets, 0),
    };
    assert!(
        w.scales.len() == scaled * GROUP * scale_sets
            && w.minimums.len() == if minimum { scaled * GROUP } else { 0 }
            && w.integer_scales.len() == integers * GROUP * sets
            && w.integer_minimums.len() == if minimum { integers * GROUP } else { 0 }
            && (!k_quant || blocks.is_multiple_of(BLOCKS_PER_SUPER_BLOCK))
            && w.quants.len() == blocks * GROUP * w.format.packed_block_bytes()
            && x.quants.len() == blocks * BLOCK
            && x.scales.len() == blocks
            && x.sums.len() == blocks
            && x.integer_sums.len() == blocks
            && x.half_sums.len() == blocks,
        "weight and activation rows differ in length"
    );
    assert!(
        !k_quant || x.per_super_block,
        "{:?} weights need activations quantized with ActivationScales::PerSuperBlock",
        w.format
    );
}

#[cfg(test)]
mod tests;
