//! Whisper's audio encoder on the CPU over plain f32 buffers. It computes what candle's
//! `whisper::model::AudioEncoder` computes (the same weights, the same tanh GELU), but:
//! - each layer's query, key and value projections are one product;
//! - attention runs block by block of 64 queries, so that a block's 64 × 1500 scores stay in
//!   cache, instead of writing and reading back every head's 1500 × 1500 scores;
//! - the exponentials and GELUs are vectorised ([`vector_math`]);
//! - a window reuses its buffers instead of allocating one per operation.

use crate::{
    matmul::{Matrix, Threads, product},
    vector_math::{exp_shifted, gelu_tanh, layer_norm},
};
use candle_core::{Device, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::Config;
use rayon::prelude::*;

/// The layer norms' epsilon, as Whisper's.
const LAYER_NORM_EPS: f32 = 1e-5;

/// Queries per attention block.
const QUERY_BLOCK: usize = 64;

/// The encoder's weights, as row-major f32 matrices.
pub struct CpuEncoder {
    conv1: Conv,
    conv2: Conv,
    /// Sinusoidal position embeddings, `positions × width`.
    positions: Vec<f32>,
    blocks: Vec<Block>,
    ln_post: Norm,
    width: usize,
    heads: usize,
}

/// A width-3 convolution over time with padding 1.
struct Conv {
    /// `out × (in · 3)`, as PyTorch lays out `out × in × 3`.
    dense: Dense,
    channels: usize,
    stride: usize,
}

/// A linear layer: `y = x·Wᵀ + b`.
struct Dense {
    /// `outputs × inputs`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

/// A layer norm's weights.
pub struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Block {
    attn_ln: Norm,
    /// Queries, keys and values in one: `3·width × width`.
    qkv: Dense,
    out: Dense,
    mlp_ln: Norm,
    fc1: Dense,
    fc2: Dense,
}

impl CpuEncoder {
    /// Loads the encoder from `vb` (the model's `model.encoder` prefix).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let width = config.d_model;
        let blocks = (0..config.encoder_layers)
            .map(|i| Block::load(vb.pp(format!("layers.{i}")), width))
            .collect::<Result<_>>()?;
        Ok(Self {
            conv1: Conv::load(vb.pp("conv1"), config.num_mel_bins, width, 1)?,
            conv2: Conv::load(vb.pp("conv2"), width, width, 2)?,
            positions: sinusoids(config.max_source_positions, width),
            blocks,
            ln_post: Norm::load(vb.pp("layer_norm"), width)?,
            width,
            heads: config.encoder_attention_heads,
        })
    }

    /// The audio features of one window's mel spectrogram (`1 × mels × frames`), as
    /// `1 × frames/2 × width`.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let (_, mels, frames) = mel.dims3()?;
        if mels != self.conv1.channels {
            candle_core::bail!("{mels} mel bins, the model takes {}", self.conv1.channels);
        }
        let mel: Vec<f32> = mel.flatten_all()?.to_vec1()?;
        // The spectrogram is mel-major: time step t of channel c is at c·frames + t.
        let mut x = self.conv1.forward(&mel, frames, 1, frames);
        gelu_tanh(&mut x);
        let mut x = self.conv2.forward(&x, frames, self.width, 1);
        gelu_tanh(&mut x);
        let steps = x.len() / self.width;
        if self.positions.len() < x.len() {
            candle_core::bail!(
                "{steps} audio positions, the model has {}",
                self.positions.len() / self.width
            );
        }
        x.iter_mut().zip(&self.positions).for_each(|(x, p)| *x += p);
        let mut scratch = Scratch::new(steps, self.width);
        for block in &self.blocks {
            block.forward(&mut x, self.heads, &mut scratch);
        }
        let mut features = vec![0f32; x.len()];
        self.ln_post.forward(&x, &mut features);
        Tensor::from_vec(features, (1, steps, self.width), &Device::Cpu)
    }
}

/// One window's intermediate buffers, reused by every layer.
struct Scratch {
    normed: Vec<f32>,
    qkv: Vec<f32>,
    attended: Vec<f32>,
    hidden: Vec<f32>,
}

impl Scratch {
    fn new(steps: usize, width: usize) -> Self {
        Self {
            normed: vec![0.0; steps * width],
            qkv: vec![0.0; steps * 3 * width],
            attended: vec![0.0; steps * width],
            hidden: vec![0.0; steps * 4 * width],
        }
    }
}

impl Block {
    fn load(vb: VarBuilder, width: usize) -> Result<Self> {
        let attn = vb.pp("self_attn");
        let matrix = |name: &str| values(&attn.get((width, width), name)?);
        let bias = |name: &str| values(&attn.get(width, name)?);
        let qkv = Dense {
            weight: [
                matrix("q_proj.weight")?,
                matrix("k_proj.weight")?,
                matrix("v_proj.weight")?,
            ]
            .concat(),
            bias: [bias("q_proj.bias")?, vec![0.0; width], bias("v_proj.bias")?].concat(),
            inputs: width,
        };
        Ok(Self {
            attn_ln: Norm::load(vb.pp("self_attn_layer_norm"), width)?,
            qkv,
            out: Dense::load(attn.pp("out_proj"), width, width)?,
            mlp_ln: Norm::load(vb.pp("final_layer_norm"), width)?,
            fc1: Dense::load(vb.pp("fc1"), width, 4 * width)?,
            fc2: Dense::load(vb.pp("fc2"), 4 * width, width)?,
        })
    }

    /// `x` (`steps × width`) through self-attention and the MLP, each added to it.
    fn forward(&self, x: &mut [f32], heads: usize, scratch: &mut Scratch) {
        let width = self.attn_ln.weight.len();
        let Scratch {
            normed,
            qkv,
            attended,
            hidden,
        } = scratch;
        self.attn_ln.forward(x, normed);
        self.qkv.forward(normed, qkv, false);
        attention(qkv, width, heads, attended);
        self.out.forward(attended, x, true);
        self.mlp_ln.forward(x, normed);
        self.fc1.forward(normed, hidden, false);
        gelu_tanh(hidden);
        self.fc2.forward(hidden, x, true);
    }
}

/// Multi-head self-attention of the rows of `qkv` (`steps × 3·width`: queries, keys, values)
/// into `out` (`steps × width`), heads side by side, blocks of queries in parallel.
fn attention(qkv: &[f32], width: usize, heads: usize, out: &mut [f32]) {
    let steps = out.len() / width;
    let head_width = width / heads;
    let scale = 1.0 / (head_width as f32).sqrt();
    let stride = 3 * width;
    out.par_chunks_mut(QUERY_BLOCK * width)
        .enumerate()
        .for_each_init(
            || vec![0f32; QUERY_BLOCK * steps],
            |scores, (block, out)| {
                let queries = out.len() / width;
                let first = block * QUERY_BLOCK;
                let scores = &mut scores[..queries * steps];
                for head in 0..heads {
                    let column = head * head_width;
                    let q =
                        Matrix::rows(&qkv[first * stride + column..], queries, head_width, stride);
                    let keys = Matrix::rows(&qkv[width + column..], steps, head_width, stride);
                    let values =
                        Matrix::rows(&qkv[2 * width + column..], steps, head_width, stride);
                    product(scores, steps, q, keys.t(), scale, false, Threads::One);
                    let sums: Vec<f32> = scores.chunks_exact_mut(steps).map(exp_shifted).collect();
                    let weights = Matrix::rows(scores, queries, steps, steps);
                    let head_out = &mut out[column..];
                    product(head_out, width, weights, values, 1.0, false, Threads::One);
                    for (row, sum) in head_out.chunks_mut(width).zip(sums) {
                        row[..head_width].iter_mut().for_each(|v| *v /= sum);
                    }
                }
            },
        );
}

impl Dense {
    fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> Result<Self> {
        Ok(Self {
            weight: values(&vb.get((outputs, inputs), "weight")?)?,
            bias: values(&vb.get(outputs, "bias")?)?,
            inputs,
        })
    }

    /// `out = x·Wᵀ + b` for each row of `x`, or `out += x·Wᵀ + b` when `accumulate`.
    fn forward(&self, x: &[f32], out: &mut [f32], accumulate: bool) {
        let outputs = self.bias.len();
        let rows = x.len() / self.inputs;
        let x = Matrix::rows(x, rows, self.inputs, self.inputs);
        let weight = Matrix::rows(&self.weight, outputs, self.inputs, self.inputs);
        product(out, outputs, x, weight.t(), 1.0, accumulate, Threads::All);
        for row in out.chunks_exact_mut(outputs) {
            row.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b);
        }
    }
}

impl Conv {
    fn load(vb: VarBuilder, channels: usize, outputs: usize, stride: usize) -> Result<Self> {
        Ok(Self {
            dense: Dense {
                weight: values(&vb.get((outputs, channels, 3), "weight")?)?,
                bias: values(&vb.get(outputs, "bias")?)?,
                inputs: channels * 3,
            },
            channels,
            stride,
        })
    }

    /// The convolution of `x` (`frames` time steps of [`Self::channels`], step `t` of channel
    /// `c` at `t·time_stride + c·channel_stride`), as `⌈frames/stride⌉ × outputs`, time-major.
    fn forward(
        &self,
        x: &[f32],
        frames: usize,
        time_stride: usize,
        channel_stride: usize,
    ) -> Vec<f32> {
        let steps = frames.div_ceil(self.stride);
        let taps = 3 * self.channels;
        // One row per output step: input channel c's three taps at c·3 + 0, 1, 2, as the
        // weights are laid out.
        let mut columns = vec![0f32; steps * taps];
        columns
            .par_chunks_mut(taps)
            .enumerate()
            .for_each(|(step, row)| {
                for tap in 0..3 {
                    let Some(t) = (step * self.stride + tap)
                        .checked_sub(1)
                        .filter(|&t| t < frames)
                    else {
                        continue;
                    };
                    for c in 0..self.channels {
                        row[c * 3 + tap] = x[t * time_stride + c * channel_stride];
                    }
                }
            });
        let mut out = vec![0f32; steps * self.dense.bias.len()];
        self.dense.forward(&columns, &mut out, false);
        out
    }
}

impl Norm {
    /// Loads a `width`-wide layer norm's weight and bias from `vb`.
    pub fn load(vb: VarBuilder, width: usize) -> Result<Self> {
        Ok(Self {
            weight: values(&vb.get(width, "weight")?)?,
            bias: values(&vb.get(width, "bias")?)?,
        })
    }

    /// Each row of `x` normalised into `out`, with Whisper's epsilon.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        layer_norm(x, &self.weight, &self.bias, LAYER_NORM_EPS, out);
    }
}

fn values(tensor: &Tensor) -> Result<Vec<f32>> {
    tensor.flatten_all()?.to_vec1()
}

/// Whisper's sinusoidal position embeddings (`length × channels`: sines, then cosines), as
/// candle computes them.
fn sinusoids(length: usize, channels: usize) -> Vec<f32> {
    let half = channels / 2;
    let increment = 10000f32.ln() / (half - 1) as f32;
    let inverse: Vec<f32> = (0..half).map(|i| (i as f32 * -increment).exp()).collect();
    (0..length)
        .flat_map(|t| {
            let scaled: Vec<f32> = inverse.iter().map(|inv| t as f32 * inv).collect();
            let sines: Vec<f32> = scaled.iter().map(|s| s.sin()).collect();
            sines.into_iter().chain(scaled.into_iter().map(f32::cos))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::{model, test_support};
    use candle_core::{Device, Tensor};
    use candle_nn::VarBuilder;
    use candle_transformers::models::whisper::model::Whisper;

    /// The test model's encoder against candle's on the same weights, over a window of a real
    /// clip's spectrogram: the features agree to within float rounding of a few thousand sums.
    #[test]
    fn the_features_of_a_real_window_match_candles_encoder() {
        let dir = test_support::provisioned(test_support::TEST_MODEL_DIR);
        let mut ours = model::load(&dir, &Device::Cpu).unwrap();
        let (tensors, config) =
            crate::ct2::load(&dir.join("model.bin"), &Device::Cpu, vec![]).unwrap();
        let vb = VarBuilder::from_tensors(tensors, candle_core::DType::F32, &Device::Cpu);
        let mut candle = Whisper::load(&vb, config.clone()).unwrap().encoder;
        let pcm = crate::audio::decode(test_support::clip_audio("quick_brown_fox"), 60.0).unwrap();
        let mut samples = crate::audio::to_16k(pcm).unwrap();
        samples.resize(samples.len() + 30 * 16_000, 0.0);
        let mel = crate::mel::log_mel(&config, &samples, &ours.filters);
        let frames = mel.len() / config.num_mel_bins;
        let mel = Tensor::from_vec(mel, (1, config.num_mel_bins, frames), &Device::Cpu).unwrap();
        let window = mel.narrow(2, 0, 3000).unwrap();
        let expected = candle.forward(&window, true).unwrap();
        let features = ours.encoder.forward(&window).unwrap();
        assert_eq!(features.dims(), expected.dims());
        let difference = test_support::largest_difference(&features, &expected);
        assert!(difference < 2e-3, "largest difference {difference}");
    }
}
