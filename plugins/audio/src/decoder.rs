//! Whisper's text decoder, token by token with key/value caches: the plugin's own on the CPU
//! ([`CpuDecoder`]), one over candle tensors on the GPU backends ([`CandleDecoder`]), over the
//! same weights. Decoding a window goes through a [`Window`], whichever it is.

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

/// One window's decoding state: the cross-attention keys and values of its audio, computed
/// once, and the self-attention cache of the tokens fed so far.
pub trait Window {
    /// Forgets the tokens fed, for another decode of the same audio.
    fn restart(&mut self);

    /// How many tokens have been fed since the start.
    fn fed(&self) -> usize;

    /// Feeds `tokens`, which follow the ones fed so far; returns their hidden states after the
    /// final layer norm (`tokens × d_model`, row-major).
    fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;

    /// The logits of hidden states (`n × d_model` to `n × vocabulary`).
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

    /// A window over `features`, the encoder's output for it (`1 × frames × d_model`).
    pub fn window(&self, features: &Tensor) -> Result<Box<dyn Window + '_>> {
        Ok(match self {
            Self::Cpu(decoder) => Box::new(decoder.window(features)?),
            Self::Candle(decoder) => Box::new(decoder.window(features)?),
        })
    }
}
