//! The cross-encoders: a BERT encoder with its sequence-classification head (pooler and linear
//! classifier, as `BertForSequenceClassification` has them; candle 0.11 ships none), or
//! candle's `XLMRobertaForSequenceClassification` (bge-reranker). Each turns a batch of
//! query-document pairs into one relevance score per pair.

use crate::batch::Batch;
use candle_core::{D, Module, Tensor};
use candle_nn::{Linear, VarBuilder, linear, ops::softmax};
use candle_transformers::models::{bert, xlm_roberta};

/// A loaded cross-encoder.
pub enum CrossEncoder {
    /// BERT (ms-marco-MiniLM and kin).
    Bert {
        /// The encoder.
        bert: bert::BertModel,
        /// The pooler: the `[CLS]` state through a dense layer and tanh.
        pooler: Linear,
        /// The classifier on the pooled state.
        classifier: Linear,
        /// Its number of labels (1 or 2).
        labels: usize,
    },
    /// XLM-RoBERTa (bge-reranker-base and kin).
    XlmRoberta {
        /// Encoder and head.
        model: xlm_roberta::XLMRobertaForSequenceClassification,
        /// Its number of labels (1 or 2).
        labels: usize,
    },
}

impl CrossEncoder {
    /// A BERT classifier with `labels` labels from `vb` (weights under `bert.` or at the root,
    /// with `classifier.` beside them).
    pub fn bert(config: &bert::Config, labels: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let encoder = match vb.contains_tensor("embeddings.word_embeddings.weight") {
            true => vb.clone(),
            false => vb.pp("bert"),
        };
        let hidden = config.hidden_size;
        Ok(Self::Bert {
            bert: bert::BertModel::load(encoder.clone(), config)?,
            pooler: linear(hidden, hidden, encoder.pp("pooler").pp("dense"))?,
            classifier: linear(hidden, labels, vb.pp("classifier"))?,
            labels,
        })
    }

    /// An XLM-RoBERTa classifier with `labels` labels from `vb`.
    pub fn xlm_roberta(
        config: &xlm_roberta::Config,
        labels: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let model = xlm_roberta::XLMRobertaForSequenceClassification::new(labels, config, vb)?;
        Ok(Self::XlmRoberta { model, labels })
    }

    /// One score per pair of `batch`: the probability of relevance (the sigmoid of a single
    /// logit, or the softmax of the second of two labels).
    pub fn scores(&self, batch: &Batch) -> candle_core::Result<Vec<f32>> {
        let (logits, labels) = match self {
            Self::Bert {
                bert,
                pooler,
                classifier,
                labels,
            } => {
                let states = bert.forward(&batch.ids, &batch.types, Some(&batch.mask))?;
                let first = states.narrow(1, 0, 1)?.squeeze(1)?;
                let pooled = pooler.forward(&first)?.tanh()?;
                (classifier.forward(&pooled)?, *labels)
            }
            Self::XlmRoberta { model, labels } => (
                model.forward(&batch.ids, &batch.mask, &batch.types)?,
                *labels,
            ),
        };
        probability(&logits, labels)?.to_vec1()
    }
}

/// The relevance probability of each row of `logits` (batch, labels).
fn probability(logits: &Tensor, labels: usize) -> candle_core::Result<Tensor> {
    match labels {
        1 => candle_nn::ops::sigmoid(&logits.squeeze(D::Minus1)?),
        _ => softmax(logits, D::Minus1)?.narrow(1, 1, 1)?.squeeze(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn one_logit_is_a_sigmoid_and_two_a_softmax_of_the_second() {
        let one = Tensor::new(&[[0f32], [2.0]], &Device::Cpu).unwrap();
        let scores: Vec<f32> = probability(&one, 1).unwrap().to_vec1().unwrap();
        assert!((scores[0] - 0.5).abs() < 1e-6 && (scores[1] - 0.880_797).abs() < 1e-5);
        let two = Tensor::new(&[[0f32, 0.0], [0.0, 3.0]], &Device::Cpu).unwrap();
        let scores: Vec<f32> = probability(&two, 2).unwrap().to_vec1().unwrap();
        assert!((scores[0] - 0.5).abs() < 1e-6 && (scores[1] - 0.952_574).abs() < 1e-5);
    }
}
