//! In-process tests of the worker on a tiny checkpoint: events, determinism, every parameter's
//! effect, img2img, inpainting, cancellation, validation and load errors; SDXL's in `xl.rs`.

mod xl;

use crate::{SdWorker, load, manifest, tiny::write_tiny_checkpoint};
use base64::Engine;
use image::{GrayImage, RgbImage};
use rbee_plugin_api::abi_stable::{
    sabi_trait::TD_Opaque,
    sabi_types::RMut,
    std_types::{RArc, ROption, RSlice, RStr, RString},
};
use rbee_plugin_api::{
    Artifact, DeviceSpec, EventSink, EventSink_TO, Flow, HostApi, HostApi_TO, HostApiRef, Job,
    JobEnd, LoadRequest, LogLevel, PluginError, PluginWorker,
};
use serde_json::{Value, json};
use std::{
    path::Path,
    sync::{LazyLock, OnceLock},
};

#[derive(Clone)]
struct TestHost;

impl HostApi for TestHost {
    fn log(&self, _level: LogLevel, _target: RStr<'_>, _message: RStr<'_>) {}
    fn cache_dir(&self) -> RString {
        std::env::temp_dir().to_string_lossy().as_ref().into()
    }
    fn load_progress(&self, _fraction: f32, _message: RStr<'_>) {}
}

/// Records events; answers `Stop` from the progress event numbered `stop_at` on.
#[derive(Default)]
struct TestSink {
    started: Vec<Value>,
    progress: Vec<(u64, u64, Option<Vec<u8>>)>,
    artifacts: Vec<(String, Vec<u8>, Value)>,
    stop_at: Option<u64>,
}

impl EventSink for TestSink {
    fn started(&mut self, details_json: RStr<'_>) -> Flow {
        self.started
            .push(serde_json::from_str(details_json.as_str()).unwrap());
        Flow::Continue
    }
    fn text(&mut self, _index: u64, _text: RStr<'_>) -> Flow {
        Flow::Continue
    }
    fn progress(&mut self, step: u64, total: u64, preview: ROption<Artifact<'_>>) -> Flow {
        let preview = preview.into_option().map(|a| a.data.as_slice().to_vec());
        self.progress.push((step, total, preview));
        match self.stop_at {
            Some(stop) if self.progress.len() as u64 >= stop => Flow::Stop,
            _ => Flow::Continue,
        }
    }
    fn artifact(&mut self, artifact: Artifact<'_>) -> Flow {
        let metadata = serde_json::from_str(artifact.metadata_json.as_str()).unwrap();
        self.artifacts.push((
            artifact.media_type.to_string(),
            artifact.data.as_slice().to_vec(),
            metadata,
        ));
        Flow::Continue
    }
    fn embedding(&mut self, _index: u64, _vector: RSlice<'_, f32>) -> Flow {
        Flow::Continue
    }
    fn metrics(&mut self, _metrics_json: RStr<'_>) -> Flow {
        Flow::Continue
    }
    fn custom(&mut self, _event: RStr<'_>, _data_json: RStr<'_>) -> Flow {
        Flow::Continue
    }
    fn is_cancelled(&self) -> bool {
        false
    }
}

static CHECKPOINT: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_checkpoint(dir.path()).unwrap();
    dir
});

fn request(model: &Path, device: &str) -> LoadRequest {
    LoadRequest {
        model: model.to_string_lossy().as_ref().into(),
        device: DeviceSpec {
            kind: device.into(),
            ordinal: 0,
        },
        threads: 0,
        options_json: RString::new(),
    }
}

fn host() -> HostApiRef {
    HostApi_TO::from_ptr(RArc::new(TestHost), TD_Opaque)
}

fn try_load(model: &Path) -> Result<SdWorker, PluginError> {
    load(request(model, "cpu"), host())
}

fn worker() -> &'static SdWorker {
    static WORKER: OnceLock<SdWorker> = OnceLock::new();
    WORKER.get_or_init(|| try_load(CHECKPOINT.path()).unwrap())
}

fn run_with(task: &str, params: Value, mut sink: TestSink) -> (JobEnd, TestSink) {
    let job = Job {
        id: "job".into(),
        task: task.into(),
        params_json: params.to_string().into(),
    };
    worker().validate(task, &params.to_string()).unwrap();
    let end = {
        let mut events = EventSink_TO::from_ptr(RMut::new(&mut sink), TD_Opaque);
        worker().execute(&job, &mut events).unwrap()
    };
    (end, sink)
}

fn run(task: &str, params: Value) -> (JobEnd, TestSink) {
    run_with(task, params, TestSink::default())
}

/// The PNG bytes of the only image a job makes.
fn image_of(task: &str, params: Value) -> Vec<u8> {
    let (end, sink) = run(task, params);
    assert_eq!(end.stop_reason.as_str(), "completed");
    assert_eq!(sink.artifacts.len(), 1);
    sink.artifacts.into_iter().next().unwrap().1
}

fn decode(png: &[u8]) -> RgbImage {
    image::load_from_memory(png).unwrap().to_rgb8()
}

fn base64_png(image: &RgbImage) -> String {
    base64::engine::general_purpose::STANDARD.encode(crate::images::encode_png(image))
}

fn base(seed: u64) -> Value {
    json!({"prompt": "the cat and the hat", "steps": 10, "guidance_scale": 7.5, "seed": seed, "width": 64, "height": 64})
}

fn with(mut params: Value, key: &str, value: Value) -> Value {
    params[key] = value;
    params
}

fn error(task: &str, params: Value) -> PluginError {
    worker().validate(task, &params.to_string()).unwrap_err()
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
    let (end, sink) = run("image-generation", with(base(1), "width", json!(72)));
    assert_eq!(end.stop_reason.as_str(), "completed");
    assert_eq!(sink.started[0]["seed"], 1);
    let steps: Vec<u64> = sink.progress.iter().map(|p| p.0).collect();
    assert_eq!(steps, (1..=10).collect::<Vec<_>>());
    assert!(sink.progress.iter().all(|p| p.1 == 10 && p.2.is_none()));
    let (media_type, png, metadata) = &sink.artifacts[0];
    assert_eq!(media_type, "image/png");
    assert_eq!(
        metadata,
        &json!({"seed": 1, "width": 72, "height": 64, "index": 0})
    );
    assert_eq!(decode(png).dimensions(), (72, 64));
    let details: Value = serde_json::from_str(end.details_json.as_str()).unwrap();
    assert_eq!(details["seed"], 1);
    assert!(details["timings_ms"]["denoise"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_seed_reproduces_the_png_bit_for_bit_on_every_scheduler_and_another_seed_differs() {
    for scheduler in ["ddim", "ddpm", "euler", "euler_ancestral"] {
        let params = with(base(5), "scheduler", json!(scheduler));
        let first = image_of("image-generation", params.clone());
        assert_eq!(
            first,
            image_of("image-generation", params.clone()),
            "{scheduler}"
        );
        assert_ne!(
            first,
            image_of("image-generation", with(params, "seed", json!(6))),
            "{scheduler}"
        );
    }
}

#[test]
fn every_parameter_changes_the_output() {
    let reference = image_of("image-generation", base(9));
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
        let changed = image_of("image-generation", with(base(9), key, value.clone()));
        assert_ne!(
            changed, reference,
            "{key} = {value} did not change the image"
        );
    }
    let unguided = image_of(
        "image-generation",
        with(base(9), "guidance_scale", json!(0)),
    );
    assert_ne!(unguided, reference);
}

#[test]
fn a_random_seed_is_reported_and_reproduces_the_image() {
    let mut params = base(0);
    params.as_object_mut().unwrap().remove("seed");
    let (_, sink) = run("image-generation", params);
    let seed = sink.started[0]["seed"].clone();
    assert_eq!(sink.started[0]["seed_was_random"], true);
    assert_eq!(
        sink.artifacts[0].1,
        image_of("image-generation", with(base(0), "seed", seed))
    );
}

#[test]
fn several_images_use_consecutive_seeds_and_count_progress_over_the_job() {
    let (end, sink) = run(
        "image-generation",
        with(with(base(3), "n", json!(2)), "steps", json!(4)),
    );
    assert_eq!(end.stop_reason.as_str(), "completed");
    let steps: Vec<(u64, u64)> = sink.progress.iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(steps, (1..=8).map(|s| (s, 8)).collect::<Vec<_>>());
    assert_eq!(sink.artifacts[1].2["seed"], 4);
    assert_eq!(sink.artifacts[1].2["index"], 1);
    let second = image_of("image-generation", with(base(4), "steps", json!(4)));
    assert_eq!(sink.artifacts[1].1, second);
}

#[test]
fn previews_come_every_n_steps_at_latent_resolution() {
    let (_, sink) = run(
        "image-generation",
        with(with(base(2), "steps", json!(4)), "preview_every", json!(2)),
    );
    let with_preview: Vec<u64> = sink
        .progress
        .iter()
        .filter(|p| p.2.is_some())
        .map(|p| p.0)
        .collect();
    assert_eq!(with_preview, [2, 4]);
    assert_eq!(
        decode(sink.progress[1].2.as_ref().unwrap()).dimensions(),
        (8, 8)
    );
}

fn pattern(shift: u8) -> RgbImage {
    RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([(x * 4) as u8 ^ shift, (y * 4) as u8, shift])
    })
}

#[test]
fn img2img_strength_0_returns_the_init_image_and_strength_1_ignores_it() {
    let params = |image: &RgbImage, strength: f64| {
        let mut params = with(base(11), "init_image", json!(base64_png(image)));
        params["strength"] = json!(strength);
        params.as_object_mut().unwrap().remove("width");
        params
    };
    let (first, second) = (pattern(0), pattern(200));
    let (_, sink) = run("image-to-image", params(&first, 0.0));
    assert!(sink.progress.is_empty());
    assert_eq!(decode(&sink.artifacts[0].1), first);
    let full = image_of("image-to-image", params(&first, 1.0));
    assert_eq!(full, image_of("image-to-image", params(&second, 1.0)));
    let (_, sink) = run("image-to-image", params(&first, 0.5));
    assert_eq!(sink.progress.len(), 5);
    let half = decode(&sink.artifacts[0].1);
    assert_ne!(half, first);
    assert_ne!(
        crate::images::encode_png(&half),
        image_of("image-to-image", params(&second, 0.5))
    );
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
    let mask_b64 = base64::engine::general_purpose::STANDARD.encode({
        let mut bytes = std::io::Cursor::new(Vec::new());
        mask.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        bytes.into_inner()
    });
    let params = with(
        with(base(12), "init_image", json!(base64_png(&original))),
        "mask_image",
        json!(mask_b64),
    );
    let result = decode(&image_of("inpainting", params));
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
    let sink = TestSink {
        stop_at: Some(3),
        ..Default::default()
    };
    let (end, sink) = run_with("image-generation", base(4), sink);
    assert_eq!(end, JobEnd::cancelled());
    assert_eq!(sink.progress.len(), 3);
    assert!(sink.artifacts.is_empty());
}

#[test]
fn validation_names_the_field_at_fault() {
    let image = base64_png(&pattern(1));
    let small_mask = base64_png(&RgbImage::new(32, 32));
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "image-generation",
            with(base(1), "width", json!(65)),
            "width",
        ),
        (
            "image-generation",
            with(base(1), "height", json!(4096)),
            "height",
        ),
        (
            "image-generation",
            with(base(1), "steps", json!(0)),
            "steps",
        ),
        (
            "image-generation",
            with(base(1), "steps", json!(151)),
            "steps",
        ),
        (
            "image-generation",
            with(base(1), "guidance_scale", json!(31)),
            "guidance_scale",
        ),
        (
            "image-generation",
            with(base(1), "guidance_scale", json!(0.5)),
            "guidance_scale",
        ),
        (
            "image-generation",
            with(base(1), "scheduler", json!("lms")),
            "scheduler",
        ),
        ("image-generation", with(base(1), "n", json!(9)), "n"),
        (
            "image-generation",
            with(with(base(1), "n", json!(1)), "num_images", json!(1)),
            "num_images",
        ),
        (
            "image-generation",
            with(base(1), "colour", json!("red")),
            "colour",
        ),
        (
            "image-generation",
            with(base(1), "init_image", json!(image)),
            "init_image",
        ),
        (
            "image-generation",
            with(
                with(base(1), "guidance_scale", json!(0)),
                "negative_prompt",
                json!("x"),
            ),
            "negative_prompt",
        ),
        ("image-generation", json!({"steps": 4}), "prompt"),
        ("image-to-image", base(1), "init_image"),
        (
            "image-to-image",
            with(base(1), "init_image", json!("bm90IGFuIGltYWdl")),
            "init_image",
        ),
        (
            "image-to-image",
            with(
                with(base(1), "init_image", json!(image)),
                "strength",
                json!(1.5),
            ),
            "strength",
        ),
        (
            "inpainting",
            with(base(1), "init_image", json!(image)),
            "mask_image",
        ),
        (
            "inpainting",
            with(
                with(base(1), "init_image", json!(image)),
                "mask_image",
                json!(small_mask),
            ),
            "mask_image",
        ),
    ];
    for (task, params, field) in cases {
        let error = error(task, params.clone());
        assert_eq!(error.code.as_str(), "invalid_params", "{params}");
        assert_eq!(
            error.field.into_option().map(|f| f.to_string()).as_deref(),
            Some(field),
            "{}",
            error.message
        );
    }
    assert_eq!(
        error("text-generation", base(1)).code.as_str(),
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
    let error = load(request(CHECKPOINT.path(), "cuda"), host())
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

/// Runs a job on `worker`; returns the only image.
fn image_on(worker: &SdWorker, task: &str, params: &Value) -> Vec<u8> {
    let job = Job {
        id: "job".into(),
        task: task.into(),
        params_json: params.to_string().into(),
    };
    let mut sink = TestSink::default();
    let end = worker
        .execute(
            &job,
            &mut EventSink_TO::from_ptr(RMut::new(&mut sink), TD_Opaque),
        )
        .unwrap();
    assert_eq!(end.stop_reason.as_str(), "completed");
    assert_eq!(sink.artifacts.len(), 1);
    sink.artifacts.remove(0).1
}

/// Loads a tiny checkpoint of `kind` and runs a job on it; returns the image and the worker.
fn run_tiny(kind: crate::tiny::TinyKind, task: &str, params: Value) -> (Vec<u8>, SdWorker) {
    let dir = tempfile::tempdir().unwrap();
    crate::tiny::write_tiny(dir.path(), kind).unwrap();
    let worker = try_load(dir.path()).unwrap();
    (image_on(&worker, task, &params), worker)
}

#[test]
fn a_9_channel_inpainting_unet_gets_the_mask_and_keeps_unmasked_pixels() {
    let original = pattern(60);
    let mask = RgbImage::from_fn(64, 64, |x, _| image::Rgb([if x < 32 { 255 } else { 0 }; 3]));
    let params = with(
        with(base(2), "init_image", json!(base64_png(&original))),
        "mask_image",
        json!(base64_png(&mask)),
    );
    let (png, _) = run_tiny(crate::tiny::TinyKind::Inpainting, "inpainting", params);
    let result = decode(&png);
    assert!((32..64).all(|x| (0..64).all(|y| result.get_pixel(x, y) == original.get_pixel(x, y))));
    assert!((0..32).any(|x| (0..64).any(|y| result.get_pixel(x, y) != original.get_pixel(x, y))));
}
