//! A loaded reranker: its network (a cross-encoder, or a sentence encoder scoring by cosine),
//! its tokenizer and window, and the scoring of one query against many documents in batches
//! of similar length.

use crate::{
    batch::Batch,
    cross::CrossEncoder,
    options::{Kind, LoadOptions},
};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{bert, xlm_roberta};
use rbee_hub::repository::SafetensorsModel;
use rbee_plugin_api::{PluginError, tasks::rerank::param};
use rbee_plugin_kit::error::{internal, model_load};
use serde_json::Value;
use tokenizers::{Encoding, PostProcessor, Tokenizer, TruncationParams, TruncationStrategy};

/// The longest window used, whatever the model's positions allow.
const MAX_WINDOW: usize = 512;

/// The network scoring pairs.
pub enum Network {
    /// The query and the document read together.
    Cross(CrossEncoder),
    /// A BERT sentence encoder: mean-pooled, normalised vectors compared by cosine.
    Bi(bert::BertModel),
}

/// The network of one job, with the query's vector when it is a bi-encoder.
enum Scorer<'a> {
    Cross(&'a CrossEncoder),
    Bi(&'a bert::BertModel, Tensor),
}

/// A loaded reranker.
pub struct Reranker {
    network: Network,
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation, to measure queries.
    counter: Tokenizer,
    device: Device,
    window: usize,
    pad_id: u32,
    batch: usize,
    weight_bytes: u64,
}

/// What scoring a job produced besides its scores.
#[derive(Debug, Default)]
pub struct Scored {
    /// Tokens read, special tokens included, padding excluded.
    pub tokens: usize,
    /// The indices of the documents cut to fit the window, ascending.
    pub truncated: Vec<usize>,
    /// Whether scoring stopped early (cancelled).
    pub stopped: bool,
}

impl Reranker {
    /// Loads the model in `files` onto `device`, reporting progress from 0 to 1.
    pub fn load(
        files: &SafetensorsModel,
        options: &LoadOptions,
        device: &Device,
        progress: &dyn Fn(f32, &str),
    ) -> Result<Self, PluginError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            model_load(format!(
                "cannot load the reranker {}: {what}: {e}",
                files.name
            ))
        };
        progress(0.0, "reading config.json");
        let config: Value = std::fs::read_to_string(&files.config)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
            .map_err(|e| failed("config.json", &e))?;
        let kind = options.kind.unwrap_or_else(|| detect(&config));
        progress(0.2, "reading model.safetensors");
        let weights = std::fs::read(&files.weights).map_err(|e| failed("model.safetensors", &e))?;
        let weight_bytes = weights.len() as u64;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, device)
            .map_err(|e| failed("model.safetensors", &e))?;
        progress(0.6, "building the encoder");
        let (network, positions, pad_id) =
            network(&config, kind, vb).map_err(|e| failed("building the network", &e))?;
        let window = options
            .max_tokens
            .unwrap_or(MAX_WINDOW)
            .min(positions)
            .min(MAX_WINDOW);
        let tokenizer = tokenizer(files, window, kind).map_err(|e| failed("tokenizer.json", &e))?;
        let mut counter = tokenizer.clone();
        counter
            .with_truncation(None)
            .map_err(|e| failed("tokenizer.json", &e))?;
        progress(1.0, "ready");
        Ok(Self {
            network,
            tokenizer,
            counter,
            device: device.clone(),
            window,
            pad_id,
            batch: options.batch(),
            weight_bytes,
        })
    }

    /// How the model scores.
    pub fn kind(&self) -> Kind {
        match self.network {
            Network::Cross(_) => Kind::CrossEncoder,
            Network::Bi(_) => Kind::BiEncoder,
        }
    }

    /// The window in tokens.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// Checks that `query` fits the window whole, with room for a document; an
    /// `invalid_params` error naming `query` if not.
    pub fn check_query(&self, query: &str) -> Result<(), PluginError> {
        let tokens = self.counter.encode(query, false).map_err(internal)?.len();
        let pair = self.kind() == Kind::CrossEncoder;
        let specials = self
            .tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(pair));
        let room = self.window.saturating_sub(specials + usize::from(pair));
        match tokens <= room {
            true => Ok(()),
            false => Err(PluginError::invalid_param(
                param::QUERY,
                format!(
                    "the query is {tokens} tokens; it is kept whole, and at most {room} fit \
                     this model's window of {} tokens",
                    self.window
                ),
            )),
        }
    }

    /// Scores every document against `query`, calling `emit(index, score)` as each batch is
    /// done (longest documents first); stops when `emit` returns false or `cancelled()` is true
    /// between batches.
    pub fn score(
        &self,
        query: &str,
        documents: &[String],
        cancelled: &dyn Fn() -> bool,
        emit: &mut dyn FnMut(usize, f32) -> bool,
    ) -> Result<Scored, PluginError> {
        self.check_query(query)?;
        let (encodings, scorer, mut tokens) = match &self.network {
            Network::Cross(cross) => {
                let pairs: Vec<(&str, &str)> =
                    documents.iter().map(|d| (query, d.as_str())).collect();
                (self.encode(pairs)?, Scorer::Cross(cross), 0)
            }
            Network::Bi(bert) => {
                let query = self.tokenizer.encode(query, true).map_err(internal)?;
                let batch = Batch::new(&[&query], self.pad_id, &self.device).map_err(internal)?;
                let vector = mean_pooled(bert, &batch).map_err(internal)?;
                let texts: Vec<&str> = documents.iter().map(String::as_str).collect();
                (self.encode(texts)?, Scorer::Bi(bert, vector), query.len())
            }
        };
        let mut scored = Scored {
            truncated: (0..encodings.len())
                .filter(|&i| !encodings[i].get_overflowing().is_empty())
                .collect(),
            ..Scored::default()
        };
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        for indices in order.chunks(self.batch) {
            if cancelled() {
                scored.stopped = true;
                break;
            }
            let inputs: Vec<&Encoding> = indices.iter().map(|&i| &encodings[i]).collect();
            tokens += inputs.iter().map(|e| e.len()).sum::<usize>();
            let batch = Batch::new(&inputs, self.pad_id, &self.device).map_err(internal)?;
            let scores = match &scorer {
                Scorer::Cross(cross) => cross.scores(&batch),
                Scorer::Bi(bert, query) => cosines(bert, &batch, query),
            }
            .map_err(internal)?;
            if !indices.iter().zip(scores).all(|(&i, score)| emit(i, score)) {
                scored.stopped = true;
                break;
            }
        }
        scored.tokens = tokens;
        Ok(scored)
    }

    /// Tokenizes `inputs` (texts or pairs), truncated to the window.
    fn encode<'s, E>(&self, inputs: Vec<E>) -> Result<Vec<Encoding>, PluginError>
    where
        E: Into<tokenizers::EncodeInput<'s>> + Send,
    {
        self.tokenizer.encode_batch(inputs, true).map_err(internal)
    }
}

/// The network `config` describes, built as `kind` from `vb`, with the positions it can read
/// and its pad id.
fn network(config: &Value, kind: Kind, vb: VarBuilder) -> Result<(Network, usize, u32), String> {
    let xlm = config["model_type"].as_str() == Some("xlm-roberta");
    let bad_config = |e: serde_json::Error| format!("config.json: {e}");
    match (kind, xlm) {
        (Kind::CrossEncoder, true) => {
            let cfg: xlm_roberta::Config = parse_config(config).map_err(bad_config)?;
            let network = CrossEncoder::xlm_roberta(&cfg, labels(config)?, vb)
                .map_err(|e| format!("not an XLM-RoBERTa sequence classifier: {e}"))?;
            let positions = cfg
                .max_position_embeddings
                .saturating_sub(cfg.pad_token_id as usize + 1);
            Ok((Network::Cross(network), positions, cfg.pad_token_id))
        }
        (Kind::BiEncoder, true) => {
            Err("the bi-encoder mode takes BERT sentence encoders, not XLM-RoBERTa".into())
        }
        (Kind::CrossEncoder, false) => {
            let cfg: bert::Config = parse_config(config).map_err(bad_config)?;
            let network = CrossEncoder::bert(&cfg, labels(config)?, vb)
                .map_err(|e| format!("not a BERT sequence classifier: {e}"))?;
            let pad_id = cfg.pad_token_id as u32;
            Ok((Network::Cross(network), cfg.max_position_embeddings, pad_id))
        }
        (Kind::BiEncoder, false) => {
            let cfg: bert::Config = parse_config(config).map_err(bad_config)?;
            let network =
                bert::BertModel::load(vb, &cfg).map_err(|e| format!("not a BERT encoder: {e}"))?;
            let pad_id = cfg.pad_token_id as u32;
            Ok((Network::Bi(network), cfg.max_position_embeddings, pad_id))
        }
    }
}

/// A cross-encoder when `config.json` names a sequence classifier, else a bi-encoder.
fn detect(config: &Value) -> Kind {
    let classifier = config["architectures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|name| name.ends_with("ForSequenceClassification"));
    match classifier {
        true => Kind::CrossEncoder,
        false => Kind::BiEncoder,
    }
}

/// A classifier's number of labels (`id2label`'s size, else `num_labels`, else 1): 1 or 2.
fn labels(config: &Value) -> Result<usize, String> {
    let labels = config["id2label"]
        .as_object()
        .map(|labels| labels.len() as u64)
        .or_else(|| config["num_labels"].as_u64())
        .unwrap_or(1);
    match labels {
        1 | 2 => Ok(labels as usize),
        n => Err(format!(
            "a sequence classifier with {n} labels is not a reranker (it has 1 or 2)"
        )),
    }
}

fn parse_config<T: serde::de::DeserializeOwned>(config: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(config)
}

/// The tokenizer of `files`, truncating at `window` (only the document of a pair, so the query
/// is kept whole) and not padding (batches are padded by [`Batch`]).
fn tokenizer(files: &SafetensorsModel, window: usize, kind: Kind) -> Result<Tokenizer, String> {
    let mut tokenizer = Tokenizer::from_file(&files.tokenizer).map_err(|e| e.to_string())?;
    tokenizer.with_padding(None);
    let strategy = match kind {
        Kind::CrossEncoder => TruncationStrategy::OnlySecond,
        Kind::BiEncoder => TruncationStrategy::LongestFirst,
    };
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: window,
            strategy,
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?;
    Ok(tokenizer)
}

/// The mean of `batch`'s token states under its mask, each row scaled to unit length.
fn mean_pooled(bert: &bert::BertModel, batch: &Batch) -> candle_core::Result<Tensor> {
    let states = bert.forward(&batch.ids, &batch.types, Some(&batch.mask))?;
    let weights = batch.mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let pooled = states
        .broadcast_mul(&weights)?
        .sum(1)?
        .broadcast_div(&weights.sum(1)?)?;
    let norms = pooled
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f32::MAX)?;
    pooled.broadcast_div(&norms)
}

/// The cosine of each input of `batch` with `query` (a unit row vector).
fn cosines(bert: &bert::BertModel, batch: &Batch, query: &Tensor) -> candle_core::Result<Vec<f32>> {
    let vectors = mean_pooled(bert, batch)?;
    vectors.matmul(&query.t()?)?.squeeze(1)?.to_vec1()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_kind_and_the_labels_come_from_the_config() {
        let classifier = json!({"architectures": ["BertForSequenceClassification"], "id2label": {"0": "LABEL_0"}});
        assert_eq!(detect(&classifier), Kind::CrossEncoder);
        assert_eq!(labels(&classifier).unwrap(), 1);
        assert_eq!(
            detect(&json!({"architectures": ["BertModel"]})),
            Kind::BiEncoder
        );
        assert_eq!(detect(&json!({})), Kind::BiEncoder);
        assert_eq!(labels(&json!({"num_labels": 2})).unwrap(), 2);
        assert!(labels(&json!({"id2label": {"0": "a", "1": "b", "2": "c"}})).is_err());
    }
}
