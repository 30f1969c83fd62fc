//! Times one denoising step of the SD 1.5 UNet (random weights, batch 2 as with guidance) on
//! the CPU and prints one JSON line. Arguments: `[width] [height] [runs]`, default 512 512 3.
//!
//! `cargo run --release -p rbee-plugin-sd --features test-support --example sd_step_bench`

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are integers"))
        .collect();
    let (width, height, runs) = (
        *args.first().unwrap_or(&512),
        *args.get(1).unwrap_or(&512),
        *args.get(2).unwrap_or(&3),
    );
    let started = std::time::Instant::now();
    let step_ms = rbee_plugin_sd::tiny::time_sd15_step(width, height, runs).expect("the step runs");
    println!(
        "{{\"bench\":\"sd15_unet_step\",\"width\":{width},\"height\":{height},\"batch\":2,\"runs\":{runs},\"step_ms\":{step_ms:.1},\"total_s\":{:.1}}}",
        started.elapsed().as_secs_f64()
    );
}
