//! The CLIP text encoder (`text_encoder/`, `text_encoder_2/`), configured from its diffusers
//! `config.json`: candle's SD CLIP config cannot be built from a file and its generic CLIP
//! lacks the GELU of OpenCLIP (SD 2.x, SDXL's second encoder). Weight names are those of
//! transformers' `CLIPTextModel`, plus `text_projection` for `CLIPTextModelWithProjection`
//! (SDXL's second encoder, whose pooled output conditions the UNet).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{
    Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear, linear_no_bias,
};
use serde::Deserialize;

/// A text encoder's `config.json` (unknown fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct ClipConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Width of the MLPs.
    pub intermediate_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Longest token sequence.
    #[serde(default = "seventy_seven")]
    pub max_position_embeddings: usize,
    /// `quick_gelu` (OpenAI CLIP) or `gelu` (OpenCLIP).
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    /// Layer-norm epsilon.
    #[serde(default = "layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Width of the text projection (`CLIPTextModelWithProjection`).
    #[serde(default)]
    pub projection_dim: Option<usize>,
}

fn seventy_seven() -> usize {
    77
}
fn quick_gelu() -> String {
    "quick_gelu".into()
}
fn layer_norm_eps() -> f64 {
    1e-5
}

/// Which hidden states the encoder returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipOutput {
    /// The last layer after the final layer norm (SD 1.x, 2.x).
    Last,
    /// The penultimate layer, without the final norm (SDXL).
    Penultimate,
}

struct Layer {
    norm1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// A CLIP text transformer.
pub struct ClipTextModel {
    token_embedding: Embedding,
    position_embedding: Embedding,
    layers: Vec<Layer>,
    final_layer_norm: LayerNorm,
    projection: Option<Linear>,
    heads: usize,
    quick_gelu: bool,
}

impl ClipTextModel {
    /// Builds the model from `vb` (rooted at the checkpoint, names start with `text_model.`),
    /// with `text_projection` (no bias) to `projection` wide when given.
    pub fn new(config: &ClipConfig, projection: Option<usize>, vb: VarBuilder) -> Result<Self> {
        let quick_gelu = match config.hidden_act.as_str() {
            "quick_gelu" => true,
            "gelu" => false,
            other => candle_core::bail!("unsupported text encoder activation {other}"),
        };
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let projection = projection
            .map(|width| linear_no_bias(h, width, vb.pp("text_projection")))
            .transpose()?;
        let vb = vb.pp("text_model");
        let emb = vb.pp("embeddings");
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp(format!("encoder.layers.{i}"));
                let attn = vb.pp("self_attn");
                Ok(Layer {
                    norm1: layer_norm(h, eps, vb.pp("layer_norm1"))?,
                    q: linear(h, h, attn.pp("q_proj"))?,
                    k: linear(h, h, attn.pp("k_proj"))?,
                    v: linear(h, h, attn.pp("v_proj"))?,
                    out: linear(h, h, attn.pp("out_proj"))?,
                    norm2: layer_norm(h, eps, vb.pp("layer_norm2"))?,
                    fc1: linear(h, config.intermediate_size, vb.pp("mlp.fc1"))?,
                    fc2: linear(config.intermediate_size, h, vb.pp("mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            token_embedding: embedding(config.vocab_size, h, emb.pp("token_embedding"))?,
            position_embedding: embedding(
                config.max_position_embeddings,
                h,
                emb.pp("position_embedding"),
            )?,
            layers,
            final_layer_norm: layer_norm(h, eps, vb.pp("final_layer_norm"))?,
            projection,
            heads: config.num_attention_heads,
            quick_gelu,
        })
    }

    /// The hidden states `(batch, tokens, hidden)` of token ids `(batch, tokens)`.
    pub fn forward(&self, ids: &Tensor, output: ClipOutput) -> Result<Tensor> {
        Ok(self.run(ids, output, None)?.0)
    }

    /// The hidden states and the pooled output `(batch, projection)`: the final layer's
    /// normed state at token `eos` (where the tokenizer put the end-of-text token), through
    /// the text projection. Only for a model built with a projection.
    pub fn forward_pooled(
        &self,
        ids: &Tensor,
        output: ClipOutput,
        eos: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (hidden, pooled) = self.run(ids, output, Some(eos))?;
        match pooled {
            Some(pooled) => Ok((hidden, pooled)),
            None => candle_core::bail!("this text encoder has no text projection"),
        }
    }

    fn run(
        &self,
        ids: &Tensor,
        output: ClipOutput,
        eos: Option<usize>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (_, len) = ids.dims2()?;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        let mut xs = self
            .token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.forward(&positions)?)?;
        let mask = causal_mask(len, xs.dtype(), xs.device())?;
        let keep = match output {
            ClipOutput::Last => self.layers.len(),
            ClipOutput::Penultimate => self.layers.len().saturating_sub(1),
        };
        for layer in &self.layers[..keep] {
            xs = self.layer(layer, &xs, &mask)?;
        }
        let hidden = match output {
            ClipOutput::Last => self.final_layer_norm.forward(&xs)?,
            ClipOutput::Penultimate => xs.clone(),
        };
        let (Some(eos), Some(projection)) = (eos, &self.projection) else {
            return Ok((hidden, None));
        };
        let last = match output {
            ClipOutput::Last => hidden.clone(),
            ClipOutput::Penultimate => {
                for layer in &self.layers[keep..] {
                    xs = self.layer(layer, &xs, &mask)?;
                }
                self.final_layer_norm.forward(&xs)?
            }
        };
        let pooled = projection.forward(&last.narrow(1, eos, 1)?.squeeze(1)?)?;
        Ok((hidden, Some(pooled)))
    }

    fn layer(&self, layer: &Layer, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, len, hidden) = xs.dims3()?;
        let head_dim = hidden / self.heads;
        let normed = layer.norm1.forward(xs)?;
        let split = |t: Tensor| {
            t.reshape((batch, len, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split((layer.q.forward(&normed)? * (head_dim as f64).powf(-0.5))?)?;
        let k = split(layer.k.forward(&normed)?)?;
        let v = split(layer.v.forward(&normed)?)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let attended = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, len, hidden))?;
        let xs = (xs + layer.out.forward(&attended)?)?;
        let hidden_mlp = layer.fc1.forward(&layer.norm2.forward(&xs)?)?;
        let activated = if self.quick_gelu {
            (&hidden_mlp * candle_nn::ops::sigmoid(&(&hidden_mlp * 1.702)?)?)?
        } else {
            hidden_mlp.gelu_erf()?
        };
        xs + layer.fc2.forward(&activated)?
    }
}

fn causal_mask(len: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..len)
        .flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (len, len), device)?
        .to_dtype(dtype)?
        .unsqueeze(0)?
        .unsqueeze(0)
}
