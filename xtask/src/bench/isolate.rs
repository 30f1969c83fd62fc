//! `cargo xtask bench isolate`: what crash isolation (the default) costs against
//! `--in-process`. One host build serves the same plugins twice, with the plugin in a child
//! process and in the host's own, measured run by run in turn: the
//! LLM's decode speed on the Q4_1 test model (as the client sees it, and as the plugin reports
//! it), and the host's cost per streamed echo token, which is the pipe's cost with no model
//! behind it. Ratios are the median of the run-by-run ratios.

use super::{host::per_token_us, middle, one_hosted_job, prompt, start_host};
use crate::{
    models, paths,
    plugins::{self, PluginsArgs, run},
};
use anyhow::Result;
use std::{path::Path, process::Command};

/// The two ways of running a plugin, as environment for the host.
const MODES: [(&str, &[(&str, &str)]); 2] = [
    ("--in-process", &[("RBEE_IN_PROCESS", "true")]),
    ("isolated (default)", &[]),
];

/// Measures both modes and prints the table.
pub fn isolate(runs: usize) -> Result<()> {
    let plugins_dir = plugins::build_and_install(&PluginsArgs {
        only: vec!["echo".into(), "llm".into()],
        ..PluginsArgs::default()
    })?;
    let model = models::provision()?.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    run(Command::new(env!("CARGO"))
        .current_dir(paths::root())
        .args(["build", "-p", "rbee-host"]))?;
    let mut figures = [
        [Vec::new(), Vec::new(), Vec::new()],
        [Vec::new(), Vec::new(), Vec::new()],
    ];
    {
        let hosts = MODES
            .iter()
            .map(|(_, env)| start_host("llm-cpu", &plugins_dir, &model, env))
            .collect::<Result<Vec<_>>>()?;
        for run in 0..runs.max(1) {
            for (mode, (_, url)) in hosts.iter().enumerate() {
                let (plugin, client) = one_hosted_job(url, run, &prompt())?;
                figures[mode][0].push(client.decode_tps);
                figures[mode][1].push(plugin.decode_tps);
            }
        }
    }
    let hosts = MODES
        .iter()
        .map(|(_, env)| start_host("echo-cpu", &plugins_dir, Path::new("echo"), env))
        .collect::<Result<Vec<_>>>()?;
    for _ in 0..runs.max(1) {
        for (mode, (_, url)) in hosts.iter().enumerate() {
            figures[mode][2].push(per_token_us(url)?);
        }
    }
    println!(
        "| mode | LLM decode, client (tok/s) | LLM decode, plugin (tok/s) | echo: host cost per streamed token (µs) |"
    );
    println!("|---|---|---|---|");
    for ((name, _), columns) in MODES.iter().zip(&figures) {
        let [client, plugin, echo] = columns.clone().map(middle);
        println!("| {name} | {client:.1} | {plugin:.1} | {echo:.2} |");
    }
    let ratio = |column: usize| {
        let pairs = figures[1][column].iter().zip(&figures[0][column]);
        middle(
            pairs
                .map(|(isolated, in_process)| isolated / in_process)
                .collect(),
        )
    };
    println!(
        "| isolated ÷ in process, median of {} run pairs | {:.3} | {:.3} | {:.2} |",
        runs.max(1),
        ratio(0),
        ratio(1),
        ratio(2)
    );
    Ok(())
}
