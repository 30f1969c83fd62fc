//! Audio uploads: `plugins/audio/src/audio.rs` itself (symphonia's wav, flac, mp3 and
//! ogg/vorbis decoders, the down-mix, the resampling to 16 kHz), compiled here apart from the
//! plugin, whose other modules need candle: its error type is stood in for below.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Stands in for the plugin's `AudioError`, whose other variants wrap candle's errors.
mod error {
    /// What `audio.rs` returns.
    #[derive(Debug)]
    pub enum AudioError {
        /// An upload refused with a message.
        InvalidParam,
        /// Resampling failed.
        Resample(#[allow(dead_code)] String),
    }

    impl AudioError {
        /// An upload refused on `field`.
        pub fn invalid_param(_field: &str, _message: impl std::fmt::Display) -> Self {
            Self::InvalidParam
        }
    }
}

#[allow(dead_code)]
#[path = "../../../plugins/audio/src/audio.rs"]
mod audio;

/// The longest audio decoded: the plugin's limit (3600 s) makes no other code run, only slower.
const MAX_SECONDS: f64 = 60.0;

/// Lets panics raised in symphonia unwind to the `catch_unwind` in `audio::decode`, which
/// refuses the file; any other panic aborts as libFuzzer's hook has it (a crash).
fn pass_symphonia_panics() {
    let crash = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |panic| {
        if !panic
            .location()
            .is_some_and(|at| at.file().contains("/symphonia"))
        {
            crash(panic);
        }
    }));
}

fuzz_target!(init: pass_symphonia_panics(), |file: &[u8]| {
    if let Ok(pcm) = audio::decode(file.to_vec(), MAX_SECONDS) {
        let _ = audio::to_16k(pcm);
    }
});
