//! Per-block dot products of one weight row with one or four activation rows, chosen once per
//! process for the CPU it runs on.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

use crate::activations::ActivationRow;
use half::f16;
use std::sync::OnceLock;

/// One weight row as the kernels read it: packed values, and per block a scale and (4-bit
/// formats) an offset.
#[derive(Clone, Copy)]
pub(crate) struct WeightRow<'a> {
    pub quants: &'a [u8],
    pub scales: &'a [f16],
    pub offsets: &'a [f16],
}

/// Consecutive weight rows of `blocks` blocks each, as the kernels read them.
#[derive(Clone, Copy)]
pub(crate) struct WeightRows<'a> {
    pub quants: &'a [u8],
    pub scales: &'a [f16],
    pub offsets: &'a [f16],
    pub blocks: usize,
}

impl<'a> WeightRows<'a> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.scales.len() / self.blocks
    }

    /// Row `r`, with `block_bytes` bytes of values per block.
    #[inline]
    pub fn row(&self, r: usize, block_bytes: usize) -> WeightRow<'a> {
        let b = self.blocks;
        WeightRow {
            quants: &self.quants[r * b * block_bytes..(r + 1) * b * block_bytes],
            scales: &self.scales[r * b..(r + 1) * b],
            offsets: if self.offsets.is_empty() {
                &[]
            } else {
                &self.offsets[r * b..(r + 1) * b]
            },
        }
    }
}

/// The kernel set for this CPU. Each takes a run of weight rows and writes one output per row
/// (`x1`), or four, one per activation row (`x4`, which reads each weight block once).
pub(crate) struct Kernels {
    pub name: &'static str,
    /// 4-bit weights (offset per block).
    pub q4_x1: fn(WeightRows<'_>, ActivationRow<'_>, &mut [f32]),
    /// 4-bit weights, four activation rows.
    pub q4_x4: fn(WeightRows<'_>, [ActivationRow<'_>; 4], &mut [[f32; 4]]),
    /// 8-bit signed weights.
    pub q8_x1: fn(WeightRows<'_>, ActivationRow<'_>, &mut [f32]),
    /// 8-bit signed weights, four activation rows.
    pub q8_x4: fn(WeightRows<'_>, [ActivationRow<'_>; 4], &mut [[f32; 4]]),
}

/// The fastest kernels this CPU runs, detected on first use.
pub(crate) fn kernels() -> &'static Kernels {
    static CHOSEN: OnceLock<Kernels> = OnceLock::new();
    CHOSEN.get_or_init(|| available().remove(0))
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
    sets.push(scalar::kernels());
    sets
}

/// The name of the kernel set in use (`avx512-vnni`, `avx2` or `scalar`), for logs and
/// benchmarks.
pub fn kernel_name() -> &'static str {
    kernels().name
}

/// Checks that a weight row and an activation row describe the same number of blocks, so that
/// the kernels' unchecked loads stay in bounds. 4-bit rows have one offset per block.
fn check_lengths(w: WeightRow<'_>, x: ActivationRow<'_>, block_bytes: usize) {
    let blocks = w.scales.len();
    let offsets = if block_bytes == crate::BLOCK {
        0
    } else {
        blocks
    };
    assert!(
        w.offsets.len() == offsets
            && w.quants.len() == blocks * block_bytes
            && x.scales.len() == blocks
            && x.sums.len() == blocks
            && x.quants.len() == blocks * crate::BLOCK,
        "weight and activation rows differ in length"
    );
}

#[cfg(test)]
mod tests;
