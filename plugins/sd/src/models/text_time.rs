//! SDXL's added time/text conditioning: the pooled text embedding and the size/crop time ids,
//! embedded by `add_embedding` and added to the UNet's time embedding.

use crate::config::{TIME_IDS, TextTimeConfig};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::stable_diffusion::embeddings::{TimestepEmbedding, Timesteps};

/// The added conditioning of a batch.
#[derive(Debug, Clone)]
pub struct TextTime {
    /// Pooled, projected text embeddings `(batch, pooled_dim)`.
    pub pooled: Tensor,
    /// Time ids `(batch, 6)` in f32: see [`TextTime::time_ids`].
    pub time_ids: Tensor,
}

impl TextTime {
    /// The time ids of a `width` x `height` image generated whole (uncropped at its own size):
    /// `[height, width, 0, 0, height, width]`, one row per image of the batch.
    pub fn time_ids(width: u32, height: u32, batch: usize, device: &Device) -> Result<Tensor> {
        let (w, h) = (width as f32, height as f32);
        Tensor::new(&[[h, w, 0.0, 0.0, h, w]], device)?.repeat((batch, 1))
    }

    /// Row `index` of the batch.
    pub fn row(&self, index: usize) -> Result<Self> {
        Ok(Self {
            pooled: self.pooled.narrow(0, index, 1)?,
            time_ids: self.time_ids.narrow(0, index, 1)?,
        })
    }
}

/// `add_embedding` with the sinusoidal projection of the time ids in front of it.
#[derive(Debug)]
pub struct TextTimeEmbedding {
    time_proj: Timesteps,
    embedding: TimestepEmbedding,
}

impl TextTimeEmbedding {
    /// Loads `add_embedding.linear_1/linear_2` from `vb` (the UNet's root) for a UNet whose time
    /// embedding is `time_embed_dim` wide.
    pub fn new(
        vb: VarBuilder,
        config: TextTimeConfig,
        time_embed_dim: usize,
        flip_sin_to_cos: bool,
        freq_shift: f64,
    ) -> Result<Self> {
        let input = config.pooled_dim + TIME_IDS * config.time_embed_dim;
        Ok(Self {
            time_proj: Timesteps::new(config.time_embed_dim, flip_sin_to_cos, freq_shift),
            embedding: TimestepEmbedding::new(vb.pp("add_embedding"), input, time_embed_dim)?,
        })
    }

    /// What to add to the time embedding, in `dtype`. The sinusoids are computed in f32: time
    /// ids reach the thousands, where f16 arguments would be off by a large part of a turn.
    pub fn forward(&self, added: &TextTime, dtype: DType) -> Result<Tensor> {
        let batch = added.pooled.dim(0)?;
        let times = self
            .time_proj
            .forward(&added.time_ids.to_dtype(DType::F32)?.flatten_all()?)?
            .reshape((batch, ()))?
            .to_dtype(dtype)?;
        let input = Tensor::cat(&[&added.pooled.to_dtype(dtype)?, &times], 1)?;
        self.embedding.forward(&input)
    }
}
