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
        GgmlDType::Q5_0 => Some(BlockFormat::Q5_0),
        GgmlDType::Q5_1 => Some(BlockFormat::Q5_1),
        GgmlDType::Q8_0 => Some(BlockFormat::Q8_0),
        GgmlDType::Q4K => Some(BlockFormat::Q4_K),
        GgmlDType::Q5K => Some(BlockFormat::Q5_K),
        GgmlDType::Q6K => Some(BlockFormat::Q6_K),
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

#[cfg(test)]
mod tests {
    //! The repacked matrices against candle's own dequantization of the same GGUF blocks, so
    //! that both read the block layouts alike.

    use super::block_format;
    use candle_core::{
        Device, Tensor,
        quantized::{GgmlDType, QTensor},
    };
    use rbee_quant_cpu::{QuantMatrix, QuantizedRows};

    const DTYPES: [GgmlDType; 8] = [
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q5_1,
        GgmlDType::Q8_0,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ];

    /// Weights like a network's: mostly small, some large, some rows shifted off zero.
    fn weights(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| {
                let (r, c) = (i / cols, i % cols);
                let wave = ((i as f32 * 0.7312).sin() * 43758.547).fract();
                wave * (0.02 + (c % 37) as f32 * 0.003) + (r % 3) as f32 * 0.01
            })
            .collect()
    }

    /// Per value, our dequantization equals candle's up to the rounding of the K-quants'
    /// block scales and minimums to f16: a relative error of 2⁻¹¹ of each, so at most 2⁻¹⁰ of
    /// the block's largest magnitude plus its range (values in 0..2ᵇ times the scale span the
    /// range, the minimum is at most the largest magnitude). The legacy formats match exactly.
    /// Products then equal f32 arithmetic on candle's weights within the activations' 8-bit
    /// rounding (half a step times the weights' magnitudes, per block of 32) plus that error.
    #[test]
    fn matrices_dequantize_and_multiply_as_candle_reads_the_blocks() {
        let (rows, cols) = (19, 512);
        let source = Tensor::from_vec(weights(rows, cols), (rows, cols), &Device::Cpu).unwrap();
        for dtype in DTYPES {
            let quantized = QTensor::quantize(&source, dtype).unwrap();
            let bytes = quantized.data().unwrap();
            let format = block_format(dtype).unwrap();
            let matrix = QuantMatrix::from_ggml(format, rows, cols, &bytes).unwrap();
            let theirs: Vec<f32> = quantized
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let mut ours = vec![0f32; cols];
            let x: Vec<f32> = (0..cols)
                .map(|i| ((i * 7 % 23) as f32 - 11.0) * 0.1)
                .collect();
            let mut activations = QuantizedRows::new();
            activations.quantize(&x, 1, cols, matrix.activation_scales());
            let mut products = vec![0f32; rows];
            matrix.matmul(&activations, &mut products);
            for r in 0..rows {
                matrix.dequantize_row(r, &mut ours);
                let theirs = &theirs[r * cols..(r + 1) * cols];
                let mut product_bound = 1e-4;
                // Activations share a scale per block of the weights' format (32 or 256).
                let steps = x.chunks(dtype.block_size()).flat_map(|shared| {
                    let step = shared.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                    std::iter::repeat_n(step, shared.len() / 32)
                });
                for (((ours, theirs), x), step) in ours
                    .chunks(32)
                    .zip(theirs.chunks(32))
                    .zip(x.chunks(32))
                    .zip(steps)
                {
                    let amax = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let (lo, hi) = theirs
                        .iter()
                        .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                    let bound = if dtype.block_size() == 32 {
                        0.0
                    } else {
                        (amax + hi - lo) / 1024.0
                    };
                    for (a, b) in ours.iter().zip(theirs) {
                        assert!(
                            (a - b).abs() <= bound,
                            "{dtype:?} row {r}: {a} vs candle's {b} (bound {bound})"
                        );
                    }
                    let magnitude: f32 = theirs.iter().map(|w| w.abs()).sum();
                    let x_magnitude: f32 = x.iter().map(|v| v.abs()).sum();
                    product_bound += step / 2.0 * magnitude * 1.001 + bound * x_magnitude;
                }
                let exact: f32 = theirs.iter().zip(&x).map(|(w, x)| w * x).sum();
                assert!(
                    (products[r] - exact).abs() <= product_bound,
                    "{dtype:?} row {r}: product {} vs {exact} (bound {product_bound})",
                    products[r]
                );
            }
        }
    }
}
