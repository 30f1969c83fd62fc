//! `cargo xtask bench host`: what the host itself costs, measured with the echo plugin (no
//! model): the time to check and open a plugin (`rbee-host plugins inspect`, a whole process:
//! the probe child, the preamble and layout checks, the manifest), and the host's cost per
//! streamed token (a job of many words with no delay, submitted over HTTP and read over SSE to
//! its end). With `--compare DIR` (another build's `rbee-host` and `echo-cpu.so`), both builds
//! run in turn, run by run, and the table gives the ratio of the medians.

use super::{middle, start_host_bin, submit_and_follow};
use crate::{
    paths,
    plugins::{self, PluginsArgs, run},
};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

/// Words in the per-token job: long enough that start and end costs vanish.
const WORDS: usize = 5000;

/// One build of the host and its echo plugin.
struct Build {
    name: String,
    host: PathBuf,
    plugins_dir: PathBuf,
}

/// Measures this build (and the one in `compare`, interleaved) and prints the table.
pub fn host(runs: usize, compare: Option<&Path>) -> Result<()> {
    let plugins_dir = plugins::build_and_install(&PluginsArgs {
        only: vec!["echo".into()],
        ..PluginsArgs::default()
    })?;
    run(Command::new(env!("CARGO"))
        .current_dir(paths::root())
        .args(["build", "-p", "rbee-host"]))?;
    let mut builds = vec![Build {
        name: "this build".into(),
        host: paths::target().join("debug").join("rbee-host"),
        plugins_dir,
    }];
    if let Some(dir) = compare {
        builds.push(Build {
            name: format!("{}", dir.display()),
            host: dir.join("rbee-host"),
            plugins_dir: dir.to_path_buf(),
        });
    }
    let load = interleaved(&builds, runs, plugin_load_ms)?;
    let hosts = builds
        .iter()
        .map(|b| start_host_bin(&b.host, "echo-cpu", &b.plugins_dir, Path::new("echo"), &[]))
        .collect::<Result<Vec<_>>>()?;
    let urls: Vec<&str> = hosts.iter().map(|(_, url)| url.as_str()).collect();
    let per_token = interleaved(&urls, runs, |url| per_token_us(url))?;
    println!("| build | plugin check + open + manifest (ms) | host cost per streamed token (µs) |");
    println!("|---|---|---|");
    for (i, build) in builds.iter().enumerate() {
        println!("| {} | {:.1} | {:.2} |", build.name, load[i], per_token[i]);
    }
    if builds.len() == 2 {
        println!(
            "| ratio, this ÷ other | {:.2} | {:.2} |",
            load[0] / load[1],
            per_token[0] / per_token[1]
        );
    }
    Ok(())
}

/// The median of `measure` over `runs` runs of each item, the items taking turns.
fn interleaved<T>(
    items: &[T],
    runs: usize,
    measure: impl Fn(&T) -> Result<f64>,
) -> Result<Vec<f64>> {
    let mut figures = vec![Vec::new(); items.len()];
    for _ in 0..runs.max(1) {
        for (item, figures) in items.iter().zip(&mut figures) {
            figures.push(measure(item)?);
        }
    }
    Ok(figures.into_iter().map(middle).collect())
}

/// Wall milliseconds of `rbee-host plugins inspect` on the build's echo plugin.
fn plugin_load_ms(build: &Build) -> Result<f64> {
    let started = Instant::now();
    let output = Command::new(&build.host)
        .args(["plugins", "inspect"])
        .arg(build.plugins_dir.join("echo-cpu.so"))
        .output()
        .with_context(|| format!("running {}", build.host.display()))?;
    if !output.status.success() {
        bail!(
            "plugins inspect failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Microseconds per token of a many-word echo job, from submission to its end event.
pub(super) fn per_token_us(url: &str) -> Result<f64> {
    let text: String = (0..WORDS).map(|i| format!("w{i} ")).collect();
    let (events, _, submitted) = submit_and_follow(url, "echo", json!({"text": text}))?;
    if events.iter().filter(|(name, _)| name == "token").count() != WORDS {
        bail!("the echo job did not stream {WORDS} tokens");
    }
    Ok(submitted.elapsed().as_secs_f64() * 1e6 / WORDS as f64)
}
