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

    /// Bytes of quantized values one block takes once repacked (scales are kept apart).
    pub(crate) fn packed_block_bytes(self) -> usize {
        match self {
            BlockFormat::Q4_0 | BlockFormat::Q4_1 => BLOCK / 2,
            BlockFormat::Q8_0 => BLOCK,
        }
    }
}
