//! A weight matrix repacked from GGUF blocks, and its product with quantized activations.

use crate::{
    activations::{ActivationScales, QuantizedRows},
    format::{BLOCK, BLOCKS_PER_SUPER_BLOCK, BlockFormat},
    ggml::{self, EMPTY_BLOCK, RowBlock},
    interleave::{self, GROUP},
    kernels::{Group, kernels},
};
use half::f16;
use rayon::prelude::*;

/// A weight matrix that does not fit the bytes or the shapes it was given.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    /// The row length is not a whole number of the format's blocks.
    #[error("a row of {cols} values is not a whole number of {block}-value blocks")]
    PartialBlock {
        /// Values per row.
        cols: usize,
        /// Values per block of the format.
        block: usize,
    },
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
    /// Matrices stacked together differ in row length.
    #[error("stacked matrices must share their row length")]
    Mismatch,
}

/// A `rows x cols` weight matrix in GGUF block formats, repacked for the kernels: one part
/// per run of rows in one format (matrices stacked together may differ in format). In a part,
/// rows go in groups of sixteen whose blocks are interleaved (see `interleave.rs`; the last
/// group is padded with zero rows), with each block's scales and minimum (f16) in arrays of
/// their own, sixteen per group and block. The K-quants keep ggml's two levels instead: f16
/// scales and minimums sixteen per group and super-block of eight blocks, and 8-bit integer ones
/// sixteen per group and block, so that they take as many bits per weight as in the file.
/// Values are stored unsigned: Q4_0 keeps its nibbles
/// and Q8_0 adds 128 to its bytes, so that the kernels subtract the zero point once per block
/// instead of once per value.
#[derive(Debug)]
pub struct QuantMatrix {
    rows: usize,
    cols: usize,
    parts: Vec<Part>,
}

/// Rows of a [`QuantMatrix`] in one format.
#[derive(Debug)]
struct Part {
    format: BlockFormat,
    /// The part's first row in the matrix.
    first: usize,
    rows: usize,
    quants: Vec<u8>,
    /// Per group and block (super-block in the K-quants), the scales of the sixteen rows (of
    /// each half in Q6_K, but in the K-quants).
    scales: Vec<f16>,
    /// Per group and block (super-block in the K-quants), the minimums of the sixteen rows
    /// (formats with a minimum only).
    minimums: Vec<f16>,
    /// K-quants only: per group and block, the rows' integer scales (of each half in Q6_K).
    integer_scales: Vec<i8>,
    /// Q4_K and Q5_K only: per group and block, the rows' integer minimums.
    integer_minimums: Vec<i8>,
}

impl QuantMatrix {
    /// Repacks GGUF block data (`rows` rows of `cols` values, row-major, as stored in the file).
    pub fn from_ggml(
        format: BlockFormat,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Self, ShapeError> {
        let block = format.ggml_block_values();
        if cols == 0 || !cols.is_multiple_of(block) {
            return Err(ShapeError::PartialBlock { cols, block });
        }
        let expected = rows * cols / block * format.ggml_block_bytes();
        if bytes.len() != expected {
            return Err(ShapeError::ByteCount {
                format,
                rows,
                cols,
                expected,
                actual: bytes.len(),
            });
        }
        let blocks = ggml::row_blocks(format, bytes);
        Ok(QuantMatrix {
            rows,
            cols,
            parts: vec![Part::interleave(format, 0, rows, cols, &blocks)],
        })
    }

    /// Stacks matrices of one row length into one (rows of the first, then of the second, ...),
    /// so that products sharing an input run as one. Neighbouring rows of one format are
    /// interleaved together; a change of format starts a new part.
    pub fn stack(matrices: Vec<QuantMatrix>) -> Result<Self, ShapeError> {
        let cols = matrices.first().ok_or(ShapeError::Mismatch)?.cols;
        if matrices.iter().any(|m| m.cols != cols) {
            return Err(ShapeError::Mismatch);
        }
        let pieces: Vec<Part> = matrices.into_iter().flat_map(|m| m.parts).collect();
        let mut parts = Vec::new();
        let mut rows = 0;
        for run in pieces.chunk_by(|a, b| a.format == b.format) {
            let blocks: Vec<RowBlock> = run
                .iter()
                .flat_map(|p| (0..p.rows).flat_map(move |r| p.row_blocks(r, cols)))
                .collect();
            let count = run.iter().map(|p| p.rows).sum::<usize>();
            parts.push(Part::interleave(run[0].format, rows, count, cols, &blocks));
            rows += count;
        }
        Ok(QuantMatrix { rows, cols, parts })
    }

    /// Number of rows (outputs of a product).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row (inputs of a product).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The format of every row, if they share one (stacked matrices may not).
    pub fn format(&self) -> Option<BlockFormat> {
        match self.parts.as_slice() {
            [part] => Some(part.format),
            _ => None,
        }
    }

    /// How [`QuantMatrix::matmul`]'s activations must be quantized: per super-block if any rows
    /// are in a K-quant format, else per block.
    pub fn activation_scales(&self) -> ActivationScales {
        match self.parts.iter().any(|p| p.format.k_quant()) {
            true => ActivationScales::PerSuperBlock,
            false => ActivationScales::PerBlock,
        }
    }

    /// Runs of rows in one format (one per format change down the rows).
    #[cfg(test)]
    pub(crate) fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Writes row `row`, dequantized, into `out` (`cols` values).
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        assert!(row < self.rows, "row {row} of {}", self.rows);
        let part = self
            .parts
            .iter()
            .find(|p| row < p.first + p.rows)
            .expect("the parts cover every row");
        let (zero, sets) = (part.format.zero_point(), part.format.scales_per_block());
        for (block, out) in part
            .row_blocks(row - part.first, self.cols)
            .zip(out.chunks_exact_mut(BLOCK))
        {
            for (i, (o, &u)) in out.iter_mut().zip(&block.values).enumerate() {
                let (d, m) = block.factors(i / (BLOCK / 2) % sets);
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
    /// If `x.cols() != self.cols()`, `out` has the wrong length, or `x` was quantized with
    /// other scales than [`QuantMatrix::activation_scales`] names for K-quant rows.
    pub fn matmul(&self, x: &QuantizedRows, out: &mut [f32]) {
        assert_eq!(
            x.cols(),
            self.cols,
            "activations and weights differ in length"
        );
        assert_eq!(out.len(), x.rows() * self.rows, "output has the wrong size");
        let (m, n) = (x.rows(), self.rows);
        let groups = self.groups();
        let per_task = groups_per_task(groups.len());
        let kernels = kernels();
        let out = DisjointOutput(out.as_mut_ptr());
        groups.par_chunks(per_task).for_each(|task| {
            for &(first, valid, group) in task {
                let write = |i: usize, sums: &[f32; GROUP]| {
                    // SAFETY: only this task writes columns first..first + valid (its groups'
                    // rows), and i < m, first + valid <= n keep the run inside `out` (checked
                    // above).
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

    /// Every row group of every part as the kernels read it, with its first row in the matrix
    /// and how many of its rows are real (not padding).
    pub(crate) fn groups(&self) -> Vec<(usize, usize, Group<'_>)> {
        self.parts
            .iter()
            .flat_map(|p| {
                (0..p.rows.div_ceil(GROUP)).map(move |g| {
                    let valid = GROUP.min(p.rows - g * GROUP);
                    (p.first + g * GROUP, valid, p.group(g, self.cols))
                })
            })
            .collect()
    }
}

impl Part {
    /// Lays out `blocks` (row by row) in groups of interleaved rows.
    fn interleave(
        format: BlockFormat,
        first: usize,
        rows: usize,
        cols: usize,
        blocks: &[RowBlock],
    ) -> Self {
        let row_blocks = cols / BLOCK;
        let groups = rows.div_ceil(GROUP);
        let sets = format.scales_per_block();
        let mut part = Part {
            format,
            first,
            rows,
            quants: Vec::with_capacity(groups * row_blocks * GROUP * format.packed_block_bytes()),
            scales: Vec::new(),
            minimums: Vec::new(),
            integer_scales: Vec::new(),
            integer_minimums: Vec::new(),
        };
        let k_quant = format.k_quant();
        for g in 0..groups {
            for b in 0..row_blocks {
                let block = |lane: usize| {
                    blocks
                        .get((g * GROUP + lane) * row_blocks + b)
                        .filter(|_| g * GROUP + lane < rows)
                        .unwrap_or(&EMPTY_BLOCK)
                };
                let lanes = || (0..GROUP).map(block);
                let values = std::array::from_fn(|lane| block(lane).values);
                interleave::push_block(format.bits(), &values, &mut part.quants);
                if k_quant {
                    for h in 0..sets {
                        part.integer_scales
                            .extend(lanes().map(|block| block.integer_scales[h]));
                    }
                    if format.has_minimum() {
                        part.integer_minimums
                            .extend(lanes().map(|block| block.integer_minimum));
                    }
                }
                if k_quant && b % BLOCKS_PER_SUPER_BLOCK != 0 {
                    continue;
                }
                for h in 0..if k_quant { 1 } else { sets } {
                    part.scales.extend(lanes().map(|block| block.scales[h]));
                }
                if format.has_minimum() {
                    part.minimums.extend(lanes().map(|block| block.minimum));
                }
            }
        }
        part
    }

    /// Row `row`'s blocks in stored form, read back from the interleaved layout.
    fn row_blocks(&self, row: usize, cols: usize) -> impl Iterator<Item = RowBlock> + '_ {
        let (g, lane) = (row / GROUP, row % GROUP);
        let group = self.group(g, cols);
        let bytes = GROUP * self.format.packed_block_bytes();
        let sets = self.format.scales_per_block();
        let (k_quant, minimum) = (self.format.k_quant(), self.format.has_minimum());
        (0..cols / BLOCK).map(move |b| RowBlock {
            scales: std::array::from_fn(|h| match k_quant {
                true => group.scales[b / BLOCKS_PER_SUPER_BLOCK * GROUP + lane],
                false => group.scales[(b * sets + h % sets) * GROUP + lane],
            }),
            minimum: match (minimum, k_quant) {
                (false, _) => f16::ZERO,
                (true, true) => group.minimums[b / BLOCKS_PER_SUPER_BLOCK * GROUP + lane],
                (true, false) => group.minimums[b * GROUP + lane],
            },
            integer_scales: std::array::from_fn(|h| match k_quant {
                true => group.integer_scales[(b * sets + h % sets) * GROUP + lane],
                false => 1,
            }),
            integer_minimum: match (minimum, k_quant) {
                (false, _) => 0,
                (true, true) => group.integer_minimums[b * GROUP + lane],
                (true, false) => 1,
            },
            values: std::array::from_fn(|i| {
                interleave::value(
                    self.format.bits(),
                    &group.quants[b * bytes..(b + 1) * bytes],
                    lane,
                    i,
                )
            }),
        })
    }

    /// Row group `g` as the kernels read it.
    fn group<'a>(&'a self, g: usize, cols: usize) -> Group<'a> {
        let blocks = cols / BLOCK;
        let (start, end) = (g * blocks * GROUP, (g + 1) * blocks * GROUP);
        let bytes = self.format.packed_block_bytes();
        let sets = self.format.scales_per_block();
        let (scaled, scale_sets) = match self.format.k_quant() {
            true => (
                start / BLOCKS_PER_SUPER_BLOCK..end / BLOCKS_PER_SUPER_BLOCK,
                1,
            ),
            false => (start..end, sets),
        };
        let per_block = |values: &'a [i8], sets: usize| match values.is_empty() {
            true => &[][..],
            false => &values[start * sets..end * sets],
        };
        Group {
            format: self.format,
            quants: &self.quants[start * bytes..end * bytes],
            scales: &self.scales[scaled.start * scale_sets..scaled.end * scale_sets],
            minimums: if self.format.has_minimum() {
                &self.minimums[scaled]
            } else {
                &[]
            },
            integer_scales: per_block(&self.integer_scales, sets),
            integer_minimums: per_block(&self.integer_minimums, 1),
        }
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
