//! Tiny Stable Diffusion checkpoints with random weights, written to disk in the diffusers
//! layout, for tests here and in other crates (`test-support` feature), and timings of one
//! denoising step and of one VAE decode of a real architecture with random weights, for
//! benchmarks.
//!
//! The tiny checkpoint loads through the same code path as a real one; only the configs
//! differ. A 64x64 image takes a few milliseconds per step.

use crate::{
    config::{UnetConfig, presets, versions::Version},
    models::{clip::ClipConfig, clip::ClipTextModel, unet::Unet, vae::Vae, vae::VaeConfig},
};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::{Init, VarBuilder, VarMap, var_builder::SimpleBackend};
use serde_json::{Value, json};
use std::{fs, path::Path, time::Instant};

/// Merges of the tiny tokenizer (besides single bytes, so prompts tokenize differently).
const MERGES: [(&str, &str); 6] = [
    ("t", "h"),
    ("th", "e</w>"),
    ("a", "n"),
    ("an", "d</w>"),
    ("c", "a"),
    ("ca", "t</w>"),
];

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn write_json(dir: &Path, file: &str, value: &Value) -> std::io::Result<()> {
    let path = dir.join(file);
    fs::create_dir_all(path.parent().expect("a file inside the checkpoint"))?;
    fs::write(path, serde_json::to_string_pretty(value).map_err(io_error)?)
}

/// GPT-2's map from bytes to printable characters, which byte-level BPE vocabularies use.
fn byte_chars() -> Vec<char> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut next = 256;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("a Latin-1 code point")
            } else {
                next += 1;
                char::from_u32(next - 1).expect("a code point below 512")
            }
        })
        .collect()
}

/// Writes the tiny tokenizer into `folder`, padding with `pad`; returns its vocabulary size.
fn write_tokenizer(dir: &Path, folder: &str, pad: &str) -> std::io::Result<usize> {
    let chars = byte_chars();
    let mut tokens: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    tokens.extend(chars.iter().map(|c| format!("{c}</w>")));
    tokens.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.extend(["<|startoftext|>".to_string(), "<|endoftext|>".to_string()]);
    let vocab: serde_json::Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    write_json(dir, &format!("{folder}/vocab.json"), &Value::Object(vocab))?;
    let merges: String = MERGES.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    fs::write(
        dir.join(folder).join("merges.txt"),
        format!("#version: 0.2\n{merges}"),
    )?;
    write_json(
        dir,
        &format!("{folder}/special_tokens_map.json"),
        &json!({"pad_token": pad}),
    )?;
    Ok(tokens.len())
}

/// Gives every variable of `varmap` seeded values: weights scaled by their fan-in, norm scales
/// near 1, small biases. Names are visited in order so the result depends only on `seed`.
fn seed_weights(varmap: &VarMap, seed: u64) -> candle_core::Result<()> {
    let data = varmap
        .data()
        .lock()
        .expect("the var map lock is not poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut noise = crate::noise::Noise::new(seed);
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let values = noise.gaussian(&dims, &Device::Cpu)?;
        let values = match (dims.len(), name.ends_with("bias")) {
            (1, true) => (values * 0.02)?,
            (1, false) => ((values * 0.1)? + 1.0)?,
            _ => (values / (dims[1..].iter().product::<usize>() as f64).sqrt())?,
        };
        var.set(&values)?;
    }
    Ok(())
}

/// Builds a model with `build` on a fresh var map, seeds its weights and saves them to `file`.
pub(crate) fn write_weights(
    dir: &Path,
    file: &str,
    seed: u64,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<()>,
) -> std::io::Result<()> {
    let varmap = VarMap::new();
    build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).map_err(io_error)?;
    seed_weights(&varmap, seed).map_err(io_error)?;
    let path = dir.join(file);
    fs::create_dir_all(path.parent().expect("a file inside the checkpoint"))?;
    varmap.save(&path).map_err(io_error)
}

/// Which tiny checkpoint to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinyKind {
    /// SD 1.5 layout: one text encoder, a 4-channel UNet.
    Sd15,
    /// SDXL layout: two text encoders and tokenizers whose outputs are concatenated, the second
    /// with a text projection whose pooled output, with the time ids, feeds `add_embedding`.
    Xl,
    /// SD 1.5 layout with a 9-channel inpainting UNet (latents, mask, masked image latents).
    Inpainting,
}

/// Writes a tiny SD 1.5-layout checkpoint with random weights (always the same ones) into `dir`:
/// `unet/`, `vae/`, `text_encoder/`, `tokenizer/` (vocab.json + merges.txt) and `scheduler/`,
/// each with its `config.json`. Load it with `rbee-host --plugin sd-cpu --model <dir>`; it
/// serves 64x64 (its default size) up to 1024x1024 images.
#[doc(hidden)]
pub fn write_tiny_checkpoint(dir: &Path) -> std::io::Result<()> {
    write_tiny(dir, TinyKind::Sd15)
}

/// Writes a tiny checkpoint of `kind` into `dir` (see [`write_tiny_checkpoint`]).
#[doc(hidden)]
pub fn write_tiny(dir: &Path, kind: TinyKind) -> std::io::Result<()> {
    let clip = |vocab_size: usize| {
        json!({
            "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 77, "hidden_act": "quick_gelu"
        })
    };
    let mut unet = json!({
        "in_channels": if kind == TinyKind::Inpainting { 9 } else { 4 }, "out_channels": 4,
        "block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "layers_per_block": 1,
        "attention_head_dim": 2, "cross_attention_dim": if kind == TinyKind::Xl { 64 } else { 32 },
        "norm_num_groups": 8, "sample_size": 8
    });
    if kind == TinyKind::Xl {
        // A pooled embedding of 16 beside 6 time ids of 8.
        unet["addition_embed_type"] = json!("text_time");
        unet["addition_time_embed_dim"] = json!(8);
        unet["projection_class_embeddings_input_dim"] = json!(64);
    }
    let vae = json!({
        "block_out_channels": [8, 16, 16, 16], "layers_per_block": 1, "latent_channels": 4,
        "norm_num_groups": 4, "scaling_factor": 0.18215
    });
    write_checkpoint(dir, kind == TinyKind::Xl, &clip, unet, vae)
}

/// Writes a checkpoint of the real SD 1.5 architecture (its built-in configs) with random
/// weights into `dir`, about 4.3 GB, with the tiny tokenizer: for measuring a whole 512x512
/// image through the real loader and pipeline.
#[doc(hidden)]
pub fn write_sd15_random(dir: &Path) -> std::io::Result<()> {
    write_checkpoint(
        dir,
        false,
        &|_| presets::text_encoder(Version::V1_5),
        presets::unet(Version::V1_5),
        presets::vae(Version::V1_5),
    )
}

/// Writes a diffusers-layout checkpoint: configs, tokenizers, seeded weights. `clip` gives the
/// text encoder config for the tokenizer's vocabulary size.
fn write_checkpoint(
    dir: &Path,
    xl: bool,
    clip: &dyn Fn(usize) -> Value,
    unet: Value,
    vae: Value,
) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let pipeline = if xl {
        "StableDiffusionXLPipeline"
    } else {
        "StableDiffusionPipeline"
    };
    let index = if xl {
        json!({"_class_name": pipeline, "force_zeros_for_empty_prompt": true})
    } else {
        json!({"_class_name": pipeline})
    };
    write_json(dir, "model_index.json", &index)?;
    let clip = clip(write_tokenizer(dir, "tokenizer", "<|endoftext|>")?);
    write_json(dir, "unet/config.json", &unet)?;
    let unet: UnetConfig = serde_json::from_value(unet).map_err(io_error)?;
    let pooled_dim = unet
        .text_time()
        .map_err(io_error)?
        .map(|text_time| text_time.pooled_dim);
    write_json(dir, "vae/config.json", &vae)?;
    write_json(
        dir,
        "scheduler/scheduler_config.json",
        &presets::scheduler(Version::V1_5),
    )?;
    let encoders: &[(&str, u64)] = if xl {
        &[("text_encoder", 1), ("text_encoder_2", 4)]
    } else {
        &[("text_encoder", 1)]
    };
    for (i, &(folder, seed)) in encoders.iter().enumerate() {
        let projection = pooled_dim.filter(|_| i + 1 == encoders.len());
        let mut clip = clip.clone();
        if let Some(width) = projection {
            clip["projection_dim"] = json!(width);
        }
        write_json(dir, &format!("{folder}/config.json"), &clip)?;
        let config: ClipConfig = serde_json::from_value(clip).map_err(io_error)?;
        write_weights(dir, &format!("{folder}/model.safetensors"), seed, |vb| {
            ClipTextModel::new(&config, projection, vb).map(drop)
        })?;
    }
    if xl {
        write_tokenizer(dir, "tokenizer_2", "!")?;
    }
    let vae: VaeConfig = serde_json::from_value(vae).map_err(io_error)?;
    write_weights(dir, "vae/diffusion_pytorch_model.safetensors", 2, |vb| {
        Vae::new(&vae, vb).map(drop)
    })?;
    write_weights(dir, "unet/diffusion_pytorch_model.safetensors", 3, |vb| {
        Unet::new(vb, &unet)
            .map(drop)
            .map_err(candle_core::Error::msg)
    })
}

/// Random weights handed out as plain tensors. Weights from a `VarMap` would be `Var`s, and
/// candle records the backward graph of every op touching a `Var`: each activation of a pass
/// would stay alive until its output is dropped, as it never does with checkpoint weights.
struct RandomWeights;

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        shape: Shape,
        _name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        Ok(init.var(shape, dtype, device)?.as_detached_tensor())
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights need a shape: {name}")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// Times one UNet pass of SD 1.5 with random `dtype` weights on a batch of `batch` latents at
/// `width` x `height` on the CPU; returns the fastest of `runs` in milliseconds. The CPU
/// pipeline runs a guided step as two passes of batch 1.
#[doc(hidden)]
pub fn time_sd15_step(
    width: usize,
    height: usize,
    batch: usize,
    runs: usize,
    dtype: DType,
) -> candle_core::Result<f64> {
    let device = Device::Cpu;
    let config: UnetConfig =
        serde_json::from_value(presets::unet(Version::V1_5)).map_err(candle_core::Error::msg)?;
    let weights = VarBuilder::from_backend(Box::new(RandomWeights), dtype, device.clone());
    let unet = Unet::new(weights, &config).map_err(candle_core::Error::msg)?;
    let latents =
        Tensor::randn(0f32, 1f32, (batch, 4, height / 8, width / 8), &device)?.to_dtype(dtype)?;
    let context = Tensor::randn(0f32, 1f32, (batch, 77, config.cross_attention_dim), &device)?
        .to_dtype(dtype)?;
    let mut best = f64::MAX;
    for _ in 0..runs.max(1) {
        let clock = Instant::now();
        unet.forward(&latents, 500.0, &context, None)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar::<f32>()?;
        best = best.min(clock.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(best)
}

/// The peak resident set size of this process in MB (Linux, from `/proc/self/status`), for the
/// bench examples.
#[doc(hidden)]
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1000.0)
}

/// Times one VAE decode of SD 1.5 with random f32 weights (the pipeline's VAE dtype) from
/// latents of a `width` x `height` image, in tiles of `tile` latent cells (0: whole); returns
/// the fastest of `runs` in milliseconds.
#[doc(hidden)]
pub fn time_sd15_decode(
    width: usize,
    height: usize,
    tile: usize,
    runs: usize,
) -> candle_core::Result<f64> {
    let device = Device::Cpu;
    let config: VaeConfig =
        serde_json::from_value(presets::vae(Version::V1_5)).map_err(candle_core::Error::msg)?;
    let weights = VarBuilder::from_backend(Box::new(RandomWeights), DType::F32, device.clone());
    let vae = Vae::new(&config, weights)?;
    let scale = config.scale();
    let latents = Tensor::randn(0f32, 1f32, (1, 4, height / scale, width / scale), &device)?;
    let mut best = f64::MAX;
    for _ in 0..runs.max(1) {
        let clock = Instant::now();
        vae.decode(&latents, tile)?.sum_all()?.to_scalar::<f32>()?;
        best = best.min(clock.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(best)
}
