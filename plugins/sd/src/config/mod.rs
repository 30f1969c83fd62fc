//! Model configuration: load options, the UNet's diffusers `config.json`, SD versions and their
//! built-in presets.

pub mod presets;
pub mod versions;

use candle_transformers::models::stable_diffusion::unet_2d::{
    BlockConfig, UNet2DConditionModelConfig,
};
use serde::Deserialize;
use versions::Version;

/// Plugin load options (`LoadRequest.options_json`), e.g. `{"version": "xl"}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadOptions {
    /// The SD version; detected from the checkpoint when absent.
    #[serde(default)]
    pub version: Option<Version>,
    /// VAE decode tile size in latent cells (8 pixels each); larger latents decode in
    /// overlapping tiles. Absent = 64 (512 pixels); 0 = never tile.
    #[serde(default)]
    pub vae_tile: Option<usize>,
}

impl LoadOptions {
    /// Parses the options JSON; empty means defaults.
    pub fn parse(json: &str) -> Result<Self, String> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(json).map_err(|e| format!("invalid plugin options: {e}"))
    }
}

/// A value given once for all blocks or once per block.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    /// The same for every block.
    One(usize),
    /// One per block.
    Each(Vec<usize>),
}

impl PerBlock {
    fn get(&self, block: usize) -> Option<usize> {
        match self {
            Self::One(value) => Some(*value),
            Self::Each(values) => values.get(block).copied(),
        }
    }
}

/// A diffusers `unet/config.json` (unknown fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct UnetConfig {
    /// Latent channels in (9 for inpainting UNets: latents, mask, masked image latents).
    #[serde(default = "four")]
    pub in_channels: usize,
    /// Latent channels out.
    #[serde(default = "four")]
    pub out_channels: usize,
    /// Channels of each down block.
    pub block_out_channels: Vec<usize>,
    /// `CrossAttnDownBlock2D` or `DownBlock2D` for each block.
    pub down_block_types: Vec<String>,
    /// Resnet layers per block.
    pub layers_per_block: usize,
    /// Attention heads per block (diffusers' historical name).
    pub attention_head_dim: PerBlock,
    /// Width of the text embeddings.
    pub cross_attention_dim: usize,
    /// Transformer layers per cross-attention block (SDXL).
    #[serde(default)]
    pub transformer_layers_per_block: Option<PerBlock>,
    /// Linear instead of 1x1-conv projections around the transformers (SD 2.x, XL).
    #[serde(default)]
    pub use_linear_projection: bool,
    /// Group-norm groups.
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    /// Group-norm epsilon.
    #[serde(default = "norm_eps")]
    pub norm_eps: f64,
    /// Timestep embedding layout.
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    /// Timestep embedding shift.
    #[serde(default)]
    pub freq_shift: f64,
    /// Padding of the downsampling convolutions.
    #[serde(default = "one")]
    pub downsample_padding: usize,
    /// Output scale of the middle block.
    #[serde(default = "one_f64")]
    pub mid_block_scale_factor: f64,
    /// Whether inputs are centred to `[-1, 1]` first.
    #[serde(default)]
    pub center_input_sample: bool,
    /// Native latent size (pixels / 8).
    #[serde(default)]
    pub sample_size: Option<usize>,
    /// Conditioning added to the time embedding: `text_time` (SDXL) or none.
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    /// Width of each time id's sinusoidal embedding (SDXL: 256).
    #[serde(default)]
    pub addition_time_embed_dim: Option<usize>,
    /// Input width of `add_embedding`: the pooled text width plus the time ids' (SDXL: 2816).
    #[serde(default)]
    pub projection_class_embeddings_input_dim: Option<usize>,
}

/// SDXL's added conditioning (`addition_embed_type: "text_time"`): the pooled, projected text
/// embedding and [`TIME_IDS`] size/crop numbers, each embedded sinusoidally, go through
/// `add_embedding` into the time embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextTimeConfig {
    /// Width of each time id's sinusoidal embedding.
    pub time_embed_dim: usize,
    /// Width of the pooled text embedding the last text encoder must project to.
    pub pooled_dim: usize,
}

/// Time ids per image: original height and width, crop top and left, target height and width.
pub const TIME_IDS: usize = 6;

fn four() -> usize {
    4
}
fn thirty_two() -> usize {
    32
}
fn one() -> usize {
    1
}
fn one_f64() -> f64 {
    1.0
}
fn norm_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

impl UnetConfig {
    /// The added time/text conditioning, if the config asks for it; an error for any other
    /// `addition_embed_type` or for widths that do not add up.
    pub fn text_time(&self) -> Result<Option<TextTimeConfig>, String> {
        match self.addition_embed_type.as_deref() {
            None => Ok(None),
            Some("text_time") => {
                let (Some(time_embed_dim), Some(input_dim)) = (
                    self.addition_time_embed_dim,
                    self.projection_class_embeddings_input_dim,
                ) else {
                    return Err("text_time conditioning needs addition_time_embed_dim and projection_class_embeddings_input_dim".into());
                };
                match input_dim.checked_sub(TIME_IDS * time_embed_dim) {
                    Some(pooled_dim) if pooled_dim > 0 && time_embed_dim > 0 => {
                        Ok(Some(TextTimeConfig {
                            time_embed_dim,
                            pooled_dim,
                        }))
                    }
                    _ => Err(format!(
                        "projection_class_embeddings_input_dim {input_dim} leaves no room for a pooled text embedding beside {TIME_IDS} time ids of {time_embed_dim}"
                    )),
                }
            }
            Some(other) => Err(format!("unsupported addition_embed_type {other}")),
        }
    }

    /// candle's UNet configuration. Attention is never sliced: candle 0.11's sliced attention
    /// stacks the slices instead of concatenating them (a shape error) and drops a remainder.
    pub fn to_candle(&self) -> Result<UNet2DConditionModelConfig, String> {
        if self.block_out_channels.len() != self.down_block_types.len()
            || self.block_out_channels.is_empty()
        {
            return Err(
                "block_out_channels and down_block_types must have the same, non-zero length"
                    .into(),
            );
        }
        let blocks = self
            .block_out_channels
            .iter()
            .zip(&self.down_block_types)
            .enumerate()
            .map(|(i, (&out_channels, kind))| {
                let heads = self
                    .attention_head_dim
                    .get(i)
                    .ok_or("attention_head_dim has too few entries")?;
                let layers = match &self.transformer_layers_per_block {
                    Some(per_block) => per_block
                        .get(i)
                        .ok_or("transformer_layers_per_block has too few entries")?,
                    None => 1,
                };
                let use_cross_attn = match kind.as_str() {
                    "CrossAttnDownBlock2D" => Some(layers),
                    "DownBlock2D" => None,
                    other => return Err(format!("unsupported down block type {other}")),
                };
                Ok(BlockConfig {
                    out_channels,
                    use_cross_attn,
                    attention_head_dim: heads,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(UNet2DConditionModelConfig {
            center_input_sample: self.center_input_sample,
            flip_sin_to_cos: self.flip_sin_to_cos,
            freq_shift: self.freq_shift,
            blocks,
            layers_per_block: self.layers_per_block,
            downsample_padding: self.downsample_padding,
            mid_block_scale_factor: self.mid_block_scale_factor,
            norm_num_groups: self.norm_num_groups,
            norm_eps: self.norm_eps,
            cross_attention_dim: self.cross_attention_dim,
            sliced_attention_size: None,
            use_linear_projection: self.use_linear_projection,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_options_reject_unknown_fields() {
        assert!(LoadOptions::parse(r#"{"versoin": "xl"}"#).is_err());
        let options = LoadOptions::parse(r#"{"version": "xl", "vae_tile": 32}"#).unwrap();
        assert_eq!(options.version, Some(Version::Xl));
        assert_eq!(options.vae_tile, Some(32));
        assert!(LoadOptions::parse("").unwrap().version.is_none());
    }

    #[test]
    fn sdxl_preset_unet_maps_transformer_layers() {
        let config: UnetConfig = serde_json::from_value(presets::unet(Version::Xl)).unwrap();
        let candle = config.to_candle().unwrap();
        let layers: Vec<_> = candle.blocks.iter().map(|b| b.use_cross_attn).collect();
        assert_eq!(layers, [None, Some(2), Some(10)]);
        assert_eq!(candle.blocks[2].attention_head_dim, 20);
        let text_time = config.text_time().unwrap().unwrap();
        assert_eq!(text_time.pooled_dim, 1280);
        assert_eq!(text_time.time_embed_dim, 256);
    }

    #[test]
    fn text_time_conditioning_is_checked() {
        let v15: UnetConfig = serde_json::from_value(presets::unet(Version::V1_5)).unwrap();
        assert_eq!(v15.text_time(), Ok(None));
        let mut config = v15.clone();
        config.addition_embed_type = Some("text".into());
        assert!(config.text_time().unwrap_err().contains("text"));
        config.addition_embed_type = Some("text_time".into());
        assert!(config.text_time().is_err());
        config.addition_time_embed_dim = Some(256);
        config.projection_class_embeddings_input_dim = Some(1536);
        assert!(config.text_time().is_err());
    }
}
