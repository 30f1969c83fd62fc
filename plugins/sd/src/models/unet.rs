//! The denoising UNet, assembled from candle's public UNet blocks. candle 0.11's own
//! `UNet2DConditionModel` has no added conditioning; this one takes SDXL's (`add_embedding`,
//! see `text_time.rs`) and otherwise runs the same blocks in the same order, so SD 1.x/2.x
//! give the same numbers as with candle's in f32 (a test holds it to that on the CPU). One
//! difference in f16: the timestep's sinusoids are computed in f32 and then cast, as diffusers
//! does, where candle computes them in f16 and loses most of their precision near t = 1000.

use super::text_time::{TextTime, TextTimeEmbedding};
use crate::config::UnetConfig;
use candle_core::{Module, Result, Tensor, bail};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, VarBuilder, conv2d, group_norm};
use candle_transformers::models::stable_diffusion::{
    embeddings::{TimestepEmbedding, Timesteps},
    unet_2d::UNet2DConditionModelConfig,
    unet_2d_blocks::{
        CrossAttnDownBlock2D, CrossAttnDownBlock2DConfig, CrossAttnUpBlock2D,
        CrossAttnUpBlock2DConfig, DownBlock2D, DownBlock2DConfig, UNetMidBlock2DCrossAttn,
        UNetMidBlock2DCrossAttnConfig, UpBlock2D, UpBlock2DConfig,
    },
};

enum Down {
    Plain(DownBlock2D),
    Cross(CrossAttnDownBlock2D),
}

enum Up {
    Plain(UpBlock2D),
    Cross(CrossAttnUpBlock2D),
}

impl Up {
    /// How many skip connections the block consumes.
    fn skips(&self) -> usize {
        match self {
            Self::Plain(block) => block.resnets.len(),
            Self::Cross(block) => block.upblock.resnets.len(),
        }
    }
}

/// A diffusers `UNet2DConditionModel` (weights named as in `unet/diffusion_pytorch_model`).
pub struct Unet {
    conv_in: Conv2d,
    time_proj: Timesteps,
    time_embedding: TimestepEmbedding,
    text_time: Option<TextTimeEmbedding>,
    down: Vec<Down>,
    mid: UNetMidBlock2DCrossAttn,
    up: Vec<Up>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    center_input: bool,
}

impl Unet {
    /// Builds the UNet of `config` from `vb`; with `text_time` conditioning it needs the
    /// `add_embedding` weights too.
    pub fn new(vb: VarBuilder, config: &UnetConfig) -> std::result::Result<Self, String> {
        let layout = config.to_candle()?;
        let text_time = config.text_time()?;
        Self::build(vb, config, &layout, text_time).map_err(|e| e.to_string())
    }

    fn build(
        vb: VarBuilder,
        config: &UnetConfig,
        layout: &UNet2DConditionModelConfig,
        text_time: Option<crate::config::TextTimeConfig>,
    ) -> Result<Self> {
        let blocks = &layout.blocks;
        let n = blocks.len();
        let width = blocks[0].out_channels;
        let time_dim = 4 * width;
        let padded = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let (flip, shift) = (layout.flip_sin_to_cos, layout.freq_shift);
        let text_time = text_time
            .map(|tt| TextTimeEmbedding::new(vb.clone(), tt, time_dim, flip, shift))
            .transpose()?;

        let mut down = Vec::with_capacity(n);
        for (i, block) in blocks.iter().enumerate() {
            let vb = vb.pp("down_blocks").pp(i);
            let input = if i == 0 {
                width
            } else {
                blocks[i - 1].out_channels
            };
            let plain = DownBlock2DConfig {
                num_layers: layout.layers_per_block,
                resnet_eps: layout.norm_eps,
                resnet_groups: layout.norm_num_groups,
                add_downsample: i + 1 < n,
                downsample_padding: layout.downsample_padding,
                ..Default::default()
            };
            down.push(match block.use_cross_attn {
                None => Down::Plain(DownBlock2D::new(
                    vb,
                    input,
                    block.out_channels,
                    Some(time_dim),
                    plain,
                )?),
                Some(depth) => Down::Cross(CrossAttnDownBlock2D::new(
                    vb,
                    input,
                    block.out_channels,
                    Some(time_dim),
                    false,
                    CrossAttnDownBlock2DConfig {
                        downblock: plain,
                        attn_num_head_channels: block.attention_head_dim,
                        cross_attention_dim: layout.cross_attention_dim,
                        sliced_attention_size: None,
                        use_linear_projection: layout.use_linear_projection,
                        transformer_layers_per_block: depth,
                    },
                )?),
            });
        }

        let deepest = blocks[n - 1];
        let mid = UNetMidBlock2DCrossAttn::new(
            vb.pp("mid_block"),
            deepest.out_channels,
            Some(time_dim),
            false,
            UNetMidBlock2DCrossAttnConfig {
                resnet_eps: layout.norm_eps,
                output_scale_factor: layout.mid_block_scale_factor,
                cross_attn_dim: layout.cross_attention_dim,
                attn_num_head_channels: deepest.attention_head_dim,
                resnet_groups: Some(layout.norm_num_groups),
                use_linear_projection: layout.use_linear_projection,
                transformer_layers_per_block: deepest.use_cross_attn.unwrap_or(1),
                ..Default::default()
            },
        )?;

        // Up block `i` mirrors down block `n - 1 - i`: it takes the output of the block below
        // it (`previous`) and the skips of its mirror, whose input width (`skip_input`) is
        // what its last resnet concatenates.
        let mut up = Vec::with_capacity(n);
        for i in 0..n {
            let vb = vb.pp("up_blocks").pp(i);
            let mirror = n - 1 - i;
            let block = blocks[mirror];
            let previous = blocks[(mirror + 1).min(n - 1)].out_channels;
            let skip_input = blocks[mirror.saturating_sub(1)].out_channels;
            let plain = UpBlock2DConfig {
                num_layers: layout.layers_per_block + 1,
                resnet_eps: layout.norm_eps,
                resnet_groups: layout.norm_num_groups,
                add_upsample: i + 1 < n,
                ..Default::default()
            };
            up.push(match block.use_cross_attn {
                None => Up::Plain(UpBlock2D::new(
                    vb,
                    skip_input,
                    previous,
                    block.out_channels,
                    Some(time_dim),
                    plain,
                )?),
                Some(depth) => Up::Cross(CrossAttnUpBlock2D::new(
                    vb,
                    skip_input,
                    previous,
                    block.out_channels,
                    Some(time_dim),
                    false,
                    CrossAttnUpBlock2DConfig {
                        upblock: plain,
                        attn_num_head_channels: block.attention_head_dim,
                        cross_attention_dim: layout.cross_attention_dim,
                        sliced_attention_size: None,
                        use_linear_projection: layout.use_linear_projection,
                        transformer_layers_per_block: depth,
                    },
                )?),
            });
        }

        Ok(Self {
            conv_in: conv2d(config.in_channels, width, 3, padded, vb.pp("conv_in"))?,
            time_proj: Timesteps::new(width, flip, shift),
            time_embedding: TimestepEmbedding::new(vb.pp("time_embedding"), width, time_dim)?,
            text_time,
            down,
            mid,
            up,
            norm_out: group_norm(
                layout.norm_num_groups,
                width,
                layout.norm_eps,
                vb.pp("conv_norm_out"),
            )?,
            conv_out: conv2d(width, config.out_channels, 3, padded, vb.pp("conv_out"))?,
            center_input: layout.center_input_sample,
        })
    }

    /// Whether the UNet takes SDXL's added conditioning (then [`Unet::forward`] needs it).
    pub fn takes_text_time(&self) -> bool {
        self.text_time.is_some()
    }

    /// The noise (or v) prediction for `latents` at `timestep` under the text `context`, with
    /// the added conditioning when the UNet takes it.
    pub fn forward(
        &self,
        latents: &Tensor,
        timestep: f64,
        context: &Tensor,
        text_time: Option<&TextTime>,
    ) -> Result<Tensor> {
        let (batch, _, height, width) = latents.dims4()?;
        let dtype = latents.dtype();
        let timesteps = Tensor::full(timestep as f32, batch, latents.device())?;
        let mut emb = self
            .time_embedding
            .forward(&self.time_proj.forward(&timesteps)?.to_dtype(dtype)?)?;
        match (&self.text_time, text_time) {
            (Some(embedding), Some(added)) => emb = (emb + embedding.forward(added, dtype)?)?,
            (None, None) => {}
            (Some(_), None) => bail!("this UNet needs pooled text embeddings and time ids"),
            (None, Some(_)) => bail!("this UNet takes no pooled text embeddings or time ids"),
        }

        let xs = if self.center_input {
            ((latents * 2.0)? - 1.0)?
        } else {
            latents.clone()
        };
        let mut xs = self.conv_in.forward(&xs)?;
        let mut skips = vec![xs.clone()];
        for block in &self.down {
            let (out, block_skips) = match block {
                Down::Plain(b) => b.forward(&xs, Some(&emb))?,
                Down::Cross(b) => b.forward(&xs, Some(&emb), Some(context))?,
            };
            skips.extend(block_skips);
            xs = out;
        }
        xs = self.mid.forward(&xs, Some(&emb), Some(context))?;

        // Latents whose sides do not halve evenly at every level upsample to the size of the
        // skip they meet instead of doubling.
        let factor = 1 << (self.up.len() - 1);
        let uneven = height % factor != 0 || width % factor != 0;
        let mut size = None;
        for (i, block) in self.up.iter().enumerate() {
            let block_skips = skips.split_off(skips.len() - block.skips());
            if uneven && i + 1 < self.up.len() {
                let (_, _, h, w) = skips[skips.len() - 1].dims4()?;
                size = Some((h, w));
            }
            xs = match block {
                Up::Plain(b) => b.forward(&xs, &block_skips, Some(&emb), size)?,
                Up::Cross(b) => b.forward(&xs, &block_skips, Some(&emb), size, Some(context))?,
            };
        }
        let xs = candle_nn::ops::silu(&self.norm_out.forward(&xs)?)?;
        self.conv_out.forward(&xs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{noise::Noise, tiny};
    use candle_core::{DType, Device};
    use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;
    use std::path::Path;

    fn config(dir: &Path) -> UnetConfig {
        serde_json::from_str(&std::fs::read_to_string(dir.join("unet/config.json")).unwrap())
            .unwrap()
    }

    fn weights(dir: &Path) -> VarBuilder<'static> {
        let file = dir.join("unet/diffusion_pytorch_model.safetensors");
        candle_nn::VarBuilder::from_tensors(
            candle_core::safetensors::load(file, &Device::Cpu).unwrap(),
            DType::F32,
            &Device::Cpu,
        )
    }

    fn gaussian(seed: u64, shape: &[usize]) -> Tensor {
        Noise::new(seed).gaussian(shape, &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// With the SD 1.5 tiny checkpoint's weights and the CLIP and pipeline path unchanged for
    /// non-XL versions, this keeps their images byte for byte what they were with candle's UNet.
    #[test]
    fn without_added_conditioning_it_computes_exactly_what_candles_unet_does() {
        let dir = tempfile::tempdir().unwrap();
        tiny::write_tiny_checkpoint(dir.path()).unwrap();
        let config = config(dir.path());
        // The same variables, hence the same seeded weights, as candle's UNet has.
        let layout = config.to_candle().unwrap();
        tiny::write_weights(dir.path(), "candle.safetensors", 3, |vb| {
            UNet2DConditionModel::new(vb, 4, 4, false, layout).map(drop)
        })
        .unwrap();
        let read = |file: &str| std::fs::read(dir.path().join(file)).unwrap();
        assert!(read("candle.safetensors") == read("unet/diffusion_pytorch_model.safetensors"));
        let ours = Unet::new(weights(dir.path()), &config).unwrap();
        assert!(!ours.takes_text_time());
        let candle = UNet2DConditionModel::new(
            weights(dir.path()),
            4,
            4,
            false,
            config.to_candle().unwrap(),
        )
        .unwrap();
        // An odd latent width exercises the upsampling to the skips' size.
        for (seed, shape) in [(1, [1, 4, 8, 9]), (2, [2, 4, 8, 8])] {
            let latents = gaussian(seed, &shape);
            let context = gaussian(seed + 10, &[shape[0], 77, 32]);
            for timestep in [1.0, 981.0] {
                let expected = candle.forward(&latents, timestep, &context).unwrap();
                let got = ours.forward(&latents, timestep, &context, None).unwrap();
                assert_eq!(values(&got), values(&expected), "{shape:?} at {timestep}");
            }
        }
    }

    #[test]
    fn the_pooled_embedding_and_each_time_id_change_the_prediction() {
        let dir = tempfile::tempdir().unwrap();
        tiny::write_tiny(dir.path(), tiny::TinyKind::Xl).unwrap();
        let unet = Unet::new(weights(dir.path()), &config(dir.path())).unwrap();
        assert!(unet.takes_text_time());
        let latents = gaussian(1, &[1, 4, 8, 8]);
        let context = gaussian(2, &[1, 77, 64]);
        let added = |pooled: Tensor, time_ids: [f32; 6]| TextTime {
            pooled,
            time_ids: Tensor::new(&[time_ids], &Device::Cpu).unwrap(),
        };
        let predict = |added: &TextTime| {
            values(
                &unet
                    .forward(&latents, 500.0, &context, Some(added))
                    .unwrap(),
            )
        };
        let pooled = gaussian(3, &[1, 16]);
        let ids = [64.0, 64.0, 0.0, 0.0, 64.0, 64.0];
        let reference = predict(&added(pooled.clone(), ids));
        assert_eq!(reference, predict(&added(pooled.clone(), ids)));
        assert_ne!(reference, predict(&added(gaussian(4, &[1, 16]), ids)));
        for i in 0..6 {
            let mut changed = ids;
            changed[i] += 8.0;
            assert_ne!(
                reference,
                predict(&added(pooled.clone(), changed)),
                "id {i}"
            );
        }
        let generated = TextTime::time_ids(64, 64, 2, &Device::Cpu).unwrap();
        assert_eq!(generated.to_vec2::<f32>().unwrap(), [ids, ids]);
        assert!(unet.forward(&latents, 500.0, &context, None).is_err());
    }
}
