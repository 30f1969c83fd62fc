//! Builds the tokenizer of a GGUF file from its `tokenizer.ggml.*` metadata.
//!
//! GGUF stores GPT-2-style BPE tokenizers (`gpt2`) with tokens and merges already in byte-level
//! form, so they map one to one onto a `tokenizers` BPE model with a byte-level pre-tokenizer and
//! decoder. What differs between models is the split before byte-level, named by
//! `tokenizer.ggml.pre`.
//!
//! SentencePiece tokenizers (`llama`: Llama 2, Gemma, ...) come as pieces with scores. Their
//! encoding merges, among adjacent pieces, the pair whose joined piece scores highest, as
//! llama.cpp's does: that is a BPE model whose merges are ranked by the joined piece's score,
//! over text whose spaces are `▁`, with `<0xXX>` pieces for bytes the pieces lack.

use crate::{
    error::LlmError,
    tokenizer::{SpecialTokens, TextTokenizer},
};
use candle_core::quantized::gguf_file::Value;
use std::{collections::HashMap, path::Path};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
    Tokenizer,
    decoders::{self, byte_fallback::ByteFallback, fuse::Fuse, strip::Strip},
    models::bpe::{BPE, Merges, Vocab},
    normalizers::{self, prepend::Prepend, replace::Replace},
    pre_tokenizers::{
        byte_level::ByteLevel, digits::Digits, sequence::Sequence, split::Split,
        split::SplitPattern,
    },
};

/// SentencePiece's word boundary: a space in the pieces.
const SPACE_PIECE: &str = "\u{2581}";

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

    let flag = |key: &str| metadata.get(key).and_then(|v| v.to_bool().ok());

    let model = text("tokenizer.ggml.model")?;
    let tokens = texts("tokenizer.ggml.tokens")?;
    let token_types: Vec<i32> = match metadata.get("tokenizer.ggml.token_type") {
        Some(types) => types
            .to_vec()
            .and_then(|v| v.iter().map(Value::to_i32).collect())
            .map_err(|e| fail(format!("tokenizer.ggml.token_type: {e}")))?,
        None => Vec::new(),
    };
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let mut tokenizer = match model.as_str() {
        "gpt2" => {
            let merges = texts("tokenizer.ggml.merges")?
                .into_iter()
                .map(|merge| match merge.split_once(' ') {
                    Some((a, b)) => Ok((a.to_string(), b.to_string())),
                    None => Err(fail(format!(
                        "malformed merge '{merge}' in tokenizer.ggml.merges"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let pre = metadata
                .get("tokenizer.ggml.pre")
                .and_then(|v| v.to_string().ok())
                .map_or("default", String::as_str);
            let bpe = BPE::builder()
                .vocab_and_merges(vocab, merges)
                .ignore_merges(pre == "llama-bpe")
                .build()
                .map_err(|e| fail(format!("invalid BPE vocabulary: {e}")))?;
            let mut tokenizer = Tokenizer::new(bpe);
            tokenizer
                .with_pre_tokenizer(Some(pre_tokenizer(pre).map_err(fail)?))
                .with_decoder(Some(ByteLevel::default()));
            tokenizer
        }
        "llama" => {
            let scores: Vec<f32> = get("tokenizer.ggml.scores")?
                .to_vec()
                .and_then(|v| v.iter().map(Value::to_f32).collect())
                .map_err(|e| fail(format!("tokenizer.ggml.scores: {e}")))?;
            if scores.len() != tokens.len() {
                return Err(fail(
                    "tokenizer.ggml.scores and tokens differ in length".into(),
                ));
            }
            let unknown = id("tokenizer.ggml.unknown_token_id")
                .and_then(|i| tokens.get(i as usize))
                .cloned();
            let space_prefix = flag("tokenizer.ggml.add_space_prefix").unwrap_or(true);
            sentencepiece(vocab, piece_merges(&tokens, &scores), unknown, space_prefix)
                .map_err(fail)?
        }
        other => {
            return Err(fail(format!(
                "tokenizer.ggml.model '{other}' cannot be built from GGUF metadata (only 'gpt2' \
                 BPE and 'llama' SentencePiece can); put the model's tokenizer.json next to the \
                 file"
            )));
        }
    };
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
        add_bos: flag("tokenizer.ggml.add_bos_token").unwrap_or(false),
    };
    Ok(TextTokenizer::new(tokenizer, special))
}

/// The merges of a SentencePiece vocabulary: every split of a piece into two pieces, ranked by
/// the joined piece's score (highest first; equal scores by the pieces' ids).
fn piece_merges(tokens: &[String], scores: &[f32]) -> Merges {
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut ranked: Vec<(f32, usize, usize, usize)> = Vec::new();
    for (piece, &score) in tokens.iter().zip(scores) {
        for (at, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(at);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) {
                ranked.push((score, ids[piece.as_str()], l, r));
            }
        }
    }
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then((a.1, a.2, a.3).cmp(&(b.1, b.2, b.3)))
    });
    ranked
        .into_iter()
        .map(|(_, _, l, r)| (tokens[l].clone(), tokens[r].clone()))
        .collect()
}

/// A SentencePiece tokenizer: BPE over `merges` with byte fallback, spaces as `▁` (and one in
/// front of the text when `space_prefix`), decoded back.
fn sentencepiece(
    vocab: Vocab,
    merges: Merges,
    unknown: Option<String>,
    space_prefix: bool,
) -> Result<Tokenizer, String> {
    let mut bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unknown) = unknown {
        bpe = bpe.unk_token(unknown);
    }
    let bpe = bpe
        .build()
        .map_err(|e| format!("invalid SentencePiece vocabulary: {e}"))?;
    let to_piece = Replace::new(" ", SPACE_PIECE).map_err(|e| e.to_string())?;
    let from_piece = Replace::new(SPACE_PIECE, " ").map_err(|e| e.to_string())?;
    let mut normalize: Vec<NormalizerWrapper> = Vec::new();
    let mut decode: Vec<DecoderWrapper> = vec![
        from_piece.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if space_prefix {
        normalize.push(Prepend::new(SPACE_PIECE.into()).into());
        decode.push(Strip::new(' ', 1, 0).into());
    }
    normalize.push(to_piece.into());
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_normalizer(Some(normalizers::Sequence::new(normalize)))
        .with_decoder(Some(decoders::sequence::Sequence::new(decode)));
    Ok(tokenizer)
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

    /// Gemma 3's SentencePiece tokenizer, built from the real file's metadata, gives the ids
    /// llama.cpp's tokenizer gives (`llama-server` `/tokenize`, no special tokens added) and
    /// decodes them back.
    #[test]
    fn gemma3_sentencepiece_matches_llama_cpp() {
        let path = crate::test_support::provisioned("gemma-3-270m-q4_k_m.gguf");
        let mut file = std::fs::File::open(&path).unwrap();
        let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
        let gemma = from_gguf(&content.metadata, &path).unwrap();
        let llama_cpp: [(&str, &[u32]); 5] = [
            ("The capital of France is", &[818, 5279, 529, 7001, 563]),
            (
                "Hello, world! It's 2024.",
                &[
                    9259, 236764, 1902, 236888, 1030, 236789, 236751, 236743, 236778, 236771,
                    236778, 236812, 236761,
                ],
            ),
            (
                "  leading spaces\n\ttabs and Crème brûlée 日本語 🎉",
                &[
                    138, 26016, 9952, 107, 255968, 39218, 532, 7678, 9809, 125501, 155666, 33375,
                    238582, 204906,
                ],
            ),
            (
                "<start_of_turn>user\nHi<end_of_turn>",
                &[105, 2364, 107, 10979, 106],
            ),
            (
                "unbelievably tokenization",
                &[602, 8145, 20873, 2579, 8369, 1854],
            ),
        ];
        for (text, ids) in llama_cpp {
            let ours = gemma.inner().encode(text, false).unwrap();
            assert_eq!(ours.get_ids(), ids, "{text:?}");
            assert_eq!(gemma.inner().decode(ids, false).unwrap(), text);
        }
        assert_eq!(gemma.encode("Hi").unwrap()[0], 2, "Gemma adds its BOS");
    }

    fn json_config() -> &'static str {
        r#"{"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}"#
    }
}
