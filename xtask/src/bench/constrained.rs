//! Part of `cargo xtask bench llm`: what constrained decoding costs. The in-process benchmark
//! alternates an unconstrained job and one whose `response_format` is a JSON schema long enough
//! to run every token of the budget, and the table gives the median decode speed of each and
//! the median of the pairwise ratios.

use super::{Build, LlmBench, Path, Result, THREADS, in_process_runs, plugin_figures};
use serde_json::Value;

/// Runs the pairs on the Q4_1 test model and prints the table.
pub fn constrained(bench: &LlmBench<'_>, models: &Path) -> Result<()> {
    let env = [("RBEE_BENCH_CONSTRAINED", "1")];
    let (_, runs) = in_process_runs(bench, models, "Q4_1", Build::Native, &env)?;
    let decode = |constrained: bool| -> Vec<f64> {
        runs.iter()
            .filter(|details| details["constrained"] == Value::Bool(constrained))
            .map(|details| plugin_figures(details).decode_tps)
            .collect()
    };
    let (free, schema) = (decode(false), decode(true));
    let ratios: Vec<f64> = free.iter().zip(&schema).map(|(f, s)| s / f).collect();
    println!(
        "\nConstrained decoding, Q4_1 in-process, {THREADS} threads, greedy, {} pairs (each an unconstrained job, then one with a JSON schema)\n",
        ratios.len()
    );
    println!("| decode tok/s | unconstrained | JSON schema | JSON schema ÷ unconstrained |");
    println!("|---|---|---|---|");
    println!(
        "| median | {:.1} | {:.1} | {:.3} |",
        middle(free),
        middle(schema),
        middle(ratios)
    );
    Ok(())
}

fn middle(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
