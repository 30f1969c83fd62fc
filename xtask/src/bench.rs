//! `cargo xtask bench llm|sd|audio|host|isolate` (host: see [`host`]; isolate: see
//! [`isolate`]). llm: the LLM plugin's speed with the test model and its
//! Q4_0 and Q8_0 copies on 2 threads, called in-process and through a running host over HTTP +
//! SSE, with the host's cost per token, beside llama.cpp's llama-bench on the same files when
//! one is given (`--compare`), llama-quantize's Q4_K_M, Q5_K_M and Q6_K files of the test model
//! with `--llama-quantize` ([`llama_quantized`]), a random-weight file of Qwen3-0.6B's shape
//! ([`qwen3`]), the real Gemma 3 270M Q4_K_M file, decoding after a long prompt (`--depth`, 4096 tokens by default), decode with a JSON-schema constraint beside unconstrained
//! ([`constrained`]), and the portable build beside the native one (`--portable`). sd: see [`sd`](sd()), with
//! stable-diffusion.cpp beside it (`--compare`). audio: see [`audio`]. llm with `--concurrency`: see
//! [`concurrency`].

mod audio;
mod concurrency;
mod constrained;
mod host;
mod isolate;
mod llama_quantized;
mod qwen3;
mod rerank;
mod sd;
mod tts;

pub use audio::audio;
pub use host::host;
pub use isolate::isolate;
pub use rerank::rerank;
pub use sd::sd;
pub use tts::tts;

use crate::{
    models, paths,
    plugins::{self, PluginsArgs, run},
};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Threads for every figure, as the issue's reference numbers use.
const THREADS: &str = "2";
/// Tokens decoded per run.
const DECODE_TOKENS: u64 = 128;

/// A prompt of about 128 tokens for SmolLM2's tokenizer (the exact count is reported).
fn prompt() -> String {
    "The quick brown fox jumps over the lazy dog. "
        .repeat(12)
        .trim_end()
        .to_string()
}

/// One run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    prompt_tokens: f64,
    prompt_tps: f64,
    decode_tokens: f64,
    decode_tps: f64,
    first_token_ms: f64,
}

/// The GGUF block formats the LLM benchmark runs: the test model and its requantized copies.
const FORMATS: [&str; 3] = ["Q4_1", "Q4_0", "Q8_0"];

/// What `cargo xtask bench llm` compares.
pub struct LlmBench<'a> {
    /// Runs per figure (the median is printed).
    pub runs: usize,
    /// A llama-bench binary to run on the same files, interleaved with the host's jobs.
    pub compare: Option<&'a Path>,
    /// Also build the plugin for baseline x86-64 (no target-cpu flags) and run it in-process.
    pub portable: bool,
    /// The kernel set to run (`RBEE_CPU_KERNELS`), if not the fastest.
    pub kernels: Option<&'a str>,
    /// Numbers of concurrent clients: when given, run [`concurrency`] instead.
    pub concurrency: &'a [usize],
    /// With `concurrency`, a llama-server binary to serve the same file, interleaved.
    pub compare_server: Option<&'a Path>,
    /// A llama-quantize binary: also measure the K-quant files it makes of the test model
    /// ([`llama_quantized`]).
    pub llama_quantize: Option<&'a Path>,
    /// About how many prompt tokens decoding is also measured after (0: not measured).
    pub depth: usize,
}

impl LlmBench<'_> {
    /// The environment that selects the kernel set in the plugin's processes.
    fn kernel_env(&self) -> Vec<(&'static str, &str)> {
        self.kernels
            .map(|name| ("RBEE_CPU_KERNELS", name))
            .into_iter()
            .collect()
    }
}

/// Runs the LLM benchmark and prints the tables.
pub fn llm(bench: &LlmBench<'_>) -> Result<()> {
    if !bench.concurrency.is_empty() {
        return concurrency::concurrency(bench.concurrency, bench.runs, bench.compare_server);
    }
    let runs = bench.runs;
    let models = models::provision()?;
    let plugins_dir = plugins::build_and_install(&PluginsArgs {
        only: vec!["llm".into()],
        ..PluginsArgs::default()
    })?;
    run(Command::new(env!("CARGO"))
        .current_dir(paths::root())
        .args(["build", "--quiet", "-p", "rbee-host"]))?;
    let mut rows = Vec::new();
    for format in FORMATS {
        let (model, in_process) = in_process(bench, &models, format, Build::Native)?;
        let hosted = through_host(bench, &model, &plugins_dir, in_process)?;
        rows.push((format, in_process, hosted));
    }
    let mut others: Vec<(String, PathBuf)> = Vec::new();
    if let Some(tool) = bench.llama_quantize {
        let q8_0 = models.join("SmolLM2-135M-Instruct.Q8_0.gguf");
        for (kind, file) in llama_quantized::files(tool, &q8_0)? {
            others.push((format!("llama-{kind}"), file));
        }
    }
    let qwen3 = qwen3::file(&models)?;
    if let Some(tool) = bench.llama_quantize {
        let q4_k_m =
            llama_quantized::file(tool, &qwen3, "Q4_K_M", &qwen3::quantized_path("Q4_K_M"))?;
        others.push(("qwen3-0.6B-shape llama-Q4_K_M".into(), q4_k_m));
    }
    others.push(("qwen3-0.6B-shape Q8_0".into(), qwen3));
    others.push((
        "gemma-3-270m Q4_K_M (real)".into(),
        models.join(models::GEMMA3_270M_GGUF),
    ));
    let mut quantized = Vec::new();
    for (name, file) in others {
        quantized.push((name, through_host(bench, &file, &plugins_dir, rows[0].1)?));
    }
    println!(
        "\nSmolLM2-135M-Instruct ({} prompt tokens, {DECODE_TOKENS} decoded), {THREADS} threads, greedy, median of {runs} runs, kernels: {}\n",
        rows[0].1.prompt_tokens,
        bench
            .kernels
            .unwrap_or("the fastest (see the plugin's log line)")
    );
    println!(
        "| file | in-process prompt / decode tok/s | in rbee-host (plugin clock) | HTTP + SSE client | llama.cpp | client ÷ llama.cpp |"
    );
    println!("|---|---|---|---|---|---|");
    let pair = |f: &Figures| format!("{:.0} / {:.1}", f.prompt_tps, f.decode_tps);
    let in_process_pairs = rows
        .iter()
        .map(|(format, f, hosted)| (*format, pair(f), hosted));
    let others = quantized
        .iter()
        .map(|(name, hosted)| (name.as_str(), "-".to_string(), hosted));
    let every_file: Vec<_> = in_process_pairs.chain(others).collect();
    for (format, in_process, hosted) in &every_file {
        let (llama, ratio) = match hosted.llama {
            Some(l) => (
                pair(&l),
                format!(
                    "{:.2} / {:.2}",
                    hosted.client.prompt_tps / l.prompt_tps,
                    hosted.client.decode_tps / l.decode_tps
                ),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {format} | {in_process} | {} | {} | {llama} | {ratio} |",
            pair(&hosted.plugin),
            pair(&hosted.client)
        );
    }
    if bench.depth > 0 {
        print_depth_table(&every_file);
    }
    let (_, _, q4_1) = &rows[0];
    let overhead_ms = 1000.0 / q4_1.client.decode_tps - 1000.0 / q4_1.plugin.decode_tps;
    println!(
        "\nhost overhead per decoded token on Q4_1 (client vs plugin clock): {overhead_ms:.2} ms"
    );
    println!(
        "first token through the host on Q4_1: {:.0} ms",
        q4_1.client.first_token_ms
    );
    if bench.llama_quantize.is_some() {
        println!(
            "llama-Q4_K_M, llama-Q5_K_M, llama-Q6_K: the Q8_0 file requantized by llama-quantize --allow-requantize"
        );
    }
    println!("{}", qwen3::DESCRIPTION);
    if bench.compare.is_some() {
        println!(
            "llama.cpp: llama-bench -t {THREADS} -p <prompt tokens> -n 0, and -p 0 -n {DECODE_TOKENS} -d <prompt tokens> (decoding after the same prompt)"
        );
    }
    constrained::constrained(bench, &models)?;
    if bench.portable {
        let (_, portable) = in_process(bench, &models, "Q4_1", Build::Portable)?;
        let native = rows[0].1;
        println!("\n| Q4_1 in-process | prompt tok/s | decode tok/s |\n|---|---|---|");
        println!(
            "| native build (x86-64-v3) | {:.0} | {:.1} |",
            native.prompt_tps, native.decode_tps
        );
        println!(
            "| portable build (baseline x86-64) | {:.0} | {:.1} |",
            portable.prompt_tps, portable.decode_tps
        );
        println!(
            "portable ÷ native: {:.2} prompt, {:.2} decode",
            portable.prompt_tps / native.prompt_tps,
            portable.decode_tps / native.decode_tps
        );
    }
    Ok(())
}

/// The decode speeds after the long prompt, through the host and by llama.cpp, per file.
fn print_depth_table(files: &[(&str, String, &Hosted)]) {
    println!(
        "\n| file | prompt tokens before decoding | decode tok/s through rbee-host (client) | llama.cpp | client ÷ llama.cpp |"
    );
    println!("|---|---|---|---|---|");
    for (name, _, hosted) in files {
        let deep = match &hosted.deep {
            None => continue,
            Some(Err(refused)) => {
                println!("| {name} | - | not run: {refused} | - | - |");
                continue;
            }
            Some(Ok(deep)) => deep,
        };
        let (llama, ratio) = match deep.llama {
            Some(l) => (
                format!("{:.1}", l.decode_tps),
                format!("{:.2}", deep.client.decode_tps / l.decode_tps),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {name} | {:.0} | {:.1} | {llama} | {ratio} |",
            deep.client.prompt_tokens, deep.client.decode_tps
        );
    }
}

/// How the in-process benchmark is compiled.
#[derive(Clone, Copy, PartialEq)]
enum Build {
    /// As `cargo xtask plugins` builds the cpu plugins.
    Native,
    /// For baseline x86-64, in a target directory of its own.
    Portable,
}

/// Runs the plugin in-process on the file of `format`; returns that file and the median figures.
fn in_process(
    bench: &LlmBench<'_>,
    models: &Path,
    format: &str,
    build: Build,
) -> Result<(PathBuf, Figures)> {
    let (model, runs) = in_process_runs(bench, models, format, build, &[])?;
    let runs: Vec<Figures> = runs.iter().map(plugin_figures).collect();
    Ok((model, median(&runs)))
}

/// Runs the in-process benchmark example with `env`; returns the model file and each job's
/// `end` details.
fn in_process_runs(
    bench: &LlmBench<'_>,
    models: &Path,
    format: &str,
    build: Build,
    env: &[(&str, &str)],
) -> Result<(PathBuf, Vec<Value>)> {
    let cargo = match build {
        Build::Native => plugins::cargo_for_plugins("cpu"),
        Build::Portable => {
            let mut cargo = Command::new(env!("CARGO"));
            cargo
                .current_dir(paths::root())
                .env("CARGO_TARGET_DIR", paths::plugin_target("cpu-portable"))
                .env("RUSTFLAGS", "");
            cargo
        }
    };
    let output = plugins::example(cargo, "rbee-plugin-llm", "llm_bench")
        .arg(bench.runs.to_string())
        .envs(bench.kernel_env())
        .env("RBEE_MODELS_DIR", models)
        .env("RBEE_BENCH_PROMPT", prompt())
        .env("RBEE_BENCH_TOKENS", DECODE_TOKENS.to_string())
        .env("RBEE_BENCH_FORMAT", format)
        .env("CANDLE_NUM_THREADS", THREADS)
        .env("RAYON_NUM_THREADS", THREADS)
        .envs(env.iter().copied())
        .stderr(Stdio::inherit())
        .output()
        .context("running the in-process benchmark")?;
    if !output.status.success() {
        bail!("the in-process benchmark failed");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let model = PathBuf::from(
        stdout
            .lines()
            .next()
            .context("the benchmark printed nothing")?,
    );
    let runs = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect();
    Ok((model, runs))
}

fn plugin_figures(details: &Value) -> Figures {
    let number = |key: &str| details[key].as_f64().unwrap_or(0.0);
    Figures {
        prompt_tokens: number("prompt_tokens"),
        prompt_tps: number("prompt_tokens_per_second"),
        decode_tokens: number("completion_tokens"),
        decode_tps: number("decode_tokens_per_second"),
        first_token_ms: 0.0,
    }
}

/// Kills the host when the benchmark ends, however it ends.
struct HostProcess(Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts rbee-host serving `plugin` (from `plugins_dir`) on `model` with the benchmarks'
/// thread count and `env`, on a free port, and waits until it is ready.
fn start_host(
    plugin: &str,
    plugins_dir: &Path,
    model: &Path,
    env: &[(&str, &str)],
) -> Result<(HostProcess, String)> {
    let bin = paths::target().join("debug").join("rbee-host");
    start_host_bin(&bin, plugin, plugins_dir, model, env)
}

/// Like [`start_host`], running the host binary `bin`.
fn start_host_bin(
    bin: &Path,
    plugin: &str,
    plugins_dir: &Path,
    model: &Path,
    env: &[(&str, &str)],
) -> Result<(HostProcess, String)> {
    start_host_with(bin, plugin, plugins_dir, model, env, &[])
}

/// Like [`start_host_bin`], with `extra` arguments for the host (e.g. `--plugin-options`).
fn start_host_with(
    bin: &Path,
    plugin: &str,
    plugins_dir: &Path,
    model: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Result<(HostProcess, String)> {
    let mut child = Command::new(bin)
        .args(["--port", "0", "--threads", THREADS, "--plugin", plugin])
        .arg("--plugins-dir")
        .arg(plugins_dir)
        .arg("--model")
        .arg(model)
        .args(extra)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting rbee-host")?;
    let stderr = child.stderr.take().context("rbee-host's stderr")?;
    let host = HostProcess(child);
    let mut lines = BufReader::new(stderr).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| Some(line.split("listening on ").nth(1)?.trim().to_string()))
        .context("rbee-host did not start listening")?;
    std::thread::spawn(move || lines.for_each(drop));
    let deadline = Instant::now() + Duration::from_secs(300);
    while ureq::get(&format!("{url}/ready")).call().is_err() {
        if Instant::now() > deadline {
            bail!("rbee-host did not become ready");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((host, url))
}

/// Figures of jobs through a running host, and of llama.cpp on the same file when compared.
struct Hosted {
    plugin: Figures,
    client: Figures,
    llama: Option<Figures>,
    /// Decoding after the long prompt, when `--depth` asks for it; the host's reason instead
    /// when the file's context is shorter than that prompt.
    deep: Option<Result<Deep, String>>,
}

/// Medians of jobs decoding after the long prompt, through the host and by llama.cpp.
struct Deep {
    client: Figures,
    llama: Option<Figures>,
}

/// Serves `model` and runs `runs` jobs over HTTP; with `compare`, one llama-bench run of the
/// same file before each job, so both tools see the same machine state.
fn through_host(
    bench: &LlmBench<'_>,
    model: &Path,
    plugins_dir: &Path,
    in_process: Figures,
) -> Result<Hosted> {
    let (runs, compare) = (bench.runs, bench.compare);
    let (host, url) = start_host("llm-cpu", plugins_dir, model, &bench.kernel_env())?;
    let (mut plugin_runs, mut client_runs, mut llama_runs) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        if let Some(llama_bench) = compare {
            llama_runs.push(llama_bench_run(
                llama_bench,
                model,
                in_process.prompt_tokens,
            )?);
        }
        let (plugin, client) = one_hosted_job(&url, run, &prompt())?;
        plugin_runs.push(plugin);
        client_runs.push(client);
    }
    let deep = match bench.depth {
        0 => None,
        depth => Some(deep_runs(
            bench,
            &url,
            model,
            in_process.prompt_tokens,
            depth,
        )?),
    };
    drop(host);
    Ok(Hosted {
        plugin: median(&plugin_runs),
        client: median(&client_runs),
        llama: compare.map(|_| median(&llama_runs)),
        deep,
    })
}

/// Jobs on the running host at `url` whose prompt is about `depth` tokens (the usual prompt,
/// of `prompt_tokens`, repeated), each followed by llama-bench decoding after as many tokens;
/// the host's refusal instead, when the prompt does not fit the model's context.
fn deep_runs(
    bench: &LlmBench<'_>,
    url: &str,
    model: &Path,
    prompt_tokens: f64,
    depth: usize,
) -> Result<Result<Deep, String>> {
    let repeats = (depth as f64 / prompt_tokens).round().max(1.0) as usize;
    let long_prompt = vec![prompt(); repeats].join(" ");
    let (mut client_runs, mut llama_runs) = (Vec::new(), Vec::new());
    for run in 0..bench.runs {
        let (plugin, client) = match one_hosted_job(url, run, &long_prompt) {
            Err(refused) if refused.to_string().contains(CONTEXT_REFUSAL) => {
                return Ok(Err(refused.to_string()));
            }
            job => job?,
        };
        client_runs.push(client);
        if let Some(llama_bench) = bench.compare {
            let tokens = (plugin.prompt_tokens as u64).to_string();
            let decode = llama_bench_speed(
                llama_bench,
                model,
                &["-p", "0", "-n", &DECODE_TOKENS.to_string(), "-d", &tokens],
            )?;
            llama_runs.push(Figures {
                prompt_tokens: plugin.prompt_tokens,
                decode_tokens: DECODE_TOKENS as f64,
                decode_tps: decode,
                ..Figures::default()
            });
        }
    }
    Ok(Ok(Deep {
        client: median(&client_runs),
        llama: bench.compare.map(|_| median(&llama_runs)),
    }))
}

/// What the llm plugin says of a prompt longer than the model's context.
const CONTEXT_REFUSAL: &str = "exceeds the model's context";

/// One llama-bench run: prompt processing of `prompt_tokens`, then decoding after a context of
/// that many tokens (as the host's jobs decode after their prompt).
fn llama_bench_run(llama_bench: &Path, model: &Path, prompt_tokens: f64) -> Result<Figures> {
    let tokens = (prompt_tokens as u64).to_string();
    let speed = |args: &[&str]| llama_bench_speed(llama_bench, model, args);
    Ok(Figures {
        prompt_tokens,
        prompt_tps: speed(&["-p", &tokens, "-n", "0"])?,
        decode_tokens: DECODE_TOKENS as f64,
        decode_tps: speed(&["-p", "0", "-n", &DECODE_TOKENS.to_string(), "-d", &tokens])?,
        first_token_ms: 0.0,
    })
}

/// One llama-bench run of `model` with `args` on the benchmark's threads: its tokens per second.
fn llama_bench_speed(llama_bench: &Path, model: &Path, args: &[&str]) -> Result<f64> {
    let output = Command::new(llama_bench)
        .arg("-m")
        .arg(model)
        .args(["-t", THREADS, "-r", "1", "-o", "json"])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("running {}", llama_bench.display()))?;
    if !output.status.success() {
        bail!("{} failed on {}", llama_bench.display(), model.display());
    }
    let results: Value =
        serde_json::from_slice(&output.stdout).context("reading llama-bench's JSON output")?;
    results[0]["avg_ts"]
        .as_f64()
        .context("llama-bench reported no avg_ts")
}

/// The events of a stream, by name, with the time each arrived.
type Arrivals = Vec<(String, Instant)>;

/// Submits a job over HTTP and follows its stream to the end: the time each event arrived
/// (by name), the `end` event's data, and when the job was submitted.
fn submit_and_follow(url: &str, task: &str, params: Value) -> Result<(Arrivals, Value, Instant)> {
    let submitted = Instant::now();
    let job: Value = ureq::post(&format!("{url}/v1/jobs"))
        .send_json(json!({"task": task, "params": params}))?
        .into_json()?;
    let stream = ureq::get(&format!(
        "{url}{}",
        job["stream_url"].as_str().context("a stream url")?
    ))
    .call()?;
    let (mut events, mut event) = (Vec::new(), String::new());
    for line in BufReader::new(stream.into_reader()).lines() {
        let line = line?;
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            match event.as_str() {
                "end" => return Ok((events, serde_json::from_str(data)?, submitted)),
                "error" => bail!("the job failed: {data}"),
                name => events.push((name.to_string(), Instant::now())),
            }
        }
    }
    bail!("the stream ended without an end event")
}

/// One LLM job over HTTP on `text`: the plugin's own figures (from `end`) and the client's
/// view. Each run's prompt starts with its number, so that no run reuses another's prompt from
/// the prefix cache.
fn one_hosted_job(url: &str, run: usize, text: &str) -> Result<(Figures, Figures)> {
    let prompt = format!("Run {run}. {text}");
    let params = json!({"prompt": prompt, "temperature": 0, "max_tokens": DECODE_TOKENS});
    let (events, end, submitted) = submit_and_follow(url, "text-generation", params)?;
    let tokens: Vec<Instant> = events
        .iter()
        .filter(|(name, _)| name == "token")
        .map(|(_, at)| *at)
        .collect();
    let (first, last) = (
        *tokens.first().context("no token arrived")?,
        *tokens.last().context("no token arrived")?,
    );
    let plugin = plugin_figures(&end);
    let client = Figures {
        prompt_tokens: plugin.prompt_tokens,
        prompt_tps: plugin.prompt_tokens / (first - submitted).as_secs_f64(),
        decode_tokens: tokens.len() as f64,
        decode_tps: (tokens.len().saturating_sub(1)) as f64 / (last - first).as_secs_f64(),
        first_token_ms: (first - submitted).as_secs_f64() * 1000.0,
    };
    Ok((plugin, client))
}

fn median(runs: &[Figures]) -> Figures {
    let pick = |f: fn(&Figures) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(|a, b| a.total_cmp(b));
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    Figures {
        prompt_tokens: pick(|f| f.prompt_tokens),
        prompt_tps: pick(|f| f.prompt_tps),
        decode_tokens: pick(|f| f.decode_tokens),
        decode_tps: pick(|f| f.decode_tps),
        first_token_ms: pick(|f| f.first_token_ms),
    }
}

/// A process's peak resident memory (VmHWM) in kB, from Linux /proc.
fn peak_resident_kb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading the peak memory of process {pid} (Linux /proc)"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no VmHWM in /proc/{pid}/status"))
}

/// The processes `pid` started (its plugin processes), from every thread's `children` list.
fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn middle(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
