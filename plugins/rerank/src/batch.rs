//! A batch of tokenized inputs as the encoders take it: ids, token types and attention mask,
//! each padded to the longest input of the batch.

use candle_core::{Device, Tensor};
use tokenizers::Encoding;

/// Padded input tensors, each (inputs, longest).
pub struct Batch {
    /// Token ids, padded with the model's pad id.
    pub ids: Tensor,
    /// Token type ids (0 for the query, 1 for the document in a BERT pair), padded with 0.
    pub types: Tensor,
    /// 1 on tokens, 0 on padding.
    pub mask: Tensor,
}

impl Batch {
    /// The batch of `encodings`, padded with `pad_id`, on `device`.
    pub fn new(encodings: &[&Encoding], pad_id: u32, device: &Device) -> candle_core::Result<Self> {
        let width = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let padded = |row: &[u32], pad: u32| {
            let mut row = row.to_vec();
            row.resize(width, pad);
            row
        };
        let mut ids = Vec::with_capacity(encodings.len() * width);
        let mut types = Vec::with_capacity(ids.capacity());
        let mut mask = Vec::with_capacity(ids.capacity());
        for encoding in encodings {
            ids.extend(padded(encoding.get_ids(), pad_id));
            types.extend(padded(encoding.get_type_ids(), 0));
            mask.extend(padded(&vec![1; encoding.len()], 0));
        }
        let shape = (encodings.len(), width);
        Ok(Self {
            ids: Tensor::from_vec(ids, shape, device)?,
            types: Tensor::from_vec(types, shape, device)?,
            mask: Tensor::from_vec(mask, shape, device)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_padded_to_the_longest_with_a_zero_mask() {
        let long = Encoding::new(
            vec![5, 6, 7],
            vec![0, 1, 1],
            vec!["a".into(), "b".into(), "c".into()],
            vec![None; 3],
            vec![(0, 0); 3],
            vec![0; 3],
            vec![1; 3],
            Vec::new(),
            Default::default(),
        );
        let one = Encoding::new(
            vec![9],
            vec![0],
            vec!["z".into()],
            vec![None],
            vec![(0, 0)],
            vec![0],
            vec![1],
            Vec::new(),
            Default::default(),
        );
        let batch = Batch::new(&[&long, &one], 1, &Device::Cpu).unwrap();
        let rows = |t: &Tensor| t.to_vec2::<u32>().unwrap();
        assert_eq!(rows(&batch.ids), [[5, 6, 7], [9, 1, 1]]);
        assert_eq!(rows(&batch.types), [[0, 1, 1], [0, 0, 0]]);
        assert_eq!(rows(&batch.mask), [[1, 1, 1], [1, 0, 0]]);
    }
}
