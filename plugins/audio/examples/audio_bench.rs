//! In-process benchmark: the test model transcribing one audio file, called directly (no host,
//! no HTTP). Prints one JSON line per run with the plugin's own figures.
//! `audio_bench <file> [runs]`; run by `cargo xtask bench audio`, which sets the thread count.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use rbee_plugin_audio::test_support::{RecordingSink, details, run};
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let file = args.next().expect("usage: audio_bench <file> [runs]");
    let runs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
    let audio = BASE64.encode(std::fs::read(&file).expect("reading the audio file"));
    for _ in 0..runs {
        let mut sink = RecordingSink::default();
        let end = run(json!({"audio": audio}), &mut sink).expect("the benchmark job failed");
        println!("{}", details(&end));
    }
}
