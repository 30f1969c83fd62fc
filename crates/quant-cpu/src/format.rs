//! The GGUF block formats this crate reads, and their on-disk layout.

/// Values per quantization block, in every supported format.
pub const BLOCK: usize = 32;

/// A GGUF block format of weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockFormat {
    /// 4-bit values with one f16 scale per block: `d * (q - 8)`.
    Q4_0,
    /// 4-bit values with an f16 scale and an f16 minimum per block: `d * q + m`.
    Q4_1,
    /// 8-bit signed values with one f16 scale per block: `d * q`.
    Q8_0,
}

impl BlockFormat {
    /// Bytes one block takes in a GGUF file.
    pub fn ggml_block_bytes(self) -> usize {
        match self {
            BlockFormat::Q4_0 => 2 + BLOCK / 2,
            BlockFormat::Q4_1 => 4 + BLOCK / 2,
            BlockFormat::Q8_0 => 2 + BLOCK,
        }
    }

    /// Bytes of one row's block of values once interleaved (scales are kept apart).
    pub(crate) fn packed_block_bytes(self) -> usize {
        if self.four_bit() { BLOCK / 2 } else { BLOCK }
    }

    /// Whether values are 4-bit (two per byte).
    pub(crate) fn four_bit(self) -> bool {
        matches!(self, BlockFormat::Q4_0 | BlockFormat::Q4_1)
    }

    /// The value that stands for zero among the stored unsigned values: a weight is
    /// `d * (u - zero_point)`, plus `m` in Q4_1. (Q8_0's signed bytes are stored offset by 128.)
    pub(crate) fn zero_point(self) -> i32 {
        match self {
            BlockFormat::Q4_0 => 8,
            BlockFormat::Q4_1 => 0,
            BlockFormat::Q8_0 => 128,
        }
    }

    /// Whether blocks carry a minimum `m` besides their scale.
    pub(crate) fn has_minimum(self) -> bool {
        self == BlockFormat::Q4_1
    }
}
