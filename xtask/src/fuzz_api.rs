//! `cargo xtask fuzz-api`: the schemathesis tests of `tests/tests/openapi.rs`, at length.

use crate::{
    models, paths,
    plugins::{self, PluginsArgs, run},
    run::{SCHEMATHESIS, ensure_python_package},
};
use anyhow::{Context, Result};
use std::process::Command;

/// Provisions the test models and schemathesis, builds the echo, llm, sd and rerank plugins, and
/// runs schemathesis against each with `examples` examples per operation, from `seed` or a new
/// one.
pub fn fuzz(examples: usize, seed: Option<u64>) -> Result<()> {
    let models = models::provision()?;
    ensure_python_package("schemathesis", SCHEMATHESIS)?;
    let plugins_dir = plugins::build_and_install(&PluginsArgs {
        only: vec!["echo".into(), "llm".into(), "sd".into(), "rerank".into()],
        ..PluginsArgs::default()
    })?;
    let seed = seed.map_or_else(|| "random".to_string(), |seed| seed.to_string());
    run(Command::new(env!("CARGO"))
        .current_dir(paths::root())
        .args(["test", "-p", "rbee-tests", "--test", "openapi"])
        .arg("schemathesis_")
        .args(["--", "--nocapture", "--test-threads=1"])
        .env("RBEE_FUZZ_EXAMPLES", examples.to_string())
        .env("RBEE_FUZZ_SEED", seed)
        .env("RBEE_MODELS_DIR", &models)
        .env("RBEE_TEST_PLUGINS_DIR", &plugins_dir))
    .context("schemathesis found problems (its report is above)")
}
