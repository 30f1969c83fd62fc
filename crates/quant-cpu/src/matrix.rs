//! A weight matrix repacked from GGUF blocks, and its product with quantized activations.

use crate::{
    activations::QuantizedRows,
    format::{BLOCK, BlockFormat},
    interleave::{self, GROUP},
    kernels::{Group, kernels},
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

/// A `rows x cols` weight matrix in a 4- or 8-bit block format, repacked for the kernels: rows
/// go in groups of sixteen whose blocks are interleaved (see `interleave.rs`; the last group
/// is padded with zero rows), with each block's scale and minimum (f16, as in the file: decoding
/// reads as many bytes as ggml does) in arrays of their own, sixteen per group and block.
/// Values are stored unsigned: Q4_0 keeps its nibbles and Q8_0 adds 128 to its bytes, so that
/// the kernels subtract the zero point once per block instead of once per value.
#[derive(Debug)]
pub struct QuantMatrix {
    format: BlockFormat,
    rows: usize,
    cols: usize,
    quants: Vec<u8>,
    scales: Vec<f16>,
    minimums: Vec<f16>,
}

/// One row's block in the matrix's stored form.
#[derive(Clone, Copy)]
struct RowBlock {
    scale: f16,
    minimum: f16,
    values: [u8; BLOCK],
}

const EMPTY_BLOCK: RowBlock = RowBlock {
    scale: f16::ZERO,
    minimum: f16::ZERO,
    values: [0; BLOCK],
};

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
        let expected = rows * cols / BLOCK * format.ggml_block_bytes();
        if bytes.len() != expected {
            return Err(ShapeError::ByteCount {
                format,
                rows,
                cols,
                expected,
                actual: bytes.len(),
            });
        }
        let blocks = bytes
            .chunks_exact(format.ggml_block_bytes())
            .map(|block| ggml_block(format, block))
            .collect::<Vec<_>>();
        Ok(Self::interleave(format, rows, cols, &blocks))
    }

    /// Stacks matrices of one format and row length into one (rows of the first, then of the
    /// second, ...), so that products sharing an input run as one.
    pub fn stack(parts: Vec<QuantMatrix>) -> Result<Self, ShapeError> {
        let first = parts.first().ok_or(ShapeError::Mismatch)?;
        let (format, cols) = (first.format, first.cols);
        if parts.iter().any(|p| p.format != format || p.cols != cols) {
            return Err(ShapeError::Mismatch);
        }
        let rows = parts.iter().map(|p| p.rows).sum();
        let blocks = parts
            .iter()
            .flat_map(|p| (0..p.rows).flat_map(move |r| p.row_blocks(r)))
            .collect::<Vec<_>>();
        Ok(Self::interleave(format, rows, cols, &blocks))
    }

    /// Lays out `blocks` (row by row) in groups of interleaved rows.
    fn interleave(format: BlockFormat, rows: usize, cols: usize, blocks: &[RowBlock]) -> Self {
        let row_blocks = cols / BLOCK;
        let groups = rows.div_ceil(GROUP);
        let mut matrix = QuantMatrix {
            format,
            rows,
            cols,
            quants: Vec::with_capacity(groups * row_blocks * GROUP * format.packed_block_bytes()),
            scales: Vec::with_capacity(groups * row_blocks * GROUP),
            minimums: Vec::new(),
        };
        for g in 0..groups {
            for b in 0..row_blocks {
                let block = |lane: usize| {
                    blocks
                        .get((g * GROUP + lane) * row_blocks + b)
                        .filter(|_| g * GROUP + lane < rows)
                        .unwrap_or(&EMPTY_BLOCK)
                };
                let values = std::array::from_fn(|lane| block(lane).values);
                interleave::push_block(format.four_bit(), &values, &mut matrix.quants);
                matrix
                    .scales
                    .extend((0..GROUP).map(|lane| block(lane).scale));
                if format.has_minimum() {
                    matrix
                        .minimums
                        .extend((0..GROUP).map(|lane| block(lane).minimum));
                }
            }
        }
        matrix
    }

    /// Row `row`'s blocks in stored form, read back from the interleaved layout.
    fn row_blocks(&self, row: usize) -> impl Iterator<Item = RowBlock> + '_ {
        let (g, lane) = (row / GROUP, row % GROUP);
        let group = self.group(g);
        let bytes = GROUP * self.format.packed_block_bytes();
        (0..self.cols / BLOCK).map(move |b| RowBlock {
            scale: group.scales[b * GROUP + lane],
            minimum: if self.format.has_minimum() {
                group.minimums[b * GROUP + lane]
            } else {
                f16::ZERO
            },
            values: std::array::from_fn(|i| {
                interleave::value(
                    self.format.four_bit(),
                    &group.quants[b * bytes..(b + 1) * bytes],
                    lane,
                    i,
                )
            }),
        })
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
        assert!(row < self.rows, "row {row} of {}", self.rows);
        let zero = self.format.zero_point();
        for (block, out) in self.row_blocks(row).zip(out.chunks_exact_mut(BLOCK)) {
            let (d, m) = (block.scale.to_f32(), block.minimum.to_f32());
            for (o, &u) in out.iter_mut().zip(&block.values) {
                *o = d * (i32::from(u) - zero) as f32 + m;
            }
        }
    }

    /// `out = x · selfᵀ`: for each of `x`'s rows, one output per row of this matrix
    /// (`out` is `x.rows() x self.rows()`, row-major). Runs on rayon's pool, each task taking a
    /// run of row groups; activation rows go four at a time so that each weight block is read
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
        let groups = n.div_ceil(GROUP);
        let per_task = groups_per_task(groups);
        let kernels = kernels();
        let out = DisjointOutput(out.as_mut_ptr());
        (0..groups.div_ceil(per_task))
            .into_par_iter()
            .for_each(|task| {
                for g in task * per_task..((task + 1) * per_task).min(groups) {
                    let group = self.group(g);
                    let first = g * GROUP;
                    let valid = GROUP.min(n - first);
                    let write = |i: usize, sums: &[f32; GROUP]| {
                        // SAFETY: only this task writes columns first..first + valid (its
                        // groups' rows), and i < m, first + valid <= n keep the run inside
                        // `out` (checked above).
                        unsafe { out.write(i * n + first, &sums[..valid]) };
                    };
                    let mut i = 0;
                    while i + 4 <= m {
                        let sums = (kernels.x4)(group, [i, i + 1, i + 2, i + 3].map(|i| x.row(i)));
                        for (t, sums) in sums.iter().enumerate() {
                            write(i + t, sums);
                        }
                        i += 4;
                    }
                    for i in i..m {
                        write(i, &(kernels.x1)(group, x.row(i)));
                    }
                }
            });
    }

    /// Row group `g` as the kernels read it.
    pub(crate) fn group(&self, g: usize) -> Group<'_> {
        let blocks = self.cols / BLOCK;
        let (start, end) = (g * blocks * GROUP, (g + 1) * blocks * GROUP);
        let bytes = self.format.packed_block_bytes();
        Group {
            format: self.format,
            quants: &self.quants[start * bytes..end * bytes],
            scales: &self.scales[start..end],
            minimums: if self.format.has_minimum() {
                &self.minimums[start..end]
            } else {
                &[]
            },
        }
    }
}

/// The block of a GGUF file's `bytes` in stored form.
fn ggml_block(format: BlockFormat, bytes: &[u8]) -> RowBlock {
    let scale = f16::from_le_bytes([bytes[0], bytes[1]]);
    match format {
        BlockFormat::Q4_0 | BlockFormat::Q4_1 => {
            let (minimum, packed) = match format {
                BlockFormat::Q4_1 => (f16::from_le_bytes([bytes[2], bytes[3]]), &bytes[4..]),
                _ => (f16::ZERO, &bytes[2..]),
            };
            RowBlock {
                scale,
                minimum,
                values: std::array::from_fn(|i| {
                    let byte = packed[i % (BLOCK / 2)];
                    if i < BLOCK / 2 {
                        byte & 0x0F
                    } else {
                        byte >> 4
                    }
                }),
            }
        }
        BlockFormat::Q8_0 => RowBlock {
            scale,
            minimum: f16::ZERO,
            values: std::array::from_fn(|i| bytes[2 + i] ^ 0x80),
        },
    }
}

/// Row groups per parallel task: enough tasks to balance the pool, few enough that each task's
/// start-up cost stays small next to its work.
fn groups_per_task(groups: usize) -> usize {
    groups.div_ceil(rayon::current_num_threads() * 4)
}

/// The output of a product, written by tasks that each own a disjoint set of its columns.
struct DisjointOutput(*mut f32);

// SAFETY: tasks write disjoint elements (see `matmul`), and the buffer outlives them.
unsafe impl Sync for DisjointOutput {}

impl DisjointOutput {
    /// Writes `values` from element `start` on.
    ///
    /// # Safety
    /// The run lies inside the buffer and no other task writes it.
    unsafe fn write(&self, start: usize, values: &[f32]) {
        // SAFETY: guaranteed by the caller.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), self.0.add(start), values.len()) };
    }
}
