//! In-process benchmark: the test model (or its requantized copy in `RBEE_BENCH_FORMAT`:
//! Q4_1, Q4_0 or Q8_0) on this CPU, called directly (no host, no HTTP). Prints the model's path,
//! then one JSON line per run with the plugin's own prompt and decode speeds. Run by
//! `cargo xtask bench llm`, which sets the thread count.

use candle_core::quantized::GgmlDType;
use rbee_plugin_api::{EventSink_TO, Job, PluginWorker, abi_stable::sabi_trait::TD_Opaque};
use rbee_plugin_llm::test_support::{RecordingSink, details, host, load_request, model_in_format};
use serde_json::json;

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let prompt =
        std::env::var("RBEE_BENCH_PROMPT").expect("RBEE_BENCH_PROMPT (set by cargo xtask bench)");
    let max_tokens: u64 = std::env::var("RBEE_BENCH_TOKENS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(128);
    let format = match std::env::var("RBEE_BENCH_FORMAT").as_deref() {
        Ok("Q4_0") => GgmlDType::Q4_0,
        Ok("Q8_0") => GgmlDType::Q8_0,
        Ok("Q4_1") | Err(_) => GgmlDType::Q4_1,
        Ok(other) => panic!("RBEE_BENCH_FORMAT={other}: use Q4_1, Q4_0 or Q8_0"),
    };
    let path = model_in_format(format);
    println!("{}", path.display());
    let worker = rbee_plugin_llm::load(load_request(&path.to_string_lossy(), 2), host())
        .expect("loading the benchmark model");
    let params = json!({"prompt": prompt, "temperature": 0, "max_tokens": max_tokens});
    for run in 0..runs {
        let mut sink = RecordingSink::default();
        let job = Job {
            id: format!("bench-{run}").into(),
            task: rbee_plugin_llm::TASK.into(),
            params_json: params.to_string().into(),
        };
        let end = worker
            .execute(&job, &mut EventSink_TO::from_ptr(&mut sink, TD_Opaque))
            .expect("the benchmark job failed");
        println!("{}", details(&end));
    }
}
