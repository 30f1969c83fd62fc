//! Times one VAE decode of SD 1.5 (random weights, f32) on the CPU and prints one JSON line with
//! the process's peak resident memory. Arguments: `[width] [height] [tile] [runs]`, default
//! `512 512 64 1`; `tile` is the decode tile in latent cells as the plugin's `vae_tile` load
//! option (0: whole, the default 64 decodes a 512x512 image whole).
//!
//! `cargo run -p rbee-plugin-sd --features test-support --example sd_decode_bench -- 512 512 64 1`

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: usize| {
        args.get(i).map_or(default, |a| {
            a.parse().expect("sizes, tile and runs are integers")
        })
    };
    let (width, height, tile, runs) = (arg(0, 512), arg(1, 512), arg(2, 64), arg(3, 1));
    let decode_ms =
        rbee_plugin_sd::tiny::time_sd15_decode(width, height, tile, runs).expect("the VAE decodes");
    let peak =
        rbee_plugin_sd::tiny::peak_rss_mb().map_or("null".to_string(), |mb| format!("{mb:.0}"));
    println!(
        "{{\"bench\":\"sd15_vae_decode\",\"width\":{width},\"height\":{height},\"tile\":{tile},\"runs\":{runs},\"decode_ms\":{decode_ms:.1},\"peak_rss_mb\":{peak}}}"
    );
}
