//! In-process tests of the worker on a tiny checkpoint: events, determinism, every parameter's
//! effect, img2img, inpainting, cancellation, validation and load errors; SDXL's in `xl.rs`.

mod xl;

use crate::{SdWorker, load, manifest, tiny::write_tiny_checkpoint};
use image::{GrayImage, RgbImage};
use rbee_plugin_api::{
    Job, JobEnd, LoadRequest, PluginError, PluginWorker,
    tasks::{
        image::{GENERATION, INPAINTING, TO_IMAGE},
        text_generation,
    },
    testing::{Recorded, RecordingSink, TestHost},
};
use serde_json::{Value, json};
use std::{
    path::Path,
    sync::{LazyLock, OnceLock},
};

static CHECKPOINT: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_checkpoint(dir.path()).unwrap();
    dir
});

fn request(model: &Path, device: &str) -> LoadRequest {
    let mut request = LoadRequest::cpu(&model.to_string_lossy());
    request.device.kind = device.into();
    request
}

fn try_load(model: &Path) -> Result<SdWorker, PluginError> {
    load(request(model, "cpu"), TestHost::default().api())
}

fn worker() -> &'static SdWorker {
    static WORKER: OnceLock<SdWorker> = OnceLock::new();
    WORKER.get_or_init(|| try_load(CHECKPOINT.path()).unwrap())
}

/// A `task` job with JSON parameters `params` and no binary inputs.
fn job(task: &str, params: &Value) -> Job {
    Job::new("job", task, &params.to_string())
}

/// Validates and runs `job` on the shared worker, recording its events into `recording`.
fn run_with(job: Job, recording: RecordingSink) -> (JobEnd, RecordingSink) {
    worker().validate(&job).unwrap();
    let end = worker().execute(job, recording.sink()).unwrap();
    (end, recording)
}

fn run(job: Job) -> (JobEnd, RecordingSink) {
    run_with(job, RecordingSink::new())
}

/// The details of the job's `started` event.
fn started(recording: &RecordingSink) -> Value {
    serde_json::from_str(&recording.started()[0]).unwrap()
}

/// The metadata of the job's `index`th artifact.
fn metadata(recording: &RecordingSink, index: usize) -> Value {
    serde_json::from_str(&recording.artifacts()[index].metadata_json).unwrap()
}

/// The PNG bytes of the only image a job makes.
fn image_of(job: Job) -> Vec<u8> {
    let (end, recording) = run(job);
    assert_eq!(end.stop_reason.as_str(), "completed");
    let mut artifacts = recording.artifacts();
    assert_eq!(artifacts.len(), 1);
    artifacts.remove(0).data
}

fn decode(png: &[u8]) -> RgbImage {
    image::load_from_memory(png).unwrap().to_rgb8()
}

fn png(image: &RgbImage) -> Vec<u8> {
    crate::images::encode_png(image)
}

fn base(seed: u64) -> Value {
    json!({"prompt": "the cat and the hat", "steps": 10, "guidance_scale": 7.5, "seed": seed, "width": 64, "height": 64})
}

fn with(mut params: Value, key: &str, value: Value) -> Value {
    params[key] = value;
    params
}

fn error(job: Job) -> PluginError {
    worker().validate(&job).unwrap_err()
}

#[test]
fn manifest_names_the_backend_tasks_and_a_schema() {
    let manifest = manifest();
    assert_eq!(manifest.id.as_str(), "sd-cpu");
    assert_eq!(manifest.kind.as_str(), "sd");
    let tasks: Vec<&str> = manifest.tasks.iter().map(|t| t.as_str()).collect();
    assert_eq!(tasks, ["image-generation", "image-to-image", "inpainting"]);
    let schema: Value = serde_json::from_str(manifest.params_schema_json.as_str()).unwrap();
    assert_eq!(schema["required"], json!(["prompt"]));
    assert_eq!(manifest.api_version.as_str(), rbee_plugin_api::API_VERSION);
}

#[test]
fn txt2img_returns_a_png_of_the_requested_size_after_one_progress_event_per_step() {
    let (end, recording) = run(job(GENERATION, &with(base(1), "width", json!(72))));
    assert_eq!(end.stop_reason.as_str(), "completed");
    assert_eq!(started(&recording)["seed"], 1);
    assert_eq!(
        recording.progress(),
        (1..=10).map(|step| (step, 10)).collect::<Vec<_>>()
    );
    assert!(recording.previews().is_empty());
    let artifact = &recording.artifacts()[0];
    assert_eq!(artifact.media_type, "image/png");
    assert_eq!(
        metadata(&recording, 0),
        json!({"seed": 1, "width": 72, "height": 64, "index": 0})
    );
    assert_eq!(decode(&artifact.data).dimensions(), (72, 64));
    let details: Value = serde_json::from_str(end.details_json.as_str()).unwrap();
    assert_eq!(details["seed"], 1);
    assert!(details["timings_ms"]["denoise"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_seed_reproduces_the_png_bit_for_bit_on_every_scheduler_and_another_seed_differs() {
    for scheduler in ["ddim", "ddpm", "euler", "euler_ancestral"] {
        let params = with(base(5), "scheduler", json!(scheduler));
        let first = image_of(job(GENERATION, &params));
        assert_eq!(first, image_of(job(GENERATION, &params)), "{scheduler}");
        assert_ne!(
            first,
            image_of(job(GENERATION, &with(params, "seed", json!(6)))),
            "{scheduler}"
        );
    }
}

#[test]
fn every_parameter_changes_the_output() {
    let reference = image_of(job(GENERATION, &base(9)));
    for (key, value) in [
        ("prompt", json!("a cat")),
        ("negative_prompt", json!("the hat")),
        ("steps", json!(9)),
        ("guidance_scale", json!(3.0)),
        ("scheduler", json!("euler")),
        ("scheduler", json!("euler_ancestral")),
        ("scheduler", json!("ddpm")),
        ("width", json!(80)),
        ("height", json!(72)),
    ] {
        let changed = image_of(job(GENERATION, &with(base(9), key, value.clone())));
        assert_ne!(
            changed, reference,
            "{key} = {value} did not change the image"
        );
    }
    let unguided = image_of(job(GENERATION, &with(base(9), "guidance_scale", json!(0))));
    assert_ne!(unguided, reference);
}

#[test]
fn a_random_seed_is_reported_and_reproduces_the_image() {
    let mut params = base(0);
    params.as_object_mut().unwrap().remove("seed");
    let (_, recording) = run(job(GENERATION, &params));
    let started = started(&recording);
    assert_eq!(started["seed_was_random"], true);
    assert_eq!(
        recording.artifacts()[0].data,
        image_of(job(
            GENERATION,
            &with(base(0), "seed", started["seed"].clone())
        ))
    );
}

#[test]
fn several_images_use_consecutive_seeds_and_count_progress_over_the_job() {
    let (end, recording) = run(job(
        GENERATION,
        &with(with(base(3), "n", json!(2)), "steps", json!(4)),
    ));
    assert_eq!(end.stop_reason.as_str(), "completed");
    assert_eq!(
        recording.progress(),
        (1..=8).map(|s| (s, 8)).collect::<Vec<_>>()
    );
    assert_eq!(metadata(&recording, 1)["seed"], 4);
    assert_eq!(metadata(&recording, 1)["index"], 1);
    let second = image_of(job(GENERATION, &with(base(4), "steps", json!(4))));
    assert_eq!(recording.artifacts()[1].data, second);
}

#[test]
fn previews_come_every_n_steps_at_latent_resolution() {
    let (_, recording) = run(job(
        GENERATION,
        &with(with(base(2), "steps", json!(4)), "preview_every", json!(2)),
    ));
    let with_preview: Vec<u64> = recording
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Recorded::Progress(step, _, Some(_)) => Some(step),
            _ => None,
        })
        .collect();
    assert_eq!(with_preview, [2, 4]);
    assert_eq!(decode(&recording.previews()[0].data).dimensions(), (8, 8));
}

fn pattern(shift: u8) -> RgbImage {
    RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([(x * 4) as u8 ^ shift, (y * 4) as u8, shift])
    })
}

#[test]
fn img2img_strength_0_returns_the_init_image_and_strength_1_ignores_it() {
    let redraw = |image: &RgbImage, strength: f64| {
        let mut params = with(base(11), "strength", json!(strength));
        params.as_object_mut().unwrap().remove("width");
        job(TO_IMAGE, &params).with_input("init_image", png(image))
    };
    let (first, second) = (pattern(0), pattern(200));
    let (_, recording) = run(redraw(&first, 0.0));
    assert!(recording.progress().is_empty());
    assert_eq!(decode(&recording.artifacts()[0].data), first);
    let full = image_of(redraw(&first, 1.0));
    assert_eq!(full, image_of(redraw(&second, 1.0)));
    let (_, recording) = run(redraw(&first, 0.5));
    assert_eq!(recording.progress().len(), 5);
    let half = decode(&recording.artifacts()[0].data);
    assert_ne!(half, first);
    assert_ne!(png(&half), image_of(redraw(&second, 0.5)));
}

#[test]
fn a_jpeg_init_image_is_accepted() {
    let mut jpeg = std::io::Cursor::new(Vec::new());
    pattern(0)
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .unwrap();
    let params = with(base(11), "strength", json!(0.5));
    let image = image_of(job(TO_IMAGE, &params).with_input("init_image", jpeg.into_inner()));
    assert_eq!(decode(&image).dimensions(), (64, 64));
}

#[test]
fn inpainting_keeps_every_pixel_outside_the_mask_and_repaints_inside() {
    let original = pattern(30);
    let mask = GrayImage::from_fn(64, 64, |x, y| {
        image::Luma([if (16..40).contains(&x) && (8..32).contains(&y) {
            255
        } else {
            0
        }])
    });
    let mask_png = {
        let mut bytes = std::io::Cursor::new(Vec::new());
        mask.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        bytes.into_inner()
    };
    let job = job(INPAINTING, &base(12))
        .with_input("init_image", png(&original))
        .with_input("mask_image", mask_png);
    let result = decode(&image_of(job));
    let (mut inside_changed, mut outside_changed) = (0, 0);
    for (x, y, pixel) in result.enumerate_pixels() {
        let changed = pixel != original.get_pixel(x, y);
        match mask.get_pixel(x, y).0[0] >= crate::images::MASK_THRESHOLD {
            true => inside_changed += changed as usize,
            false => outside_changed += changed as usize,
        }
    }
    assert_eq!(
        outside_changed, 0,
        "pixels outside the mask must be the original's"
    );
    assert!(
        inside_changed > 24 * 24 / 2,
        "only {inside_changed} masked pixels changed"
    );
}

#[test]
fn a_stop_ends_the_job_as_cancelled_within_one_step() {
    let (end, recording) = run_with(
        job(GENERATION, &base(4)),
        RecordingSink::new().stop_at_poll(3),
    );
    assert_eq!(end, JobEnd::cancelled());
    assert_eq!(recording.progress().len(), 3);
    assert!(recording.artifacts().is_empty());
}

#[test]
fn validation_names_the_field_at_fault() {
    let image = png(&pattern(1));
    let small_mask = png(&RgbImage::new(32, 32));
    let generate = |params: Value| job(GENERATION, &params);
    let redraw = |params: Value| job(TO_IMAGE, &params);
    let inpaint = || job(INPAINTING, &base(1)).with_input("init_image", image.clone());
    let cases: Vec<(Job, &str)> = vec![
        (generate(with(base(1), "width", json!(65))), "width"),
        (generate(with(base(1), "height", json!(4096))), "height"),
        (generate(with(base(1), "steps", json!(0))), "steps"),
        (generate(with(base(1), "steps", json!(151))), "steps"),
        (
            generate(with(base(1), "guidance_scale", json!(31))),
            "guidance_scale",
        ),
        (
            generate(with(base(1), "guidance_scale", json!(0.5))),
            "guidance_scale",
        ),
        (
            generate(with(base(1), "scheduler", json!("lms"))),
            "scheduler",
        ),
        (generate(with(base(1), "n", json!(9))), "n"),
        (
            generate(with(with(base(1), "n", json!(1)), "num_images", json!(1))),
            "num_images",
        ),
        (generate(with(base(1), "colour", json!("red"))), "colour"),
        (
            generate(base(1)).with_input("init_image", image.clone()),
            "init_image",
        ),
        (
            generate(with(
                with(base(1), "guidance_scale", json!(0)),
                "negative_prompt",
                json!("x"),
            )),
            "negative_prompt",
        ),
        (generate(json!({"steps": 4})), "prompt"),
        (redraw(base(1)), "init_image"),
        (
            redraw(base(1)).with_input("init_image", b"not an image".to_vec()),
            "init_image",
        ),
        (
            redraw(with(base(1), "init_image", json!("aGVsbG8="))),
            "init_image",
        ),
        (
            redraw(base(1))
                .with_input("init_image", image.clone())
                .with_input("palette", image.clone()),
            "palette",
        ),
        (
            redraw(with(base(1), "strength", json!(1.5))).with_input("init_image", image.clone()),
            "strength",
        ),
        (inpaint(), "mask_image"),
        (
            inpaint().with_input("mask_image", small_mask.clone()),
            "mask_image",
        ),
    ];
    for (job, field) in cases {
        let params = job.params_json.to_string();
        let error = error(job);
        assert_eq!(error.code.as_str(), "invalid_params", "{params}");
        assert_eq!(
            error.field.into_option().map(|f| f.to_string()).as_deref(),
            Some(field),
            "{}",
            error.message
        );
    }
    let in_json = error(redraw(with(base(1), "init_image", json!("aGVsbG8="))));
    assert!(
        in_json.message.contains("binary input"),
        "{}",
        in_json.message
    );
    assert_eq!(
        error(job(text_generation::TASK, &base(1))).code.as_str(),
        "unsupported_task"
    );
}

#[test]
fn a_missing_or_mismatched_weight_file_fails_at_load_naming_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_checkpoint(dir.path()).unwrap();
    let vae = dir.path().join("vae/diffusion_pytorch_model.safetensors");
    let saved = std::fs::read(&vae).unwrap();
    std::fs::remove_file(&vae).unwrap();
    let message = try_load(dir.path()).err().unwrap().message.to_string();
    assert!(
        message.contains("vae/diffusion_pytorch_model.safetensors"),
        "{message}"
    );

    std::fs::write(&vae, saved).unwrap();
    let unet = dir.path().join("unet/diffusion_pytorch_model.safetensors");
    let mut tensors = candle_core::safetensors::load(&unet, &candle_core::Device::Cpu).unwrap();
    let wrong = candle_core::Tensor::zeros(
        (8, 4, 3, 3),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    tensors.insert("conv_in.weight".into(), wrong);
    candle_core::safetensors::save(&tensors, &unet).unwrap();
    let error = try_load(dir.path()).err().unwrap();
    assert_eq!(error.code.as_str(), "model_load");
    assert!(
        error
            .message
            .contains("unet/diffusion_pytorch_model.safetensors"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("conv_in.weight"),
        "{}",
        error.message
    );
}

#[test]
fn a_cpu_build_refuses_a_gpu_device_clearly() {
    let error = load(
        request(CHECKPOINT.path(), "cuda"),
        TestHost::default().api(),
    )
    .err()
    .unwrap();
    assert_eq!(error.code.as_str(), "device");
    assert!(error.message.contains("sd-cuda"), "{}", error.message);
}

#[test]
fn tiled_vae_decoding_covers_the_image_and_stays_close_to_whole_decoding() {
    let vae = &worker().models.vae;
    let latents = crate::noise::Noise::new(3)
        .gaussian(&[1, 4, 16, 24], &candle_core::Device::Cpu)
        .unwrap();
    let whole = vae.decode(&latents, 0).unwrap();
    let tiled = vae.decode(&latents, 8).unwrap();
    assert_eq!(tiled.dims(), [1, 3, 128, 192]);
    let mean_abs = |t: &candle_core::Tensor| {
        t.abs()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let difference = mean_abs(&(&tiled - &whole).unwrap());
    assert!(
        difference < 0.25 * mean_abs(&whole),
        "tiles differ by {difference}"
    );
}

/// Runs `job` on `worker`; returns the only image.
fn image_on(worker: &SdWorker, job: Job) -> Vec<u8> {
    let recording = RecordingSink::new();
    let end = worker.execute(job, recording.sink()).unwrap();
    assert_eq!(end.stop_reason.as_str(), "completed");
    let mut artifacts = recording.artifacts();
    assert_eq!(artifacts.len(), 1);
    artifacts.remove(0).data
}

/// Loads a tiny checkpoint of `kind` and runs `job` on it; returns the image and the worker.
fn run_tiny(kind: crate::tiny::TinyKind, job: Job) -> (Vec<u8>, SdWorker) {
    let dir = tempfile::tempdir().unwrap();
    crate::tiny::write_tiny(dir.path(), kind).unwrap();
    let worker = try_load(dir.path()).unwrap();
    (image_on(&worker, job), worker)
}

#[test]
fn a_9_channel_inpainting_unet_gets_the_mask_and_keeps_unmasked_pixels() {
    let original = pattern(60);
    let mask = RgbImage::from_fn(64, 64, |x, _| image::Rgb([if x < 32 { 255 } else { 0 }; 3]));
    let job = job(INPAINTING, &base(2))
        .with_input("init_image", png(&original))
        .with_input("mask_image", png(&mask));
    let (png, _) = run_tiny(crate::tiny::TinyKind::Inpainting, job);
    let result = decode(&png);
    assert!((32..64).all(|x| (0..64).all(|y| result.get_pixel(x, y) == original.get_pixel(x, y))));
    assert!((0..32).any(|x| (0..64).any(|y| result.get_pixel(x, y) != original.get_pixel(x, y))));
}
