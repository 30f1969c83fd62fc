//! The VAE (`vae/`), built from candle's public blocks with the weight names of diffusers'
//! `AutoencoderKL`: encoding returns the latent mean (candle's `AutoEncoderKL` only samples,
//! from an unseedable generator), and decoding can go tile by tile to bound memory.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, VarBuilder, conv2d, group_norm};
use candle_transformers::models::stable_diffusion::unet_2d_blocks::{
    DownEncoderBlock2D, DownEncoderBlock2DConfig, UNetMidBlock2D, UNetMidBlock2DConfig,
    UpDecoderBlock2D, UpDecoderBlock2DConfig,
};
use serde::Deserialize;

/// A `vae/config.json` (unknown fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    /// Channels of each encoder block (reversed for the decoder).
    pub block_out_channels: Vec<usize>,
    /// Resnet layers per block.
    pub layers_per_block: usize,
    /// Latent channels.
    #[serde(default = "four")]
    pub latent_channels: usize,
    /// Group-norm groups.
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    /// Latents are the VAE's latents times this.
    #[serde(default = "scaling_factor")]
    pub scaling_factor: f64,
    /// Whether the 1x1 quant convs exist.
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    /// Whether the 1x1 post-quant convs exist.
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
}

fn four() -> usize {
    4
}
fn thirty_two() -> usize {
    32
}
fn scaling_factor() -> f64 {
    0.18215
}
fn yes() -> bool {
    true
}

impl VaeConfig {
    /// Pixels per latent cell along each axis.
    pub fn scale(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

/// The VAE encoder and decoder.
pub struct Vae {
    enc_conv_in: Conv2d,
    enc_blocks: Vec<DownEncoderBlock2D>,
    enc_mid: UNetMidBlock2D,
    enc_norm: GroupNorm,
    enc_conv_out: Conv2d,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    dec_conv_in: Conv2d,
    dec_mid: UNetMidBlock2D,
    dec_blocks: Vec<UpDecoderBlock2D>,
    dec_norm: GroupNorm,
    dec_conv_out: Conv2d,
    config: VaeConfig,
}

const PAD1: Conv2dConfig = Conv2dConfig {
    padding: 1,
    stride: 1,
    dilation: 1,
    groups: 1,
    cudnn_fwd_algo: None,
};

impl Vae {
    /// Builds the VAE from `vb` (rooted at the checkpoint).
    pub fn new(config: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let channels = &config.block_out_channels;
        if channels.is_empty() {
            candle_core::bail!("vae block_out_channels is empty");
        }
        let (first, last, latent) = (
            channels[0],
            channels[channels.len() - 1],
            config.latent_channels,
        );
        let groups = config.norm_num_groups;
        let mid_config = UNetMidBlock2DConfig {
            resnet_eps: 1e-6,
            output_scale_factor: 1.,
            attn_num_head_channels: None,
            resnet_groups: Some(groups),
            ..Default::default()
        };
        let enc = vb.pp("encoder");
        let enc_blocks = channels
            .iter()
            .enumerate()
            .map(|(i, &out)| {
                let config = DownEncoderBlock2DConfig {
                    num_layers: config.layers_per_block,
                    resnet_eps: 1e-6,
                    resnet_groups: groups,
                    add_downsample: i + 1 < channels.len(),
                    downsample_padding: 0,
                    ..Default::default()
                };
                let input = if i > 0 { channels[i - 1] } else { first };
                DownEncoderBlock2D::new(enc.pp(format!("down_blocks.{i}")), input, out, config)
            })
            .collect::<Result<Vec<_>>>()?;
        let dec = vb.pp("decoder");
        let reversed: Vec<usize> = channels.iter().rev().copied().collect();
        let dec_blocks = reversed
            .iter()
            .enumerate()
            .map(|(i, &out)| {
                let config = UpDecoderBlock2DConfig {
                    num_layers: config.layers_per_block + 1,
                    resnet_eps: 1e-6,
                    resnet_groups: groups,
                    add_upsample: i + 1 < reversed.len(),
                    ..Default::default()
                };
                let input = if i > 0 { reversed[i - 1] } else { reversed[0] };
                UpDecoderBlock2D::new(dec.pp(format!("up_blocks.{i}")), input, out, config)
            })
            .collect::<Result<Vec<_>>>()?;
        let conv1x1 = |c: usize, name: &str| conv2d(c, c, 1, Default::default(), vb.pp(name));
        Ok(Self {
            enc_conv_in: conv2d(3, first, 3, PAD1, enc.pp("conv_in"))?,
            enc_blocks,
            enc_mid: UNetMidBlock2D::new(enc.pp("mid_block"), last, None, mid_config)?,
            enc_norm: group_norm(groups, last, 1e-6, enc.pp("conv_norm_out"))?,
            enc_conv_out: conv2d(last, 2 * latent, 3, PAD1, enc.pp("conv_out"))?,
            quant_conv: config
                .use_quant_conv
                .then(|| conv1x1(2 * latent, "quant_conv"))
                .transpose()?,
            post_quant_conv: config
                .use_post_quant_conv
                .then(|| conv1x1(latent, "post_quant_conv"))
                .transpose()?,
            dec_conv_in: conv2d(latent, last, 3, PAD1, dec.pp("conv_in"))?,
            dec_mid: UNetMidBlock2D::new(dec.pp("mid_block"), last, None, mid_config)?,
            dec_blocks,
            dec_norm: group_norm(groups, first, 1e-6, dec.pp("conv_norm_out"))?,
            dec_conv_out: conv2d(first, 3, 3, PAD1, dec.pp("conv_out"))?,
            config: config.clone(),
        })
    }

    /// Scaled latents (the mean of the latent distribution) of images `(b, 3, h, w)` in `[-1, 1]`.
    pub fn encode(&self, images: &Tensor) -> Result<Tensor> {
        let mut xs = self.enc_conv_in.forward(images)?;
        for block in &self.enc_blocks {
            xs = block.forward(&xs)?;
        }
        let xs = self.enc_mid.forward(&xs, None)?;
        let xs = candle_nn::ops::silu(&self.enc_norm.forward(&xs)?)?;
        let mut moments = self.enc_conv_out.forward(&xs)?;
        if let Some(conv) = &self.quant_conv {
            moments = conv.forward(&moments)?;
        }
        moments.narrow(1, 0, self.config.latent_channels)? * self.config.scaling_factor
    }

    /// Images `(b, 3, h, w)` in about `[-1, 1]` from scaled latents, decoded in overlapping
    /// tiles of `tile` latent cells when the latents are larger than that (`tile == 0`: never).
    pub fn decode(&self, latents: &Tensor, tile: usize) -> Result<Tensor> {
        let latents = (latents / self.config.scaling_factor)?;
        let (_, _, height, width) = latents.dims4()?;
        if tile == 0 || (height <= tile && width <= tile) {
            return self.decode_whole(&latents);
        }
        self.decode_tiled(&latents, tile)
    }

    fn decode_whole(&self, latents: &Tensor) -> Result<Tensor> {
        let mut xs = latents.clone();
        if let Some(conv) = &self.post_quant_conv {
            xs = conv.forward(&xs)?;
        }
        let mut xs = self
            .dec_mid
            .forward(&self.dec_conv_in.forward(&xs)?, None)?;
        for block in &self.dec_blocks {
            xs = block.forward(&xs)?;
        }
        let xs = candle_nn::ops::silu(&self.dec_norm.forward(&xs)?)?;
        self.dec_conv_out.forward(&xs)
    }

    /// Decodes tiles of `tile` cells overlapping by a quarter, blending the overlaps linearly
    /// so no seam shows; peak memory is that of one tile.
    fn decode_tiled(&self, latents: &Tensor, tile: usize) -> Result<Tensor> {
        let (batch, _, height, width) = latents.dims4()?;
        let scale = self.config.scale();
        let overlap = (tile / 4).max(1);
        let starts = |len: usize| -> Vec<usize> {
            let stride = tile - overlap;
            let mut starts: Vec<usize> = (0..)
                .map(|i| i * stride)
                .take_while(|&s| s + tile < len)
                .collect();
            starts.push(len.saturating_sub(tile));
            starts
        };
        let device = latents.device();
        let mut sum = Tensor::zeros(
            (batch, 3, height * scale, width * scale),
            candle_core::DType::F32,
            device,
        )?;
        let mut weight = Tensor::zeros(
            (1, 1, height * scale, width * scale),
            candle_core::DType::F32,
            device,
        )?;
        for &y in &starts(height) {
            for &x in &starts(width) {
                let (th, tw) = (tile.min(height), tile.min(width));
                let part = latents.narrow(2, y, th)?.narrow(3, x, tw)?;
                let image = self
                    .decode_whole(&part)?
                    .to_dtype(candle_core::DType::F32)?;
                let ramp = ramp_mask(
                    th * scale,
                    tw * scale,
                    overlap * scale,
                    (y > 0, x > 0, y + th < height, x + tw < width),
                    device,
                )?;
                let (py, px) = (y * scale, x * scale);
                let region = |t: &Tensor| t.narrow(2, py, th * scale)?.narrow(3, px, tw * scale);
                let placed_sum = (region(&sum)? + image.broadcast_mul(&ramp)?)?;
                let placed_weight = (region(&weight)? + &ramp)?;
                sum = sum.slice_assign(
                    &[0..batch, 0..3, py..py + th * scale, px..px + tw * scale],
                    &placed_sum,
                )?;
                weight = weight.slice_assign(
                    &[0..1, 0..1, py..py + th * scale, px..px + tw * scale],
                    &placed_weight,
                )?;
            }
        }
        sum.broadcast_div(&weight)
    }
}

/// A `(1, 1, h, w)` weight that rises linearly over `fade` pixels on each side that overlaps a
/// neighbour (`top, left, bottom, right`) and is 1 elsewhere.
fn ramp_mask(
    h: usize,
    w: usize,
    fade: usize,
    sides: (bool, bool, bool, bool),
    device: &candle_core::Device,
) -> Result<Tensor> {
    let ramp = |i: usize, len: usize, start: bool, end: bool| -> f32 {
        let up = if start {
            ((i + 1) as f32 / fade as f32).min(1.0)
        } else {
            1.0
        };
        let down = if end {
            ((len - i) as f32 / fade as f32).min(1.0)
        } else {
            1.0
        };
        up.min(down)
    };
    let (top, left, bottom, right) = sides;
    let values: Vec<f32> = (0..h)
        .flat_map(|y| (0..w).map(move |x| ramp(y, h, top, bottom) * ramp(x, w, left, right)))
        .collect();
    Tensor::from_vec(values, (1, 1, h, w), device)
}
