//! Copies of a GGUF file with its Q4_1 weight matrices requantized to another block format,
//! for tests and benchmarks of the other formats (no other copy of the test model can be
//! downloaded here, and CI has no llama-quantize).

use candle_core::{
    Device,
    quantized::{GgmlDType, QTensor, gguf_file},
};
use std::{fs::File, path::Path};

/// Writes `source` to `target` with every Q4_1 tensor requantized to `format` (other tensors and
/// all metadata unchanged but `general.file_type`). The file appears at `target` only when
/// complete, so concurrent writers of the same copy are harmless.
///
/// A K-quant `format` writes a mix as llama-quantize's do: Q4_K and Q5_K make the "_M" files,
/// whose `attn_v` and `ffn_down` matrices are Q6_K in every other layer, and a matrix whose rows
/// are not whole 256-value super-blocks falls back as llama-quantize's does (Q4_K to Q5_0, Q5_K
/// to Q5_1, Q6_K to Q8_0), so a narrow model's copy mixes K-quants with the older formats.
pub fn write_requantized(
    source: &Path,
    target: &Path,
    format: GgmlDType,
) -> candle_core::Result<()> {
    let file_type = match format {
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q8_0 => 7,
        GgmlDType::Q5_0 => 8,
        GgmlDType::Q5_1 => 9,
        GgmlDType::Q4K => 15,
        GgmlDType::Q5K => 17,
        GgmlDType::Q6K => 18,
        other => candle_core::bail!("no GGUF file type for {other:?}"),
    };
    let mut file = File::open(source)?;
    let content = gguf_file::Content::read(&mut file)?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content.tensor(&mut file, name, &Device::Cpu)?;
        let tensor = if tensor.dtype() == GgmlDType::Q4_1 {
            let cols = *tensor.shape().dims().last().unwrap_or(&0);
            let dtype = tensor_format(name, cols, format);
            QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, dtype)?
        } else {
            tensor
        };
        tensors.push((name.as_str(), tensor));
    }
    let file_type = gguf_file::Value::U32(file_type);
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(key, value)| match key.as_str() {
            "general.file_type" => (key.as_str(), &file_type),
            _ => (key.as_str(), value),
        })
        .collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let partial = target.with_extension(format!("partial-{}", std::process::id()));
    let mut out = File::create(&partial)?;
    gguf_file::write(&mut out, &metadata, &tensor_refs)?;
    std::fs::rename(&partial, target)?;
    Ok(())
}

/// The format the tensor `name` with rows of `cols` values gets in a copy in `format`.
fn tensor_format(name: &str, cols: usize, format: GgmlDType) -> GgmlDType {
    let layer = name
        .strip_prefix("blk.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|index| index.parse::<usize>().ok());
    let more_bits = matches!(format, GgmlDType::Q4K | GgmlDType::Q5K)
        && (name.ends_with(".attn_v.weight") || name.ends_with(".ffn_down.weight"))
        && layer.is_some_and(|i| i % 2 == 1);
    let chosen = if more_bits { GgmlDType::Q6K } else { format };
    if cols.is_multiple_of(chosen.block_size()) {
        return chosen;
    }
    match chosen {
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        _ => GgmlDType::Q8_0,
    }
}

#[cfg(test)]
mod tests {
    use super::tensor_format;
    use candle_core::quantized::GgmlDType::{self, *};

    #[test]
    fn k_quant_mixes_give_some_matrices_more_bits_and_fall_back_on_narrow_rows() {
        let cases: [(&str, usize, GgmlDType, GgmlDType); 7] = [
            ("blk.0.ffn_down.weight", 1536, Q4K, Q4K),
            ("blk.1.ffn_down.weight", 1536, Q4K, Q6K),
            ("blk.1.attn_v.weight", 576, Q5K, Q8_0),
            ("blk.2.attn_q.weight", 576, Q4K, Q5_0),
            ("blk.2.attn_q.weight", 576, Q5K, Q5_1),
            ("token_embd.weight", 576, Q6K, Q8_0),
            ("blk.3.ffn_down.weight", 1536, Q4_0, Q4_0),
        ];
        for (name, cols, format, expected) in cases {
            assert_eq!(
                tensor_format(name, cols, format),
                expected,
                "{name} in {format:?}"
            );
        }
    }
}
