//! Job parameters: one type that validates them and publishes their JSON Schema, defaults and
//! checks, with errors naming the field at fault.

use crate::{images, schedulers::SchedulerKind};
use image::{GrayImage, RgbImage};
use rbee_plugin_api::{
    Job, PluginError,
    tasks::image::{GENERATION, INPAINTING, TO_IMAGE, param},
};
use rbee_plugin_kit::params;
use schemars::JsonSchema;
use serde::Deserialize;

/// The tasks the plugin serves.
pub const TASKS: [&str; 3] = [GENERATION, TO_IMAGE, INPAINTING];

/// Alias of `n` (plugin-private).
const NUM_IMAGES: &str = "num_images";

/// The parameters that arrive as bytes in the job's inputs.
const BINARY: [&str; 2] = [param::INIT_IMAGE, param::MASK_IMAGE];

/// Most steps a job may ask for.
pub const MAX_STEPS: u32 = 150;
/// Largest guidance scale accepted.
pub const MAX_GUIDANCE: f64 = 30.0;
/// Most images one job may ask for.
pub const MAX_IMAGES: u32 = 8;
/// Smallest width or height accepted.
pub const MIN_SIZE: u32 = 64;

/// What a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Text to image.
    Generate,
    /// Image to image: the init image, noised by `strength`, is denoised towards the prompt.
    ImageToImage,
    /// Inpainting: only the white part of the mask is repainted.
    Inpaint,
}

/// The loaded model's defaults and limits, which validation needs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Steps when the job gives none.
    pub steps: u32,
    /// Guidance when the job gives none.
    pub guidance_scale: f64,
    /// Scheduler when the job gives none.
    pub scheduler: SchedulerKind,
    /// Width and height when the job gives none (and has no init image).
    pub size: u32,
    /// Largest width or height.
    pub max_size: u32,
}

/// A validated job with every default filled in.
#[derive(Debug, Clone)]
pub struct Request {
    /// The task.
    pub task: Task,
    /// What to draw.
    pub prompt: String,
    /// What to steer away from (needs guidance).
    pub negative_prompt: String,
    /// Denoising steps of a full run (img2img runs `strength` of them).
    pub steps: u32,
    /// Classifier-free guidance scale; guidance applies above 1.
    pub guidance_scale: f64,
    /// The seed of the first image; image `i` uses `seed + i`.
    pub seed: u64,
    /// Whether the seed was chosen by the plugin.
    pub seed_was_random: bool,
    /// Output width in pixels.
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    /// Images to generate.
    pub count: u32,
    /// The scheduler.
    pub scheduler: SchedulerKind,
    /// How much of the init image is replaced, 0 to 1.
    pub strength: f64,
    /// The init image at the output size.
    pub init_image: Option<RgbImage>,
    /// The mask at the output size; white is repainted.
    pub mask: Option<GrayImage>,
    /// A preview every this many steps; 0 for none.
    pub preview_every: u32,
}

impl Request {
    /// Whether classifier-free guidance runs (and the negative prompt matters).
    pub fn guided(&self) -> bool {
        self.guidance_scale > 1.0
    }
}

/// The parameters as clients send them; [`parse`] reads and checks them and [`schema`]
/// publishes their JSON Schema. Absent and `null` fields take their defaults. `init_image` and
/// `mask_image` are base64 in JSON; the host decodes them and hands the plugin their bytes as
/// binary inputs, so they are never read here.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "image parameters",
    description = "Parameters of an image-generation, image-to-image or inpainting job: what to \
                   draw, the starting image and mask where the task needs them, and how to \
                   denoise."
)]
struct Wire {
    /// What to draw.
    prompt: String,
    /// What to avoid; needs guidance_scale above 1.
    negative_prompt: Option<String>,
    /// Denoising steps (default per version: 30, Turbo 1).
    #[schemars(range(min = 1, max = MAX_STEPS))]
    steps: Option<u32>,
    /// Classifier-free guidance; 0 or 1 = none, else above 1 (default 7.5, Turbo 0).
    #[schemars(range(min = 0, max = MAX_GUIDANCE))]
    guidance_scale: Option<f64>,
    /// Seed of the first image (image i uses seed + i); random when absent, reported in `started`.
    seed: Option<u64>,
    /// Width in pixels, a multiple of 8 (default: the model's native size, or the init image's).
    #[schemars(range(min = MIN_SIZE), extend("multipleOf" = 8))]
    width: Option<u32>,
    /// Height in pixels, a multiple of 8.
    #[schemars(range(min = MIN_SIZE), extend("multipleOf" = 8))]
    height: Option<u32>,
    /// Images to generate (alias num_images).
    #[schemars(range(min = 1, max = MAX_IMAGES))]
    n: Option<u32>,
    /// Images to generate (alias of n).
    #[schemars(range(min = 1, max = MAX_IMAGES))]
    num_images: Option<u32>,
    /// The noise scheduler (default: the checkpoint's scheduler config).
    scheduler: Option<SchedulerKind>,
    /// How much of the init image to repaint (default 0.8, inpainting 1.0); 0 keeps it as it is.
    #[schemars(range(min = 0, max = 1))]
    strength: Option<f64>,
    /// image-to-image / inpainting: the starting image (PNG or JPEG).
    #[schemars(extend("contentEncoding" = "base64"))]
    init_image: Option<String>,
    /// inpainting: same size as init_image (PNG or JPEG); white is repainted, black kept.
    #[schemars(extend("contentEncoding" = "base64"))]
    mask_image: Option<String>,
    /// Attach a latent-resolution PNG preview to every Nth progress event; 0 = none.
    preview_every: Option<u32>,
}

/// The JSON Schema of the parameters as clients send them, published in the manifest.
pub fn schema() -> String {
    params::schema::<Wire>()
}

fn invalid(field: &str, message: impl Into<String>) -> PluginError {
    PluginError::invalid_param(field, message)
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, PluginError> {
    if value < min || value > max {
        return Err(invalid(
            field,
            format!("{field} must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(value)
}

fn check_size(field: &str, value: u32, limits: &Limits) -> Result<u32, PluginError> {
    in_range(field, value, MIN_SIZE, limits.max_size)?;
    if !value.is_multiple_of(8) {
        return Err(invalid(
            field,
            format!("{field} must be a multiple of 8, got {value}"),
        ));
    }
    Ok(value)
}

/// Parses and validates a job: its task, its JSON parameters and its image inputs.
pub fn parse(job: &Job, limits: &Limits) -> Result<Request, PluginError> {
    let task = match job.task.as_str() {
        GENERATION => Task::Generate,
        TO_IMAGE => Task::ImageToImage,
        INPAINTING => Task::Inpaint,
        other => return Err(PluginError::unsupported_task(other, &TASKS)),
    };
    let wire: Wire = params::parse(&job.params_json)?;
    if let Some(input) = job
        .inputs
        .iter()
        .find(|input| !BINARY.contains(&input.name.as_str()))
    {
        let name = input.name.as_str();
        return Err(invalid(
            name,
            format!(
                "unknown binary input '{name}' (known: {})",
                BINARY.join(", ")
            ),
        ));
    }
    let prompt = wire.prompt;
    let steps = in_range(
        param::STEPS,
        wire.steps.unwrap_or(limits.steps),
        1,
        MAX_STEPS,
    )?;
    let guidance_scale = wire.guidance_scale.unwrap_or(limits.guidance_scale);
    in_range(param::GUIDANCE_SCALE, guidance_scale, 0.0, MAX_GUIDANCE)?;
    if guidance_scale > 0.0 && guidance_scale < 1.0 {
        return Err(invalid(
            param::GUIDANCE_SCALE,
            "guidance_scale must be 0 or 1 (no guidance) or above 1",
        ));
    }
    let negative_prompt = wire.negative_prompt.unwrap_or_default();
    if !negative_prompt.is_empty() && guidance_scale <= 1.0 {
        return Err(invalid(
            param::NEGATIVE_PROMPT,
            "negative_prompt needs guidance_scale above 1 to have an effect",
        ));
    }
    let count = match (wire.n, wire.num_images) {
        (Some(_), Some(_)) => return Err(invalid(NUM_IMAGES, "give n or num_images, not both")),
        (Some(n), None) => in_range(param::N, n, 1, MAX_IMAGES)?,
        (None, num_images) => in_range(NUM_IMAGES, num_images.unwrap_or(1), 1, MAX_IMAGES)?,
    };
    let scheduler = wire.scheduler.unwrap_or(limits.scheduler);
    let preview_every = wire.preview_every.unwrap_or(0);
    let seed_given = wire.seed;
    let (width, height) = (wire.width, wire.height);
    if let Some(width) = width {
        check_size(param::WIDTH, width, limits)?;
    }
    if let Some(height) = height {
        check_size(param::HEIGHT, height, limits)?;
    }

    let in_json = [
        (param::INIT_IMAGE, wire.init_image.is_some()),
        (param::MASK_IMAGE, wire.mask_image.is_some()),
    ];
    let given = |field: &str| {
        job.input(field).is_some() || in_json.iter().any(|&(name, given)| given && name == field)
    };
    let strength = wire.strength;
    for (field, given, allowed) in [
        (
            param::INIT_IMAGE,
            given(param::INIT_IMAGE),
            task != Task::Generate,
        ),
        (
            param::MASK_IMAGE,
            given(param::MASK_IMAGE),
            task == Task::Inpaint,
        ),
        (param::STRENGTH, strength.is_some(), task != Task::Generate),
    ] {
        if given && !allowed {
            return Err(invalid(
                field,
                format!("{field} is not used by this task; use image-to-image or inpainting"),
            ));
        }
    }
    if let Some((field, _)) = in_json.into_iter().find(|&(_, given)| given) {
        return Err(invalid(
            field,
            format!(
                "{field} must be sent as a binary input (image bytes), not in the JSON parameters"
            ),
        ));
    }
    let default_strength = if task == Task::Inpaint { 1.0 } else { 0.8 };
    let strength = in_range(
        param::STRENGTH,
        strength.unwrap_or(default_strength),
        0.0,
        1.0,
    )?;

    let init = match (job.input(param::INIT_IMAGE), task) {
        (None, Task::Generate) => None,
        (None, _) => {
            return Err(invalid(
                param::INIT_IMAGE,
                "init_image is required for this task",
            ));
        }
        (Some(bytes), _) => Some(images::decode_rgb(param::INIT_IMAGE, bytes)?),
    };
    let mask = match (job.input(param::MASK_IMAGE), task) {
        (None, Task::Inpaint) => {
            return Err(invalid(
                param::MASK_IMAGE,
                "mask_image is required for inpainting",
            ));
        }
        (None, _) => None,
        (Some(bytes), _) => Some(images::decode_mask(param::MASK_IMAGE, bytes)?),
    };
    if let (Some(init), Some(mask)) = (&init, &mask)
        && init.dimensions() != mask.dimensions()
    {
        let ((iw, ih), (mw, mh)) = (init.dimensions(), mask.dimensions());
        return Err(invalid(
            param::MASK_IMAGE,
            format!("mask_image is {mw}x{mh} but init_image is {iw}x{ih}"),
        ));
    }
    let native = init.as_ref().map(|image| image.dimensions());
    let (width, height) = match (width, height, native) {
        (Some(w), Some(h), _) => (w, h),
        (w, h, Some((iw, ih))) => {
            let (w, h) = (w.unwrap_or(iw), h.unwrap_or(ih));
            let fits = |v: u32| check_size(param::INIT_IMAGE, v, limits).is_ok();
            if !fits(w) || !fits(h) {
                return Err(invalid(
                    param::INIT_IMAGE,
                    format!(
                        "init_image is {iw}x{ih}; give width and height (multiples of 8, {MIN_SIZE} to {}) to resize it",
                        limits.max_size
                    ),
                ));
            }
            (w, h)
        }
        (w, h, None) => (w.unwrap_or(limits.size), h.unwrap_or(limits.size)),
    };
    let seed_was_random = seed_given.is_none();
    Ok(Request {
        task,
        prompt,
        negative_prompt,
        steps,
        guidance_scale,
        seed: seed_given.unwrap_or_else(|| rand::random::<u64>() >> 11),
        seed_was_random,
        width,
        height,
        count,
        scheduler,
        strength,
        init_image: init.map(|image| images::resize_rgb(image, width, height)),
        mask: mask.map(|mask| images::resize_mask(mask, width, height)),
        preview_every,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbee_plugin_api::tasks::image;
    use serde_json::{Value, json};

    #[test]
    fn the_schema_comes_from_the_params_type() {
        let schema: Value = serde_json::from_str(&schema()).unwrap();
        assert_eq!(schema["required"], json!([param::PROMPT]));
        assert_eq!(schema["additionalProperties"], false);
        let properties = schema["properties"].as_object().unwrap();
        for spec in [
            image::GENERATION_SPEC,
            image::TO_IMAGE_SPEC,
            image::INPAINTING_SPEC,
        ] {
            for field in spec.params.iter().chain(spec.binary_params) {
                assert!(properties.contains_key(*field), "{field}");
            }
        }
        // The tasks' parameters, and num_images and preview_every of the plugin's own.
        assert_eq!(properties.len(), 14);
        assert_eq!(properties[param::STEPS]["maximum"], MAX_STEPS);
        assert_eq!(properties[param::GUIDANCE_SCALE]["maximum"], MAX_GUIDANCE);
        assert_eq!(properties[param::WIDTH]["minimum"], MIN_SIZE);
        assert_eq!(properties[param::HEIGHT]["multipleOf"], 8);
        assert_eq!(properties[NUM_IMAGES]["maximum"], MAX_IMAGES);
        assert_eq!(properties[param::STRENGTH]["maximum"], 1);
        for binary in BINARY {
            assert_eq!(properties[binary]["contentEncoding"], "base64", "{binary}");
        }
        let schedulers: Vec<&str> = properties[param::SCHEDULER]["anyOf"][0]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|choice| choice["const"].as_str().unwrap())
            .collect();
        assert_eq!(schedulers, SchedulerKind::NAMES);
        let description = schema["description"].as_str().unwrap();
        assert!(
            description.starts_with("Parameters of an image-generation"),
            "{description}"
        );
    }
}
