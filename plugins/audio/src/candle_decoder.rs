//! Whisper's text decoder over candle tensors, for CUDA and Metal, run token by token with
//! key/value caches. candle's `whisper::model::TextDecoder` has no self-attention cache, so
//! every step re-runs the whole token sequence (and each decode recomputes the cross-attention
//! keys and values). This one reads the same weights (Hugging Face names under
//! `model.decoder`) and computes the same function, but keeps the self-attention keys and values
//! of the tokens fed so far and computes the cross-attention ones once per window
//! ([`CandleWindows`]).

use crate::decoder::Windows;
use candle_core::{Device, IndexOp, Module, Result, Tensor};
use candle_nn::{
    LayerNorm, Linear, VarBuilder, kv_cache::KvCache, layer_norm, linear, linear_no_bias,
    ops::softmax_last_dim,
};
use candle_transformers::models::whisper::Config;

/// The layer norms' epsilon, as Whisper's.
const LAYER_NORM_EPS: f64 = 1e-5;

/// The decoder's weights.
pub struct CandleDecoder {
    token_embedding: Tensor,
    /// The token embeddings again, tied, as the output layer.
    output: Linear,
    positional_embedding: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    positions: usize,
    heads: usize,
    /// Whisper scales queries and keys each by `head_dim^-¼`.
    scale: f64,
}

/// The decoding state of windows decoded side by side (one after another on the device: the
/// GPU has the bandwidth that sharing weight reads saves on the CPU).
pub struct CandleWindows<'a> {
    decoder: &'a CandleDecoder,
    /// Per window, its audio's keys and values and its tokens' cache.
    windows: Vec<(AudioKeys, TokenCache)>,
}

/// The cross-attention keys (transposed) and values of one window's audio features, per layer.
struct AudioKeys(Vec<(Tensor, Tensor)>);

/// The self-attention keys and values of the tokens fed so far, per layer.
struct TokenCache {
    layers: Vec<KvCache>,
    len: usize,
}

struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
}

struct Block {
    attn: Attention,
    attn_ln: LayerNorm,
    cross_attn: Attention,
    cross_attn_ln: LayerNorm,
    mlp_linear1: Linear,
    mlp_linear2: Linear,
    mlp_ln: LayerNorm,
}

impl CandleDecoder {
    /// Loads the decoder from `vb` (the model's `model.decoder` prefix).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let d = config.d_model;
        let blocks = (0..config.decoder_layers)
            .map(|i| Block::load(d, vb.pp(format!("layers.{i}"))))
            .collect::<Result<_>>()?;
        let token_embedding = vb.get((config.vocab_size, d), "embed_tokens.weight")?;
        Ok(Self {
            output: Linear::new(token_embedding.clone(), None),
            token_embedding,
            positional_embedding: vb
                .get((config.max_target_positions, d), "embed_positions.weight")?,
            blocks,
            ln: layer_norm(d, LAYER_NORM_EPS, vb.pp("layer_norm"))?,
            positions: config.max_target_positions,
            heads: config.decoder_attention_heads,
            scale: ((d / config.decoder_attention_heads) as f64).powf(-0.25),
        })
    }

    /// Windows over `features`, the encoder's output for each (`1 × frames × d_model`), with
    /// no token fed yet.
    pub fn windows(&self, features: &[Tensor]) -> Result<CandleWindows<'_>> {
        let windows = features
            .iter()
            .map(|features| Ok((self.audio_keys(features)?, self.token_cache())))
            .collect::<Result<_>>()?;
        Ok(CandleWindows {
            decoder: self,
            windows,
        })
    }

    /// The cross-attention keys and values of `features`, for every decode of that window.
    fn audio_keys(&self, features: &Tensor) -> Result<AudioKeys> {
        let scale = self.scale;
        self.blocks
            .iter()
            .map(|block| {
                let attn = &block.cross_attn;
                let keys = (self.split_heads(&attn.key.forward(features)?)?.t()? * scale)?;
                let values = self
                    .split_heads(&attn.value.forward(features)?)?
                    .contiguous()?;
                Ok((keys, values))
            })
            .collect::<Result<_>>()
            .map(AudioKeys)
    }

    /// An empty self-attention cache, for one decode.
    fn token_cache(&self) -> TokenCache {
        TokenCache {
            layers: self
                .blocks
                .iter()
                .map(|_| KvCache::new(2, self.positions))
                .collect(),
            len: 0,
        }
    }

    /// Feeds `tokens`, which follow the ones already in `cache`, and returns their hidden
    /// states after the final layer norm (`1 × tokens × d_model`).
    fn forward(&self, tokens: &[u32], audio: &AudioKeys, cache: &mut TokenCache) -> Result<Tensor> {
        let device = self.token_embedding.device();
        let ids = Tensor::new(tokens, device)?;
        let positions = self
            .positional_embedding
            .narrow(0, cache.len, tokens.len())?;
        let mut x = (self.token_embedding.index_select(&ids, 0)? + positions)?.unsqueeze(0)?;
        let mask = causal_mask(tokens.len(), cache.len, device)?;
        let scale = self.scale;
        for ((block, layer), (keys, values)) in
            self.blocks.iter().zip(&mut cache.layers).zip(&audio.0)
        {
            let h = block.attn_ln.forward(&x)?;
            let attn = &block.attn;
            let q = (self.split_heads(&attn.query.forward(&h)?)? * scale)?;
            let k = (self.split_heads(&attn.key.forward(&h)?)? * scale)?;
            let v = self.split_heads(&attn.value.forward(&h)?)?.contiguous()?;
            let (k, v) = layer.append(&k, &v)?;
            x = (&x + self.attend(attn, &q, &k.t()?, &v, mask.as_ref())?)?;
            let h = block.cross_attn_ln.forward(&x)?;
            let cross = &block.cross_attn;
            let q = (self.split_heads(&cross.query.forward(&h)?)? * scale)?;
            x = (&x + self.attend(cross, &q, keys, values, None)?)?;
            let h = block.mlp_ln.forward(&x)?;
            let mlp = block
                .mlp_linear2
                .forward(&block.mlp_linear1.forward(&h)?.gelu()?)?;
            x = (x + mlp)?;
        }
        cache.len += tokens.len();
        self.ln.forward(&x)
    }

    /// `1 × n × d_model` to `1 × heads × n × head_dim`.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, n, d) = x.dims3()?;
        x.reshape((batch, n, self.heads, d / self.heads))?
            .transpose(1, 2)
    }

    /// Scaled dot-product attention of queries over transposed keys and values, heads merged
    /// and projected by `attn`'s output layer.
    fn attend(
        &self,
        attn: &Attention,
        q: &Tensor,
        keys_t: &Tensor,
        values: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut scores = q.matmul(keys_t)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weighted = softmax_last_dim(&scores)?
            .matmul(values)?
            .transpose(1, 2)?
            .flatten_from(2)?;
        attn.out.forward(&weighted)
    }
}

impl Windows for CandleWindows<'_> {
    fn restart(&mut self, index: usize) {
        self.windows[index].1 = self.decoder.token_cache();
    }

    fn fed(&self, index: usize) -> usize {
        self.windows[index].1.len
    }

    fn forward(&mut self, tokens: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        if tokens.len() != self.windows.len() {
            candle_core::bail!(
                "tokens for {} of {} windows",
                tokens.len(),
                self.windows.len()
            );
        }
        self.windows
            .iter_mut()
            .zip(tokens)
            .map(|((audio, cache), tokens)| {
                if tokens.is_empty() {
                    return Ok(Vec::new());
                }
                let hidden = self.decoder.forward(tokens, audio, cache)?;
                hidden.flatten_all()?.to_vec1()
            })
            .collect()
    }

    fn logits(&self, hidden: &[f32]) -> Result<Vec<f32>> {
        let device = self.decoder.token_embedding.device();
        let hidden = Tensor::from_slice(hidden, hidden.len(), device)?;
        let width = self.decoder.token_embedding.dim(1)?;
        let rows = hidden.reshape((1, hidden.elem_count() / width, width))?;
        self.decoder
            .output
            .forward(&rows)?
            .i(0)?
            .flatten_all()?
            .to_vec1()
    }
}

impl Attention {
    fn load(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            query: linear(d, d, vb.pp("q_proj"))?,
            key: linear_no_bias(d, d, vb.pp("k_proj"))?,
            value: linear(d, d, vb.pp("v_proj"))?,
            out: linear(d, d, vb.pp("out_proj"))?,
        })
    }
}

impl Block {
    fn load(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            attn: Attention::load(d, vb.pp("self_attn"))?,
            attn_ln: layer_norm(d, LAYER_NORM_EPS, vb.pp("self_attn_layer_norm"))?,
            cross_attn: Attention::load(d, vb.pp("encoder_attn"))?,
            cross_attn_ln: layer_norm(d, LAYER_NORM_EPS, vb.pp("encoder_attn_layer_norm"))?,
            mlp_linear1: linear(d, 4 * d, vb.pp("fc1"))?,
            mlp_linear2: linear(4 * d, d, vb.pp("fc2"))?,
            mlp_ln: layer_norm(d, LAYER_NORM_EPS, vb.pp("final_layer_norm"))?,
        })
    }
}

/// The mask keeping each of `n` new tokens from attending to the ones after it
/// (`n × (past + n)`); none for a single token, which may see everything before it.
fn causal_mask(n: usize, past: usize, device: &Device) -> Result<Option<Tensor>> {
    if n < 2 {
        return Ok(None);
    }
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| {
            (0..past + n).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })
        })
        .collect();
    Tensor::from_vec(mask, (n, past + n), device).map(Some)
}
