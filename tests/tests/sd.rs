//! The real Stable Diffusion plugin through a running host, on a tiny random-weight checkpoint
//! the test writes in diffusers layout (no real SD weights can be fetched here). It loads
//! through the same code path as a real checkpoint; only the configs are small.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use rbee_tests::{Host, SseEvent, plugins_dir, tiny_sd_checkpoint};
use serde_json::{Value, json};
use std::process::Command;

fn sd_host() -> Host {
    Host::start_sd(&[])
}

fn run(host: &Host, task: &str, params: Value) -> Vec<SseEvent> {
    host.stream(&host.submit(task, params)).collect_all()
}

/// The PNG artifacts of a job, decoded: (width, height, RGB(A) bytes, raw PNG).
fn images(events: &[SseEvent]) -> Vec<(u32, u32, Vec<u8>, Vec<u8>)> {
    events
        .iter()
        .filter(|e| e.name == "artifact")
        .map(|e| {
            assert_eq!(e.data["media_type"], "image/png");
            let bytes = BASE64.decode(e.data["data"].as_str().unwrap()).unwrap();
            let (width, height, pixels) = png_pixels(&bytes);
            (width, height, pixels, bytes)
        })
        .collect()
}

/// A PNG's width, height and RGB(A) bytes.
fn png_pixels(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a valid PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

fn png_of(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> String {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    let mut writer = encoder.write_header().unwrap();
    let pixel = &pixel;
    let data: Vec<u8> = (0..height)
        .flat_map(|y| (0..width).flat_map(move |x| pixel(x, y)))
        .collect();
    writer.write_image_data(&data).unwrap();
    drop(writer);
    BASE64.encode(bytes)
}

#[test]
fn txt2img_streams_one_progress_event_per_step_then_a_png_of_the_requested_size() {
    let host = sd_host();
    let events = run(
        &host,
        "image-generation",
        json!({"prompt": "a red cube", "steps": 6, "seed": 3, "width": 96, "height": 64}),
    );
    let progress: Vec<&SseEvent> = events.iter().filter(|e| e.name == "progress").collect();
    assert_eq!(progress.len(), 6);
    assert_eq!(
        progress.last().unwrap().data,
        json!({"step": 6, "total": 6})
    );
    let images = images(&events);
    assert_eq!(images.len(), 1);
    assert_eq!((images[0].0, images[0].1), (96, 64));
    assert_eq!(events.last().unwrap().data["stop_reason"], "completed");
}

#[test]
fn the_same_seed_gives_identical_bytes_and_another_seed_differs() {
    let host = sd_host();
    let image = |seed: u64| {
        images(&run(
            &host,
            "image-generation",
            json!({"prompt": "a cat", "steps": 4, "seed": seed}),
        ))[0]
            .3
            .clone()
    };
    let first = image(11);
    assert_eq!(first, image(11));
    assert_ne!(first, image(12));
}

#[test]
fn img2img_strength_0_keeps_the_init_image_and_strength_1_ignores_it() {
    let host = sd_host();
    let init = png_of(64, 64, |x, y| [(x * 4) as u8, (y * 4) as u8, 128]);
    let kept = images(&run(
        &host,
        "image-to-image",
        json!({"prompt": "x", "init_image": init, "strength": 0.0, "steps": 4, "seed": 1}),
    ));
    let original = images(&run(
        &host,
        "image-to-image",
        json!({"prompt": "x", "init_image": init, "strength": 0.0, "steps": 4, "seed": 2}),
    ));
    assert_eq!(
        kept[0].2, original[0].2,
        "strength 0 must not depend on the seed"
    );
    let expected: Vec<u8> = (0..64u32)
        .flat_map(|y| (0..64u32).flat_map(move |x| [(x * 4) as u8, (y * 4) as u8, 128]))
        .collect();
    let channels = kept[0].2.len() / (64 * 64);
    let rgb: Vec<u8> = kept[0]
        .2
        .chunks(channels)
        .flat_map(|p| p[..3].to_vec())
        .collect();
    assert_eq!(rgb, expected);
    let other = png_of(64, 64, |_, _| [250, 10, 10]);
    let a = images(&run(
        &host,
        "image-to-image",
        json!({"prompt": "x", "init_image": init, "strength": 1.0, "steps": 4, "seed": 5}),
    ));
    let b = images(&run(
        &host,
        "image-to-image",
        json!({"prompt": "x", "init_image": other, "strength": 1.0, "steps": 4, "seed": 5}),
    ));
    assert_eq!(a[0].2, b[0].2, "strength 1 must ignore the init image");
}

#[test]
fn inpainting_leaves_pixels_outside_the_mask_unchanged() {
    let host = sd_host();
    let init = png_of(64, 64, |x, y| [(x * 4) as u8, (y * 4) as u8, 77]);
    let mask = png_of(
        64,
        64,
        |x, _| if x >= 32 { [255, 255, 255] } else { [0, 0, 0] },
    );
    let out = images(&run(
        &host,
        "inpainting",
        json!({"prompt": "x", "init_image": init, "mask_image": mask, "steps": 4, "seed": 9}),
    ));
    let channels = out[0].2.len() / (64 * 64);
    let mut changed_inside = 0;
    for y in 0..64u32 {
        for x in 0..64u32 {
            let at = ((y * 64 + x) as usize) * channels;
            let pixel = [out[0].2[at], out[0].2[at + 1], out[0].2[at + 2]];
            let original = [(x * 4) as u8, (y * 4) as u8, 77];
            match x < 32 {
                true => assert_eq!(pixel, original, "pixel {x},{y} outside the mask changed"),
                false => changed_inside += usize::from(pixel != original),
            }
        }
    }
    assert!(
        changed_inside > 64 * 32 / 2,
        "the masked half was barely repainted ({changed_inside} pixels)"
    );
}

#[test]
fn cancelling_mid_run_ends_with_cancelled_within_a_step() {
    let host = sd_host();
    let id = host.submit(
        "image-generation",
        json!({"prompt": "x", "steps": 150, "seed": 1, "width": 128, "height": 128}),
    );
    let mut stream = host.stream(&id);
    stream.find(|e| e.name == "progress").expect("a first step");
    host.delete(&format!("/v1/jobs/{id}"));
    let rest: Vec<SseEvent> = stream.collect();
    assert_eq!(rest.last().unwrap().data["stop_reason"], "cancelled");
    assert!(
        rest.iter().filter(|e| e.name == "progress").count() <= 2,
        "{} steps after cancel",
        rest.len()
    );
    assert!(rest.iter().all(|e| e.name != "artifact"));
}

#[test]
fn bad_images_and_sizes_are_400_naming_the_field() {
    let host = sd_host();
    let init = png_of(64, 64, |_, _| [1, 2, 3]);
    for (task, params, field) in [
        (
            "image-generation",
            json!({"prompt": "x", "width": 65}),
            "width",
        ),
        (
            "image-generation",
            json!({"prompt": "x", "steps": 151}),
            "steps",
        ),
        (
            "image-to-image",
            json!({"prompt": "x", "init_image": "not base64 png"}),
            "init_image",
        ),
        (
            "image-to-image",
            json!({"prompt": "x", "init_image": init, "strength": 1.5}),
            "strength",
        ),
        (
            "inpainting",
            json!({"prompt": "x", "init_image": init, "mask_image": png_of(32, 32, |_, _| [0, 0, 0])}),
            "mask_image",
        ),
    ] {
        let response = host.post("/v1/jobs", &json!({"task": task, "params": params}));
        assert_eq!(response.status(), 400, "{params}");
        assert_eq!(
            response.json::<Value>().unwrap()["error"]["field"],
            field,
            "{params}"
        );
    }
}

#[test]
fn the_openai_images_route_returns_b64_png() {
    let host = sd_host();
    let response = host.post(
        "/v1/images/generations",
        &json!({"prompt": "a cube", "size": "64x64", "n": 2, "steps": 2, "seed": 4}),
    );
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let png = BASE64
        .decode(data[0]["b64_json"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

/// The official `openai` package editing images: PNGs arrive base64 on stdin, the answers
/// (b64 images, or status and body of errors) leave as JSON on stdout.
const EDIT_CLIENT: &str = r#"
import base64, json, os, sys, openai
pngs = {name: base64.b64decode(data) for name, data in json.load(sys.stdin).items()}
client = openai.OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key="unused")
def edit(image, mask=None, **extra):
    files = {"mask": ("mask.png", pngs[mask], "image/png")} if mask else {}
    fields = {"response_format": extra.pop("response_format", "b64_json")}
    try:
        answer = client.images.edit(image=("image.png", pngs[image], "image/png"), prompt="a cat",
                                    size="64x64", **files, **fields, extra_body=extra)
        return {"images": [d.b64_json for d in answer.data]}
    except openai.APIStatusError as error:
        return {"status": error.status_code, "body": error.response.json()}
print(json.dumps({
    "alpha": edit("transparent", steps=3, seed=9),
    "mask": edit("opaque", "mask", steps=3, seed=9),
    "whole": edit("opaque", strength=0.0, steps=3, seed=9),
    "two": edit("opaque", n=2, steps=2, seed=1),
    "not_png": edit("garbage"),
    "small_mask": edit("opaque", "small_mask"),
    "url": edit("opaque", response_format="url"),
}))
"#;

/// A PNG of colour type `color` (`pixel` gives each pixel's bytes), base64.
fn png_with(
    width: u32,
    height: u32,
    color: png::ColorType,
    pixel: impl Fn(u32, u32) -> Vec<u8>,
) -> String {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(color);
    let mut writer = encoder.write_header().unwrap();
    let data: Vec<u8> = (0..height)
        .flat_map(|y| (0..width).flat_map(|x| pixel(x, y)).collect::<Vec<_>>())
        .collect();
    writer.write_image_data(&data).unwrap();
    drop(writer);
    BASE64.encode(bytes)
}

#[test]
fn the_openai_sdk_edits_images_repainting_only_the_transparent_area() {
    let host = sd_host();
    let rgb = |x: u32, y: u32| vec![(x * 4) as u8, (y * 4) as u8, 77];
    let with_alpha = |x: u32, y: u32| [rgb(x, y), vec![if x >= 32 { 0 } else { 255 }]].concat();
    let pngs = json!({
        "opaque": png_of(64, 64, |x, y| rgb(x, y).try_into().unwrap()),
        "transparent": png_with(64, 64, png::ColorType::Rgba, with_alpha),
        "mask": png_with(64, 64, png::ColorType::Rgba, |x, y| with_alpha(x, y).iter().map(|v| v / 2).collect()),
        "small_mask": png_with(32, 32, png::ColorType::Rgba, |_, _| vec![0; 4]),
        "garbage": BASE64.encode(b"GIF89a not a png"),
    });
    let mut python = Command::new("python3")
        .args(["-c", EDIT_CLIENT])
        .env("BASE_URL", &host.url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    serde_json::to_writer(python.stdin.take().unwrap(), &pngs).unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the openai client failed (`cargo xtask test` installs the `openai` package):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    let decoded = |case: &str| -> Vec<Vec<u8>> {
        let images = result[case]["images"].as_array();
        let images = images.unwrap_or_else(|| panic!("{case}: {}", result[case]));
        images
            .iter()
            .map(|b64| {
                let png = BASE64.decode(b64.as_str().unwrap()).unwrap();
                let (width, height, pixels) = png_pixels(&png);
                assert_eq!((width, height), (64, 64), "{case}");
                let channels = pixels.len() / (64 * 64);
                pixels
                    .chunks(channels)
                    .flat_map(|p| p[..3].to_vec())
                    .collect()
            })
            .collect()
    };
    let original: Vec<u8> = (0..64)
        .flat_map(|y| (0..64).flat_map(move |x| rgb(x, y)))
        .collect();
    // The inpainting tolerance: pixels outside the mask are exactly the original's.
    let alpha = decoded("alpha").remove(0);
    let (mut kept, mut repainted) = (true, 0);
    for (i, (out, orig)) in alpha.chunks(3).zip(original.chunks(3)).enumerate() {
        match i % 64 < 32 {
            true => kept &= out == orig,
            false => repainted += usize::from(out != orig),
        }
    }
    assert!(kept, "a pixel outside the transparent area changed");
    assert!(repainted > 64 * 32 / 2, "only {repainted} pixels repainted");
    assert_eq!(
        decoded("mask")[0],
        alpha,
        "a mask's transparent area and the image's own must give the same edit"
    );
    assert_eq!(
        decoded("whole")[0],
        original,
        "an opaque image without a mask is image-to-image: strength 0 keeps it"
    );
    let two = decoded("two");
    assert_eq!(two.len(), 2);
    assert_ne!(two[0], two[1]);
    for (case, field) in [
        ("not_png", "image"),
        ("small_mask", "mask"),
        ("url", "response_format"),
    ] {
        assert_eq!(result[case]["status"], 400, "{case}: {}", result[case]);
        assert_eq!(
            result[case]["body"]["error"]["param"], field,
            "{case}: {}",
            result[case]
        );
        assert!(
            result[case]["body"]["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field)
        );
    }
}

/// A Hugging Face cache holding the tiny checkpoint as `local/tiny-sd` at revision main.
fn cache_with_the_tiny_checkpoint() -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--local--tiny-sd");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(repo.join("snapshots")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    std::os::unix::fs::symlink(tiny_sd_checkpoint(), repo.join("snapshots/0123abcd")).unwrap();
    cache
}

fn hub_host(model: &str, cache: &std::path::Path, env: &[(&str, &str)]) -> Host {
    let dir = plugins_dir().to_str().unwrap().to_string();
    let args = [
        "--plugin",
        "sd-cpu",
        "--plugins-dir",
        &dir,
        "--model",
        model,
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    Host::start_with_env(&args, env)
}

#[test]
fn offline_a_hub_repository_is_served_from_the_cache() {
    let cache = cache_with_the_tiny_checkpoint();
    let host = hub_host(
        "local/tiny-sd",
        cache.path(),
        &[
            ("HF_HUB_OFFLINE", "1"),
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
        ],
    );
    host.wait_ready(std::time::Duration::from_secs(120));
    let events = run(
        &host,
        "image-generation",
        json!({"prompt": "a cat", "steps": 2, "seed": 1, "width": 64, "height": 64}),
    );
    assert_eq!(images(&events).len(), 1, "{events:?}");
}

#[test]
fn a_hub_repository_that_cannot_be_reached_or_is_not_cached_is_a_clear_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    let cache = tempfile::tempdir().unwrap();
    for (env, hint) in [
        (
            vec![("HF_ENDPOINT", endpoint.as_str())],
            "the hub could not be reached",
        ),
        (
            vec![("HF_HUB_OFFLINE", "1"), ("HF_ENDPOINT", endpoint.as_str())],
            "HF_HUB_OFFLINE is set",
        ),
    ] {
        let mut host = hub_host("someorg/somerepo", cache.path(), &env);
        assert_eq!(
            host.wait_exit(std::time::Duration::from_secs(60)).code(),
            Some(1)
        );
        let log = host.log();
        assert!(
            log.contains("someorg/somerepo") && log.contains(hint),
            "{log}"
        );
    }
}

/// README.md's fields of both image routes, walked with the real plugin: harmless ones are
/// accepted (200); refused and unknown ones get 400 naming them.
#[test]
fn the_image_routes_accept_harmless_fields_and_refuse_the_rest() {
    use rbee_tests::openai_fields::{assert_refuses_all, harmless_value, route_fields, send_field};
    let host = sd_host();
    let png = BASE64
        .decode(png_of(64, 64, |x, y| [x as u8, y as u8, 9]))
        .unwrap();
    let base = json!({"prompt": "a cube", "size": "64x64", "steps": 1, "seed": 1});
    for (path, files) in [
        ("/v1/images/generations", vec![]),
        (
            "/v1/images/edits",
            vec![("image", "image.png", png.as_slice())],
        ),
    ] {
        let route = route_fields(path);
        assert!(!route.harmless.is_empty());
        assert_refuses_all(&host, &route);
        for field in &route.harmless {
            let response = send_field(&host, &route, &base, &files, field, &harmless_value(field));
            let status = response.status();
            assert_eq!(status, 200, "{path} {field}: {}", response.text().unwrap());
        }
    }
}
