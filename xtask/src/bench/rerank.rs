//! `cargo xtask bench rerank`: documents scored per second through a running host
//! (`POST /v1/rerank`, 64 documents of about 100 tokens per request, 2 threads), for a
//! cross-encoder of ms-marco-MiniLM-L-6-v2's architecture (random weights, which cost what
//! real ones do) and for the bi-encoder mode on all-MiniLM-L6-v2.

use super::{THREADS, middle, start_host};
use crate::{
    models, paths,
    plugins::{self, PluginsArgs, run},
};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::{path::Path, time::Instant};

/// Documents per request.
const DOCUMENTS: usize = 64;

/// The documents of every request: about 100 tokens each, each a little different.
fn documents() -> Vec<String> {
    (0..DOCUMENTS)
        .map(|i| {
            format!(
                "Passage {i}. Spiders are arachnids with eight legs, and most of them spin silk \
                 to build webs that catch insects; some hunt instead, and a few live under water. \
                 Their bodies have two segments, the cephalothorax and the abdomen, and they \
                 breathe through book lungs or tracheae, depending on the family ({i})."
            )
        })
        .collect()
}

/// One model's figures: documents per second and tokens per second, medians over the runs.
struct Measured {
    documents_per_second: f64,
    tokens_per_second: f64,
    tokens_per_document: f64,
}

/// Serves `model` and times `runs` requests after one warm-up.
fn measure(plugins_dir: &Path, model: &Path, runs: usize) -> Result<Measured> {
    let (host, url) = start_host("rerank-cpu", plugins_dir, model, &[])?;
    let body = json!({"query": "How many legs does a spider have?", "documents": documents()});
    let send = || -> Result<(f64, u64)> {
        let started = Instant::now();
        let answer: Value = ureq::post(&format!("{url}/v1/rerank"))
            .send_json(body.clone())?
            .into_json()?;
        let seconds = started.elapsed().as_secs_f64();
        if answer["results"].as_array().map_or(0, Vec::len) != DOCUMENTS {
            bail!("the reranker did not score every document: {answer}");
        }
        Ok((
            seconds,
            answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        ))
    };
    send()?;
    let mut seconds = Vec::new();
    let mut tokens = 0;
    for _ in 0..runs {
        let (taken, read) = send()?;
        seconds.push(taken);
        tokens = read;
    }
    drop(host);
    let seconds = middle(seconds);
    Ok(Measured {
        documents_per_second: DOCUMENTS as f64 / seconds,
        tokens_per_second: tokens as f64 / seconds,
        tokens_per_document: tokens as f64 / DOCUMENTS as f64,
    })
}

/// Runs the rerank benchmark and prints the table.
pub fn rerank(runs: usize) -> Result<()> {
    let models = models::provision()?;
    let plugins_dir = plugins::build_and_install(&PluginsArgs {
        only: vec!["rerank".into()],
        ..PluginsArgs::default()
    })?;
    run(std::process::Command::new(env!("CARGO"))
        .current_dir(paths::root())
        .args(["build", "--quiet", "-p", "rbee-host"]))?;
    let minilm = models.join("all-MiniLM-L6-v2");
    let cross = paths::target().join("fixtures").join("bench-rerank-minilm");
    run(plugins::cargo_for_plugins("cpu")
        .args([
            "run",
            "--quiet",
            "-p",
            "rbee-plugin-rerank",
            "--features",
            "test-support",
            "--example",
            "write_tiny_cross_encoder",
            "--",
        ])
        .arg(&cross)
        .arg(minilm.join("tokenizer.json"))
        .arg("minilm"))
    .context("writing the MiniLM-sized cross-encoder")?;
    let rows = [
        (
            "cross-encoder, ms-marco-MiniLM-L-6-v2 architecture (random weights)",
            measure(&plugins_dir, &cross, runs)?,
        ),
        (
            "bi-encoder, all-MiniLM-L6-v2",
            measure(&plugins_dir, &minilm, runs)?,
        ),
    ];
    println!(
        "\nPOST /v1/rerank through rbee-host, {DOCUMENTS} documents per request, {THREADS} threads, batches of 16, median of {runs} runs\n"
    );
    println!("| model | documents/s | tokens/s | tokens per document |");
    println!("|---|---|---|---|");
    for (name, measured) in rows {
        println!(
            "| {name} | {:.1} | {:.0} | {:.0} |",
            measured.documents_per_second, measured.tokens_per_second, measured.tokens_per_document
        );
    }
    Ok(())
}
