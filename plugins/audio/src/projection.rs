//! Linear layers that decode one token at a time fast on the CPU. candle multiplies a single
//! row by a weight matrix through its general matrix product, which packs the weights again on
//! every call; for the decoder's steps (one to a few rows) that packing costs more than the
//! product. [`Projection`] computes those rows as dot products straight over the weights it
//! shares with candle, split across threads, and leaves many rows (the audio features) and
//! other devices to candle.

use candle_core::{CpuStorage, Module, Result, Storage, Tensor};
use candle_nn::Linear;
use rayon::prelude::*;

/// Up to this many input rows are multiplied row by row; more go to candle's matrix product,
/// which reuses each packed weight block across rows.
const MAX_ROWS: usize = 16;

/// Output rows per parallel task: enough work per task (about 64 K multiply-adds at the
/// decoder's 384-wide rows) to be worth a thread hop.
const ROWS_PER_TASK: usize = 160;

/// A linear layer (`y = x·Wᵀ + b`), weights `out × in`.
pub struct Projection {
    linear: Linear,
    /// The bias as f32 values, read once rather than copied out of its tensor every step.
    bias: Option<Vec<f32>>,
}

impl Projection {
    /// Wraps candle's layer, sharing its weights.
    pub fn new(linear: Linear) -> Result<Self> {
        let bias = linear.bias().map(f32_values).transpose()?;
        Ok(Self { linear, bias })
    }

    /// A layer without bias over `weight` (`out × in`), e.g. tied token embeddings.
    pub fn tied(weight: Tensor) -> Self {
        Self {
            linear: Linear::new(weight, None),
            bias: None,
        }
    }

    /// `x` (`… × in`) times the weights row by row, or `None` when candle should do it: too
    /// many rows, or tensors not in f32 CPU memory.
    fn rows_by_dot(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let weight = self.linear.weight();
        let (out, width) = weight.dims2()?;
        let rows = x.elem_count() / width.max(1);
        if rows > MAX_ROWS || !x.device().is_cpu() {
            return Ok(None);
        }
        self.multiply(x, out, width, self.bias.as_deref())
    }

    fn multiply(
        &self,
        x: &Tensor,
        out: usize,
        width: usize,
        bias: Option<&[f32]>,
    ) -> Result<Option<Tensor>> {
        let (storage, layout) = self.linear.weight().storage_and_layout();
        let (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        else {
            return Ok(None);
        };
        let weights = &data[start..end];
        let input = f32_values(x)?;
        let mut result = vec![0f32; input.len() / width * out];
        for (row, y) in input.chunks_exact(width).zip(result.chunks_exact_mut(out)) {
            y.par_chunks_mut(ROWS_PER_TASK)
                .zip(weights.par_chunks(ROWS_PER_TASK * width))
                .for_each(|(y, w)| {
                    for (value, w) in y.iter_mut().zip(w.chunks_exact(width)) {
                        *value = dot(w, row);
                    }
                });
            if let Some(bias) = bias {
                y.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        }
        let mut dims = x.dims().to_vec();
        *dims.last_mut().expect("a matrix has dimensions") = out;
        Tensor::from_vec(result, dims, x.device()).map(Some)
    }
}

impl Module for Projection {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.rows_by_dot(x)? {
            Some(y) => Ok(y),
            None => self.linear.forward(x),
        }
    }
}

/// The values of `x` in row-major order, as f32.
fn f32_values(x: &Tensor) -> Result<Vec<f32>> {
    x.flatten_all()?.to_vec1()
}

/// The dot product of two equally long rows, in eight independent sums so that it vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut sums = [0f32; LANES];
    let (a_blocks, a_tail) = a.split_at(a.len() / LANES * LANES);
    let (b_blocks, b_tail) = b.split_at(a_blocks.len());
    for (a, b) in a_blocks
        .chunks_exact(LANES)
        .zip(b_blocks.chunks_exact(LANES))
    {
        for lane in 0..LANES {
            sums[lane] = a[lane].mul_add(b[lane], sums[lane]);
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(a, b)| a * b).sum();
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::largest_difference;
    use candle_core::{Device, IndexOp};

    fn random(dims: &[usize], seed: u64) -> Tensor {
        let count: usize = dims.iter().product();
        let mut state = seed;
        let values: Vec<f32> = (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        Tensor::from_vec(values, dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn a_few_rows_by_dot_products_equal_candles_product_with_and_without_bias() {
        let weight = random(&[1000, 387], 1);
        let bias = random(&[1000], 2);
        for projection in [
            Projection::new(Linear::new(weight.clone(), Some(bias))).unwrap(),
            Projection::tied(weight),
        ] {
            for rows in [1, 3, MAX_ROWS] {
                let x = random(&[1, rows, 387], rows as u64);
                let ours = projection.rows_by_dot(&x).unwrap().expect("the row path");
                let candle = projection.linear.forward(&x).unwrap();
                assert_eq!(ours.dims(), candle.dims());
                assert!(largest_difference(&ours, &candle) < 1e-4);
            }
        }
    }

    #[test]
    fn many_rows_and_strided_inputs_are_left_to_candle_or_read_in_order() {
        let projection = Projection::tied(random(&[64, 32], 3));
        let many = random(&[1, MAX_ROWS + 1, 32], 4);
        assert!(projection.rows_by_dot(&many).unwrap().is_none());
        let strided = random(&[1, 32, 2], 5).transpose(1, 2).unwrap();
        let ours = projection.forward(&strided).unwrap();
        let candle = projection
            .linear
            .forward(&strided.contiguous().unwrap())
            .unwrap();
        assert!(largest_difference(&ours, &candle) < 1e-5);
        assert_eq!(ours.i((0, 1)).unwrap().dims(), &[64]);
    }
}
