//! A sequence's cached keys and values, in f32 or in f16 (half the memory, and half the bytes
//! attention reads at every decoded token, which is what a long context costs on a CPU).

use half::{f16, slice::HalfFloatSliceExt};
use serde::Deserialize;
use std::ops::Range;

/// How cached keys and values are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvFormat {
    /// Half precision, as llama.cpp's default cache.
    #[default]
    F16,
    /// Single precision: attention sees the keys and values exactly as computed.
    F32,
}

impl KvFormat {
    /// Bytes one cached value takes.
    pub fn bytes(self) -> usize {
        match self {
            KvFormat::F16 => 2,
            KvFormat::F32 => 4,
        }
    }
}

/// One sequence's keys and values, layer by layer: what a forward pass over its earlier
/// tokens left for the tokens after them.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    pub(super) layers: Vec<LayerCache>,
}

/// One layer's part of a [`KvCache`].
#[derive(Clone, Debug)]
pub(super) struct LayerCache {
    /// The cached keys, one run of `head_dim`-wide rows per key/value head, so that attention
    /// reads each head's keys as one sequential stream.
    pub keys: Vec<Rows>,
    /// The cached values, laid out as the keys.
    pub values: Vec<Rows>,
    /// Values per cached row (`head_dim`).
    pub width: usize,
}

impl KvCache {
    /// An empty cache of `layers` layers of `heads` key/value heads `width` wide.
    pub(super) fn new(layers: usize, heads: usize, width: usize, format: KvFormat) -> Self {
        let empty = || Rows::new(format);
        KvCache {
            layers: (0..layers)
                .map(|_| LayerCache {
                    keys: (0..heads).map(|_| empty()).collect(),
                    values: (0..heads).map(|_| empty()).collect(),
                    width,
                })
                .collect(),
        }
    }

    /// The positions held.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| Some(l.keys.first()?.len() / l.width))
            .unwrap_or(0)
    }

    /// A copy of the first `positions` positions.
    pub fn prefix(&self, positions: usize) -> KvCache {
        let cut = |rows: &Vec<Rows>, width: usize| {
            rows.iter()
                .map(|r| r.prefix((positions * width).min(r.len())))
                .collect()
        };
        KvCache {
            layers: self
                .layers
                .iter()
                .map(|l| LayerCache {
                    keys: cut(&l.keys, l.width),
                    values: cut(&l.values, l.width),
                    width: l.width,
                })
                .collect(),
        }
    }
}

/// The cached rows of one key/value head, in the cache's format.
#[derive(Clone, Debug)]
pub(super) enum Rows {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl Rows {
    /// No rows, in `format`.
    pub fn new(format: KvFormat) -> Self {
        match format {
            KvFormat::F32 => Rows::F32(Vec::new()),
            KvFormat::F16 => Rows::F16(Vec::new()),
        }
    }

    /// The values held.
    pub fn len(&self) -> usize {
        match self {
            Rows::F32(v) => v.len(),
            Rows::F16(v) => v.len(),
        }
    }

    /// Appends `values`, rounded to the format.
    pub fn extend(&mut self, values: &[f32]) {
        match self {
            Rows::F32(v) => v.extend_from_slice(values),
            Rows::F16(v) => {
                let start = v.len();
                v.resize(start + values.len(), f16::ZERO);
                v[start..].convert_from_f32_slice(values);
            }
        }
    }

    /// The values as stored, when they are f16.
    pub fn half(&self) -> Option<&[f16]> {
        match self {
            Rows::F32(_) => None,
            Rows::F16(v) => Some(v),
        }
    }

    /// A copy of the first `values`.
    fn prefix(&self, values: usize) -> Rows {
        match self {
            Rows::F32(v) => Rows::F32(v[..values].to_vec()),
            Rows::F16(v) => Rows::F16(v[..values].to_vec()),
        }
    }

    /// The values in `range` as f32: borrowed when stored so, else converted into `scratch`.
    #[inline(always)]
    pub fn read<'a>(&'a self, range: Range<usize>, scratch: &'a mut Vec<f32>) -> &'a [f32] {
        match self {
            Rows::F32(v) => &v[range],
            Rows::F16(v) => {
                scratch.resize(range.len(), 0.0);
                v[range].convert_to_f32_slice(scratch);
                scratch
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rows_read_back_rounded_and_f32_rows_exactly() {
        let values = [1.0, -2.5, 0.1, 65504.0, 1e-3];
        let mut scratch = Vec::new();
        let mut exact = Rows::new(KvFormat::F32);
        exact.extend(&values);
        assert_eq!(exact.read(0..5, &mut scratch), values);
        let mut half = Rows::new(KvFormat::F16);
        half.extend(&values);
        half.extend(&[3.0]);
        let read = half.read(1..6, &mut scratch);
        for (got, want) in read.iter().zip(&values[1..]) {
            assert!(
                (got - want).abs() <= want.abs() * 1e-3,
                "{got} against {want}"
            );
        }
        assert_eq!(read[4], 3.0);
        assert_eq!(half.prefix(2).len(), 2);
    }

    #[test]
    fn a_cache_counts_positions_and_keeps_a_prefix_in_its_format() {
        let mut cache = KvCache::new(2, 3, 4, KvFormat::F16);
        for layer in &mut cache.layers {
            for rows in layer.keys.iter_mut().chain(&mut layer.values) {
                rows.extend(&[0.5; 12]);
            }
        }
        assert_eq!(cache.len(), 3);
        let prefix = cache.prefix(2);
        assert_eq!(prefix.len(), 2);
        assert!(matches!(prefix.layers[1].values[2], Rows::F16(_)));
    }
}
