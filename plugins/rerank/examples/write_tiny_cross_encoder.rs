//! Writes a random-weight cross-encoder (Hugging Face layout) for tests and benchmarks:
//! `write_tiny_cross_encoder <dir> <tokenizer.json> [bert|minilm|xlm-roberta]`, then
//! `rbee-host --plugin rerank-cpu --model <dir>`. `minilm` has the architecture of
//! ms-marco-MiniLM-L-6-v2 (about 90 MB).
//!
//! `cargo run -p rbee-plugin-rerank --features test-support --example write_tiny_cross_encoder -- /tmp/tiny-rerank ~/.cache/rbee/models/all-MiniLM-L6-v2/tokenizer.json`

use rbee_plugin_rerank::tiny::{TinyKind, write};
use std::path::Path;

fn main() {
    let usage = "usage: write_tiny_cross_encoder <dir> <tokenizer.json> [bert|minilm|xlm-roberta]";
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(tokenizer)) = (args.next(), args.next()) else {
        panic!("{usage}");
    };
    let kind = match args.next().as_deref() {
        None | Some("bert") => TinyKind::Bert,
        Some("minilm") => TinyKind::MiniLm,
        Some("xlm-roberta") => TinyKind::XlmRoberta,
        Some(other) => panic!("unknown kind {other}; {usage}"),
    };
    write(Path::new(&dir), kind, Path::new(&tokenizer)).expect("the checkpoint is written");
    println!("{dir}");
}
