//! A weight matrix repacked from GGUF blocks, and its product with quantized activations.

use crate::{
    activations::QuantizedRows,
    format::{BLOCK, BlockFormat},
    kernels::{WeightRows, kernels},
};
use half::f16;
use rayon::prelude::*;

/// A weight matrix that does not fit the bytes or the shapes it was given.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    /// The row length is not a whole number of blocks.
    #[error("a row of {0} values is not a whole number of {BLOCK}-value blocks")]
    PartialBlock(usize),
    /// The byte count does not match the shape and format.
    #[error("{format:?} data for {rows}x{cols} takes {expected} bytes, got {actual}")]
    ByteCount {
        /// The block format.
        format: BlockFormat,
        /// Rows of the matrix.
        rows: usize,
        /// Values per row.
        cols: usize,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// Matrices stacked together differ in format or row length.
    #[error("stacked matrices must share format and row length")]
    Mismatch,
}

/// A `rows x cols` weight matrix in a 4- or 8-bit block format, stored row by row with the
/// quantized values of each row contiguous and the per-block scale and offset (f16, as in the
/// file: decoding reads as many bytes as ggml does) in arrays of their own. Q4_0 is stored as
/// Q4_1 with offset `-8d`; Q8_0 has no offsets.
#[derive(Debug)]
pub struct QuantMatrix {
    format: BlockFormat,
    rows: usize,
    cols: usize,
    quants: Vec<u8>,
    scales: Vec<f16>,
    offsets: Vec<f16>,
}

impl QuantMatrix {
    /// Repacks GGUF block data (`rows` rows of `cols` values, row-major, as stored in the file).
    pub fn from_ggml(
        format: BlockFormat,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Self, ShapeError> {
        if cols == 0 || !cols.is_multiple_of(BLOCK) {
            return Err(ShapeError::PartialBlock(cols));
        }
        let blocks = rows * cols / BLOCK;
        let expected = blocks * format.ggml_block_bytes();
        if bytes.len() != expected {
            return Err(ShapeError::ByteCount {
                format,
                rows,
                cols,
                expected,
                actual: bytes.len(),
            });
        }
        let packed = format.packed_block_bytes();
        let mut matrix = QuantMatrix {
            format,
            rows,
            cols,
            quants: Vec::with_capacity(blocks * packed),
            scales: Vec::with_capacity(blocks),
            offsets: Vec::new(),
        };
        for block in bytes.chunks_exact(format.ggml_block_bytes()) {
            let d = f16::from_le_bytes([block[0], block[1]]);
            let values = match format {
                BlockFormat::Q4_0 => {
                    // Exact: multiplying by 8 only moves the exponent.
                    matrix.offsets.push(f16::from_f32(-8.0 * d.to_f32()));
                    &block[2..]
                }
                BlockFormat::Q4_1 => {
                    matrix
                        .offsets
                        .push(f16::from_le_bytes([block[2], block[3]]));
                    &block[4..]
                }
                BlockFormat::Q8_0 => &block[2..],
            };
            matrix.scales.push(d);
            matrix.quants.extend_from_slice(values);
        }
        Ok(matrix)
    }

    /// Stacks matrices of one format and row length into one (rows of the first, then of the
    /// second, ...), so that products sharing an input run as one.
    pub fn stack(parts: Vec<QuantMatrix>) -> Result<Self, ShapeError> {
        let mut parts = parts.into_iter();
        let mut stacked = parts.next().ok_or(ShapeError::Mismatch)?;
        for part in parts {
            if part.format != stacked.format || part.cols != stacked.cols {
                return Err(ShapeError::Mismatch);
            }
            stacked.rows += part.rows;
            stacked.quants.extend_from_slice(&part.quants);
            stacked.scales.extend_from_slice(&part.scales);
            stacked.offsets.extend_from_slice(&part.offsets);
        }
        Ok(stacked)
    }

    /// The block format.
    pub fn format(&self) -> BlockFormat {
        self.format
    }

    /// Number of rows (outputs of a product).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row (inputs of a product).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Writes row `row`, dequantized, into `out` (`cols` values).
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        let w = self
            .weight_rows(row, 1)
            .row(0, self.format.packed_block_bytes());
        let packed = self.format.packed_block_bytes();
        for (b, out) in out.chunks_exact_mut(BLOCK).enumerate() {
            let q = &w.quants[b * packed..(b + 1) * packed];
            let d = w.scales[b].to_f32();
            match self.format {
                BlockFormat::Q4_0 | BlockFormat::Q4_1 => {
                    let m = w.offsets[b].to_f32();
                    for (j, &byte) in q.iter().enumerate() {
                        out[j] = d * f32::from(byte & 0x0F) + m;
                        out[j + BLOCK / 2] = d * f32::from(byte >> 4) + m;
                    }
                }
                BlockFormat::Q8_0 => {
                    for (o, &byte) in out.iter_mut().zip(q) {
                        *o = d * f32::from(byte as i8);
                    }
                }
            }
        }
    }

    /// `out = x · selfᵀ`: for each of `x`'s rows, one output per row of this matrix
    /// (`out` is `x.rows() x self.rows()`, row-major). Runs on rayon's pool, each task taking a
    /// run of weight rows; activation rows go four at a time so that each weight block is read
    /// once per four.
    ///
    /// # Panics
    /// If `x.cols() != self.cols()` or `out` has the wrong length.
    pub fn matmul(&self, x: &QuantizedRows, out: &mut [f32]) {
        assert_eq!(
            x.cols(),
            self.cols,
            "activations and weights differ in length"
        );
        assert_eq!(out.len(), x.rows() * self.rows, "output has the wrong size");
        let (m, n) = (x.rows(), self.rows);
        let chunk = rows_per_task(n);
        let kernels = kernels();
        let (x1, x4) = match self.format {
            BlockFormat::Q8_0 => (kernels.q8_x1, kernels.q8_x4),
            BlockFormat::Q4_0 | BlockFormat::Q4_1 => (kernels.q4_x1, kernels.q4_x4),
        };
        if m == 1 {
            out.par_chunks_mut(chunk).enumerate().for_each(|(c, out)| {
                x1(self.weight_rows(c * chunk, out.len()), x.row(0), out);
            });
            return;
        }
        let out = DisjointOutput(out.as_mut_ptr());
        (0..n.div_ceil(chunk)).into_par_iter().for_each(|c| {
            let first = c * chunk;
            let w = self.weight_rows(first, chunk.min(n - first));
            let mut fours = vec![[0f32; 4]; w.len()];
            let mut ones = vec![0f32; w.len()];
            let write = |i: usize, j: usize, value: f32| {
                // SAFETY: task `c` alone writes columns first..first + w.len() of every output
                // row, and i < m, first + j < n keep the index inside `out` (checked above).
                unsafe { out.write(i * n + first + j, value) };
            };
            let mut i = 0;
            while i + 4 <= m {
                x4(
                    w,
                    [x.row(i), x.row(i + 1), x.row(i + 2), x.row(i + 3)],
                    &mut fours,
                );
                for (j, sums) in fours.iter().enumerate() {
                    for (t, &sum) in sums.iter().enumerate() {
                        write(i + t, j, sum);
                    }
                }
                i += 4;
            }
            for i in i..m {
                x1(w, x.row(i), &mut ones);
                for (j, &sum) in ones.iter().enumerate() {
                    write(i, j, sum);
                }
            }
        });
    }

    /// Rows `first..first + count` as the kernels read them.
    pub(crate) fn weight_rows(&self, first: usize, count: usize) -> WeightRows<'_> {
        let blocks = self.cols / BLOCK;
        let packed = self.format.packed_block_bytes();
        let (start, end) = (first * blocks, (first + count) * blocks);
        WeightRows {
            quants: &self.quants[start * packed..end * packed],
            scales: &self.scales[start..end],
            offsets: match self.format {
                BlockFormat::Q8_0 => &[],
                BlockFormat::Q4_0 | BlockFormat::Q4_1 => &self.offsets[start..end],
            },
            blocks,
        }
    }
}

/// Weight rows per parallel task: enough tasks to balance the pool, few enough that each task's
/// start-up cost stays small next to its work.
fn rows_per_task(n: usize) -> usize {
    let tasks = rayon::current_num_threads() * 4;
    n.div_ceil(tasks).max(8)
}

/// The output of a product, written by tasks that each own a disjoint set of its columns.
struct DisjointOutput(*mut f32);

// SAFETY: tasks write disjoint elements (see `matmul`), and the buffer outlives them.
unsafe impl Sync for DisjointOutput {}

impl DisjointOutput {
    /// # Safety
    /// `index` is inside the buffer and no other task writes it.
    unsafe fn write(&self, index: usize, value: f32) {
        // SAFETY: guaranteed by the caller.
        unsafe { *self.0.add(index) = value };
    }
}
