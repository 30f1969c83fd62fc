//! `cargo xtask bench sd`: seconds and peak memory of an SD 1.5 UNet pass and of a whole
//! 512x512 image through the host (random weights: the compute does not depend on the values),
//! and the tiny checkpoint's end-to-end time through the host. With `--compare <sd-cli>`,
//! stable-diffusion.cpp's CLI runs on the same random checkpoint (it reads the diffusers
//! layout), at f32 and with its weights converted to f16, in turn with the plugin's guided
//! step and VAE decode, and a second table sets them side by side.

use super::{child_pids, middle, peak_resident_kb, start_host};
use crate::{
    paths,
    plugins::{self, PluginsArgs, run},
};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Denoising steps of each sd.cpp image: its sampling time divided by them is its step.
const SDCPP_STEPS: usize = 2;

/// Runs the SD benchmark and prints the table; with `compare`, also the table against
/// stable-diffusion.cpp's CLI at that path.
pub fn sd(runs: usize, compare: Option<&Path>) -> Result<()> {
    let plugins_dir = plugins::build_and_install(&PluginsArgs {
        only: vec!["sd".into()],
        ..PluginsArgs::default()
    })?;
    run(Command::new(env!("CARGO"))
        .current_dir(paths::root())
        .args(["build", "--quiet", "-p", "rbee-host"]))?;
    let tiny = paths::target().join("fixtures").join("bench-tiny-sd");
    example("write_tiny_checkpoint", &[tiny.display().to_string()])?;
    let (host, url) = start_host("sd-cpu", &plugins_dir, &tiny, &[])?;
    let mut tiny_seconds = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let job: Value = ureq::post(&format!("{url}/v1/images/generations"))
            .send_json(json!({"prompt": "a red cube", "size": "64x64", "steps": 10, "seed": 1}))?
            .into_json()?;
        if job["data"].as_array().map_or(0, Vec::len) != 1 {
            bail!("the tiny job returned no image: {job}");
        }
        tiny_seconds.push(started.elapsed().as_secs_f64());
    }
    drop(host);
    let (pass, pass_peak) = unet_pass()?;
    let checkpoint = paths::target().join("fixtures").join("bench-sd15-random");
    let (image_seconds, image_peak) = sd15_image(&plugins_dir, &checkpoint)?;
    println!("\nStable Diffusion on the cpu build (f32), median of {runs} runs for the tiny job\n");
    println!("| what | time | peak memory |");
    println!("|---|---|---|");
    println!(
        "| SD 1.5 UNet pass, 512x512, batch 1 (random weights, in-process) | {pass:.1} s | {pass_peak:.1} GB |"
    );
    println!(
        "| SD 1.5 guided denoising step, 512x512 (two passes) | {:.1} s | |",
        2.0 * pass
    );
    println!(
        "| SD 1.5 512x512 image, 1 guided step, through the host (random weights) | {image_seconds:.1} s | {image_peak:.1} GB |"
    );
    println!(
        "| tiny checkpoint, 10 steps at 64x64, through the host over HTTP | {:.2} s | |",
        middle(tiny_seconds)
    );
    if let Some(sd_cli) = compare {
        compare_sdcpp(runs, sd_cli, &checkpoint)?;
    }
    Ok(())
}

/// Runs the SD plugin's example `name` with `args`; returns its standard output.
fn example(name: &str, args: &[String]) -> Result<String> {
    let output = plugins::sd_example(name)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running the {name} example"))?;
    if !output.status.success() {
        bail!("the {name} example failed");
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// A number from an example's JSON line.
fn field(line: &Value, name: &str) -> Result<f64> {
    line[name]
        .as_f64()
        .with_context(|| format!("no {name} in {line}"))
}

/// One in-process UNet pass at 512x512, f32, batch 1: seconds and peak GB.
fn unet_pass() -> Result<(f64, f64)> {
    let line: Value = serde_json::from_str(&example(
        "sd_step_bench",
        &["512", "512", "1", "1", "f32"].map(String::from),
    )?)?;
    Ok((
        field(&line, "pass_ms")? / 1000.0,
        field(&line, "peak_rss_mb")? / 1000.0,
    ))
}

/// One in-process VAE decode of a 512x512 image with the plugin's default tile: seconds and
/// peak GB.
fn vae_decode() -> Result<(f64, f64)> {
    let line: Value = serde_json::from_str(&example(
        "sd_decode_bench",
        &["512", "512", "64", "1"].map(String::from),
    )?)?;
    Ok((
        field(&line, "decode_ms")? / 1000.0,
        field(&line, "peak_rss_mb")? / 1000.0,
    ))
}

/// One whole 512x512 image (text encoder, one guided step, VAE decode) from a checkpoint of the
/// real SD 1.5 architecture with random weights, written to `dir`, through the host: seconds
/// and the peak resident memory in GB of the host and its plugin process together.
fn sd15_image(plugins_dir: &Path, dir: &Path) -> Result<(f64, f64)> {
    example(
        "write_tiny_checkpoint",
        &[dir.display().to_string(), "sd15-full".into()],
    )?;
    let (host, url) = start_host("sd-cpu", plugins_dir, dir, &[])?;
    let started = Instant::now();
    let job: Value = ureq::post(&format!("{url}/v1/images/generations"))
        .send_json(json!({"prompt": "a red cube", "size": "512x512", "steps": 1, "guidance_scale": 7.5, "seed": 1}))?
        .into_json()?;
    let seconds = started.elapsed().as_secs_f64();
    if job["data"].as_array().map_or(0, Vec::len) != 1 {
        bail!("the 512x512 job returned no image: {job}");
    }
    let host_pid = host.0.id();
    let mut peak_kb = peak_resident_kb(host_pid)?;
    for child in child_pids(host_pid) {
        peak_kb += peak_resident_kb(child)?;
    }
    Ok((seconds, peak_kb / 1e6))
}

/// One run's figures: seconds per guided step, seconds of the VAE decode, peak GB.
#[derive(Debug, Clone, Copy)]
struct Run {
    step: f64,
    decode: f64,
    peak: f64,
}

/// The plugin's guided step (two in-process UNet passes of batch 1, as the CPU pipeline runs
/// it) and its VAE decode, each in its own process; the peak is the larger of the two.
fn ours() -> Result<Run> {
    let (pass, pass_peak) = unet_pass()?;
    let (decode, decode_peak) = vae_decode()?;
    Ok(Run {
        step: 2.0 * pass,
        decode,
        peak: pass_peak.max(decode_peak),
    })
}

/// One 512x512 image of `SDCPP_STEPS` guided steps (cfg 7.5) by sd.cpp's CLI on `checkpoint`
/// on 2 threads, its weights at `weight_type` (f32 is the file's own); its log's sampling and
/// decode times, and its peak resident memory sampled every 0.2 s.
fn sdcpp(sd_cli: &Path, checkpoint: &Path, weight_type: &str) -> Result<Run> {
    let fixtures = paths::target().join("fixtures");
    let log_path = fixtures.join(format!("bench-sdcpp-{weight_type}.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut child = Command::new(sd_cli)
        .arg("-m")
        .arg(checkpoint)
        .args([
            "-p",
            "a red cube",
            "-W",
            "512",
            "-H",
            "512",
            "--cfg-scale",
            "7.5",
        ])
        .args([
            "--steps",
            &SDCPP_STEPS.to_string(),
            "-t",
            super::THREADS,
            "-s",
            "1",
        ])
        .args(["--type", weight_type, "-o"])
        .arg(fixtures.join(format!("bench-sdcpp-{weight_type}.png")))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", sd_cli.display()))?;
    let mut peak_kb: f64 = 0.0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Ok(kb) = peak_resident_kb(child.id()) {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&log_path)?;
    if !status.success() {
        bail!(
            "{} failed ({status}); its log: {}",
            sd_cli.display(),
            log_path.display()
        );
    }
    let seconds = |what: &str| -> Result<f64> {
        text.lines()
            .find_map(|line| {
                line.split_once(what)?
                    .1
                    .trim()
                    .strip_suffix('s')?
                    .parse()
                    .ok()
            })
            .with_context(|| format!("no \"{what}\" in {}", log_path.display()))
    };
    Ok(Run {
        step: seconds("sampling completed, taking")? / SDCPP_STEPS as f64,
        decode: seconds("decode_first_stage completed, taking")?,
        peak: peak_kb / 1e6,
    })
}

/// `runs` rounds of: the plugin's step and decode, sd.cpp at f32, sd.cpp at f16; prints their
/// medians and the medians of the pairwise ratios.
fn compare_sdcpp(runs: usize, sd_cli: &Path, checkpoint: &Path) -> Result<()> {
    let (mut rbee, mut f32_runs, mut f16_runs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..runs {
        eprintln!("round {}/{runs}: rbee, sd.cpp f32, sd.cpp f16", round + 1);
        rbee.push(ours()?);
        f32_runs.push(sdcpp(sd_cli, checkpoint, "f32")?);
        f16_runs.push(sdcpp(sd_cli, checkpoint, "f16")?);
    }
    let med = |runs: &[Run], f: fn(&Run) -> f64| middle(runs.iter().map(f).collect());
    let ratio = |other: &[Run], f: fn(&Run) -> f64| {
        middle(rbee.iter().zip(other).map(|(a, b)| f(a) / f(b)).collect())
    };
    println!(
        "\nSD 1.5 at 512x512 beside stable-diffusion.cpp ({}), 2 threads, medians of {runs} interleaved rounds\n",
        sd_cli.display()
    );
    println!("| | s per guided step | VAE decode s | peak memory |");
    println!("|---|---|---|---|");
    let rows: [(&str, &[Run]); 3] = [
        ("rbee sd plugin, f32 (in-process)", &rbee),
        ("sd.cpp, f32", &f32_runs),
        ("sd.cpp, f16 weights", &f16_runs),
    ];
    for (name, runs) in rows {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} GB |",
            med(runs, |r| r.step),
            med(runs, |r| r.decode),
            med(runs, |r| r.peak)
        );
    }
    for (name, other) in [("f32", &f32_runs), ("f16", &f16_runs)] {
        println!(
            "| rbee ÷ sd.cpp {name} | {:.2} | {:.2} | |",
            ratio(other, |r| r.step),
            ratio(other, |r| r.decode)
        );
    }
    println!(
        "\nsd.cpp runs {SDCPP_STEPS} steps per image (its sampling time ÷ {SDCPP_STEPS}); its peak is its whole image's, ours the larger of the step's and the decode's processes."
    );
    Ok(())
}
