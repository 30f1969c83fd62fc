//! The Stable Diffusion versions the plugin knows: detection and per-version defaults.

use crate::schedulers::SchedulerKind;
use serde::Deserialize;

/// A Stable Diffusion version (a load option, or detected from the checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Version {
    /// SD 1.x (CLIP ViT-L text encoder, 512 px).
    #[serde(rename = "v1-5")]
    V1_5,
    /// SD 2.x (OpenCLIP ViT-H text encoder, 768 px, v-prediction).
    #[serde(rename = "v2-1")]
    V2_1,
    /// SDXL 1.0 (two text encoders, 1024 px).
    #[serde(rename = "xl")]
    Xl,
    /// SDXL-Turbo (SDXL distilled for 1-4 steps without guidance, 512 px).
    #[serde(rename = "xl-turbo")]
    XlTurbo,
    /// SD-Turbo (SD 2.1 distilled for 1-4 steps without guidance, 512 px).
    #[serde(rename = "turbo")]
    Turbo,
}

/// What a job gets when it leaves a parameter out, and the version's size limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    /// Denoising steps.
    pub steps: u32,
    /// Classifier-free guidance scale (0 = no guidance).
    pub guidance_scale: f64,
    /// Scheduler when the checkpoint names none.
    pub scheduler: SchedulerKind,
    /// Width and height in pixels when the checkpoint gives no sample size.
    pub size: u32,
    /// Largest width or height accepted.
    pub max_size: u32,
}

impl Version {
    /// The name used in load options and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::V1_5 => "v1-5",
            Self::V2_1 => "v2-1",
            Self::Xl => "xl",
            Self::XlTurbo => "xl-turbo",
            Self::Turbo => "turbo",
        }
    }

    /// Detects the version from the model's name and its UNet: a name containing `turbo` is a
    /// Turbo model; a second text encoder or 2048-wide text embeddings mean XL; 1024 means 2.x.
    pub fn detect(model_name: &str, has_second_encoder: bool, cross_attention_dim: usize) -> Self {
        let turbo = model_name.to_ascii_lowercase().contains("turbo");
        let xl = has_second_encoder || cross_attention_dim == 2048;
        match (xl, turbo, cross_attention_dim) {
            (true, true, _) => Self::XlTurbo,
            (true, false, _) => Self::Xl,
            (false, true, _) => Self::Turbo,
            (false, false, 1024) => Self::V2_1,
            _ => Self::V1_5,
        }
    }

    /// Whether the version has two text encoders.
    pub fn is_xl(self) -> bool {
        matches!(self, Self::Xl | Self::XlTurbo)
    }

    /// The version's defaults.
    pub fn defaults(self) -> Defaults {
        let (steps, guidance_scale, scheduler, size, max_size) = match self {
            Self::V1_5 => (30, 7.5, SchedulerKind::Ddim, 512, 1024),
            Self::V2_1 => (30, 7.5, SchedulerKind::Ddim, 768, 1024),
            Self::Xl => (30, 7.5, SchedulerKind::Ddim, 1024, 2048),
            Self::XlTurbo | Self::Turbo => (1, 0.0, SchedulerKind::EulerAncestral, 512, 1024),
        };
        Defaults {
            steps,
            guidance_scale,
            scheduler,
            size,
            max_size,
        }
    }

    /// Each latent channel's contribution to R, G and B, for cheap previews.
    pub fn preview_factors(self) -> &'static [[f32; 3]; 4] {
        const SD: [[f32; 3]; 4] = [
            [0.3512, 0.2297, 0.3227],
            [0.3250, 0.4974, 0.2350],
            [-0.2829, 0.1762, 0.2721],
            [-0.2120, -0.2616, -0.7177],
        ];
        const XL: [[f32; 3]; 4] = [
            [0.3651, 0.4232, 0.4341],
            [-0.2533, -0.0042, 0.1068],
            [0.1076, 0.1111, -0.0362],
            [-0.3165, -0.2492, -0.2188],
        ];
        if self.is_xl() { &XL } else { &SD }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_reads_the_encoders_the_width_and_the_name() {
        assert_eq!(
            Version::detect("runwayml/stable-diffusion-v1-5", false, 768),
            Version::V1_5
        );
        assert_eq!(
            Version::detect("stabilityai/stable-diffusion-2-1", false, 1024),
            Version::V2_1
        );
        assert_eq!(
            Version::detect("stabilityai/sd-turbo", false, 1024),
            Version::Turbo
        );
        assert_eq!(Version::detect("/models/sdxl", true, 2048), Version::Xl);
        assert_eq!(
            Version::detect("stabilityai/sdxl-turbo", true, 2048),
            Version::XlTurbo
        );
    }
}
