//! Whisper's text decoder on the CPU over plain f32 buffers and [`WeightMatrix`] weights. It
//! computes what candle's `whisper::model::TextDecoder` computes (the same weights, the same
//! tanh GELU), for one or more windows side by side ([`CpuWindows`]):
//! - the cross-attention keys and values of the window's audio are computed once, the keys
//!   transposed so that a query's scores are a sum of contiguous rows;
//! - the self-attention keys and values of the tokens fed so far are kept, so a step feeds one
//!   token;
//! - a step's products read f16 weights when the model file has them (half the memory traffic,
//!   which is what a one-token step waits for) and never repack them, as a general matrix
//!   product would;
//! - a step of several windows multiplies all their rows together, reading each weight once.

use crate::{
    cpu_encoder::Norm,
    decoder::Windows,
    matmul::{Matrix, Threads, product},
    vector_math::{exp_shifted, gelu_tanh},
    weights::WeightMatrix,
};
use candle_core::{Result, Tensor, bail};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::Config;
use rayon::prelude::*;

/// The decoder's weights.
pub struct CpuDecoder {
    /// Token embeddings, `vocabulary × width`; tied, they are also the output layer.
    embedding: WeightMatrix,
    /// Learned position embeddings, `positions × width`.
    positions: Vec<f32>,
    blocks: Vec<Block>,
    ln: Norm,
    width: usize,
    heads: usize,
    /// Whisper scales queries and keys each by `head_width^-¼`.
    scale: f32,
}

/// A linear layer: `y = x·Wᵀ + b`.
struct Dense {
    weight: WeightMatrix,
    bias: Vec<f32>,
}

struct Block {
    attn_ln: Norm,
    /// Self-attention queries, keys and values in one: `3·width × width`.
    qkv: Dense,
    attn_out: Dense,
    cross_ln: Norm,
    cross_query: Dense,
    cross_key: WeightMatrix,
    cross_value: Dense,
    cross_out: Dense,
    mlp_ln: Norm,
    fc1: Dense,
    fc2: Dense,
}

/// The decoding state of windows decoded side by side.
pub struct CpuWindows<'a> {
    decoder: &'a CpuDecoder,
    windows: Vec<WindowState>,
}

/// One window's decoding state.
struct WindowState {
    /// Per layer, the audio's cross-attention keys, scaled and transposed (`width × frames`:
    /// head `h` owns rows `h·head_width..`), and values (`frames × width`).
    audio: Vec<(Vec<f32>, Vec<f32>)>,
    frames: usize,
    /// Per layer, the scaled self-attention keys and the values of the tokens fed
    /// (`fed × width` each).
    cache: Vec<(Vec<f32>, Vec<f32>)>,
    fed: usize,
}

/// Where a row of a step belongs: its window, and its position among that window's tokens.
#[derive(Clone, Copy)]
struct Row {
    window: usize,
    position: usize,
}

impl CpuDecoder {
    /// Loads the decoder from `vb` (the model's `model.decoder` prefix).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let width = config.d_model;
        let heads = config.decoder_attention_heads;
        let blocks = (0..config.decoder_layers)
            .map(|i| Block::load(vb.pp(format!("layers.{i}")), width))
            .collect::<Result<_>>()?;
        let vocabulary = config.vocab_size;
        let positions = config.max_target_positions;
        Ok(Self {
            embedding: matrix(&vb, "embed_tokens.weight", vocabulary, width)?,
            positions: values(&vb.get((positions, width), "embed_positions.weight")?)?,
            blocks,
            ln: Norm::load(vb.pp("layer_norm"), width)?,
            width,
            heads,
            scale: ((width / heads) as f32).powf(-0.25),
        })
    }

    /// Windows over `features`, the encoder's output for each (`1 × frames × width`), with no
    /// token fed yet.
    pub fn windows(&self, features: &[Tensor]) -> Result<CpuWindows<'_>> {
        let windows = features
            .iter()
            .map(|features| self.window(features))
            .collect::<Result<_>>()?;
        Ok(CpuWindows {
            decoder: self,
            windows,
        })
    }

    fn window(&self, features: &Tensor) -> Result<WindowState> {
        let (_, frames, width) = features.dims3()?;
        if width != self.width {
            bail!(
                "audio features {width} wide, the decoder takes {}",
                self.width
            );
        }
        let features = values(features)?;
        let x = Matrix::rows(&features, frames, width, width);
        let audio = self
            .blocks
            .iter()
            .map(|block| {
                let key_weights = block.cross_key.to_f32();
                let mut keys = vec![0f32; width * frames];
                let weights = Matrix::rows(&key_weights, width, width, width);
                product(
                    &mut keys,
                    frames,
                    weights,
                    x.t(),
                    self.scale,
                    false,
                    Threads::All,
                );
                let value_weights = block.cross_value.weight.to_f32();
                let mut values = vec![0f32; frames * width];
                let weights = Matrix::rows(&value_weights, width, width, width);
                product(&mut values, width, x, weights.t(), 1.0, false, Threads::All);
                add_bias(&mut values, &block.cross_value.bias);
                (keys, values)
            })
            .collect();
        Ok(WindowState {
            audio,
            frames,
            cache: vec![(Vec::new(), Vec::new()); self.blocks.len()],
            fed: 0,
        })
    }
}

impl Windows for CpuWindows<'_> {
    fn restart(&mut self, index: usize) {
        let window = &mut self.windows[index];
        for (keys, values) in &mut window.cache {
            keys.clear();
            values.clear();
        }
        window.fed = 0;
    }

    fn fed(&self, index: usize) -> usize {
        self.windows[index].fed
    }

    fn forward(&mut self, tokens: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let decoder = self.decoder;
        let width = decoder.width;
        if tokens.len() != self.windows.len() {
            bail!(
                "tokens for {} of {} windows",
                tokens.len(),
                self.windows.len()
            );
        }
        let positions = decoder.positions.len() / width;
        let mut rows = Vec::new();
        let mut x = Vec::new();
        for (index, (window, tokens)) in self.windows.iter().zip(tokens).enumerate() {
            if window.fed + tokens.len() > positions {
                bail!(
                    "{} tokens, the decoder takes {positions}",
                    window.fed + tokens.len()
                );
            }
            for (i, &token) in tokens.iter().enumerate() {
                if token as usize >= decoder.embedding.rows() {
                    bail!("token {token} is outside the vocabulary");
                }
                let position = window.fed + i;
                let embedding = decoder.embedding.row(token as usize);
                let at = &decoder.positions[position * width..][..width];
                x.extend(embedding.iter().zip(at).map(|(e, p)| e + p));
                rows.push(Row {
                    window: index,
                    position,
                });
            }
        }
        let mut scratch = Scratch::new(rows.len(), width);
        for (layer, block) in decoder.blocks.iter().enumerate() {
            block.self_attention(
                &mut x,
                &rows,
                layer,
                &mut self.windows,
                decoder,
                &mut scratch,
            );
            block.cross_attention(&mut x, &rows, layer, &self.windows, decoder, &mut scratch);
            block.mlp(&mut x, &mut scratch);
        }
        let mut hidden = vec![0f32; x.len()];
        decoder.ln.forward(&x, &mut hidden);
        let mut rest = hidden.as_slice();
        let mut each = Vec::with_capacity(tokens.len());
        for (window, tokens) in self.windows.iter_mut().zip(tokens) {
            window.fed += tokens.len();
            let (own, others) = rest.split_at(tokens.len() * width);
            each.push(own.to_vec());
            rest = others;
        }
        Ok(each)
    }

    fn logits(&self, hidden: &[f32]) -> Result<Vec<f32>> {
        let embedding = &self.decoder.embedding;
        let mut logits = vec![0f32; hidden.len() / self.decoder.width * embedding.rows()];
        embedding.multiply(hidden, &mut logits);
        Ok(logits)
    }
}

/// A step's intermediate buffers, reused by every layer.
struct Scratch {
    normed: Vec<f32>,
    projected: Vec<f32>,
    qkv: Vec<f32>,
    attended: Vec<f32>,
    hidden: Vec<f32>,
}

impl Scratch {
    fn new(rows: usize, width: usize) -> Self {
        Self {
            normed: vec![0.0; rows * width],
            projected: vec![0.0; rows * width],
            qkv: vec![0.0; rows * 3 * width],
            attended: vec![0.0; rows * width],
            hidden: vec![0.0; rows * 4 * width],
        }
    }
}

impl Block {
    fn load(vb: VarBuilder, width: usize) -> Result<Self> {
        let attn = vb.pp("self_attn");
        let cross = vb.pp("encoder_attn");
        let qkv_weights = ["q_proj", "k_proj", "v_proj"]
            .iter()
            .map(|name| values(&attn.get((width, width), &format!("{name}.weight"))?))
            .collect::<Result<Vec<_>>>()?
            .concat();
        let bias = |name: &str| values(&attn.get(width, &format!("{name}.bias"))?);
        Ok(Self {
            attn_ln: Norm::load(vb.pp("self_attn_layer_norm"), width)?,
            qkv: Dense {
                weight: WeightMatrix::new(qkv_weights, 3 * width, width),
                bias: [bias("q_proj")?, vec![0.0; width], bias("v_proj")?].concat(),
            },
            attn_out: Dense::load(attn.pp("out_proj"), width, width)?,
            cross_ln: Norm::load(vb.pp("encoder_attn_layer_norm"), width)?,
            cross_query: Dense::load(cross.pp("q_proj"), width, width)?,
            cross_key: matrix(&cross, "k_proj.weight", width, width)?,
            cross_value: Dense::load(cross.pp("v_proj"), width, width)?,
            cross_out: Dense::load(cross.pp("out_proj"), width, width)?,
            mlp_ln: Norm::load(vb.pp("final_layer_norm"), width)?,
            fc1: Dense::load(vb.pp("fc1"), width, 4 * width)?,
            fc2: Dense::load(vb.pp("fc2"), 4 * width, width)?,
        })
    }

    /// Adds the causal self-attention of the new rows `x` over every token fed to their
    /// window, theirs included, after appending their keys and values to the window's cache
    /// of layer `layer`.
    fn self_attention(
        &self,
        x: &mut [f32],
        rows: &[Row],
        layer: usize,
        windows: &mut [WindowState],
        decoder: &CpuDecoder,
        scratch: &mut Scratch,
    ) {
        let width = decoder.width;
        let Scratch {
            normed,
            qkv,
            attended,
            ..
        } = scratch;
        self.attn_ln.forward(x, normed);
        self.qkv.forward(normed, qkv);
        for (row, qkv) in rows.iter().zip(qkv.chunks_exact_mut(3 * width)) {
            qkv[..2 * width]
                .iter_mut()
                .for_each(|v| *v *= decoder.scale);
            let (keys, values) = &mut windows[row.window].cache[layer];
            keys.extend_from_slice(&qkv[width..2 * width]);
            values.extend_from_slice(&qkv[2 * width..]);
        }
        let windows = &*windows;
        let head_width = width / decoder.heads;
        attended
            .par_chunks_mut(head_width)
            .enumerate()
            .for_each(|(index, out)| {
                let (row, head) = (index / decoder.heads, index % decoder.heads);
                let Row { window, position } = rows[row];
                let (keys, values) = &windows[window].cache[layer];
                let column = head * head_width;
                let query = &qkv[row * 3 * width + column..][..head_width];
                let seen = position + 1;
                let mut scores: Vec<f32> = (0..seen)
                    .map(|t| dot(query, &keys[t * width + column..][..head_width]))
                    .collect();
                let sum = exp_shifted(&mut scores);
                weighted_values(&scores, sum, &values[column..], width, out);
            });
        self.attn_out.add_to(attended, &mut scratch.projected, x);
    }

    /// Adds the attention of the rows `x` over their window's audio.
    fn cross_attention(
        &self,
        x: &mut [f32],
        rows: &[Row],
        layer: usize,
        windows: &[WindowState],
        decoder: &CpuDecoder,
        scratch: &mut Scratch,
    ) {
        let width = decoder.width;
        let Scratch {
            normed,
            attended,
            projected,
            ..
        } = scratch;
        self.cross_ln.forward(x, normed);
        self.cross_query.forward(normed, projected);
        projected.iter_mut().for_each(|v| *v *= decoder.scale);
        let head_width = width / decoder.heads;
        attended
            .par_chunks_mut(head_width)
            .enumerate()
            .for_each_init(Vec::new, |scores, (index, out)| {
                let (row, head) = (index / decoder.heads, index % decoder.heads);
                let window = &windows[rows[row].window];
                let (keys, values) = &window.audio[layer];
                let frames = window.frames;
                let column = head * head_width;
                let query = &projected[row * width + column..][..head_width];
                scores.clear();
                scores.resize(frames, 0.0);
                for (j, q) in query.iter().enumerate() {
                    axpy(*q, &keys[(column + j) * frames..][..frames], scores);
                }
                let sum = exp_shifted(scores);
                weighted_values(scores, sum, &values[column..], width, out);
            });
        self.cross_out.add_to(attended, projected, x);
    }

    /// Adds the MLP of the rows `x`.
    fn mlp(&self, x: &mut [f32], scratch: &mut Scratch) {
        let Scratch {
            normed,
            hidden,
            projected,
            ..
        } = scratch;
        self.mlp_ln.forward(x, normed);
        self.fc1.forward(normed, hidden);
        gelu_tanh(hidden);
        self.fc2.add_to(hidden, projected, x);
    }
}

impl Dense {
    fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> Result<Self> {
        Ok(Self {
            weight: matrix(&vb, "weight", outputs, inputs)?,
            bias: values(&vb.get(outputs, "bias")?)?,
        })
    }

    /// `out = x·Wᵀ + b` for each row of `x`.
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        self.weight.multiply(x, out);
        add_bias(out, &self.bias);
    }

    /// `target += x·Wᵀ + b` for each row of `x`, through `scratch` (as long as `target`).
    fn add_to(&self, x: &[f32], scratch: &mut [f32], target: &mut [f32]) {
        self.forward(x, scratch);
        target
            .iter_mut()
            .zip(scratch.iter())
            .for_each(|(t, v)| *t += v);
    }
}

/// Adds `bias` to each of the rows of `out`.
fn add_bias(out: &mut [f32], bias: &[f32]) {
    for row in out.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

/// `out = Σₜ weights[t]/sum · value(t)`, value `t` being the `out.len()` values from
/// `values[t·stride]` (one head's columns of the rows of all heads).
fn weighted_values(weights: &[f32], sum: f32, values: &[f32], stride: usize, out: &mut [f32]) {
    out.fill(0.0);
    for (t, weight) in weights.iter().enumerate() {
        axpy(weight / sum, &values[t * stride..][..out.len()], out);
    }
}

/// `y += a·x`.
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y = x.mul_add(a, *y));
}

/// The dot product of two equally long rows (a head's 64 values), in eight independent sums
/// so that it vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut sums = [0f32; LANES];
    let whole = a.len() / LANES * LANES;
    for (a, b) in a[..whole]
        .chunks_exact(LANES)
        .zip(b[..whole].chunks_exact(LANES))
    {
        for lane in 0..LANES {
            sums[lane] = a[lane].mul_add(b[lane], sums[lane]);
        }
    }
    let tail: f32 = a[whole..].iter().zip(&b[whole..]).map(|(a, b)| a * b).sum();
    sums.iter().sum::<f32>() + tail
}

fn matrix(vb: &VarBuilder, name: &str, rows: usize, cols: usize) -> Result<WeightMatrix> {
    Ok(WeightMatrix::new(
        values(&vb.get((rows, cols), name)?)?,
        rows,
        cols,
    ))
}

fn values(tensor: &Tensor) -> Result<Vec<f32>> {
    tensor.flatten_all()?.to_vec1()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{candle_decoder::CandleDecoder, ct2, model, test_support};
    use candle_core::Device;

    fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    /// The test model's decoder against the candle one on the same weights, over two real
    /// windows side by side: prompts of different lengths, then greedy steps that feed the
    /// second window only every other step, then the same after a restart. Hidden states and
    /// logits agree to within float rounding, so no row reads another window's state.
    #[test]
    fn steps_of_two_windows_match_the_candle_decoder() {
        let dir = test_support::provisioned(test_support::TEST_MODEL_DIR);
        let mut loaded = model::load(&dir, &Device::Cpu).unwrap();
        let (tensors, config) = ct2::load(&dir.join("model.bin"), &Device::Cpu, vec![]).unwrap();
        let vb = VarBuilder::from_tensors(tensors, candle_core::DType::F32, &Device::Cpu);
        let ours = CpuDecoder::load(vb.pp("model.decoder"), &config).unwrap();
        let candle = CandleDecoder::load(vb.pp("model.decoder"), &config).unwrap();
        let features = ["quick_brown_fox", "counting"].map(|name| {
            test_support::first_window_features(&mut loaded, &test_support::clip_samples(name))
        });
        let (mut ours, mut theirs) = (
            ours.windows(&features).unwrap(),
            candle.windows(&features).unwrap(),
        );
        let t = &loaded.tokens;
        for _ in 0..2 {
            let mut tokens = [
                vec![t.sot, t.no_timestamps, 440],
                vec![t.sot, t.no_timestamps],
            ];
            for window in 0..2 {
                ours.restart(window);
                theirs.restart(window);
            }
            for step in 0..6 {
                let fed = [ours.fed(0), ours.fed(1)];
                assert_eq!(fed, [theirs.fed(0), theirs.fed(1)]);
                let second: &[u32] = match step % 2 {
                    0 => &tokens[1][fed[1]..],
                    _ => &[],
                };
                let feed = [&tokens[0][fed[0]..], second];
                let fed_now = feed.map(<[u32]>::len);
                let hidden = ours.forward(&feed).unwrap();
                let expected = theirs.forward(&feed).unwrap();
                for (window, (hidden, expected)) in hidden.iter().zip(&expected).enumerate() {
                    assert_eq!(hidden.len(), fed_now[window] * config.d_model);
                    assert!(largest_difference(hidden, expected) < 1e-3);
                    if hidden.is_empty() {
                        continue;
                    }
                    let logits = ours.logits(hidden).unwrap();
                    let difference = largest_difference(&logits, &theirs.logits(expected).unwrap());
                    assert!(difference < 2e-3, "largest difference {difference}");
                    let last = &logits[logits.len() - config.vocab_size..];
                    let best = (0..last.len()).max_by(|&a, &b| last[a].total_cmp(&last[b]));
                    tokens[window].push(best.unwrap() as u32);
                }
            }
            assert_eq!([tokens[0].len(), tokens[1].len()], [9, 5]);
            assert_ne!(
                tokens[0][3..5],
                tokens[1][2..4],
                "two clips, two transcripts"
            );
        }
    }
}
