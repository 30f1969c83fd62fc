//! The interleaved layout of weights: the blocks of sixteen consecutive rows side by side, so
//! that one 64-byte load holds four consecutive values of each of the sixteen rows, and one
//! 32-bit lane of a kernel's accumulator belongs to one row throughout.

use crate::BLOCK;

/// Weight rows interleaved together: one output lane each.
pub(crate) const GROUP: usize = 16;

/// Consecutive values of one row in one 32-bit lane.
const LANE_VALUES: usize = 4;

/// Bytes of one 64-byte step: [`LANE_VALUES`] bytes of every row.
const STEP: usize = GROUP * LANE_VALUES;

/// Appends one block of [`GROUP`] rows, given as stored unsigned values (`rows[r][i]`, below
/// `1 << bits`). 8-bit blocks are eight 64-byte steps, step `k` holding values `4k..4k + 4` of
/// every row. Narrower blocks are four steps whose bytes hold values `4p..4p + 4` in their low
/// nibbles and `16 + 4p..16 + 4p + 4` in their high nibbles, then one 64-byte plane per bit
/// above the fourth, the byte of row `r` and offset `t` at `4r + t` in each:
/// - 5 bits: bit 4 of value `4p + t` at bit `p`, and of value `16 + 4p + t` at bit `4 + p`;
/// - 6 bits: bits 4 and 5 of value `4p + t` at bits `2p` and `2p + 1` of the first plane, and
///   those of value `16 + 4p + t` likewise in the second, so that one shift and one mask move
///   both into place.
pub(crate) fn push_block(bits: u32, rows: &[[u8; BLOCK]; GROUP], out: &mut Vec<u8>) {
    if bits == 8 {
        for step in 0..BLOCK / LANE_VALUES {
            for row in rows {
                out.extend_from_slice(&row[step * LANE_VALUES..(step + 1) * LANE_VALUES]);
            }
        }
        return;
    }
    for step in 0..BLOCK / 2 / LANE_VALUES {
        for row in rows {
            for t in 0..LANE_VALUES {
                let i = step * LANE_VALUES + t;
                out.push(row[i] & 0x0F | (row[i + BLOCK / 2] & 0x0F) << 4);
            }
        }
    }
    let planes = if bits == 6 { 2 } else { bits - 4 };
    for plane in 0..planes as usize {
        for row in rows {
            for t in 0..LANE_VALUES {
                let mut byte = 0u8;
                for p in 0..BLOCK / 2 / LANE_VALUES {
                    let value = |first: usize| row[first + LANE_VALUES * p + t] >> 4;
                    if bits == 6 {
                        byte |= value(plane * BLOCK / 2) << (2 * p);
                    } else {
                        let bit = |v: u8| (v >> plane) & 1;
                        byte |= bit(value(0)) << p | bit(value(BLOCK / 2)) << (4 + p);
                    }
                }
                out.push(byte);
            }
        }
    }
}

/// Stored value `i` of row `lane` in one interleaved block (as [`push_block`] wrote it).
pub(crate) fn value(bits: u32, block: &[u8], lane: usize, i: usize) -> u8 {
    if bits == 8 {
        return block[i / LANE_VALUES * STEP + lane * LANE_VALUES + i % LANE_VALUES];
    }
    let (high, within) = (i >= BLOCK / 2, i % (BLOCK / 2));
    let (p, t) = (within / LANE_VALUES, within % LANE_VALUES);
    let byte = block[p * STEP + lane * LANE_VALUES + t];
    let v = if high { byte >> 4 } else { byte & 0x0F };
    let plane = |k: usize| block[(4 + k) * STEP + lane * LANE_VALUES + t];
    match bits {
        6 => v | (plane(usize::from(high)) >> (2 * p) & 3) << 4,
        5 => v | (plane(0) >> (p + if high { 4 } else { 0 }) & 1) << 4,
        _ => v,
    }
}

/// The stored values of one interleaved block, row by row: the inverse of [`push_block`].
pub(crate) fn unpack_block(bits: u32, block: &[u8]) -> [[u8; BLOCK]; GROUP] {
    std::array::from_fn(|lane| std::array::from_fn(|i| value(bits, block, lane, i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_unpack_to_what_was_pushed() {
        for bits in [4, 5, 6, 8] {
            let limit = 1usize << bits;
            let rows: [[u8; BLOCK]; GROUP] = std::array::from_fn(|r| {
                std::array::from_fn(|i| ((r * 37 + i * 11 + 5) % limit) as u8)
            });
            let mut block = Vec::new();
            push_block(bits, &rows, &mut block);
            let row_bytes = if bits == 8 {
                BLOCK
            } else {
                BLOCK / 2 + (bits as usize - 4) * BLOCK / 8
            };
            assert_eq!(block.len(), GROUP * row_bytes);
            assert_eq!(unpack_block(bits, &block), rows);
        }
    }

    #[test]
    fn a_fifth_bit_sits_where_the_kernels_read_it() {
        // Row 1's value 16 + 4 + 2 (step 1, offset 2, high nibble) is 16 + 3.
        let mut rows = [[0u8; BLOCK]; GROUP];
        rows[1][BLOCK / 2 + 6] = 19;
        let mut block = Vec::new();
        push_block(5, &rows, &mut block);
        assert_eq!(block[STEP + 4 + 2], 3 << 4);
        assert_eq!(block[4 * STEP + 4 + 2], 1 << (4 + 1));
        assert_eq!(block.iter().filter(|&&b| b != 0).count(), 2);
    }

    #[test]
    fn a_sixth_bits_pair_sits_where_the_kernels_read_it() {
        // Row 1's value 16 + 4 + 2 is 0b11_0011: its low nibble in step 1, its two higher bits
        // at bits 2 and 3 (step 1) of the second plane.
        let mut rows = [[0u8; BLOCK]; GROUP];
        rows[1][BLOCK / 2 + 6] = 0b11_0011;
        let mut block = Vec::new();
        push_block(6, &rows, &mut block);
        assert_eq!(block[STEP + 4 + 2], 3 << 4);
        assert_eq!(block[5 * STEP + 4 + 2], 0b11 << 2);
        assert_eq!(block.iter().filter(|&&b| b != 0).count(), 2);
    }
}
