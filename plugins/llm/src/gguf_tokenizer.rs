//! Builds the tokenizer of a GGUF file from its `tokenizer.ggml.*` metadata.
//!
//! GGUF stores GPT-2-style BPE tokenizers with tokens and merges already in byte-level form, so
//! they map one to one onto a `tokenizers` BPE model with a byte-level pre-tokenizer and decoder.
//! What differs between models is the split before byte-level, named by `tokenizer.ggml.pre`.

use crate::{
    error::LlmError,
    tokenizer::{SpecialTokens, TextTokenizer},
};
use candle_core::quantized::gguf_file::Value;
use std::{collections::HashMap, path::Path};
use tokenizers::{
    AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
    models::bpe::{BPE, Vocab},
    pre_tokenizers::{
        byte_level::ByteLevel, digits::Digits, sequence::Sequence, split::Split,
        split::SplitPattern,
    },
};

/// `token_type` of control tokens (`<|im_start|>`, ...): matched in text as special tokens.
const TOKEN_TYPE_CONTROL: i32 = 3;
/// `token_type` of user-defined tokens: matched in text as they are.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Builds the tokenizer described by the metadata of the GGUF file at `path`.
pub fn from_gguf(
    metadata: &HashMap<String, Value>,
    path: &Path,
) -> Result<TextTokenizer, LlmError> {
    let fail = |reason: String| LlmError::model_load(path, reason);
    let get = |key: &str| {
        metadata
            .get(key)
            .ok_or_else(|| fail(format!("metadata has no {key}")))
    };
    let text = |key: &str| -> Result<String, LlmError> {
        get(key)?
            .to_string()
            .cloned()
            .map_err(|e| fail(format!("{key}: {e}")))
    };
    let texts = |key: &str| -> Result<Vec<String>, LlmError> {
        let values = get(key)?
            .to_vec()
            .map_err(|e| fail(format!("{key}: {e}")))?;
        values
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| fail(format!("{key}: {e}")))
            })
            .collect()
    };
    let id = |key: &str| metadata.get(key).and_then(|v| v.to_u32().ok());

    let model = text("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(fail(format!(
            "tokenizer.ggml.model '{model}' cannot be built from GGUF metadata (only 'gpt2' BPE \
             can); put the model's tokenizer.json next to the file"
        )));
    }
    let tokens = texts("tokenizer.ggml.tokens")?;
    let merges = texts("tokenizer.ggml.merges")?
        .into_iter()
        .map(|merge| match merge.split_once(' ') {
            Some((a, b)) => Ok((a.to_string(), b.to_string())),
            None => Err(fail(format!(
                "malformed merge '{merge}' in tokenizer.ggml.merges"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let token_types: Vec<i32> = match metadata.get("tokenizer.ggml.token_type") {
        Some(types) => types
            .to_vec()
            .and_then(|v| v.iter().map(Value::to_i32).collect())
            .map_err(|e| fail(format!("tokenizer.ggml.token_type: {e}")))?,
        None => Vec::new(),
    };
    let pre = metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map_or("default", String::as_str);

    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre == "llama-bpe")
        .build()
        .map_err(|e| fail(format!("invalid BPE vocabulary: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_pre_tokenizer(Some(pre_tokenizer(pre).map_err(fail)?))
        .with_decoder(Some(ByteLevel::default()));
    let added = |wanted: i32, special: bool| -> Vec<AddedToken> {
        token_types
            .iter()
            .zip(&tokens)
            .filter(|&(&kind, _)| kind == wanted)
            .map(|(_, token)| AddedToken::from(token.clone(), special).normalized(false))
            .collect()
    };
    tokenizer.add_special_tokens(&added(TOKEN_TYPE_CONTROL, true));
    tokenizer.add_tokens(&added(TOKEN_TYPE_USER_DEFINED, false));

    let special = SpecialTokens {
        bos: id("tokenizer.ggml.bos_token_id"),
        eos: id("tokenizer.ggml.eos_token_id"),
        extra_end_of_generation: ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]
            .iter()
            .filter_map(|key| id(key))
            .collect(),
        add_bos: metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false),
    };
    Ok(TextTokenizer::new(tokenizer, special))
}

/// The split applied before byte-level encoding, by `tokenizer.ggml.pre`.
fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, String> {
    let byte_level = |use_regex| ByteLevel::new(false, true, use_regex).into();
    let split = |pattern: &str| -> Result<PreTokenizerWrapper, String> {
        Split::new(
            SplitPattern::Regex(pattern.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map(Into::into)
        .map_err(|e| format!("invalid split pattern: {e}"))
    };
    let steps = match pre {
        "default" | "gpt2" | "gpt-2" => vec![byte_level(true)],
        "smollm" | "starcoder" => vec![Digits::new(true).into(), byte_level(true)],
        "llama-bpe" | "llama3" => vec![split(LLAMA3_SPLIT)?, byte_level(false)],
        "qwen2" => vec![split(QWEN2_SPLIT)?, byte_level(false)],
        other => {
            return Err(format!(
                "tokenizer.ggml.pre '{other}' is not supported; put the model's tokenizer.json \
                 next to the file"
            ));
        }
    };
    Ok(Sequence::new(steps).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::model_path;
    use std::sync::OnceLock;

    fn tokenizer() -> &'static TextTokenizer {
        static TOKENIZER: OnceLock<TextTokenizer> = OnceLock::new();
        TOKENIZER.get_or_init(|| {
            let path = model_path();
            let mut file = std::fs::File::open(&path).unwrap();
            let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
            from_gguf(&content.metadata, &path).unwrap()
        })
    }

    #[test]
    fn text_round_trips() {
        for text in [
            "Hello, world! It's 2024.",
            "Crème brûlée, naïve façade, Ærøskøbing",
            "日本語のテキストと中文字符",
            "emoji 🎉🚀👩‍👩‍👧 and symbols ∑∞",
            "  leading spaces\n\ttabs\r\nand newlines  ",
        ] {
            let ids = tokenizer().encode(text).unwrap();
            assert_eq!(tokenizer().decode(&ids).unwrap(), text);
        }
    }

    #[test]
    fn matches_llama_cpp_conventions_for_smollm2() {
        let t = tokenizer();
        // Control tokens are single special tokens; no BOS is added (add_bos = false).
        assert_eq!(t.encode("<|im_start|>user").unwrap()[0], 1);
        // Digits are split one by one before byte-level BPE.
        let digits = t.encode("2024").unwrap();
        assert_eq!(digits.len(), 4);
        assert_eq!(t.decode(&digits[..1]).unwrap(), "2");
        // Both <|im_end|> and <|endoftext|> end generation; ordinary tokens do not.
        assert!(t.is_end_of_generation(2) && t.is_end_of_generation(0));
        assert!(!t.is_end_of_generation(digits[0]));
        assert_eq!(
            (t.bos_text().as_str(), t.eos_text().as_str()),
            ("<|im_start|>", "<|im_end|>")
        );
    }

    #[test]
    fn a_saved_tokenizer_json_loads_to_the_same_ids() {
        let dir = tempfile::tempdir().unwrap();
        tokenizer()
            .inner()
            .save(dir.path().join("tokenizer.json"), false)
            .unwrap();
        let config = json_config();
        std::fs::write(dir.path().join("tokenizer_config.json"), config).unwrap();
        let reloaded = TextTokenizer::from_dir(dir.path()).unwrap();
        let text = "<|im_start|>user\nCafé 123 🎉<|im_end|>";
        assert_eq!(
            reloaded.encode(text).unwrap(),
            tokenizer().encode(text).unwrap()
        );
        assert!(reloaded.is_end_of_generation(2) && reloaded.is_end_of_generation(0));
    }

    fn json_config() -> &'static str {
        r#"{"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}"#
    }
}
