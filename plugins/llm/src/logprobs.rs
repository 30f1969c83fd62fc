//! Log probabilities of sampled tokens and their most likely alternatives, from the model's
//! raw distribution (before penalties, temperature and grammar masks), as OpenAI reports them.

use serde_json::{Value, json};
use std::sync::Arc;

/// Each token's bytes, for the `token` and `bytes` fields of a report.
pub struct TokenTexts {
    bytes: Vec<Vec<u8>>,
}

/// Marks a special token in llguidance's token bytes.
const SPECIAL_MARKER: u8 = 0xFF;

impl TokenTexts {
    /// From the vocabulary's token bytes (special tokens marked with a leading 0xFF).
    pub fn new(mut bytes: Vec<Vec<u8>>) -> Self {
        for token in &mut bytes {
            if token.first() == Some(&SPECIAL_MARKER) {
                token.remove(0);
            }
        }
        Self { bytes }
    }

    fn entry(&self, token: usize, logprob: f32) -> Value {
        let bytes = self.bytes.get(token).map_or(&[][..], Vec::as_slice);
        json!({
            "token": String::from_utf8_lossy(bytes),
            "logprob": logprob,
            "bytes": bytes,
        })
    }
}

/// Collects the reports of one job's tokens until they are sent.
pub struct LogprobRecorder {
    texts: Arc<TokenTexts>,
    top: usize,
    pending: Vec<Value>,
    order: Vec<usize>,
}

impl LogprobRecorder {
    /// Reports with `top` alternatives each.
    pub fn new(texts: Arc<TokenTexts>, top: u32) -> Self {
        Self {
            texts,
            top: top as usize,
            pending: Vec::new(),
            order: Vec::new(),
        }
    }

    /// Records `token`, drawn from `raw_logits`.
    pub fn record(&mut self, raw_logits: &[f32], token: u32) {
        let max = raw_logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = raw_logits.iter().map(|logit| (logit - max).exp()).sum();
        let log_normaliser = max + sum.ln();
        let logprob = |id: usize| raw_logits[id] - log_normaliser;
        let mut entry = self.texts.entry(token as usize, logprob(token as usize));
        let top = self.top.min(raw_logits.len());
        self.order.clear();
        self.order.extend(0..raw_logits.len());
        let by_logit_desc = |a: &usize, b: &usize| raw_logits[*b].total_cmp(&raw_logits[*a]);
        if top > 0 && top < self.order.len() {
            self.order.select_nth_unstable_by(top - 1, by_logit_desc);
        }
        let best = &mut self.order[..top];
        best.sort_unstable_by(by_logit_desc);
        entry["top_logprobs"] = best
            .iter()
            .map(|&id| self.texts.entry(id, logprob(id)))
            .collect();
        self.pending.push(entry);
    }

    /// The event data for the tokens recorded since the last call (`None` if there are none).
    pub fn take(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        let content = std::mem::take(&mut self.pending);
        Some(json!({"content": content}).to_string())
    }

    /// Forgets the tokens recorded since the last report (their text is not sent as text).
    pub fn discard(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(top: u32) -> LogprobRecorder {
        let bytes = vec![
            b"a".to_vec(),
            b"b".to_vec(),
            vec![0xFF, b'<', b'e', b'>'],
            vec![0xC3],
        ];
        LogprobRecorder::new(Arc::new(TokenTexts::new(bytes)), top)
    }

    #[test]
    fn logprobs_are_log_softmax_and_alternatives_are_the_best_first() {
        let mut recorder = recorder(2);
        let logits = [1.0f32, 3.0, 2.0, f32::NEG_INFINITY];
        recorder.record(&logits, 0);
        let report: Value = serde_json::from_str(&recorder.take().unwrap()).unwrap();
        let entry = &report["content"][0];
        let normaliser = (1f32.exp() + 3f32.exp() + 2f32.exp()).ln();
        assert!((entry["logprob"].as_f64().unwrap() - f64::from(1.0 - normaliser)).abs() < 1e-5);
        assert_eq!(entry["token"], "a");
        assert_eq!(entry["bytes"], json!([97]));
        let top: Vec<&str> = entry["top_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["token"].as_str().unwrap())
            .collect();
        assert_eq!(top, ["b", "<e>"], "special tokens lose their marker");
        assert_eq!(recorder.take(), None);
    }

    #[test]
    fn partial_utf8_keeps_its_bytes_and_no_alternatives_means_an_empty_list() {
        let mut recorder = recorder(0);
        recorder.record(&[0.0, 0.0, 0.0, 5.0], 3);
        recorder.record(&[0.0, 0.0, 0.0, 5.0], 1);
        let report: Value = serde_json::from_str(&recorder.take().unwrap()).unwrap();
        assert_eq!(report["content"][0]["bytes"], json!([0xC3]));
        assert_eq!(report["content"][0]["top_logprobs"], json!([]));
        assert_eq!(report["content"].as_array().unwrap().len(), 2);
        recorder.record(&[0.0; 4], 0);
        recorder.discard();
        assert_eq!(recorder.take(), None);
    }
}
