//! Copies of a GGUF file with its Q4_1 weight matrices requantized to another block format,
//! for tests and benchmarks of the other formats (no Q4_0 or Q8_0 copy of the test model can be
//! downloaded here).

use candle_core::{
    Device,
    quantized::{GgmlDType, QTensor, gguf_file},
};
use std::{fs::File, path::Path};

/// Writes `source` to `target` with every Q4_1 tensor requantized to `format` (other tensors and
/// all metadata unchanged but `general.file_type`). The file appears at `target` only when
/// complete, so concurrent writers of the same copy are harmless.
pub fn write_requantized(
    source: &Path,
    target: &Path,
    format: GgmlDType,
) -> candle_core::Result<()> {
    let file_type = match format {
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q8_0 => 7,
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
            QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, format)?
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
