//! In-process benchmark: the test model (or its requantized copy in `RBEE_BENCH_FORMAT`:
//! Q4_1, Q4_0 or Q8_0) on this CPU, called directly (no host, no HTTP). Prints the model's path,
//! then one JSON line per run with the plugin's own prompt and decode speeds. With
//! `RBEE_BENCH_CONSTRAINED` set, each run is a pair: the job as usual, then the same job
//! constrained by a JSON schema, each line marked `constrained`. `RBEE_BENCH_OPTIONS` gives the
//! plugin options (JSON). Run by `cargo xtask bench llm`, which sets the thread count.

use candle_core::quantized::GgmlDType;
use rbee_plugin_api::{Job, PluginWorker, testing::RecordingSink};
use rbee_plugin_llm::test_support::{details, load_worker_with, model_in_format};
use serde_json::{Value, json};

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
    let pairs = std::env::var_os("RBEE_BENCH_CONSTRAINED").is_some();
    let path = std::env::var_os("RBEE_BENCH_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| model_in_format(format));
    println!("{}", path.display());
    let options = std::env::var("RBEE_BENCH_OPTIONS").unwrap_or_default();
    let worker = load_worker_with(&path, 2, &options);
    for run in 0..runs {
        // A prompt of its own per run: a repeated one would come from the prefix cache.
        let prompt = format!("Run {run}. {prompt}");
        let params = json!({"prompt": prompt, "temperature": 0, "max_tokens": max_tokens});
        let kinds: &[bool] = if pairs { &[false, true] } else { &[false] };
        for &constrained in kinds {
            let mut params = params.clone();
            if constrained {
                params["prompt"] = format!("{prompt} Now list them as JSON.").into();
                params["response_format"] = long_json_schema();
            }
            let job = Job::new(
                &format!("bench-{run}-{constrained}"),
                rbee_plugin_llm::TASK,
                &params.to_string(),
            );
            let end = worker
                .execute(job, RecordingSink::new().sink())
                .expect("the benchmark job failed");
            let mut details = details(&end);
            if pairs {
                details["constrained"] = constrained.into();
            }
            println!("{details}");
        }
    }
}

/// A schema whose shortest valid answer (20 records) is longer than the token budget, so the
/// constrained job decodes as many tokens as the unconstrained one.
fn long_json_schema() -> Value {
    let record = json!({"type": "object", "properties": {
        "animal": {"type": "string", "maxLength": 24},
        "legs": {"type": "integer", "minimum": 0, "maximum": 100},
        "colour": {"enum": ["brown", "white", "black", "red", "grey"]}},
        "required": ["animal", "legs", "colour"], "additionalProperties": false});
    json!({"type": "json_schema", "json_schema": {"name": "animals", "schema": {
        "type": "object", "properties": {"animals": {"type": "array", "items": record, "minItems": 20}},
        "required": ["animals"], "additionalProperties": false}}})
}
