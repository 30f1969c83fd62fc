//! `cargo xtask screenshots`: the playground's views in both themes, as PNGs under
//! `docs/screenshots/` (README.md links them), taken in headless Chromium from a host serving
//! every test model and the out-of-tree embeddings plugin.

use crate::{
    models, paths,
    plugins::{self, PluginsArgs, run},
    run::{PLAYWRIGHT, all_models_file, ensure_python_package},
};
use anyhow::{Context, Result, bail};
use std::{
    env::consts::{DLL_PREFIX, DLL_SUFFIX},
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// The key the screenshots' host asks for (it listens on loopback only, while they are taken).
const KEY: &str = "playground-demo";

/// Builds and serves every test model behind an API key, then drives the page through each
/// view with `tests/playground/screenshots.py`.
pub fn take() -> Result<()> {
    let models = models::provision()?;
    ensure_python_package("playwright", PLAYWRIGHT)?;
    let plugins_dir = plugins::build_and_install(&PluginsArgs::default())?;
    run(Command::new(env!("CARGO"))
        .current_dir(paths::root())
        .args(["build", "-p", "rbee-host"]))?;
    let file = all_models_file(&models)?;
    let embeddings = models.join("all-MiniLM-L6-v2");
    let mut text = std::fs::read_to_string(&file)?;
    text.push_str(&format!(
        "[[models]]\nid = \"embeddings\"\nplugin = \"embeddings-cpu\"\nmodel = {:?}\n",
        embeddings.display().to_string()
    ));
    let file = file.with_file_name("screenshots.toml");
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;

    let mut host = Command::new(paths::target().join("debug").join("rbee-host"))
        .arg("--models")
        .arg(&file)
        .arg("--plugins-dir")
        .arg(&plugins_dir)
        .arg("--plugins-dir")
        .arg(embeddings_plugin()?)
        .args(["--port", "0", "--api-key", KEY])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting rbee-host")?;
    let url = listening_url(host.stderr.take().expect("piped stderr"));
    let taken = url.and_then(|url| {
        run(Command::new("python3")
            .arg("-B") // no __pycache__ in the work tree
            .arg(paths::root().join("tests/playground/screenshots.py"))
            .arg(url)
            .arg(paths::root().join("docs/screenshots"))
            .arg(KEY)
            .arg(models.join("speech/hello_world.wav")))
    });
    let _ = host.kill();
    let _ = host.wait();
    taken
}

/// The URL a host logs that it listens on; the rest of its log is dropped.
fn listening_url(log: impl std::io::Read + Send + 'static) -> Result<String> {
    let (found, url) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            if let Some(at) = line.find("listening on http://") {
                let rest = &line[at + "listening on ".len()..];
                let end = rest.find(|c: char| c.is_whitespace() || c == '"');
                let _ = found.send(rest[..end.unwrap_or(rest.len())].to_string());
            }
        }
    });
    match url.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => Ok(url),
        Err(_) => bail!("rbee-host did not start listening within 60 s"),
    }
}

/// Builds the out-of-tree embeddings plugin as its author would and installs it, as
/// `embeddings-cpu`, in a plugins dir of its own; returns the dir.
fn embeddings_plugin() -> Result<PathBuf> {
    run(plugins::cargo_for_plugins("cpu")
        .args(["build", "--quiet", "--manifest-path"])
        .arg(paths::root().join("examples/embeddings-plugin/Cargo.toml")))?;
    let built = paths::plugin_target("cpu")
        .join("debug")
        .join(format!("{DLL_PREFIX}rbee_plugin_embeddings{DLL_SUFFIX}"));
    let dir = paths::target().join("screenshot-plugins");
    std::fs::create_dir_all(&dir)?;
    plugins::set_mode(&dir, 0o755)?;
    let installed = dir.join(format!("embeddings-cpu{DLL_SUFFIX}"));
    std::fs::copy(&built, &installed).with_context(|| format!("installing {}", built.display()))?;
    plugins::set_mode(&installed, 0o755)?;
    Ok(dir)
}
