//! CTranslate2 (faster-whisper) `model.bin` files: parsed, converted to the tensor names and
//! layout of Hugging Face's Whisper, and the model's [`Config`] derived from the shapes.
//!
//! The file is little-endian: a u32 format version (6), the spec name, a u32 revision, a u32
//! variable count, then for each variable its name, a u8 rank, u32 dims, a u8 dtype
//! (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), a u32 byte count and the data; then a u32 alias
//! count and (alias, target) name pairs. Names are u16-length-prefixed and NUL-terminated.

use crate::error::AudioError;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::whisper::Config;
use std::{collections::HashMap, path::Path};

/// The format version this reader understands.
const VERSION: u32 = 6;

/// One variable as stored.
#[derive(Debug)]
struct Variable<'a> {
    shape: Vec<usize>,
    dtype: u8,
    data: &'a [u8],
}

/// Reads a CTranslate2 Whisper `model.bin` into Hugging Face-named f32 tensors on `device`,
/// and the config its shapes imply. `suppress_tokens` comes from the model's `config.json`.
pub fn load(
    path: &Path,
    device: &Device,
    suppress_tokens: Vec<u32>,
) -> Result<(HashMap<String, Tensor>, Config), AudioError> {
    let fail = |reason: String| AudioError::model_load(path, reason);
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let variables = parse(&bytes).map_err(fail)?;
    let config = derive_config(&variables, suppress_tokens).map_err(fail)?;
    let mut tensors = HashMap::new();
    for (name, variable) in &variables {
        if variable.shape.is_empty() {
            continue;
        }
        let Some(parts) = hf_parts(name) else {
            continue;
        };
        let tensor =
            to_tensor(variable, device).map_err(|e| fail(format!("variable {name}: {e}")))?;
        let rows = variable.shape[0] / parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            if let Some(hf_name) = part {
                let piece = tensor
                    .narrow(0, i * rows, rows)
                    .and_then(|t| t.contiguous());
                tensors.insert(hf_name, piece.map_err(|e| fail(e.to_string()))?);
            }
        }
    }
    Ok((tensors, config))
}

fn parse(bytes: &[u8]) -> Result<HashMap<String, Variable<'_>>, String> {
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.u32()?;
    if version != VERSION {
        return Err(format!(
            "CTranslate2 model format version {version} is not supported (expected {VERSION})"
        ));
    }
    let spec = reader.name()?;
    if spec != "WhisperSpec" {
        return Err(format!("this is a CTranslate2 '{spec}' model, not Whisper"));
    }
    reader.u32()?;
    let count = reader.u32()?;
    let mut variables = HashMap::new();
    for _ in 0..count {
        let name = reader.name()?;
        let rank = reader.u8()?;
        let shape = (0..rank)
            .map(|_| reader.u32().map(|d| d as usize))
            .collect::<Result<Vec<_>, _>>()?;
        let dtype = reader.u8()?;
        let len = reader.u32()? as usize;
        let data = reader.take(len)?;
        variables.insert(name, Variable { shape, dtype, data });
    }
    Ok(variables)
}

/// A cursor over the file's bytes; running out is an error naming the offset.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("the file ends early (at byte {})", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn name(&mut self) -> Result<String, String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        let raw = self.take(len)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec())
            .map_err(|_| format!("a name is not UTF-8 (at byte {})", self.at))
    }
}

fn to_tensor(variable: &Variable<'_>, device: &Device) -> Result<Tensor, String> {
    let dtype = match variable.dtype {
        0 => DType::F32,
        4 => DType::F16,
        5 => DType::BF16,
        1 => {
            return Err("int8-quantized CTranslate2 models are not supported; \
                        convert the model with --quantization float16 or float32"
                .into());
        }
        other => return Err(format!("unsupported weight dtype {other}")),
    };
    Tensor::from_raw_buffer(variable.data, dtype, &variable.shape, device)
        .and_then(|t| t.to_dtype(DType::F32))
        .map_err(|e| e.to_string())
}

/// The Hugging Face names of a CTranslate2 variable's parts along dim 0 (fused q/k/v and k/v
/// projections have several), `None` for a part Hugging Face does not keep (the k bias, stored
/// as zeros); `None` overall for variables the model does not use.
fn hf_parts(name: &str) -> Option<Vec<Option<String>>> {
    let (side, rest) = name.split_once('/')?;
    let root = format!("model.{side}");
    let param = |p: &str| {
        match p {
            "gamma" => "weight",
            "beta" => "bias",
            other => other,
        }
        .to_string()
    };
    let one = |hf: String| Some(vec![Some(hf)]);
    if let Some(layer) = rest
        .strip_prefix("layer_")
        .filter(|_| !rest.starts_with("layer_norm/"))
    {
        let (index, path) = layer.split_once('/')?;
        let (module, p) = path.rsplit_once('/')?;
        let base = format!("{root}.layers.{index}");
        let p = param(p);
        let keep_unless_bias = |hf: String| (p != "bias").then_some(hf);
        return match module {
            "self_attention/layer_norm" => one(format!("{base}.self_attn_layer_norm.{p}")),
            "self_attention/linear_0" => Some(vec![
                Some(format!("{base}.self_attn.q_proj.{p}")),
                keep_unless_bias(format!("{base}.self_attn.k_proj.{p}")),
                Some(format!("{base}.self_attn.v_proj.{p}")),
            ]),
            "self_attention/linear_1" => one(format!("{base}.self_attn.out_proj.{p}")),
            "attention/layer_norm" => one(format!("{base}.encoder_attn_layer_norm.{p}")),
            "attention/linear_0" => one(format!("{base}.encoder_attn.q_proj.{p}")),
            "attention/linear_1" => Some(vec![
                keep_unless_bias(format!("{base}.encoder_attn.k_proj.{p}")),
                Some(format!("{base}.encoder_attn.v_proj.{p}")),
            ]),
            "attention/linear_2" => one(format!("{base}.encoder_attn.out_proj.{p}")),
            "ffn/layer_norm" => one(format!("{base}.final_layer_norm.{p}")),
            "ffn/linear_0" => one(format!("{base}.fc1.{p}")),
            "ffn/linear_1" => one(format!("{base}.fc2.{p}")),
            _ => None,
        };
    }
    match (side, rest) {
        ("encoder", "conv1/weight" | "conv1/bias" | "conv2/weight" | "conv2/bias") => {
            one(format!("{root}.{}", rest.replace('/', ".")))
        }
        (_, "layer_norm/gamma" | "layer_norm/beta") => {
            one(format!("{root}.layer_norm.{}", param(&rest[11..])))
        }
        ("decoder", "embeddings/weight") => one(format!("{root}.embed_tokens.weight")),
        ("decoder", "position_encodings/encodings") => {
            one(format!("{root}.embed_positions.weight"))
        }
        _ => None,
    }
}

fn derive_config(
    variables: &HashMap<String, Variable<'_>>,
    suppress_tokens: Vec<u32>,
) -> Result<Config, String> {
    let shape = |name: &str| {
        variables
            .get(name)
            .map(|v| v.shape.clone())
            .ok_or_else(|| format!("the model has no variable {name}"))
    };
    let scalar = |name: &str| -> Result<usize, String> {
        let v = variables
            .get(name)
            .ok_or_else(|| format!("the model has no variable {name}"))?;
        let mut raw = [0u8; 8];
        let len = v.data.len().min(8);
        raw[..len].copy_from_slice(&v.data[..len]);
        Ok(u64::from_le_bytes(raw) as usize)
    };
    let layers = |side: &str| {
        (0..)
            .take_while(|i| {
                variables.contains_key(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
            })
            .count()
    };
    let conv1 = shape("encoder/conv1/weight")?;
    let embeddings = shape("decoder/embeddings/weight")?;
    let source_positions = shape("encoder/position_encodings/encodings")
        .map(|s| s[0])
        .unwrap_or(1500);
    Ok(Config {
        num_mel_bins: conv1[1],
        max_source_positions: source_positions,
        d_model: conv1[0],
        encoder_attention_heads: scalar("encoder/num_heads")?,
        encoder_layers: layers("encoder"),
        vocab_size: embeddings[0],
        max_target_positions: shape("decoder/position_encodings/encodings")?[0],
        decoder_attention_heads: scalar("decoder/num_heads")?,
        decoder_layers: layers("decoder"),
        suppress_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_onto_hugging_face_with_fused_projections_split() {
        let q_k_v = hf_parts("encoder/layer_2/self_attention/linear_0/weight").unwrap();
        assert_eq!(
            q_k_v,
            ["q_proj", "k_proj", "v_proj"]
                .map(|p| Some(format!("model.encoder.layers.2.self_attn.{p}.weight")))
        );
        let k_v_bias = hf_parts("decoder/layer_0/attention/linear_1/bias").unwrap();
        assert_eq!(
            k_v_bias,
            [
                None,
                Some("model.decoder.layers.0.encoder_attn.v_proj.bias".to_string())
            ]
        );
        let cases = [
            (
                "decoder/layer_3/attention/layer_norm/gamma",
                "model.decoder.layers.3.encoder_attn_layer_norm.weight",
            ),
            (
                "encoder/layer_1/ffn/linear_1/bias",
                "model.encoder.layers.1.fc2.bias",
            ),
            (
                "encoder/layer_1/ffn/layer_norm/beta",
                "model.encoder.layers.1.final_layer_norm.bias",
            ),
            (
                "decoder/layer_norm/gamma",
                "model.decoder.layer_norm.weight",
            ),
            (
                "decoder/position_encodings/encodings",
                "model.decoder.embed_positions.weight",
            ),
            ("encoder/conv2/bias", "model.encoder.conv2.bias"),
        ];
        for (ct2, hf) in cases {
            assert_eq!(hf_parts(ct2).unwrap(), [Some(hf.to_string())], "{ct2}");
        }
        assert_eq!(hf_parts("encoder/position_encodings/encodings"), None);
        assert_eq!(hf_parts("decoder/num_heads"), None);
    }

    /// A file with the given variables in CTranslate2's layout.
    fn file(variables: &[(&str, &[u32], u8, Vec<u8>)]) -> Vec<u8> {
        let name = |out: &mut Vec<u8>, name: &str| {
            out.extend_from_slice(&(name.len() as u16 + 1).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        };
        let mut out = VERSION.to_le_bytes().to_vec();
        name(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(variables.len() as u32).to_le_bytes());
        for (n, shape, dtype, data) in variables {
            name(&mut out, n);
            out.push(shape.len() as u8);
            shape
                .iter()
                .for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
            out.push(*dtype);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out
    }

    #[test]
    fn a_small_file_parses_and_fused_kv_is_split() {
        let kv: Vec<u8> = (0..8)
            .flat_map(|i| half::f16::from_f32(i as f32).to_le_bytes())
            .collect();
        let bytes = file(&[
            ("decoder/num_heads", &[], 2, 6u16.to_le_bytes().to_vec()),
            ("decoder/layer_0/attention/linear_1/weight", &[4, 2], 4, kv),
        ]);
        let variables = parse(&bytes).unwrap();
        assert_eq!(variables["decoder/num_heads"].data, [6, 0]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        std::fs::write(&path, &bytes).unwrap();
        let error = load(&path, &Device::Cpu, vec![]).unwrap_err();
        assert!(
            error.to_string().contains("encoder/conv1/weight"),
            "{error}"
        );
        let weight = to_tensor(
            &variables["decoder/layer_0/attention/linear_1/weight"],
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(weight.dtype(), DType::F32);
        assert_eq!(
            weight.narrow(0, 2, 2).unwrap().to_vec2::<f32>().unwrap(),
            [[4.0, 5.0], [6.0, 7.0]]
        );
    }

    #[test]
    fn truncated_wrong_and_quantized_files_are_refused_clearly() {
        let bytes = file(&[("encoder/conv1/weight", &[1, 1, 1], 1, vec![1])]);
        assert!(
            parse(&bytes[..bytes.len() - 6])
                .unwrap_err()
                .contains("ends early")
        );
        let mut other = bytes.clone();
        other[0] = 5;
        assert!(parse(&other).unwrap_err().contains("version 5"));
        let variables = parse(&bytes).unwrap();
        let error = to_tensor(&variables["encoder/conv1/weight"], &Device::Cpu).unwrap_err();
        assert!(error.contains("int8"), "{error}");
    }
}
