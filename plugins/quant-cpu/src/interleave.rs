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
