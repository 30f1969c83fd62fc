//! Per-block dot products of one weight row with one or four activation rows, chosen once per
//! process for the CPU it runs on.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod scalar;

use crate::activations::ActivationRow;
use std::sync::OnceLock;

/// One weight row as the kernels read it: packed values, and per block a scale and an offset.
#[derive(Clone, Copy)]
pub(crate) struct WeightRow<'a> {
    pub quants: &'a [u8],
    pub scales: &'a [f32],
    pub offsets: &'a [f32],
}

/// The kernel set for this CPU.
pub(crate) struct Kernels {
    pub name: &'static str,
    /// 4-bit weights (offset per block) with one activation row.
    pub q4_x1: fn(WeightRow<'_>, ActivationRow<'_>) -> f32,
    /// 4-bit weights with four activation rows, reading the weights once.
    pub q4_x4: fn(WeightRow<'_>, [ActivationRow<'_>; 4]) -> [f32; 4],
    /// 8-bit signed weights with one activation row.
    pub q8_x1: fn(WeightRow<'_>, ActivationRow<'_>) -> f32,
    /// 8-bit signed weights with four activation rows.
    pub q8_x4: fn(WeightRow<'_>, [ActivationRow<'_>; 4]) -> [f32; 4],
}

/// The fastest kernels this CPU runs, detected on first use.
pub(crate) fn kernels() -> &'static Kernels {
    static CHOSEN: OnceLock<Kernels> = OnceLock::new();
    CHOSEN.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA were just detected.
            return unsafe { avx2::kernels() };
        }
        scalar::kernels()
    })
}

/// The name of the kernel set in use (`avx2` or `scalar`), for logs and benchmarks.
pub fn kernel_name() -> &'static str {
    kernels().name
}

/// Checks that a weight row and an activation row describe the same number of blocks, so that
/// the kernels' unchecked loads stay in bounds.
fn check_lengths(w: WeightRow<'_>, x: ActivationRow<'_>, block_bytes: usize) {
    let blocks = w.scales.len();
    assert!(
        w.offsets.len() == blocks
            && w.quants.len() == blocks * block_bytes
            && x.scales.len() == blocks
            && x.sums.len() == blocks
            && x.quants.len() == blocks * crate::BLOCK,
        "weight and activation rows differ in length"
    );
}

#[cfg(test)]
mod tests;
