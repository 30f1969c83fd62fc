//! `cargo xtask bench audio`: Whisper tiny.en's real-time factor on two clips, the audio plugin
//! inside rbee-host against faster-whisper on the same model file, run in turn (ours, theirs,
//! ours, ...) with both models loaded once, so that load time is excluded on both sides and
//! both see the same machine state; the ratio of each pair is reported. The in-process figure
//! (the plugin called directly, no host) is measured before, not interleaved.
//!
//! The clips: `clean`, about 51 s of non-repeating speech synthesised by espeak-ng (see
//! [`speech::clean_clip`]), which should not fall back, and `looped`, the provisioned test
//! clips repeated to 45 s (the same sentences over and over, which Whisper's
//! compression-ratio check rejects, so some windows are decoded again at higher
//! temperatures). Only ours runs on `looped`, to watch the fallback's cost: faster-whisper
//! samples its fallback decodes (best of 5, unseeded), so its time there varies several-fold
//! from run to run and a ratio would mean nothing.

mod reference;
mod whisper_cpp;

use super::{THREADS, base64_of, start_host};
use crate::{
    models, paths,
    plugins::{self, PluginsArgs, run},
    speech,
};
use anyhow::{Context, Result, bail};
use reference::FasterWhisper;
use serde_json::{Value, json};
use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};
use whisper_cpp::WhisperCpp;

/// One bench clip.
struct Clip {
    name: &'static str,
    /// Whether the references run on it too.
    compare: bool,
    path: PathBuf,
    seconds: f64,
}

/// One transcription's figures.
struct Run {
    /// Real-time factor by the measuring side's clock.
    rtf: f64,
    /// Real-time factor by the plugin's own clock (ours only).
    plugin_rtf: f64,
    /// The windows (by start frame) decoded at a temperature above 0, when known.
    fallback_windows: Option<usize>,
    text: String,
}

/// A reference implementation measured in turn with ours.
enum Reference {
    FasterWhisper(FasterWhisper),
    WhisperCpp(WhisperCpp),
}

impl Reference {
    fn label(&self) -> &'static str {
        match self {
            Self::FasterWhisper(_) => "faster-whisper 1.2.1 (one process, model loaded once)",
            Self::WhisperCpp(_) => "whisper.cpp whisper-cli (its load time subtracted)",
        }
    }

    fn transcribe(&mut self, clip: &Clip) -> Result<Run> {
        match self {
            Self::FasterWhisper(faster) => faster.transcribe(&clip.path, clip.seconds),
            Self::WhisperCpp(cli) => cli.transcribe(&clip.path, clip.seconds),
        }
    }
}

/// Runs the audio benchmark and prints one table per clip; `whisper_cli` adds whisper.cpp.
pub fn audio(runs: usize, whisper_cli: Option<&Path>) -> Result<()> {
    let models = models::provision()?;
    let plugins_dir = plugins::build_and_install(&PluginsArgs {
        only: vec!["audio".into()],
        ..PluginsArgs::default()
    })?;
    run(Command::new(env!("CARGO"))
        .current_dir(paths::root())
        .args(["build", "--quiet", "-p", "rbee-host"]))?;
    let fixtures = paths::target().join("fixtures");
    let looped = fixtures.join("bench-speech.wav");
    let clean = fixtures.join("bench-speech-clean.wav");
    let clips = [
        Clip {
            name: "looped",
            compare: false,
            seconds: speech::long_clip(&models.join("speech"), &looped, 45.0)?,
            path: looped,
        },
        Clip {
            name: "clean",
            compare: true,
            seconds: speech::clean_clip(&clean)?,
            path: clean,
        },
    ];
    let model = models.join(models::WHISPER_TINY_EN);
    let in_process: Vec<Vec<f64>> = clips
        .iter()
        .map(|clip| in_process_runs(&models, clip, runs))
        .collect::<Result<_>>()?;
    let mut references = Vec::new();
    match FasterWhisper::start(&model)? {
        Some(faster) => references.push(Reference::FasterWhisper(faster)),
        None => println!("faster-whisper: not installed (pip install faster-whisper)"),
    }
    if let Some(cli) = whisper_cli {
        references.push(Reference::WhisperCpp(WhisperCpp::new(
            cli, &model, &fixtures,
        )?));
    }
    let (host, url) = start_host("audio-cpu", &plugins_dir, &model, &[])?;
    let mut tables = Vec::new();
    for clip in &clips {
        let audio = base64_of(&std::fs::read(&clip.path)?);
        let mut turns = Vec::new();
        for _ in 0..runs {
            let ours = hosted_run(&url, &audio, clip.seconds)?;
            let theirs = match clip.compare {
                true => references
                    .iter_mut()
                    .map(|reference| reference.transcribe(clip))
                    .collect::<Result<Vec<_>>>()?,
                false => Vec::new(),
            };
            turns.push((ours, theirs));
        }
        tables.push(turns);
    }
    drop(host);
    println!(
        "\nWhisper tiny.en (CTranslate2 f16 file), {THREADS} threads, greedy, {runs} runs in turn"
    );
    println!("real-time factor = processing time / audio duration (lower is faster)");
    let labels: Vec<&str> = references.iter().map(Reference::label).collect();
    for ((clip, turns), in_process) in clips.iter().zip(&tables).zip(in_process) {
        let labels = if clip.compare { &labels[..] } else { &[] };
        print_table(clip, turns, labels, in_process);
    }
    Ok(())
}

/// Runs the in-process example on `clip`; returns each run's real-time factor.
fn in_process_runs(models: &Path, clip: &Clip, runs: usize) -> Result<Vec<f64>> {
    let output = plugins::cargo_for_plugins("cpu")
        .args([
            "run",
            "--quiet",
            "-p",
            "rbee-plugin-audio",
            "--features",
            "test-support",
            "--example",
            "audio_bench",
            "--",
        ])
        .arg(&clip.path)
        .arg(runs.to_string())
        .env("RBEE_MODELS_DIR", models)
        .env("CANDLE_NUM_THREADS", THREADS)
        .env("RAYON_NUM_THREADS", THREADS)
        .stderr(Stdio::null())
        .output()
        .context("running the in-process audio benchmark")?;
    if !output.status.success() {
        bail!("the in-process audio benchmark failed on {}", clip.name);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok()?["real_time_factor"].as_f64())
        .collect())
}

/// One transcription job through the host: the client's clock from submit to `end`, the
/// plugin's clock, the windows that fell back and the text.
fn hosted_run(url: &str, audio: &str, seconds: f64) -> Result<Run> {
    let submitted = Instant::now();
    let job: Value = ureq::post(&format!("{url}/v1/jobs"))
        .send_json(json!({"task": "transcription", "params": {"audio": audio}}))?
        .into_json()?;
    let stream_url = job["stream_url"].as_str().context("a stream url")?;
    let stream = ureq::get(&format!("{url}{stream_url}")).call()?;
    let (mut event, mut texts, mut fallback_windows) = (String::new(), Vec::new(), BTreeSet::new());
    for line in BufReader::new(stream.into_reader()).lines() {
        let line = line?;
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_string();
            continue;
        }
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        match event.as_str() {
            "segment" => {
                let segment: Value = serde_json::from_str(data)?;
                if segment["temperature"].as_f64().unwrap_or(0.0) > 0.0 {
                    fallback_windows.insert(segment["seek"].as_u64().unwrap_or(0));
                }
                texts.push(segment["text"].as_str().unwrap_or("").to_string());
            }
            "end" => {
                let end: Value = serde_json::from_str(data)?;
                return Ok(Run {
                    rtf: submitted.elapsed().as_secs_f64() / seconds,
                    plugin_rtf: end["real_time_factor"].as_f64().unwrap_or(0.0),
                    fallback_windows: Some(fallback_windows.len()),
                    text: texts.join(" "),
                });
            }
            "error" => bail!("the job failed: {data}"),
            _ => {}
        }
    }
    bail!("the stream ended without an end event")
}

/// Prints one clip's runs, medians and the ratios of the pairs.
fn print_table(clip: &Clip, turns: &[(Run, Vec<Run>)], labels: &[&str], in_process: Vec<f64>) {
    println!(
        "\n### {} clip: {:.1} s ({})\n",
        clip.name,
        clip.seconds,
        clip.path.display()
    );
    println!("| path | real-time factor, median | range | windows decoded again |");
    println!("|---|---|---|---|");
    let row = |label: &str, values: Vec<f64>, fallbacks: String| {
        let (median, low, high) = spread(values);
        println!("| {label} | {median:.3} | {low:.3}-{high:.3} | {fallbacks} |");
    };
    let fallbacks = |runs: &[&Run]| {
        let counts: BTreeSet<Option<usize>> = runs.iter().map(|r| r.fallback_windows).collect();
        counts
            .iter()
            .map(|count| count.map_or("not reported".into(), |n| n.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ours: Vec<&Run> = turns.iter().map(|(ours, _)| ours).collect();
    row(
        "audio plugin in-process (run before, not in turn)",
        in_process,
        "-".into(),
    );
    row(
        "audio plugin inside rbee-host (plugin's clock)",
        ours.iter().map(|r| r.plugin_rtf).collect(),
        fallbacks(&ours),
    );
    row(
        "audio plugin through rbee-host (HTTP client's clock)",
        ours.iter().map(|r| r.rtf).collect(),
        fallbacks(&ours),
    );
    let theirs: Vec<Vec<&Run>> = (0..labels.len())
        .map(|i| turns.iter().map(|(_, theirs)| &theirs[i]).collect())
        .collect();
    for (label, runs) in labels.iter().zip(&theirs) {
        row(label, runs.iter().map(|r| r.rtf).collect(), fallbacks(runs));
    }
    println!();
    for (label, runs) in labels.iter().zip(&theirs) {
        let ratios = ours.iter().zip(runs).map(|(a, b)| a.rtf / b.rtf).collect();
        let (median, low, high) = spread(ratios);
        let same = ours
            .iter()
            .zip(runs)
            .all(|(a, b)| words(&a.text) == words(&b.text));
        println!(
            "- ours (client's clock) / {label}, per pair: median {median:.2}x, range {low:.2}-{high:.2}x; transcripts {}",
            if same { "the same words" } else { "differ" }
        );
    }
    println!("- ours: {}", ours.last().map_or("", |r| r.text.as_str()));
    for (label, runs) in labels.iter().zip(&theirs) {
        println!("- {label}: {}", runs.last().map_or("", |r| r.text.as_str()));
    }
}

/// Lowercase words without punctuation, to compare transcripts.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        })
        .filter(|w: &String| !w.is_empty())
        .collect()
}

/// The median, minimum and maximum.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    match (values.first(), values.last()) {
        (Some(&low), Some(&high)) => (values[values.len() / 2], low, high),
        _ => (0.0, 0.0, 0.0),
    }
}
