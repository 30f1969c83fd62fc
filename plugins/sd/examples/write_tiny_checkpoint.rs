//! Writes a tiny random-weight Stable Diffusion checkpoint (diffusers layout) for tests and
//! demos: `write_tiny_checkpoint <dir> [sd15|xl|inpainting]`, then
//! `rbee-host --plugin sd-cpu --model <dir>`. `sd15-full` writes the real SD 1.5 architecture
//! with random weights instead (about 4.3 GB), for benchmarks.
//!
//! `cargo run -p rbee-plugin-sd --features test-support --example write_tiny_checkpoint -- /tmp/tiny-sd`

use rbee_plugin_sd::tiny::{TinyKind, write_sd15_random, write_tiny};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: write_tiny_checkpoint <dir> [sd15|xl|inpainting|sd15-full]");
    let path = std::path::Path::new(&dir);
    let kind = match args.next().as_deref() {
        Some("sd15-full") => {
            write_sd15_random(path).expect("the checkpoint is written");
            println!("{dir}");
            return;
        }
        None | Some("sd15") => TinyKind::Sd15,
        Some("xl") => TinyKind::Xl,
        Some("inpainting") => TinyKind::Inpainting,
        Some(other) => panic!("unknown kind {other}: use sd15, xl, inpainting or sd15-full"),
    };
    write_tiny(path, kind).expect("the checkpoint is written");
    println!("{dir}");
}
