//! Loading a Whisper model directory — Hugging Face (`config.json` + `model.safetensors`) or
//! CTranslate2 (`model.bin` + `config.json`), both with `tokenizer.json` — into candle's audio
//! encoder and the plugin's own text decoder (with key/value caches), sharing one set of weights.

use crate::{ct2, decoder::Decoder, encoder::Encoder, error::AudioError, mel};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::Config;
use serde_json::Value;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};
use tokenizers::Tokenizer;

/// Whisper's language codes, in the order of its language tokens.
pub const LANGUAGES: [&str; 100] = [
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

/// The ids of the tokens that steer decoding.
#[derive(Debug, Clone)]
pub struct SpecialTokens {
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// `<|endoftext|>`; every id below it is text.
    pub eot: u32,
    /// `<|transcribe|>`.
    pub transcribe: u32,
    /// `<|translate|>`.
    pub translate: u32,
    /// `<|startofprev|>`, which opens a prompt.
    pub start_of_prev: u32,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// `<|nospeech|>` (or `<|nocaptions|>` in older vocabularies).
    pub no_speech: u32,
    /// `<|0.00|>`; timestamps go up from it in steps of 20 ms.
    pub timestamp_begin: u32,
    /// Each language code the vocabulary has, with its token.
    pub languages: Vec<(&'static str, u32)>,
    /// Tokens never sampled at the start of a window (the blank and end of text).
    pub begin_suppress: Vec<u32>,
}

/// A loaded model with everything a job needs.
pub struct LoadedModel {
    /// The audio encoder.
    pub encoder: Encoder,
    /// The text decoder, with key/value caches.
    pub decoder: Decoder,
    /// The model's configuration.
    pub config: Config,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Special token ids.
    pub tokens: SpecialTokens,
    /// The mel filter bank for the model's number of mel bins.
    pub filters: Vec<f32>,
    /// Whether the model knows several languages (else it is English-only, like `tiny.en`).
    pub multilingual: bool,
    /// Bytes of weights held.
    pub memory_bytes: u64,
    /// The device the weights live on.
    pub device: Device,
}

/// Loads the model in `path` (a directory, or a file inside one) onto `device`.
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel, AudioError> {
    let dir = if path.is_file() {
        path.parent().unwrap_or(path).to_path_buf()
    } else {
        path.to_path_buf()
    };
    let fail = |reason: &str| AudioError::model_load(&dir, reason);
    if !dir.is_dir() {
        return Err(fail("no such directory"));
    }
    let config_json = read_json(&dir.join("config.json"))?;
    let (tensors, config) = if dir.join("model.bin").is_file() {
        let suppress = ids(&config_json["suppress_ids"]);
        ct2::load(&dir.join("model.bin"), device, suppress)?
    } else if dir.join("model.safetensors").is_file() {
        let weights = dir.join("model.safetensors");
        let tensors = candle_core::safetensors::load(&weights, device)
            .map_err(|e| AudioError::model_load(&weights, e))?;
        let config: Config = serde_json::from_value(config_json.clone())
            .map_err(|e| AudioError::model_load(dir.join("config.json"), e))?;
        (tensors, config)
    } else {
        return Err(fail(
            "expected model.safetensors (Hugging Face) or model.bin (CTranslate2) beside config.json",
        ));
    };
    let memory_bytes = tensors.values().map(|t| t.elem_count() as u64 * 4).sum();
    let (encoder, decoder) = build(tensors, &config, device).map_err(|e| fail(&e.to_string()))?;
    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer = Tokenizer::from_file(&tokenizer_path)
        .map_err(|e| AudioError::model_load(&tokenizer_path, e))?;
    let begin_suppress = ids(&config_json["suppress_ids_begin"])
        .into_iter()
        .chain(ids(&config_json["begin_suppress_tokens"]))
        .collect();
    let tokens = special_tokens(&tokenizer, begin_suppress).map_err(|e| fail(&e))?;
    Ok(LoadedModel {
        filters: mel::filter_bank(config.num_mel_bins),
        multilingual: config.vocab_size >= 51865,
        encoder,
        decoder,
        config,
        tokenizer,
        tokens,
        memory_bytes,
        device: device.clone(),
    })
}

/// Builds the encoder and the decoder from Hugging Face-named tensors.
fn build(
    tensors: HashMap<String, Tensor>,
    config: &Config,
    device: &Device,
) -> candle_core::Result<(Encoder, Decoder)> {
    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
    let decoder = Decoder::load(vb.pp("model.decoder"), config)?;
    Ok((Encoder::load(&vb, config)?, decoder))
}

fn read_json(path: &PathBuf) -> Result<Value, AudioError> {
    let text = std::fs::read_to_string(path).map_err(|e| AudioError::model_load(path, e))?;
    serde_json::from_str(&text).map_err(|e| AudioError::model_load(path, e))
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect()
        })
        .unwrap_or_default()
}

fn special_tokens(
    tokenizer: &Tokenizer,
    begin_suppress: Vec<u32>,
) -> Result<SpecialTokens, String> {
    let id = |token: &str| {
        tokenizer
            .token_to_id(token)
            .ok_or_else(|| format!("the tokenizer has no {token} token"))
    };
    let no_timestamps = id("<|notimestamps|>")?;
    Ok(SpecialTokens {
        sot: id("<|startoftranscript|>")?,
        eot: id("<|endoftext|>")?,
        transcribe: id("<|transcribe|>")?,
        translate: id("<|translate|>")?,
        start_of_prev: id("<|startofprev|>")?,
        no_speech: id("<|nospeech|>").or_else(|_| id("<|nocaptions|>"))?,
        timestamp_begin: id("<|0.00|>").unwrap_or(no_timestamps + 1),
        no_timestamps,
        languages: LANGUAGES
            .iter()
            .filter_map(|&code| Some((code, tokenizer.token_to_id(&format!("<|{code}|>"))?)))
            .collect(),
        begin_suppress,
    })
}
