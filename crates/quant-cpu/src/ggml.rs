//! Reading GGUF blocks into the stored form of 32-value blocks: unsigned values, f16 scales and
//! minimums, and (in the K-quants) each block's integer scale and minimum, which multiply the
//! super-block's f16 scale and minimum exactly as ggml does.

use crate::format::{BLOCK, BlockFormat, SUPER_BLOCK};
use half::f16;

/// One row's block of 32 values in stored form: value `u` in half `h` is
/// `scales[h] · integer_scales[h] · (u − zero_point) + minimum · integer_minimum` (both halves
/// share index 0 but in Q6_K). In the K-quants, `scales` and `minimum` are the super-block's
/// (`d` and `−dmin`, shared by its eight blocks) and the integers the block's own; in the other
/// formats the integers are 1.
#[derive(Clone, Copy)]
pub(crate) struct RowBlock {
    pub scales: [f16; 2],
    pub minimum: f16,
    pub integer_scales: [i8; 2],
    pub integer_minimum: i8,
    pub values: [u8; BLOCK],
}

impl RowBlock {
    /// The block's scale of half `h` and its minimum, as floats.
    pub fn factors(&self, h: usize) -> (f32, f32) {
        (
            self.scales[h].to_f32() * f32::from(self.integer_scales[h]),
            self.minimum.to_f32() * f32::from(self.integer_minimum),
        )
    }
}

/// A block of zero rows, for padding.
pub(crate) const EMPTY_BLOCK: RowBlock = RowBlock {
    scales: [f16::ZERO; 2],
    minimum: f16::ZERO,
    integer_scales: [0; 2],
    integer_minimum: 0,
    values: [0; BLOCK],
};

/// The blocks of GGUF data `bytes` (whole GGUF blocks of `format`), in order.
pub(crate) fn row_blocks(format: BlockFormat, bytes: &[u8]) -> Vec<RowBlock> {
    let mut blocks = Vec::with_capacity(bytes.len() / format.ggml_block_bytes() * 8);
    for block in bytes.chunks_exact(format.ggml_block_bytes()) {
        match format {
            BlockFormat::Q4_0 | BlockFormat::Q4_1 | BlockFormat::Q5_0 | BlockFormat::Q5_1 => {
                blocks.push(legacy(format, block));
            }
            BlockFormat::Q8_0 => blocks.push(RowBlock {
                scales: [half(block, 0); 2],
                minimum: f16::ZERO,
                integer_scales: [1; 2],
                integer_minimum: 1,
                values: std::array::from_fn(|i| block[2 + i] ^ 0x80),
            }),
            BlockFormat::Q4_K | BlockFormat::Q5_K => k4_or_k5(format, block, &mut blocks),
            BlockFormat::Q6_K => k6(block, &mut blocks),
        }
    }
    blocks
}

/// The f16 at `bytes[at..at + 2]`.
fn half(bytes: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Q4_0, Q4_1, Q5_0, Q5_1: an f16 scale, an f16 minimum (`_1`), the fifth bits as a
/// little-endian u32 (Q5), then 16 bytes whose low nibbles are values 0..16 and high nibbles
/// values 16..32.
fn legacy(format: BlockFormat, block: &[u8]) -> RowBlock {
    let mut at = 2;
    let minimum = if format.has_minimum() {
        at += 2;
        half(block, 2)
    } else {
        f16::ZERO
    };
    let fifth = if format.bits() == 5 {
        at += 4;
        u32::from_le_bytes(block[at - 4..at].try_into().expect("four bytes"))
    } else {
        0
    };
    let packed = &block[at..at + BLOCK / 2];
    RowBlock {
        scales: [half(block, 0); 2],
        minimum,
        integer_scales: [1; 2],
        integer_minimum: 1,
        values: std::array::from_fn(|i| {
            let byte = packed[i % (BLOCK / 2)];
            let nibble = if i < BLOCK / 2 {
                byte & 0x0F
            } else {
                byte >> 4
            };
            nibble | (((fifth >> i) & 1) as u8) << 4
        }),
    }
}

/// Q4_K and Q5_K: f16 `d` and `dmin`, twelve bytes of 6-bit scales and minimums, (Q5_K) 32
/// bytes of fifth bits, then 128 bytes of nibbles. Block `b` reads the low (`b` even) or high
/// nibbles of bytes `32 * (b / 2)..` and bit `b` of each fifth-bit byte.
fn k4_or_k5(format: BlockFormat, block: &[u8], out: &mut Vec<RowBlock>) {
    let (d, dmin) = (half(block, 0), -half(block, 2));
    let scales: &[u8; 12] = block[4..16].try_into().expect("twelve bytes");
    let (fifth, nibbles) = if format == BlockFormat::Q5_K {
        (&block[16..48], &block[48..])
    } else {
        (&[][..], &block[16..])
    };
    for b in 0..SUPER_BLOCK / BLOCK {
        let (scale, min) = scale_and_min(b, scales);
        let bytes = &nibbles[BLOCK * (b / 2)..][..BLOCK];
        out.push(RowBlock {
            scales: [d; 2],
            minimum: dmin,
            // 6-bit, so they fit.
            integer_scales: [scale as i8; 2],
            integer_minimum: min as i8,
            values: std::array::from_fn(|l| {
                let nibble = if b % 2 == 0 {
                    bytes[l] & 0x0F
                } else {
                    bytes[l] >> 4
                };
                let high = fifth.get(l).map_or(0, |&h| (h >> b) & 1);
                nibble | high << 4
            }),
        });
    }
}

/// Block `b`'s 6-bit scale and minimum from a K-quant's twelve packed bytes: blocks 0..4 in
/// the low six bits of bytes `b` and `b + 4`; blocks 4..8 in the nibbles of byte `b + 4` with
/// their top two bits in the top bits of bytes `b - 4` and `b`.
fn scale_and_min(b: usize, packed: &[u8; 12]) -> (u8, u8) {
    if b < 4 {
        (packed[b] & 63, packed[b + 4] & 63)
    } else {
        (
            packed[b + 4] & 0x0F | (packed[b - 4] >> 6) << 4,
            packed[b + 4] >> 4 | (packed[b] >> 6) << 4,
        )
    }
}

/// Q6_K: 128 bytes of low nibbles, 64 bytes of high bit pairs, sixteen signed scales, f16 `d`.
/// Values come in two runs of 128: in run `n`, block `k` (0..4) takes the low (`k < 2`) or high
/// nibbles of bytes `64n + 32 * (k % 2)..`, bits `2k, 2k + 1` of bytes `32n..` of the pairs,
/// and scales `8n + 2k` and `8n + 2k + 1` for its two halves.
fn k6(block: &[u8], out: &mut Vec<RowBlock>) {
    let (low, high, scales) = (&block[..128], &block[128..192], &block[192..208]);
    let d = half(block, 208);
    for b in 0..SUPER_BLOCK / BLOCK {
        let (n, k) = (b / 4, b % 4);
        out.push(RowBlock {
            scales: [d; 2],
            minimum: f16::ZERO,
            integer_scales: std::array::from_fn(|h| scales[8 * n + 2 * k + h] as i8),
            integer_minimum: 0,
            values: std::array::from_fn(|l| {
                let byte = low[64 * n + 32 * (k % 2) + l];
                let nibble = if k < 2 { byte & 0x0F } else { byte >> 4 };
                nibble | ((high[32 * n + l] >> (2 * k)) & 3) << 4
            }),
        });
    }
}
