//! GGUF files as the llm plugin opens them: candle's reader of the header, the metadata and
//! the tensor infos, then the metadata the plugin looks up.
#![no_main]

use candle_core::quantized::gguf_file::Content;
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|file: &[u8]| {
    // candle 0.11.1 divides by a `general.alignment` of 0 (a panic, which the plugin API turns
    // into a failed load): files that set it are left out, or the target finds nothing else.
    if file.windows(17).any(|key| key == b"general.alignment") {
        return;
    }
    let Ok(content) = Content::read(&mut Cursor::new(file)) else {
        return;
    };
    if let Some(architecture) = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
    {
        let _ = content
            .metadata
            .get(&format!("{architecture}.context_length"))
            .and_then(|v| v.to_u32().ok());
    }
});
