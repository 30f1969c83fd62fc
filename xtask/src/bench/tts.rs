//! `cargo xtask bench tts`: text to speech through a running host (`POST /v1/audio/speech`,
//! pcm streamed as each sentence is spoken, 2 threads): the real-time factor (synthesis time
//! over audio length) and the time to the first audio. No real Parler-TTS can be fetched, so
//! the checkpoints have random weights, which rarely say "the end": a sentence runs to the
//! per-sentence cap (`max_seconds_per_sentence`) unless one samples the end code early. Every
//! frame costs the same, so the cost per second of audio is what a trained model of the same
//! shape pays; the table gives the audio each request actually got.

use super::{HostProcess, THREADS, middle, start_host_with};
use crate::{
    paths,
    plugins::{self, PluginsArgs, run},
};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::{io::Read, path::Path, process::Command, time::Instant};

/// The text of every request: three sentences.
const INPUT: &str = "The quick brown fox jumps over the lazy dog. A voice speaks clearly. \
                     This is the end of the test.";
/// Sentences in [`INPUT`].
const SENTENCES: usize = 3;
/// The audio of each sentence, in seconds (the cap random weights always reach).
const SECONDS_PER_SENTENCE: f64 = 1.0;
/// Bytes per second of the answer: 24 kHz, 16-bit mono.
const BYTES_PER_SECOND: f64 = 48_000.0;

/// Starts rbee-host serving the tts plugin on `model` with each sentence capped at
/// [`SECONDS_PER_SENTENCE`], and waits until it is ready.
fn start_host(plugins_dir: &Path, model: &Path) -> Result<(HostProcess, String)> {
    let options = json!({"max_seconds_per_sentence": SECONDS_PER_SENTENCE}).to_string();
    let bin = paths::target().join("debug").join("rbee-host");
    let extra = ["--plugin-options", options.as_str()];
    start_host_with(&bin, "tts-cpu", plugins_dir, model, &[], &extra)
}

/// One request's figures: seconds to the first audio byte and to the last, and the audio's
/// length in seconds.
fn speak(url: &str) -> Result<(f64, f64, f64)> {
    let body = json!({"input": INPUT, "voice": "nova", "response_format": "pcm"});
    let started = Instant::now();
    let mut reader = ureq::post(&format!("{url}/v1/audio/speech"))
        .send_json(body)?
        .into_reader();
    let mut buffer = vec![0u8; 1 << 16];
    let (mut first, mut bytes) = (None, 0usize);
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        first.get_or_insert(started.elapsed().as_secs_f64());
        bytes += read;
    }
    let total = started.elapsed().as_secs_f64();
    let audio = bytes as f64 / BYTES_PER_SECOND;
    if bytes == 0 {
        bail!("the speech request answered no audio");
    }
    Ok((first.unwrap_or(total), total, audio))
}

/// One checkpoint's figures, medians over the runs.
struct Measured {
    first_audio: f64,
    total: f64,
    audio: f64,
}

/// Serves `model` and times `runs` requests after one warm-up.
fn measure(plugins_dir: &Path, model: &Path, runs: usize) -> Result<Measured> {
    let (host, url) = start_host(plugins_dir, model)?;
    speak(&url)?;
    let (mut firsts, mut totals, mut audio) = (Vec::new(), Vec::new(), 0.0);
    for _ in 0..runs {
        let (first, total, seconds) = speak(&url)?;
        firsts.push(first);
        totals.push(total);
        audio = seconds;
    }
    drop(host);
    Ok(Measured {
        first_audio: middle(firsts),
        total: middle(totals),
        audio,
    })
}

/// Writes a random-weight checkpoint of `kind` (`tiny` or `mini-decoder`) into the fixtures.
fn checkpoint(kind: &str) -> Result<std::path::PathBuf> {
    let dir = paths::target()
        .join("fixtures")
        .join(format!("bench-tts-{kind}"));
    run(plugins::cargo_for_plugins("cpu")
        .args([
            "run",
            "--quiet",
            "-p",
            "rbee-plugin-tts",
            "--features",
            "test-support",
            "--example",
            "write_tiny_parler",
            "--",
        ])
        .arg(&dir)
        .arg(kind))
    .with_context(|| format!("writing the {kind} Parler-TTS checkpoint"))?;
    Ok(dir)
}

/// Runs the tts benchmark and prints the table.
pub fn tts(runs: usize) -> Result<()> {
    let plugins_dir = plugins::build_and_install(&PluginsArgs {
        only: vec!["tts".into()],
        ..PluginsArgs::default()
    })?;
    run(Command::new(env!("CARGO"))
        .current_dir(paths::root())
        .args(["build", "--quiet", "-p", "rbee-host"]))?;
    let rows = [
        (
            "Parler-TTS mini v1's decoder (24 layers, 1024 wide) and DAC codec, 2-layer T5 (random weights)",
            measure(&plugins_dir, &checkpoint("mini-decoder")?, runs)?,
        ),
        (
            "tiny: 2-layer, 32-wide decoder and T5, full DAC codec (random weights)",
            measure(&plugins_dir, &checkpoint("tiny")?, runs)?,
        ),
    ];
    println!(
        "\nPOST /v1/audio/speech through rbee-host, pcm streamed, {SENTENCES} sentences of \
         at most {SECONDS_PER_SENTENCE} s of audio each, {THREADS} threads, median of {runs} runs\n"
    );
    println!(
        "| checkpoint | audio (s) | synthesis (s) | real-time factor | time to first audio (s) |"
    );
    println!("|---|---|---|---|---|");
    for (name, measured) in rows {
        println!(
            "| {name} | {:.1} | {:.2} | {:.2} | {:.2} |",
            measured.audio,
            measured.total,
            measured.total / measured.audio,
            measured.first_audio
        );
    }
    Ok(())
}
