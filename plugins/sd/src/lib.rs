//! rbee worker plugin for Stable Diffusion image generation (SD 1.5, 2.1, XL, Turbo) with
//! candle: the manifest, model loading and the exported worker.
//!
//! Built once per backend (`--features cpu|cuda|metal`) as `sd-<backend>`. Models load from a
//! diffusers-layout directory or a Hugging Face hub repo; tasks are `image-generation`,
//! `image-to-image` and `inpainting`.
//!
//! # Behaviour worth knowing
//!
//! - Load options (`{"version": "v1-5"|"v2-1"|"xl"|"xl-turbo"|"turbo", "vae_tile": N}`): the
//!   version is detected from the checkpoint when absent; `vae_tile` is the VAE decode tile in
//!   latent cells (default 64 = 512 px, 0 = never tile).
//! - Weights: f32 on the CPU; UNet and text encoders in f16 on cuda/metal (fp16 files
//!   preferred there), the VAE always in f32. Files are read tensor by tensor, not
//!   memory-mapped, so loading peaks at the weights' size plus one tensor.
//! - SDXL (and XL-Turbo) get their added conditioning as in diffusers: the second text
//!   encoder's pooled, projected output and the time ids `[height, width, 0, 0, height, width]`
//!   (the requested size, uncropped) go through the UNet's `add_embedding`. With guidance, an
//!   empty negative prompt gives zero embeddings when `model_index.json` says
//!   `force_zeros_for_empty_prompt` (the default), else the encoding of "". The UNet is our
//!   own assembly of candle's blocks, since candle 0.11's lacks that embedding.
//! - Guidance runs when `guidance_scale > 1`; 0 and 1 both mean none (Turbo's default), values
//!   in between and a negative prompt without guidance are rejected rather than ignored.
//! - Image `i` of a job uses seed `seed + i`, so any image can be reproduced alone. All noise
//!   comes from a ChaCha8 stream of that seed: the PNG is bit-identical for the same seed,
//!   parameters and backend, on every scheduler.
//! - `image-to-image` runs `floor(steps * strength)` steps; strength 0 returns the init image
//!   unchanged (no VAE round trip), strength 1 starts from pure noise (the init image is
//!   ignored, as in diffusers' inpainting at full strength).
//! - Inpainting (mask white, luma >= 128, = repaint): with a 4-channel UNet the original latents,
//!   noised to the current level, are blended back outside the mask after every step; with a
//!   9-channel inpainting UNet the mask and masked-image latents are fed to it. Either way the
//!   original pixels are pasted back outside the mask at the end, so the tolerance outside the
//!   mask is zero: those pixels are byte-identical to the init image's (resized to the output
//!   size when `width`/`height` differ from it). Inside, the whole 8x8 cell of any white pixel
//!   is repainted in latent space.

mod config;
mod images;
mod models;
mod noise;
mod params;
mod pipeline;
mod schedulers;
mod source;
#[cfg(any(test, feature = "test-support"))]
pub mod tiny;
mod tokenizer;

use candle_core::Device;
use config::LoadOptions;
use models::Models;
use params::Limits;
use rbee_plugin_api::{
    HostApiRef, Job, JobEnd, JobSink, LoadRequest, LogLevel, Manifest, PluginError, PluginWorker,
    WorkerStatus, export_plugin,
};

pub use rbee_candle_device::BACKEND;

/// The model loaded when the host names none: SD-Turbo (512 px in one step).
pub const DEFAULT_MODEL: &str = "stabilityai/sd-turbo";

/// A candle error's message without the backtrace candle appends when `RUST_BACKTRACE` is set.
fn candle_message(error: &candle_core::Error) -> String {
    let text = error.to_string();
    match text.find("\n   0: ") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

/// The plugin's manifest.
pub fn manifest() -> Manifest {
    Manifest::new("sd", BACKEND, env!("CARGO_PKG_VERSION"), &params::TASKS)
        .description(
            "Stable Diffusion 1.5 / 2.1 / XL / Turbo image generation, img2img and inpainting (candle)",
        )
        .params_schema(params::schema())
        .default_model(DEFAULT_MODEL)
}

/// The device named by the load request, or a `device` error when this build cannot use it.
fn device(request: &LoadRequest) -> Result<Device, PluginError> {
    rbee_candle_device::open("sd", &request.device).map_err(rbee_plugin_kit::error::device)
}

/// A loaded Stable Diffusion checkpoint serving jobs.
pub struct SdWorker {
    models: Models,
    limits: Limits,
}

/// Loads the model the host asks for.
pub fn load(request: LoadRequest, host: HostApiRef) -> Result<SdWorker, PluginError> {
    let options =
        LoadOptions::parse(&request.options_json).map_err(rbee_plugin_kit::error::model_load)?;
    let device = device(&request)?;
    let model = match request.model.as_str() {
        "" => DEFAULT_MODEL,
        model => model,
    };
    let source = source::Source::open(model, &host)?;
    let models = models::load(&source, &options, device, &host)?;
    let defaults = models.version.defaults();
    let native = models
        .unet_config
        .sample_size
        .map(|cells| (cells * models.vae_config.scale()) as u32);
    let limits = Limits {
        steps: defaults.steps,
        guidance_scale: defaults.guidance_scale,
        scheduler: models.default_scheduler,
        size: native
            .unwrap_or(defaults.size)
            .clamp(params::MIN_SIZE, defaults.max_size),
        max_size: defaults.max_size,
    };
    let message = format!(
        "loaded {} as SD {} on {BACKEND}",
        models.name,
        models.version.name()
    );
    host.log(
        LogLevel::Info,
        module_path!().into(),
        message.as_str().into(),
    );
    Ok(SdWorker { models, limits })
}

impl PluginWorker for SdWorker {
    fn validate(&self, job: &Job) -> Result<(), PluginError> {
        params::parse(job, &self.limits).map(|_| ())
    }

    fn execute(&self, job: Job, sink: JobSink) -> Result<JobEnd, PluginError> {
        let request = params::parse(&job, &self.limits)?;
        pipeline::run(&self.models, &request, &sink)
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            model: self.models.name.as_str().into(),
            memory_bytes: self.models.memory_bytes,
            cache_usage_ratio: 0.0,
        }
    }
}

export_plugin!(manifest: manifest, load: load);

#[cfg(test)]
mod tests;
