//! Built-in diffusers configs per version, used when a checkpoint lacks a `config.json` and by
//! the step benchmark (the real architectures with random weights).

use super::versions::Version;
use serde_json::{Value, json};

/// The `unet/config.json` of `version`.
pub fn unet(version: Version) -> Value {
    let cross = [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ];
    match version {
        Version::V1_5 => json!({
            "block_out_channels": [320, 640, 1280, 1280], "down_block_types": cross,
            "layers_per_block": 2, "attention_head_dim": 8, "cross_attention_dim": 768, "sample_size": 64
        }),
        Version::V2_1 | Version::Turbo => json!({
            "block_out_channels": [320, 640, 1280, 1280], "down_block_types": cross,
            "layers_per_block": 2, "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024,
            "use_linear_projection": true,
            "sample_size": if version == Version::Turbo { 64 } else { 96 }
        }),
        Version::Xl | Version::XlTurbo => json!({
            "block_out_channels": [320, 640, 1280],
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "layers_per_block": 2, "attention_head_dim": [5, 10, 20], "cross_attention_dim": 2048,
            "transformer_layers_per_block": [1, 2, 10], "use_linear_projection": true,
            "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 2816,
            "sample_size": if version == Version::XlTurbo { 64 } else { 128 }
        }),
    }
}

/// The `vae/config.json` of `version`.
pub fn vae(version: Version) -> Value {
    let scaling_factor = if version.is_xl() { 0.13025 } else { 0.18215 };
    json!({
        "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4,
        "norm_num_groups": 32, "scaling_factor": scaling_factor
    })
}

/// The `text_encoder/config.json` of `version`.
pub fn text_encoder(version: Version) -> Value {
    match version {
        Version::V1_5 | Version::Xl | Version::XlTurbo => json!({
            "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072,
            "num_hidden_layers": 12, "num_attention_heads": 12, "hidden_act": "quick_gelu"
        }),
        Version::V2_1 | Version::Turbo => json!({
            "vocab_size": 49408, "hidden_size": 1024, "intermediate_size": 4096,
            "num_hidden_layers": 23, "num_attention_heads": 16, "hidden_act": "gelu"
        }),
    }
}

/// The `text_encoder_2/config.json` of an XL `version`.
pub fn text_encoder_2() -> Value {
    json!({
        "vocab_size": 49408, "hidden_size": 1280, "intermediate_size": 5120,
        "num_hidden_layers": 32, "num_attention_heads": 20, "hidden_act": "gelu",
        "projection_dim": 1280
    })
}

/// The `scheduler/scheduler_config.json` of `version`.
pub fn scheduler(version: Version) -> Value {
    match version {
        Version::V1_5 | Version::Xl => json!({
            "_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "steps_offset": 1
        }),
        Version::V2_1 => json!({
            "_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "steps_offset": 1,
            "prediction_type": "v_prediction"
        }),
        Version::Turbo | Version::XlTurbo => json!({
            "_class_name": "EulerAncestralDiscreteScheduler", "beta_schedule": "scaled_linear",
            "timestep_spacing": "trailing"
        }),
    }
}
