//! Job parameters: parsing, defaults and validation, with errors naming the field at fault.

use crate::{images, schedulers::SchedulerKind};
use image::{GrayImage, RgbImage};
use rbee_plugin_api::{
    Job, PluginError,
    tasks::image::{GENERATION, INPAINTING, TO_IMAGE, param},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The tasks the plugin serves.
pub const TASKS: [&str; 3] = [GENERATION, TO_IMAGE, INPAINTING];

/// Alias of `n` (plugin-private).
const NUM_IMAGES: &str = "num_images";
/// Attach a latent preview to every Nth progress event (plugin-private).
const PREVIEW_EVERY: &str = "preview_every";

/// Every parameter a job may give in its JSON.
const FIELDS: [&str; 12] = [
    param::PROMPT,
    param::NEGATIVE_PROMPT,
    param::STEPS,
    param::GUIDANCE_SCALE,
    param::SEED,
    param::WIDTH,
    param::HEIGHT,
    param::N,
    NUM_IMAGES,
    param::SCHEDULER,
    param::STRENGTH,
    PREVIEW_EVERY,
];

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

fn invalid(field: &str, message: impl Into<String>) -> PluginError {
    PluginError::invalid_param(field, message)
}

fn take<T: DeserializeOwned>(
    params: &Map<String, Value>,
    field: &str,
    expected: &str,
) -> Result<Option<T>, PluginError> {
    match params.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|_| invalid(field, format!("{field} must be {expected}, got {value}"))),
    }
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
    let params: Map<String, Value> = serde_json::from_str(&job.params_json)
        .map_err(|e| invalid("params", format!("params must be a JSON object: {e}")))?;
    if let Some(unknown) = params
        .keys()
        .find(|key| !FIELDS.contains(&key.as_str()) && !BINARY.contains(&key.as_str()))
    {
        return Err(invalid(
            unknown,
            format!(
                "unknown parameter '{unknown}' (known: {})",
                FIELDS.join(", ")
            ),
        ));
    }
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
    let prompt: String = take(&params, param::PROMPT, "a string")?
        .ok_or_else(|| invalid(param::PROMPT, "prompt is required"))?;
    let steps = in_range(
        param::STEPS,
        take(&params, param::STEPS, "an integer")?.unwrap_or(limits.steps),
        1,
        MAX_STEPS,
    )?;
    let guidance_scale: f64 =
        take(&params, param::GUIDANCE_SCALE, "a number")?.unwrap_or(limits.guidance_scale);
    in_range(param::GUIDANCE_SCALE, guidance_scale, 0.0, MAX_GUIDANCE)?;
    if guidance_scale > 0.0 && guidance_scale < 1.0 {
        return Err(invalid(
            param::GUIDANCE_SCALE,
            "guidance_scale must be 0 or 1 (no guidance) or above 1",
        ));
    }
    let negative_prompt: String =
        take(&params, param::NEGATIVE_PROMPT, "a string")?.unwrap_or_default();
    if !negative_prompt.is_empty() && guidance_scale <= 1.0 {
        return Err(invalid(
            param::NEGATIVE_PROMPT,
            "negative_prompt needs guidance_scale above 1 to have an effect",
        ));
    }
    if params.contains_key(param::N) && params.contains_key(NUM_IMAGES) {
        return Err(invalid(NUM_IMAGES, "give n or num_images, not both"));
    }
    let count: u32 = match take(&params, param::N, "an integer")? {
        Some(n) => in_range(param::N, n, 1, MAX_IMAGES)?,
        None => in_range(
            NUM_IMAGES,
            take(&params, NUM_IMAGES, "an integer")?.unwrap_or(1),
            1,
            MAX_IMAGES,
        )?,
    };
    let scheduler = match take::<String>(&params, param::SCHEDULER, "a string")? {
        None => limits.scheduler,
        Some(name) => serde_json::from_value(Value::String(name.clone())).map_err(|_| {
            invalid(
                param::SCHEDULER,
                format!(
                    "unknown scheduler '{name}' (known: {})",
                    SchedulerKind::NAMES.join(", ")
                ),
            )
        })?,
    };
    let preview_every = take(&params, PREVIEW_EVERY, "a non-negative integer")?.unwrap_or(0);
    let seed_given: Option<u64> = take(&params, param::SEED, "a non-negative integer")?;
    let width: Option<u32> = take(&params, param::WIDTH, "an integer")?;
    let height: Option<u32> = take(&params, param::HEIGHT, "an integer")?;
    if let Some(width) = width {
        check_size(param::WIDTH, width, limits)?;
    }
    if let Some(height) = height {
        check_size(param::HEIGHT, height, limits)?;
    }

    let given = |field: &str| job.input(field).is_some() || params.contains_key(field);
    let strength = take(&params, param::STRENGTH, "a number")?;
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
    if let Some(field) = BINARY.into_iter().find(|&field| params.contains_key(field)) {
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

/// A JSON Schema of the parameters, for the manifest.
pub fn schema() -> Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": false,
        "required": [param::PROMPT],
        "properties": {
            (param::PROMPT): {"type": "string", "description": "What to draw."},
            (param::NEGATIVE_PROMPT): {"type": "string", "description": "What to avoid; needs guidance_scale above 1."},
            (param::STEPS): {"type": "integer", "minimum": 1, "maximum": MAX_STEPS, "description": "Denoising steps (default per version: 30, Turbo 1)."},
            (param::GUIDANCE_SCALE): {"type": "number", "minimum": 0, "maximum": MAX_GUIDANCE, "description": "Classifier-free guidance; 0 or 1 = none, else above 1 (default 7.5, Turbo 0)."},
            (param::SEED): {"type": "integer", "minimum": 0, "description": "Seed of the first image (image i uses seed + i); random when absent, reported in `started`."},
            (param::WIDTH): {"type": "integer", "minimum": MIN_SIZE, "multipleOf": 8, "description": "Width in pixels (default: the model's native size, or the init image's)."},
            (param::HEIGHT): {"type": "integer", "minimum": MIN_SIZE, "multipleOf": 8, "description": "Height in pixels."},
            (param::N): {"type": "integer", "minimum": 1, "maximum": MAX_IMAGES, "description": "Images to generate (alias num_images)."},
            (NUM_IMAGES): {"type": "integer", "minimum": 1, "maximum": MAX_IMAGES},
            (param::SCHEDULER): {"enum": SchedulerKind::NAMES, "description": "Default: the checkpoint's scheduler config."},
            (param::STRENGTH): {"type": "number", "minimum": 0, "maximum": 1, "description": "image-to-image / inpainting: how much to repaint (default 0.8 / 1.0); 0 returns the init image."},
            (param::INIT_IMAGE): {"type": "string", "contentEncoding": "base64", "description": "image-to-image / inpainting: the starting image (PNG or JPEG); the host passes it to the plugin as bytes."},
            (param::MASK_IMAGE): {"type": "string", "contentEncoding": "base64", "description": "inpainting: same size as init_image (PNG or JPEG); white is repainted, black kept. Passed to the plugin as bytes."},
            (PREVIEW_EVERY): {"type": "integer", "minimum": 0, "description": "Attach a latent-resolution PNG preview to every Nth progress event; 0 = none."}
        }
    })
}
