//! In-process benchmark: the test model transcribing one audio file, called directly (no host,
//! no HTTP). Prints one JSON line per run with the plugin's own figures.
//! `audio_bench <file> [runs] [job parameters as JSON]`; run by `cargo xtask bench audio`, which
//! sets the thread count.

use rbee_plugin_api::testing::RecordingSink;
use rbee_plugin_audio::test_support::{details, run};
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .expect("usage: audio_bench <file> [runs] [parameters]");
    let runs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
    let params = match args.next() {
        Some(text) => serde_json::from_str(&text).expect("the job parameters are not JSON"),
        None => json!({}),
    };
    let audio = std::fs::read(&file).expect("reading the audio file");
    for _ in 0..runs {
        let sink = RecordingSink::new();
        let end = run(&audio, params.clone(), &sink).expect("the benchmark job failed");
        println!("{}", details(&end));
    }
}
