//! The compression ratio Whisper uses to spot repetitive (hallucinated) text: the text's UTF-8
//! length over its zlib-compressed length.

use flate2::{Compression, write::ZlibEncoder};
use std::io::Write;

/// `len(text) / len(zlib(text))` in bytes, at zlib's default level as OpenAI Whisper computes
/// it; 0 for empty text.
pub fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(text.as_bytes())
        .and_then(|()| encoder.finish())
        .map(|compressed| text.len() as f64 / compressed.len() as f64)
        .expect("compressing into memory does not fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_compresses_far_better_than_a_sentence() {
        let sentence = compression_ratio("The quick brown fox jumps over the lazy dog.");
        assert!((0.5..1.5).contains(&sentence), "{sentence}");
        let looping = compression_ratio(&"I'm not sure. ".repeat(20));
        assert!(looping > 2.4, "{looping}");
        assert_eq!(compression_ratio(""), 0.0);
    }
}
