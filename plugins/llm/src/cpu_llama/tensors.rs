//! Reading a GGUF file's tensors as repacked quantized matrices or f32 vectors.

use candle_core::{
    Device,
    quantized::{GgmlDType, gguf_file::Content},
};
use rbee_quant_cpu::{BlockFormat, QuantMatrix};
use std::io::{Read, Seek, SeekFrom};

/// The block format of a GGUF tensor type, if the CPU kernels run it.
pub(super) fn block_format(dtype: GgmlDType) -> Option<BlockFormat> {
    match dtype {
        GgmlDType::Q4_0 => Some(BlockFormat::Q4_0),
        GgmlDType::Q4_1 => Some(BlockFormat::Q4_1),
        GgmlDType::Q8_0 => Some(BlockFormat::Q8_0),
        _ => None,
    }
}

/// Reads named tensors of an open GGUF file.
pub(super) struct TensorReader<'a, R> {
    pub content: &'a Content,
    pub file: &'a mut R,
}

impl<R: Read + Seek> TensorReader<'_, R> {
    /// Whether the file holds `name`.
    pub fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// The 2-D tensor `name`, repacked for the CPU kernels.
    pub fn matrix(&mut self, name: &str) -> Result<QuantMatrix, String> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| format!("the file has no tensor {name}"))?;
        let (rows, cols) = info
            .shape
            .dims2()
            .map_err(|_| format!("{name} is not a matrix: {:?}", info.shape))?;
        let format = block_format(info.ggml_dtype).ok_or_else(|| {
            format!(
                "{name} is {:?}, which the CPU kernels do not run",
                info.ggml_dtype
            )
        })?;
        let bytes = rows * cols / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
        let mut data = vec![0u8; bytes];
        self.file
            .seek(SeekFrom::Start(
                self.content.tensor_data_offset + info.offset,
            ))
            .and_then(|_| self.file.read_exact(&mut data))
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        QuantMatrix::from_ggml(format, rows, cols, &data).map_err(|e| format!("{name}: {e}"))
    }

    /// The tensor `name` as f32 values (norm weights and other small vectors).
    pub fn vector(&mut self, name: &str) -> Result<Vec<f32>, String> {
        let tensor = self.content.tensor(self.file, name, &Device::Cpu);
        tensor
            .and_then(|t| t.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1())
            .map_err(|e| format!("cannot read {name}: {e}"))
    }
}
