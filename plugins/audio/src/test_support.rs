//! The test model, the speech clips `cargo xtask models` provisions, and helpers that run
//! `transcription` jobs into a [`RecordingSink`].

use crate::{AudioWorker, load};
use rbee_plugin_api::{
    Job, JobEnd, LoadRequest, PluginError, PluginWorker,
    tasks::transcription::{SEGMENT, TASK, param},
    testing::{RecordingSink, TestHost},
};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

/// The test model's directory under the models dir: Whisper tiny.en, CTranslate2, f16.
pub const TEST_MODEL_DIR: &str = "whisper-tiny.en-ct2";

/// `$RBEE_MODELS_DIR` or `~/.cache/rbee/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("RBEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/rbee/models")
        })
}

/// Where a provisioned file must be; panics with instructions when it is missing, so model
/// tests fail rather than skip.
pub fn provisioned(relative: &str) -> PathBuf {
    let path = models_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models` to provision it",
        path.display()
    );
    path
}

/// A clip's wav bytes and its reference transcript (`speech/<name>.wav` and `.txt`).
pub fn clip(name: &str) -> (Vec<u8>, String) {
    let wav = std::fs::read(provisioned(&format!("speech/{name}.wav"))).unwrap();
    let text = std::fs::read_to_string(provisioned(&format!("speech/{name}.txt"))).unwrap();
    (wav, text)
}

/// A clip's bytes, as the `audio` input.
pub fn clip_audio(name: &str) -> Vec<u8> {
    clip(name).0
}

/// Lower case, punctuation dropped, whitespace collapsed: transcripts compare on words.
pub fn normalise(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The worker with the test model, loaded once for all tests (jobs run one at a time).
pub fn worker() -> &'static AudioWorker {
    static WORKER: OnceLock<AudioWorker> = OnceLock::new();
    WORKER.get_or_init(|| {
        let dir = provisioned(TEST_MODEL_DIR);
        load(
            LoadRequest::cpu(&dir.to_string_lossy()),
            TestHost::default().api(),
        )
        .unwrap()
    })
}

/// Writes a tiny multilingual Whisper (random encoder, Hugging Face layout, the test model's
/// tokenizer) whose decoder rates `language` highest of all language tokens and then ends the
/// text at once: its final layer norm outputs a constant vector that only the embeddings of
/// `<|language|>` and `<|endoftext|>` point along.
pub fn write_multilingual_model(dir: &Path, language: &str) {
    use candle_core::{DType, Device, Tensor};
    let config = candle_transformers::models::whisper::Config {
        num_mel_bins: 80,
        max_source_positions: 1500,
        d_model: 64,
        encoder_attention_heads: 2,
        encoder_layers: 1,
        vocab_size: 51865,
        max_target_positions: 448,
        decoder_attention_heads: 2,
        decoder_layers: 1,
        suppress_tokens: vec![],
    };
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    candle_transformers::models::whisper::model::Whisper::load(&vb, config.clone()).unwrap();
    let mut tensors: std::collections::HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    let tokenizer_path = provisioned(TEST_MODEL_DIR).join("tokenizer.json");
    let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path).unwrap();
    let id = |token: &str| tokenizer.token_to_id(token).unwrap() as usize;
    let d = config.d_model;
    let mut embeddings = vec![0f32; config.vocab_size * d];
    embeddings[id(&format!("<|{language}|>")) * d..][..d].fill(1.0);
    embeddings[id("<|endoftext|>") * d..][..d].fill(0.5);
    let set = |tensors: &mut std::collections::HashMap<String, Tensor>,
               name: &str,
               data: Vec<f32>,
               shape: &[usize]| {
        tensors.insert(
            name.into(),
            Tensor::from_vec(data, shape, &Device::Cpu).unwrap(),
        );
    };
    set(
        &mut tensors,
        "model.decoder.embed_tokens.weight",
        embeddings,
        &[config.vocab_size, d],
    );
    set(
        &mut tensors,
        "model.decoder.layer_norm.weight",
        vec![0.0; d],
        &[d],
    );
    set(
        &mut tensors,
        "model.decoder.layer_norm.bias",
        vec![1.0; d],
        &[d],
    );
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let hf_config = serde_json::json!({
        "num_mel_bins": config.num_mel_bins, "max_source_positions": config.max_source_positions,
        "d_model": d, "encoder_attention_heads": 2, "encoder_layers": 1,
        "vocab_size": config.vocab_size, "max_target_positions": config.max_target_positions,
        "decoder_attention_heads": 2, "decoder_layers": 1,
    });
    std::fs::write(dir.join("config.json"), hf_config.to_string()).unwrap();
    std::fs::copy(tokenizer_path, dir.join("tokenizer.json")).unwrap();
}

/// Lays out `repo` (`org/name`) in the Hugging Face cache at `cache` with `main` pointing at
/// one snapshot; returns the snapshot dir, where the caller puts the files.
pub fn hub_snapshot(cache: &Path, repo: &str) -> PathBuf {
    let dir = cache.join(format!("models--{}", repo.replace('/', "--")));
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    std::fs::write(dir.join("refs/main"), "0123abcd").unwrap();
    let snapshot = dir.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    snapshot
}

/// Writes the test model into `dir` in Hugging Face layout (config.json, model.safetensors,
/// tokenizer.json), converted from the provisioned CTranslate2 copy.
pub fn write_hugging_face_layout(dir: &Path) {
    let ct2_dir = provisioned(TEST_MODEL_DIR);
    let (tensors, config) = crate::ct2::load(
        &ct2_dir.join("model.bin"),
        &candle_core::Device::Cpu,
        vec![],
    )
    .unwrap();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let ct2_config: Value =
        serde_json::from_str(&std::fs::read_to_string(ct2_dir.join("config.json")).unwrap())
            .unwrap();
    let hf_config = serde_json::json!({
        "num_mel_bins": config.num_mel_bins, "max_source_positions": config.max_source_positions,
        "d_model": config.d_model, "encoder_attention_heads": config.encoder_attention_heads,
        "encoder_layers": config.encoder_layers, "vocab_size": config.vocab_size,
        "max_target_positions": config.max_target_positions,
        "decoder_attention_heads": config.decoder_attention_heads, "decoder_layers": config.decoder_layers,
        "suppress_tokens": ct2_config["suppress_ids"], "begin_suppress_tokens": ct2_config["suppress_ids_begin"],
    });
    std::fs::write(dir.join("config.json"), hf_config.to_string()).unwrap();
    std::fs::copy(ct2_dir.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
}

/// A `transcription` job with `params` and `audio` as its input.
pub fn job(audio: &[u8], params: Value) -> Job {
    Job::new("test", TASK, &params.to_string()).with_input(param::AUDIO, audio)
}

/// Runs a `transcription` job of `audio` with `params` on `worker`.
pub fn run_on(
    worker: &AudioWorker,
    audio: &[u8],
    params: Value,
    sink: &RecordingSink,
) -> Result<JobEnd, PluginError> {
    worker.execute(job(audio, params), sink.sink())
}

/// Runs a `transcription` job of `audio` with `params` on the test worker.
pub fn run(audio: &[u8], params: Value, sink: &RecordingSink) -> Result<JobEnd, PluginError> {
    run_on(worker(), audio, params, sink)
}

/// The `details_json` of a job end, parsed.
pub fn details(end: &JobEnd) -> Value {
    serde_json::from_str(&end.details_json).unwrap()
}

/// The data of every segment event `sink` received, parsed.
pub fn segments(sink: &RecordingSink) -> Vec<Value> {
    sink.custom(SEGMENT)
        .iter()
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

/// The largest absolute difference between two tensors of the same shape.
pub fn largest_difference(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar())
        .expect("tensors of one shape")
}

/// The audio features of the first 30 s window of `samples` (16 kHz), padded with silence.
#[cfg(test)]
pub(crate) fn first_window_features(
    loaded: &mut crate::model::LoadedModel,
    samples: &[f32],
) -> candle_core::Tensor {
    let config = &loaded.config;
    let mut samples = samples.to_vec();
    samples.resize(30 * 16_000, 0.0);
    let mel = crate::mel::log_mel(config, &samples, &loaded.filters);
    let frames = mel.len() / config.num_mel_bins;
    let shape = (1, config.num_mel_bins, frames);
    let mel = candle_core::Tensor::from_vec(mel, shape, &candle_core::Device::Cpu).unwrap();
    loaded
        .encoder
        .forward(&mel.narrow(2, 0, 3000).unwrap())
        .unwrap()
}

/// A clip's samples at 16 kHz.
#[cfg(test)]
pub(crate) fn clip_samples(name: &str) -> Vec<f32> {
    let pcm = crate::audio::decode(clip_audio(name), 60.0).unwrap();
    crate::audio::to_16k(pcm).unwrap()
}
