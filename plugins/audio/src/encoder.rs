//! The audio encoder: the plugin's own on the CPU ([`CpuEncoder`]), candle's on the GPU
//! backends, over the same weights.

use crate::cpu_encoder::CpuEncoder;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{
    Config,
    model::{AudioEncoder, Whisper},
};

/// Whisper's audio encoder on the model's device.
pub enum Encoder {
    /// Plain f32 buffers and the gemm crate.
    Cpu(CpuEncoder),
    /// candle's encoder, for CUDA and Metal.
    Candle(AudioEncoder),
}

impl Encoder {
    /// Loads the encoder from the model's weights (`vb` at the model's root).
    pub fn load(vb: &VarBuilder, config: &Config) -> Result<Self> {
        if vb.device().is_cpu() {
            return CpuEncoder::load(vb.pp("model.encoder"), config).map(Self::Cpu);
        }
        let Whisper { encoder, .. } = Whisper::load(vb, config.clone())?;
        Ok(Self::Candle(encoder))
    }

    /// The audio features of one window's mel spectrogram (`1 × mels × frames`), as
    /// `1 × frames/2 × d_model`.
    pub fn forward(&mut self, mel: &Tensor) -> Result<Tensor> {
        match self {
            Self::Cpu(encoder) => encoder.forward(mel),
            Self::Candle(encoder) => encoder.forward(mel, true),
        }
    }
}
