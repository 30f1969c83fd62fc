//! A minute (`RBEE_SOAK_SECS` sets another length; `cargo xtask load --soak 600` runs ten) of
//! chat jobs from four clients on the real LLM, one in five cancelled after its first token:
//! every job ends with exactly one terminal event, and the host's memory does not grow once warm:
//! its peak in the last third of the run is within 16 MiB of its peak in the middle third. The key/value
//! pool is 2,048 tokens, which the prefix cache fills during the warm-up: the pool is meant to
//! hold finished sequences up to its size (by default up to a quarter of the memory).

use rbee_tests::{Host, soak::soak};
use std::time::Duration;

#[test]
fn the_llm_host_does_not_grow_under_a_steady_mix_of_chats() {
    let seconds: u64 = std::env::var("RBEE_SOAK_SECS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(60);
    let host = Host::start_llm(&["--plugin-options", r#"{"kv_cache_tokens": 2048}"#]);
    let every = Duration::from_secs(seconds.div_ceil(30).max(2));
    let report = soak(&host, 4, Duration::from_secs(seconds), every);
    println!("{report}");
    assert_eq!(report.broken, 0, "{report}");
    assert!(report.jobs > 8, "{report}");
    assert!(report.late_growth_mib() <= 16.0, "memory grew: {report}");
}
