//! What constrained decoding and log probabilities need of the vocabulary: the grammar compiler
//! and each token's bytes. Built on first use (about 0.2 s and 15 MB for a 49k vocabulary), so
//! a worker whose jobs ask for neither never pays for them.

use crate::{constraint::Grammars, logprobs::TokenTexts, tokenizer::TextTokenizer};
use std::sync::Arc;

/// The vocabulary's tables.
pub struct TokenTables {
    /// Compiles grammars, or why this model's tokenizer cannot have them.
    pub grammars: Result<Grammars, String>,
    /// Each token's bytes, for log-probability reports.
    pub texts: Arc<TokenTexts>,
}

impl TokenTables {
    /// Builds the tables of `tokenizer`.
    pub fn new(tokenizer: &TextTokenizer) -> Self {
        match tokenizer.token_bytes() {
            Ok(bytes) => Self {
                grammars: Grammars::new(tokenizer, &bytes),
                texts: Arc::new(TokenTexts::new(bytes)),
            },
            Err(error) => Self {
                grammars: Err(format!(
                    "constrained decoding is not available for this model's tokenizer ({error})"
                )),
                texts: Arc::new(TokenTexts::new(tokenizer.token_texts())),
            },
        }
    }
}
