//! One decoder layer's weights as GGUF names them, whichever architecture wrote them: q, k
//! and v apart or fused (`attn_qkv`), gate and up apart or fused (`ffn_up` holding both), and
//! the optional parts (q/k/v biases, per-head q/k norms, norms after attention and after the
//! feed-forward block) taken where the file has them.

use super::tensors::{TensorReader, block_format};
use candle_core::quantized::gguf_file::Content;
use rbee_quant_cpu::{ActivationScales, QuantMatrix, QuantizedRows};
use std::io::{Read, Seek};

/// Tensors of a layer (`blk.N.<name>.weight`) this network knows; a file with others holds
/// something it would not compute, and goes to candle's models instead.
const LAYER_WEIGHTS: [&str; 14] = [
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_qkv",
    "attn_q_norm",
    "attn_k_norm",
    "attn_output",
    "post_attention_norm",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
    "post_ffw_norm",
];

/// The biases a layer may have (`blk.N.<name>.bias`).
const LAYER_BIASES: [&str; 3] = ["attn_q", "attn_k", "attn_v"];

/// Layer tensors multiplied as quantized matrices.
const MATRICES: [&str; 8] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_qkv",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

/// Tensors outside the layers this network knows.
const MODEL_TENSORS: [&str; 4] = [
    "token_embd.weight",
    "output_norm.weight",
    "output.weight",
    "rope_freqs.weight",
];

/// `Err` naming the first tensor of the file that is not one this network computes with, or
/// a weight matrix in a format the CPU kernels do not run.
pub(super) fn check_tensors(content: &Content) -> Result<(), String> {
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let info = &content.tensor_infos[name];
        let layer = layer_tensor(name);
        if !MODEL_TENSORS.contains(&name.as_str()) && layer.is_none() {
            return Err(format!("it does not know the tensor {name}"));
        }
        let is_matrix = ["token_embd.weight", "output.weight"].contains(&name.as_str())
            || layer.is_some_and(|(base, kind)| kind == "weight" && MATRICES.contains(&base));
        if is_matrix && block_format(info.ggml_dtype).is_none() {
            return Err(format!(
                "{name} is {:?}, which its kernels do not run",
                info.ggml_dtype
            ));
        }
    }
    Ok(())
}

/// `blk.N.<base>.<kind>` as `(base, kind)`, when it is a tensor this network knows.
fn layer_tensor(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (index, rest) = rest.split_once('.')?;
    index.parse::<usize>().ok()?;
    let (base, kind) = rest.rsplit_once('.')?;
    let known = match kind {
        "weight" => LAYER_WEIGHTS.contains(&base),
        "bias" => LAYER_BIASES.contains(&base),
        _ => false,
    };
    known.then_some((base, kind))
}

/// Weight matrices that multiply one input: stacked into one product where they share a
/// format, their outputs side by side in each row.
pub(super) struct Projection {
    parts: Vec<QuantMatrix>,
}

impl Projection {
    fn new(matrices: Vec<QuantMatrix>) -> Result<Self, String> {
        let mut parts: Vec<Vec<QuantMatrix>> = Vec::new();
        for matrix in matrices {
            match parts.last_mut() {
                Some(run) if run[0].format() == matrix.format() => run.push(matrix),
                _ => parts.push(vec![matrix]),
            }
        }
        let parts = parts
            .into_iter()
            .map(|run| {
                if run.len() == 1 {
                    Ok(run.into_iter().next().expect("a run is never empty"))
                } else {
                    QuantMatrix::stack(run).map_err(|e| e.to_string())
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Projection { parts })
    }

    /// Outputs per input row.
    pub fn rows(&self) -> usize {
        self.parts.iter().map(QuantMatrix::rows).sum()
    }

    /// How the inputs must be quantized: per super-block if any part asks for it (the other
    /// parts' kernels read such inputs as well).
    pub fn activation_scales(&self) -> ActivationScales {
        let per_super_block = ActivationScales::PerSuperBlock;
        match self
            .parts
            .iter()
            .any(|p| p.activation_scales() == per_super_block)
        {
            true => per_super_block,
            false => ActivationScales::PerBlock,
        }
    }

    /// Whether every part takes inputs of `cols` values.
    fn takes(&self, cols: usize) -> bool {
        self.parts.iter().all(|p| p.cols() == cols)
    }

    /// `out = x · selfᵀ` (`x.rows() x self.rows()`); `buffer` holds the parts' outputs when
    /// there are several.
    pub fn matmul(&self, x: &QuantizedRows, out: &mut [f32], buffer: &mut Vec<f32>) {
        if let [single] = self.parts.as_slice() {
            single.matmul(x, out);
            return;
        }
        let width = self.rows();
        let mut offset = 0;
        for part in &self.parts {
            let rows = part.rows();
            buffer.resize(x.rows() * rows, 0.0);
            part.matmul(x, buffer);
            for (out, part) in out.chunks_exact_mut(width).zip(buffer.chunks_exact(rows)) {
                out[offset..offset + rows].copy_from_slice(part);
            }
            offset += rows;
        }
    }
}

/// One layer's weights.
pub(super) struct Layer {
    pub attention_norm: Vec<f32>,
    /// Queries, keys and values side by side.
    pub qkv: Projection,
    /// Their biases, side by side, if the layer has them.
    pub qkv_bias: Option<Vec<f32>>,
    /// Per-head norms of queries and keys, before rotary embeddings.
    pub qk_norms: Option<(Vec<f32>, Vec<f32>)>,
    pub attention_output: QuantMatrix,
    pub post_attention_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    /// Gate and up side by side.
    pub gate_up: Projection,
    pub down: QuantMatrix,
    pub post_ffn_norm: Option<Vec<f32>>,
}

/// The widths a layer's tensors must have.
pub(super) struct LayerShape {
    pub hidden: usize,
    pub head_dim: usize,
    /// Width of the queries, keys and values side by side.
    pub qkv: usize,
    /// Width of the queries (the attention output's input).
    pub q_dim: usize,
    pub feed_forward: usize,
}

impl Layer {
    /// Reads layer `index`.
    pub fn load<R: Read + Seek>(
        tensors: &mut TensorReader<'_, R>,
        index: usize,
        shape: &LayerShape,
    ) -> Result<Self, String> {
        let name = |base: &str| format!("blk.{index}.{base}.weight");
        let optional = |tensors: &mut TensorReader<'_, R>, base: &str| {
            let name = name(base);
            if tensors.has(&name) {
                tensors.vector(&name).map(Some)
            } else {
                Ok(None)
            }
        };
        let qkv = if tensors.has(&name("attn_qkv")) {
            vec![tensors.matrix(&name("attn_qkv"))?]
        } else {
            vec![
                tensors.matrix(&name("attn_q"))?,
                tensors.matrix(&name("attn_k"))?,
                tensors.matrix(&name("attn_v"))?,
            ]
        };
        let gate_up = if tensors.has(&name("ffn_gate")) {
            vec![
                tensors.matrix(&name("ffn_gate"))?,
                tensors.matrix(&name("ffn_up"))?,
            ]
        } else {
            vec![tensors.matrix(&name("ffn_up"))?]
        };
        let qkv_bias = if tensors.has(&format!("blk.{index}.attn_q.bias")) {
            let mut bias = Vec::with_capacity(shape.qkv);
            for part in LAYER_BIASES {
                bias.extend(tensors.vector(&format!("blk.{index}.{part}.bias"))?);
            }
            Some(bias)
        } else {
            None
        };
        let qk_norms = match (
            optional(tensors, "attn_q_norm")?,
            optional(tensors, "attn_k_norm")?,
        ) {
            (Some(q), Some(k)) => Some((q, k)),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "layer {index} has a norm for queries or keys alone"
                ));
            }
        };
        let layer = Layer {
            attention_norm: tensors.vector(&name("attn_norm"))?,
            qkv: Projection::new(qkv).map_err(|e| format!("layer {index}: {e}"))?,
            qkv_bias,
            qk_norms,
            attention_output: tensors.matrix(&name("attn_output"))?,
            post_attention_norm: optional(tensors, "post_attention_norm")?,
            ffn_norm: tensors.vector(&name("ffn_norm"))?,
            gate_up: Projection::new(gate_up).map_err(|e| format!("layer {index}: {e}"))?,
            down: tensors.matrix(&name("ffn_down"))?,
            post_ffn_norm: optional(tensors, "post_ffw_norm")?,
        };
        let (qkv, gate_up) = (layer.qkv.rows(), layer.gate_up.rows());
        if qkv != shape.qkv || gate_up != 2 * shape.feed_forward {
            return Err(format!(
                "layer {index}: q, k and v have {qkv} rows and gate and up {gate_up}, not {} and {}",
                shape.qkv,
                2 * shape.feed_forward
            ));
        }
        let matrices_fit = (layer.attention_output.rows(), layer.attention_output.cols())
            == (shape.hidden, shape.q_dim)
            && layer.qkv.takes(shape.hidden)
            && layer.gate_up.takes(shape.hidden)
            && (layer.down.rows(), layer.down.cols()) == (shape.hidden, shape.feed_forward);
        let norms_fit = [&layer.attention_norm, &layer.ffn_norm]
            .into_iter()
            .chain(&layer.post_attention_norm)
            .chain(&layer.post_ffn_norm)
            .all(|n| n.len() == shape.hidden)
            && layer
                .qk_norms
                .iter()
                .all(|(q, k)| q.len() == shape.head_dim && k.len() == shape.head_dim);
        let bias_fits = layer.qkv_bias.as_ref().is_none_or(|b| b.len() == qkv);
        if !(matrices_fit && norms_fit && bias_fits) {
            return Err(format!(
                "layer {index}: a tensor's shape does not fit the metadata"
            ));
        }
        Ok(layer)
    }
}
