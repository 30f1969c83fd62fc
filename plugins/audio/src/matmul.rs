//! Matrix products over f32 slices by the gemm crate (the one candle's CPU backend uses), with
//! element strides, so that transposes, head columns and query blocks are views and no product
//! allocates.

use gemm::Parallelism;

/// A read-only view of a matrix in a slice: element `(i, j)` is `data[i·row_stride +
/// j·col_stride]`.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// How many threads a product may use.
#[derive(Clone, Copy)]
pub enum Threads {
    /// The calling thread only (the product is already one of many parallel tasks).
    One,
    /// rayon's pool.
    All,
}

impl<'a> Matrix<'a> {
    /// `rows × cols` whose rows are `row_stride` apart in `data` (`cols` for a dense matrix;
    /// more for a block of columns of a wider one).
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        let view = Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        };
        assert!(
            view.fits(),
            "a {rows}x{cols} view overruns its {} values",
            data.len()
        );
        view
    }

    /// The transpose, as a view of the same values.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `out[i·out_stride + j] = scale · Σₗ a(i, l)·b(l, j)`, added to what `out` holds when
/// `accumulate`.
pub fn product(
    out: &mut [f32],
    out_stride: usize,
    a: Matrix,
    b: Matrix,
    scale: f32,
    accumulate: bool,
    threads: Threads,
) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    // Checks that the output view lies inside `out`.
    Matrix::rows(out, a.rows, b.cols, out_stride);
    if a.rows == 0 || b.cols == 0 {
        return;
    }
    let parallelism = match threads {
        Threads::One => Parallelism::None,
        Threads::All => Parallelism::Rayon(rayon::current_num_threads()),
    };
    // SAFETY: the three views were checked to lie inside their slices; `out` is borrowed
    // mutably, so it overlaps neither input.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Matrix, b: Matrix) -> Vec<f32> {
        let at = |m: &Matrix, i: usize, j: usize| m.data[i * m.row_stride + j * m.col_stride];
        (0..a.rows)
            .flat_map(|i| (0..b.cols).map(move |j| (i, j)))
            .map(|(i, j)| (0..a.cols).map(|l| at(&a, i, l) * at(&b, l, j)).sum())
            .collect()
    }

    #[test]
    fn products_of_transposed_and_column_block_views_match_the_definition() {
        let values: Vec<f32> = (0..240).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
        let a = Matrix::rows(&values[3..], 5, 4, 12);
        let b = Matrix::rows(&values, 6, 4, 4).t();
        let mut out = vec![1.0; 5 * 7];
        product(&mut out, 7, a, b, 0.5, true, Threads::One);
        for (i, expected) in naive(a, b).iter().enumerate() {
            let (row, col) = (i / 6, i % 6);
            assert_eq!(out[row * 7 + col], 1.0 + 0.5 * expected);
        }
        assert!(
            out.chunks(7).all(|row| row[6] == 1.0),
            "the seventh column is outside"
        );
        let mut fresh = vec![9.0; 30];
        product(&mut fresh, 6, a, b, 1.0, false, Threads::All);
        assert_eq!(fresh, naive(a, b));
    }

    #[test]
    #[should_panic(expected = "overruns")]
    fn a_view_larger_than_its_slice_is_refused() {
        Matrix::rows(&[0.0; 10], 3, 4, 4);
    }
}
