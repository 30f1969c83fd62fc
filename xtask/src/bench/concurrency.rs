//! `cargo xtask bench llm --concurrency 1,4,8,16`: N clients at once, each streaming one
//! completion of up to 128 tokens from `POST /v1/completions`, against the release rbee-host
//! serving the test model with N batch slots (`--parallel N`, given as `RBEE_PARALLEL`) and,
//! with `--compare-server`, against llama.cpp's llama-server on the same file with N slots, the
//! two taking turns run by run. Measured from the clients: aggregate decoded tokens/s (every
//! token received over the wall time from the first request sent to the last stream's end),
//! time to first token per client, and the time between tokens (every gap of every client).
//! Then prefix caching: a chat's second turn, whose first ~1,000 tokens repeat the first turn,
//! against the first turn's time to first token.

use super::{DECODE_TOKENS, HostProcess, THREADS, middle, prompt, start_host_bin};
use crate::{
    models, paths,
    plugins::{self, PluginsArgs, run},
};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::Path,
    process::{Command, Stdio},
    sync::Barrier,
    time::{Duration, Instant},
};

/// Context tokens per llama-server slot (its `-c` is N times this).
const SLOT_CONTEXT: usize = 2048;

/// One run's figures at one concurrency, from the clients' side.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    /// Every client's tokens over the wall time from the first request to the last stream end.
    tokens_per_second: f64,
    /// Time to first token, p50 and p99 over the clients, in ms.
    ttft_ms: [f64; 2],
    /// Time between tokens, p50 and p99 over every gap of every client, in ms.
    tbt_ms: [f64; 2],
    /// The fewest tokens a client received (fewer than asked for: the model stopped early).
    min_tokens: usize,
}

/// One table row: the number of clients, rbee-host's figures, llama-server's when compared.
type Row = (usize, Load, Option<Load>);

/// Runs the concurrency benchmark at each of `levels` and prints the table; `compare_server`
/// is a llama-server binary measured on the same file, interleaved.
pub fn concurrency(levels: &[usize], runs: usize, compare_server: Option<&Path>) -> Result<()> {
    if levels.contains(&0) {
        bail!("--concurrency takes numbers of clients of 1 or more");
    }
    let model = models::provision()?.join(models::SMOLLM2_GGUF);
    let plugins_dir = plugins::build_and_install(&PluginsArgs {
        only: vec!["llm".into()],
        release: true,
        out: Some(paths::target().join("rbee-plugins-release")),
        ..PluginsArgs::default()
    })?;
    run(Command::new(env!("CARGO"))
        .current_dir(paths::root())
        .args(["build", "--quiet", "--release", "-p", "rbee-host"]))?;
    let host_bin = paths::target().join("release").join("rbee-host");
    let llama_extra = json!({"ignore_eos": true, "cache_prompt": false});
    let mut rows = Vec::new();
    for &clients in levels {
        let parallel = clients.to_string();
        let (_rbee, rbee_url) = start_host_bin(
            &host_bin,
            "llm-cpu",
            &plugins_dir,
            &model,
            &[("RBEE_PARALLEL", &parallel)],
        )?;
        let llama = compare_server
            .map(|server| start_llama_server(server, &model, clients))
            .transpose()?;
        stream(&rbee_url, "Warm-up", &json!({}))?;
        if let Some((_, url)) = &llama {
            stream(url, "Warm-up", &llama_extra)?;
        }
        let (mut rbee_runs, mut llama_runs) = (Vec::new(), Vec::new());
        for r in 0..runs.max(1) {
            rbee_runs.push(load(&rbee_url, clients, r, &json!({}))?);
            if let Some((_, url)) = &llama {
                llama_runs.push(load(url, clients, r, &llama_extra)?);
            }
        }
        rows.push((
            clients,
            median(&rbee_runs),
            llama.map(|_| median(&llama_runs)),
        ));
    }
    print_table(&rows, runs);
    let (_rbee, rbee_url) = start_host_bin(&host_bin, "llm-cpu", &plugins_dir, &model, &[])?;
    let turns: Vec<[f64; 2]> = (0..runs.max(1))
        .map(|r| two_turns(&rbee_url, r))
        .collect::<Result<_>>()?;
    let [first, second] = [0, 1].map(|i| middle(turns.iter().map(|t| t[i]).collect()));
    println!(
        "\nprefix caching, a chat's second turn after a ~{PREFIX_WORDS}-word system prompt (median of {} runs): first turn TTFT {first:.0} ms, second turn {second:.0} ms, ratio {:.2}",
        runs.max(1),
        second / first
    );
    Ok(())
}

/// Words of the shared system prompt in the prefix-caching measurement (about 1,000 tokens).
const PREFIX_WORDS: usize = 800;

/// A chat of two turns on a system prompt no other run sent: the time to first token of each.
fn two_turns(url: &str, run: usize) -> Result<[f64; 2]> {
    let rules = "Answer briefly, stay polite, and keep to the facts you are given. ";
    let system = format!(
        "Run {run}. You are a helpful assistant. {}",
        rules.repeat(PREFIX_WORDS / rules.split_whitespace().count())
    );
    let mut messages = vec![
        json!({"role": "system", "content": system}),
        json!({"role": "user", "content": "What is the capital of France?"}),
    ];
    let (first_ms, answer) = chat_first_token(url, &messages)?;
    messages.push(json!({"role": "assistant", "content": answer}));
    messages.push(json!({"role": "user", "content": "And the capital of Italy?"}));
    let (second_ms, _) = chat_first_token(url, &messages)?;
    Ok([first_ms, second_ms])
}

/// Streams a greedy chat completion of up to 16 tokens: the time to its first token in ms, and
/// its text.
fn chat_first_token(url: &str, messages: &[Value]) -> Result<(f64, String)> {
    let body = json!({"messages": messages, "max_tokens": 16, "temperature": 0, "stream": true});
    let sent = Instant::now();
    let response = ureq::post(&format!("{url}/v1/chat/completions"))
        .timeout(Duration::from_secs(600))
        .send_json(body)?;
    let (mut first, mut text) = (None, String::new());
    for line in BufReader::new(response.into_reader()).lines() {
        let line = line?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(data)?;
        let piece = chunk["choices"][0]["delta"]["content"].as_str();
        if let Some(piece) = piece.filter(|p| !p.is_empty()) {
            first.get_or_insert_with(Instant::now);
            text.push_str(piece);
        }
    }
    let first = first.context("the chat streamed no text")?;
    Ok(((first - sent).as_secs_f64() * 1000.0, text))
}

/// Prints one row per concurrency: rbee-host's figures, and llama-server's with the ratio.
fn print_table(rows: &[Row], runs: usize) {
    let compared = rows.iter().any(|(_, _, llama)| llama.is_some());
    println!(
        "\nSmolLM2-135M-Instruct Q4_1, {THREADS} threads, N clients each streaming one greedy /v1/completions of up to {DECODE_TOKENS} tokens after ~128 prompt tokens, median of {} runs; TTFT and TBT in ms\n",
        runs.max(1)
    );
    if compared {
        println!(
            "| N | rbee tok/s | llama tok/s | ratio | rbee TTFT p50/p99 | llama TTFT p50/p99 | rbee TBT p50/p99 | llama TBT p50/p99 |"
        );
        println!("|---|---|---|---|---|---|---|---|");
    } else {
        println!("| N | rbee tok/s | rbee TTFT p50/p99 | rbee TBT p50/p99 |");
        println!("|---|---|---|---|");
    }
    let pair = |p: [f64; 2]| format!("{:.0} / {:.0}", p[0], p[1]);
    for (clients, rbee, llama) in rows {
        match llama {
            Some(llama) => println!(
                "| {clients} | {:.1} | {:.1} | {:.2} | {} | {} | {} | {} |",
                rbee.tokens_per_second,
                llama.tokens_per_second,
                rbee.tokens_per_second / llama.tokens_per_second,
                pair(rbee.ttft_ms),
                pair(llama.ttft_ms),
                pair(rbee.tbt_ms),
                pair(llama.tbt_ms)
            ),
            None => println!(
                "| {clients} | {:.1} | {} | {} |",
                rbee.tokens_per_second,
                pair(rbee.ttft_ms),
                pair(rbee.tbt_ms)
            ),
        }
    }
    let fewest = |pick: fn(&Row) -> Option<usize>| rows.iter().filter_map(pick).min().unwrap_or(0);
    print!(
        "\nfewest tokens one client received: rbee {}",
        fewest(|row| Some(row.1.min_tokens))
    );
    if compared {
        print!(
            ", llama-server {}",
            fewest(|row| row.2.map(|l| l.min_tokens))
        );
    }
    println!(" (of {DECODE_TOKENS} asked)");
    if compared {
        println!(
            "llama-server: -t {THREADS} -tb {THREADS} -np N -c N*{SLOT_CONTEXT}, requests with ignore_eos and cache_prompt false"
        );
    }
}

/// Starts llama-server on `model` with `slots` slots on a free port and waits for `/health`.
fn start_llama_server(server: &Path, model: &Path, slots: usize) -> Result<(HostProcess, String)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = paths::target().join("bench-llama-server.log");
    let child = Command::new(server)
        .arg("-m")
        .arg(model)
        .args(["-t", THREADS, "-tb", THREADS, "--host", "127.0.0.1"])
        .args(["-np", &slots.to_string()])
        .args(["-c", &(slots * SLOT_CONTEXT).to_string()])
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", server.display()))?;
    let mut server_process = HostProcess(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while ureq::get(&format!("{url}/health")).call().is_err() {
        if Instant::now() > deadline || server_process.0.try_wait()?.is_some() {
            bail!("llama-server did not become healthy; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((server_process, url))
}

/// Run `r` at one concurrency: `clients` clients start together, each streaming one completion
/// of a prompt no other request has sent (so no cache is reused), with `extra` fields.
fn load(url: &str, clients: usize, r: usize, extra: &Value) -> Result<Load> {
    let barrier = Barrier::new(clients);
    let streams = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|k| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    stream(url, &format!("Run {r}, client {k}"), extra)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    let sent = streams.iter().map(|s| s.sent).min().context("no client")?;
    let ended = streams.iter().map(|s| s.ended).max().context("no client")?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut ttft = Vec::new();
    let mut gaps = Vec::new();
    for s in &streams {
        ttft.push(ms(
            *s.tokens.first().context("a client got no token")? - s.sent
        ));
        gaps.extend(s.tokens.windows(2).map(|w| ms(w[1] - w[0])));
    }
    let total: usize = streams.iter().map(|s| s.tokens.len()).sum();
    Ok(Load {
        tokens_per_second: total as f64 / (ended - sent).as_secs_f64(),
        ttft_ms: [percentile(&mut ttft, 0.5), percentile(&mut ttft, 0.99)],
        tbt_ms: [percentile(&mut gaps, 0.5), percentile(&mut gaps, 0.99)],
        min_tokens: streams.iter().map(|s| s.tokens.len()).min().unwrap_or(0),
    })
}

/// One client's stream: when it was sent, when each token arrived, when it ended.
struct Stream {
    sent: Instant,
    tokens: Vec<Instant>,
    ended: Instant,
}

/// Sends one streaming completion of the bench prompt after `label` and reads it to `[DONE]`:
/// each chunk with non-empty text counts as one token.
fn stream(url: &str, label: &str, extra: &Value) -> Result<Stream> {
    let prompt = format!("{label}: {}", prompt());
    let mut body =
        json!({"prompt": prompt, "max_tokens": DECODE_TOKENS, "temperature": 0, "stream": true});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let sent = Instant::now();
    let response = ureq::post(&format!("{url}/v1/completions"))
        .timeout(Duration::from_secs(600))
        .send_json(body)?;
    let mut tokens = Vec::new();
    for line in BufReader::new(response.into_reader()).lines() {
        let line = line?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            return Ok(Stream {
                sent,
                tokens,
                ended: Instant::now(),
            });
        }
        let chunk: Value = serde_json::from_str(data)?;
        if chunk.get("error").is_some() {
            bail!("the completion failed: {data}");
        }
        if chunk["choices"][0]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
        {
            tokens.push(Instant::now());
        }
    }
    bail!("the stream ended without [DONE]")
}

/// The nearest-rank percentile `p` (0..=1) of `values` (sorted in place); 0 when empty.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = (p * values.len() as f64).ceil() as usize;
    values.get(rank.saturating_sub(1)).copied().unwrap_or(0.0)
}

/// The median of each figure over the runs (the fewest tokens: the least of them).
fn median(runs: &[Load]) -> Load {
    let pick = |f: fn(&Load) -> f64| middle(runs.iter().map(f).collect());
    Load {
        tokens_per_second: pick(|l| l.tokens_per_second),
        ttft_ms: [pick(|l| l.ttft_ms[0]), pick(|l| l.ttft_ms[1])],
        tbt_ms: [pick(|l| l.tbt_ms[0]), pick(|l| l.tbt_ms[1])],
        min_tokens: runs.iter().map(|l| l.min_tokens).min().unwrap_or(0),
    }
}
