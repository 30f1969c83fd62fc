//! The plugin's load options (`--plugin-options`), a JSON object whose fields are all optional.

use rbee_plugin_api::PluginError;
use rbee_plugin_kit::error::model_load;
use serde::Deserialize;

/// Query-document pairs scored in one forward pass when the options name no other number.
pub const DEFAULT_BATCH: usize = 16;

/// How a model scores a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The query and the document read together, a classifier head giving the score (BERT or
    /// XLM-RoBERTa `...ForSequenceClassification`).
    CrossEncoder,
    /// The query and the document embedded apart (a BERT sentence encoder, mean pooled), the
    /// score being the cosine of their vectors.
    BiEncoder,
}

/// Load options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadOptions {
    /// How the model scores; detected from `config.json`'s `architectures` when absent (a
    /// sequence classifier is a cross-encoder, anything else a bi-encoder).
    pub kind: Option<Kind>,
    /// Pairs per forward pass (default [`DEFAULT_BATCH`]); cancellation is noticed between
    /// batches.
    pub batch: Option<usize>,
    /// The window in tokens, at most the model's own (default: the model's, at most 512).
    pub max_tokens: Option<usize>,
}

impl LoadOptions {
    /// Parses `--plugin-options`; empty means defaults.
    pub fn parse(json: &str) -> Result<Self, PluginError> {
        let options: Self = rbee_plugin_kit::options::parse(
            json,
            "kind (cross-encoder or bi-encoder), batch, max_tokens",
        )?;
        if options.batch == Some(0) || options.max_tokens.is_some_and(|n| n < 8) {
            return Err(model_load(
                "plugin options: batch must be at least 1 and max_tokens at least 8",
            ));
        }
        Ok(options)
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        self.batch.unwrap_or(DEFAULT_BATCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_and_bad_ones_refused() {
        assert_eq!(LoadOptions::parse("").unwrap().batch(), DEFAULT_BATCH);
        let options = LoadOptions::parse(r#"{"kind": "bi-encoder", "batch": 4}"#).unwrap();
        assert_eq!((options.kind, options.batch()), (Some(Kind::BiEncoder), 4));
        for bad in [
            r#"{"kind": "poly-encoder"}"#,
            r#"{"batch": 0}"#,
            r#"{"max_tokens": 2}"#,
            r#"{"threads": 2}"#,
        ] {
            assert!(LoadOptions::parse(bad).is_err(), "{bad}");
        }
    }
}
