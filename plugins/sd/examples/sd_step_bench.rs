//! Times one UNet pass of SD 1.5 (random weights) on the CPU and prints one JSON line with the
//! process's peak resident memory. Arguments: `[width] [height] [batch] [runs] [dtype]`,
//! default `512 512 1 2 f32` (dtype f32 or f16; candle 0.11 has no bf16 matmul on the CPU).
//! The CPU pipeline runs a guided denoising step as two passes of batch 1, an unguided (Turbo)
//! step as one.
//!
//! `cargo run -p rbee-plugin-sd --features test-support --example sd_step_bench -- 512 512 1 2`

use candle_core::DType;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: usize| {
        args.get(i).map_or(default, |a| {
            a.parse().expect("sizes and counts are integers")
        })
    };
    let (width, height, batch, runs) = (arg(0, 512), arg(1, 512), arg(2, 1), arg(3, 2));
    let dtype = match args.get(4).map_or("f32", String::as_str) {
        "f32" => DType::F32,
        "f16" => DType::F16,
        other => panic!("dtype must be f32 or f16, not {other}"),
    };
    let started = std::time::Instant::now();
    let pass_ms = rbee_plugin_sd::tiny::time_sd15_step(width, height, batch, runs, dtype)
        .expect("the UNet runs");
    let peak =
        rbee_plugin_sd::tiny::peak_rss_mb().map_or("null".to_string(), |mb| format!("{mb:.0}"));
    println!(
        "{{\"bench\":\"sd15_unet_pass\",\"width\":{width},\"height\":{height},\"batch\":{batch},\"runs\":{runs},\"dtype\":\"{dtype:?}\",\"pass_ms\":{pass_ms:.1},\"peak_rss_mb\":{peak},\"total_s\":{:.1}}}",
        started.elapsed().as_secs_f64()
    );
}
