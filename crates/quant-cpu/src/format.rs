//! The GGUF block formats this crate reads, and how each is stored once repacked.

/// Values per block as the kernels see them: every format is repacked into blocks of 32 (the
/// K-quants' 256-value super-blocks become eight such blocks, each with its own scales).
pub const BLOCK: usize = 32;

/// Values per GGUF super-block of the K-quant formats.
pub(crate) const SUPER_BLOCK: usize = 256;

/// Blocks of [`BLOCK`] values in a K-quant super-block.
pub(crate) const BLOCKS_PER_SUPER_BLOCK: usize = SUPER_BLOCK / BLOCK;

/// A GGUF block format of weights, named as GGUF names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum BlockFormat {
    /// 4-bit values with one f16 scale per block: `d * (q - 8)`.
    Q4_0,
    /// 4-bit values with an f16 scale and an f16 minimum per block: `d * q + m`.
    Q4_1,
    /// 5-bit values with one f16 scale per block: `d * (q - 16)`.
    Q5_0,
    /// 5-bit values with an f16 scale and an f16 minimum per block: `d * q + m`.
    Q5_1,
    /// 8-bit signed values with one f16 scale per block: `d * q`.
    Q8_0,
    /// 4-bit values in super-blocks of 256: eight 6-bit scales and minimums per super-block,
    /// themselves scaled by two f16s: `d * s * q - dmin * m`.
    Q4_K,
    /// Q4_K with a fifth bit per value.
    Q5_K,
    /// 6-bit values in super-blocks of 256: sixteen signed 8-bit scales (one per 16 values)
    /// scaled by one f16: `d * s * (q - 32)`.
    Q6_K,
}

impl BlockFormat {
    /// Values per block in a GGUF file.
    pub fn ggml_block_values(self) -> usize {
        if self.k_quant() { SUPER_BLOCK } else { BLOCK }
    }

    /// Bytes one block takes in a GGUF file.
    pub fn ggml_block_bytes(self) -> usize {
        match self {
            BlockFormat::Q4_0 => 2 + BLOCK / 2,
            BlockFormat::Q4_1 => 4 + BLOCK / 2,
            BlockFormat::Q5_0 => 2 + 4 + BLOCK / 2,
            BlockFormat::Q5_1 => 4 + 4 + BLOCK / 2,
            BlockFormat::Q8_0 => 2 + BLOCK,
            BlockFormat::Q4_K => 4 + 12 + SUPER_BLOCK / 2,
            BlockFormat::Q5_K => 4 + 12 + SUPER_BLOCK / 8 + SUPER_BLOCK / 2,
            BlockFormat::Q6_K => SUPER_BLOCK / 2 + SUPER_BLOCK / 4 + SUPER_BLOCK / 16 + 2,
        }
    }

    /// Whether the format is one of the K-quants (super-blocks of 256).
    pub(crate) fn k_quant(self) -> bool {
        matches!(
            self,
            BlockFormat::Q4_K | BlockFormat::Q5_K | BlockFormat::Q6_K
        )
    }

    /// Bits per stored value.
    pub(crate) fn bits(self) -> u32 {
        match self {
            BlockFormat::Q4_0 | BlockFormat::Q4_1 | BlockFormat::Q4_K => 4,
            BlockFormat::Q5_0 | BlockFormat::Q5_1 | BlockFormat::Q5_K => 5,
            BlockFormat::Q6_K => 6,
            BlockFormat::Q8_0 => 8,
        }
    }

    /// Bytes of one row's block of values once interleaved (scales are kept apart): 8-bit
    /// values take a byte each; narrower ones a nibble each plus one bit plane per further bit.
    pub(crate) fn packed_block_bytes(self) -> usize {
        match self.bits() {
            8 => BLOCK,
            bits => BLOCK / 2 + (bits as usize - 4) * BLOCK / 8,
        }
    }

    /// The value that stands for zero among the stored unsigned values: a weight is
    /// `d * (u - zero_point)`, plus `m` in the formats with a minimum. (Q8_0's signed bytes are
    /// stored offset by 128.)
    pub(crate) fn zero_point(self) -> i32 {
        match self {
            BlockFormat::Q4_0 => 8,
            BlockFormat::Q5_0 => 16,
            BlockFormat::Q6_K => 32,
            BlockFormat::Q8_0 => 128,
            BlockFormat::Q4_1 | BlockFormat::Q5_1 | BlockFormat::Q4_K | BlockFormat::Q5_K => 0,
        }
    }

    /// Whether blocks carry a minimum `m` besides their scale.
    pub(crate) fn has_minimum(self) -> bool {
        matches!(
            self,
            BlockFormat::Q4_1 | BlockFormat::Q5_1 | BlockFormat::Q4_K | BlockFormat::Q5_K
        )
    }

    /// Scales per block: two (one per half of 16 values) in Q6_K, one otherwise.
    pub(crate) fn scales_per_block(self) -> usize {
        if self == BlockFormat::Q6_K { 2 } else { 1 }
    }
}
