//! Writes a random-weight Parler-TTS checkpoint for tests and benchmarks:
//! `write_tiny_parler <dir> [tiny|mini-decoder]`, then `rbee-host --plugin tts-cpu --model <dir>`.
//! `mini-decoder` has the audio-token decoder of Parler-TTS mini v1 (about 1 GB as float16).
//!
//! `cargo run -p rbee-plugin-tts --features test-support --example write_tiny_parler -- /tmp/tiny-parler`

use rbee_plugin_tts::tiny::{TinyKind, write};
use std::path::Path;

fn main() {
    let usage = "usage: write_tiny_parler <dir> [tiny|mini-decoder]";
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        panic!("{usage}");
    };
    let kind = match args.next().as_deref() {
        None | Some("tiny") => TinyKind::Tiny,
        Some("mini-decoder") => TinyKind::MiniDecoder,
        Some(other) => panic!("unknown kind {other}; {usage}"),
    };
    write(Path::new(&dir), kind).expect("the checkpoint is written");
    println!("{dir}");
}
