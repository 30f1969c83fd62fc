//! The interleaved layout of weights: the blocks of sixteen consecutive rows side by side, so
//! that one 64-byte load holds four consecutive values of each of the sixteen rows, and one
//! 32-bit lane of a kernel's accumulator belongs to one row throughout.

use crate::BLOCK;

/// Weight rows interleaved together: one output lane each.
pub(crate) const GROUP: usize = 16;

/// Consecutive values of one row in one 32-bit lane.
const LANE_VALUES: usize = 4;

/// Appends one block of [`GROUP`] rows, given as stored unsigned values (`rows[r][i]`, below
/// 16 when `four_bit`). 8-bit blocks are eight 64-byte steps, step `k` holding values
/// `4k..4k + 4` of every row. 4-bit blocks are four steps whose bytes hold values `4p..4p + 4`
/// in their low nibbles and `16 + 4p..16 + 4p + 4` in their high nibbles.
pub(crate) fn push_block(four_bit: bool, rows: &[[u8; BLOCK]; GROUP], out: &mut Vec<u8>) {
    let steps = if four_bit { BLOCK / 2 } else { BLOCK } / LANE_VALUES;
    for step in 0..steps {
        for row in rows {
            for t in 0..LANE_VALUES {
                let i = step * LANE_VALUES + t;
                out.push(if four_bit {
                    row[i] | row[i + BLOCK / 2] << 4
                } else {
                    row[i]
                });
            }
        }
    }
}

/// Stored value `i` of row `lane` in one interleaved block (as [`push_block`] wrote it).
pub(crate) fn value(four_bit: bool, block: &[u8], lane: usize, i: usize) -> u8 {
    let within = if four_bit { i % (BLOCK / 2) } else { i };
    let byte = block
        [within / LANE_VALUES * GROUP * LANE_VALUES + lane * LANE_VALUES + within % LANE_VALUES];
    match (four_bit, i < BLOCK / 2) {
        (false, _) => byte,
        (true, true) => byte & 0x0F,
        (true, false) => byte >> 4,
    }
}

/// The stored values of one interleaved block, row by row: the inverse of [`push_block`].
pub(crate) fn unpack_block(four_bit: bool, block: &[u8]) -> [[u8; BLOCK]; GROUP] {
    let mut rows = [[0u8; BLOCK]; GROUP];
    let steps = if four_bit { BLOCK / 2 } else { BLOCK } / LANE_VALUES;
    for step in 0..steps {
        let bytes = &block[step * GROUP * LANE_VALUES..(step + 1) * GROUP * LANE_VALUES];
        for (row, lane) in rows.iter_mut().zip(bytes.chunks_exact(LANE_VALUES)) {
            for (t, &byte) in lane.iter().enumerate() {
                let i = step * LANE_VALUES + t;
                if four_bit {
                    row[i] = byte & 0x0F;
                    row[i + BLOCK / 2] = byte >> 4;
                } else {
                    row[i] = byte;
                }
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_unpack_to_what_was_pushed() {
        for four_bit in [false, true] {
            let limit = if four_bit { 16 } else { 256 };
            let rows: [[u8; BLOCK]; GROUP] = std::array::from_fn(|r| {
                std::array::from_fn(|i| ((r * 37 + i * 11 + 5) % limit) as u8)
            });
            let mut block = Vec::new();
            push_block(four_bit, &rows, &mut block);
            assert_eq!(
                block.len(),
                GROUP * if four_bit { BLOCK / 2 } else { BLOCK }
            );
            assert_eq!(unpack_block(four_bit, &block), rows);
            for (lane, row) in rows.iter().enumerate() {
                for (i, &v) in row.iter().enumerate() {
                    assert_eq!(value(four_bit, &block, lane, i), v);
                }
            }
        }
    }
}
