//! The denoising pipeline: text encoding, the scheduler loop with classifier-free guidance,
//! image-to-image and inpainting, per-step progress with previews, and decoding to PNG.

use crate::{
    images,
    models::{Models, text_time::TextTime},
    noise::Noise,
    params::{Request, Task},
    schedulers::Scheduler,
};
use candle_core::{DType, Tensor};
use image::RgbImage;
use rbee_plugin_api::{Artifact, EventSinkExt, JobEnd, JobSink, PluginError, tasks};
use serde_json::json;
use std::time::{Duration, Instant};

fn internal(e: candle_core::Error) -> PluginError {
    PluginError::internal(crate::candle_message(&e))
}

/// Time spent in each phase of a job.
#[derive(Default)]
struct Timings {
    text: Duration,
    encode: Duration,
    denoise: Duration,
    decode: Duration,
}

/// The inputs shared by every image of a job.
struct Prepared {
    /// Text embeddings: `[uncond, cond]` when guided, else `[cond]`.
    context: Tensor,
    /// SDXL's added conditioning, batched like `context`, when the UNet takes it.
    text_time: Option<TextTime>,
    /// Scaled latents of the init image.
    init_latents: Option<Tensor>,
    /// The mask at latent resolution (1 = repaint).
    mask: Option<Tensor>,
    /// Latents of the init image with the masked part blanked, for 9-channel inpainting UNets.
    masked_latents: Option<Tensor>,
}

/// Runs a validated job, streaming events into `sink`.
pub fn run(models: &Models, request: &Request, sink: &JobSink) -> Result<JobEnd, PluginError> {
    let started = Instant::now();
    let details = json!({
        "seed": request.seed, "seed_was_random": request.seed_was_random, "steps": request.steps,
        "width": request.width, "height": request.height, "n": request.count,
        "scheduler": request.scheduler.name(), "version": models.version.name(),
    });
    if sink.started(details.to_string().as_str().into()).is_stop() {
        return Ok(JobEnd::cancelled());
    }
    let mut timings = Timings::default();
    let prepared = prepare(models, request, &mut timings).map_err(internal)?;
    let denoise_steps = denoise_steps(request);
    let total = denoise_steps as u64 * request.count as u64;
    for index in 0..request.count {
        let seed = request.seed.wrapping_add(index as u64);
        let done = denoise_steps as u64 * index as u64;
        let Some(image) = generate(
            models,
            request,
            &prepared,
            seed,
            (done, total),
            sink,
            &mut timings,
        )
        .map_err(internal)?
        else {
            return Ok(JobEnd::cancelled());
        };
        let png = images::encode_png(&image);
        let metadata =
            json!({(tasks::image::artifact::SEED): seed, "width": request.width, "height": request.height, "index": index})
                .to_string();
        let artifact = Artifact {
            media_type: "image/png".into(),
            data: png.as_slice().into(),
            metadata_json: metadata.as_str().into(),
        };
        if sink.artifact(artifact).is_stop() && index + 1 < request.count {
            return Ok(JobEnd::cancelled());
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let details = json!({
        "seed": request.seed, "steps": request.steps, "denoise_steps": denoise_steps, "images": request.count,
        "timings_ms": {
            "text_encode": ms(timings.text), "image_encode": ms(timings.encode), "denoise": ms(timings.denoise),
            "decode": ms(timings.decode), "total": ms(started.elapsed()),
        },
    });
    Ok(JobEnd::completed().with_details(details.to_string()))
}

/// The denoising steps one image runs: all of them, or `strength` of them from an init image.
fn denoise_steps(request: &Request) -> u32 {
    if request.task == Task::Generate || request.strength >= 1.0 {
        return request.steps;
    }
    ((request.steps as f64 * request.strength) as u32).min(request.steps)
}

/// The encoders' hidden states for `text`, side by side, and the last encoder's pooled output
/// when the UNet takes SDXL's added conditioning.
fn encode_text(models: &Models, text: &str) -> candle_core::Result<(Tensor, Option<Tensor>)> {
    let pooling = models
        .unet
        .takes_text_time()
        .then(|| models.encoders.len() - 1);
    let mut parts = Vec::with_capacity(models.encoders.len());
    let mut pooled = None;
    for (i, encoder) in models.encoders.iter().enumerate() {
        let ids = encoder
            .tokenizer
            .encode(text)
            .map_err(candle_core::Error::msg)?;
        let eos = encoder.tokenizer.eos_position(&ids);
        let ids = Tensor::new(ids.as_slice(), &models.device)?.unsqueeze(0)?;
        if pooling == Some(i) {
            let (hidden, output) = encoder.model.forward_pooled(&ids, encoder.output, eos)?;
            parts.push(hidden);
            pooled = Some(output);
        } else {
            parts.push(encoder.model.forward(&ids, encoder.output)?);
        }
    }
    Ok((Tensor::cat(&parts, 2)?, pooled))
}

/// The unconditional text conditioning: zeros for an empty negative prompt when the model asks
/// for it (SDXL), else the negative prompt's encoding.
fn encode_negative(
    models: &Models,
    negative_prompt: &str,
    cond: &Tensor,
    pooled: Option<&Tensor>,
) -> candle_core::Result<(Tensor, Option<Tensor>)> {
    if models.zero_empty_negative && negative_prompt.is_empty() {
        return Ok((
            cond.zeros_like()?,
            pooled.map(Tensor::zeros_like).transpose()?,
        ));
    }
    encode_text(models, negative_prompt)
}

fn prepare(
    models: &Models,
    request: &Request,
    timings: &mut Timings,
) -> candle_core::Result<Prepared> {
    let clock = Instant::now();
    let (cond, pooled) = encode_text(models, &request.prompt)?;
    let (context, pooled) = if request.guided() {
        let (uncond, uncond_pooled) =
            encode_negative(models, &request.negative_prompt, &cond, pooled.as_ref())?;
        let pooled = match (uncond_pooled, pooled) {
            (Some(uncond), Some(cond)) => Some(Tensor::cat(&[uncond, cond], 0)?),
            _ => None,
        };
        (Tensor::cat(&[uncond, cond], 0)?, pooled)
    } else {
        (cond, pooled)
    };
    let text_time = match pooled {
        Some(pooled) => Some(TextTime {
            time_ids: TextTime::time_ids(
                request.width,
                request.height,
                pooled.dim(0)?,
                &models.device,
            )?,
            pooled,
        }),
        None => None,
    };
    timings.text = clock.elapsed();
    let clock = Instant::now();
    let scale = models.vae_config.scale();
    let init_latents = match &request.init_image {
        Some(image) => Some(
            models
                .vae
                .encode(&images::image_to_tensor(image, &models.device)?)?,
        ),
        None => None,
    };
    let mask = match &request.mask {
        Some(mask) => Some(images::mask_to_latent(mask, scale, &models.device)?),
        None => None,
    };
    let masked_latents = match (
        &request.init_image,
        &request.mask,
        models.unet_config.in_channels,
    ) {
        (Some(image), Some(mask), 9) => {
            let mut blanked = image.clone();
            for (x, y, pixel) in blanked.enumerate_pixels_mut() {
                if mask.get_pixel(x, y).0[0] >= images::MASK_THRESHOLD {
                    *pixel = image::Rgb([128, 128, 128]);
                }
            }
            Some(
                models
                    .vae
                    .encode(&images::image_to_tensor(&blanked, &models.device)?)?,
            )
        }
        _ => None,
    };
    timings.encode = clock.elapsed();
    Ok(Prepared {
        context,
        text_time,
        init_latents,
        mask,
        masked_latents,
    })
}

/// The UNet's prediction (f32) for `scaled` latents under each text context: one batch on a
/// GPU, one pass per context on the CPU, which halves the activation memory of a guided step
/// at the same speed.
fn predict(
    models: &Models,
    prepared: &Prepared,
    scaled: &Tensor,
    timestep: usize,
) -> candle_core::Result<Tensor> {
    let input = match (&prepared.mask, &prepared.masked_latents) {
        (Some(mask), Some(masked)) => Tensor::cat(&[scaled, mask, masked], 1)?,
        _ => scaled.clone(),
    }
    .to_dtype(models.dtype)?;
    let contexts = prepared.context.dim(0)?;
    let outputs = if models.device.is_cpu() {
        (0..contexts)
            .map(|i| {
                let text_time = prepared
                    .text_time
                    .as_ref()
                    .map(|tt| tt.row(i))
                    .transpose()?;
                models.unet.forward(
                    &input,
                    timestep as f64,
                    &prepared.context.narrow(0, i, 1)?,
                    text_time.as_ref(),
                )
            })
            .collect::<candle_core::Result<Vec<_>>>()?
    } else {
        let batched = input.repeat((contexts, 1, 1, 1))?;
        vec![models.unet.forward(
            &batched,
            timestep as f64,
            &prepared.context,
            prepared.text_time.as_ref(),
        )?]
    };
    Tensor::cat(&outputs, 0)?.to_dtype(DType::F32)
}

/// Generates one image with `seed`; `None` when the job was cancelled. `progress` is the steps
/// done before this image and the job's total.
fn generate(
    models: &Models,
    request: &Request,
    prepared: &Prepared,
    seed: u64,
    progress: (u64, u64),
    sink: &JobSink,
    timings: &mut Timings,
) -> candle_core::Result<Option<RgbImage>> {
    let steps = request.steps as usize;
    let run = denoise_steps(request) as usize;
    if run == 0 {
        return Ok(request.init_image.clone());
    }
    let clock = Instant::now();
    let scheduler = Scheduler::new(request.scheduler, &models.schedule, steps);
    let scale = models.vae_config.scale();
    let shape = [
        1,
        models.vae_config.latent_channels,
        request.height as usize / scale,
        request.width as usize / scale,
    ];
    let mut noise_source = Noise::new(seed);
    let noise = noise_source.gaussian(&shape, &models.device)?;
    let start = steps - run;
    let mut latents = match &prepared.init_latents {
        Some(init) if start > 0 => scheduler.noised(init, &noise, start)?,
        _ => scheduler.start_latents(&noise)?,
    };
    let blend = match (&prepared.init_latents, &prepared.mask) {
        (Some(init), Some(mask)) if models.unet_config.in_channels == 4 => Some((init, mask)),
        _ => None,
    };
    for (done, index) in (start..steps).enumerate() {
        let timestep = scheduler.timesteps()[index];
        let scaled = scheduler.scale_model_input(&latents, index)?;
        let output = predict(models, prepared, &scaled, timestep)?;
        let output = if request.guided() {
            let (uncond, cond) = (output.narrow(0, 0, 1)?, output.narrow(0, 1, 1)?);
            (&uncond + ((cond - &uncond)? * request.guidance_scale)?)?
        } else {
            output
        };
        latents = scheduler.step(&output, index, &latents, &mut noise_source)?;
        if let Some((init, mask)) = blend {
            let kept = scheduler.noised(init, &noise, index + 1)?;
            latents = (latents.broadcast_mul(mask)? + kept.broadcast_mul(&(1.0 - mask)?)?)?;
        }
        let step = progress.0 + done as u64 + 1;
        let preview = match request.preview_every {
            every if every > 0 && (done as u32 + 1).is_multiple_of(every) => Some(
                images::latent_preview(&latents, models.version.preview_factors())?,
            ),
            _ => None,
        };
        let preview = preview.as_ref().map(|png| Artifact {
            media_type: "image/png".into(),
            data: png.as_slice().into(),
            metadata_json: "{\"preview\":true}".into(),
        });
        if sink.progress(step, progress.1, preview.into()).is_stop() || sink.is_cancelled() {
            return Ok(None);
        }
    }
    timings.denoise += clock.elapsed();
    let clock = Instant::now();
    let decoded = models.vae.decode(&latents, models.vae_tile)?;
    let mut image = images::tensor_to_image(&decoded)?;
    if let (Some(original), Some(mask)) = (&request.init_image, &request.mask) {
        images::paste_unmasked(&mut image, original, mask);
    }
    timings.decode += clock.elapsed();
    Ok(Some(image))
}
