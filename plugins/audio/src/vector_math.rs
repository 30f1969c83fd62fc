//! The elementwise arithmetic over f32 rows of the encoder, the decoder and its sampling: layer
//! norm, GELU and the exponentials of a softmax, written branch-free so that the compiler
//! vectorises them (libm's `expf` and `tanhf` are a call per value, and the encoder takes about
//! sixty million of them a window).

use rbee_vector_math::exp;

/// Independent partial results in the reductions below: a float sum or maximum taken one value
/// after another cannot be vectorised, eight running side by side can.
const LANES: usize = 8;

/// Layer norm of each `width`-wide row of `x` into `out`: `(x - mean)/√(var + eps)·w + b`.
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    let width = weight.len();
    for (x, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let mean = sum(x, |v| v) / width as f32;
        let variance = sum(x, |v| (v - mean) * (v - mean)) / width as f32;
        let inverse = 1.0 / (variance + eps).sqrt();
        for (((out, x), w), b) in out.iter_mut().zip(x).zip(weight).zip(bias) {
            *out = (x - mean) * inverse * w + b;
        }
    }
}

/// GELU by its tanh approximation, `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`, in place
/// (the form candle's `gelu` computes).
pub fn gelu_tanh(x: &mut [f32]) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    for v in x {
        let inner = SQRT_2_OVER_PI * *v * (1.0 + 0.044_715 * *v * *v);
        let tanh = 1.0 - 2.0 / (exp(2.0 * inner) + 1.0);
        *v = 0.5 * *v * (1.0 + tanh);
    }
}

/// `x ↦ e^(x - max x)` in place; returns the sum of the results (a softmax before its division).
pub fn exp_shifted(x: &mut [f32]) -> f32 {
    let max = maximum(x);
    for v in x.iter_mut() {
        *v = exp(*v - max);
    }
    sum(x, |v| v)
}

/// `ln Σ e^v` over `x` (a softmax's normaliser in log space); minus infinity when `x` is empty
/// or all minus infinity.
pub fn log_sum_exp(x: &[f32]) -> f32 {
    let max = maximum(x);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + sum(x, |v| exp(v - max)).ln()
}

/// The largest value of `x`, in [`LANES`] partial maxima; minus infinity when `x` is empty.
fn maximum(x: &[f32]) -> f32 {
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (max, &v) in maxima.iter_mut().zip(chunk) {
            *max = if v > *max { v } else { *max };
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&maxima)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// `Σ f(v)` over `x`, in [`LANES`] partial sums.
#[inline(always)]
fn sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut sums = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (sum, &v) in sums.iter_mut().zip(chunk) {
            *sum += f(v);
        }
    }
    chunks.remainder().iter().map(|&v| f(v)).sum::<f32>() + sums.iter().sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_its_formula_with_libm_tanh() {
        let mut x: Vec<f32> = (-400..400).map(|i| i as f32 * 0.02).collect();
        let expected: Vec<f32> = x
            .iter()
            .map(|v| 0.5 * v * (1.0 + (0.797_884_6 * v * (1.0 + 0.044_715 * v * v)).tanh()))
            .collect();
        gelu_tanh(&mut x);
        for (ours, expected) in x.iter().zip(expected) {
            assert!((ours - expected).abs() < 1e-6, "{ours} vs {expected}");
        }
    }

    #[test]
    fn layer_norm_centres_and_scales_each_row() {
        let x = [1.0, 2.0, 3.0, 4.0, -2.0, 0.0, 2.0, 4.0];
        let mut out = [0.0; 8];
        layer_norm(
            &x,
            &[1.0, 1.0, 2.0, 2.0],
            &[0.0, 0.0, 0.0, 1.0],
            0.0,
            &mut out,
        );
        let s = 1.25f32.sqrt();
        let expected = [-1.5 / s, -0.5 / s, 1.0 / s, 3.0 / s + 1.0];
        for (ours, expected) in out[..4].iter().zip(expected) {
            assert!((ours - expected).abs() < 1e-6);
        }
        assert!(
            (out[4] - out[0]).abs() < 1e-6,
            "a row scaled by 2 and shifted normalises alike"
        );
    }

    #[test]
    fn exp_shifted_is_a_softmax_before_its_division() {
        let mut x = [1000.0, 1001.0, f32::NEG_INFINITY];
        let sum = exp_shifted(&mut x);
        assert!((x[0] - (-1f32).exp()).abs() < 1e-7 && x[1] == 1.0 && x[2] == 0.0);
        assert!((sum - (1.0 + (-1f32).exp())).abs() < 1e-6);
    }

    #[test]
    fn log_sum_exp_matches_libm_and_ignores_minus_infinity() {
        let x: Vec<f32> = (0..1001).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let expected = max as f64 + x.iter().map(|v| ((v - max) as f64).exp()).sum::<f64>().ln();
        assert!((log_sum_exp(&x) as f64 - expected).abs() < 1e-4);
        let mut banned = x.clone();
        banned.push(f32::NEG_INFINITY);
        assert_eq!(log_sum_exp(&banned), log_sum_exp(&x));
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f32::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[]), f32::NEG_INFINITY);
    }
}
