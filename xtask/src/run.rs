//! `cargo xtask test` and `cargo xtask serve`: everything set up, then the real thing.

use crate::{
    fuzz, models, paths,
    plugins::{self, PluginsArgs, run},
};
use anyhow::{Context, Result};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Out-of-tree plugin crates (their own workspaces) whose unit tests also run.
pub const EXAMPLE_PLUGINS: &[&str] = &["examples/embeddings-plugin", "examples/plugin-template"];

/// The Python client the OpenAI-compatibility test drives the host with.
const OPENAI_CLIENT: &str = "openai==3.54.0";

/// libsndfile for Python: the audio tests encode their FLAC, Ogg Vorbis and MP3 clips with it.
pub const SOUNDFILE: &str = "soundfile==0.14.0";

/// The API fuzzer `tests/tests/openapi.rs` and `cargo xtask fuzz-api` run against the host.
pub const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Drives the system Chromium in the playground's browser tests and screenshots (it downloads
/// no browser).
pub const PLAYWRIGHT: &str = "playwright==1.65.2";

/// Provisions the models and the Python packages the tests use, builds the plugins, runs the plugins' own
/// tests, checks the Kubernetes manifests, fuzzes each parser of untrusted bytes (every target,
/// `gguf` included) for [`fuzz::TEST_SECONDS`], then every other test in the workspace (integration tests start the
/// real host against the built plugins).
pub fn test(cargo_args: &[String]) -> Result<()> {
    let models = models::provision()?;
    ensure_python_package("openai", OPENAI_CLIENT)?;
    ensure_python_package("soundfile", SOUNDFILE)?;
    ensure_python_package("schemathesis", SCHEMATHESIS)?;
    ensure_python_package("playwright", PLAYWRIGHT)?;
    let plugins_dir = plugins::build_and_install(&PluginsArgs::default())?;
    let crates = plugins::plugin_crates("cpu")?;
    let shared = plugins::shared_plugin_crates()?;
    // With their test-support features, the plugins' tests also build the examples that write
    // the black-box tests' fixtures, in the same build: run alone (`cargo run -p`), each would
    // resolve its own package's features and build candle again.
    let test_support: Vec<String> = crates
        .iter()
        .filter(|c| c.has_test_support)
        .map(|c| format!("{}/test-support", c.package))
        .collect();
    let mut plugin_tests = plugins::cargo_for_plugins("cpu");
    plugin_tests
        .arg("test")
        .args(plugins::package_args(&crates, "cpu"))
        .args(["--features", &test_support.join(",")])
        .args(shared.iter().flat_map(|name| ["-p", name.as_str()]))
        .env("RBEE_MODELS_DIR", &models);
    run(&mut plugin_tests)?;
    let examples = paths::plugin_target("cpu").join("debug").join("examples");
    run(Command::new("bash")
        .arg(paths::root().join("deploy/k8s/check.sh"))
        .current_dir(paths::root()))
    .context("the Kubernetes manifests do not check out")?;
    fuzz::fuzz(fuzz::TEST_SECONDS, &fuzz::every_target())?;
    for example in EXAMPLE_PLUGINS {
        let manifest = paths::root().join(example).join("Cargo.toml");
        run(plugins::cargo_for_plugins("cpu")
            .arg("test")
            .arg("--manifest-path")
            .arg(manifest)
            .env("RBEE_MODELS_DIR", &models))?;
    }
    let mut tests = Command::new(env!("CARGO"));
    tests
        .current_dir(paths::root())
        .args(["test", "--workspace", "--exclude", "xtask"]);
    for package in crates.iter().map(|c| &c.package).chain(&shared) {
        tests.args(["--exclude", package]);
    }
    tests
        .args(cargo_args)
        .env("RBEE_MODELS_DIR", &models)
        .env("RBEE_TEST_PLUGINS_DIR", &plugins_dir)
        .env("RBEE_TEST_PLUGIN_EXAMPLES", &examples);
    run(&mut tests)
}

/// Runs the load test with `clients` concurrent clients, or with `soak` the soak test for that
/// many seconds, printing their tables.
pub fn load(clients: usize, soak: Option<u64>) -> Result<()> {
    let models = models::provision()?;
    let plugin = if soak.is_some() { "llm" } else { "echo" };
    let plugins_dir = plugins::build_and_install(&PluginsArgs {
        only: vec![plugin.into()],
        ..PluginsArgs::default()
    })?;
    let mut test = Command::new(env!("CARGO"));
    test.current_dir(paths::root())
        .args(["test", "-p", "rbee-tests", "--test"])
        .arg(if soak.is_some() { "soak" } else { "load" })
        .args(["--", "--nocapture"])
        .env("RBEE_LOAD_CLIENTS", clients.to_string())
        .env("RBEE_SOAK_SECS", soak.unwrap_or(0).to_string())
        .env("RBEE_MODELS_DIR", &models)
        .env("RBEE_TEST_PLUGINS_DIR", &plugins_dir);
    run(&mut test).context("the load test failed")
}

/// Installs a Python package with pip unless it can already be imported.
pub fn ensure_python_package(module: &str, requirement: &str) -> Result<()> {
    let present = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output();
    if present.is_ok_and(|output| output.status.success()) {
        return Ok(());
    }
    run(Command::new("python3").args(["-m", "pip", "install", "--quiet", requirement]))
        .with_context(|| format!("installing {requirement} with pip"))
}

/// Builds and serves `plugin`; without --model, llm plugins serve the provisioned SmolLM2 file
/// and audio plugins the provisioned Whisper tiny.en. With `all`, serves every test model at
/// once from a models file instead.
pub fn serve(plugin: &str, all: bool, host_args: &[String]) -> Result<()> {
    let models = models::provision()?;
    let plugins_dir = plugins::build_and_install(&PluginsArgs::default())?;
    run(Command::new(env!("CARGO"))
        .current_dir(paths::root())
        .args(["build", "-p", "rbee-host"]))?;
    let mut host = Command::new(paths::target().join("debug").join("rbee-host"));
    host.arg("--plugins-dir").arg(&plugins_dir);
    if all {
        host.arg("--models").arg(all_models_file(&models)?);
    } else {
        host.args(["--plugin", plugin]);
        let local_model = match plugin.split('-').next() {
            Some("llm") => Some(models::SMOLLM2_GGUF),
            Some("audio") => Some(models::WHISPER_TINY_EN),
            _ => None,
        };
        if let Some(model) = local_model.filter(|_| !host_args.iter().any(|arg| arg == "--model")) {
            host.arg("--model").arg(models.join(model));
        }
    }
    host.args(host_args);
    let port = std::env::var("PORT").ok();
    eprintln!("the playground: {}", playground_url(host_args, port));
    run(&mut host).context("rbee-host stopped with an error")
}

/// Where the playground of a host run with `args` is: its `--host` and `--port` (else `$PORT`),
/// or their defaults, with a wildcard address as loopback.
fn playground_url(args: &[String], env_port: Option<String>) -> String {
    let flag = |name: &str| {
        let mut value = None;
        for (at, arg) in args.iter().enumerate() {
            if arg == name {
                value = args.get(at + 1).cloned();
            } else if let Some(given) = arg.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                value = Some(given.to_string());
            }
        }
        value
    };
    let host = match flag("--host").as_deref() {
        None | Some("0.0.0.0") => "127.0.0.1".to_string(),
        Some("::") => "[::1]".to_string(),
        Some(ipv6) if ipv6.contains(':') => format!("[{ipv6}]"),
        Some(name) => name.to_string(),
    };
    match flag("--port").or(env_port).as_deref().unwrap_or("8080") {
        "0" => format!("http://{host}:<the port it logs>/"),
        port => format!("http://{host}:{port}/"),
    }
}

/// Writes a models file naming every test model (echo, SmolLM2, Whisper tiny.en and a tiny
/// random-weight Stable Diffusion checkpoint, written here) and returns its path.
pub fn all_models_file(models: &Path) -> Result<PathBuf> {
    let dir = paths::target().join("serve-all");
    let tiny_sd = dir.join("tiny-sd");
    run(plugins::sd_example("write_tiny_checkpoint").arg(&tiny_sd))?;
    let entries = [
        ("echo", "echo-cpu", None),
        (
            "smollm2",
            "llm-cpu",
            Some(models.join(models::SMOLLM2_GGUF)),
        ),
        (
            "whisper-tiny.en",
            "audio-cpu",
            Some(models.join(models::WHISPER_TINY_EN)),
        ),
        ("tiny-sd", "sd-cpu", Some(tiny_sd)),
    ];
    let mut text = String::new();
    for (id, plugin, model) in entries {
        text.push_str(&format!(
            "[[models]]\nid = \"{id}\"\nplugin = \"{plugin}\"\n"
        ));
        if let Some(model) = model {
            text.push_str(&format!("model = {:?}\n", model.display().to_string()));
        }
        text.push('\n');
    }
    let file = dir.join("models.toml");
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}
