//! The model's tokenizer with what generation needs: BOS handling and end-of-generation tokens.

use crate::error::LlmError;
use serde_json::Value;
use std::path::Path;
use tokenizers::Tokenizer;

/// Texts of tokens that end a turn in common chat formats (as llama.cpp collects them).
const END_OF_GENERATION_TEXTS: [&str; 10] = [
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<EOT>",
    "<|return|>",
    "<|call|>",
    "<｜end▁of▁sentence｜>",
];

/// Special token ids a tokenizer comes with.
#[derive(Debug, Clone, Default)]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// Other tokens that end generation (end of turn, end of message).
    pub extra_end_of_generation: Vec<u32>,
    /// Whether a prompt starts with `bos`.
    pub add_bos: bool,
}

/// A tokenizer ready for generation.
pub struct TextTokenizer {
    inner: Tokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    end_of_generation: Vec<u32>,
}

impl TextTokenizer {
    /// Wraps `inner`; every token in `special` that ends generation, and every vocabulary entry
    /// with a well-known end-of-turn text, ends generation.
    pub fn new(inner: Tokenizer, special: SpecialTokens) -> Self {
        let mut end_of_generation: Vec<u32> = special
            .eos
            .into_iter()
            .chain(special.extra_end_of_generation)
            .chain(
                END_OF_GENERATION_TEXTS
                    .iter()
                    .filter_map(|text| inner.token_to_id(text)),
            )
            .collect();
        end_of_generation.sort_unstable();
        end_of_generation.dedup();
        Self {
            inner,
            bos: special.bos,
            eos: special.eos,
            add_bos: special.add_bos,
            end_of_generation,
        }
    }

    /// Loads `tokenizer.json` from `dir`, with BOS/EOS from `tokenizer_config.json`,
    /// `generation_config.json` and `config.json` where present.
    pub fn from_dir(dir: &Path) -> Result<Self, LlmError> {
        let path = dir.join("tokenizer.json");
        let inner = Tokenizer::from_file(&path).map_err(|e| LlmError::model_load(&path, e))?;
        let tokenizer_config = read_json(&dir.join("tokenizer_config.json"))?;
        let token_id = |key: &str| {
            tokenizer_config
                .get(key)
                .and_then(|v| v.as_str().or_else(|| v.get("content")?.as_str()))
                .and_then(|text| inner.token_to_id(text))
        };
        let mut bos = token_id("bos_token");
        let mut eos = token_id("eos_token");
        let mut extra_end_of_generation = Vec::new();
        for name in ["generation_config.json", "config.json"] {
            let config = read_json(&dir.join(name))?;
            bos = bos.or_else(|| config.get("bos_token_id")?.as_u64().map(|id| id as u32));
            match config.get("eos_token_id") {
                Some(Value::Number(id)) => eos = eos.or(id.as_u64().map(|id| id as u32)),
                Some(Value::Array(ids)) => extra_end_of_generation
                    .extend(ids.iter().filter_map(|id| Some(id.as_u64()? as u32))),
                _ => {}
            }
        }
        // The post-processor says whether the model wants BOS: see what it adds to a text.
        let encode = |special| inner.encode("a", special).map(|e| e.get_ids().to_vec());
        let with = encode(true).map_err(|e| LlmError::model_load(&path, e))?;
        let without = encode(false).map_err(|e| LlmError::model_load(&path, e))?;
        let add_bos = with.len() > without.len() && with.first() != without.first();
        if add_bos {
            bos = with.first().copied();
        }
        let special = SpecialTokens {
            bos,
            eos,
            extra_end_of_generation,
            add_bos,
        };
        Ok(Self::new(inner, special))
    }

    /// Token ids of `text`, special tokens in it recognised, BOS prepended if the model wants it
    /// and the text does not already start with it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| LlmError::Tokenizer(e.to_string()))?;
        let mut ids = encoding.get_ids().to_vec();
        if let (true, Some(bos)) = (self.add_bos, self.bos)
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, LlmError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| LlmError::Tokenizer(e.to_string()))
    }

    /// Whether `token` ends generation.
    pub fn is_end_of_generation(&self, token: u32) -> bool {
        self.end_of_generation.binary_search(&token).is_ok()
    }

    /// Every token that ends generation, in ascending order.
    pub fn end_of_generation(&self) -> &[u32] {
        &self.end_of_generation
    }

    /// Each token's bytes, special tokens marked with a leading 0xFF (llguidance's form). Only
    /// byte-level and byte-fallback BPE tokenizers can say; others give an error.
    pub fn token_bytes(&self) -> Result<Vec<Vec<u8>>, String> {
        let json = self.inner.to_string(false).map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        llguidance::token_bytes_from_tokenizer_json(&json).map_err(|e| e.to_string())
    }

    /// Each token's text as the vocabulary writes it, for tokenizers [`Self::token_bytes`]
    /// cannot read.
    pub fn token_texts(&self) -> Vec<Vec<u8>> {
        let size = self.inner.get_vocab_size(true) as u32;
        (0..size)
            .map(|id| self.inner.id_to_token(id).unwrap_or_default().into_bytes())
            .collect()
    }

    /// The id of the special token written `text`, which detokenizing leaves out.
    pub fn special_token(&self, text: &str) -> Option<u32> {
        self.inner
            .get_added_tokens_decoder()
            .into_iter()
            .find(|(_, token)| token.special && token.content == text)
            .map(|(id, _)| id)
    }

    /// The text of the BOS token, for chat templates (empty if none).
    pub fn bos_text(&self) -> String {
        self.token_text(self.bos)
    }

    /// The text of the EOS token, for chat templates (empty if none).
    pub fn eos_text(&self) -> String {
        self.token_text(self.eos)
    }

    /// The underlying tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    fn token_text(&self, token: Option<u32>) -> String {
        token
            .and_then(|id| self.inner.id_to_token(id))
            .unwrap_or_default()
    }
}

/// Reads a JSON file; a missing file reads as `null`.
pub fn read_json(path: &Path) -> Result<Value, LlmError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| LlmError::model_load(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Null),
        Err(e) => Err(LlmError::model_load(path, e)),
    }
}
