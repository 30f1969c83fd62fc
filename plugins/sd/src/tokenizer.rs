//! The CLIP tokenizer: from `tokenizer.json`, or built from the `vocab.json` and `merges.txt`
//! of a diffusers `tokenizer/` folder with CLIP's normalisation and pre-tokenisation.

use std::path::{Path, PathBuf};
use tokenizers::{
    SplitDelimiterBehavior, Tokenizer,
    models::bpe::BPE,
    normalizers::{Lowercase, NFC, Replace, Sequence},
    pre_tokenizers::{
        byte_level::ByteLevel,
        sequence::Sequence as PreSequence,
        split::{Split, SplitPattern},
    },
};

/// CLIP's pre-tokenisation pattern (from its `tokenizer.json`).
const CLIP_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";

/// Where a tokenizer is stored.
#[derive(Debug, Clone)]
pub enum TokenizerFiles {
    /// A complete `tokenizer.json`.
    Json(PathBuf),
    /// A diffusers `tokenizer/` folder's `vocab.json` and `merges.txt`.
    VocabMerges {
        /// `vocab.json`.
        vocab: PathBuf,
        /// `merges.txt`.
        merges: PathBuf,
    },
}

/// A CLIP tokenizer that yields fixed-length id sequences: BOS, tokens, EOS, padding.
pub struct ClipTokenizer {
    inner: Tokenizer,
    bos: u32,
    eos: u32,
    pad: u32,
    length: usize,
}

impl ClipTokenizer {
    /// Loads a tokenizer producing `length` ids, padded with `pad_token` (EOS when `None`).
    pub fn load(
        files: &TokenizerFiles,
        pad_token: Option<&str>,
        length: usize,
    ) -> Result<Self, String> {
        let inner = match files {
            TokenizerFiles::Json(path) => {
                Tokenizer::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?
            }
            TokenizerFiles::VocabMerges { vocab, merges } => from_vocab_merges(vocab, merges)?,
        };
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| format!("the tokenizer has no {token} token"))
        };
        Ok(Self {
            bos: id(BOS)?,
            eos: id(EOS)?,
            pad: id(pad_token.unwrap_or(EOS))?,
            inner,
            length,
        })
    }

    /// The ids of `text`: truncated to fit, framed by BOS and EOS, padded to the fixed length.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| format!("cannot tokenize the prompt: {e}"))?;
        let mut ids = Vec::with_capacity(self.length);
        ids.push(self.bos);
        ids.extend(encoding.get_ids().iter().take(self.length - 2));
        ids.push(self.eos);
        ids.resize(self.length, self.pad);
        Ok(ids)
    }

    /// Where the first end-of-text token lies in `ids` (from [`ClipTokenizer::encode`]): the
    /// position CLIP pools its output from.
    pub fn eos_position(&self, ids: &[u32]) -> usize {
        ids.iter()
            .position(|&id| id == self.eos)
            .unwrap_or(ids.len() - 1)
    }
}

fn from_vocab_merges(vocab: &Path, merges: &Path) -> Result<Tokenizer, String> {
    let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .unk_token(EOS.into())
        .end_of_word_suffix("</w>".into())
        .build()
        .map_err(|e| format!("{} / {}: {e}", vocab.display(), merges.display()))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let whitespace = Replace::new(
        tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
        " ",
    )
    .map_err(|e| e.to_string())?;
    tokenizer.with_normalizer(Some(Sequence::new(vec![
        NFC.into(),
        whitespace.into(),
        Lowercase.into(),
    ])));
    let split = Split::new(
        SplitPattern::Regex(CLIP_PATTERN.into()),
        SplitDelimiterBehavior::Removed,
        true,
    )
    .map_err(|e| e.to_string())?;
    tokenizer.with_pre_tokenizer(Some(PreSequence::new(vec![
        split.into(),
        ByteLevel::new(false, true, false).into(),
    ])));
    Ok(tokenizer)
}
