//! The multipart forms of `/v1/audio/transcriptions`, `/v1/audio/translations` and
//! `/v1/images/edits`: the body as the host reads it (axum's extractor, then each route's
//! fields), delimited by `rbee_host::server::untrusted::BOUNDARY`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbee_host::server::untrusted;
use std::sync::LazyLock;
use tokio::runtime::{Builder, Runtime};

static RUNTIME: LazyLock<Runtime> =
    LazyLock::new(|| Builder::new_current_thread().build().expect("a runtime"));

fuzz_target!(|body: &[u8]| {
    RUNTIME.block_on(untrusted::read_forms(body));
});
