//! Weight matrices for the decoder's products of a few rows, kept as compactly as the model
//! file allows. A decoder step multiplies one token's row by every matrix, so its time is the
//! time to read the weights from memory: a CTranslate2 float16 file's weights stay 16-bit (half
//! the bytes to read, no value changed), and f32 weights that f16 cannot hold exactly stay f32.
//! Each output row is one dot product, SIMD on x86-64 CPUs with AVX2, FMA and F16C (chosen at
//! run time), plain Rust elsewhere.

use half::f16;
use rayon::prelude::*;

/// Output rows per parallel task, at least: about 12 K values of a 384-wide matrix, enough work
/// to be worth a thread hop.
const MIN_ROWS_PER_TASK: usize = 32;

/// A `rows × cols` row-major matrix.
pub struct WeightMatrix {
    values: Values,
    rows: usize,
    cols: usize,
}

enum Values {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl WeightMatrix {
    /// `values` (`rows × cols`, row-major), stored as f16 when every value is exactly an f16.
    pub fn new(values: Vec<f32>, rows: usize, cols: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "a {rows}x{cols} matrix");
        let exact = values.iter().all(|&v| f16::from_f32(v).to_f32() == v);
        let values = if exact {
            Values::F16(values.into_iter().map(f16::from_f32).collect())
        } else {
            Values::F32(values)
        };
        Self { values, rows, cols }
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row `index`, as f32 values.
    pub fn row(&self, index: usize) -> Vec<f32> {
        let range = index * self.cols..(index + 1) * self.cols;
        match &self.values {
            Values::F16(values) => values[range].iter().map(|v| v.to_f32()).collect(),
            Values::F32(values) => values[range].to_vec(),
        }
    }

    /// Every value, as f32 (for products of many rows, which the gemm crate does better).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.values {
            Values::F16(values) => values.iter().map(|v| v.to_f32()).collect(),
            Values::F32(values) => values.clone(),
        }
    }

    /// `out = x·Wᵀ` for each `cols`-wide row of `x`, into the `rows`-wide rows of `out`. Each
    /// block of weight rows is read from memory once for all the rows of `x`.
    pub fn multiply(&self, x: &[f32], out: &mut [f32]) {
        let inputs = x.len() / self.cols;
        assert!(
            x.len() == inputs * self.cols && out.len() == inputs * self.rows,
            "{} inputs and {} outputs for a {}x{} matrix",
            x.len(),
            out.len(),
            self.rows,
            self.cols
        );
        if inputs == 0 {
            return;
        }
        let per_task = self
            .rows
            .div_ceil(4 * rayon::current_num_threads())
            .max(MIN_ROWS_PER_TASK);
        if inputs == 1 {
            out.par_chunks_mut(per_task)
                .enumerate()
                .for_each(|(task, out)| self.block(task * per_task, x, out));
            return;
        }
        // Output row by output row (the transpose of `out`), so that each task writes one run.
        let mut transposed = vec![0f32; out.len()];
        transposed
            .par_chunks_mut(per_task * inputs)
            .enumerate()
            .for_each(|(task, block)| {
                let mut column = vec![0f32; block.len() / inputs];
                for (input, x) in x.chunks_exact(self.cols).enumerate() {
                    self.block(task * per_task, x, &mut column);
                    for (row, value) in column.iter().enumerate() {
                        block[row * inputs + input] = *value;
                    }
                }
            });
        for (row, values) in transposed.chunks_exact(inputs).enumerate() {
            for (input, value) in values.iter().enumerate() {
                out[input * self.rows + row] = *value;
            }
        }
    }

    /// Rows `first..first + out.len()` of the product with one input row.
    fn block(&self, first: usize, x: &[f32], out: &mut [f32]) {
        let cols = self.cols;
        let range = first * cols..(first + out.len()) * cols;
        match &self.values {
            Values::F16(values) => {
                for (value, row) in out.iter_mut().zip(values[range].chunks_exact(cols)) {
                    *value = dot_f16(row, x);
                }
            }
            Values::F32(values) => {
                for (value, row) in out.iter_mut().zip(values[range].chunks_exact(cols)) {
                    *value = dot_f32(row, x);
                }
            }
        }
    }
}

/// Whether this CPU has the SIMD dot products, checked once.
#[cfg(target_arch = "x86_64")]
fn simd() -> bool {
    use std::sync::OnceLock;
    static SIMD: OnceLock<bool> = OnceLock::new();
    *SIMD.get_or_init(|| {
        use std::is_x86_feature_detected as has;
        has!("avx2") && has!("fma") && has!("f16c")
    })
}

/// `Σ w·x` over a row of f16 weights.
fn dot_f16(w: &[f16], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX2, FMA and F16C were detected.
        return unsafe { simd::dot_f16(w, x) };
    }
    w.iter().zip(x).map(|(w, x)| w.to_f32() * x).sum()
}

/// `Σ w·x` over a row of f32 weights.
fn dot_f32(w: &[f32], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: AVX2, FMA and F16C were detected.
        return unsafe { simd::dot_f32(w, x) };
    }
    w.iter().zip(x).map(|(w, x)| w * x).sum()
}

/// The dot products with AVX2, FMA and F16C: 32 values a pass in four independent sums, so
/// that the multiply-adds overlap instead of waiting for each other.
#[cfg(target_arch = "x86_64")]
mod simd {
    use half::f16;
    use std::arch::x86_64::*;

    /// Values per pass.
    const PASS: usize = 32;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(w: &[f16], x: &[f32]) -> f32 {
        let n = w.len().min(x.len());
        let whole = n / PASS * PASS;
        let (w_ptr, x_ptr) = (w.as_ptr() as *const __m128i, x.as_ptr());
        let mut sums = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < whole {
            for (k, sum) in sums.iter_mut().enumerate() {
                // SAFETY: `i + 8k + 8 <= whole <= n`, inside both rows.
                unsafe {
                    let w = _mm256_cvtph_ps(_mm_loadu_si128(w_ptr.byte_add(2 * (i + 8 * k))));
                    *sum = _mm256_fmadd_ps(w, _mm256_loadu_ps(x_ptr.add(i + 8 * k)), *sum);
                }
            }
            i += PASS;
        }
        let tail: f32 = w[whole..n]
            .iter()
            .zip(&x[whole..n])
            .map(|(w, x)| w.to_f32() * x)
            .sum();
        horizontal_sum(sums) + tail
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f32(w: &[f32], x: &[f32]) -> f32 {
        let n = w.len().min(x.len());
        let whole = n / PASS * PASS;
        let (w_ptr, x_ptr) = (w.as_ptr(), x.as_ptr());
        let mut sums = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i < whole {
            for (k, sum) in sums.iter_mut().enumerate() {
                // SAFETY: `i + 8k + 8 <= whole <= n`, inside both rows.
                unsafe {
                    let w = _mm256_loadu_ps(w_ptr.add(i + 8 * k));
                    *sum = _mm256_fmadd_ps(w, _mm256_loadu_ps(x_ptr.add(i + 8 * k)), *sum);
                }
            }
            i += PASS;
        }
        let tail: f32 = w[whole..n]
            .iter()
            .zip(&x[whole..n])
            .map(|(w, x)| w * x)
            .sum();
        horizontal_sum(sums) + tail
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn horizontal_sum(sums: [__m256; 4]) -> f32 {
        let total = _mm256_add_ps(
            _mm256_add_ps(sums[0], sums[1]),
            _mm256_add_ps(sums[2], sums[3]),
        );
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds eight f32 values.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
        lanes.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(count: usize, seed: u64, exact_f16: bool) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
                if exact_f16 {
                    f16::from_f32(v).to_f32()
                } else {
                    v
                }
            })
            .collect()
    }

    fn reference(w: &[f32], cols: usize, x: &[f32]) -> Vec<f32> {
        x.chunks_exact(cols)
            .flat_map(|x| {
                w.chunks_exact(cols).map(move |row| {
                    row.iter().zip(x).map(|(a, b)| (a * b) as f64).sum::<f64>() as f32
                })
            })
            .collect()
    }

    /// Both storages, widths with and without a partial pass, one and several input rows, a
    /// row count that splits unevenly across tasks: within f32 rounding of a float64 product.
    #[test]
    fn products_equal_the_definition_for_both_storages() {
        for exact_f16 in [true, false] {
            for cols in [384, 387] {
                let rows = 1000;
                let w = values(rows * cols, cols as u64, exact_f16);
                let matrix = WeightMatrix::new(w.clone(), rows, cols);
                assert_eq!(matches!(matrix.values, Values::F16(_)), exact_f16);
                for inputs in [1, 3] {
                    let x = values(inputs * cols, inputs as u64, false);
                    let mut out = vec![f32::NAN; inputs * rows];
                    matrix.multiply(&x, &mut out);
                    for (ours, expected) in out.iter().zip(reference(&w, cols, &x)) {
                        assert!((ours - expected).abs() < 1e-4, "{ours} vs {expected}");
                    }
                }
                assert_eq!(matrix.row(7), w[7 * cols..8 * cols]);
                assert_eq!(matrix.to_f32(), w);
            }
        }
    }
}
