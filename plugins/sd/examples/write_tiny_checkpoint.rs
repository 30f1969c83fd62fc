//! Writes a tiny random-weight Stable Diffusion checkpoint (diffusers layout) for tests and
//! demos: `write_tiny_checkpoint <dir> [sd15|xl|inpainting]`, then
//! `rbee-host --plugin sd-cpu --model <dir>`.
//!
//! `cargo run -p rbee-plugin-sd --features test-support --example write_tiny_checkpoint -- /tmp/tiny-sd`

use rbee_plugin_sd::tiny::{TinyKind, write_tiny};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: write_tiny_checkpoint <dir> [sd15|xl|inpainting]");
    let kind = match args.next().as_deref() {
        None | Some("sd15") => TinyKind::Sd15,
        Some("xl") => TinyKind::Xl,
        Some("inpainting") => TinyKind::Inpainting,
        Some(other) => panic!("unknown kind {other}: use sd15, xl or inpainting"),
    };
    write_tiny(std::path::Path::new(&dir), kind).expect("the checkpoint is written");
    println!("{dir}");
}
