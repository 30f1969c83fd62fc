//! Reading a safetensors file one tensor at a time, with plain reads instead of a memory map.
//!
//! A memory-mapped checkpoint keeps every page it touched resident while its weights are copied
//! out (on the CPU the copies are what the model keeps): loading SD 1.5's f32 UNet that way
//! peaked at its size twice over, 7.5 GB for the whole checkpoint. Read tensor by tensor, the
//! peak is the weights plus the largest tensor.

use candle_core::{DType, Device, Result, Shape, Tensor, bail};
use candle_nn::{Init, var_builder::SimpleBackend};
use serde_json::Value;
use std::{
    collections::HashMap,
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::Path,
    sync::Mutex,
};

/// Where one tensor lies in the file.
struct Entry {
    dtype: DType,
    shape: Vec<usize>,
    /// Byte offset from the start of the file.
    start: u64,
    len: usize,
}

/// An open safetensors file whose tensors are read on demand.
pub struct WeightFile {
    file: Mutex<File>,
    tensors: HashMap<String, Entry>,
}

/// The header's dtype names for the dtypes a checkpoint's weights come in.
fn dtype(name: &str) -> Option<DType> {
    Some(match name {
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F32" => DType::F32,
        "F64" => DType::F64,
        _ => return None,
    })
}

impl WeightFile {
    /// Opens `path` and reads its header; errors say what is wrong with the file.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path)?;
        let file_len = file.metadata()?.len();
        let mut len_bytes = [0u8; 8];
        file.read_exact(&mut len_bytes)?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > file_len.saturating_sub(8) {
            bail!("not a safetensors file: its header would be {header_len} bytes long");
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)?;
        let header: HashMap<String, Value> = serde_json::from_slice(&header)
            .map_err(|e| candle_core::Error::msg(format!("unreadable safetensors header: {e}")))?;
        let data_start = 8 + header_len;
        let mut tensors = HashMap::new();
        for (name, info) in header
            .into_iter()
            .filter(|(name, _)| name != "__metadata__")
        {
            let entry = entry(&info, data_start)
                .ok_or_else(|| candle_core::Error::msg(format!("bad header entry for {name}")))?;
            if entry.start + entry.len as u64 > file_len {
                bail!("tensor {name} lies past the end of the file");
            }
            tensors.insert(name, entry);
        }
        Ok(Self {
            file: Mutex::new(file),
            tensors,
        })
    }

    /// Bytes the tensors take once converted to `dtype`.
    pub fn bytes_in(&self, dtype: DType) -> u64 {
        self.tensors
            .values()
            .map(|e| (e.shape.iter().product::<usize>() * dtype.size_in_bytes()) as u64)
            .sum()
    }

    /// Reads the tensor `name` onto `device` in `dtype`.
    fn read(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let Some(entry) = self.tensors.get(name) else {
            bail!("cannot find tensor {name}");
        };
        let mut bytes = vec![0u8; entry.len];
        {
            let mut file = self.file.lock().expect("no read panics holding the file");
            file.seek(SeekFrom::Start(entry.start))?;
            file.read_exact(&mut bytes)?;
        }
        Tensor::from_raw_buffer(&bytes, entry.dtype, &entry.shape, device)?.to_dtype(dtype)
    }
}

/// A header entry (`dtype`, `shape`, `data_offsets`) whose byte length matches its shape.
fn entry(info: &Value, data_start: u64) -> Option<Entry> {
    let dtype = dtype(info["dtype"].as_str()?)?;
    let shape: Vec<usize> = info["shape"]
        .as_array()?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<_>>()?;
    let offsets = info["data_offsets"].as_array()?;
    let (begin, end) = (offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?);
    let len = end.checked_sub(begin)? as usize;
    (len == shape.iter().product::<usize>() * dtype.size_in_bytes()).then_some(Entry {
        dtype,
        shape,
        start: data_start + begin,
        len,
    })
}

impl SimpleBackend for WeightFile {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _init: Init,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let tensor = self.read(name, dtype, device)?;
        if tensor.shape() != &shape {
            bail!(
                "shape mismatch for {name}, expected {shape:?}, got {:?}",
                tensor.shape()
            );
        }
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        self.read(name, dtype, device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_read_back_as_saved_converted_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let a = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let b = Tensor::new(&[1.5f32, -2.0], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        candle_core::safetensors::save(&HashMap::from([("a", a.clone()), ("b", b)]), &path)
            .unwrap();
        let file = WeightFile::open(&path).unwrap();
        assert_eq!(file.bytes_in(DType::F32), 32);
        let read = file
            .get(
                (2, 3).into(),
                "a",
                Init::Const(0.),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        assert_eq!(read.to_vec2::<f32>().unwrap(), a.to_vec2::<f32>().unwrap());
        let widened = file.get_unchecked("b", DType::F32, &Device::Cpu).unwrap();
        assert_eq!(widened.to_vec1::<f32>().unwrap(), [1.5, -2.0]);
        let error = file
            .get(
                (3, 2).into(),
                "a",
                Init::Const(0.),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("shape mismatch for a"), "{error}");
        let error = file
            .get_unchecked("c", DType::F32, &Device::Cpu)
            .unwrap_err();
        assert!(
            error.to_string().contains("cannot find tensor c"),
            "{error}"
        );
    }

    #[test]
    fn truncated_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let a = Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&HashMap::from([("a", a)]), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let error = WeightFile::open(&path).err().unwrap().to_string();
        assert!(error.contains("past the end"), "{error}");
        std::fs::write(&path, b"nonsense").unwrap();
        assert!(WeightFile::open(&path).is_err());
    }
}
