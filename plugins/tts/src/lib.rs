//! `tts-<backend>`: speaks text with candle's Parler-TTS, serving the standard `text-to-speech`
//! task (and so the host's `/v1/audio/speech`).
//!
//! Built once per backend (`--features cpu|cuda|metal`). A model is a Hugging Face layout
//! directory or hub repository in Parler-TTS's layout (`config.json` with its `text_encoder`,
//! `decoder` and `audio_encoder` sections, `model.safetensors`, and the T5 `tokenizer.json`),
//! such as `parler-tts/parler-tts-mini-v1`.
//!
//! The voice is a description in words (the job's `instructions`, or one written for its
//! `voice`: OpenAI's names map to the model's named speakers). The input is cut into sentences,
//! and each is spoken and sent as one `artifact` event of 16-bit PCM as soon as it is ready,
//! resampled to the asked rate and speed. Load options (`--plugin-options`):
//! `{"max_seconds_per_sentence": S}`.

mod model;
mod options;
mod params;
mod resample;
mod sentences;
#[cfg(any(test, feature = "test-support"))]
pub mod tiny;
mod voices;
mod worker;

#[cfg(test)]
mod tests;

use options::LoadOptions;
use rbee_plugin_api::{
    HostApiRef, LoadRequest, LogLevel, Manifest, PluginError, export_plugin, tasks,
};
use std::path::Path;
use worker::SpeechWorker;

pub use rbee_candle_device::BACKEND;

/// The model loaded when the host names none.
pub const DEFAULT_MODEL: &str = "parler-tts/parler-tts-mini-v1";

/// The plugin's manifest.
pub fn manifest() -> Manifest {
    Manifest::new(
        "tts",
        BACKEND,
        env!("CARGO_PKG_VERSION"),
        &[tasks::text_to_speech::TASK],
    )
    .description("Text to speech with Parler-TTS (T5 + audio-token decoder + DAC codec, candle)")
    .params_schema(params::schema())
    .default_model(DEFAULT_MODEL)
}

/// Loads the text-to-speech model the host asks for.
pub fn load(request: LoadRequest, host: HostApiRef) -> Result<SpeechWorker, PluginError> {
    let options = LoadOptions::parse(&request.options_json)?;
    let device =
        rbee_candle_device::open("tts", &request.device).map_err(rbee_plugin_kit::error::device)?;
    let model = match request.model.as_str() {
        "" => DEFAULT_MODEL,
        model => model,
    };
    let progress = |fraction: f32, message: &str| host.load_progress(fraction, message.into());
    let files = rbee_hub::repository::safetensors_model(
        model,
        "a Parler-TTS model",
        Path::new(host.cache_dir().as_str()),
        &progress,
    )?;
    let parler = model::Parler::load(&files, &device, options.max_seconds(), &progress)?;
    let message = format!(
        "loaded {model} ({} Hz) on {}",
        parler.sample_rate(),
        request.device.kind
    );
    host.log(
        LogLevel::Info,
        module_path!().into(),
        message.as_str().into(),
    );
    Ok(SpeechWorker::new(model.to_string(), parler))
}

export_plugin!(manifest: manifest, load: load);
