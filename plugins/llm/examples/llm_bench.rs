//! In-process benchmark: the test model on this CPU, called directly (no host, no HTTP).
//! Prints one JSON line per run with the plugin's own prompt and decode speeds.
//! Run by `cargo xtask bench llm`, which sets the thread count.

use rbee_plugin_llm::test_support::{RecordingSink, details, run};
use serde_json::json;

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let prompt =
        std::env::var("RBEE_BENCH_PROMPT").expect("RBEE_BENCH_PROMPT (set by cargo xtask bench)");
    let max_tokens: u64 = std::env::var("RBEE_BENCH_TOKENS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(128);
    for _ in 0..runs {
        let mut sink = RecordingSink::default();
        let end = run(
            json!({"prompt": prompt, "temperature": 0, "max_tokens": max_tokens}),
            &mut sink,
        )
        .expect("the benchmark job failed");
        println!("{}", details(&end));
    }
}
