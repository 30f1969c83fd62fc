//! The f32 arithmetic between the quantized products: norms, rotary embeddings and the gated
//! activation (attention has its own module), written so that the compiler vectorises the
//! inner loops.

use super::hparams::{Activation, RopeConfig, RopeStyle};
use rbee_vector_math::exp;

/// Defines a function whose body is compiled twice on x86-64: for AVX2 and FMA, taken at run
/// time when the CPU has them, and for the build's target otherwise. A plugin built for
/// baseline x86-64 then still runs these loops eight floats wide. What the body calls is
/// `#[inline(always)]`, so that it is compiled into both (a closure or a call that is not
/// inlined loses the features).
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                // SAFETY: the features were just detected.
                return unsafe { avx2($($arg),*) };
            }
            body($($arg),*)
        }
    };
}

pub(super) use simd_fn;

/// Lanes of the partial sums in [`dot`]: independent accumulators let the loop vectorise.
pub(super) const LANES: usize = 8;

/// `Σ a·b`.
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut partial = [0f32; LANES];
    let (a_body, a_tail) = a.split_at(a.len() - a.len() % LANES);
    let (b_body, b_tail) = b.split_at(a_body.len());
    for (a, b) in a_body.chunks_exact(LANES).zip(b_body.chunks_exact(LANES)) {
        for lane in 0..LANES {
            partial[lane] += a[lane] * b[lane];
        }
    }
    partial.iter().sum::<f32>() + a_tail.iter().zip(b_tail).map(|(a, b)| a * b).sum::<f32>()
}

simd_fn! {
    /// `out = x / rms(x) * weight`, row by row.
    pub(super) fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        let width = weight.len();
        for (x, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            let mean_square = dot(x, x) / width as f32;
            let inverse = 1.0 / (mean_square + eps).sqrt();
            for ((out, x), w) in out.iter_mut().zip(x).zip(weight) {
                *out = x * inverse * w;
            }
        }
    }
}

/// Rotary position embedding angles, one (cos, sin) pair per rotated dimension pair and
/// position.
pub(super) struct Rope {
    config: RopeConfig,
    inverse_frequencies: Vec<f32>,
    table: Vec<(f32, f32)>,
}

impl Rope {
    /// Frequencies `base^(-2j/dims) / scale`, each also divided by its factor when the model
    /// has them (Llama 3's long-context scaling, stored as `rope_freqs.weight`).
    pub fn new(config: RopeConfig, factors: Option<&[f32]>) -> Self {
        let inverse_frequencies = (0..config.dims / 2)
            .map(|j| {
                let factor = factors.and_then(|f| f.get(j)).copied().unwrap_or(1.0);
                let exponent = -2.0 * j as f32 / config.dims as f32;
                config.base.powf(exponent) / (factor * config.scale)
            })
            .collect();
        Rope {
            config,
            inverse_frequencies,
            table: Vec::new(),
        }
    }

    /// Rotates each head of `row` to `position`, in f32 as Hugging Face's and candle's
    /// implementations compute the angles.
    pub fn rotate(&mut self, row: &mut [f32], head_dim: usize, position: usize) {
        let pairs = self.inverse_frequencies.len();
        while self.table.len() < (position + 1) * pairs {
            let p = (self.table.len() / pairs) as f32;
            let angles = self.inverse_frequencies.iter().map(|f| (p * f).sin_cos());
            self.table.extend(angles.map(|(sin, cos)| (cos, sin)));
        }
        let angles = &self.table[position * pairs..(position + 1) * pairs];
        let rotate =
            |x0: f32, x1: f32, (cos, sin): (f32, f32)| (x0 * cos - x1 * sin, x0 * sin + x1 * cos);
        for head in row.chunks_exact_mut(head_dim) {
            let rotated = &mut head[..2 * pairs];
            match self.config.style {
                RopeStyle::Pairs => {
                    for (pair, &angle) in rotated.chunks_exact_mut(2).zip(angles) {
                        (pair[0], pair[1]) = rotate(pair[0], pair[1], angle);
                    }
                }
                RopeStyle::Halves => {
                    let (first, second) = rotated.split_at_mut(pairs);
                    for ((x0, x1), &angle) in first.iter_mut().zip(second).zip(angles) {
                        (*x0, *x1) = rotate(*x0, *x1, angle);
                    }
                }
            }
        }
    }
}

/// `x ↦ cap * tanh(x / cap)` on every value.
#[inline(always)]
pub(super) fn softcap(x: &mut [f32], cap: f32) {
    let inverse = 1.0 / cap;
    for v in x {
        *v = cap * tanh(*v * inverse);
    }
}

simd_fn! {
    /// `cap * tanh(x / cap)` on every value of `x`.
    pub(super) fn soft_cap(x: &mut [f32], cap: f32) {
        softcap(x, cap)
    }
}

simd_fn! {
    /// `out = act(gate) * up` for rows laid out as `[gate | up]`.
    pub(super) fn gated(gate_up: &[f32], width: usize, activation: Activation, out: &mut [f32]) {
        for (gate_up, out) in gate_up
            .chunks_exact(2 * width)
            .zip(out.chunks_exact_mut(width))
        {
            let (gate, up) = gate_up.split_at(width);
            match activation {
                Activation::Silu => {
                    for ((out, g), u) in out.iter_mut().zip(gate).zip(up) {
                        *out = g / (1.0 + exp(-g)) * u;
                    }
                }
                Activation::GeluTanh => {
                    for ((out, g), u) in out.iter_mut().zip(gate).zip(up) {
                        *out = gelu_tanh(*g) * u;
                    }
                }
            }
        }
    }
}

/// GELU by its tanh approximation, `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
}

/// `tanh x` as `1 - 2/(e^{2x} + 1)`, branch-free on [`exp`] (whose clamping keeps it finite).
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rotates_adjacent_pairs_or_halves_of_the_rotated_dimensions() {
        // Six dimensions, four rotated, base 1 (every angle is the position): at position 1,
        // each rotated pair turns by one radian; the last two dimensions pass unchanged.
        let config = |style| RopeConfig {
            style,
            dims: 4,
            base: 1.0,
            scale: 1.0,
        };
        let (cos, sin) = (1f32.cos(), 1f32.sin());
        let mut row = [1.0, 0.0, 0.0, 1.0, 5.0, 6.0];
        Rope::new(config(RopeStyle::Pairs), None).rotate(&mut row, 6, 1);
        let expected = [cos, sin, -sin, cos, 5.0, 6.0];
        assert!(
            row.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6),
            "{row:?}"
        );
        let mut row = [1.0, 0.0, 0.0, 1.0, 5.0, 6.0];
        Rope::new(config(RopeStyle::Halves), None).rotate(&mut row, 6, 1);
        // Pairs (0, 2) = (1, 0) and (1, 3) = (0, 1).
        let expected = [cos, -sin, sin, cos, 5.0, 6.0];
        assert!(
            row.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6),
            "{row:?}"
        );
        // Linear scaling by 2 at position 2 is position 1 unscaled.
        let mut scaled = [1.0, 0.0, 0.0, 1.0, 5.0, 6.0];
        let stretched = RopeConfig {
            scale: 2.0,
            ..config(RopeStyle::Halves)
        };
        Rope::new(stretched, None).rotate(&mut scaled, 6, 2);
        assert!(
            scaled.iter().zip(row).all(|(a, b)| (a - b).abs() < 1e-6),
            "{scaled:?}"
        );
    }

    #[test]
    fn gelu_and_soft_cap_follow_their_formulas() {
        let mut x = -12.0f32;
        while x <= 12.0 {
            let inner =
                (2.0 / std::f64::consts::PI).sqrt() * (x as f64 + 0.044715 * (x as f64).powi(3));
            let expected = 0.5 * x as f64 * (1.0 + inner.tanh());
            let mut out = [0f32];
            gated(&[x, 1.0], 1, Activation::GeluTanh, &mut out);
            assert!(
                (out[0] as f64 - expected).abs() < 1e-6 * (1.0 + expected.abs()),
                "gelu({x})"
            );
            let mut capped = [x];
            soft_cap(&mut capped, 5.0);
            let expected = 5.0 * (x as f64 / 5.0).tanh();
            assert!((capped[0] as f64 - expected).abs() < 1e-6, "cap({x})");
            x += 0.173;
        }
    }
}
