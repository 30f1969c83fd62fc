//! Noise schedulers: which timesteps a run visits and how the latents move at each step.
//!
//! Written here rather than taken from candle because candle's ancestral and DDPM schedulers
//! draw their own noise from an unseedable generator; here every random draw comes from the
//! job's [`Noise`], so a seed reproduces an image on every scheduler. The formulas follow
//! diffusers (DDIM, DDPM, Euler and Euler ancestral discrete).

use crate::noise::Noise;
use candle_core::{Result, Tensor};
use schemars::JsonSchema;
use serde::Deserialize;

/// The schedulers a job may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum SchedulerKind {
    /// Denoising diffusion implicit models (deterministic, eta = 0).
    Ddim,
    /// Denoising diffusion probabilistic models (adds noise each step).
    Ddpm,
    /// Euler discrete (deterministic).
    Euler,
    /// Euler ancestral discrete (adds noise each step; the Turbo models' scheduler).
    EulerAncestral,
}

impl SchedulerKind {
    /// Every scheduler's name, as jobs spell it.
    pub const NAMES: [&'static str; 4] = ["ddim", "ddpm", "euler", "euler_ancestral"];

    /// The scheduler's name, as jobs spell it.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The scheduler named by a diffusers `_class_name`, if it is one of ours; PNDM (the SD 1.5
    /// default) and other multistep schedulers map to DDIM.
    pub fn from_class_name(class_name: &str) -> Self {
        match class_name {
            "DDPMScheduler" => Self::Ddpm,
            "EulerDiscreteScheduler" => Self::Euler,
            "EulerAncestralDiscreteScheduler" => Self::EulerAncestral,
            _ => Self::Ddim,
        }
    }

    /// Whether the scheduler works in the sigma (k-diffusion) parameterisation.
    fn uses_sigmas(self) -> bool {
        matches!(self, Self::Euler | Self::EulerAncestral)
    }
}

/// What the UNet predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The noise (SD 1.5, XL, Turbo).
    #[default]
    Epsilon,
    /// The velocity (SD 2.1 768).
    VPrediction,
    /// The clean sample.
    Sample,
}

/// How the inference timesteps are spread over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    /// `0, r, 2r, ...` plus the offset (SD 1.5, 2.1, XL).
    #[default]
    Leading,
    /// Evenly from the last training step down (Turbo).
    Trailing,
    /// `linspace(0, T - 1, n)`.
    Linspace,
}

/// How beta grows over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// Linear in beta.
    Linear,
    /// Linear in the square root of beta (every SD version).
    #[default]
    ScaledLinear,
    /// The cosine schedule.
    #[serde(rename = "squaredcos_cap_v2")]
    SquaredCos,
}

/// A diffusers `scheduler/scheduler_config.json` (unknown fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct ScheduleConfig {
    /// The diffusers scheduler class, which picks the default [`SchedulerKind`].
    #[serde(rename = "_class_name", default)]
    pub class_name: String,
    /// Training timesteps.
    #[serde(default = "default_train_timesteps")]
    pub num_train_timesteps: usize,
    /// Beta at the first training step.
    #[serde(default = "default_beta_start")]
    pub beta_start: f64,
    /// Beta at the last training step.
    #[serde(default = "default_beta_end")]
    pub beta_end: f64,
    /// How beta grows.
    #[serde(default)]
    pub beta_schedule: BetaSchedule,
    /// What the UNet predicts.
    #[serde(default)]
    pub prediction_type: PredictionType,
    /// Added to leading timesteps.
    #[serde(default)]
    pub steps_offset: usize,
    /// How inference timesteps are spread.
    #[serde(default)]
    pub timestep_spacing: TimestepSpacing,
}

fn default_train_timesteps() -> usize {
    1000
}
fn default_beta_start() -> f64 {
    0.00085
}
fn default_beta_end() -> f64 {
    0.012
}

/// A scheduler set up for one run of `steps` steps.
pub struct Scheduler {
    kind: SchedulerKind,
    prediction: PredictionType,
    timesteps: Vec<usize>,
    alphas_cumprod: Vec<f64>,
    /// Sigma at each inference step, then 0.
    sigmas: Vec<f64>,
    init_sigma: f64,
}

impl Scheduler {
    /// A `kind` scheduler for `steps` inference steps (1 or more) of the model `config` describes.
    pub fn new(kind: SchedulerKind, config: &ScheduleConfig, steps: usize) -> Self {
        let train = config.num_train_timesteps;
        let timesteps = timesteps(config, steps);
        let alphas_cumprod = alphas_cumprod(config);
        let mut sigmas: Vec<f64> = timesteps
            .iter()
            .map(|&t| {
                ((1.0 - alphas_cumprod[t.min(train - 1)]) / alphas_cumprod[t.min(train - 1)]).sqrt()
            })
            .collect();
        sigmas.push(0.0);
        let sigma_max = sigmas.iter().cloned().fold(0.0, f64::max);
        let init_sigma = match (kind.uses_sigmas(), config.timestep_spacing) {
            (false, _) => 1.0,
            (true, TimestepSpacing::Leading) => (sigma_max * sigma_max + 1.0).sqrt(),
            (true, _) => sigma_max,
        };
        Self {
            kind,
            prediction: config.prediction_type,
            timesteps,
            alphas_cumprod,
            sigmas,
            init_sigma,
        }
    }

    /// The training timesteps the run visits, from the noisiest.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// The starting latents of a run from pure noise.
    pub fn start_latents(&self, noise: &Tensor) -> Result<Tensor> {
        noise * self.init_sigma
    }

    /// `original` noised with `noise` to the level the latents have before step `index`;
    /// `index == timesteps().len()` gives `original` itself.
    pub fn noised(&self, original: &Tensor, noise: &Tensor, index: usize) -> Result<Tensor> {
        if index >= self.timesteps.len() {
            return Ok(original.clone());
        }
        if self.kind.uses_sigmas() {
            original + (noise * self.sigmas[index])?
        } else {
            let alpha = self.alpha(self.timesteps[index]);
            (original * alpha.sqrt())? + (noise * (1.0 - alpha).sqrt())?
        }
    }

    /// The UNet input for step `index` from the latents.
    pub fn scale_model_input(&self, latents: &Tensor, index: usize) -> Result<Tensor> {
        if self.kind.uses_sigmas() {
            latents / (self.sigmas[index].powi(2) + 1.0).sqrt()
        } else {
            Ok(latents.clone())
        }
    }

    /// The latents after step `index`, given the UNet's output; random draws come from `noise`.
    pub fn step(
        &self,
        output: &Tensor,
        index: usize,
        latents: &Tensor,
        noise: &mut Noise,
    ) -> Result<Tensor> {
        if self.kind.uses_sigmas() {
            self.sigma_step(output, index, latents, noise)
        } else {
            self.alpha_step(output, index, latents, noise)
        }
    }

    fn alpha(&self, timestep: usize) -> f64 {
        self.alphas_cumprod[timestep.min(self.alphas_cumprod.len() - 1)]
    }

    fn sigma_step(
        &self,
        output: &Tensor,
        index: usize,
        x: &Tensor,
        noise: &mut Noise,
    ) -> Result<Tensor> {
        let (sigma, sigma_next) = (self.sigmas[index], self.sigmas[index + 1]);
        let x0 = match self.prediction {
            PredictionType::Epsilon => (x - (output * sigma)?)?,
            PredictionType::VPrediction => {
                let scale = sigma * sigma + 1.0;
                ((output * (-sigma / scale.sqrt()))? + (x / scale)?)?
            }
            PredictionType::Sample => output.clone(),
        };
        let derivative = ((x - x0)? / sigma)?;
        if self.kind == SchedulerKind::EulerAncestral {
            let sigma_up =
                (sigma_next.powi(2) * (sigma.powi(2) - sigma_next.powi(2)) / sigma.powi(2)).sqrt();
            let sigma_down = (sigma_next.powi(2) - sigma_up.powi(2)).sqrt();
            let moved = (x + (derivative * (sigma_down - sigma))?)?;
            let fresh = noise.gaussian(x.dims(), x.device())?;
            moved + (fresh * sigma_up)?
        } else {
            x + (derivative * (sigma_next - sigma))?
        }
    }

    fn alpha_step(
        &self,
        output: &Tensor,
        index: usize,
        x: &Tensor,
        noise: &mut Noise,
    ) -> Result<Tensor> {
        let alpha = self.alpha(self.timesteps[index]);
        let last = index + 1 == self.timesteps.len();
        let alpha_prev = match (last, self.kind) {
            (false, _) => self.alpha(self.timesteps[index + 1]),
            (true, SchedulerKind::Ddim) => self.alphas_cumprod[0],
            (true, _) => 1.0,
        };
        let (a, b) = (alpha.sqrt(), (1.0 - alpha).sqrt());
        let (x0, eps) = match self.prediction {
            PredictionType::Epsilon => (((x - (output * b)?)? / a)?, output.clone()),
            PredictionType::VPrediction => {
                (((x * a)? - (output * b)?)?, ((output * a)? + (x * b)?)?)
            }
            PredictionType::Sample => (output.clone(), ((x - (output * a)?)? / b)?),
        };
        if self.kind == SchedulerKind::Ddim {
            return (x0 * alpha_prev.sqrt())? + (eps * (1.0 - alpha_prev).sqrt())?;
        }
        let alpha_t = alpha / alpha_prev;
        let beta_t = 1.0 - alpha_t;
        let mean = ((x0 * (alpha_prev.sqrt() * beta_t / (1.0 - alpha)))?
            + (x * (alpha_t.sqrt() * (1.0 - alpha_prev) / (1.0 - alpha)))?)?;
        if last {
            return Ok(mean);
        }
        let variance = ((1.0 - alpha_prev) / (1.0 - alpha) * beta_t).max(1e-20);
        let fresh = noise.gaussian(x.dims(), x.device())?;
        mean + (fresh * variance.sqrt())?
    }
}

/// The inference timesteps, as diffusers spreads them.
fn timesteps(config: &ScheduleConfig, steps: usize) -> Vec<usize> {
    let train = config.num_train_timesteps;
    match config.timestep_spacing {
        TimestepSpacing::Leading => {
            let ratio = train / steps;
            (0..steps)
                .rev()
                .map(|i| (i * ratio + config.steps_offset).min(train - 1))
                .collect()
        }
        TimestepSpacing::Trailing => {
            let ratio = train as f64 / steps as f64;
            (0..steps)
                .map(|i| ((train as f64 - i as f64 * ratio).round() as usize).saturating_sub(1))
                .collect()
        }
        TimestepSpacing::Linspace => {
            let last = (train - 1) as f64;
            let step = if steps > 1 {
                last / (steps - 1) as f64
            } else {
                0.0
            };
            (0..steps)
                .rev()
                .map(|i| (i as f64 * step).round() as usize)
                .collect()
        }
    }
}

/// The cumulative products of `1 - beta` over the training timesteps.
fn alphas_cumprod(config: &ScheduleConfig) -> Vec<f64> {
    let n = config.num_train_timesteps;
    let at = |i: usize| {
        if n > 1 {
            i as f64 / (n - 1) as f64
        } else {
            0.0
        }
    };
    let betas: Vec<f64> = match config.beta_schedule {
        BetaSchedule::Linear => (0..n)
            .map(|i| config.beta_start + at(i) * (config.beta_end - config.beta_start))
            .collect(),
        BetaSchedule::ScaledLinear => {
            let (start, end) = (config.beta_start.sqrt(), config.beta_end.sqrt());
            (0..n)
                .map(|i| (start + at(i) * (end - start)).powi(2))
                .collect()
        }
        BetaSchedule::SquaredCos => {
            let alpha_bar = |t: f64| {
                ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                    .cos()
                    .powi(2)
            };
            (0..n)
                .map(|i| {
                    (1.0 - alpha_bar((i + 1) as f64 / n as f64) / alpha_bar(i as f64 / n as f64))
                        .min(0.999)
                })
                .collect()
        }
    };
    betas
        .iter()
        .scan(1.0, |product, beta| {
            *product *= 1.0 - beta;
            Some(*product)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn config(spacing: TimestepSpacing) -> ScheduleConfig {
        serde_json::from_value::<ScheduleConfig>(serde_json::json!({"steps_offset": 1}))
            .map(|c| ScheduleConfig {
                timestep_spacing: spacing,
                ..c
            })
            .unwrap()
    }

    #[test]
    fn timesteps_follow_diffusers_spacing() {
        assert_eq!(
            timesteps(&config(TimestepSpacing::Leading), 4),
            [751, 501, 251, 1]
        );
        assert_eq!(
            timesteps(&config(TimestepSpacing::Trailing), 4),
            [999, 749, 499, 249]
        );
        assert_eq!(
            timesteps(&config(TimestepSpacing::Linspace), 4),
            [999, 666, 333, 0]
        );
        assert_eq!(timesteps(&config(TimestepSpacing::Trailing), 1), [999]);
    }

    #[test]
    fn deterministic_schedulers_denoise_a_perfect_prediction_to_the_clean_sample() {
        let clean = Tensor::new(&[0.5f32, -0.25], &Device::Cpu).unwrap();
        let eps = Tensor::new(&[1.0f32, -1.0], &Device::Cpu).unwrap();
        for kind in [SchedulerKind::Ddim, SchedulerKind::Euler] {
            let cfg = config(TimestepSpacing::Leading);
            let scheduler = Scheduler::new(kind, &cfg, 10);
            let mut x = scheduler.noised(&clean, &eps, 0).unwrap();
            for i in 0..scheduler.timesteps().len() {
                x = scheduler.step(&eps, i, &x, &mut Noise::new(0)).unwrap();
            }
            let diff = (x - &clean)
                .unwrap()
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                diff < 0.05,
                "{kind:?} ended {diff} away from the clean sample"
            );
        }
    }
}
