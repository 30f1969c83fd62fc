//! Whisper's text decoder, token by token with key/value caches: the plugin's own on the CPU
//! ([`CpuDecoder`]), one over candle tensors on the GPU backends ([`CandleDecoder`]), over the
//! same weights. Decoding goes through [`Windows`], whichever it is.

use crate::{candle_decoder::CandleDecoder, cpu_decoder::CpuDecoder};
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::Config;

/// Whisper's text decoder on the model's device.
pub enum Decoder {
    /// Plain f32 buffers, weights as compact as the model file has them.
    Cpu(CpuDecoder),
    /// candle tensors, for CUDA and Metal.
    Candle(CandleDecoder),
}

/// The decoding state of one or more windows decoded side by side: per window, the
/// cross-attention keys and values of its audio, computed once, and the self-attention cache of
/// the tokens fed to it. A step feeds every window its next tokens in one pass, so that each
/// weight is read from memory once for all of them.
pub trait Windows {
    /// Forgets the tokens fed to window `index`, for another decode of its audio.
    fn restart(&mut self, index: usize);

    /// How many tokens window `index` has been fed since its start.
    fn fed(&self, index: usize) -> usize;

    /// Feeds window `i` the tokens `tokens[i]`, which follow the ones fed to it (none leaves it
    /// as it is); returns each window's new hidden states after the final layer norm
    /// (`tokens × d_model`, row-major).
    fn forward(&mut self, tokens: &[&[u32]]) -> Result<Vec<Vec<f32>>>;

    /// The logits of hidden states of any of the windows (`n × d_model` to `n × vocabulary`).
    fn logits(&self, hidden: &[f32]) -> Result<Vec<f32>>;
}

impl Decoder {
    /// Loads the decoder from `vb` (the model's `model.decoder` prefix).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        if vb.device().is_cpu() {
            return CpuDecoder::load(vb, config).map(Self::Cpu);
        }
        CandleDecoder::load(vb, config).map(Self::Candle)
    }

    /// Windows over `features`, the encoder's output for each (`1 × frames × d_model`).
    pub fn windows(&self, features: &[Tensor]) -> Result<Box<dyn Windows + '_>> {
        Ok(match self {
            Self::Cpu(decoder) => Box::new(decoder.windows(features)?),
            Self::Candle(decoder) => Box::new(decoder.windows(features)?),
        })
    }
}
