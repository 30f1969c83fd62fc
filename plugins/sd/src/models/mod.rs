//! Loading a checkpoint's components onto a device, with errors that name the file at fault.

pub mod clip;
pub mod text_time;
pub mod unet;
pub mod vae;
mod weights;

use crate::{
    config::{LoadOptions, UnetConfig, presets, versions::Version},
    schedulers::{ScheduleConfig, SchedulerKind},
    source::Source,
    tokenizer::{ClipTokenizer, TokenizerFiles},
};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use clip::{ClipConfig, ClipOutput, ClipTextModel};
use rbee_plugin_api::{HostApiRef, PluginError};
use rbee_plugin_kit::error::model_load;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use unet::Unet;
use vae::{Vae, VaeConfig};
use weights::WeightFile;

/// A text encoder with its tokenizer.
pub struct TextEncoder {
    /// The CLIP transformer.
    pub model: ClipTextModel,
    /// Its tokenizer.
    pub tokenizer: ClipTokenizer,
    /// Which hidden states feed the UNet.
    pub output: ClipOutput,
}

/// Everything a loaded checkpoint holds.
pub struct Models {
    /// The model's name or path.
    pub name: String,
    /// The SD version.
    pub version: Version,
    /// The device everything runs on.
    pub device: Device,
    /// The dtype of the UNet and text encoders (the VAE runs in f32).
    pub dtype: DType,
    /// The denoiser.
    pub unet: Unet,
    /// Its configuration.
    pub unet_config: UnetConfig,
    /// The VAE.
    pub vae: Vae,
    /// Its configuration.
    pub vae_config: VaeConfig,
    /// One text encoder, two for XL; their outputs are concatenated. When the UNet takes
    /// SDXL's added conditioning, the last one has a text projection for the pooled output.
    pub encoders: Vec<TextEncoder>,
    /// Whether an empty negative prompt means zero embeddings (text and pooled) instead of the
    /// encoding of "" (SDXL pipelines' `force_zeros_for_empty_prompt`, default true).
    pub zero_empty_negative: bool,
    /// The noise schedule the model was trained with.
    pub schedule: ScheduleConfig,
    /// The checkpoint's scheduler.
    pub default_scheduler: SchedulerKind,
    /// VAE decode tile size in latent cells (0 = never tile).
    pub vae_tile: usize,
    /// Bytes of weights held.
    pub memory_bytes: u64,
}

/// Reads `file` as JSON, or takes `preset` when the checkpoint has no such file.
fn config<T: DeserializeOwned>(
    source: &Source,
    file: &str,
    preset: Option<serde_json::Value>,
) -> Result<T, PluginError> {
    let value = match (source.get(file, 0.0)?, preset) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| model_load(format!("cannot read {}: {e}", path.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| model_load(format!("{}: {e}", path.display())))?
        }
        (None, Some(preset)) => preset,
        (None, None) => {
            return Err(model_load(format!(
                "the checkpoint {} has no {file}{}",
                source.name(),
                source.offline_hint()
            )));
        }
    };
    serde_json::from_value(value).map_err(|e| model_load(format!("{file}: {e}")))
}

/// The first of `names` in `folder` that the checkpoint has.
fn weights(
    source: &Source,
    folder: &str,
    names: &[&str],
    fraction: f32,
) -> Result<PathBuf, PluginError> {
    for name in names {
        if let Some(path) = source.get(&format!("{folder}/{name}"), fraction)? {
            return Ok(path);
        }
    }
    let tried: Vec<String> = names
        .iter()
        .map(|name| format!("{folder}/{name}"))
        .collect();
    Err(model_load(format!(
        "no weights for {folder}: none of {} exists{}",
        tried.join(", "),
        source.offline_hint()
    )))
}

/// Opens a safetensors file; errors name it.
fn open(path: &Path) -> Result<WeightFile, PluginError> {
    WeightFile::open(path)
        .map_err(|e| model_load(format!("{}: {}", path.display(), crate::candle_message(&e))))
}

/// Builds a component from one safetensors file, read tensor by tensor (see `weights.rs`);
/// errors name the file and the tensor.
fn build<T>(
    file: WeightFile,
    path: &Path,
    dtype: DType,
    device: &Device,
    f: impl FnOnce(VarBuilder) -> candle_core::Result<T>,
) -> Result<T, PluginError> {
    let vb = VarBuilder::from_backend(Box::new(file), dtype, device.clone());
    f(vb).map_err(|e| model_load(format!("{}: {}", path.display(), crate::candle_message(&e))))
}

fn tokenizer(source: &Source, folder: &str, length: usize) -> Result<ClipTokenizer, PluginError> {
    let files = match source.get(&format!("{folder}/tokenizer.json"), 0.0)? {
        Some(json) => TokenizerFiles::Json(json),
        None => {
            let vocab = source.get(&format!("{folder}/vocab.json"), 0.0)?;
            let merges = source.get(&format!("{folder}/merges.txt"), 0.0)?;
            match (vocab, merges) {
                (Some(vocab), Some(merges)) => TokenizerFiles::VocabMerges { vocab, merges },
                _ => {
                    return Err(model_load(format!(
                        "{folder}: neither tokenizer.json nor vocab.json + merges.txt exist"
                    )));
                }
            }
        }
    };
    let special: Option<serde_json::Value> = config(
        source,
        &format!("{folder}/special_tokens_map.json"),
        Some(serde_json::json!({})),
    )?;
    let pad = special.as_ref().and_then(|map| match map.get("pad_token") {
        Some(serde_json::Value::String(token)) => Some(token.clone()),
        Some(object) => object
            .get("content")
            .and_then(|c| c.as_str())
            .map(str::to_string),
        None => None,
    });
    ClipTokenizer::load(&files, pad.as_deref(), length)
        .map_err(|e| model_load(format!("{folder}: {e}")))
}

/// Loads the checkpoint in `source` onto `device`.
pub fn load(
    source: &Source,
    options: &LoadOptions,
    device: Device,
    host: &HostApiRef,
) -> Result<Models, PluginError> {
    let progress = |fraction: f32, message: &str| host.load_progress(fraction, message.into());
    let name = source.name();
    let preset_version = options.version;
    let unet_config: UnetConfig = config(
        source,
        "unet/config.json",
        preset_version.map(presets::unet),
    )?;
    let has_second = source.get("text_encoder_2/config.json", 0.0)?.is_some();
    let version = options
        .version
        .unwrap_or_else(|| Version::detect(&name, has_second, unet_config.cross_attention_dim));
    let vae_config: VaeConfig = config(source, "vae/config.json", Some(presets::vae(version)))?;
    let schedule: ScheduleConfig = config(
        source,
        "scheduler/scheduler_config.json",
        Some(presets::scheduler(version)),
    )?;
    let default_scheduler = SchedulerKind::from_class_name(&schedule.class_name);
    let text_time = unet_config
        .text_time()
        .map_err(|e| model_load(format!("unet/config.json: {e}")))?;
    let pipeline: serde_json::Value =
        config(source, "model_index.json", Some(serde_json::json!({})))?;
    let zero_empty_negative = version.is_xl()
        && pipeline["force_zeros_for_empty_prompt"]
            .as_bool()
            .unwrap_or(true);
    let dtype = if device.is_cpu() {
        DType::F32
    } else {
        DType::F16
    };
    let (unet_files, encoder_files): (&[&str], &[&str]) = if dtype == DType::F16 {
        (
            &[
                "diffusion_pytorch_model.fp16.safetensors",
                "diffusion_pytorch_model.safetensors",
            ],
            &["model.fp16.safetensors", "model.safetensors"],
        )
    } else {
        (
            &[
                "diffusion_pytorch_model.safetensors",
                "diffusion_pytorch_model.fp16.safetensors",
            ],
            &["model.safetensors", "model.fp16.safetensors"],
        )
    };
    let mut memory_bytes = 0;

    let mut encoders = Vec::new();
    let encoder_folders: &[(&str, &str)] = if version.is_xl() {
        &[
            ("text_encoder", "tokenizer"),
            ("text_encoder_2", "tokenizer_2"),
        ]
    } else {
        &[("text_encoder", "tokenizer")]
    };
    for (i, (folder, tokenizer_folder)) in encoder_folders.iter().enumerate() {
        progress(0.05 + 0.1 * i as f32, &format!("loading {folder}"));
        let preset = match i {
            0 => presets::text_encoder(version),
            _ => presets::text_encoder_2(),
        };
        let clip_config: ClipConfig =
            config(source, &format!("{folder}/config.json"), Some(preset))?;
        let projection = match text_time {
            Some(text_time) if i + 1 == encoder_folders.len() => Some(text_time.pooled_dim),
            _ => None,
        };
        match (projection, clip_config.projection_dim) {
            (Some(pooled), Some(stated)) if pooled != stated => {
                return Err(model_load(format!(
                    "{folder}/config.json: projection_dim is {stated} but the unet's add_embedding takes a pooled text embedding of {pooled}"
                )));
            }
            _ => {}
        }
        let path = weights(source, folder, encoder_files, 0.05 + 0.1 * i as f32)?;
        let file = open(&path)?;
        memory_bytes += file.bytes_in(dtype);
        let model = build(file, &path, dtype, &device, |vb| {
            ClipTextModel::new(&clip_config, projection, vb)
        })?;
        let output = if version.is_xl() {
            ClipOutput::Penultimate
        } else {
            ClipOutput::Last
        };
        let tokenizer = tokenizer(
            source,
            tokenizer_folder,
            clip_config.max_position_embeddings,
        )?;
        encoders.push(TextEncoder {
            model,
            tokenizer,
            output,
        });
    }

    progress(0.3, "loading vae");
    let vae_files = [
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors",
    ];
    let vae_path = weights(source, "vae", &vae_files, 0.3)?;
    let file = open(&vae_path)?;
    memory_bytes += file.bytes_in(DType::F32);
    let vae = build(file, &vae_path, DType::F32, &device, |vb| {
        Vae::new(&vae_config, vb)
    })?;

    progress(0.4, "loading unet");
    let unet_path = weights(source, "unet", unet_files, 0.4)?;
    let file = open(&unet_path)?;
    memory_bytes += file.bytes_in(dtype);
    unet_config
        .to_candle()
        .map_err(|e| model_load(format!("unet/config.json: {e}")))?;
    let unet = build(file, &unet_path, dtype, &device, |vb| {
        Unet::new(vb, &unet_config).map_err(candle_core::Error::msg)
    })?;
    progress(1.0, "loaded");
    Ok(Models {
        name,
        version,
        device,
        dtype,
        unet,
        unet_config,
        vae,
        vae_config,
        encoders,
        zero_empty_negative,
        schedule,
        default_scheduler,
        vae_tile: options.vae_tile.unwrap_or(64),
        memory_bytes,
    })
}
