//! The plugin's own seeded Gaussian noise, so that a seed reproduces an image on every backend
//! and scheduler (candle's CPU device cannot be seeded, and some of its schedulers draw noise).

use candle_core::{Device, Result, Tensor};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A stream of standard normal samples determined by a seed.
///
/// ChaCha8 is value-stable across `rand_chacha` releases and the Box-Muller transform is written
/// here, so the same seed gives the same numbers whatever the crate versions.
pub struct Noise {
    rng: ChaCha8Rng,
}

impl Noise {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A uniform sample in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// An f32 tensor of `shape` filled with standard normal samples, on `device`.
    pub fn gaussian(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let count: usize = shape.iter().product();
        let mut values = Vec::with_capacity(count + 1);
        while values.len() < count {
            let radius = (-2.0 * self.uniform().ln()).sqrt();
            let angle = 2.0 * std::f64::consts::PI * self.uniform();
            values.push((radius * angle.cos()) as f32);
            values.push((radius * angle.sin()) as f32);
        }
        values.truncate(count);
        Tensor::from_vec(values, shape, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_samples_and_another_seed_differs() {
        let sample = |seed| {
            Noise::new(seed)
                .gaussian(&[2, 3], &Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(sample(7), sample(7));
        assert_ne!(sample(7), sample(8));
    }

    #[test]
    fn samples_are_roughly_standard_normal() {
        let values = Noise::new(1)
            .gaussian(&[10_000], &Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}
