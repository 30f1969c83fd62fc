//! Times one UNet pass of SD 1.5 (random weights) on the CPU and prints one JSON line.
//! Arguments: `[width] [height] [batch] [runs]`, default `512 512 1 2`. The CPU pipeline runs a
//! guided denoising step as two passes of batch 1, an unguided (Turbo) step as one.
//!
//! `cargo run -p rbee-plugin-sd --features test-support --example sd_step_bench -- 512 512 1 2`

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are integers"))
        .collect();
    let arg = |i: usize, default: usize| *args.get(i).unwrap_or(&default);
    let (width, height, batch, runs) = (arg(0, 512), arg(1, 512), arg(2, 1), arg(3, 2));
    let started = std::time::Instant::now();
    let pass_ms =
        rbee_plugin_sd::tiny::time_sd15_step(width, height, batch, runs).expect("the UNet runs");
    println!(
        "{{\"bench\":\"sd15_unet_pass\",\"width\":{width},\"height\":{height},\"batch\":{batch},\"runs\":{runs},\"pass_ms\":{pass_ms:.1},\"total_s\":{:.1}}}",
        started.elapsed().as_secs_f64()
    );
}
